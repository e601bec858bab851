// sluice/detail/pipeline/limiter.hpp: the mechanism behind a mapping's downstream limits
// (sluice/limits.hpp): a concurrency gate with an adjustable limit, a token bucket on the
// injected clock, an AIMD controller that moves the gate's limit, and detail::limiter, the one
// object a runtime talks to.
//
// How a runtime uses it, around each handler call (lane_job does this for stream mappings; a
// queue poller does the same around each receive-and-handle):
//
//   if (auto later = lim.admit(records, now)) { wait until *later (on the clock, without holding
//       a thread if the runtime can: lane_job returns it as a step's wait), then admit again; }
//   permit p = lim.enter();        // sleeps while the mapping is at its concurrency limit
//   if (!p) { stop was requested: abandon the call }
//   ... call the handler ...
//   lim.leave(p, call_feedback::success | throttled | neutral);
//
// Tokens are taken before the permit, so a call never holds a permit while it waits for tokens
// (holding one would idle a slot of the concurrency limit). Waiting for a permit sleeps on a
// condition variable, in FIFO order (no waiter starves); interrupt() wakes every waiter and makes
// later enter() calls fail at once (the runtime calls it when a stop is requested). Nothing spins.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

#include "sluice/config.hpp"
#include "sluice/limits.hpp"
#include "sluice/metrics.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail {

/// At most limit() holders at once. The limit may change while permits are held (lowering it
/// below the holders only stops new entries until enough leave). Waiters queue in arrival order
/// and each sleeps on its own condition variable: a freed permit is handed to the first waiter
/// and wakes only that thread (no thundering herd when many threads wait).
class concurrency_gate {
 public:
  explicit concurrency_gate(std::uint32_t limit) : limit_(std::max<std::uint32_t>(1, limit)) {}

  /// Takes a permit if one is free and nobody waits for one. `saturated` (if given) tells
  /// whether this permit was the last one free: the limit, not the caller, bounded concurrency.
  bool try_acquire(bool* saturated = nullptr) {
    std::lock_guard lock(mutex_);
    if (interrupted_ || !queue_.empty() || in_flight_ >= limit_) return false;
    ++in_flight_;
    if (saturated != nullptr) *saturated = in_flight_ >= limit_;
    return true;
  }

  /// Takes a permit, sleeping until one is free; false (no permit) once interrupt() was called.
  /// `saturated` (if given) tells whether the limit held the call back: it waited, or took the
  /// last free permit.
  bool acquire(bool* saturated = nullptr) {
    std::unique_lock lock(mutex_);
    if (interrupted_) return false;
    if (queue_.empty() && in_flight_ < limit_) {
      ++in_flight_;
      if (saturated != nullptr) *saturated = in_flight_ >= limit_;
      return true;
    }
    if (saturated != nullptr) *saturated = true;
    waits_.fetch_add(1, std::memory_order_relaxed);
    waiter self;
    queue_.push_back(&self);
    self.cv.wait(lock, [&] { return self.granted || interrupted_; });
    if (self.granted) return true;  // counted in in_flight_ by whoever granted it
    std::erase(queue_, &self);
    return false;
  }

  void release() {
    std::lock_guard lock(mutex_);
    --in_flight_;
    grant();
  }

  void set_limit(std::uint32_t limit) {
    std::lock_guard lock(mutex_);
    limit_ = std::max<std::uint32_t>(1, limit);
    grant();
  }

  /// Wakes every waiter (their acquire() returns false) and fails every later acquire().
  void interrupt() {
    std::lock_guard lock(mutex_);
    interrupted_ = true;
    for (waiter* w : queue_) w->cv.notify_one();
  }

  std::uint32_t limit() const {
    std::lock_guard lock(mutex_);
    return limit_;
  }
  std::uint32_t in_flight() const {
    std::lock_guard lock(mutex_);
    return in_flight_;
  }
  /// Acquisitions that had to wait.
  std::uint64_t waits() const noexcept { return waits_.load(std::memory_order_relaxed); }

 private:
  struct waiter {
    std::condition_variable cv;
    bool granted = false;
  };

  /// Hands free permits to the first waiters (under the mutex).
  void grant() {
    while (!interrupted_ && !queue_.empty() && in_flight_ < limit_) {
      waiter* w = queue_.front();
      queue_.pop_front();
      ++in_flight_;
      w->granted = true;
      w->cv.notify_one();
    }
  }

  mutable std::mutex mutex_;
  std::uint32_t limit_;
  std::uint32_t in_flight_ = 0;
  std::deque<waiter*> queue_;  // in arrival order; each lives on its waiting thread's stack
  bool interrupted_ = false;
  std::atomic<std::uint64_t> waits_{0};
};

/// A token bucket on the mapping's clock: `per_second` tokens accrue per second up to `burst`;
/// it starts full. Not synchronized (detail::limiter guards it).
class token_bucket {
 public:
  token_bucket(token_rate rate, time_point now) : rate_(rate), tokens_(rate.burst), at_(now) {}

  /// When `n` tokens can be taken, at or after `now`: empty if now. A request above the burst
  /// is granted when the bucket is full and leaves it in debt (negative), so the average rate
  /// holds for any batch size.
  std::optional<time_point> ready_at(double n, time_point now) {
    refill(now);
    const double need = std::min(n, rate_.burst);
    if (tokens_ + epsilon >= need) return std::nullopt;
    const double seconds = (need - tokens_) / rate_.per_second;
    // Rounded up to the clock's tick; at that time the tokens are there (up to `epsilon`).
    return now + std::chrono::ceil<duration>(std::chrono::duration<double>(seconds));
  }
  /// Takes n tokens (after ready_at said now).
  void take(double n) { tokens_ -= n; }

  /// The tokens in the bucket at `now` (negative: in debt).
  double tokens(time_point now) {
    refill(now);
    return tokens_;
  }

 private:
  static constexpr double epsilon = 1e-9;
  void refill(time_point now) {
    if (now <= at_) return;
    const double seconds = std::chrono::duration<double>(now - at_).count();
    tokens_ = std::min(rate_.burst, tokens_ + seconds * rate_.per_second);
    at_ = now;
  }
  token_rate rate_;
  double tokens_;
  time_point at_;
};

/// Additive increase, multiplicative decrease of a concurrency limit, as TCP congestion control
/// does for its window (RFC 5681: slow start, congestion avoidance; Jacobson 1988) and as
/// Netflix's concurrency-limits AIMDLimit does for a service's concurrency:
///  - slow start: until the first throttle, each success adds 1 (the limit doubles per round);
///  - congestion avoidance: each round of `limit` successes adds 1;
///  - a throttle multiplies the limit by `decrease_factor` (rounded down, at least `minimum`),
///    at most once per round: throttles of calls that began before the last decrease (an older
///    epoch) saw the old limit and do not lower it again (TCP reduces once per window).
/// Function errors other than a throttle are no capacity signal: neutral. And the limit grows
/// only from calls the limit held back (`saturated`: the call waited for a permit or took the
/// last one), as TCP grows its window only while the window limits it (RFC 7661): a mapping
/// whose lanes do not fill the limit learns nothing about the downstream, and a limit that grew
/// unused would let a later burst overshoot. Not synchronized.
class aimd_controller {
 public:
  explicit aimd_controller(const concurrency_stage& c)
      : minimum_(c.minimum),
        maximum_(c.maximum),
        factor_(c.decrease_factor),
        limit_(c.adaptive ? c.minimum : c.maximum),
        adaptive_(c.adaptive) {}

  std::uint32_t limit() const noexcept { return limit_; }
  /// Changes with each decrease; a call remembers the epoch it began in.
  std::uint64_t epoch() const noexcept { return epoch_; }
  bool slow_start() const noexcept { return slow_start_; }
  std::uint64_t increases() const noexcept { return increases_; }
  std::uint64_t decreases() const noexcept { return decreases_; }

  /// A call that began in `epoch` succeeded; `saturated`: the limit held it back (see above).
  /// Returns whether the limit changed.
  bool on_success(std::uint64_t epoch, bool saturated = true) noexcept {
    (void)epoch;
    if (!adaptive_ || !saturated || limit_ >= maximum_) return false;
    if (!slow_start_ && ++credit_ < limit_) return false;
    credit_ = 0;
    ++limit_;
    ++increases_;
    return true;
  }

  /// A call that began in `epoch` was throttled. Returns whether the limit changed.
  bool on_throttle(std::uint64_t epoch) noexcept {
    if (!adaptive_ || epoch != epoch_) return false;
    slow_start_ = false;
    credit_ = 0;
    ++epoch_;
    const auto lowered = static_cast<std::uint32_t>(static_cast<double>(limit_) * factor_);
    const std::uint32_t next = std::clamp(lowered, minimum_, maximum_);
    if (next == limit_) return false;
    limit_ = next;
    ++decreases_;
    return true;
  }

 private:
  std::uint32_t minimum_;
  std::uint32_t maximum_;
  double factor_;
  std::uint32_t limit_;
  bool adaptive_;
  bool slow_start_ = true;
  std::uint32_t credit_ = 0;
  std::uint64_t epoch_ = 0;
  std::uint64_t increases_ = 0;
  std::uint64_t decreases_ = 0;
};

/// How a handler call ended, as the concurrency controller reads it.
enum class call_feedback {
  success,    // the call returned (a partial batch failure report included)
  throttled,  // the handler threw sluice::throttled: the downstream is at capacity
  neutral,    // another error: no capacity signal
};

/// A permit of one handler call (from limiter::enter); false when none was given (stopped).
struct permit {
  bool held = false;
  std::uint64_t epoch = 0;
  bool saturated = false;  // the concurrency limit held this call back (waited, or last slot)
  explicit operator bool() const noexcept { return held; }
};

/// A mapping's limits at run time: one per mapping, shared by all its threads.
class limiter {
 public:
  limiter(const limits_config& config, time_point now)
      : gate_(config.concurrency ? config.concurrency->maximum : 0),
        controller_(config.concurrency.value_or(concurrency_stage{})),
        limits_concurrency_(config.concurrency.has_value()) {
    if (config.concurrency) gate_.set_limit(controller_.limit());
    if (config.rate && config.rate->records.per_second > 0)
      records_.emplace(config.rate->records, now);
    if (config.rate && config.rate->invocations.per_second > 0)
      invocations_.emplace(config.rate->invocations, now);
  }

  bool limits_concurrency() const noexcept { return limits_concurrency_; }
  bool limits_rate() const noexcept { return records_ || invocations_; }

  /// Before a call of `records` records at `now`: takes its tokens and returns empty, or takes
  /// none and returns when to ask again (the rate limit's backpressure).
  std::optional<time_point> admit(std::size_t records, time_point now) {
    if (!records_ && !invocations_) return std::nullopt;
    std::lock_guard lock(rate_mutex_);
    std::optional<time_point> later;
    auto wait_for = [&](std::optional<token_bucket>& b, double n) {
      if (!b) return;
      if (const auto t = b->ready_at(n, now)) later = later ? std::max(*later, *t) : *t;
    };
    wait_for(records_, static_cast<double>(records));
    wait_for(invocations_, 1.0);
    if (later) {
      rate_waits_.fetch_add(1, std::memory_order_relaxed);
      return later;
    }
    if (records_) records_->take(static_cast<double>(records));
    if (invocations_) invocations_->take(1.0);
    return std::nullopt;
  }

  /// A permit for one call, sleeping while the mapping is at its concurrency limit; an empty
  /// permit once interrupt() was called. Without a concurrency limit: a permit at once.
  permit enter() {
    if (!limits_concurrency_) return {true, 0};
    const std::uint64_t epoch = epoch_.load(std::memory_order_acquire);
    bool saturated = false;
    if (!gate_.acquire(&saturated)) return {};
    return {true, epoch, saturated};
  }
  /// As enter(), without waiting: empty when no permit is free now.
  permit try_enter() {
    if (!limits_concurrency_) return {true, 0};
    const std::uint64_t epoch = epoch_.load(std::memory_order_acquire);
    bool saturated = false;
    if (!gate_.try_acquire(&saturated)) return {};
    return {true, epoch, saturated};
  }

  /// The call of permit p ended: frees its permit and tells the controller how it went.
  void leave(permit p, call_feedback feedback) {
    if (!limits_concurrency_ || !p) return;
    gate_.release();
    if (feedback == call_feedback::neutral) return;
    std::lock_guard lock(controller_mutex_);
    const bool changed = feedback == call_feedback::success
                             ? controller_.on_success(p.epoch, p.saturated)
                             : controller_.on_throttle(p.epoch);
    if (changed) gate_.set_limit(controller_.limit());
    epoch_.store(controller_.epoch(), std::memory_order_release);
  }

  /// Wakes every call waiting for a permit and refuses later ones (a stop was requested).
  void interrupt() { gate_.interrupt(); }

  limits_metrics snapshot() const {
    limits_metrics m;
    if (limits_concurrency_) {
      m.concurrency_limit = gate_.limit();
      m.concurrent_invocations = gate_.in_flight();
      m.concurrency_waits = gate_.waits();
      std::lock_guard lock(controller_mutex_);
      m.concurrency_increases = controller_.increases();
      m.concurrency_decreases = controller_.decreases();
    }
    m.rate_limit_waits = rate_waits_.load(std::memory_order_relaxed);
    return m;
  }

 private:
  concurrency_gate gate_;
  mutable std::mutex controller_mutex_;
  aimd_controller controller_;
  std::atomic<std::uint64_t> epoch_{0};
  bool limits_concurrency_;
  std::mutex rate_mutex_;
  std::optional<token_bucket> records_;
  std::optional<token_bucket> invocations_;
  std::atomic<std::uint64_t> rate_waits_{0};
};

}  // namespace detail
SLUICE_END_NAMESPACE
