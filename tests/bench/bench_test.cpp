// sluice/bench.hpp: a registered mapping and baseline run as Google Benchmark entries with the
// counters the header promises, the ratio report reads their medians, and workload records
// carry the workload's keys and payload sizes.
#include "sluice/bench.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "sluice/sluice.hpp"

namespace {

sluice::workload small_workload() {
  sluice::workload w;
  w.records = 10'000;
  w.keys = sluice::key_distribution::uniform(64);
  w.payload = sluice::payload_sizes::fixed(100);
  return w;
}

/// Runs the benchmarks matching `filter` (3 repetitions of a short minimum time) into `reporter`.
void run(const std::string& filter, sluice::bench::collecting_reporter& reporter) {
  std::string name = "bench_test";
  std::vector<char*> argv{name.data()};
  ASSERT_TRUE(sluice::bench::run_benchmarks(
      static_cast<int>(argv.size()), argv.data(), reporter,
      {"--benchmark_filter=" + filter, "--benchmark_min_time=0.01", "--benchmark_repetitions=3"}));
}

}  // namespace

TEST(Bench, MakeRecordsFollowsTheWorkload) {
  sluice::workload w = small_workload();
  w.payload = sluice::payload_sizes::uniform(10, 20);
  w.poison_rate = 0.1;
  const auto records = sluice::bench::make_records(w);
  const auto generated = sluice::generate(w);
  ASSERT_EQ(records.size(), w.records);
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].key, generated[i].key);
    EXPECT_EQ(records[i].sequence, i + 1);
    EXPECT_EQ(sluice::payload_size_bytes(records[i]), generated[i].bytes);
    EXPECT_EQ(records[i].payload.poison, generated[i].poison);
  }
}

TEST(Bench, MappingAndBaselineEntriesReportTheirCounters) {
  std::atomic<std::uint64_t> handled{0};
  sluice::bench::register_mapping(
      "bench_test/mapping", small_workload(), [&handled](const auto& records) {
        return sluice::from(records) | sluice::batching(sluice::batch_size(100)) |
               sluice::invoke([&handled](const sluice::batch<sluice::bench::record>& b) {
                 handled += b.size();
               });
      });
  sluice::bench::mapping_options started;
  started.mode = sluice::bench::runner::start;
  started.workers = 1;
  sluice::bench::register_mapping(
      "bench_test/started", small_workload(),
      [](const auto& records) {
        return sluice::from(records) | sluice::batching(sluice::batch_size(100)) |
               sluice::parallelization_factor(2) |
               sluice::invoke([](const sluice::batch<sluice::bench::record>&) {});
      },
      started);
  std::uint64_t looped = 0;
  sluice::bench::register_baseline("bench_test/baseline", small_workload(),
                                   [&looped](const std::vector<sluice::bench::record>& records) {
                                     for (const auto& r : records) looped += r.payload.bytes;
                                   });
  sluice::bench::collecting_reporter reporter;
  run("bench_test/", reporter);

  const auto mapping = reporter.get("bench_test/mapping/real_time");
  ASSERT_TRUE(mapping.present);
  EXPECT_GT(mapping.rate(), 0);
  // 100-byte payloads: bytes/s is 100 x records/s
  EXPECT_NEAR(mapping.counter("bytes_per_second") / mapping.rate(), 100.0, 1e-6);
  EXPECT_DOUBLE_EQ(mapping.counter("handler_calls"), 100.0);  // 10,000 records / batch 100
  EXPECT_DOUBLE_EQ(mapping.counter("batches"), 100.0);
  // ns per record comes from the same time as records/s (3 repetitions: the median is one run)
  EXPECT_NEAR(mapping.counter("ns_per_record") * mapping.rate(), 1e9, 1e-3);
  EXPECT_GE(mapping.counter("user_us_per_batch") + mapping.counter("sys_us_per_batch"), 0);
  EXPECT_EQ(mapping.counters.count("context_switches_per_batch"), 1u);
  EXPECT_EQ(mapping.counters.count("peak_buffered"), 0u);  // sluice::run: not sampled
  EXPECT_EQ(handled % 10'000, 0u);
  EXPECT_GT(handled.load(), 0u);

  const auto start = reporter.get("bench_test/started/real_time");
  ASSERT_TRUE(start.present);
  EXPECT_GE(start.counter("handler_calls"), 100.0);          // lanes may close partial batches
  EXPECT_LE(start.counter("peak_buffered"), 2 * 4 * 100.0);  // shards x P x 4 x batch_size
  EXPECT_EQ(start.counters.count("peak_buffered"), 1u);

  const auto baseline = reporter.get("bench_test/baseline/real_time");
  ASSERT_TRUE(baseline.present);
  EXPECT_GT(baseline.rate(), 0);
  EXPECT_GT(looped, 0u);
  EXPECT_NEAR(baseline.counter("bytes_per_second") / baseline.rate(), 100.0, 1e-6);
  EXPECT_NEAR(baseline.counter("ns_per_record") * baseline.rate(), 1e9, 1e-3);
}

TEST(Bench, PrintRatioSaysWhetherTheTargetIsMet) {
  testing::internal::CaptureStdout();
  sluice::bench::print_ratio("a/b", 3, 4, 0.7);
  sluice::bench::print_ratio("a/b", 3, 4, 1.0);
  sluice::bench::print_ratio("a/b", 0, 4, 0.8);
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("= 0.750  (target >= 0.70: met)"), std::string::npos) << out;
  EXPECT_NE(out.find("= 0.750  (target >= 1.00: MISSED by 25.0 %)"), std::string::npos) << out;
  EXPECT_NE(out.find("= n/a"), std::string::npos) << out;
}
