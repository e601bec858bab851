// Tests of sluice::to_prometheus: the S-8 metrics in the Prometheus text exposition format.
#include "sluice/exporters/prometheus.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "sluice/metrics.hpp"

namespace {

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

sluice::metrics_snapshot two_shards(std::string name) {
  sluice::metrics_snapshot s;
  s.mapping_name = std::move(name);
  sluice::shard_metrics a;
  a.shard_id = 0;
  a.checkpoint = 250;
  a.counters.polled_event_count = 250;
  a.counters.invoked_event_count = 260;
  a.counters.iterator_age_ms = 12;
  a.counters.iterator_age_max_ms = 40;
  sluice::shard_metrics b;
  b.shard_id = 1;
  b.counters.polled_event_count = 7;
  b.counters.on_failure_destination_delivered_event_count = 3;
  s.shards = {a, b};
  s.total = a.counters;
  s.total += b.counters;
  return s;
}

TEST(Prometheus, RendersCountersWithTotalSuffixAndGaugesPerShard) {
  const std::string text = sluice::to_prometheus(two_shards("m"));
  EXPECT_NE(text.find("# HELP sluice_polled_event_count_total "), std::string::npos);
  EXPECT_NE(text.find("# TYPE sluice_polled_event_count_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_polled_event_count_total{mapping=\"m\",shard=\"0\"} 250\n"),
            std::string::npos);
  EXPECT_NE(text.find("sluice_polled_event_count_total{mapping=\"m\",shard=\"1\"} 7\n"),
            std::string::npos);
  EXPECT_NE(text.find("sluice_on_failure_destination_delivered_event_count_total{mapping=\"m\","
                      "shard=\"1\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE sluice_iterator_age_milliseconds gauge\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_iterator_age_milliseconds{mapping=\"m\",shard=\"0\"} 12\n"),
            std::string::npos);
  EXPECT_NE(text.find("sluice_iterator_age_max_milliseconds{mapping=\"m\",shard=\"0\"} 40\n"),
            std::string::npos);
  EXPECT_NE(text.find("sluice_checkpoint_sequence_number{mapping=\"m\",shard=\"0\"} 250\n"),
            std::string::npos);
  for (const char* name :
       {"invocations", "function_errors", "throttles", "retries", "bisect_splits",
        "destination_failures", "succeeded_event_count", "filtered_out_event_count",
        "failed_invoke_event_count", "dropped_event_count"}) {
    EXPECT_EQ(occurrences(text, std::string("# TYPE sluice_") + name + "_total counter\n"), 1u)
        << name;
  }
}

TEST(Prometheus, EveryLineIsACommentOrASampleAndEndsWithANewline) {
  const std::string text = sluice::to_prometheus(two_shards("m"));
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    const bool comment = line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0;
    const bool sample = line.rfind("sluice_", 0) == 0 && line.find("} ") != std::string::npos;
    EXPECT_TRUE(comment || sample) << line;
    start = end + 1;
  }
}

TEST(Prometheus, EscapesBackslashQuoteAndNewlineInLabelValues) {
  const std::string text = sluice::to_prometheus(two_shards("a\\b\"c\nd"));
  EXPECT_NE(text.find("sluice_invocations_total{mapping=\"a\\\\b\\\"c\\nd\",shard=\"0\"} 0\n"),
            std::string::npos)
      << text;
}

TEST(Prometheus, SeveralMappingsShareEachFamilyHeaderOnce) {
  const std::vector<sluice::metrics_snapshot> snapshots{two_shards("a"), two_shards("b")};
  const std::string text = sluice::to_prometheus(snapshots);
  EXPECT_EQ(occurrences(text, "# TYPE sluice_polled_event_count_total counter\n"), 1u);
  EXPECT_EQ(occurrences(text, "sluice_polled_event_count_total{"), 4u);
  EXPECT_NE(text.find("sluice_polled_event_count_total{mapping=\"b\",shard=\"1\"} 7\n"),
            std::string::npos);
}

TEST(Prometheus, ASnapshotWithoutShardsRendersOnlyHeaders) {
  sluice::metrics_snapshot empty;
  empty.mapping_name = "idle";
  const std::string text = sluice::to_prometheus(empty);
  // The one series is the mapping's own: buffered records.
  EXPECT_EQ(occurrences(text, "{"), 1u);
  EXPECT_NE(text.find("\nsluice_buffered_records{mapping=\"idle\"} 0\n"), std::string::npos);
  EXPECT_EQ(occurrences(text, "# TYPE "), 24u);
}

}  // namespace

TEST(Prometheus, ShowsTheDestinationErrorOnlyWhileDeliveriesFail) {
  auto snapshot = two_shards("m");
  EXPECT_EQ(occurrences(sluice::to_prometheus(snapshot), "sluice_destination_error_info{"), 0u);
  EXPECT_NE(sluice::to_prometheus(snapshot).find(
                "sluice_destination_error_timestamp_seconds{mapping=\"m\",shard=\"1\"} 0\n"),
            std::string::npos);
  auto& failing = snapshot.shards[1].counters;
  failing.last_destination_error = "sluice::sqlite::database_error: disk \"full\"";
  failing.last_destination_error_time =
      sluice::time_point{} + std::chrono::milliseconds(1700000000123);
  const std::string text = sluice::to_prometheus(snapshot);
  EXPECT_NE(text.find("# TYPE sluice_destination_error_info gauge\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_destination_error_info{mapping=\"m\",shard=\"1\",error=\"sluice::"
                      "sqlite::database_error: disk \\\"full\\\"\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(occurrences(text, "sluice_destination_error_info{"), 1u);
  EXPECT_NE(text.find("sluice_destination_error_timestamp_seconds{mapping=\"m\",shard=\"1\"} "
                      "1700000000.123\n"),
            std::string::npos)
      << text;
}

TEST(Prometheus, TotalKeepsTheMostRecentDestinationError) {
  sluice::metrics_counters a, b;
  a.last_destination_error = "old";
  a.last_destination_error_time = sluice::time_point{} + std::chrono::seconds(1);
  b.last_destination_error = "new";
  b.last_destination_error_time = sluice::time_point{} + std::chrono::seconds(2);
  sluice::metrics_counters total;
  total += b;
  total += a;
  EXPECT_EQ(total.last_destination_error, "new");
}

TEST(Prometheus, LagIsShownForShardsWhoseLastSequenceIsKnown) {
  auto snapshot = two_shards("m");
  snapshot.shards[0].last_sequence = 300;  // checkpoint 250
  snapshot.buffered_records = 42;
  const std::string text = sluice::to_prometheus(snapshot);
  EXPECT_NE(text.find("sluice_last_sequence_number{mapping=\"m\",shard=\"0\"} 300\n"),
            std::string::npos);
  EXPECT_NE(text.find("sluice_lag_records{mapping=\"m\",shard=\"0\"} 50\n"), std::string::npos);
  // Shard 1's source numbering is unknown: no made-up lag of 0.
  EXPECT_EQ(text.find("sluice_lag_records{mapping=\"m\",shard=\"1\"}"), std::string::npos);
  EXPECT_NE(text.find("sluice_buffered_records{mapping=\"m\"} 42\n"), std::string::npos);
}

TEST(Prometheus, BlockedLanesAndSinceWhen) {
  auto snapshot = two_shards("m");
  snapshot.shards[1].counters.blocked_lanes = 2;
  snapshot.shards[1].counters.blocked_since =
      sluice::time_point{} + std::chrono::milliseconds(1700000000500);
  const std::string text = sluice::to_prometheus(snapshot);
  EXPECT_NE(text.find("sluice_blocked_lanes{mapping=\"m\",shard=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_blocked_lanes{mapping=\"m\",shard=\"0\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_blocked_since_timestamp_seconds{mapping=\"m\",shard=\"1\"} "
                      "1700000000.500\n"),
            std::string::npos);
  EXPECT_NE(text.find("sluice_blocked_since_timestamp_seconds{mapping=\"m\",shard=\"0\"} 0\n"),
            std::string::npos);
}

TEST(Prometheus, TotalSumsBlockedLanesAndKeepsTheEarliestSince) {
  sluice::metrics_counters a, b, idle;
  a.blocked_lanes = 1;
  a.blocked_since = sluice::time_point{} + std::chrono::seconds(20);
  b.blocked_lanes = 2;
  b.blocked_since = sluice::time_point{} + std::chrono::seconds(10);
  sluice::metrics_counters total;
  total += idle;
  total += a;
  total += b;
  EXPECT_EQ(total.blocked_lanes, 3u);
  EXPECT_EQ(total.blocked_since, sluice::time_point{} + std::chrono::seconds(10));
}
