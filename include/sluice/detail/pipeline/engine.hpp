// sluice/detail/pipeline/engine.hpp: the data path of one mapping, shared by sluice::run (one
// thread) and sluice::start (poller and worker threads). poll() reads a shard, runs the fused
// per-record stages, routes records to lanes (S-3.1) and closes batches (S-2); the driver
// decides where a closed batch runs. The checkpoint of a shard is derived from the reader's
// position and each lane's oldest unfinished record (S-3.3).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sluice/checkpoint.hpp"
#include "sluice/detail/pipeline/lane_job.hpp"
#include "sluice/hash.hpp"
#include "sluice/mapping.hpp"
#include "sluice/metrics.hpp"

SLUICE_BEGIN_NAMESPACE

namespace detail {

inline constexpr sequence_number_t none_in_flight = std::numeric_limits<sequence_number_t>::max();

template <class M, bool HasDestination = mapping_traits<M>::has_destination>
struct destination_of {
  using type = void;
};
template <class M>
struct destination_of<M, true> {
  using type =
      std::remove_reference_t<decltype(mapping_traits<M>::destination(std::declval<M&>()))>;
};

template <class M, class Clock, class Store>
class engine {
 public:
  using traits = mapping_traits<M>;
  using record_type = typename M::record_type;
  using source_type = typename M::source_type;
  using source_record = typename M::source_record;
  using policies =
      policy_set<traits::has_bisect, traits::has_report, typename destination_of<M>::type>;
  using job_type = lane_job<record_type, policies>;

  struct shard_state;

  static constexpr std::uint32_t slots = batches_per_lane;

  /// One lane of a shard: a ring of batch slots. Batches [head, closed) belong to the worker
  /// side, in order (only the oldest is in flight: S-3.2); slot `closed` is the poller's, being
  /// filled. A worker that finishes a batch goes on to the next closed one itself, so the poller
  /// and the workers meet only when the ring runs empty or full.
  struct lane {
    explicit lane(std::uint64_t seed) : job(seed) {}
    struct slot {
      std::vector<record_type> records;
      std::uint32_t n = 0;
      std::atomic<sequence_number_t> unfinished{none_in_flight};  // oldest unfinished record
    };
    std::array<slot, slots> ring;
    std::atomic<std::uint64_t> closed{0};  // batches closed so far (the poller's counter)
    std::atomic<std::uint64_t> head{0};    // batches finished so far (the worker side's)
    std::atomic<bool> busy{false};         // a worker side owns the lane: job runs batch `head`

    // The poller's, for the batch being filled (slot `closed`):
    std::size_t fill_bytes = 0;
    bool fill_closed = false;  // the next record would go over maximum_payload_bytes
    time_point fill_deadline = far_future;
    sequence_number_t fill_front = 0;

    job_type job;
    std::atomic<bool> retrying{false};    // the batch in flight has failed and waits to retry
    sequence_number_t bypassed_from = 0;  // poller's: first record skipped while retrying (0: none)
    shard_state* shard = nullptr;
    time_point due{};  // when a waiting job is to run again

    slot& filling() noexcept { return ring[closed.load(std::memory_order_relaxed) % slots]; }
    std::uint32_t fill_n() noexcept { return filling().n; }
    /// Another batch can be closed: the ring has a free slot to fill next.
    bool can_close() const noexcept {
      return closed.load(std::memory_order_relaxed) - head.load(std::memory_order_acquire) <
             slots - 1;
    }
  };

  struct shard_state {
    shard_id_t id = 0;
    sequence_number_t position = 0;  // last sequence number consumed from the source
    std::vector<std::unique_ptr<lane>> lanes;
    live_counters counters;
    std::atomic<sequence_number_t> checkpoint{0};
    sequence_number_t saved = 0;
  };

  engine(M&& m, Clock& clock, Store& store, std::string name)
      : mapping_(std::move(m)),
        clock_(&clock),
        store_(&store),
        name_(std::move(name)),
        batching_(traits::batching(mapping_)),
        retry(traits::retry(mapping_)),
        stream_name(std::string(source().name())) {
    const std::uint32_t lanes = traits::lanes(mapping_);
    if constexpr (requires { record_traits<record_type>::constant_payload_size; }) {
      count_bytes_ =
          std::size_t{batching_.batch_size} * record_traits<record_type>::constant_payload_size >
          batching_.maximum_payload_bytes;
    }
    const std::uint32_t n = source().shard_count();
    shards_.reserve(n);
    for (shard_id_t id = 0; id < n; ++id) {
      auto s = std::make_unique<shard_state>();
      s->id = id;
      const std::optional<sequence_number_t> stored = store_->load(name_, id);
      s->position = stored ? *stored : source().resolve(id, mapping_.source.position);
      s->checkpoint.store(s->position);
      s->saved = s->position;
      for (std::uint32_t i = 0; i < lanes; ++i) {
        auto l = std::make_unique<lane>((std::uint64_t{id} << 32) | i);
        l->shard = s.get();
        s->lanes.push_back(std::move(l));
      }
      shards_.push_back(std::move(s));
    }
  }

  // ---- what lane_job reads ----
  time_point now() const { return clock_->now(); }
  /// Jobs start no new attempt or delivery once this is set (stop()).
  bool stop_requested() const noexcept {
    return stop_ != nullptr && stop_->load(std::memory_order_relaxed);
  }
  void set_stop_flag(const std::atomic<bool>* stop) noexcept { stop_ = stop; }
  auto& handler() { return traits::handler(mapping_); }
  auto& destination() { return traits::destination(mapping_); }

  source_type& source() { return unwrap(mapping_.source.source); }
  std::vector<std::unique_ptr<shard_state>>& shards() noexcept { return shards_; }
  Clock& clock() noexcept { return *clock_; }
  const std::string& name() const noexcept { return name_; }
  const batching_config& batching() const noexcept { return batching_; }

  /// Reads up to `chunk` records of a shard into its lanes. Batches that close are handed to
  /// `submitted` (the driver runs them). Returns whether anything moved. `next_deadline` is
  /// lowered to the earliest open batching window. With `flush`, open windows close now.
  ///
  /// Backpressure and isolation: when a record's lane is full and its batch is in flight, the
  /// reader stops (a slow handler slows the reader). But when that batch is being retried, the
  /// lane is bypassed instead: the reader goes on with the other lanes, the bypassed lane
  /// re-reads its own records from the source once it is free (catch_up), and the checkpoint
  /// stays below the first record it skipped (S-3.3 failure isolation with bounded memory).
  bool poll(shard_state& s, time_point now, std::vector<lane*>& submitted,
            time_point& next_deadline, std::size_t chunk, bool flush = false) {
    // S-2.3: with window 0 a batch is what is available now, so a partial batch waits until
    // the reader has taken everything the source holds (a read shorter than the chunk).
    const bool zero_window = batching_.maximum_batching_window == duration::zero();
    bool progress = dispatch_ready(s, now, submitted, flush, !zero_window);
    read_counts counts;
    for (auto& l : s.lanes) {
      if (l->bypassed_from != 0 && l->can_close())
        progress |= catch_up(s, *l, now, submitted, chunk, counts);
    }
    sequence_number_t position = s.position;  // a local in the per-record loop
    auto visit = [&](const source_record& r) -> bool {
      lane& l = route(s, r);
      const sequence_number_t seq = sluice::sequence_number(r);
      if (l.bypassed_from == 0) {
        const offer_result taken = offer(l, r, seq, now, submitted);
        if (taken == offer_result::blocked) {
          // Backpressure, unless the lane is retrying and other lanes can use the reader.
          if (s.lanes.size() == 1 || !l.retrying.load(std::memory_order_acquire)) return false;
          l.bypassed_from = seq;
        } else {
          counts.add(taken);
        }
      }
      position = seq;
      return true;
    };
    const std::size_t consumed = source().read(s.id, s.position, chunk, visit);
    s.position = position;
    if (consumed > 0) progress = true;
    if (counts.polled > 0) live_counters::add(s.counters.polled, counts.polled);
    if (counts.filtered > 0) live_counters::add(s.counters.filtered_out, counts.filtered);
    progress |= dispatch_ready(s, now, submitted, flush, !zero_window || consumed < chunk);
    for (auto& l : s.lanes) {  // a full ring's progress wakes the poller; no deadline needed
      if (l->fill_n() > 0 && l->can_close())
        next_deadline = std::min(next_deadline, l->fill_deadline);
    }
    return progress;
  }

  /// Closes the lane's filling batch (the ring has room: can_close()); if no worker side owns
  /// the lane, claims it and hands it to the driver through `submitted`.
  void dispatch(lane& l, std::vector<lane*>& submitted) {
    typename lane::slot& done = l.filling();
    done.unfinished.store(sluice::sequence_number(done.records[0]), std::memory_order_release);
    l.closed.fetch_add(1, std::memory_order_seq_cst);  // Dekker pair with finish_batch()
    l.filling().n = 0;
    l.fill_bytes = 0;
    l.fill_closed = false;
    l.fill_deadline = far_future;
    if (try_claim(l)) {
      begin_batch(l);
      submitted.push_back(&l);
    }
  }

  struct job_result {
    bool done;              // the batch is finished (or abandoned on stop: then !more)
    bool more;              // done, and the lane's next batch has begun: run the lane again
    time_point wait_until;  // when !done: run again at or after this time
  };

  /// Runs the lane's current batch until it is finished or must wait. When finished, the
  /// worker side moves on to the next closed batch itself (`more`) or releases the lane.
  job_result run_job(lane& l) {
    typename lane::slot& current = l.ring[l.head.load(std::memory_order_relaxed) % slots];
    auto publish = [&current](std::size_t finished) {
      current.unfinished.store(finished < current.n
                                   ? sluice::sequence_number(current.records[finished])
                                   : none_in_flight,
                               std::memory_order_release);
    };
    const step_result r = l.job.step(*this, l.shard->counters, publish);
    l.retrying.store(!r.done, std::memory_order_release);
    if (!r.done) return {false, false, r.wait_until};
    current.unfinished.store(none_in_flight, std::memory_order_release);  // also after drops
    return {true, finish_batch(l), {}};
  }

  /// Batches waiting in the lane's ring, not counting the one in flight.
  std::uint64_t waiting_batches(const lane& l) const noexcept {
    return l.closed.load(std::memory_order_acquire) - l.head.load(std::memory_order_acquire);
  }

  /// S-3.3: every record <= the result is finished. Called by the poller (slot `closed` and
  /// the fill state are its own).
  sequence_number_t checkpoint_of(shard_state& s) const {
    sequence_number_t cp = s.position;
    for (auto& l : s.lanes) {
      if (l->fill_n() > 0) cp = std::min(cp, l->fill_front - 1);
      if (l->bypassed_from != 0) cp = std::min(cp, l->bypassed_from - 1);
      // A batch leaves [head, closed) only when all of it is finished, so every unfinished
      // record is in one of these slots (a stale head only adds finished slots).
      const std::uint64_t closed = l->closed.load(std::memory_order_relaxed);
      for (std::uint64_t b = l->head.load(std::memory_order_acquire); b < closed; ++b) {
        const sequence_number_t f = l->ring[b % slots].unfinished.load(std::memory_order_acquire);
        if (f != none_in_flight) cp = std::min(cp, f - 1);
      }
    }
    return cp;
  }

  /// Publishes and stores the shard's checkpoint if it advanced. Returns whether it did.
  bool update_checkpoint(shard_state& s) {
    const sequence_number_t cp = checkpoint_of(s);
    if (cp <= s.saved) return false;
    store_->save(name_, s.id, cp);
    s.saved = cp;
    s.checkpoint.store(cp, std::memory_order_seq_cst);  // read by caught-up waiters (runtime)
    return true;
  }

  metrics_snapshot metrics() const {
    metrics_snapshot m;
    m.mapping_name = name_;
    for (const auto& s : shards_) {
      shard_metrics sm;
      sm.shard_id = s->id;
      sm.counters = s->counters.snapshot();
      sm.checkpoint = s->checkpoint.load(std::memory_order_acquire);
      m.total += sm.counters;
      m.shards.push_back(sm);
    }
    const auto& t = m.total;
    const std::uint64_t done = t.filtered_out_event_count + t.succeeded_event_count +
                               t.on_failure_destination_delivered_event_count +
                               t.dropped_event_count;
    m.buffered_records = t.polled_event_count > done ? t.polled_event_count - done : 0;
    return m;
  }

  /// The most records the mapping can hold between the source and the handler.
  std::size_t buffer_bound() const {
    return shards_.size() * traits::lanes(const_cast<M&>(mapping_)) * slots * batching_.batch_size;
  }

 private:
  lane& route(shard_state& s, const source_record& r) {
    if (s.lanes.size() == 1) return *s.lanes[0];
    const auto lanes = static_cast<std::uint32_t>(s.lanes.size());
    return *s.lanes[lane_for(key_hash(sluice::partition_key(r)), lanes)];
  }

  void begin_batch(lane& l) {
    typename lane::slot& b = l.ring[l.head.load(std::memory_order_relaxed) % slots];
    l.job.begin(std::span<const record_type>(b.records.data(), b.n), l.shard->id);
  }

  /// The worker side finished batch `head`: begins the next closed one (returns true, the lane
  /// stays owned) or releases the lane (false).
  bool finish_batch(lane& l) {
    const std::uint64_t next = l.head.load(std::memory_order_relaxed) + 1;
    l.head.store(next, std::memory_order_seq_cst);
    if (next < l.closed.load(std::memory_order_seq_cst)) {
      begin_batch(l);
      return true;
    }
    l.busy.store(false, std::memory_order_seq_cst);
    if (try_claim(l)) {  // a batch closed meanwhile: exactly one side claims it
      begin_batch(l);
      return true;
    }
    return false;
  }

  /// Takes ownership of the lane's worker side if it is free and a closed batch is waiting.
  /// Both the poller (after closing) and a worker (after releasing) call it; with seq_cst on
  /// busy, head and closed, a waiting batch is never left unowned, and an owner always has a
  /// batch: another side may have run it between the close and the claim.
  static bool try_claim(lane& l) {
    while (true) {
      if (l.busy.load(std::memory_order_seq_cst) ||
          l.busy.exchange(true, std::memory_order_seq_cst))
        return false;
      if (l.head.load(std::memory_order_seq_cst) < l.closed.load(std::memory_order_seq_cst))
        return true;
      l.busy.store(false, std::memory_order_seq_cst);
      if (l.head.load(std::memory_order_seq_cst) >= l.closed.load(std::memory_order_seq_cst))
        return false;
    }
  }

  enum class offer_result { taken, filtered, blocked };

  struct read_counts {
    std::uint64_t polled = 0;
    std::uint64_t filtered = 0;
    void add(offer_result r) noexcept {
      ++polled;
      if (r == offer_result::filtered) ++filtered;  // S-6.1: finished at once
    }
  };

  /// Runs the fused per-record stages on r and places the result in lane l, closing batches
  /// on size and bytes (S-2.1). `blocked`: l cannot take it now (full, and its batch in flight).
  offer_result offer(lane& l, const source_record& r, sequence_number_t seq, time_point now,
                     std::vector<lane*>& submitted) {
    if (l.fill_n() == batching_.batch_size || l.fill_closed) {
      if (!l.can_close()) return offer_result::blocked;
      dispatch(l, submitted);
    }
    bool refused = false;
    auto emit = [&](auto&& out) -> bool {
      std::size_t bytes = 0;
      if (count_bytes_) {
        bytes = sluice::payload_size_bytes(out);
        if (l.fill_n() > 0 && l.fill_bytes + bytes > batching_.maximum_payload_bytes) {
          l.fill_closed = true;  // S-2.1: the record would take the batch over the cap
          if (!l.can_close()) {
            refused = true;
            return false;
          }
          dispatch(l, submitted);
        }
      }
      typename lane::slot& b = l.filling();
      if (b.n == 0) {
        l.fill_front = seq;
        l.fill_deadline = now + batching_.maximum_batching_window;
      }
      if (b.records.size() > b.n)
        b.records[b.n] = std::forward<decltype(out)>(out);
      else
        b.records.push_back(std::forward<decltype(out)>(out));
      ++b.n;
      l.fill_bytes += bytes;
      if (b.n == batching_.batch_size && l.can_close()) dispatch(l, submitted);
      return true;
    };
    if (run_per_record<0>(mapping_.stages, r, emit)) return offer_result::taken;
    return refused ? offer_result::blocked : offer_result::filtered;
  }

  /// A bypassed lane reads its own records again, from the first one it skipped up to the
  /// shard's read position; it rejoins the shared read when it gets there.
  bool catch_up(shard_state& s, lane& l, time_point now, std::vector<lane*>& submitted,
                std::size_t chunk, read_counts& counts) {
    sequence_number_t cursor = l.bypassed_from - 1;
    l.bypassed_from = 0;
    bool blocked = false;
    bool moved = false;
    while (!blocked && cursor < s.position) {
      const std::size_t n = source().read(s.id, cursor, chunk, [&](const source_record& r) {
        const sequence_number_t seq = sluice::sequence_number(r);
        if (seq > s.position) return false;
        if (&route(s, r) == &l) {
          const offer_result taken = offer(l, r, seq, now, submitted);
          if (taken == offer_result::blocked) {
            blocked = true;
            return false;
          }
          counts.add(taken);
          moved = true;
        }
        cursor = seq;
        return true;
      });
      if (n == 0) break;  // the rest is gone from the source (retention) or not ours
    }
    if (blocked) l.bypassed_from = cursor + 1;
    return moved;
  }

  /// Hands over every free lane's batch that is closed: full, over the byte cap, flushed, or
  /// (when `window_may_close`) past its batching window.
  bool dispatch_ready(shard_state& s, time_point now, std::vector<lane*>& submitted, bool flush,
                      bool window_may_close) {
    bool any = false;
    for (auto& lp : s.lanes) {
      lane& l = *lp;
      if (l.fill_n() == 0 || !l.can_close()) continue;
      if (flush || l.fill_closed || l.fill_n() >= batching_.batch_size ||
          (window_may_close && now >= l.fill_deadline)) {
        dispatch(l, submitted);
        any = true;
      }
    }
    return any;
  }

  M mapping_;
  Clock* clock_;
  Store* store_;
  std::string name_;
  batching_config batching_;
  std::vector<std::unique_ptr<shard_state>> shards_;
  const std::atomic<bool>* stop_ = nullptr;
  // False when every payload has the same size and a full batch stays under the cap: then the
  // per-record byte accounting cannot close a batch and is skipped.
  bool count_bytes_ = true;

 public:
  const retry_config retry;
  const std::string stream_name;
};

}  // namespace detail
SLUICE_END_NAMESPACE
