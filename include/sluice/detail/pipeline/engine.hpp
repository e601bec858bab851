// sluice/detail/pipeline/engine.hpp: the data path of one mapping, shared by sluice::run (one
// thread) and sluice::start (driver threads):
//
//   source shard --read--> fused per-record stages --route by key--> lane (batcher)
//       --close--> run side: lane_job (handler + failure policies) --> checkpoint tracker
//
// poll() reads a shard, runs the fused stages, routes records to lanes (S-3.1) and closes
// batches (S-2); the driver decides which thread runs a lane whose batch closed. With a
// per-record sink (invoke(fn) where fn takes one record, no batching), poll() calls fn in the
// read loop itself: no lane, no batch. The checkpoint of a shard is derived from the reader's
// position and each lane's oldest unfinished record (S-3.3).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "sluice/checkpoint.hpp"
#include "sluice/detail/filter/addressing.hpp"
#include "sluice/detail/pipeline/checkpoint_tracker.hpp"
#include "sluice/detail/pipeline/fused_stages.hpp"
#include "sluice/detail/pipeline/lane.hpp"
#include "sluice/detail/pipeline/lane_job.hpp"
#include "sluice/detail/pipeline/limiter.hpp"
#include "sluice/detail/pipeline/window.hpp"
#include "sluice/error.hpp"
#include "sluice/events.hpp"
#include "sluice/hash.hpp"
#include "sluice/mapping.hpp"
#include "sluice/metrics.hpp"
#include "sluice/options.hpp"
#include "sluice/traits.hpp"

SLUICE_BEGIN_NAMESPACE

namespace detail {

template <class M, bool HasDestination = mapping_traits<M>::has_destination>
struct destination_of {
  using type = void;
};
template <class M>
struct destination_of<M, true> {
  using type =
      std::remove_reference_t<decltype(mapping_traits<M>::destination(std::declval<M&>()))>;
};

/// A stand-in span callback, to ask whether a source has read_spans().
struct span_probe {
  template <class R>
  std::size_t operator()(const R*, const R*) const noexcept {
    return 0;
  }
};

/// A source's place in a shard between reads, when it keeps one (memory_stream::cursor: reads
/// then take no lock); else nothing.
template <class S>
struct read_cursor_of {
  struct type {};
};
template <class S>
requires requires { typename S::cursor; }
struct read_cursor_of<S> {
  using type = typename S::cursor;
};

/// A filter or transform threw on a record: what the error and the on-failure record say.
template <class R>
struct stage_failure_of {
  std::exception_ptr error;
  sequence_number_t sequence = 0;
  std::string key;
  time_point arrival{};
  std::optional<R> record;  // when the source record is of the type the destination takes
};

/// A partition key as text, for error messages.
template <class K>
std::string describe_key(const K& key) {
  if constexpr (std::is_convertible_v<const K&, std::string_view>)
    return std::string(std::string_view(key));
  else if constexpr (std::is_integral_v<K>)
    return std::to_string(key);
  else
    return "(a key of a type with no text form)";
}

/// What one pass over a shard did.
struct poll_result {
  bool progress = false;  // records were read or batches closed
  bool more = false;      // the pass read a whole chunk: there is likely more to read now
  bool blocked = false;   // the pass stopped at a full lane whose batch is in flight
};

template <class M, class Clock, class Store, class Traits = default_runtime_traits>
class engine {
 public:
  using traits = mapping_traits<M>;
  using record_type = typename M::record_type;
  using source_type = typename M::source_type;
  using source_record = typename M::source_record;
  static constexpr bool windowed = traits::has_window;  // S-7 (window.hpp)
  using policies = policy_set<traits::has_bisect, traits::has_report,
                              typename destination_of<M>::type, windowed>;
  using job_type = lane_job<record_type, policies>;
  static constexpr bool record_sink = traits::record_sink;
  /// The source numbers each shard's records 1, 2, 3, ... with no gaps: a gap in what a read
  /// returns is records retention trimmed before they were read (expired_unread).
  static constexpr bool gap_free = requires { requires source_type::gap_free_sequences; };
  /// The source wants to know what the mapping has checkpointed (a bounded memory_stream
  /// releases what every mapping has finished).
  static constexpr bool acknowledges = requires(source_type & src, shard_id_t id) {
    src.acknowledge(static_cast<const void*>(nullptr), id, sequence_number_t{});
    src.detach(static_cast<const void*>(nullptr));
  };
  /// Full batches can be views of the source's storage: the mapping neither filters nor
  /// transforms (a batch's records are the source's records) and the source can keep the
  /// records it hands out alive (memory_stream::pin).
  static constexpr bool view_batches =
      !windowed && std::is_same_v<record_type, source_record> &&
      per_record_count<typename M::stages_type>::value == 0 &&
      requires(source_type & src, typename read_cursor_of<source_type>::type& at) {
    { src.pin(at) } -> std::convertible_to<std::shared_ptr<const void>>;
  };
  /// The source serves only some of its shard ids (a leased shard_view serves its one shard,
  /// sluice/leases.hpp): the engine keeps state and lanes for those only, so a worker's memory
  /// follows the shards it holds, not the stream's shard count.
  static constexpr bool partial = requires(const source_type& src, shard_id_t id) {
    { src.serves(id) } -> std::convertible_to<bool>;
  };
  static constexpr std::uint32_t slots = Traits::batches_per_lane;
  static_assert(slots >= 2, "sluice::runtime_traits::batches_per_lane must be at least 2");

  struct shard_state;
  using lane = detail::lane<record_type, slots, job_type, shard_state>;

  struct shard_state {
    shard_id_t id = 0;
    sequence_number_t position = 0;  // last sequence number consumed from the source
    std::vector<std::unique_ptr<lane>> lanes;
    live_counters counters;
    std::atomic<sequence_number_t> checkpoint{0};
    sequence_number_t saved = 0;
    // A record whose per-record sink call failed, or whose failed stage could not be delivered
    // to the destination, is read again at or after this time.
    time_point retry_at{};
    // The record a filter or transform threw on in this pass (the reader's; see stage_failure).
    std::optional<stage_failure_of<record_type>> failed_stage;
    std::uint32_t read_failures = 0;  // consecutive: the back-off of retry_at
    std::uint64_t rng = 0;
    [[no_unique_address]] typename read_cursor_of<source_type>::type cursor;
    bool stage_blocked = false;  // delivering a failed stage keeps failing (blocked_lanes)
    // S-7: the window the reader's batches are in, and the window snapshot last saved.
    [[no_unique_address]] std::conditional_t<windowed, window_reader, no_window_reader> window;
    std::uint64_t window_saved = 0;
  };

  /// What lane_job reads: the handler, destination, retry settings, clock and stop flag.
  struct context {
    engine* e;
    time_point now() const { return e->clock_->now(); }
    bool stop_requested() const noexcept { return e->stop_requested(); }
    auto& handler() { return traits::handler(e->mapping_); }
    auto& destination() { return traits::destination(e->mapping_); }
    const retry_config& retry;
    const std::string& stream_name;
    event_sink* events() const noexcept { return e->events_; }
    const std::string& mapping_name() const noexcept { return e->name_; }
    /// The mapping's downstream limits (sluice/limits.hpp); only when it has some.
    limiter& limits() const noexcept requires traits::has_limits { return e->limiter_; }
    const window_config& window() const noexcept { return e->window_; }
  };

  engine(M&& m, Clock& clock, Store& store, std::string name,
         stage_error_policy stage_errors = stage_error_policy::stop, event_sink* events = nullptr)
      : mapping_(std::move(m)),
        clock_(&clock),
        store_(&store),
        name_(std::move(name)),
        batching_(traits::batching(mapping_)),
        retry_(traits::retry(mapping_)),
        stream_name_(std::string(source().name())),
        context_{this, retry_, stream_name_},
        stage_errors_(stage_errors),
        events_(events),
        limiter_(traits::limits(mapping_), clock.now()) {
    if (stage_errors_ == stage_error_policy::to_destination && !traits::has_destination)
      reject("on_stage_error", "to_destination",
             "stop, or to_destination in a mapping with sluice::on_failure(destination)");
    check_filter_addressing<false>(mapping_.stages);  // `body` is a queue's (S-9.10)
    const std::uint32_t lanes = record_sink ? 0 : traits::lanes(mapping_);
    if constexpr (windowed) {
      static_assert(window_checkpoint_store<Store>,
                    "sluice::tumbling_window needs a checkpoint store that keeps windows "
                    "(sluice::window_checkpoint_store: memory_checkpoint_store, "
                    "sluice::sqlite::checkpoint_store, sluice::redis::checkpoint_store; under "
                    "leases, a sluice::window_lease_store)");
      window_ = traits::window(mapping_);
      if (lanes != 1)
        reject("parallelization_factor", lanes,
               "1 with sluice::tumbling_window (a window and its state are a shard's, as in "
               "Lambda)");
    }
    if constexpr (requires { record_traits<record_type>::constant_payload_size; }) {
      count_bytes_ =
          std::size_t{batching_.batch_size} * record_traits<record_type>::constant_payload_size >
          batching_.maximum_payload_bytes;
    }
    const std::uint32_t n = source().shard_count();
    if constexpr (!partial) shards_.reserve(n);
    for (shard_id_t id = 0; id < n; ++id) {
      if constexpr (partial) {
        if (!source().serves(id)) continue;
      }
      auto s = std::make_unique<shard_state>();
      s->id = id;
      s->rng = std::uint64_t{id} << 32;
      const std::optional<sequence_number_t> stored = store_->load(name_, id);
      s->position = stored ? *stored : source().resolve(id, mapping_.source.position);
      s->checkpoint.store(s->position);
      s->saved = s->position;
      if constexpr (acknowledges) source().acknowledge(this, id, s->position);  // attach
      for (std::uint32_t i = 0; i < lanes; ++i) {
        s->lanes.push_back(
            std::make_unique<lane>(batching_.batch_size, (std::uint64_t{id} << 32) | i, s.get()));
      }
      if constexpr (windowed && window_checkpoint_store<Store>) restore_window(*s);
      shards_.push_back(std::move(s));
    }
  }

  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;
  ~engine() {
    if constexpr (acknowledges) source().detach(this);
  }

  time_point now() const { return clock_->now(); }
  /// The source may withdraw the mapping's right to hand batches to its handler: a leased
  /// shard_view (sluice/leases.hpp) whose lease lapsed or was lost answers may_hand(now) false.
  static constexpr bool gated = requires(source_type & src, time_point t) {
    { src.may_hand(t) } -> std::convertible_to<bool>;
  };
  /// Jobs start no new attempt or delivery once this is set (stop()), or once a gated source
  /// says no (checked before every attempt, so a lost lease stops handing batches at once).
  bool stop_requested() const noexcept {
    if (stop_ != nullptr && stop_->load(std::memory_order_relaxed)) return true;
    if constexpr (gated) {
      return !unwrap(const_cast<M&>(mapping_).source.source).may_hand(clock_->now());
    } else {
      return false;
    }
  }
  void set_stop_flag(const std::atomic<bool>* stop) noexcept { stop_ = stop; }
  /// With window 0 and a read stopped at a full lane, whether a lane with nothing to run takes
  /// its partial batch at once (poll). On for the threaded runtimes (sluice::start, simulate):
  /// a slow lane must not hold it up. sluice::run turns it off: it runs every lane to completion
  /// before it reads again, so there is no slow lane to wait for and batches fill more.
  void isolate_idle_lanes(bool on) noexcept { isolate_idle_lanes_ = on; }
  /// A stop was requested: calls waiting for a concurrency permit give up (they are abandoned,
  /// as on stop).
  void interrupt_limits() {
    if constexpr (traits::has_limits) limiter_.interrupt();
  }

  source_type& source() { return unwrap(mapping_.source.source); }
  /// The shards the mapping serves, by increasing id (every shard unless the source is partial:
  /// then a shard's index is not its id).
  std::vector<std::unique_ptr<shard_state>>& shards() noexcept { return shards_; }
  Clock& clock() noexcept { return *clock_; }
  const std::string& name() const noexcept { return name_; }
  const batching_config& batching() const noexcept { return batching_; }
  /// Reads the shard on from its read position, through its cursor when the source keeps one.
  template <class Visit>
  std::size_t read_on(shard_state& s, std::size_t max, Visit&& visit) {
    if constexpr (requires { source().read(s.cursor, s.id, s.position, max, visit); })
      return source().read(s.cursor, s.id, s.position, max, std::forward<Visit>(visit));
    else
      return source().read(s.id, s.position, max, std::forward<Visit>(visit));
  }
  template <class OnSpan>
  std::size_t read_spans_on(shard_state& s, std::size_t max, OnSpan&& on_span) {
    if constexpr (requires { source().read_spans(s.cursor, s.id, s.position, max, on_span); })
      return source().read_spans(s.cursor, s.id, s.position, max, std::forward<OnSpan>(on_span));
    else
      return source().read_spans(s.id, s.position, max, std::forward<OnSpan>(on_span));
  }
  /// Records one pass reads from a shard.
  std::size_t chunk() const noexcept {
    return std::max<std::size_t>(Traits::read_chunk, batching_.batch_size);
  }

  /// Reads up to chunk() records of a shard into its lanes. Lanes whose batch closed and that
  /// the caller now owns are appended to `claimed` (the driver runs them). `next_deadline` is
  /// lowered to the earliest open batching window or sink retry. With `flush`, open windows
  /// close now.
  ///
  /// Backpressure and isolation: when a record's lane is full and its batch is in flight, the
  /// reader stops (a slow handler slows the reader). But when that batch is being retried, the
  /// lane is bypassed instead: the reader goes on with the other lanes, the bypassed lane
  /// re-reads its own records from the source once it is free (catch_up), and the checkpoint
  /// stays below the first record it skipped (S-3.3 failure isolation with bounded memory).
  poll_result poll(shard_state& s, time_point now, std::vector<lane*>& claimed,
                   time_point& next_deadline, bool flush = false) {
    if constexpr (record_sink) {
      return poll_sink(s, now, next_deadline);
    } else {
      // S-2.3: with window 0 a batch is what is available now, so a partial batch waits until
      // the reader has taken everything the source holds (a read shorter than the chunk).
      const bool zero_window = batching_.maximum_batching_window == duration::zero();
      std::size_t chunk = this->chunk();
      poll_result result;
      if (now < s.retry_at) [[unlikely]] {  // a failed stage waits for its destination
        next_deadline = std::min(next_deadline, s.retry_at);
        return result;
      }
      result.progress = close_ready(s, now, claimed, flush, !zero_window);
      read_counts counts;
      for (auto& l : s.lanes) {
        if (l->bypassed_from != 0 && l->can_close())
          result.progress |= catch_up(s, *l, now, claimed, chunk, counts);
      }
      bool blocked = false;
      sequence_number_t position = s.position;  // locals in the per-record loop
      std::uint64_t skipped = 0, filtered = 0;  // per record only these; polled is derived
      std::uint64_t expired = 0;                // records trimmed before they were read
      const bool one_lane = s.lanes.size() == 1;
      if constexpr (view_batches) {
        if (one_lane) {  // end the pass on a batch boundary: the next one starts with whole batches
          const std::size_t cap = s.lanes[0]->capacity(), filled = s.lanes[0]->fill_n();
          chunk = (filled + chunk + cap - 1) / cap * cap - filled;
        }
      }
      const bool count_bytes = count_bytes_;  // a local: not reloaded per record
      // pick(r) gives the record's lane and the fill cursor to use: with one lane a local copy
      // (kept in registers for the whole read, written back after it), else the lane's own.
      auto read_with = [&](auto&& pick) {
        return read_on(
            s, chunk, [&](const source_record& r) __attribute__((always_inline))->bool {
              auto [l, cur] = pick(r);
              const sequence_number_t seq = sluice::sequence_number(r);
              if constexpr (gap_free) {
                if (seq > position + 1) [[unlikely]]
                  expired += seq - position - 1;
              }
              if (one_lane || l.bypassed_from == 0) [[likely]] {  // one lane is never bypassed
                const offer_result taken = offer(l, cur, r, now, claimed, count_bytes);
                if (taken == offer_result::failed) [[unlikely]]
                  return false;  // not consumed: the pass stops here (deliver_stage_failure)
                if (taken == offer_result::blocked) [[unlikely]] {
                  // Backpressure, unless the lane is retrying and other lanes can use the reader.
                  if (one_lane || !l.retrying.load(std::memory_order_acquire)) {
                    blocked = true;
                    return false;
                  }
                  l.bypassed_from = seq;
                  ++skipped;
                } else if (taken == offer_result::filtered) {
                  ++filtered;  // S-6.1: finished at once
                }
              } else {
                ++skipped;  // the bypassed lane reads it again itself (catch_up)
              }
              position = seq;
              return true;
            });
      };
      using picked = std::pair<lane&, typename lane::cursor&>;
      std::size_t consumed = 0;
      bool spans_read = false;
      if constexpr (requires { source().read_spans(s.id, s.position, chunk, span_probe{}); }) {
        if (one_lane) {  // contiguous records into one lane: a plain pointer loop
          spans_read = true;
          lane& l = *s.lanes[0];
          consumed =
              read_spans_on(s, chunk, [&](const source_record* first, const source_record* last) {
                typename lane::cursor cur = l.fill;
                std::uint64_t dropped = 0;  // filtered in this span
                if constexpr (gap_free) {
                  if (first != last && sluice::sequence_number(*first) > position + 1) [[unlikely]]
                    expired += sluice::sequence_number(*first) - position - 1;
                }
                const source_record* p = first;
                for (; p != last; ++p) {
                  if constexpr (view_batches) {
                    // A whole batch here, nothing being filled: close it in place, no copy;
                    // with the ring full, wait for a slot (rather than copy it to fill ahead).
                    if (cur.empty() && static_cast<std::size_t>(last - p) >= l.capacity() &&
                        fits_bytes(p, l.capacity(), count_bytes)) {
                      if (!l.can_close()) {
                        blocked = true;
                        break;
                      }
                      if (l.close_view(p, source().pin(s.cursor))) claimed.push_back(&l);
                      cur = l.fill;
                      p += l.capacity() - 1;
                      continue;
                    }
                  }
                  const offer_result taken = offer(l, cur, *p, now, claimed, count_bytes);
                  if (taken == offer_result::blocked || taken == offer_result::failed)
                      [[unlikely]] {
                    blocked = taken == offer_result::blocked;
                    break;
                  }
                  if (taken == offer_result::filtered) ++dropped;
                }
                filtered += dropped;
                l.fill = cur;
                if (p != first) position = sluice::sequence_number(p[-1]);
                return static_cast<std::size_t>(p - first);
              });
        }
      }
      if (spans_read) {
        // read above
      } else if (one_lane) {
        lane& l = *s.lanes[0];
        typename lane::cursor cur = l.fill;
        struct write_back {  // also if the source throws mid-read
          lane& l;
          typename lane::cursor& cur;
          ~write_back() { l.fill = cur; }
        } guard{l, cur};
        consumed = read_with([&](const source_record&) __attribute__((always_inline)) {
          return picked{l, cur};
        });
      } else {
        consumed = read_with([&](const source_record& r) {
          lane& l = route(s, r);
          return picked{l, l.fill};
        });
      }
      counts.polled += consumed - skipped;
      counts.filtered += filtered;
      if (expired > 0) live_counters::add(s.counters.expired_unread, expired);
      s.position = position;
      if (consumed > 0) result.progress = true;
      result.more = consumed >= chunk;
      result.blocked = blocked;
      counts.flush(s.counters);
      if (s.failed_stage) [[unlikely]] {
        if (deliver_stage_failure(s, now, next_deadline)) {  // else: read again after back-off
          result.progress = true;
          result.more = true;
        }
      }
      // S-2.3 with window 0: a read that stopped at a full lane (backpressure) has not taken
      // everything available, the source holds more for the other lanes too, so the partial
      // batches of busy lanes go on filling (a full batch closes at once; a lane's progress
      // wakes the reader). Closing them would cut every batch of a backlogged shard short behind
      // its slowest lane and spend a downstream call per fragment (benchmarks/limits_bench). A
      // lane with nothing to run gets its partial batch at once: it must not wait for the slow
      // lane (S-3.3, tests/concurrency/lane_isolation_test.cpp).
      result.progress |= close_ready(s, now, claimed, flush, !zero_window || consumed < chunk,
                                     zero_window && blocked);
      if constexpr (windowed) {  // idle counts only once the reader has read all there is
        if (consumed < chunk && !blocked)
          result.progress |= end_idle_window(s, now, claimed, next_deadline);
      }
      // A full ring's progress wakes the poller; no deadline needed. Neither for the partial
      // batches of busy lanes a stopped read keeps filling (window 0): their deadline has passed,
      // and their lane's progress wakes the reader (as a deadline it would spin the reader).
      if (!(zero_window && blocked)) {
        for (auto& l : s.lanes) {
          if (l->fill_n() > 0 && l->can_close())
            next_deadline = std::min(next_deadline, l->fill_deadline);
        }
      }
      return result;
    }
  }

  struct job_result {
    bool done;              // the batch is finished (or abandoned on stop: then !more)
    bool more;              // done, and the lane's next batch is current: run the lane again
    time_point wait_until;  // when !done: run again at or after this time
  };

  /// Runs the lane's current batch until it is finished or must wait. When finished, the
  /// caller goes on to the next closed batch itself (`more`) or the lane is released.
  job_result run_job(lane& l) {
    if constexpr (record_sink) {  // no lanes: never called
      (void)l;
      return {true, false, {}};
    } else {
      typename lane::slot& current = l.current();
      if (!l.job.started()) l.job.begin(current.records(), l.shard->id);
      auto publish = [&current](std::size_t finished) {
        current.unfinished.store(finished < current.n
                                     ? sluice::sequence_number(current.records()[finished])
                                     : none_in_flight,
                                 std::memory_order_release);
      };
      const step_result r = l.job.step(context_, l.shard->counters, publish);
      // A lane waiting for rate-limit tokens is not retrying: its reader waits for it (the
      // rate limit's backpressure) rather than bypassing it.
      l.retrying.store(!r.done && !r.paced, std::memory_order_release);
      if (!r.done) return {false, false, r.wait_until};
      l.job.end();
      return {true, l.finish(), {}};
    }
  }

  /// S-3.3 (checkpoint_tracker.hpp). Called by the shard's reader.
  sequence_number_t checkpoint_of(shard_state& s) { return finished_through(s.position, s.lanes); }

  /// Publishes and stores the shard's checkpoint if it advanced. Returns whether it did.
  bool update_checkpoint(shard_state& s) {
    if constexpr (windowed) return update_window_checkpoint(s);
    const sequence_number_t cp = checkpoint_of(s);
    if (cp <= s.saved) return false;
    if (events_ == nullptr) [[likely]] {
      store_->save(name_, s.id, cp);
    } else {
      try {
        store_->save(name_, s.id, cp);
      } catch (...) {
        raise_checkpoint_failed(s, cp, std::current_exception());
        throw;
      }
    }
    s.saved = cp;
    if constexpr (acknowledges) source().acknowledge(this, s.id, cp);
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
      // Lag in records needs gap-free numbering (and a source safe to ask from any thread).
      if constexpr (gap_free)
        sm.last_sequence = unwrap(mapping_.source.source).last_sequence(s->id);
      m.total += sm.counters;
      m.shards.push_back(sm);
    }
    const auto& t = m.total;
    const std::uint64_t done = t.filtered_out_event_count + t.succeeded_event_count +
                               t.on_failure_destination_delivered_event_count +
                               t.dropped_event_count;
    m.buffered_records = t.polled_event_count > done ? t.polled_event_count - done : 0;
    if constexpr (traits::has_limits) m.limits = limiter_.snapshot();
    return m;
  }

  /// The most records the mapping can hold between the source and the handler.
  std::size_t buffer_bound() const {
    if constexpr (record_sink) {
      return 0;
    } else {
      return shards_.size() * traits::lanes(const_cast<M&>(mapping_)) * slots *
             batching_.batch_size;
    }
  }

  /// S-7: when the shard's open window's idle final is due (far_future: no open window).
  time_point window_due(const shard_state& s) const {
    if constexpr (windowed) {
      if (!s.window.open) return far_future;
      return std::max(s.window.start + window_.length, s.window.last_seen + window_.idle_timeout);
    } else {
      (void)s;
      return far_future;
    }
  }

 private:
  // ---- S-7 tumbling windows (window.hpp, docs/windows.md) ----

  /// A windowed mapping resumes the window its store kept with the checkpoint.
  void restore_window(shard_state& s) {
    if (auto w = store_->load_window(name_, s.id)) {
      s.window = window_reader{true, w->start, clock_->now()};
      s.lanes[0]->job.restore_window(*w);
    }
  }

  /// Before r joins lane l's filling batch: a record of another window closes the batch
  /// first. False: it cannot close now (the ring is full); r waits.
  bool enter_window(lane& l, typename lane::cursor& cur, const source_record& r, time_point now,
                    std::vector<lane*>& claimed) {
    const time_point w = window_start_of(sluice::arrival_time(r), window_.length);
    window_reader& rw = l.shard->window;
    if (rw.open && rw.start != w && !cur.empty()) {
      if (!l.can_close()) return false;
      cur = close_at(l, cur, claimed);
    }
    rw.open = true;
    rw.start = w;
    rw.last_seen = now;
    return true;
  }

  /// No record came for the idle time (and the window is over) while the reader is at the end
  /// of the shard: its batch closes, then a marker asks the run side for the final invocation.
  bool end_idle_window(shard_state& s, time_point now, std::vector<lane*>& claimed,
                       time_point& next_deadline) {
    const time_point due = window_due(s);
    if (due == far_future) return false;
    if (now < due) {
      next_deadline = std::min(next_deadline, due);
      return false;
    }
    lane& l = *s.lanes[0];
    if (!l.can_close()) return false;  // the run side's progress wakes the reader
    if (l.fill_n() > 0) {
      close(l, claimed);
      if (!l.can_close()) return true;
    }
    if (l.close_marker()) claimed.push_back(&l);
    s.window.open = false;
    return true;
  }

  /// The checkpoint and the open window, saved together. The window's last record is finished
  /// (one lane, in order), so the checkpoint is at least there; the snapshot is read after the
  /// checkpoint, so it covers every finished record of the window.
  bool update_window_checkpoint(shard_state& s) {
    if constexpr (window_checkpoint_store<Store>) {
      const sequence_number_t derived = checkpoint_of(s);
      const window_snapshot w = s.lanes[0]->job.window_published();
      const sequence_number_t cp = std::max({derived, w.through, s.saved});
      if (cp == s.saved && w.version == s.window_saved) return false;
      try {
        store_->save(name_, s.id, cp, w.window.get());
      } catch (...) {
        if (events_ != nullptr) raise_checkpoint_failed(s, cp, std::current_exception());
        throw;
      }
      s.window_saved = w.version;
      if (cp == s.saved) return false;
      s.saved = cp;
      if constexpr (acknowledges) source().acknowledge(this, s.id, cp);
      s.checkpoint.store(cp, std::memory_order_seq_cst);
      return true;
    } else {
      (void)s;
      return false;
    }
  }

  lane& route(shard_state& s, const source_record& r) {
    const auto lanes = static_cast<std::uint32_t>(s.lanes.size());
    return *s.lanes[lane_for(key_hash(sluice::partition_key(r)), lanes)];
  }

  enum class offer_result { taken, filtered, blocked, failed };

  struct read_counts {
    std::uint64_t polled = 0;
    std::uint64_t filtered = 0;
    void add(offer_result r) noexcept {
      ++polled;
      if (r == offer_result::filtered) ++filtered;  // S-6.1: finished at once
    }
    void flush(live_counters& c) noexcept {
      if (polled > 0) live_counters::add(c.polled, polled);
      if (filtered > 0) live_counters::add(c.filtered_out, filtered);
    }
  };

  /// Closes the lane's filling batch; a lane the caller now owns goes to `claimed`.
  static void close(lane& l, std::vector<lane*>& claimed) {
    l.fill_bytes = 0;
    l.fill_deadline = far_future;
    if (l.close()) claimed.push_back(&l);
  }

  /// Runs the fused per-record stages on r and builds the result in lane l's filling batch,
  /// closing batches on size and bytes (S-2.1). `blocked`: l cannot take it now (full, and its
  /// batch in flight).
  [[gnu::always_inline]] offer_result offer(lane& l, typename lane::cursor& cur,
                                            const source_record& r, time_point now,
                                            std::vector<lane*>& claimed, bool count_bytes) {
    if (cur.full()) [[unlikely]] {  // full, or closed early by the byte cap
      if (!l.can_close()) return offer_result::blocked;
      cur = close_at(l, cur, claimed);
    }
    bool refused = false;
    auto emit = [&](auto&& make) __attribute__((always_inline))->bool {
      if constexpr (windowed) {  // S-7: a batch never spans two windows
        if (!enter_window(l, cur, r, now, claimed)) {
          refused = true;
          return false;
        }
      }
      if (cur.empty()) [[unlikely]] {
        l.fill_front = sluice::sequence_number(r);
        l.fill_deadline = now + batching_.maximum_batching_window;
      }
      cur.emplace(make);
      if (count_bytes) {  // S-2.1's byte cap: a sum per record, the rest out of line
        const std::size_t bytes = sluice::payload_size_bytes(cur.back());
        if (cur.n() > 1 && l.fill_bytes + bytes > batching_.maximum_payload_bytes) [[unlikely]] {
          const auto [after, kept] =
              over_byte_cap(l, cur, sluice::sequence_number(r), now, claimed);
          cur = after;
          if (!kept) {
            refused = true;
            return false;
          }
        }
        l.fill_bytes += bytes;
      }
      if (cur.full()) [[unlikely]] {
        if (l.can_close()) cur = close_at(l, cur, claimed);
      }
      return true;
    };
    bool taken = false;
    try {
      taken = run_per_record<0>(mapping_.stages, r, emit);
    } catch (...) {
      note_stage_failure(*l.shard, r);
      return offer_result::failed;
    }
    if (taken) return offer_result::taken;
    return refused ? offer_result::blocked : offer_result::filtered;
  }

  /// The n records from `first` stay under S-2.1's byte cap together (a view batch).
  bool fits_bytes(const source_record* first, std::size_t n, bool count_bytes) const {
    if (!count_bytes) return true;
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < n; ++i) bytes += sluice::payload_size_bytes(first[i]);
    return bytes <= batching_.maximum_payload_bytes;
  }

  /// S-2.1's byte cap, for the record just built, which does not fit its batch: it starts the
  /// next batch, or (the ring being full) is taken back and the batch ends here (its cursor's
  /// end is pulled in to its position, so it counts as full). Returns the cursor and whether
  /// the record stayed (the caller then counts its bytes). Cursors go by value so that a local
  /// one never has its address taken.
  [[gnu::noinline]] std::pair<typename lane::cursor, bool> over_byte_cap(
      lane& l, typename lane::cursor cur, sequence_number_t seq, time_point now,
      std::vector<lane*>& claimed) {
    if (!l.can_close()) {
      cur.pop_back();
      cur.end = cur.pos;
      return {cur, false};
    }
    record_type last = std::move(cur.back());
    cur.pop_back();
    cur = close_at(l, cur, claimed);
    l.fill_front = seq;
    l.fill_deadline = now + batching_.maximum_batching_window;
    cur.emplace([&]() -> record_type { return std::move(last); });
    return {cur, true};
  }

  /// Closes with a cursor that may be a local copy of the lane's: synced around the close.
  /// Taken and returned by value, so a local cursor's address never escapes the read loop and
  /// the compiler can keep it in registers.
  [[gnu::noinline]] static typename lane::cursor close_at(lane& l, typename lane::cursor cur,
                                                          std::vector<lane*>& claimed) {
    l.fill = cur;
    close(l, claimed);
    return l.fill;
  }

  /// A bypassed lane reads its own records again, from the first one it skipped up to the
  /// shard's read position; it rejoins the shared read when it gets there.
  bool catch_up(shard_state& s, lane& l, time_point now, std::vector<lane*>& claimed,
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
          const offer_result taken = offer(l, l.fill, r, now, claimed, count_bytes_);
          if (taken == offer_result::failed) {
            time_point next = far_future;
            if (!deliver_stage_failure(s, now, next)) {
              blocked = true;  // read again from here after back-off
              return false;
            }
            cursor = seq;  // finished: in the destination (counted there)
            moved = true;
            return true;
          }
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

  /// The one place a partly filled batch closes: full, over the byte cap, flushed, or (when
  /// `window_may_close`, and the lane has nothing to run if `backlogged`) past its batching
  /// window; only when the lane's ring has room.
  bool close_ready(shard_state& s, time_point now, std::vector<lane*>& claimed, bool flush,
                   bool window_may_close, bool backlogged = false) {
    bool any = false;
    for (auto& lp : s.lanes) {
      lane& l = *lp;
      if (l.fill_n() == 0 || !l.can_close()) continue;
      if (flush || l.full() ||
          (window_may_close && (!backlogged || (isolate_idle_lanes_ && l.closed_batches() == 0)) &&
           now >= l.fill_deadline)) {
        close(l, claimed);
        any = true;
      }
    }
    return any;
  }

  /// A filter or transform threw on r (called from a catch block): remember it for
  /// deliver_stage_failure, which runs once the read has stopped at r.
  [[gnu::noinline]] void note_stage_failure(shard_state& s, const source_record& r) {
    s.failed_stage = stage_failure_of<record_type>{
        std::current_exception(), sluice::sequence_number(r),
        describe_key(sluice::partition_key(r)), sluice::arrival_time(r), std::nullopt};
    if constexpr (std::is_constructible_v<record_type, const source_record&>)
      s.failed_stage->record.emplace(r);
  }

  /// The record s.failed_stage names has met a throwing stage: stops the mapping with a
  /// sluice::stage_error (policy stop), or delivers it to the on-failure destination (policy
  /// to_destination) and returns true; false when that delivery failed (S-5.8: read it again
  /// after back-off, the checkpoint stays below it).
  [[gnu::noinline]] bool deliver_stage_failure(shard_state& s, time_point now,
                                               time_point& next_deadline) {
    stage_failure_of<record_type> f = std::move(*s.failed_stage);
    s.failed_stage.reset();
    const error_info err = describe(f.error);
    const std::string& type = err.type;
    const std::string& message = err.message;
    if (stage_errors_ == stage_error_policy::stop) {
      const std::string what = "sluice: a filter or transform threw on shard " +
                               std::to_string(s.id) + ", sequence " + std::to_string(f.sequence) +
                               ", key \"" + f.key + "\": " + type + ": " + message;
      try {
        std::rethrow_exception(f.error);
      } catch (...) {
        std::throw_with_nested(stage_error(s.id, f.sequence, f.key, what));
      }
    }
    if constexpr (traits::has_destination) {
      on_failure_record<record_type> rec;
      rec.condition = failure_condition::stage_failed;
      rec.error_type = type;
      rec.error_message = message;
      rec.stream_name = stream_name_;
      rec.shard_id = s.id;
      rec.start_sequence_number = rec.end_sequence_number = f.sequence;
      rec.approximate_arrival_of_first_record = rec.approximate_arrival_of_last_record = f.arrival;
      rec.batch_size = 1;
      rec.timestamp = now;
      if (f.record) {
        rec.records.push_back(std::move(*f.record));
        rec.reported_failed.push_back(false);
      }
      if (events_ != nullptr && !s.stage_blocked) [[unlikely]]  // once, not per redelivery
        raise(event_kind::batch_discarded, s, f.sequence, now, type, message, &rec);
      if (const auto again = deliver_or_back_off(
              traits::destination(mapping_), rec, s.counters, now, retry_.backoff, s.read_failures,
              s.rng, s.stage_blocked, [&](event_kind kind, const error_info* error) {
                if (events_ != nullptr) [[unlikely]]
                  raise(kind, s, f.sequence, now, error ? error->type : std::string_view(),
                        error ? error->message : std::string_view(), &rec);
              })) {
        s.retry_at = *again;
        next_deadline = std::min(next_deadline, s.retry_at);
        return false;
      }
      s.read_failures = 0;
      live_counters::add(s.counters.polled, 1);
      if (f.sequence > s.position) s.position = f.sequence;
      return true;
    } else {
      return false;  // not reached: the constructor requires a destination for to_destination
    }
  }

  /// An event about a failed stage's record (sequence `seq` of shard s).
  template <class Rec>
  [[gnu::noinline]] void raise(event_kind kind, const shard_state& s, sequence_number_t seq,
                               time_point now, std::string_view error_type,
                               std::string_view error_message, const Rec* rec) {
    event e;
    e.kind = kind;
    e.time = now;
    e.mapping = name_;
    e.shard = s.id;
    e.first_sequence = e.last_sequence = seq;
    e.records = 1;
    e.condition = to_string(rec->condition);
    e.error_type = error_type;
    e.error_message = error_message;
    events_->on_event(e);
  }

  [[gnu::noinline]] void raise_checkpoint_failed(const shard_state& s, sequence_number_t cp,
                                                 const std::exception_ptr& error) {
    const error_info info = describe(error);
    event e;
    e.kind = event_kind::checkpoint_failed;
    e.time = clock_->now();
    e.mapping = name_;
    e.shard = s.id;
    e.first_sequence = e.last_sequence = cp;
    e.error_type = info.type;
    e.error_message = info.message;
    events_->on_event(e);
  }

  /// The per-record sink: the handler is called in the read loop, record by record, in
  /// sequence order. A call that throws stops the pass at that record: it is read again after
  /// back-off (S-5.6; a per-record sink retries forever, as a batch of one with no retry stage
  /// would), and the checkpoint stays below it.
  poll_result poll_sink(shard_state& s, time_point now, time_point& next_deadline) {
    poll_result result;
    if (now < s.retry_at) {
      next_deadline = std::min(next_deadline, s.retry_at);
      return result;
    }
    auto& fn = traits::handler(mapping_);
    std::uint64_t filtered = 0;  // per record only this; the rest is derived from `consumed`
    bool failed = false;
    sequence_number_t position = s.position;
    auto call = [&](auto&& make) -> bool {
      try {
        call_on_record(fn, make());
      } catch (...) {
        failed = true;
        return false;
      }
      return true;
    };
    std::uint64_t expired = 0;
    auto visit = [&](const source_record& r) -> bool {
      if constexpr (gap_free) {
        if (sluice::sequence_number(r) > position + 1) [[unlikely]]
          expired += sluice::sequence_number(r) - position - 1;
      }
      bool kept = false;
      try {
        kept = run_per_record<0>(mapping_.stages, r, call);
      } catch (...) {  // a filter or transform (the sink's own errors are caught in call)
        note_stage_failure(s, r);
        return false;
      }
      if (!kept) [[unlikely]] {
        if (failed) return false;  // not consumed: read again after back-off
        ++filtered;
      }
      position = sluice::sequence_number(r);
      return true;
    };
    const std::size_t consumed = read_on(s, chunk(), visit);
    s.position = position;
    if (s.failed_stage) [[unlikely]] {
      if (deliver_stage_failure(s, now, next_deadline)) result.more = true;
      result.progress = true;
    }
    auto& c = s.counters;
    // Every consumed record was polled; those not filtered were handed to fn and succeeded.
    const std::uint64_t succeeded = consumed - filtered;
    const std::uint64_t invoked = succeeded + (failed ? 1 : 0);
    if (consumed > 0) live_counters::add(c.polled, consumed);
    if (filtered > 0) live_counters::add(c.filtered_out, filtered);
    if (expired > 0) live_counters::add(c.expired_unread, expired);
    if (invoked > 0) {
      live_counters::add(c.invocations, invoked);
      live_counters::add(c.invoked, invoked);
      live_counters::add(c.succeeded, succeeded);
    }
    if (failed) {
      live_counters::add(c.function_errors, 1);
      live_counters::add(c.failed_invoke, 1);
      ++s.read_failures;
      s.retry_at = now + retry_.backoff.delay(s.read_failures, splitmix64(s.rng));
      next_deadline = std::min(next_deadline, s.retry_at);
    } else if (consumed > 0) {
      s.read_failures = 0;
    }
    result.progress |= consumed > 0;
    result.more |= !failed && consumed >= chunk();
    return result;
  }

  M mapping_;
  Clock* clock_;
  Store* store_;
  std::string name_;
  batching_config batching_;
  std::vector<std::unique_ptr<shard_state>> shards_;
  const std::atomic<bool>* stop_ = nullptr;
  bool isolate_idle_lanes_ = true;
  // False when every payload has the same size and a full batch stays under the cap: then the
  // per-record byte accounting cannot close a batch and is skipped.
  bool count_bytes_ = true;
  const retry_config retry_;
  const std::string stream_name_;
  context context_;
  stage_error_policy stage_errors_;
  event_sink* events_;    // sluice::events(sink), or null
  window_config window_;  // S-7, with sluice::tumbling_window
  struct no_limiter {
    no_limiter(const limits_config&, time_point) noexcept {}
  };
  // The mapping's downstream limits, shared by its lanes (nothing without limit stages).
  [[no_unique_address]] std::conditional_t<traits::has_limits, limiter, no_limiter> limiter_;
};

}  // namespace detail
SLUICE_END_NAMESPACE
