// sluice/clock.hpp: the injectable clock (architecture "Time"). Every window, back-off, record
// age and idle wait in sluice reads and sleeps through a clock object, so tests swap in
// manual_clock and run timing scenarios deterministically without sleeping.
//
// A clock provides now(), sleep_until(deadline, sleeper&) and wake(sleeper&). A sleeper is the
// per-thread parking spot; wake() ends its current (or next) sleep early.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE

/// A parking spot for one thread. Idle sluice threads block here (never spin).
struct sleeper {
  std::mutex mutex;
  std::condition_variable cv;
  bool woken = false;
};

template <class C>
concept clock_type = requires(C& c, const C& cc, sleeper& s, time_point t) {
  { cc.now() } -> std::same_as<time_point>;
  c.sleep_until(t, s);
  c.wake(s);
};

/// The default clock: wall-clock time for arrival stamps and deadlines, condition-variable
/// waits for sleeping. (Waits are computed as durations, so a wall-clock step only shifts when
/// a sleeping thread re-checks.)
class system_clock {
 public:
  time_point now() const noexcept { return std::chrono::system_clock::now(); }

  void sleep_until(time_point deadline, sleeper& s) const {
    std::unique_lock lock(s.mutex);
    if (deadline == far_future) {
      s.cv.wait(lock, [&] { return s.woken; });
    } else {
      const auto left = deadline - now();
      if (left > duration::zero()) {
        s.cv.wait_for(lock, left, [&] { return s.woken; });
      }
    }
    s.woken = false;
  }

  void wake(sleeper& s) const {
    {
      std::lock_guard lock(s.mutex);
      s.woken = true;
    }
    s.cv.notify_one();
  }

  /// The process-wide instance used when no clock is given.
  static system_clock& instance() noexcept {
    static system_clock clock;
    return clock;
  }
};

/// A clock that moves only when told to. Threads sleeping on it wake when advance() reaches
/// their deadline or when they are woken. In auto-advance mode a sleep with a finite deadline
/// moves the clock to that deadline at once: a single-threaded run (sluice::run) then plays
/// back-offs and windows in virtual time.
class manual_clock {
 public:
  enum mode { manual, auto_advance };

  explicit manual_clock(time_point start = time_point{} + std::chrono::hours(24), mode m = manual)
      : now_(start), auto_advance_(m == auto_advance) {}

  time_point now() const {
    std::lock_guard lock(mutex_);
    return now_;
  }

  void advance(duration d) { set(now() + d); }

  void set(time_point t) {
    {
      std::lock_guard lock(mutex_);
      if (t > now_) now_ = t;
      ++generation_;
      sleepers_ = 0;  // every sleeper re-checks and re-registers if it sleeps on
    }
    cv_.notify_all();
  }

  void sleep_until(time_point deadline, sleeper& s) {
    std::unique_lock lock(mutex_);
    if (auto_advance_ && deadline != far_future && !s.woken) {
      if (deadline > now_) now_ = deadline;
      ++generation_;
      sleepers_ = 0;
      lock.unlock();
      cv_.notify_all();
      return;
    }
    while (true) {  // re-registers as a sleeper after every advance() that is not enough
      const auto my_generation = generation_;
      ++sleepers_;
      sleepers_cv_.notify_all();
      cv_.wait(lock, [&] { return s.woken || now_ >= deadline || generation_ != my_generation; });
      if (generation_ == my_generation && sleepers_ > 0) --sleepers_;
      if (s.woken || now_ >= deadline) break;
    }
    s.woken = false;
  }

  void wake(sleeper& s) {
    {
      std::lock_guard lock(mutex_);
      s.woken = true;
    }
    cv_.notify_all();
  }

  /// Blocks until at least n threads are asleep on this clock since the last advance (each has
  /// looked at the current time and chosen to wait), or the real-time timeout passes.
  /// Returns whether n sleepers were seen. For tests that must know the runtime is settled.
  bool wait_for_sleepers(std::size_t n,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock lock(mutex_);
    return sleepers_cv_.wait_for(lock, timeout, [&] { return sleepers_ >= n; });
  }

  std::size_t sleepers() const {
    std::lock_guard lock(mutex_);
    return sleepers_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::condition_variable sleepers_cv_;
  time_point now_;
  std::uint64_t generation_ = 0;
  std::size_t sleepers_ = 0;
  bool auto_advance_;
};

SLUICE_END_NAMESPACE
