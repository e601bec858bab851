// sluice/exporters/prometheus.hpp: renders the S-8 metrics in the Prometheus text exposition format
// (version 0.0.4), so a program can serve them on /metrics with whatever HTTP server it has.
// Series are per shard only: totals are sum by (mapping), and emitting them too would double count.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "sluice/config.hpp"
#include "sluice/metrics.hpp"

SLUICE_BEGIN_NAMESPACE

namespace detail {
/// A label value as the exposition format wants it: backslash, double quote and line feed escaped.
inline void append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

/// A time as Unix seconds with milliseconds ("1700000000.123").
inline std::string seconds_text(time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::string out = std::to_string(ms / 1000) + ".";
  const std::string frac = std::to_string((ms % 1000 + 1000) % 1000);
  return out.append(3 - frac.size(), '0').append(frac);
}

inline std::string destination_error_seconds(const metrics_counters& c) {
  if (c.last_destination_error.empty()) return "0";
  return seconds_text(c.last_destination_error_time);
}

struct prometheus_family {
  std::string_view name;
  std::string_view type;
  std::string_view help;
  std::string (*value)(const shard_metrics&);
  /// Whether the shard has this series (false: left out, e.g. lag of a source with gaps).
  bool (*present)(const shard_metrics&) = nullptr;
};

#define SLUICE_PROMETHEUS_COUNTER(field, help_text)                             \
  prometheus_family {                                                           \
    "sluice_" #field "_total", "counter", help_text,                            \
        [](const shard_metrics& s) { return std::to_string(s.counters.field); } \
  }

inline constexpr prometheus_family prometheus_families[] = {
    SLUICE_PROMETHEUS_COUNTER(polled_event_count,
                              "Records read from the source (PolledEventCount)."),
    SLUICE_PROMETHEUS_COUNTER(filtered_out_event_count,
                              "Records dropped by filters (FilteredOutEventCount)."),
    SLUICE_PROMETHEUS_COUNTER(
        invoked_event_count,
        "Records handed to the handler, retries included (InvokedEventCount)."),
    SLUICE_PROMETHEUS_COUNTER(failed_invoke_event_count,
                              "Records in failed attempts (FailedInvokeEventCount)."),
    SLUICE_PROMETHEUS_COUNTER(dropped_event_count,
                              "Records discarded without a destination (DroppedEventCount)."),
    SLUICE_PROMETHEUS_COUNTER(on_failure_destination_delivered_event_count,
                              "Records delivered to the on-failure destination "
                              "(OnFailureDestinationDeliveredEventCount)."),
    SLUICE_PROMETHEUS_COUNTER(invocations, "Handler invocations."),
    SLUICE_PROMETHEUS_COUNTER(function_errors, "Attempts that failed with a function error."),
    SLUICE_PROMETHEUS_COUNTER(throttles, "Attempts that were throttled."),
    SLUICE_PROMETHEUS_COUNTER(retries, "Attempts after a failed attempt of the same batch."),
    SLUICE_PROMETHEUS_COUNTER(bisect_splits, "Batches split in two after a function error."),
    SLUICE_PROMETHEUS_COUNTER(destination_failures,
                              "Deliveries to the on-failure destination that failed."),
    SLUICE_PROMETHEUS_COUNTER(succeeded_event_count, "Records finished by a successful attempt."),
    SLUICE_PROMETHEUS_COUNTER(expired_unread_event_count,
                              "Records retention trimmed before the mapping read them."),
    {"sluice_iterator_age_milliseconds", "gauge",
     "Milliseconds between the arrival of the last batch's record and its hand-over (IteratorAge).",
     [](const shard_metrics& s) { return std::to_string(s.counters.iterator_age_ms); }},
    {"sluice_iterator_age_max_milliseconds", "gauge", "The largest IteratorAge seen.",
     [](const shard_metrics& s) { return std::to_string(s.counters.iterator_age_max_ms); }},
    {"sluice_checkpoint_sequence_number", "gauge",
     "Highest sequence number up to which every record of the shard is finished.",
     [](const shard_metrics& s) { return std::to_string(s.checkpoint); }},
    {"sluice_destination_error_timestamp_seconds", "gauge",
     "When the last delivery to the on-failure destination failed, while deliveries keep "
     "failing (Unix time); 0 when the last delivery succeeded.",
     [](const shard_metrics& s) { return destination_error_seconds(s.counters); }},
    {"sluice_last_sequence_number", "gauge",
     "Highest sequence number the source holds for the shard (sources numbering without gaps).",
     [](const shard_metrics& s) { return std::to_string(s.last_sequence.value_or(0)); },
     [](const shard_metrics& s) { return s.last_sequence.has_value(); }},
    {"sluice_lag_records", "gauge",
     "Records of the shard not yet behind its checkpoint: last sequence - checkpoint.",
     [](const shard_metrics& s) { return std::to_string(s.lag()); },
     [](const shard_metrics& s) { return s.last_sequence.has_value(); }},
    {"sluice_blocked_lanes", "gauge",
     "Lanes whose deliveries to the on-failure destination keep failing (they make no progress).",
     [](const shard_metrics& s) { return std::to_string(s.counters.blocked_lanes); }},
    {"sluice_blocked_since_timestamp_seconds", "gauge",
     "Since when the shard has had a blocked lane without a break (Unix time); 0 when none is.",
     [](const shard_metrics& s) {
       return s.counters.blocked_lanes == 0 ? std::string("0")
                                            : seconds_text(s.counters.blocked_since);
     }},
};
#undef SLUICE_PROMETHEUS_COUNTER

/// Per mapping, for mappings with downstream limits (sluice/limits.hpp); nothing when none has.
inline void append_limits(std::string& out, std::span<const metrics_snapshot> snapshots) {
  struct family {
    std::string_view name, type, help;
    std::uint64_t (*value)(const limits_metrics&);
  };
  static constexpr family families[] = {
      {"sluice_concurrency_limit", "gauge",
       "Handler calls the mapping may run at once now (maximum_concurrency, or where "
       "adaptive_concurrency has it).",
       [](const limits_metrics& l) -> std::uint64_t { return l.concurrency_limit; }},
      {"sluice_concurrent_invocations", "gauge", "Handler calls of the mapping running now.",
       [](const limits_metrics& l) -> std::uint64_t { return l.concurrent_invocations; }},
      {"sluice_concurrency_waits_total", "counter",
       "Handler calls that waited for a free slot of the concurrency limit.",
       [](const limits_metrics& l) { return l.concurrency_waits; }},
      {"sluice_concurrency_limit_decreases_total", "counter",
       "Times a throttle lowered the adaptive concurrency limit.",
       [](const limits_metrics& l) { return l.concurrency_decreases; }},
      {"sluice_concurrency_limit_increases_total", "counter",
       "Times successful calls raised the adaptive concurrency limit.",
       [](const limits_metrics& l) { return l.concurrency_increases; }},
      {"sluice_rate_limit_waits_total", "counter",
       "Times a handler call waited for rate-limit tokens (rate_limit's backpressure).",
       [](const limits_metrics& l) { return l.rate_limit_waits; }},
  };
  bool any = false;
  for (const metrics_snapshot& snapshot : snapshots) any |= snapshot.limits.has_value();
  if (!any) return;
  for (const family& f : families) {
    out.append("# HELP ").append(f.name).append(" ").append(f.help).append("\n");
    out.append("# TYPE ").append(f.name).append(" ").append(f.type).append("\n");
    for (const metrics_snapshot& snapshot : snapshots) {
      if (!snapshot.limits) continue;
      out.append(f.name).append("{mapping=\"");
      append_label_value(out, snapshot.mapping_name);
      out.append("\"} ").append(std::to_string(f.value(*snapshot.limits))).append("\n");
    }
  }
}
}  // namespace detail

/// Renders several mappings' snapshots as one exposition: each metric family appears once, with
/// one series per mapping and shard, labelled mapping="<name>",shard="<id>".
inline std::string to_prometheus(std::span<const metrics_snapshot> snapshots) {
  std::string out;
  for (const detail::prometheus_family& family : detail::prometheus_families) {
    out.append("# HELP ").append(family.name).append(" ").append(family.help).append("\n");
    out.append("# TYPE ").append(family.name).append(" ").append(family.type).append("\n");
    for (const metrics_snapshot& snapshot : snapshots) {
      for (const shard_metrics& shard : snapshot.shards) {
        if (family.present != nullptr && !family.present(shard)) continue;
        out.append(family.name).append("{mapping=\"");
        detail::append_label_value(out, snapshot.mapping_name);
        out.append("\",shard=\"").append(std::to_string(shard.shard_id)).append("\"} ");
        out.append(family.value(shard)).append("\n");
      }
    }
  }
  // One series per shard whose deliveries to the on-failure destination are failing now, with
  // the error in a label; none when every delivery succeeds.
  out.append(
      "# HELP sluice_destination_error_info The last error of the on-failure destination, while "
      "its deliveries keep failing and the shard's lane is blocked (label error).\n"
      "# TYPE sluice_destination_error_info gauge\n");
  for (const metrics_snapshot& snapshot : snapshots) {
    for (const shard_metrics& shard : snapshot.shards) {
      if (shard.counters.last_destination_error.empty()) continue;
      out.append("sluice_destination_error_info{mapping=\"");
      detail::append_label_value(out, snapshot.mapping_name);
      out.append("\",shard=\"").append(std::to_string(shard.shard_id)).append("\",error=\"");
      detail::append_label_value(out, shard.counters.last_destination_error);
      out.append("\"} 1\n");
    }
  }
  // Per mapping: what it holds between source and handler.
  out.append(
      "# HELP sluice_buffered_records Records read from the source and not yet finished.\n"
      "# TYPE sluice_buffered_records gauge\n");
  for (const metrics_snapshot& snapshot : snapshots) {
    out.append("sluice_buffered_records{mapping=\"");
    detail::append_label_value(out, snapshot.mapping_name);
    out.append("\"} ").append(std::to_string(snapshot.buffered_records)).append("\n");
  }
  detail::append_limits(out, snapshots);
  return out;
}

/// Renders one mapping's snapshot.
inline std::string to_prometheus(const metrics_snapshot& snapshot) {
  return to_prometheus(std::span<const metrics_snapshot>(&snapshot, 1));
}

SLUICE_END_NAMESPACE
