// sluice/sources/memory_stream.hpp: an in-memory sharded stream in the manner of a Kinesis stream,
// for tests, benchmarks and examples. put() is safe from many producer threads (one mutex per
// shard); each shard numbers its records 1, 2, 3, ...; arrival times come from the injected
// clock and never go backwards within a shard; retention trims by age and by count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
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
};

struct put_result {
  shard_id_t shard;
  sequence_number_t sequence;
};

template <class Payload, class Key = std::string, clock_type Clock = system_clock>
class memory_stream {
 public:
  using record_type = record<Payload, Key>;

  explicit memory_stream(std::uint32_t shards) requires std::same_as<Clock, system_clock>
      : memory_stream(stream_options{.shards = shards, .retention_age = std::nullopt},
                      system_clock::instance()) {}
  memory_stream(std::uint32_t shards, Clock& clock)
      : memory_stream(stream_options{.shards = shards, .retention_age = std::nullopt}, clock) {}
  memory_stream(stream_options options, Clock& clock)
      : options_(std::move(options)), clock_(&clock) {
    detail::require_in_range<std::uint32_t>("shards", options_.shards, 1, 1u << 20, "1..1048576");
    if (options_.retention_count == 0) detail::reject("retention_count", 0, ">= 1");
    if (options_.retention_age && *options_.retention_age <= duration::zero())
      detail::reject("retention_age (ns)", options_.retention_age->count(), "> 0");
    shards_.reserve(options_.shards);
    for (std::uint32_t i = 0; i < options_.shards; ++i)
      shards_.push_back(std::make_unique<shard>());
  }

  memory_stream(const memory_stream&) = delete;
  memory_stream& operator=(const memory_stream&) = delete;

  /// Appends a record to the shard of its key; returns where it landed.
  put_result put(Key key, Payload payload) {
    const shard_id_t id = shard_for(key_hash(key), options_.shards);
    shard& s = *shards_[id];
    std::lock_guard lock(s.mutex);
    time_point arrival = clock_->now();
    if (!s.records.empty()) arrival = std::max(arrival, s.records.back().arrival);
    const sequence_number_t seq = s.next++;
    s.records.push_back(record_type{std::move(key), seq, arrival, std::move(payload)});
    trim_locked(s);
    for (data_listener* l : s.listeners) l->on_data(id);
    return {id, seq};
  }

  std::uint32_t shard_count() const noexcept { return options_.shards; }
  std::string_view name() const noexcept { return options_.name; }

  template <class Visit>
  std::size_t read(shard_id_t id, sequence_number_t after, std::size_t max, Visit&& visit) {
    shard& s = *shards_[id];
    std::lock_guard lock(s.mutex);
    trim_locked(s);
    if (s.records.empty()) return 0;
    const sequence_number_t first = s.records.front().sequence;
    std::size_t index = after < first ? 0 : static_cast<std::size_t>(after - first + 1);
    std::size_t consumed = 0;
    for (; consumed < max && index < s.records.size(); ++index, ++consumed) {
      if (!visit(std::as_const(s.records[index]))) break;
    }
    return consumed;
  }

  sequence_number_t resolve(shard_id_t id, starting_position pos) {
    shard& s = *shards_[id];
    std::lock_guard lock(s.mutex);
    trim_locked(s);
    switch (pos.where) {
      case starting_position::kind::latest:
        return s.next - 1;
      case starting_position::kind::at_timestamp: {
        auto it =
            std::partition_point(s.records.begin(), s.records.end(),
                                 [&](const record_type& r) { return r.arrival < pos.timestamp; });
        return it == s.records.end() ? s.next - 1 : it->sequence - 1;
      }
      case starting_position::kind::trim_horizon:
      default:
        return s.records.empty() ? s.next - 1 : s.records.front().sequence - 1;
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
    return s.records.size();
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
  struct shard {
    mutable std::mutex mutex;
    std::deque<record_type> records;
    sequence_number_t next = 1;
    std::vector<data_listener*> listeners;
  };

  void trim_locked(shard& s) {
    while (s.records.size() > options_.retention_count) s.records.pop_front();
    if (options_.retention_age) {
      const time_point horizon = clock_->now() - *options_.retention_age;
      while (!s.records.empty() && s.records.front().arrival < horizon) s.records.pop_front();
    }
  }

  stream_options options_;
  Clock* clock_;
  std::vector<std::unique_ptr<shard>> shards_;
};

SLUICE_END_NAMESPACE
