// Downstream limits (sluice/limits.hpp, detail/pipeline/limiter.hpp): validation of the stages,
// the token bucket's exact arithmetic on a given clock, the AIMD controller's exact steps on a
// scripted sequence of successes and throttles, the gate's FIFO order and interrupt, and the
// Prometheus series of a limited mapping.
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/detail/pipeline/limiter.hpp"
#include "sluice/exporters/prometheus.hpp"
#include "sluice/sluice.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;
using V = sluice::record<int, std::uint64_t>;  // what sluice::from(a vector) hands out

namespace {

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const sluice::configuration_error& e) {
    return e.what();
  }
  return "(no error)";
}

const sluice::time_point t0 = sluice::time_point{} + 1000h;

}  // namespace

// ---- validation ---------------------------------------------------------------------------------

TEST(LimitsValidation, MaximumConcurrencyIsLambdasTwoToOneThousand) {
  EXPECT_EQ(error_of([] { (void)sluice::maximum_concurrency(1); }),
            "sluice: maximum_concurrency = 1 is out of range; allowed: 2..1000");
  EXPECT_EQ(error_of([] { (void)sluice::maximum_concurrency(1001); }),
            "sluice: maximum_concurrency = 1001 is out of range; allowed: 2..1000");
  EXPECT_EQ(sluice::maximum_concurrency(2).maximum, 2u);
  EXPECT_EQ(sluice::maximum_concurrency(1000).maximum, 1000u);
  EXPECT_FALSE(sluice::maximum_concurrency(7).adaptive);
}

TEST(LimitsValidation, AdaptiveConcurrencyNamesEachParameter) {
  EXPECT_EQ(error_of([] { (void)sluice::adaptive_concurrency(0, 10); }),
            "sluice: adaptive_concurrency minimum = 0 is out of range; allowed: 1..1000");
  EXPECT_EQ(error_of([] { (void)sluice::adaptive_concurrency(5, 4); }),
            "sluice: adaptive_concurrency maximum = 4 is out of range; allowed: 5..1000 "
            "(minimum..1000)");
  EXPECT_EQ(error_of([] { (void)sluice::adaptive_concurrency(1, 1001); }),
            "sluice: adaptive_concurrency maximum = 1001 is out of range; allowed: 1..1000 "
            "(minimum..1000)");
  EXPECT_EQ(
      error_of([] { (void)sluice::adaptive_concurrency(1, 10, 0.3); }),
      "sluice: adaptive_concurrency decrease_factor = 0.3 is out of range; allowed: 0.5..0.95");
  const auto a = sluice::adaptive_concurrency(1, 10);
  EXPECT_TRUE(a.adaptive);
  EXPECT_EQ(a.minimum, 1u);
  EXPECT_EQ(a.maximum, 10u);
  EXPECT_DOUBLE_EQ(a.decrease_factor, 0.9);
}

TEST(LimitsValidation, RateLimitNamesRateAndBurst) {
  EXPECT_EQ(error_of([] { (void)sluice::rate_limit(sluice::records_per_second(0)); }),
            "sluice: records_per_second rate = 0 is out of range; allowed: > 0 and <= 1e9");
  EXPECT_EQ(error_of([] { (void)sluice::rate_limit(sluice::invocations_per_second(-2)); }),
            "sluice: invocations_per_second rate = -2 is out of range; allowed: > 0 and <= 1e9");
  EXPECT_EQ(error_of([] { (void)sluice::rate_limit(sluice::records_per_second(100, 0.5)); }),
            "sluice: records_per_second burst = 0.5 is out of range; allowed: 1..1e9");
  EXPECT_EQ(error_of([] { (void)sluice::rate_limit(sluice::invocations_per_second(2e9)); }),
            "sluice: invocations_per_second rate = 2000000000 is out of range; allowed: > 0 and "
            "<= 1e9");
  // Default burst: one second's worth, at least 1.
  const auto r =
      sluice::rate_limit(sluice::records_per_second(250), sluice::invocations_per_second(0.5));
  EXPECT_DOUBLE_EQ(r.records.per_second, 250);
  EXPECT_DOUBLE_EQ(r.records.burst, 250);
  EXPECT_DOUBLE_EQ(r.invocations.per_second, 0.5);
  EXPECT_DOUBLE_EQ(r.invocations.burst, 1);
  const auto only = sluice::rate_limit(sluice::invocations_per_second(10, 3));
  EXPECT_DOUBLE_EQ(only.records.per_second, 0);  // not limited
  EXPECT_DOUBLE_EQ(only.invocations.burst, 3);
}

// ---- token bucket -------------------------------------------------------------------------------

TEST(TokenBucket, BurstThenRate) {
  sluice::detail::token_bucket b({10, 5}, t0);  // 10 tokens/s, burst 5, starts full
  for (int i = 0; i < 5; ++i) {
    ASSERT_FALSE(b.ready_at(1, t0)) << "call " << i << " of the burst";
    b.take(1);
  }
  const auto next = b.ready_at(1, t0);
  ASSERT_TRUE(next);
  EXPECT_GE(*next, t0 + 100ms);  // one token takes 1/10 s
  EXPECT_LE(*next, t0 + 100ms + 1us);
  EXPECT_TRUE(b.ready_at(1, t0 + 99ms));  // not yet
  ASSERT_FALSE(b.ready_at(1, *next));
  b.take(1);
  // Then one per 100 ms, never more: in 1 s after the burst, exactly 10 more.
  int granted = 0;
  for (auto t = *next + 1ms; t <= *next + 1000ms; t += 1ms) {
    if (!b.ready_at(1, t)) {
      b.take(1);
      ++granted;
    }
  }
  EXPECT_EQ(granted, 10);
}

TEST(TokenBucket, RefillStopsAtTheBurst) {
  sluice::detail::token_bucket b({10, 5}, t0);
  b.take(5);
  EXPECT_NEAR(b.tokens(t0 + 10s), 5.0, 1e-9);  // ten idle seconds refill only up to the burst
}

TEST(TokenBucket, ARequestAboveTheBurstPassesWhenFullAndLeavesDebt) {
  sluice::detail::token_bucket b({10, 5}, t0);
  ASSERT_FALSE(b.ready_at(20, t0));  // a batch of 20 records with burst 5: full bucket is enough
  b.take(20);
  EXPECT_NEAR(b.tokens(t0), -15.0, 1e-9);
  const auto next = b.ready_at(1, t0);  // 16 tokens to accrue: 1.6 s
  ASSERT_TRUE(next);
  EXPECT_GE(*next, t0 + 1600ms);
  EXPECT_LE(*next, t0 + 1600ms + 1us);
}

// ---- AIMD controller ----------------------------------------------------------------------------

TEST(AimdController, ExactStepsOnAScriptedSequence) {
  sluice::detail::aimd_controller c(sluice::adaptive_concurrency(2, 12, 0.5));
  EXPECT_EQ(c.limit(), 2u);  // starts at the minimum
  EXPECT_TRUE(c.slow_start());
  // Slow start: each success +1.
  std::vector<std::uint32_t> limits;
  for (int i = 0; i < 6; ++i) {
    c.on_success(c.epoch());
    limits.push_back(c.limit());
  }
  EXPECT_EQ(limits, (std::vector<std::uint32_t>{3, 4, 5, 6, 7, 8}));
  // A throttle halves it (floor(8 * 0.5) = 4) and ends slow start.
  const std::uint64_t before = c.epoch();
  EXPECT_TRUE(c.on_throttle(before));
  EXPECT_EQ(c.limit(), 4u);
  EXPECT_FALSE(c.slow_start());
  // Throttles of calls that began before the decrease do not lower it again.
  EXPECT_FALSE(c.on_throttle(before));
  EXPECT_FALSE(c.on_throttle(before));
  EXPECT_EQ(c.limit(), 4u);
  // Congestion avoidance: +1 per round of `limit` successes.
  for (int i = 0; i < 3; ++i) c.on_success(c.epoch());
  EXPECT_EQ(c.limit(), 4u);
  c.on_success(c.epoch());  // the 4th success of the round
  EXPECT_EQ(c.limit(), 5u);
  for (int i = 0; i < 5; ++i) c.on_success(c.epoch());
  EXPECT_EQ(c.limit(), 6u);
  // A throttle in the new epoch lowers it: floor(6 * 0.5) = 3.
  EXPECT_TRUE(c.on_throttle(c.epoch()));
  EXPECT_EQ(c.limit(), 3u);
  // Never below the minimum: floor(3 * 0.5) = 1 -> 2.
  EXPECT_TRUE(c.on_throttle(c.epoch()));
  EXPECT_EQ(c.limit(), 2u);
  EXPECT_FALSE(c.on_throttle(c.epoch()));  // already at the minimum
  EXPECT_EQ(c.limit(), 2u);
  EXPECT_EQ(c.decreases(), 3u);
  EXPECT_EQ(c.increases(), 8u);
}

TEST(AimdController, GrowsOnlyFromCallsTheLimitHeldBack) {
  sluice::detail::aimd_controller c(sluice::adaptive_concurrency(4, 100));
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(c.on_success(c.epoch(), /*saturated=*/false));
  EXPECT_EQ(c.limit(), 4u);  // lanes never filled the limit: it did not drift up
  EXPECT_TRUE(c.on_success(c.epoch(), /*saturated=*/true));
  EXPECT_EQ(c.limit(), 5u);
}

TEST(AimdController, NeverAboveTheMaximum) {
  sluice::detail::aimd_controller c(sluice::adaptive_concurrency(1, 3));
  for (int i = 0; i < 100; ++i) c.on_success(c.epoch());
  EXPECT_EQ(c.limit(), 3u);
}

TEST(AimdController, AFixedLimitNeverMoves) {
  sluice::detail::aimd_controller c(sluice::maximum_concurrency(5));
  EXPECT_EQ(c.limit(), 5u);
  EXPECT_FALSE(c.on_throttle(c.epoch()));
  EXPECT_FALSE(c.on_success(c.epoch()));
  EXPECT_EQ(c.limit(), 5u);
}

// ---- the gate -----------------------------------------------------------------------------------

TEST(ConcurrencyGate, TryAcquireRespectsAnAdjustableLimit) {
  sluice::detail::concurrency_gate g(2);
  EXPECT_TRUE(g.try_acquire());
  EXPECT_TRUE(g.try_acquire());
  EXPECT_FALSE(g.try_acquire());
  g.set_limit(3);
  EXPECT_TRUE(g.try_acquire());
  EXPECT_EQ(g.in_flight(), 3u);
  g.set_limit(1);  // lower than the holders: no new entry until two leave
  g.release();
  EXPECT_FALSE(g.try_acquire());
  g.release();
  EXPECT_FALSE(g.try_acquire());
  g.release();
  EXPECT_TRUE(g.try_acquire());
}

TEST(ConcurrencyGate, InterruptWakesAWaiterWithoutAPermit) {
  sluice::detail::concurrency_gate g(1);
  ASSERT_TRUE(g.acquire());
  bool got = true;
  std::thread waiter([&] { got = g.acquire(); });
  while (g.waits() == 0) std::this_thread::yield();  // the waiter is waiting
  g.interrupt();
  waiter.join();
  EXPECT_FALSE(got);
  EXPECT_EQ(g.in_flight(), 1u);
  EXPECT_FALSE(g.acquire());  // later calls fail at once
}

TEST(ConcurrencyGate, WaitersEnterInArrivalOrder) {
  sluice::detail::concurrency_gate g(1);
  ASSERT_TRUE(g.acquire());
  std::vector<int> order;
  std::mutex m;
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&, i] {
      ASSERT_TRUE(g.acquire());
      {
        std::lock_guard lock(m);
        order.push_back(i);
      }
      g.release();
    });
    while (g.waits() < static_cast<std::uint64_t>(i + 1)) std::this_thread::yield();
  }
  g.release();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

// ---- limiter ------------------------------------------------------------------------------------

TEST(Limiter, TakesTokensOfBothBucketsOrNone) {
  sluice::limits_config c;
  c.rate = sluice::rate_limit(sluice::records_per_second(100, 100),
                              sluice::invocations_per_second(2, 2));
  sluice::detail::limiter l(c, t0);
  EXPECT_FALSE(l.admit(40, t0));
  EXPECT_FALSE(l.admit(40, t0));
  const auto later = l.admit(10, t0);  // records left (20) but no invocation token
  ASSERT_TRUE(later);
  EXPECT_GE(*later, t0 + 500ms);
  EXPECT_LE(*later, t0 + 500ms + 1us);
  // The record tokens were not taken by the refused call: 20 + 50 accrued by then.
  EXPECT_FALSE(l.admit(70, *later));
  EXPECT_EQ(l.snapshot().rate_limit_waits, 1u);
}

TEST(Limiter, ThrottleFeedbackMovesTheGate) {
  using sluice::detail::call_feedback;
  sluice::limits_config c;
  c.concurrency = sluice::adaptive_concurrency(1, 8, 0.5);
  sluice::detail::limiter l(c, t0);
  EXPECT_EQ(l.snapshot().concurrency_limit, 1u);
  const auto p = l.enter();  // the last free slot of 1: saturated
  ASSERT_TRUE(p);
  EXPECT_TRUE(p.saturated);
  l.leave(p, call_feedback::success);
  EXPECT_EQ(l.snapshot().concurrency_limit, 2u);  // slow start
  const auto a = l.enter(), b = l.enter();
  EXPECT_FALSE(a.saturated);  // a slot to spare
  EXPECT_TRUE(b.saturated);
  l.leave(a, call_feedback::success);  // the limit did not hold it back: no change
  EXPECT_EQ(l.snapshot().concurrency_limit, 2u);
  l.leave(b, call_feedback::success);
  EXPECT_EQ(l.snapshot().concurrency_limit, 3u);
  const auto x = l.enter(), y = l.enter(), z = l.enter();
  EXPECT_TRUE(z.saturated);
  l.leave(z, call_feedback::success);    // 3 -> 4
  l.leave(x, call_feedback::throttled);  // 4 -> 2
  l.leave(y, call_feedback::throttled);  // same epoch as x: ignored
  const auto s = l.snapshot();
  EXPECT_EQ(s.concurrency_limit, 2u);
  EXPECT_EQ(s.concurrency_decreases, 1u);
  EXPECT_EQ(s.concurrency_increases, 3u);
  EXPECT_EQ(s.concurrent_invocations, 0u);
  const auto d = l.enter();
  l.leave(d, call_feedback::neutral);  // a function error: no signal
  EXPECT_EQ(l.snapshot().concurrency_limit, 2u);
}

TEST(Limiter, AWaitingCallIsSaturated) {
  sluice::limits_config c;
  c.concurrency = sluice::maximum_concurrency(2);
  sluice::detail::limiter l(c, t0);
  const auto a = l.enter(), b = l.enter();
  EXPECT_FALSE(l.try_enter());  // full
  sluice::detail::permit waited;
  std::thread t([&] { waited = l.enter(); });
  while (l.snapshot().concurrency_waits == 0) std::this_thread::yield();
  l.leave(a, sluice::detail::call_feedback::success);
  t.join();
  EXPECT_TRUE(waited);
  EXPECT_TRUE(waited.saturated);
  EXPECT_EQ(l.snapshot().concurrent_invocations, 2u);
  l.leave(b, sluice::detail::call_feedback::success);
  l.leave(waited, sluice::detail::call_feedback::success);
  EXPECT_EQ(l.snapshot().concurrency_limit, 2u);  // fixed: never moves
}

// ---- in a mapping -------------------------------------------------------------------------------

TEST(LimitsInAMapping, RunAcceptsMaximumConcurrencyAndReportsIt) {
  std::vector<int> seen;
  const auto m = sluice::run(
      sluice::from(std::vector<int>{1, 2, 3, 4}) | sluice::batching(sluice::batch_size(1)) |
      sluice::maximum_concurrency(10) | sluice::invoke([&](const sluice::batch<V>& b) {
        for (const V& r : b) seen.push_back(r.payload);
      }));
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3, 4}));
  ASSERT_TRUE(m.limits);
  EXPECT_EQ(m.limits->concurrency_limit, 10u);
  EXPECT_EQ(m.limits->concurrent_invocations, 0u);
  EXPECT_EQ(m.limits->concurrency_waits, 0u);  // one thread never waits
}

TEST(LimitsInAMapping, AMappingWithoutLimitsHasNoLimitsMetrics) {
  const auto m = sluice::run(sluice::from(std::vector<int>{1, 2}) |
                             sluice::invoke([](const sluice::batch<V>&) {}));
  EXPECT_FALSE(m.limits);
  EXPECT_EQ(sluice::to_prometheus(m).find("sluice_concurrency_limit"), std::string::npos);
}

TEST(LimitsInAMapping, PrometheusServesTheLimitsSeries) {
  sluice::manual_clock clock(t0, sluice::manual_clock::auto_advance);
  const auto m = sluice::run(sluice::from(std::vector<int>{1, 2, 3}) |
                                 sluice::batching(sluice::batch_size(1)) |
                                 sluice::adaptive_concurrency(2, 50) |
                                 sluice::rate_limit(sluice::invocations_per_second(1, 1)) |
                                 sluice::invoke([](const sluice::batch<V>&) {}),
                             sluice::with_clock(clock), sluice::mapping_name("limited"));
  const std::string text = sluice::to_prometheus(m);
  // One call at a time never fills a limit of 2: it stays.
  EXPECT_NE(text.find("sluice_concurrency_limit{mapping=\"limited\"} 2\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("sluice_concurrent_invocations{mapping=\"limited\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_concurrency_limit_increases_total{mapping=\"limited\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("sluice_rate_limit_waits_total{mapping=\"limited\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE sluice_rate_limit_waits_total counter\n"), std::string::npos);
}
