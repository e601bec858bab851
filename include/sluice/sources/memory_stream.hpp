// sluice/sources/memory_stream.hpp: an in-memory sharded stream in the manner of a Kinesis
// stream, for tests, benchmarks and examples. put() is safe from many producer threads (one
// mutex per shard); each shard numbers its records 1, 2, 3, ...; arrival times come from the
// injected clock and never go backwards within a shard; retention trims by age and by count.
// Records live in append-only chunks: a reader visits them in place, outside the lock.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/clock.hpp"
#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/hash.hpp"
#include "sluice/record.hpp"
#include "sluice/source.hpp"

SLUICE_BEGIN_NAMESPACE

struct stream_options {
  std::uint32_t shards = 1;
  /// Records older than this are trimmed (Kinesis: 24 h by default). nullopt = keep forever.
  std::optional<duration> retention_age;
  /// At most this many records are kept per shard; the oldest are trimmed first.
  std::size_t retention_count = std::numeric_limits<std::size_t>::max();
  std::string name = "memory-stream";
  /// Capacity per shard, in records and in payload bytes (default: unbounded). A shard at
  /// capacity makes put() wait and try_put() fail until space is freed: records that every
  /// mapping reading the stream has checkpointed are released at once when a capacity is set
  /// (so the stream is a bounded buffer between producers and mappings), and retention frees
  /// space too. A record larger than capacity_bytes is admitted into an empty shard.
  std::size_t capacity_records = std::numeric_limits<std::size_t>::max();
  std::size_t capacity_bytes = std::numeric_limits<std::size_t>::max();
  /// Called (under the shard's lock: do not call back into the stream) when retention trims
  /// records no reader has read yet, with the shard and the first and last sequence numbers of
  /// the range. They are also counted (expired_unread()).
  std::function<void(shard_id_t, sequence_number_t, sequence_number_t)> on_expired_unread = {};
};

struct put_result {
  shard_id_t shard;
  sequence_number_t sequence;
};

template <class Payload, class Key = std::string, clock_type Clock = system_clock>
class memory_stream {
  struct chunk;

 public:
  using record_type = record<Payload, Key>;
  /// Each shard numbers its records 1, 2, 3, ... without gaps.
  static constexpr bool gap_free_sequences = true;

  explicit memory_stream(std::uint32_t shards) requires std::same_as<Clock, system_clock>
      : memory_stream(stream_options{.shards = shards, .retention_age = std::nullopt},
                      system_clock::instance()) {}
  memory_stream(std::uint32_t shards, Clock& clock)
      : memory_stream(stream_options{.shards = shards, .retention_age = std::nullopt}, clock) {}
  memory_stream(stream_options options, Clock& clock)
      : options_(std::move(options)), clock_(&clock) {
    detail::require_in_range<std::uint32_t>("shards", options_.shards, 1, 1u << 20, "1..1048576");
    if (options_.retention_count == 0) detail::reject("retention_count", 0, ">= 1");
    if (options_.capacity_records == 0) detail::reject("capacity_records", 0, ">= 1");
    if (options_.capacity_bytes == 0) detail::reject("capacity_bytes", 0, ">= 1");
    if (options_.retention_age && *options_.retention_age <= duration::zero())
      detail::reject("retention_age (ns)", options_.retention_age->count(), "> 0");
    shards_.reserve(options_.shards);
    for (std::uint32_t i = 0; i < options_.shards; ++i)
      shards_.push_back(std::make_unique<shard>(i));
  }

  memory_stream(const memory_stream&) = delete;
  memory_stream& operator=(const memory_stream&) = delete;

  /// Appends a record to the shard of its key; returns where it landed. With a capacity, waits
  /// while the shard is full (backpressure: a slow mapping slows its producers), except on a
  /// thread of a mapping that reads this stream (a handler putting back into its own input):
  /// that put is admitted at once, since waiting would wait for itself.
  put_result put(Key key, Payload payload) {
    return *put_impl(std::move(key), std::move(payload), true);
  }
  /// As put(), but fails (nullopt) instead of waiting when the shard is at capacity.
  std::optional<put_result> try_put(Key key, Payload payload) {
    return put_impl(std::move(key), std::move(payload), false);
  }

  /// Appends several records (like Kinesis PutRecords): the records of each shard are appended
  /// in the given order and become visible to readers together, so a reader sees all of a
  /// shard's records of the call or none. Returns where each landed, in input order.
  template <class Range>
  std::vector<put_result> put_many(Range&& entries) {
    std::vector<put_result> where;
    std::vector<std::vector<std::size_t>> by_shard(options_.shards);
    std::vector<std::pair<Key, Payload>> items;
    for (auto&& [key, payload] : entries) items.emplace_back(key, payload);
    where.resize(items.size());
    for (std::size_t i = 0; i < items.size(); ++i)
      by_shard[shard_for(key_hash(items[i].first), options_.shards)].push_back(i);
    for (shard_id_t id = 0; id < options_.shards; ++id) {
      if (by_shard[id].empty()) continue;
      shard& s = *shards_[id];
      {
        std::unique_lock lock(s.mutex);
        std::size_t bytes = 0;
        for (std::size_t i : by_shard[id]) bytes += payload_bytes(items[i].second);
        wait_for_room(s, lock, by_shard[id].size(), bytes);
        for (std::size_t i : by_shard[id]) {
          where[i] = {id, append_locked(s, std::move(items[i].first), std::move(items[i].second))};
        }
        publish_locked(s);
        trim_locked(s);
        for (data_listener* l : s.listeners) l->on_data(id);
      }
    }
    return where;
  }

  std::uint32_t shard_count() const noexcept { return options_.shards; }
  std::string_view name() const noexcept { return options_.name; }

  /// A reader's place in the shard it reads: it holds (pins) the storage chunk it is in, so
  /// the next read goes on from there without the shard's lock. One cursor per shard and
  /// reader; a cursor is not shared between threads at the same time.
  class cursor {
    friend class memory_stream;
    std::shared_ptr<chunk> at_;
  };

  /// Calls visit(record) for up to `max` records after `after`, in order; the records are
  /// visited in place, outside any lock, so a visitor may do anything, even put into this
  /// stream. With a cursor (kept between reads of one shard), a read takes no lock at all
  /// unless it starts behind the cursor or retention trimmed what it was about to read.
  template <class Visit>
  std::size_t read(cursor& at, shard_id_t id, sequence_number_t after, std::size_t max,
                   Visit&& visit) {
    return read_spans(at, id, after, max, [&](const record_type* first, const record_type* last) {
      const record_type* p = first;
      while (p != last && visit(std::as_const(*p))) ++p;
      return static_cast<std::size_t>(p - first);
    });
  }
  /// Keeps the storage the cursor reads in alive (records handed out in place, as a mapping's
  /// batch that views them, stay valid while this is held), or null.
  std::shared_ptr<const void> pin(const cursor& at) const noexcept { return at.at_; }

  template <class Visit>
  std::size_t read(shard_id_t id, sequence_number_t after, std::size_t max, Visit&& visit) {
    cursor at;
    return read(at, id, after, max, std::forward<Visit>(visit));
  }

  /// As read(), one storage chunk at a time: on_span(first, last) gets contiguous records and
  /// returns how many it consumed; fewer stops the read (and releases the cursor's pin, so a
  /// reader held back by its handler does not keep trimmed storage alive).
  ///
  /// Lock-free reading. Producers append under the shard's lock and publish a chunk's record
  /// count with a release store; a reader acquires it and visits records below it. Chunks are
  /// linked (each owns the next, published with a release store), so a reader follows the
  /// links from its pinned chunk. Retention and the reader meet on two sequentially consistent
  /// atomics: the reader raises read_up_to, then checks first_retained; the trimmer raises
  /// first_retained, then reads read_up_to to count what expired unread. Either the trimmer
  /// sees the read (and does not count those records as expired) or the reader sees the trim
  /// (and retries under the lock, where the trimmed records are skipped and the mapping counts
  /// the gap), never neither. With age retention, a read whose first record is already past
  /// the retention age also takes the lock, so it trims exactly as before.
  template <class OnSpan>
  std::size_t read_spans(cursor& at, shard_id_t id, sequence_number_t after, std::size_t max,
                         OnSpan&& on_span) {
    shard& s = *shards_[id];
    std::size_t consumed = 0;
    sequence_number_t position = after;
    while (consumed < max) {
      if (!locate(s, at, position)) break;
      chunk& c = *at.at_;
      const auto begin = static_cast<std::uint32_t>(position + 1 - c.first);
      const std::uint32_t end = c.published.load(std::memory_order_acquire);
      if (end <= begin) break;
      const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(end - begin, max - consumed));
      // Handed out from here on (a reader that stops early reads the rest again later; if
      // retention takes them first, the mapping counts the gap itself).
      raise(s.read_up_to, position + n);
      if (position + 1 < s.first_retained.load()) {  // trimmed meanwhile: again, locked
        at.at_.reset();
        continue;
      }
      const record_type* p = c.data + begin;
      const auto took = static_cast<std::uint32_t>(on_span(p, p + n));
      consumed += took;
      position += took;
      if (took < n) {
        at.at_.reset();
        break;
      }
    }
    return consumed;
  }
  template <class OnSpan>
  std::size_t read_spans(shard_id_t id, sequence_number_t after, std::size_t max,
                         OnSpan&& on_span) {
    cursor at;
    return read_spans(at, id, after, max, std::forward<OnSpan>(on_span));
  }

  sequence_number_t resolve(shard_id_t id, starting_position pos) {
    shard& s = *shards_[id];
    std::lock_guard lock(s.mutex);
    trim_locked(s);
    switch (pos.where) {
      case starting_position::kind::latest:
        return s.next - 1;
      case starting_position::kind::at_timestamp: {
        for (sequence_number_t q = retained(s); q < s.next; ++q) {
          if (at_locked(s, q).arrival >= pos.timestamp) return q - 1;
        }
        return s.next - 1;
      }
      case starting_position::kind::trim_horizon:
      default:
        return retained(s) - 1;
    }
  }

  sequence_number_t last_sequence(shard_id_t id) const {
    const shard& s = *shards_[id];
    std::lock_guard lock(s.mutex);
    return s.next - 1;
  }

  /// Records currently retained in a shard.
  std::size_t size(shard_id_t id) const {
    const shard& s = *shards_[id];
    std::lock_guard lock(s.mutex);
    return static_cast<std::size_t>(s.next - retained(s));
  }

  /// Records of a shard that retention trimmed before any reader read them.
  std::uint64_t expired_unread(shard_id_t id) const {
    const shard& s = *shards_[id];
    std::lock_guard lock(s.mutex);
    return s.expired_unread;
  }

  /// A mapping reading this stream says it has checkpointed `sequence` of shard `id` (the
  /// engine calls it; `consumer` identifies the mapping). With a capacity, records every
  /// consumer has acknowledged are released.
  void acknowledge(const void* consumer, shard_id_t id, sequence_number_t sequence) {
    if (!bounded()) return;
    shard& s = *shards_[id];
    {
      std::lock_guard lock(s.mutex);
      auto it = std::find_if(s.acks.begin(), s.acks.end(),
                             [&](const auto& a) { return a.first == consumer; });
      if (it == s.acks.end())
        s.acks.emplace_back(consumer, sequence);
      else
        it->second = std::max(it->second, sequence);
      release_locked(s);
    }
    s.room.notify_all();
  }
  /// The consumer stops reading: its acknowledgements no longer hold records back.
  void detach(const void* consumer) {
    for (auto& sp : shards_) {
      {
        std::lock_guard lock(sp->mutex);
        std::erase_if(sp->acks, [&](const auto& a) { return a.first == consumer; });
        release_locked(*sp);
      }
      sp->room.notify_all();
    }
  }

  /// Applies age retention now (put and read also trim).
  void trim() {
    for (auto& s : shards_) {
      std::lock_guard lock(s->mutex);
      trim_locked(*s);
    }
  }

  void subscribe(data_listener* listener) {
    for (auto& s : shards_) {
      std::lock_guard lock(s->mutex);
      s->listeners.push_back(listener);
    }
  }
  void unsubscribe(data_listener* listener) {
    for (auto& s : shards_) {
      std::lock_guard lock(s->mutex);
      std::erase(s->listeners, listener);
    }
  }

 private:
  /// Append-only storage: records [first, first + published) built in place. A reader pins a
  /// chunk (shared_ptr) while it visits it, so trimming never frees records under a reader.
  struct chunk {
    chunk(sequence_number_t first, std::uint32_t capacity)
        : first(first),
          capacity(capacity),
          data(std::allocator<record_type>().allocate(capacity)) {}
    chunk(const chunk&) = delete;
    chunk& operator=(const chunk&) = delete;
    ~chunk() {
      std::destroy_n(data, built);
      std::allocator<record_type>().deallocate(data, capacity);
      // Unlink the chain iteratively: a long chain freed at once must not recurse.
      std::shared_ptr<chunk> n = std::move(next);
      while (n && n.use_count() == 1) n = std::move(n->next);
    }
    sequence_number_t first;
    std::uint32_t capacity;
    std::uint32_t built = 0;                  // constructed (writer's, under the lock)
    std::atomic<std::uint32_t> published{0};  // visible to readers
    record_type* data;
    // The chunk after this one: `next` is written once, before `next_ready` (release).
    std::shared_ptr<chunk> next;
    std::atomic<chunk*> next_ready{nullptr};
  };
  static constexpr std::uint32_t max_chunk = 4096;

  struct shard {
    explicit shard(shard_id_t id) : id(id) {}
    shard_id_t id;
    mutable std::mutex mutex;
    std::deque<std::shared_ptr<chunk>> chunks;
    sequence_number_t next = 1;  // sequence number of the next record
    // Records below were trimmed. Written under the lock, read by lock-free readers.
    std::atomic<sequence_number_t> first_retained{1};
    time_point last_arrival{};
    std::vector<data_listener*> listeners;
    std::atomic<sequence_number_t> read_up_to{0};  // highest sequence number handed out
    std::uint64_t expired_unread = 0;
    std::size_t bytes = 0;  // payload bytes retained (kept only with a capacity)
    std::vector<std::pair<const void*, sequence_number_t>> acks;  // consumers' checkpoints
    std::condition_variable room;  // put() waits here while the shard is at capacity
  };

  bool bounded() const noexcept {
    return options_.capacity_records != std::numeric_limits<std::size_t>::max() ||
           options_.capacity_bytes != std::numeric_limits<std::size_t>::max();
  }
  static std::size_t payload_bytes(const Payload& p) noexcept {
    return payload_traits<Payload>::size_bytes(p);
  }

  std::optional<put_result> put_impl(Key key, Payload payload, bool wait) {
    const shard_id_t id = shard_for(key_hash(key), options_.shards);
    shard& s = *shards_[id];
    std::unique_lock lock(s.mutex);
    const std::size_t bytes = bounded() ? payload_bytes(payload) : 0;
    if (bounded()) {
      if (wait)
        wait_for_room(s, lock, 1, bytes);
      else if (!has_room(s, 1, bytes))
        return std::nullopt;
    }
    const sequence_number_t seq = append_locked(s, std::move(key), std::move(payload));
    publish_locked(s);
    trim_locked(s);
    for (data_listener* l : s.listeners) l->on_data(id);
    return put_result{id, seq};
  }

  bool has_room(const shard& s, std::size_t records, std::size_t bytes) const noexcept {
    const auto held = static_cast<std::size_t>(s.next - retained(s));
    if (held == 0) return true;  // an empty shard admits anything: no deadlock on a big record
    return held + records <= options_.capacity_records &&
           s.bytes + bytes <= options_.capacity_bytes;
  }
  void wait_for_room(shard& s, std::unique_lock<std::mutex>& lock, std::size_t records,
                     std::size_t bytes) {
    if (!bounded()) return;
    // A handler of a mapping that reads this shard would wait for itself: admit the record
    // (the capacity may be exceeded by what such handlers put; try_put() does not do this).
    const void* self = detail::current_consumer();
    if (self != nullptr &&
        std::any_of(s.acks.begin(), s.acks.end(), [&](const auto& a) { return a.first == self; }))
      return;
    while (!has_room(s, records, bytes)) {
      trim_locked(s);  // retention by age frees space as time passes
      if (has_room(s, records, bytes)) break;
      s.room.wait_for(lock, std::chrono::milliseconds(50));  // re-checks age retention
    }
  }
  /// With a capacity: drops records every consumer has acknowledged.
  void release_locked(shard& s) {
    if (s.acks.empty()) return;
    sequence_number_t upto = s.next - 1;
    for (const auto& a : s.acks) upto = std::min(upto, a.second);
    drop_front_locked(s, upto + 1, false);
  }
  /// Moves first_retained to `first`; records dropped unread (retention) are counted.
  void drop_front_locked(shard& s, sequence_number_t first, bool by_retention) {
    const sequence_number_t old = retained(s);
    if (first <= old) return;
    if (bounded()) {
      for (sequence_number_t q = old; q < first; ++q)
        s.bytes -= payload_bytes(at_locked(s, q).payload);
    }
    s.first_retained.store(first);  // seq_cst, then read_up_to: see read_spans()
    if (by_retention) {
      const sequence_number_t read = s.read_up_to.load();
      if (first - 1 > read) {
        const sequence_number_t from = std::max(old, read + 1);
        s.expired_unread += first - from;
        if (options_.on_expired_unread) options_.on_expired_unread(s.id, from, first - 1);
      }
    }
    // The tail chunk stays even when all its records are gone: appends continue in it (or
    // after it, linked), where a reader's cursor pinned on it finds them. Every other chunk is
    // full.
    while (s.chunks.size() > 1 && s.chunks.front()->first + s.chunks.front()->built <= first)
      s.chunks.pop_front();
  }
  /// first_retained, read by a holder of the shard's lock (its only writer).
  static sequence_number_t retained(const shard& s) noexcept {
    return s.first_retained.load(std::memory_order_relaxed);
  }
  static void raise(std::atomic<sequence_number_t>& a, sequence_number_t to) noexcept {
    sequence_number_t v = a.load(std::memory_order_relaxed);
    while (v < to && !a.compare_exchange_weak(v, to)) {
    }
  }

  /// Points `at` at the chunk that holds (or will hold) the record after `position`, which
  /// moves past records retention trimmed. Without the lock when `at` already pins that chunk
  /// or an earlier one linked to it, and nothing there has to be trimmed first. False: nothing
  /// to read.
  bool locate(shard& s, cursor& at, sequence_number_t& position) {
    if (chunk* c = at.at_.get(); c != nullptr && position + 1 >= c->first) {
      while (position + 1 >= c->first + c->capacity) {
        chunk* n = c->next_ready.load(std::memory_order_acquire);
        if (n == nullptr) return false;  // the tail is full and nothing follows yet
        at.at_ = c->next;
        c = n;
      }
      const auto i = position + 1 - c->first;
      const bool aged = options_.retention_age &&
                        i < c->published.load(std::memory_order_acquire) &&
                        c->data[i].arrival < clock_->now() - *options_.retention_age;
      if (position + 1 >= s.first_retained.load(std::memory_order_acquire) && !aged) return true;
    }
    std::lock_guard lock(s.mutex);
    trim_locked(s);
    const sequence_number_t first = retained(s);
    if (position + 1 < first) position = first - 1;
    at.at_ = chunk_for_locked(s, position + 1);
    return at.at_ != nullptr;
  }

  sequence_number_t append_locked(shard& s, Key&& key, Payload&& payload) {
    time_point arrival = clock_->now();
    if (s.next > 1) arrival = std::max(arrival, s.last_arrival);
    s.last_arrival = arrival;
    if (s.chunks.empty() || s.chunks.back()->built == s.chunks.back()->capacity) {
      const std::uint32_t capacity =
          s.chunks.empty() ? 16 : std::min(max_chunk, s.chunks.back()->capacity * 2);
      auto c = std::make_shared<chunk>(s.next, capacity);
      if (!s.chunks.empty()) {
        chunk& last = *s.chunks.back();
        last.next = c;
        last.next_ready.store(c.get(), std::memory_order_release);
      }
      s.chunks.push_back(std::move(c));
    }
    chunk& c = *s.chunks.back();
    const sequence_number_t seq = s.next++;
    ::new (static_cast<void*>(c.data + c.built))
        record_type{std::move(key), seq, arrival, std::move(payload)};
    ++c.built;
    if (bounded()) s.bytes += payload_bytes(c.data[c.built - 1].payload);
    return seq;
  }
  static void publish_locked(shard& s) {
    for (auto it = s.chunks.rbegin(); it != s.chunks.rend(); ++it) {
      chunk& c = **it;
      if (c.published.load(std::memory_order_relaxed) == c.built) break;
      c.published.store(c.built, std::memory_order_release);
    }
  }
  static std::shared_ptr<chunk> chunk_of_locked(const shard& s, sequence_number_t seq) {
    if (s.chunks.empty() || seq < s.chunks.front()->first) return nullptr;
    auto it = std::upper_bound(
        s.chunks.begin(), s.chunks.end(), seq,
        [](sequence_number_t q, const std::shared_ptr<chunk>& c) { return q < c->first; });
    const std::shared_ptr<chunk>& c = *(it - 1);
    if (seq >= c->first + c->published.load(std::memory_order_relaxed)) return nullptr;
    return c;
  }
  /// The chunk whose range holds `seq`, published or not yet (the tail), or null.
  static std::shared_ptr<chunk> chunk_for_locked(const shard& s, sequence_number_t seq) {
    if (s.chunks.empty() || seq < s.chunks.front()->first) return nullptr;
    auto it = std::upper_bound(
        s.chunks.begin(), s.chunks.end(), seq,
        [](sequence_number_t q, const std::shared_ptr<chunk>& c) { return q < c->first; });
    const std::shared_ptr<chunk>& c = *(it - 1);
    if (seq >= c->first + c->capacity) return nullptr;
    return c;
  }
  static const record_type& at_locked(const shard& s, sequence_number_t seq) {
    const auto c = chunk_of_locked(s, seq);
    return c->data[seq - c->first];
  }

  void trim_locked(shard& s) {
    sequence_number_t first = retained(s);
    if (s.next - first > options_.retention_count) first = s.next - options_.retention_count;
    if (options_.retention_age) {
      const time_point horizon = clock_->now() - *options_.retention_age;
      while (first < s.next && at_locked(s, first).arrival < horizon) ++first;
    }
    const bool freed = first > retained(s);
    drop_front_locked(s, first, true);
    if (freed && bounded()) s.room.notify_all();
  }

  stream_options options_;
  Clock* clock_;
  std::vector<std::unique_ptr<shard>> shards_;
};

SLUICE_END_NAMESPACE
