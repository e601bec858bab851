// Tests for sluice/clock.hpp: manual_clock wakes exactly the sleepers whose deadline has passed,
// reports sleepers to tests (wait_for_sleepers), jumps to deadlines in auto_advance mode; wake()
// ends any sleep, including an unbounded one, on both clocks. Threads that must still be asleep
// are checked with the clock's own sleeper count, never with a real-time sleep.
#include "sluice/clock.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

using namespace std::chrono_literals;

namespace {

/// A thread that sleeps once on `clock` until `deadline`, and records when it woke.
template <class Clock>
struct sleeping_thread {
  Clock& clock;
  sluice::sleeper parked;
  std::atomic<bool> done{false};
  std::thread thread;

  sleeping_thread(Clock& c, sluice::time_point deadline) : clock(c) {
    thread = std::thread([this, deadline] {
      clock.sleep_until(deadline, parked);
      done.store(true);
    });
  }
  ~sleeping_thread() {
    if (thread.joinable()) {
      clock.wake(parked);
      thread.join();
    }
  }
  /// Joins within a real-time bound; false if the thread is still asleep by then.
  bool ends_within(std::chrono::milliseconds bound) {
    const auto until = std::chrono::steady_clock::now() + bound;
    while (!done.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    if (!done.load()) return false;
    thread.join();
    return true;
  }
};

constexpr auto eventually = std::chrono::milliseconds(10'000);

}  // namespace

TEST(ManualClock, StartsWhereToldAndMovesOnlyWhenTold) {
  const sluice::time_point start = sluice::time_point{} + 1000h;
  sluice::manual_clock clock(start);
  EXPECT_EQ(clock.now(), start);
  EXPECT_EQ(clock.now(), start);
  clock.advance(1500ms);
  EXPECT_EQ(clock.now(), start + 1500ms);
  clock.set(start + 10s);
  EXPECT_EQ(clock.now(), start + 10s);
}

TEST(ManualClock, NeverMovesBackwards) {
  sluice::manual_clock clock;
  const auto t = clock.now();
  clock.set(t - 1h);
  EXPECT_EQ(clock.now(), t);
  clock.advance(-1s);
  EXPECT_EQ(clock.now(), t);
}

TEST(ManualClock, SleepUntilAPassedDeadlineReturnsAtOnce) {
  sluice::manual_clock clock;
  sluice::sleeper s;
  clock.sleep_until(clock.now(), s);
  clock.sleep_until(clock.now() - 1s, s);
  EXPECT_EQ(clock.sleepers(), 0u);
}

TEST(ManualClock, AdvanceWakesASleeperWhoseDeadlinePassedAndNotOneWhoseDeadlineDidNot) {
  sluice::manual_clock clock;
  const auto t0 = clock.now();
  sleeping_thread early(clock, t0 + 1s);
  sleeping_thread late(clock, t0 + 10s);
  ASSERT_TRUE(clock.wait_for_sleepers(2));

  clock.advance(2s);
  EXPECT_TRUE(early.ends_within(eventually));
  // `late` re-checked the new time (the advance notified every sleeper) and chose to sleep on:
  // it is counted as a sleeper again, and it ends only when its own deadline is reached.
  EXPECT_TRUE(clock.wait_for_sleepers(1));
  EXPECT_FALSE(late.done.load());
  clock.advance(7s);  // t0 + 9s: still before its deadline
  EXPECT_TRUE(clock.wait_for_sleepers(1));
  EXPECT_FALSE(late.done.load());
  clock.advance(1s);  // t0 + 10s: exactly its deadline
  EXPECT_TRUE(late.ends_within(eventually));
}

// An advance that does not reach a sleeper's deadline leaves it asleep and counted again.
TEST(ManualClock, WaitForSleepersCountsASleeperThatSleepsOnAfterAnAdvance) {
  sluice::manual_clock clock;
  sleeping_thread late(clock, clock.now() + 10s);
  ASSERT_TRUE(clock.wait_for_sleepers(1));
  clock.advance(1s);
  EXPECT_TRUE(clock.wait_for_sleepers(1, 5s));
  EXPECT_FALSE(late.done.load());
}

TEST(ManualClock, WaitForSleepersSeesEachThreadThatChoseToWait) {
  sluice::manual_clock clock;
  const auto deadline = clock.now() + 1min;
  sleeping_thread a(clock, deadline);
  sleeping_thread b(clock, deadline);
  sleeping_thread c(clock, deadline);
  EXPECT_TRUE(clock.wait_for_sleepers(3));
  EXPECT_EQ(clock.sleepers(), 3u);
  clock.advance(1min);
  EXPECT_TRUE(a.ends_within(eventually));
  EXPECT_TRUE(b.ends_within(eventually));
  EXPECT_TRUE(c.ends_within(eventually));
}

TEST(ManualClock, WaitForSleepersTimesOutWhenTooFewSleep) {
  sluice::manual_clock clock;
  sleeping_thread one(clock, clock.now() + 1s);
  ASSERT_TRUE(clock.wait_for_sleepers(1));
  EXPECT_FALSE(clock.wait_for_sleepers(2, 20ms));
}

TEST(ManualClock, AdvanceResetsTheSleeperCount) {
  sluice::manual_clock clock;
  sleeping_thread a(clock, clock.now() + 1s);
  ASSERT_TRUE(clock.wait_for_sleepers(1));
  clock.advance(1s);
  EXPECT_TRUE(a.ends_within(eventually));
  EXPECT_EQ(clock.sleepers(), 0u);
}

TEST(ManualClock, AutoAdvanceJumpsToTheDeadlineAtOnce) {
  const sluice::time_point start = sluice::time_point{} + 1000h;
  sluice::manual_clock clock(start, sluice::manual_clock::auto_advance);
  sluice::sleeper s;
  clock.sleep_until(start + 90s, s);  // returns without any other thread's help
  EXPECT_EQ(clock.now(), start + 90s);
  clock.sleep_until(start + 30s, s);  // an earlier deadline never moves the clock back
  EXPECT_EQ(clock.now(), start + 90s);
  clock.sleep_until(start + 91s, s);
  EXPECT_EQ(clock.now(), start + 91s);
}

TEST(ManualClock, AutoAdvanceStillBlocksAnUnboundedSleepUntilWoken) {
  sluice::manual_clock clock(sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance);
  const auto before = clock.now();
  sleeping_thread forever(clock, sluice::far_future);
  ASSERT_TRUE(clock.wait_for_sleepers(1));
  EXPECT_FALSE(forever.done.load());
  clock.wake(forever.parked);
  EXPECT_TRUE(forever.ends_within(eventually));
  EXPECT_EQ(clock.now(), before);  // far_future is not a deadline to jump to
}

TEST(ManualClock, WakeEndsAFarFutureSleep) {
  sluice::manual_clock clock;
  sleeping_thread forever(clock, sluice::far_future);
  ASSERT_TRUE(clock.wait_for_sleepers(1));
  clock.advance(24h * 365);
  EXPECT_TRUE(
      clock.wait_for_sleepers(1));  // re-checked and slept on: no advance reaches far_future
  EXPECT_FALSE(forever.done.load());
  clock.wake(forever.parked);
  EXPECT_TRUE(forever.ends_within(eventually));
}

TEST(ManualClock, WakeBeforeSleepEndsTheNextSleepOnlyOnce) {
  sluice::manual_clock clock;
  sluice::sleeper s;
  clock.wake(s);
  clock.sleep_until(sluice::far_future, s);  // returns at once: the wake was pending
  EXPECT_FALSE(s.woken);                     // and is consumed
  std::atomic<bool> done{false};
  std::thread again([&] {
    clock.sleep_until(clock.now() + 1s, s);  // the same sleeper: this sleep must really wait
    done.store(true);
  });
  EXPECT_TRUE(clock.wait_for_sleepers(1));
  EXPECT_FALSE(done.load());
  clock.advance(1s);
  again.join();
  EXPECT_TRUE(done.load());
}

TEST(ManualClock, WakeEndsOnlyTheSleepOfThatSleeper) {
  sluice::manual_clock clock;
  sleeping_thread a(clock, sluice::far_future);
  sleeping_thread b(clock, sluice::far_future);
  ASSERT_TRUE(clock.wait_for_sleepers(2));
  clock.wake(a.parked);
  EXPECT_TRUE(a.ends_within(eventually));
  for (int i = 0; i < 1000; ++i) std::this_thread::yield();
  EXPECT_FALSE(b.done.load());
  clock.wake(b.parked);
  EXPECT_TRUE(b.ends_within(eventually));
}

TEST(SystemClock, NowFollowsTheWallClock) {
  sluice::system_clock clock;
  const auto before = std::chrono::system_clock::now();
  const auto now = clock.now();
  const auto after = std::chrono::system_clock::now();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
  EXPECT_EQ(&sluice::system_clock::instance(), &sluice::system_clock::instance());
}

TEST(SystemClock, SleepUntilAPassedDeadlineReturnsAtOnce) {
  sluice::system_clock clock;
  sluice::sleeper s;
  const auto start = std::chrono::steady_clock::now();
  clock.sleep_until(clock.now() - 1h, s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(SystemClock, WakeEndsAFarFutureSleep) {
  sluice::system_clock clock;
  sleeping_thread forever(clock, sluice::far_future);
  // Whether the wake lands before or during the sleep, the sleep ends.
  clock.wake(forever.parked);
  EXPECT_TRUE(forever.ends_within(eventually));
}

TEST(SystemClock, WakeBeforeSleepEndsTheNextSleep) {
  sluice::system_clock clock;
  sluice::sleeper s;
  clock.wake(s);
  clock.sleep_until(sluice::far_future, s);  // would block forever without the pending wake
  EXPECT_FALSE(s.woken);
}

TEST(ClockConcept, BothClocksModelClockType) {
  static_assert(sluice::clock_type<sluice::system_clock>);
  static_assert(sluice::clock_type<sluice::manual_clock>);
  static_assert(!sluice::clock_type<int>);
  SUCCEED();
}
