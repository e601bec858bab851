// sluice/exporters/prometheus.hpp: renders the S-8 metrics in the Prometheus text exposition format
// (version 0.0.4), so a program can serve them on /metrics with whatever HTTP server it has.
// Series are per shard only: totals are sum by (mapping), and emitting them too would double count.
#pragma once

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

struct prometheus_family {
  std::string_view name;
  std::string_view type;
  std::string_view help;
  std::string (*value)(const shard_metrics&);
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
    {"sluice_iterator_age_milliseconds", "gauge",
     "Milliseconds between the arrival of the last batch's record and its hand-over (IteratorAge).",
     [](const shard_metrics& s) { return std::to_string(s.counters.iterator_age_ms); }},
    {"sluice_iterator_age_max_milliseconds", "gauge", "The largest IteratorAge seen.",
     [](const shard_metrics& s) { return std::to_string(s.counters.iterator_age_max_ms); }},
    {"sluice_checkpoint_sequence_number", "gauge",
     "Highest sequence number up to which every record of the shard is finished.",
     [](const shard_metrics& s) { return std::to_string(s.checkpoint); }},
};
#undef SLUICE_PROMETHEUS_COUNTER
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
        out.append(family.name).append("{mapping=\"");
        detail::append_label_value(out, snapshot.mapping_name);
        out.append("\",shard=\"").append(std::to_string(shard.shard_id)).append("\"} ");
        out.append(family.value(shard)).append("\n");
      }
    }
  }
  return out;
}

/// Renders one mapping's snapshot.
inline std::string to_prometheus(const metrics_snapshot& snapshot) {
  return to_prometheus(std::span<const metrics_snapshot>(&snapshot, 1));
}

SLUICE_END_NAMESPACE
