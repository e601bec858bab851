// Downstream limits (sluice/limits.hpp) as exact traces on a manual clock in auto-advance mode,
// each with sluice::run and with sluice::start: the token bucket lets a burst through and then
// paces calls at its rate (in invocations and in records), and adaptive concurrency moves its
// limit by the exact AIMD steps on a scripted sequence of throttles.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "sluice/sluice.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;

namespace {

enum class mode { run, start_inline, start_handoff };

class LimitsTraces : public ::testing::TestWithParam<mode> {
 protected:
  sluice::manual_clock clock{sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance};
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream{1, clock};
  sluice::time_point t0 = clock.now();
  std::vector<sluice::duration> call_times;  // since t0, one per handler call
  std::vector<int> handled;

  void put(int n) {
    for (int i = 1; i <= n; ++i) stream.put("k", i);
  }

  template <class Mapping>
  sluice::metrics_snapshot drive(Mapping&& m) {
    if (GetParam() == mode::run) return sluice::run(std::move(m), sluice::with_clock(clock));
    auto running = sluice::start(
        std::move(m), sluice::with_clock(clock), sluice::workers(1),
        sluice::execution(GetParam() == mode::start_inline ? sluice::execution_mode::inline_only
                                                           : sluice::execution_mode::handoff));
    EXPECT_TRUE(running.wait_until_caught_up(60s));
    auto snapshot = running.metrics();
    running.stop();
    return snapshot;
  }

  auto record_calls() {
    return [this](const sluice::batch<R>& b) {
      call_times.push_back(clock.now() - t0);
      for (const R& r : b) handled.push_back(r.payload);
    };
  }

  /// The k-th call (0-based) happened at `expected` after t0 (the bucket rounds each wait up by
  /// at most a nanosecond per call).
  void expect_call_at(std::size_t k, sluice::duration expected) {
    ASSERT_LT(k, call_times.size());
    EXPECT_GE(call_times[k], expected) << "call " << k;
    EXPECT_LE(call_times[k], expected + 1us) << "call " << k;
  }
};

std::vector<int> one_to(int n) {
  std::vector<int> v;
  for (int i = 1; i <= n; ++i) v.push_back(i);
  return v;
}

}  // namespace

// invocations_per_second(10, burst 3): three calls at once, then one per 100 ms.
TEST_P(LimitsTraces, InvocationBucketBurstThenRate) {
  put(8);
  const auto m = drive(sluice::from(stream) | sluice::batching(sluice::batch_size(1)) |
                       sluice::rate_limit(sluice::invocations_per_second(10, 3)) |
                       sluice::invoke(record_calls()));
  ASSERT_EQ(call_times.size(), 8u);
  for (std::size_t k = 0; k < 3; ++k) expect_call_at(k, 0ms);
  for (std::size_t k = 3; k < 8; ++k) expect_call_at(k, (k - 2) * 100ms);
  EXPECT_EQ(handled, one_to(8));  // order kept while waiting
  ASSERT_TRUE(m.limits);
  EXPECT_GE(m.limits->rate_limit_waits, 5u);  // each paced call waited at least once
  EXPECT_EQ(m.total.throttles, 0u);           // pacing is not a failure
  EXPECT_EQ(m.total.retries, 0u);
}

// records_per_second(100, burst 10) with batches of 10: one batch at once, then one per 100 ms.
TEST_P(LimitsTraces, RecordBucketPacesBatchesByTheirSize) {
  put(50);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
        sluice::rate_limit(sluice::records_per_second(100, 10)) | sluice::invoke(record_calls()));
  ASSERT_EQ(call_times.size(), 5u);
  for (std::size_t k = 0; k < 5; ++k) expect_call_at(k, k * 100ms);
  EXPECT_EQ(handled, one_to(50));
}

// Both buckets: the stricter one paces (records: 20/s with batches of 5 = 4 calls/s; calls:
// 10/s), after a burst of 2 calls that both allow.
TEST_P(LimitsTraces, BothBucketsTheStricterOnePaces) {
  put(30);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(5)) |
        sluice::rate_limit(sluice::invocations_per_second(10, 2),
                           sluice::records_per_second(20, 10)) |
        sluice::invoke(record_calls()));
  ASSERT_EQ(call_times.size(), 6u);
  expect_call_at(0, 0ms);
  expect_call_at(1, 0ms);
  for (std::size_t k = 2; k < 6; ++k) expect_call_at(k, (k - 1) * 250ms);
  EXPECT_EQ(handled, one_to(30));
}

// AIMD on a scripted throttle sequence, one call at a time: adaptive_concurrency(1, 100, 0.5).
// The limit grows only from calls it held back (the call took the last free slot), so with one
// call at a time it moves between 1 and 2:
//   call 1 (record 1) succeeds at limit 1, the last slot: slow start, 1 -> 2
//   calls 2, 3 succeed with a slot to spare: no change
//   call 4 (record 4) is throttled: 2 -> 1, slow start ends
//   call 5 (record 4 again) succeeds at limit 1: one round of 1 success, 1 -> 2
//   call 6 succeeds with a slot to spare; call 7 (record 6) is throttled: 2 -> 1
//   call 8 (record 6 again) succeeds at limit 1: 1 -> 2
TEST_P(LimitsTraces, AdaptiveConcurrencyStepsOnScriptedThrottles) {
  put(6);
  int call = 0;
  std::vector<int> throttled_records;
  const auto m = drive(sluice::from(stream) | sluice::batching(sluice::batch_size(1)) |
                       sluice::retry(sluice::backoff::fixed(10ms)) |
                       sluice::adaptive_concurrency(1, 100, 0.5) |
                       sluice::invoke([&](const sluice::batch<R>& b) {
                         ++call;
                         if (call == 4 || call == 7) {
                           throttled_records.push_back(b.records()[0].payload);
                           throw sluice::throttled("downstream at capacity");
                         }
                         for (const R& r : b) handled.push_back(r.payload);
                       }));
  EXPECT_EQ(call, 8);
  EXPECT_EQ(handled, one_to(6));
  EXPECT_EQ(throttled_records, (std::vector<int>{4, 6}));
  ASSERT_TRUE(m.limits);
  EXPECT_EQ(m.total.throttles, 2u);
  EXPECT_EQ(m.limits->concurrency_decreases, 2u);
  EXPECT_EQ(m.limits->concurrency_increases, 3u);
  EXPECT_EQ(m.limits->concurrency_limit, 2u);
  EXPECT_EQ(m.limits->concurrent_invocations, 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, LimitsTraces,
                         ::testing::Values(mode::run, mode::start_inline, mode::start_handoff),
                         [](const auto& info) {
                           switch (info.param) {
                             case mode::run:
                               return std::string("run");
                             case mode::start_inline:
                               return std::string("start_inline");
                             default:
                               return std::string("start_handoff");
                           }
                         });
