// sluice::simulate (sluice/simulate.hpp): the real engine in virtual time against a modelled
// downstream. For simple downstream models the simulated throughput, latency, handler calls,
// re-deliveries and dead letters equal the closed-form values worked out in each test.
#include "sluice/simulate.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "sluice/sluice.hpp"

using namespace std::chrono_literals;

namespace {

/// n records, all arriving at once, whose keys spread them evenly over the P lanes of one shard
/// (record i goes to lane i % P), so every lane gets n / P records.
std::vector<sluice::generated_record> even_over_lanes(std::size_t n, std::uint32_t lanes) {
  std::vector<std::uint64_t> key_of_lane(lanes, ~std::uint64_t{0});
  std::uint32_t found = 0;
  for (std::uint64_t k = 0; found < lanes; ++k) {
    const std::uint32_t l = sluice::lane_for(sluice::key_hash(k), lanes);
    if (key_of_lane[l] == ~std::uint64_t{0}) {
      key_of_lane[l] = k;
      ++found;
    }
  }
  std::vector<sluice::generated_record> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    out[i].index = i;
    out[i].key = key_of_lane[i % lanes];
    out[i].bytes = 100;
  }
  return out;
}

double seconds(sluice::duration d) { return std::chrono::duration<double>(d).count(); }

sluice::downstream_model linear(sluice::duration fixed, sluice::duration per_record) {
  sluice::downstream_model m;
  m.fixed_latency = fixed;
  m.per_record_latency = per_record;
  return m;
}

}  // namespace

// One lane, 10,000 records, batch 100, each call 10 ms + 0.1 ms per record = 20 ms: 100 calls
// back to back, the last ends at 2 s; throughput 5,000 records/s. Batch k (1-based) succeeds at
// k x 20 ms, so the median record (rank 5,000, batch 50) waits 1 s and p99 (rank 9,900, batch
// 99) 1.98 s. Batch k's call starts at (k-1) x 20 ms, its newest record arrived at 0: the
// largest IteratorAge is 99 x 20 ms = 1,980 ms.
TEST(Simulate, OneLaneMatchesTheClosedForm) {
  const auto records = even_over_lanes(10'000, 1);
  sluice::tuning p;
  p.batch_size = 100;
  const auto r = sluice::simulate(records, linear(10ms, 100us), p);
  EXPECT_EQ(r.succeeded, 10'000u);
  EXPECT_EQ(r.unfinished, 0u);
  EXPECT_EQ(r.handler_calls, 100u);
  EXPECT_EQ(r.makespan, 2s);
  EXPECT_DOUBLE_EQ(r.throughput, 5'000.0);
  EXPECT_EQ(r.latency_p50, 1s);
  EXPECT_EQ(r.latency_p99, 1980ms);
  EXPECT_EQ(r.latency_max, 2s);
  EXPECT_EQ(r.iterator_age_max_ms, 1980);
  EXPECT_EQ(r.redelivered, 0u);
  EXPECT_EQ(r.dead_lettered, 0u);
  EXPECT_DOUBLE_EQ(r.mean_batch, 100.0);
}

// P lanes run their calls concurrently: with the records spread evenly each lane makes
// n / (P x B) calls of L = 10 ms + B x 0.1 ms back to back, so the makespan is
// n / (P x B) x L and the throughput P x B / L. Checked for P = 1, 2, 4, 10 and B = 50, 100.
TEST(Simulate, LanesRunConcurrentlyAsTheClosedFormSays) {
  for (std::uint32_t lanes : {1u, 2u, 4u, 10u}) {
    for (std::uint32_t b : {50u, 100u}) {
      SCOPED_TRACE(testing::Message() << "P " << lanes << " batch " << b);
      const std::size_t n = 20'000;
      const auto records = even_over_lanes(n, lanes);
      sluice::tuning p;
      p.batch_size = b;
      p.parallelization_factor = lanes;
      const auto r = sluice::simulate(records, linear(10ms, 100us), p);
      const sluice::duration call = 10ms + 100us * b;
      const auto calls_per_lane = n / (lanes * b);
      EXPECT_EQ(r.handler_calls, n / b);
      EXPECT_EQ(r.makespan, call * calls_per_lane);
      EXPECT_NEAR(r.throughput, lanes * b / seconds(call), 1e-6 * r.throughput);
      EXPECT_EQ(r.peak_concurrent_calls, lanes);
      EXPECT_EQ(r.succeeded, n);
    }
  }
}

// The reader blocks on a full lane, as the engine's reader does (backpressure, S-3): 1,000
// records of a lane-0 key come first, then 1,000 of a lane-1 key, all at once; batch 100, P 2,
// calls of L = 20 ms. Lane 0's ring holds 4 batches (one in flight, two closed, one filling), so
// the reader stops at record 401 and reads 100 more each time lane 0 finishes a batch: it reaches
// lane 1's records when lane 0's sixth call ends, at 6L. Lane 0 ends at 10L, lane 1 at 6L + 10L
// = 16L. Were a batch's slot freed when its call began rather than when it ended, lane 1 would
// start earlier and end before 16L.
TEST(Simulate, AFullLaneBlocksTheReaderAsInTheEngine) {
  auto lanes = even_over_lanes(2, 2);  // the keys of lane 0 and lane 1
  std::vector<sluice::generated_record> records(2'000);
  for (std::size_t i = 0; i < records.size(); ++i) {
    records[i].index = i;
    records[i].key = lanes[i < 1'000 ? 0 : 1].key;
  }
  sluice::tuning p;
  p.batch_size = 100;
  p.parallelization_factor = 2;
  const auto r = sluice::simulate(records, linear(10ms, 100us), p);
  const sluice::duration call = 20ms;
  EXPECT_EQ(r.makespan, 16 * call);
  EXPECT_EQ(r.handler_calls, 20u);
  // lane 0's batches end at L..10L, lane 1's at 7L..16L: the 1,000th latency is 8L
  EXPECT_EQ(r.latency_p50, 8 * call);
  EXPECT_EQ(r.latency_max, 16 * call);
  EXPECT_EQ(r.peak_concurrent_calls, 2u);
}

// A lane waiting to retry is bypassed (S-3.3: failure isolation): records alternate between a
// lane-0 and a lane-1 key, 2,000 at once, batch 100, P 2, calls of L = 20 ms, and lane 0's first
// batch holds a poison record (R = 1, fixed back-off 1 s). Lane 0 fails at 0 and at 1 s, sends
// the batch to the destination at 1 s + L and then runs its 9 other batches: done at 1 s + 10L.
// The reader passes lane 0 while it waits, so lane 1 runs its 10 batches back to back, done at
// 10L: the median latency (rank 950 of the 1,900 that succeed) is 10L, not over a second.
TEST(Simulate, ARetryingLaneIsBypassed) {
  auto records = even_over_lanes(2'000, 2);
  records[20].poison = true;  // lane 0's 11th record: its first batch
  sluice::tuning p;
  p.batch_size = 100;
  p.parallelization_factor = 2;
  p.maximum_retry_attempts = 1;
  p.backoff = sluice::backoff::fixed(1s);
  const auto r = sluice::simulate(records, linear(10ms, 100us), p);
  const sluice::duration call = 20ms;
  EXPECT_EQ(r.dead_lettered, 100u);
  EXPECT_EQ(r.succeeded, 1'900u);
  EXPECT_EQ(r.handler_calls, 21u);
  EXPECT_EQ(r.makespan, 1s + 10 * call);
  EXPECT_EQ(r.latency_p50, 10 * call);
  EXPECT_EQ(r.latency_max, 1s + 10 * call);
}

// Records arriving at a rate below the lane's capacity are handled as they come: with window 0
// and rate 100 records/s (one per 10 ms) against calls of 1 ms, each record is its own batch and
// waits exactly one call (1 ms); throughput is the arrival rate over the makespan.
TEST(Simulate, ArrivalsBelowCapacityWaitOneCall) {
  sluice::workload w;
  w.records = 1'000;
  w.keys = sluice::key_distribution::uniform(1);
  w.arrival = sluice::arrival_pattern::rate(100);
  sluice::tuning p;
  p.batch_size = 100;
  const auto r = sluice::simulate(w, linear(1ms, 0ms), p);
  EXPECT_EQ(r.handler_calls, 1'000u);
  EXPECT_EQ(r.latency_p50, 1ms);
  EXPECT_EQ(r.latency_p99, 1ms);
  // first arrival at 0, last at 9.99 s, its call ends 1 ms later
  EXPECT_EQ(r.makespan, 9990ms + 1ms);
}

// A batching window collects the records that arrive within it: rate 1,000/s, window 50 ms,
// batch 1,000: the first record opens a batch that closes 50 ms later with the 50 records
// that arrived meanwhile (t = 0, 1, ..., 49 ms) plus the one at exactly 50 ms (the reader reads
// it before the window is checked at that instant).
TEST(Simulate, BatchingWindowCollectsArrivals) {
  sluice::workload w;
  w.records = 10'000;
  w.keys = sluice::key_distribution::uniform(1);
  w.arrival = sluice::arrival_pattern::rate(1'000);
  sluice::tuning p;
  p.batch_size = 1'000;
  p.maximum_batching_window = 50ms;
  const auto r = sluice::simulate(w, linear(1ms, 0ms), p);
  EXPECT_NEAR(r.mean_batch, 51.0, 1.0);
  EXPECT_EQ(r.succeeded, 10'000u);
  EXPECT_GE(r.latency_max, 50ms);
  EXPECT_LE(r.latency_max, 51ms);
}

// Retries without bisect: a batch holding a poison record fails 1 + R times and is then
// dead-lettered whole. With one poison record in each of q of the n / B batches: handler calls
// n / B + q x R, re-delivered records q x R x B, dead-lettered q x B. Back-off fixed 1 s (no
// jitter), measured from the start of the failed call, and calls of 20 ms: a poisoned batch
// keeps its lane 2 x 1 s + 20 ms, a clean one 20 ms.
TEST(Simulate, RetriesRedeliverAndDeadLetterAsTheClosedFormSays) {
  const std::size_t n = 10'000;
  const std::uint32_t b = 100;
  auto records = even_over_lanes(n, 1);
  const std::size_t q = 7;
  for (std::size_t k = 0; k < q; ++k) records[k * 1'300 + 17].poison = true;  // batches 0, 13, ..
  sluice::tuning p;
  p.batch_size = b;
  p.maximum_retry_attempts = 2;
  p.backoff = sluice::backoff::fixed(1s);
  const auto r = sluice::simulate(records, linear(10ms, 100us), p);
  EXPECT_EQ(r.handler_calls, n / b + q * 2);
  EXPECT_EQ(r.failed_calls, q * 3);
  EXPECT_EQ(r.redelivered, q * 2 * b);
  EXPECT_EQ(r.dead_lettered, q * b);
  EXPECT_EQ(r.succeeded, n - q * b);
  EXPECT_EQ(r.makespan, (n / b - q) * 20ms + q * (2 * 1s + 20ms));
}

// Partial batch responses: the poison record at index i of its batch is reported; records
// before it succeed, the rest [i, B) is retried (1 + R more calls of B - i records) and then
// dead-lettered. Per poisoned batch: 1 + (1 + R) calls, re-delivered (B - i) x (1 + R),
// dead-lettered B - i.
TEST(Simulate, PartialBatchResponsesAsTheClosedFormSays) {
  const std::size_t n = 10'000;
  const std::uint32_t b = 100;
  const std::size_t i = 30;
  auto records = even_over_lanes(n, 1);
  const std::size_t q = 5;
  for (std::size_t k = 0; k < q; ++k) records[k * 2'000 + i].poison = true;
  sluice::tuning p;
  p.batch_size = b;
  p.maximum_retry_attempts = 2;
  p.backoff = sluice::backoff::fixed(1s);
  p.report_batch_item_failures = true;
  const auto r = sluice::simulate(records, linear(10ms, 100us), p);
  EXPECT_EQ(r.handler_calls, n / b + q * 3);
  EXPECT_EQ(r.redelivered, q * (b - i) * 3);
  EXPECT_EQ(r.dead_lettered, q * (b - i));
  EXPECT_EQ(r.succeeded, n - q * (b - i));
}

// Bisect with one poison record per poisoned batch of 2^k records and R = 0: each split halves
// the range holding the poison, the clean half succeeds at once; the single poison record
// fails once and is dead-lettered. Calls per poisoned batch: 1 + 2k (k splits, two halves each);
// records re-delivered: sum over the halves = 2^k - 1 + ... = 2 x (2^k - 1).
TEST(Simulate, BisectAsTheClosedFormSays) {
  const std::size_t n = 4'096;
  const std::uint32_t b = 64;  // k = 6
  auto records = even_over_lanes(n, 1);
  const std::size_t q = 4;
  for (std::size_t k = 0; k < q; ++k) records[k * 1'024 + 5].poison = true;
  sluice::tuning p;
  p.batch_size = b;
  p.maximum_retry_attempts = 0;
  p.bisect = true;
  const auto r = sluice::simulate(records, linear(1ms, 0ms), p);
  EXPECT_EQ(r.handler_calls, n / b + q * 2 * 6);
  EXPECT_EQ(r.bisect_splits, q * 6);
  EXPECT_EQ(r.redelivered, q * 2 * (b - 1));
  EXPECT_EQ(r.dead_lettered, q * 1);
}

// Record age (S-5.4): records older than maximum_record_age when their batch's attempt starts
// go to the on-failure destination without a call. One lane, 10,000 records at once, batch
// 100, calls of 20 ms, age 500 ms: batch k starts at (k - 1) x 20 ms, so batches 1..26 are
// called (batch 26 at exactly 500 ms is not older) and the other 74 are dead-lettered at 520 ms.
TEST(Simulate, RecordAgeDiscardsWithoutCalls) {
  const auto records = even_over_lanes(10'000, 1);
  sluice::tuning p;
  p.batch_size = 100;
  p.maximum_record_age = 500ms;
  const auto r = sluice::simulate(records, linear(10ms, 100us), p);
  EXPECT_EQ(r.handler_calls, 26u);
  EXPECT_EQ(r.succeeded, 2'600u);
  EXPECT_EQ(r.dead_lettered, 7'400u);
  EXPECT_EQ(r.makespan, 26 * 20ms);
  EXPECT_EQ(r.redelivered, 0u);
}

// A downstream that takes at most 2 calls at once, fed by 4 lanes: calls beyond 2 are
// throttled (and retried without consuming attempts), never more than 2 run at once, so the
// throughput cannot pass 2 x B / L; every record still succeeds exactly once.
TEST(Simulate, ConcurrencyCapacityThrottles) {
  const auto records = even_over_lanes(8'000, 4);
  auto model = linear(10ms, 100us);
  model.max_concurrent_calls = 2;
  sluice::tuning p;
  p.batch_size = 100;
  p.parallelization_factor = 4;
  p.backoff = sluice::backoff::fixed(5ms);
  const auto r = sluice::simulate(records, model, p);
  EXPECT_GT(r.throttles, 0u);
  EXPECT_EQ(r.peak_concurrent_calls, 2u);
  EXPECT_LE(r.throughput, 2 * 100 / 0.020 + 1e-6);
  EXPECT_EQ(r.succeeded, 8'000u);
  EXPECT_EQ(r.handler_calls, 80u + r.throttles);
  EXPECT_EQ(r.redelivered, r.throttles * 100);
}

// Shards run side by side like lanes: 2 shards x P 1 with the records spread evenly over the
// shards take as long as 1 shard x P 2, n / (2 x B) calls of L.
TEST(Simulate, ShardsRunConcurrently) {
  std::uint64_t key_of_shard[2] = {~std::uint64_t{0}, ~std::uint64_t{0}};
  for (std::uint64_t k = 0;
       key_of_shard[0] == ~std::uint64_t{0} || key_of_shard[1] == ~std::uint64_t{0}; ++k)
    key_of_shard[sluice::shard_for(sluice::key_hash(k), 2)] = k;
  std::vector<sluice::generated_record> records(10'000);
  for (std::size_t i = 0; i < records.size(); ++i) {
    records[i].index = i;
    records[i].key = key_of_shard[i % 2];
  }
  sluice::tuning p;
  p.shards = 2;
  p.batch_size = 100;
  const auto r = sluice::simulate(records, linear(10ms, 100us), p);
  EXPECT_EQ(r.makespan, 50 * 20ms);
  EXPECT_EQ(r.handler_calls, 100u);
  EXPECT_EQ(r.peak_concurrent_calls, 2u);
}

// A records/s capacity (token bucket holding one second's worth): 4 lanes that could move
// 40,000 records/s against a downstream that takes 10,000/s. Calls beyond it are throttled and
// retried after a fixed 10 ms; what gets through is bounded by the bucket: at most the rate x
// the makespan plus the initial second's worth plus one call per lane that overdraws it.
TEST(Simulate, RateCapacityThrottles) {
  const auto records = even_over_lanes(100'000, 4);
  auto model = linear(10ms, 0ms);
  model.max_records_per_second = 10'000;
  sluice::tuning p;
  p.batch_size = 100;
  p.parallelization_factor = 4;
  p.backoff = sluice::backoff::fixed(10ms);
  const auto r = sluice::simulate(records, model, p);
  EXPECT_GT(r.throttles, 0u);
  EXPECT_EQ(r.succeeded, 100'000u);
  EXPECT_LE(static_cast<double>(r.succeeded), 10'000 * seconds(r.makespan) + 10'000 + 4 * 100);
  EXPECT_GE(r.throughput, 0.8 * 10'000);  // it does get through, near the rate
  EXPECT_EQ(r.redelivered, r.throttles * 100);
}

// The random part of the latency has the mean its shape says: one lane, 2,000 calls of
// 10 ms + jitter; uniform in [0, 8 ms] adds 4 ms on average, exponential with mean 4 ms too.
// (A fixed seed: the draws, hence the result, are the same every run.)
TEST(Simulate, JitterHasItsMean) {
  const auto records = even_over_lanes(2'000, 1);
  sluice::tuning p;
  p.batch_size = 1;
  for (auto shape : {sluice::downstream_model::jitter_shape::uniform,
                     sluice::downstream_model::jitter_shape::exponential}) {
    auto model = linear(10ms, 0ms);
    model.jitter_kind = shape;
    model.jitter = shape == sluice::downstream_model::jitter_shape::uniform ? 8ms : 4ms;
    const auto r = sluice::simulate(records, model, p);
    ASSERT_EQ(r.handler_calls, 2'000u);
    const double mean_ms = seconds(r.makespan) * 1e3 / 2'000;
    EXPECT_NEAR(mean_ms, 14.0, 0.4) << static_cast<int>(shape);
  }
}

// Transient failures are retried until they pass: with infinite retries and a 1 % failure
// rate per record, every record succeeds, some more than once, and none is dead-lettered.
TEST(Simulate, TransientFailuresAreRetried) {
  const auto records = even_over_lanes(10'000, 2);
  auto model = linear(1ms, 10us);
  model.failure_rate = 0.01;
  for (bool report : {false, true}) {
    sluice::tuning p;
    p.batch_size = 50;
    p.parallelization_factor = 2;
    p.backoff = sluice::backoff::fixed(5ms);
    p.report_batch_item_failures = report;
    const auto r = sluice::simulate(records, model, p);
    EXPECT_EQ(r.succeeded, 10'000u);
    EXPECT_EQ(r.dead_lettered, 0u);
    EXPECT_GT(r.redelivered, 0u);
    EXPECT_GT(r.handler_calls, 200u);
  }
}

// Deterministic: the same workload, model and configuration give the same result, also with
// random latencies and failures, and a sweep gives each point's result whatever its threads.
TEST(Simulate, IsDeterministic) {
  sluice::workload w;
  w.records = 20'000;
  w.keys = sluice::key_distribution::zipf(500, 1.1);
  w.arrival = sluice::arrival_pattern::rate(5'000);
  w.poison_rate = 0.0005;
  sluice::downstream_model m = linear(5ms, 50us);
  m.jitter_kind = sluice::downstream_model::jitter_shape::exponential;
  m.jitter = 3ms;
  m.failure_rate = 0.001;
  m.max_concurrent_calls = 3;
  sluice::tuning_grid grid;
  grid.base.maximum_retry_attempts = 3;
  grid.batch_sizes = {10, 100};
  grid.parallelization_factors = {1, 4};
  grid.bisect = {false, true};
  const auto points = grid.points();
  ASSERT_EQ(points.size(), 8u);
  sluice::simulation_options one, two;
  two.threads = 2;
  const auto a = sluice::sweep(w, m, points, one);
  const auto b = sluice::sweep(w, m, points, two);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(a[i].handler_calls, b[i].handler_calls);
    EXPECT_EQ(a[i].makespan, b[i].makespan);
    EXPECT_EQ(a[i].latency_p99, b[i].latency_p99);
    EXPECT_EQ(a[i].redelivered, b[i].redelivered);
    EXPECT_EQ(a[i].dead_lettered, b[i].dead_lettered);
    EXPECT_EQ(a[i].throttles, b[i].throttles);
    EXPECT_EQ(a[i].succeeded + a[i].dead_lettered, w.records);
    const auto single = sluice::simulate(w, m, points[i]);
    EXPECT_EQ(single.handler_calls, a[i].handler_calls);
    EXPECT_EQ(single.latency_p50, a[i].latency_p50);
  }
}

TEST(Simulate, RejectsInvalidConfiguration) {
  sluice::workload w;
  w.records = 10;
  sluice::tuning p;
  p.batch_size = 0;
  EXPECT_THROW(sluice::simulate(w, {}, p), sluice::configuration_error);
  p.batch_size = 10;
  p.parallelization_factor = 0;
  EXPECT_THROW(sluice::simulate(w, {}, p), sluice::configuration_error);
  sluice::downstream_model m;
  m.failure_rate = 2;
  EXPECT_THROW(sluice::simulate(w, m, sluice::tuning{}), sluice::configuration_error);
  m = sluice::downstream_model{};
  m.fixed_latency = 0ms;  // and no per-record latency: virtual time could stand still
  EXPECT_THROW(sluice::simulate(w, m, sluice::tuning{}), sluice::configuration_error);
  m = sluice::downstream_model{};
  m.throttle_latency = 0ms;
  EXPECT_THROW(sluice::simulate(w, m, sluice::tuning{}), sluice::configuration_error);
  m = sluice::downstream_model{};
  m.jitter = -1ms;
  EXPECT_THROW(sluice::simulate(w, m, sluice::tuning{}), sluice::configuration_error);
  EXPECT_THROW(sluice::key_distribution::zipf(10, -1), sluice::configuration_error);
  auto records = even_over_lanes(3, 1);
  records[0].arrival = 1s;  // records must come in arrival order
  EXPECT_THROW(sluice::simulate(records, {}, sluice::tuning{}), sluice::configuration_error);
}

// What the simulator predicts is what the engine does: with one lane there is no concurrency to
// model, so sluice::run on a manual clock, with a handler that moves the clock by the call's
// latency, is the same runtime. Both see the same handler calls (virtual start time, first
// record, size), in the same order, for retries with back-off, bisect, partial responses and
// record age.
TEST(Simulate, OneLaneAgreesWithSluiceRun) {
  using call = std::tuple<sluice::time_point, sluice::sequence_number_t, std::size_t>;
  auto records = even_over_lanes(3'000, 1);
  for (std::size_t i : {17u, 240u, 1'111u, 1'112u, 2'999u}) records[i].poison = true;
  const auto model = linear(3ms, 20us);
  for (int policy = 0; policy < 4; ++policy) {
    SCOPED_TRACE(policy);
    sluice::tuning p;
    p.batch_size = 64;
    p.maximum_retry_attempts = 2;
    p.backoff = sluice::backoff::exponential(10ms, 2.0, 1s, true);  // jitter: same draws
    p.bisect = policy == 1;
    p.report_batch_item_failures = policy == 2;
    if (policy == 3) p.maximum_record_age = 150ms;  // later batches expire before their call

    std::vector<call> simulated;
    sluice::simulation_options o;
    o.on_call = [&](sluice::time_point t, const sluice::batch<sluice::simulated_record>& b) {
      simulated.emplace_back(t, b.first_sequence(), b.size());
    };
    const auto r = sluice::simulate(records, model, p, o);

    // The same mapping, run by sluice::run.
    const sluice::time_point t0 = sluice::detail::simulation_start;
    sluice::manual_clock clock(t0, sluice::manual_clock::auto_advance);
    std::vector<sluice::simulated_record> stream;
    for (const auto& g : records)
      stream.push_back({g.key, g.index + 1, t0, g.index, g.bytes, g.poison});
    std::vector<call> real;
    auto handler = [&](const sluice::batch<sluice::simulated_record>& b) {
      real.emplace_back(clock.now(), b.first_sequence(), b.size());
      clock.advance(model.fixed_latency + model.per_record_latency * static_cast<long>(b.size()));
      sluice::batch_item_failures failed;
      for (const auto& rec : b)
        if (rec.poison) failed.add(rec.sequence);
      if (!failed.empty() && !p.report_batch_item_failures) throw std::runtime_error("poison");
      return failed;
    };
    auto base = sluice::from(stream) | sluice::batching(sluice::batch_size(p.batch_size)) |
                sluice::retry(sluice::maximum_retry_attempts(2),
                              sluice::maximum_record_age_param{p.maximum_record_age}, p.backoff);
    sluice::memory_destination<sluice::simulated_record> dlq;
    sluice::metrics_snapshot m;
    if (policy == 0 || policy == 3)
      m = sluice::run(std::move(base) | sluice::on_failure(dlq) | sluice::invoke(handler),
                      sluice::with_clock(clock));
    else if (policy == 1)
      m = sluice::run(std::move(base) | sluice::bisect_batch_on_function_error |
                          sluice::on_failure(dlq) | sluice::invoke(handler),
                      sluice::with_clock(clock));
    else
      m = sluice::run(std::move(base) | sluice::report_batch_item_failures |
                          sluice::on_failure(dlq) | sluice::invoke(handler),
                      sluice::with_clock(clock));
    ASSERT_GT(real.size(), policy == 3 ? 10u : 3'000u / 64);
    if (policy == 3) {
      EXPECT_GT(m.total.on_failure_destination_delivered_event_count, 1'000u);
    }
    EXPECT_EQ(simulated, real);
    EXPECT_EQ(r.handler_calls, m.total.invocations);
    EXPECT_EQ(r.dead_lettered, m.total.on_failure_destination_delivered_event_count);
    EXPECT_EQ(r.succeeded, m.total.succeeded_event_count);
    EXPECT_EQ(r.iterator_age_max_ms, m.total.iterator_age_max_ms);
  }
}
