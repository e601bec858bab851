// Downstream limits under sluice::start's threads (also run under ThreadSanitizer):
// maximum_concurrency is never exceeded across 32 lanes on 8 workers while per-key order holds
// (and the same mapping without it does exceed it: the test can fail); a stop wakes calls waiting
// for a permit without letting them call the handler; a call waiting for rate-limit tokens holds
// back its reader (bounded memory, no bypass); adaptive concurrency keeps order and loses nothing
// against a downstream that throttles above a fixed capacity.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sluice/sluice.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;

namespace {

constexpr int keys = 64;

/// Fills 8 shards with `per_key` records for each of 64 keys; a payload is its key's counter.
void fill(sluice::memory_stream<int>& stream, int per_key) {
  for (int i = 0; i < per_key; ++i)
    for (int k = 0; k < keys; ++k) stream.put("key-" + std::to_string(k), i);
}

/// A handler that counts calls in flight, remembers the most seen at once, and checks that each
/// key's payloads arrive in order (0, 1, 2, ...).
struct observed_downstream {
  std::atomic<int> in_flight{0};
  std::atomic<int> most{0};
  std::atomic<std::uint64_t> records{0};
  std::atomic<std::uint64_t> throttled_calls{0};
  std::mutex mutex;
  std::map<std::string, int> next;  // per key: the payload expected next
  std::atomic<bool> out_of_order{false};
  int capacity = 0;  // > 0: more calls than this at once are throttled

  void call(const sluice::batch<R>& b) {
    const int now = in_flight.fetch_add(1) + 1;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
    if (capacity > 0 && now > capacity) {
      in_flight.fetch_sub(1);
      throttled_calls.fetch_add(1);
      throw sluice::throttled("over capacity");
    }
    {
      std::lock_guard lock(mutex);
      for (const R& r : b) {
        int& expected = next[r.key];
        if (r.payload != expected) out_of_order = true;
        expected = r.payload + 1;
      }
    }
    std::this_thread::sleep_for(100us);  // the downstream's latency: calls overlap
    records.fetch_add(b.size());
    in_flight.fetch_sub(1);
  }
};

template <class... Limit>
auto mapping_of(sluice::memory_stream<int>& stream, observed_downstream& d, Limit... limit) {
  return sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
         sluice::parallelization_factor(4) | sluice::retry(sluice::backoff::fixed(200us)) |
         (limit | ... | sluice::invoke([&d](const sluice::batch<R>& b) { d.call(b); }));
}

}  // namespace

TEST(LimitsConcurrency, MaximumConcurrencyIsNeverExceededAndOrderHolds) {
  sluice::memory_stream<int> stream(8);  // 8 shards x P 4 = 32 lanes
  fill(stream, 40);
  observed_downstream d;
  auto running =
      sluice::start(mapping_of(stream, d, sluice::maximum_concurrency(3)), sluice::workers(8),
                    sluice::pollers(2), sluice::execution(sluice::execution_mode::handoff));
  ASSERT_TRUE(running.wait_until_caught_up(120s));
  const auto m = running.metrics();
  running.stop();
  EXPECT_LE(d.most.load(), 3);
  EXPECT_GE(d.most.load(), 2);  // calls did overlap
  EXPECT_FALSE(d.out_of_order.load());
  EXPECT_EQ(d.records.load(), std::uint64_t{keys} * 40);
  EXPECT_EQ(m.total.succeeded_event_count, std::uint64_t{keys} * 40);
  ASSERT_TRUE(m.limits);
  EXPECT_EQ(m.limits->concurrency_limit, 3u);
  EXPECT_EQ(m.limits->concurrent_invocations, 0u);
  EXPECT_GT(m.limits->concurrency_waits, 0u);  // the limit did hold calls back
}

// The control: the same mapping and threads without the limit run more than 3 calls at once,
// so the test above would see a broken limit.
TEST(LimitsConcurrency, WithoutTheLimitMoreCallsOverlap) {
  sluice::memory_stream<int> stream(8);
  fill(stream, 40);
  observed_downstream d;
  auto running = sluice::start(mapping_of(stream, d), sluice::workers(8), sluice::pollers(2),
                               sluice::execution(sluice::execution_mode::handoff));
  ASSERT_TRUE(running.wait_until_caught_up(120s));
  running.stop();
  EXPECT_GT(d.most.load(), 3);
  EXPECT_FALSE(d.out_of_order.load());
  EXPECT_FALSE(running.metrics().limits);
}

TEST(LimitsConcurrency, StopWakesCallsWaitingForAPermit) {
  sluice::memory_stream<int> stream(4);
  fill(stream, 4);
  std::atomic<int> calls{0};
  std::mutex gate;
  gate.lock();  // the first two calls hold their permits until released
  auto running = sluice::start(
      sluice::from(stream) | sluice::batching(sluice::batch_size(1)) |
          sluice::parallelization_factor(4) | sluice::maximum_concurrency(2) |
          sluice::invoke([&](const sluice::batch<R>&) {
            calls.fetch_add(1);
            std::lock_guard hold(gate);
          }),
      sluice::workers(6), sluice::pollers(1), sluice::execution(sluice::execution_mode::handoff));
  // Wait until two calls run and at least one more waits for a permit.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!(calls.load() == 2 && running.metrics().limits->concurrency_waits > 0) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(calls.load(), 2);
  ASSERT_GT(running.metrics().limits->concurrency_waits, 0u);
  running.request_stop();
  gate.unlock();               // the two calls end, freeing their permits
  running.stop();              // joins: waiters were woken and gave up
  EXPECT_EQ(calls.load(), 2);  // no waiter called the handler after the stop
}

// invocations_per_second(1, burst 1) on a manual clock: one call at once, then the lane waits
// for a token; its reader stops at the full lane ring (bounded memory) instead of reading on.
TEST(LimitsConcurrency, RateLimitWaitHoldsBackTheReader) {
  sluice::manual_clock clock;
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream(1, clock);
  for (int i = 0; i < 200; ++i) stream.put("k", i);
  std::atomic<int> calls{0};
  auto running = sluice::start(
      sluice::from(stream) | sluice::batching(sluice::batch_size(2)) |
          sluice::rate_limit(sluice::invocations_per_second(1, 1)) |
          sluice::invoke([&](const sluice::batch<R>&) { calls.fetch_add(1); }),
      sluice::with_clock(clock), sluice::execution(sluice::execution_mode::inline_only));
  ASSERT_TRUE(clock.wait_for_sleepers(1));
  auto m = running.metrics();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_LE(m.total.polled_event_count, running.buffer_bound());
  EXPECT_EQ(m.total.retries, 0u);
  for (int second = 1; second <= 3; ++second) {
    clock.advance(1s);
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (calls.load() < 1 + second && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(100us);
    ASSERT_TRUE(clock.wait_for_sleepers(1));
    EXPECT_EQ(calls.load(), 1 + second);  // exactly one more per second
    m = running.metrics();
    EXPECT_LE(m.total.polled_event_count,
              running.buffer_bound() + 2 * static_cast<std::uint64_t>(second));
  }
  ASSERT_TRUE(m.limits);
  EXPECT_GE(m.limits->rate_limit_waits, 3u);
  running.stop();
}

TEST(LimitsConcurrency, AdaptiveConcurrencyKeepsOrderAgainstAThrottlingDownstream) {
  sluice::memory_stream<int> stream(8);
  fill(stream, 30);
  observed_downstream d;
  d.capacity = 4;
  auto running = sluice::start(mapping_of(stream, d, sluice::adaptive_concurrency(1, 32, 0.5)),
                               sluice::workers(8), sluice::pollers(2),
                               sluice::execution(sluice::execution_mode::handoff));
  ASSERT_TRUE(running.wait_until_caught_up(120s));
  const auto m = running.metrics();
  running.stop();
  EXPECT_FALSE(d.out_of_order.load());
  EXPECT_EQ(d.records.load(), std::uint64_t{keys} * 30);  // nothing lost, throttles retried
  EXPECT_EQ(m.total.succeeded_event_count, std::uint64_t{keys} * 30);
  ASSERT_TRUE(m.limits);
  EXPECT_EQ(m.total.throttles, d.throttled_calls.load());
  EXPECT_GE(m.limits->concurrency_limit, 1u);
  EXPECT_LE(m.limits->concurrency_limit, 32u);
  EXPECT_LE(d.most.load(), 32);
  if (m.total.throttles > 0) {
    EXPECT_GT(m.limits->concurrency_decreases, 0u);
  }
  EXPECT_EQ(m.limits->concurrent_invocations, 0u);
}
