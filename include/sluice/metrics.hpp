// sluice/metrics.hpp: the S-8 metrics, named after Lambda's. Counters are relaxed atomics on
// per-shard cache lines, touched once per batch (never per record), so they stay on in
// production; metrics() returns a plain snapshot per mapping and per shard.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE

/// One set of counters (a shard's, or the sum over the mapping).
struct metrics_counters {
  std::uint64_t polled_event_count = 0;         // PolledEventCount: records read from the source
  std::uint64_t filtered_out_event_count = 0;   // FilteredOutEventCount
  std::uint64_t invoked_event_count = 0;        // InvokedEventCount: handed over, retries too
  std::uint64_t failed_invoke_event_count = 0;  // FailedInvokeEventCount: in failed attempts
  std::uint64_t dropped_event_count = 0;        // DroppedEventCount: discarded, no destination
  std::uint64_t on_failure_destination_delivered_event_count = 0;
  std::uint64_t invocations = 0;            // handler calls
  std::uint64_t function_errors = 0;        // attempts that threw (or reported invalidly)
  std::uint64_t throttles = 0;              // attempts that threw sluice::throttled
  std::uint64_t retries = 0;                // attempts after a failed attempt of a batch
  std::uint64_t bisect_splits = 0;          // batches split in two
  std::uint64_t destination_failures = 0;   // deliveries to the destination that threw
  std::uint64_t succeeded_event_count = 0;  // records finished by a successful attempt
  /// beyond Lambda: records the source no longer held when the mapping came to read them
  /// (retention trimmed them unread); the checkpoint passes them. Counted for sources whose
  /// sequence numbers have no gaps (memory and SQLite streams).
  std::uint64_t expired_unread_event_count = 0;
  std::int64_t iterator_age_ms = 0;      // IteratorAge of the last batch handed over
  std::int64_t iterator_age_max_ms = 0;  // the largest IteratorAge seen
  /// While deliveries to the on-failure destination fail (the lane is blocked and retrying,
  /// S-5.8): the last failure, as "<exception type>: <what()>", and when it happened (the
  /// mapping's clock). Empty again once a delivery succeeds; destination_failures counts them
  /// all. In a mapping's total: the most recent failure over its shards.
  std::string last_destination_error;
  time_point last_destination_error_time{};
  /// Lanes (and readers delivering a failed stage) whose on-failure deliveries keep failing, so
  /// they make no progress (S-5.8), and since when the shard has had a blocked lane without a
  /// break (the mapping's clock; meaningful while blocked_lanes > 0). In a mapping's total: the
  /// sum, and the earliest such time.
  std::uint32_t blocked_lanes = 0;
  time_point blocked_since{};

  metrics_counters& operator+=(const metrics_counters& o) noexcept {
    polled_event_count += o.polled_event_count;
    filtered_out_event_count += o.filtered_out_event_count;
    invoked_event_count += o.invoked_event_count;
    failed_invoke_event_count += o.failed_invoke_event_count;
    dropped_event_count += o.dropped_event_count;
    on_failure_destination_delivered_event_count += o.on_failure_destination_delivered_event_count;
    invocations += o.invocations;
    function_errors += o.function_errors;
    throttles += o.throttles;
    retries += o.retries;
    bisect_splits += o.bisect_splits;
    destination_failures += o.destination_failures;
    succeeded_event_count += o.succeeded_event_count;
    expired_unread_event_count += o.expired_unread_event_count;
    iterator_age_ms = std::max(iterator_age_ms, o.iterator_age_ms);
    iterator_age_max_ms = std::max(iterator_age_max_ms, o.iterator_age_max_ms);
    if (!o.last_destination_error.empty() &&
        (last_destination_error.empty() ||
         o.last_destination_error_time > last_destination_error_time)) {
      last_destination_error = o.last_destination_error;
      last_destination_error_time = o.last_destination_error_time;
    }
    if (o.blocked_lanes > 0 && (blocked_lanes == 0 || o.blocked_since < blocked_since))
      blocked_since = o.blocked_since;
    blocked_lanes += o.blocked_lanes;
    return *this;
  }
};

struct shard_metrics {
  shard_id_t shard_id = 0;
  sequence_number_t checkpoint = 0;  // highest finished sequence (S-3.3)
  metrics_counters counters;
  /// The highest sequence number the source holds for the shard, when the source numbers records
  /// without gaps (memory and SQLite streams), so that lag() counts records; else empty.
  std::optional<sequence_number_t> last_sequence;
  /// Records of the shard not yet behind the checkpoint: last_sequence - checkpoint (0 if unknown).
  std::uint64_t lag() const noexcept {
    return last_sequence && *last_sequence > checkpoint ? *last_sequence - checkpoint : 0;
  }
};

/// A mapping's downstream limits (sluice/limits.hpp), mapping-wide: present in a snapshot only
/// when the mapping has a concurrency limit or a rate limit.
struct limits_metrics {
  /// The concurrency allowed now (fixed, or where adaptive concurrency has it); 0: no limit.
  std::uint32_t concurrency_limit = 0;
  std::uint32_t concurrent_invocations = 0;  // handler calls running now
  std::uint64_t concurrency_waits = 0;       // calls that waited for a free permit
  std::uint64_t concurrency_decreases = 0;   // adaptive: times a throttle lowered the limit
  std::uint64_t concurrency_increases = 0;   // adaptive: times successes raised the limit
  std::uint64_t rate_limit_waits = 0;        // times a call waited for rate-limit tokens
};

/// A snapshot of a mapping's metrics: totals (the mapping) and one entry per shard.
struct metrics_snapshot {
  std::string mapping_name;
  metrics_counters total;
  std::vector<shard_metrics> shards;
  /// Records read from the source and not yet finished (bounded by shards x P x batches_per_lane x
  /// batch_size).
  std::uint64_t buffered_records = 0;
  /// The mapping's downstream limits, when it has any (sluice/limits.hpp).
  std::optional<limits_metrics> limits;
};

namespace detail {
/// The live counters of one shard. Each field is written by one thread at a time per event
/// kind (poller or the worker running a lane), read by snapshot(); relaxed order suffices.
struct alignas(64) live_counters {
  std::atomic<std::uint64_t> polled{0}, filtered_out{0}, invoked{0}, failed_invoke{0}, dropped{0},
      delivered{0}, invocations{0}, function_errors{0}, throttles{0}, retries{0}, splits{0},
      destination_failures{0}, succeeded{0}, expired_unread{0};
  std::atomic<std::int64_t> iterator_age_ms{0}, iterator_age_max_ms{0};

  // The last failed delivery to the on-failure destination (see metrics_counters); written by
  // the worker running the lane, read by snapshot(). Touched only when a delivery is made.
  mutable std::mutex destination_error_mutex;
  std::string destination_error;
  time_point destination_error_time{};
  std::atomic<bool> has_destination_error{false};
  // Lanes blocked on failing deliveries (see metrics_counters), and since when (guarded by
  // destination_error_mutex).
  std::atomic<std::uint32_t> blocked_lanes{0};
  time_point blocked_since{};

  void set_destination_error(std::string error, time_point when) {
    std::lock_guard lock(destination_error_mutex);
    destination_error = std::move(error);
    destination_error_time = when;
    has_destination_error.store(true, std::memory_order_relaxed);
  }
  void clear_destination_error() {
    if (!has_destination_error.load(std::memory_order_relaxed)) return;
    std::lock_guard lock(destination_error_mutex);
    destination_error.clear();
    destination_error_time = {};
    has_destination_error.store(false, std::memory_order_relaxed);
  }

  /// A lane's delivery failed and it was not blocked yet: it is now.
  void lane_blocked(time_point when) {
    std::lock_guard lock(destination_error_mutex);
    if (blocked_lanes.fetch_add(1, std::memory_order_relaxed) == 0) blocked_since = when;
  }
  /// A blocked lane's delivery succeeded.
  void lane_unblocked() noexcept { blocked_lanes.fetch_sub(1, std::memory_order_relaxed); }

  static void add(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
    c.fetch_add(n, std::memory_order_relaxed);
  }
  void record_iterator_age(std::int64_t ms) noexcept {
    iterator_age_ms.store(ms, std::memory_order_relaxed);
    std::int64_t seen = iterator_age_max_ms.load(std::memory_order_relaxed);
    while (ms > seen &&
           !iterator_age_max_ms.compare_exchange_weak(seen, ms, std::memory_order_relaxed)) {
    }
  }
  metrics_counters snapshot() const {
    auto ld = [](const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); };
    metrics_counters m;
    m.polled_event_count = ld(polled);
    m.filtered_out_event_count = ld(filtered_out);
    m.invoked_event_count = ld(invoked);
    m.failed_invoke_event_count = ld(failed_invoke);
    m.dropped_event_count = ld(dropped);
    m.on_failure_destination_delivered_event_count = ld(delivered);
    m.invocations = ld(invocations);
    m.function_errors = ld(function_errors);
    m.throttles = ld(throttles);
    m.retries = ld(retries);
    m.bisect_splits = ld(splits);
    m.destination_failures = ld(destination_failures);
    m.succeeded_event_count = ld(succeeded);
    m.expired_unread_event_count = ld(expired_unread);
    m.iterator_age_ms = iterator_age_ms.load(std::memory_order_relaxed);
    m.iterator_age_max_ms = iterator_age_max_ms.load(std::memory_order_relaxed);
    if (has_destination_error.load(std::memory_order_relaxed)) {
      std::lock_guard lock(destination_error_mutex);
      m.last_destination_error = destination_error;
      m.last_destination_error_time = destination_error_time;
    }
    if ((m.blocked_lanes = blocked_lanes.load(std::memory_order_relaxed)) > 0) {
      std::lock_guard lock(destination_error_mutex);
      m.blocked_since = blocked_since;
    }
    return m;
  }
};
}  // namespace detail

SLUICE_END_NAMESPACE
