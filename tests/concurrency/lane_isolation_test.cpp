// A slow lane does not hold up the other lanes of its shard (S-2.3, S-3.2, S-3.3): with window 0,
// when the reader stops at the slow lane's full buffer (backpressure), another lane that has
// nothing to run is handed the records already read for it, instead of waiting for the slow
// lane. Runs under ThreadSanitizer too.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "sluice/hash.hpp"
#include "sluice/sluice.hpp"
#include "support/trace.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;
using sluice_test::eventually;

namespace {

/// A key whose records go to `lane` of 2.
std::string key_in_lane(std::uint32_t lane) {
  for (int i = 0;; ++i) {
    std::string k = "key-" + std::to_string(i);
    if (sluice::lane_for(sluice::key_hash(k), 2) == lane) return k;
  }
}

// The mapping's threads are all asleep when the records arrive, in one put_many (the reader sees
// them at once): one read pass hands two lanes to the workers, the slow lane's and the fast
// lane's. Each must get a worker: the fast lane must not wait behind the slow lane's handler.
TEST(LaneIsolation, AnIdleLaneGetsItsRecordsWhileASlowLaneBackpressuresTheReader) {
  const std::string slow = key_in_lane(0), fast = key_in_lane(1);
  constexpr int slow_total = 10 * (static_cast<int>(sluice::batches_per_lane) + 3);
  sluice::manual_clock clock;
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream(1, clock);
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> fast_calls{0}, slow_records{0};
  auto running = sluice::start(
      sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
          sluice::parallelization_factor(2) | sluice::invoke([&](const sluice::batch<R>& b) {
            if (b[0].key == fast) {
              ++fast_calls;
              return;
            }
            std::unique_lock lock(m);
            cv.wait(lock, [&] { return release; });  // the slow lane's downstream hangs
            slow_records += static_cast<int>(b.size());
          }),
      sluice::with_clock(clock), sluice::pollers(1), sluice::workers(2),
      sluice::execution(sluice::execution_mode::handoff));
  ASSERT_TRUE(clock.wait_for_sleepers(3));  // the reader and both workers sleep
  // The slow lane's first batch, the fast lane's 3 records, then enough slow records to fill the
  // slow lane's buffer (batches_per_lane batches) so that the reader stops there.
  std::vector<std::pair<std::string, int>> records;
  for (int i = 0; i < 10; ++i) records.emplace_back(slow, i);
  for (int i = 0; i < 3; ++i) records.emplace_back(fast, 1000 + i);
  for (int i = 10; i < slow_total; ++i) records.emplace_back(slow, i);
  stream.put_many(records);
  const bool fast_ran = eventually([&] { return fast_calls.load() > 0; }, 20s);
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  EXPECT_TRUE(fast_ran) << "the fast lane's 3 records waited for the slow lane";
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  running.stop();
  EXPECT_EQ(fast_calls.load(), 1);
  EXPECT_EQ(slow_records.load(), slow_total);
}

}  // namespace
