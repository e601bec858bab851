// sluice/detail/pipeline/lane_job.hpp: the failure policies of S-4 and S-5 as one resumable state
// machine over one lane's batch. The batch is contiguous; retries, bisect halves and
// partial-failure remainders are index ranges into it, kept on a small stack whose top is always
// the leftmost unfinished range, so records are finished strictly in sequence order. step() runs
// attempts until the batch is finished or it must wait (back-off), and never holds a thread while
// waiting.
#pragma once

#include <cxxabi.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <typeinfo>
#include <vector>

#include "sluice/batch.hpp"
#include "sluice/detail/pipeline/limiter.hpp"
#include "sluice/detail/pipeline/window.hpp"
#include "sluice/events.hpp"
#include "sluice/failure.hpp"
#include "sluice/metrics.hpp"
#include "sluice/stages.hpp"
#include "sluice/window.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail {

/// What the policies of a mapping are, fixed at compile time: a mapping that does not use a
/// policy instantiates none of its code.
template <bool Bisect, bool Report, class Destination, bool Window = false>
struct policy_set {
  static constexpr bool window = Window;  // S-7: a tumbling window (window.hpp)
  static constexpr bool bisect = Bisect;
  static constexpr bool report = Report;
  static constexpr bool has_destination = !std::is_void_v<Destination>;
  using destination_type = Destination;
};

inline std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                             std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(name);
}

struct error_info {
  std::string type;
  std::string message;
  attempt_outcome outcome = attempt_outcome::raised;
};

/// The type (demangled) and message of an exception.
inline error_info describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return {demangle(typeid(e).name()), e.what()};
  } catch (...) {
    return {"unknown", "a non-std::exception was thrown"};
  }
}

/// Inside a handler call's catch (...): keeps the exception as S-5.7's errorType and
/// errorMessage in `out` and says whether it was a throttle (sluice::throttled), not a failure.
/// The one classification of what a handler threw, for streams and queues.
inline bool describe_caught(error_info& out) {
  try {
    throw;
  } catch (const throttled& e) {
    out = error_info{"sluice::throttled", e.what(), attempt_outcome::raised};
    return true;
  } catch (...) {
    out = describe(std::current_exception());
    return false;
  }
}

struct step_result {
  bool done;
  time_point wait_until;  // when !done: call step() again at or after this time
  bool paced = false;     // !done because of the rate limit (not a failure: no retry)
};

inline std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// S-5.8, for a lane's failed records and for a record a stage threw on alike: hands `rec` to
/// the destination. Delivered: the error kept in the shard's metrics is cleared, the records
/// count as delivered, and the result is empty. Not delivered: the error stays visible
/// (last_destination_error) while the caller retries, `failures` goes up, and the result is
/// when to try again (back-off). `blocked` is the caller's "its deliveries are failing" state:
/// the first failure blocks it (counted in blocked_lanes), the next delivery unblocks it.
/// notify(kind, error or null) is told dead_letter_delivered, lane_blocked and lane_unblocked
/// (the events hook; a no-op without a sink).
template <class Destination, class R, class Notify>
std::optional<time_point> deliver_or_back_off(Destination& destination,
                                              const on_failure_record<R>& rec,
                                              live_counters& counters, time_point now,
                                              const backoff& policy, std::uint32_t& failures,
                                              std::uint64_t& rng, bool& blocked, Notify&& notify) {
  std::optional<error_info> error;
  try {
    deliver_to(destination, rec);
  } catch (...) {
    error = describe(std::current_exception());
  }
  if (!error) {
    counters.clear_destination_error();
    live_counters::add(counters.delivered, rec.batch_size);
    notify(event_kind::dead_letter_delivered, nullptr);
    if (blocked) {
      blocked = false;
      counters.lane_unblocked();
      notify(event_kind::lane_unblocked, nullptr);
    }
    return std::nullopt;
  }
  live_counters::add(counters.destination_failures, 1);
  if (!blocked) {
    blocked = true;
    counters.lane_blocked(now);
    notify(event_kind::lane_blocked, &*error);
  }
  counters.set_destination_error(error->type + ": " + error->message, now);
  ++failures;
  return now + policy.delay(failures, splitmix64(rng));
}

/// Everything a job needs from its mapping comes through an explicit context (the engine's
/// `context`): env.now(), env.stop_requested(), env.handler(), env.destination(), env.retry
/// (retry_config), env.stream_name (std::string), and optionally env.events() (the mapping's
/// event_sink or null) with env.mapping_name().
template <class R, class Policies>
class lane_job {
 public:
  explicit lane_job(std::uint64_t seed) : rng_(seed) {}

  void begin(std::span<const R> records, shard_id_t shard) {
    started_ = true;
    records_ = records;
    shard_ = shard;
    finished_ = 0;
    consecutive_failures_ = 0;
    pending_.reset();
    stack_.clear();
    if constexpr (Policies::window) {
      window_.checked = false;
      if (records.empty()) return;  // an idle marker: the window's final invocation only
    }
    stack_.push_back(segment{0, static_cast<std::uint32_t>(records.size())});
    if constexpr (Policies::report) reported_.assign(records.size(), false);
  }

  /// Whether a batch was begun and not yet ended.
  bool started() const noexcept { return started_; }
  /// The batch is finished: the next begin() takes a new one.
  void end() noexcept { started_ = false; }

  /// Records [0, finished()) of the batch are finished (succeeded, discarded or dropped).
  std::size_t finished() const noexcept { return finished_; }
  bool done() const noexcept { return finished_ == records_.size(); }

  /// Runs attempts until the batch is finished or must wait. publish(finished) is called after
  /// each advance of the finished prefix.
  template <class Env, class Publish>
  step_result step(Env& env, live_counters& counters, Publish&& publish) {
    while (true) {
      if (!done() && env.stop_requested()) return {false, env.now()};  // abandoned, unfinished
      if (pending_) {
        if (!deliver_pending(env, counters)) return {false, next_attempt_};
        publish(finished_);
        continue;
      }
      if constexpr (Policies::window) {  // S-7.2: a due final invocation goes first
        if (window_due(env)) {
          if (env.stop_requested()) return {false, env.now()};
          permit p{true, 0};
          if constexpr (limited<Env>) {  // a final invocation is a call like any other
            if (const auto later = env.limits().admit(0, env.now())) return {false, *later, true};
            p = env.limits().enter();
            if (!p) return {false, env.now()};
          }
          attempt_final(env, counters, env.now(), p);
          if (waiting_) {
            waiting_ = false;
            return {false, next_attempt_};
          }
          continue;
        }
      }
      if (stack_.empty()) return {true, {}};
      const time_point now = env.now();
      segment& seg = stack_.back();
      if (env.retry.maximum_record_age) {  // S-5.4: expired records are always a prefix
        const time_point horizon = now - *env.retry.maximum_record_age;
        std::uint32_t k = seg.begin;
        while (k < seg.end && sluice::arrival_time(records_[k]) < horizon) ++k;
        if (k > seg.begin) {
          const std::uint32_t from = seg.begin;
          const std::uint32_t invocations = seg.invocations;
          seg.begin = k;
          if (seg.begin == seg.end) stack_.pop_back();
          discard(env, counters, from, k, failure_condition::record_age_exceeded, invocations, now);
          continue;
        }
      }
      permit p{true, 0};
      if constexpr (limited<Env>) {  // sluice/limits.hpp: tokens first, then a permit
        if (const auto later = env.limits().admit(seg.end - seg.begin, now))
          return {false, *later, true};
        p = env.limits().enter();  // may sleep while the mapping is at its concurrency limit
        if (!p) return {false, env.now()};  // stop requested while waiting: abandoned
      }
      // A call the concurrency limit held back may have waited: its time is read again.
      attempt(env, counters, seg, limited<Env> && p.saturated ? env.now() : now, p);
      publish(finished_);
      if (waiting_) {
        waiting_ = false;
        return {false, next_attempt_};
      }
    }
  }

 private:
  struct segment {
    std::uint32_t begin;
    std::uint32_t end;
    std::uint32_t attempts = 0;     // failed attempts counted against maximum_retry_attempts
    std::uint32_t invocations = 0;  // handler calls for this range (reported to the destination)
  };

  enum class outcome { success, partial, failure, throttle };

  /// The mapping has downstream limits (the engine's context then has limits()).
  template <class Env>
  static constexpr bool limited = requires(Env& env) {
    env.limits();
  };

  /// Inside a handler call's catch (...): keeps the exception as the last error and tells a
  /// throttle from a failure (describe_caught()).
  outcome caught() {
    error_info e;
    const bool throttle = describe_caught(e);
    last_error_ = std::move(e);
    return throttle ? outcome::throttle : outcome::failure;
  }

  /// A call is over: its permit goes back, its outcome moves an adaptive limit.
  template <class Env>
  static void leave_limits(Env& env, permit p, outcome result) {
    if constexpr (limited<Env>) {
      env.limits().leave(p, result == outcome::throttle  ? call_feedback::throttled
                            : result == outcome::failure ? call_feedback::neutral
                                                         : call_feedback::success);
    } else {
      (void)env;
      (void)p;
      (void)result;
    }
  }

  template <class Env>
  void attempt(Env& env, live_counters& counters, segment& seg, time_point now, permit p) {
    const std::uint32_t n = seg.end - seg.begin;
    const batch<R> b(records_.subspan(seg.begin, n), shard_);
    if (seg.invocations > 0) live_counters::add(counters.retries, 1);
    ++seg.invocations;
    live_counters::add(counters.invocations, 1);
    live_counters::add(counters.invoked, n);
    counters.record_iterator_age(
        std::chrono::duration_cast<std::chrono::milliseconds>(now - b.last_arrival()).count());

    std::uint32_t lowest_failed = seg.begin;
    outcome result;
    if constexpr (Policies::window)
      result = invoke_window(env, counters, b, seg, lowest_failed);
    else
      result = invoke(env, counters, b, seg, lowest_failed);
    leave_limits(env, p, result);
    switch (result) {
      case outcome::success:
        live_counters::add(counters.succeeded, n);
        finish_to(seg.end);
        stack_.pop_back();
        consecutive_failures_ = 0;
        return;
      case outcome::partial:  // S-5.2: records before L are finished; [L, end] starts afresh
        live_counters::add(counters.succeeded, lowest_failed - seg.begin);
        live_counters::add(counters.failed_invoke, seg.end - lowest_failed);
        raise_failed(env, lowest_failed, seg.end, seg.invocations, now);
        finish_to(lowest_failed);
        seg = segment{lowest_failed, seg.end};
        consecutive_failures_ = 0;
        return;
      case outcome::throttle:  // S-4.4: no attempt consumed, never bisected
        live_counters::add(counters.throttles, 1);
        live_counters::add(counters.failed_invoke, n);
        raise_failed(env, seg.begin, seg.end, seg.invocations, now);
        back_off(env, now);
        return;
      case outcome::failure:
        live_counters::add(counters.failed_invoke, n);
        raise_failed(env, seg.begin, seg.end, seg.invocations, now);
        if constexpr (Policies::bisect) {  // S-5.3: split, first half first, fresh counts
          if (n > 1) {
            const std::uint32_t mid = seg.begin + (n + 1) / 2;
            const segment first{seg.begin, mid};
            seg = segment{mid, seg.end};
            stack_.push_back(first);
            live_counters::add(counters.splits, 1);
            return;
          }
        }
        ++seg.attempts;
        if (env.retry.maximum_retry_attempts >= 0 &&
            seg.attempts >= 1 + static_cast<std::uint64_t>(env.retry.maximum_retry_attempts)) {
          const segment done = seg;  // S-5.5
          stack_.pop_back();
          discard(env, counters, done.begin, done.end, failure_condition::retry_attempts_exhausted,
                  done.invocations, now);
          return;
        }
        back_off(env, now);
        return;
    }
  }

  template <class Env>
  outcome invoke(Env& env, live_counters& counters, const batch<R>& b, const segment& seg,
                 std::uint32_t& lowest_failed) {
    using result_t = std::invoke_result_t<decltype(env.handler()), const batch<R>&>;
    try {
      if constexpr (std::is_void_v<result_t>) {
        env.handler()(b);
        return outcome::success;
      } else if constexpr (!Policies::report) {
        (void)env.handler()(b);  // S-4.2: reports are ignored without the feature
        return outcome::success;
      } else {
        std::fill(reported_.begin() + seg.begin, reported_.begin() + seg.end, false);
        const result_t report = env.handler()(b);
        const batch_item_failures* failures = nullptr;
        if constexpr (std::is_same_v<result_t, batch_item_failures>)
          failures = &report;
        else if (report)
          failures = &*report;
        if (failures == nullptr || failures->empty()) return outcome::success;
        return read_report(counters, b, seg, *failures, lowest_failed);
      }
    } catch (...) {
      if (caught() == outcome::throttle) return outcome::throttle;
    }
    live_counters::add(counters.function_errors, 1);
    return outcome::failure;
  }

  // ---- S-7 tumbling windows (docs/windows.md) ----

 public:
  /// A window a restarted mapping resumes (from the checkpoint store), before the job runs.
  void restore_window(const window_checkpoint& w) {
    if constexpr (Policies::window) window_.open = w;
  }
  /// The open window and the last record whose effect is in it, for the checkpoint save.
  window_snapshot window_published() const {
    if constexpr (Policies::window)
      return window_.published.get();
    else
      return {};
  }

 private:
  /// Whether the window's final invocation is due now: the begun batch is an idle marker (no
  /// records) or of a later window, or the state went over the cap (terminated early).
  template <class Env>
  bool window_due(Env& env) {
    if (!window_.checked) {
      window_.checked = true;
      if (window_.open) {
        window_.final_due =
            records_.empty() || window_start_of(sluice::arrival_time(records_[0]),
                                                env.window().length) != window_.open->start;
      }
    }
    if (window_.open && window_.open->terminated_early) window_.final_due = true;
    return window_.final_due;
  }

  /// The window ends: one invocation with no records, is_final set, the window's state.
  template <class Env>
  void attempt_final(Env& env, live_counters& counters, time_point now, permit p) {
    window_checkpoint& w = *window_.open;
    const window_context ctx{w.start, w.end, shard_, w.state, true, w.terminated_early};
    const batch<R> b(records_.subspan(0, 0), shard_);
    if (window_.final_invocations > 0) live_counters::add(counters.retries, 1);
    ++window_.final_invocations;
    live_counters::add(counters.invocations, 1);
    outcome result = outcome::failure;
    try {
      window_response r = env.handler()(b, ctx);
      if (!r.state) {
        last_error_ = missing_state();
      } else if (Policies::report && !r.failures.empty()) {
        last_error_ = error_info{"sluice::invalid_batch_item_failures",
                                 "a final window invocation has no records to report",
                                 attempt_outcome::returned_report};
      } else {
        result = outcome::success;
      }
    } catch (...) {
      result = caught();
    }
    leave_limits(env, p, result);
    if (result == outcome::success) {  // S-7.2: the state is dropped
      close_window();
      consecutive_failures_ = 0;
      return;
    }
    if (result == outcome::throttle) {
      live_counters::add(counters.throttles, 1);
      back_off(env, now);
      return;
    }
    live_counters::add(counters.function_errors, 1);
    if (window_.final_attempts++ == 0) window_.final_first_failure = now;
    // S-5.4, S-5.5 for an invocation with no records: its age is how long it has been failing.
    const bool exhausted =
        env.retry.maximum_retry_attempts >= 0 &&
        window_.final_attempts >= 1 + static_cast<std::uint64_t>(env.retry.maximum_retry_attempts);
    const bool too_old = env.retry.maximum_record_age &&
                         now - window_.final_first_failure >= *env.retry.maximum_record_age;
    if (!exhausted && !too_old) {
      back_off(env, now);
      return;
    }
    const failure_condition condition = exhausted ? failure_condition::retry_attempts_exhausted
                                                  : failure_condition::record_age_exceeded;
    auto rec = std::make_unique<on_failure_record<R>>();
    rec->condition = condition;
    rec->approximate_invoke_count = window_.final_invocations;
    if (last_error_) {
      rec->error_type = last_error_->type;
      rec->error_message = last_error_->message;
      rec->last_attempt = last_error_->outcome;
    }
    rec->stream_name = env.stream_name;
    rec->shard_id = shard_;
    rec->start_sequence_number = window_.first;
    rec->end_sequence_number = window_.last;
    rec->batch_size = 0;  // the window's final invocation carries no records
    rec->timestamp = now;
    raise(env, event_kind::batch_discarded, *rec);
    close_window();
    consecutive_failures_ = 0;
    if constexpr (Policies::has_destination) {
      pending_ = std::move(rec);
      pending_end_ = static_cast<std::uint32_t>(finished_);
    }
  }

  void close_window() {
    window_.open.reset();
    window_.final_due = false;
    window_.final_attempts = 0;
    window_.final_invocations = 0;
    window_.first = window_.last = 0;
    window_.published.publish(window_.open, window_.through);
  }

  static error_info missing_state() {
    return error_info{"sluice::missing_window_state",
                      "the window handler's response has no state (S-7: a failed invocation)",
                      attempt_outcome::returned_report};
  }

  /// An invocation of a window's records: the state in, the new state out (committed only when
  /// the attempt succeeded, wholly or for a prefix).
  template <class Env>
  outcome invoke_window(Env& env, live_counters& counters, const batch<R>& b, const segment& seg,
                        std::uint32_t& lowest_failed) {
    if (!window_.open) {
      const time_point start = window_start_of(b.first_arrival(), env.window().length);
      window_.open = window_checkpoint{start, start + env.window().length, {}, false};
    }
    window_checkpoint& w = *window_.open;
    const window_context ctx{w.start, w.end, shard_, w.state, false, false};
    try {
      if constexpr (Policies::report)
        std::fill(reported_.begin() + seg.begin, reported_.begin() + seg.end, false);
      window_response r = env.handler()(b, ctx);
      if (!r.state) {
        last_error_ = missing_state();
        live_counters::add(counters.function_errors, 1);
        return outcome::failure;
      }
      outcome result = outcome::success;
      if constexpr (Policies::report) {  // S-4.2: ignored without the feature
        if (!r.failures.empty()) result = read_report(counters, b, seg, r.failures, lowest_failed);
      }
      if (result == outcome::failure) return result;
      const std::uint32_t end = result == outcome::success ? seg.end : lowest_failed;
      if (window_.first == 0) window_.first = sluice::sequence_number(records_[seg.begin]);
      window_.last = sluice::sequence_number(records_[end - 1]);
      window_.through = window_.last;
      w.state = std::move(*r.state);
      if (w.state.size() > env.window().maximum_state_bytes) w.terminated_early = true;
      window_.published.publish(window_.open, window_.through);
      return result;
    } catch (...) {
      if (caught() == outcome::throttle) return outcome::throttle;
    }
    live_counters::add(counters.function_errors, 1);
    return outcome::failure;
  }

  /// S-4.3: every identifier must be a sequence number in the batch; the lowest sets L.
  outcome read_report(live_counters& counters, const batch<R>& b, const segment& seg,
                      const batch_item_failures& failures, std::uint32_t& lowest_failed) {
    std::uint32_t lowest = seg.end;
    for (const sequence_number_t id : failures.item_identifiers) {
      const auto it = std::lower_bound(b.begin(), b.end(), id, [](const R& r, sequence_number_t s) {
        return sluice::sequence_number(r) < s;
      });
      if (id == no_sequence || it == b.end() || sluice::sequence_number(*it) != id) {
        last_error_ = error_info{"sluice::invalid_batch_item_failures",
                                 "item identifier " + std::to_string(id) + " is not in the batch",
                                 attempt_outcome::returned_report};
        std::fill(reported_.begin() + seg.begin, reported_.begin() + seg.end, false);
        live_counters::add(counters.function_errors, 1);
        return outcome::failure;
      }
      const auto index = seg.begin + static_cast<std::uint32_t>(it - b.begin());
      reported_[index] = true;
      lowest = std::min(lowest, index);
    }
    last_error_ =
        error_info{"sluice::batch_item_failures",
                   "the handler reported " + std::to_string(failures.item_identifiers.size()) +
                       " failed record(s)",
                   attempt_outcome::returned_report};
    lowest_failed = lowest;
    return lowest == seg.begin ? outcome::failure : outcome::partial;
  }

  template <class Env>
  void back_off(Env& env, time_point now) {
    ++consecutive_failures_;
    next_attempt_ = now + env.retry.backoff.delay(consecutive_failures_, splitmix64(rng_));
    waiting_ = true;
  }

  /// Records [from, to) leave the lane without success: to the destination, or dropped.
  template <class Env>
  void discard(Env& env, live_counters& counters, std::uint32_t from, std::uint32_t to,
               failure_condition condition, std::uint32_t invocations, time_point now) {
    if constexpr (!Policies::has_destination) {
      (void)env;
      (void)condition;
      (void)invocations;
      if (has_sink(env)) [[unlikely]] {
        on_failure_record<R> rec;  // the coordinates only: nothing is delivered
        rec.condition = condition;
        rec.start_sequence_number = sluice::sequence_number(records_[from]);
        rec.end_sequence_number = sluice::sequence_number(records_[to - 1]);
        rec.batch_size = to - from;
        rec.timestamp = now;
        rec.approximate_invoke_count = std::max<std::uint32_t>(1, invocations);
        if (invocations > 0 && last_error_) {
          rec.error_type = last_error_->type;
          rec.error_message = last_error_->message;
        }
        raise(env, event_kind::batch_discarded, rec);
      }
      live_counters::add(counters.dropped, to - from);
      finish_to(to);
    } else {
      auto rec = std::make_unique<on_failure_record<R>>();
      rec->condition = condition;
      rec->approximate_invoke_count = std::max<std::uint32_t>(1, invocations);
      if (invocations > 0 && last_error_) {
        rec->error_type = last_error_->type;
        rec->error_message = last_error_->message;
        rec->last_attempt = last_error_->outcome;
      }
      rec->stream_name = env.stream_name;
      rec->shard_id = shard_;
      rec->start_sequence_number = sluice::sequence_number(records_[from]);
      rec->end_sequence_number = sluice::sequence_number(records_[to - 1]);
      rec->approximate_arrival_of_first_record = sluice::arrival_time(records_[from]);
      rec->approximate_arrival_of_last_record = sluice::arrival_time(records_[to - 1]);
      rec->batch_size = to - from;
      rec->timestamp = now;
      rec->records.assign(records_.begin() + from, records_.begin() + to);
      rec->reported_failed.assign(to - from, false);
      if constexpr (Policies::report) {
        if (invocations > 0) {
          for (std::uint32_t i = from; i < to; ++i) rec->reported_failed[i - from] = reported_[i];
        }
      }
      raise(env, event_kind::batch_discarded, *rec);
      pending_ = std::move(rec);
      pending_end_ = to;
    }
  }

  /// S-5.8: the records count as finished only once the destination has accepted them. A
  /// failed delivery's error is kept in the shard's metrics (last_destination_error) until a
  /// delivery succeeds, so it is visible while the lane retries.
  template <class Env>
  bool deliver_pending(Env& env, live_counters& counters) {
    if constexpr (Policies::has_destination) {
      if (const auto again = deliver_or_back_off(
              env.destination(), *pending_, counters, env.now(), env.retry.backoff,
              consecutive_failures_, rng_, blocked_, [&](event_kind kind, const error_info* error) {
                if (has_sink(env)) [[unlikely]]
                  raise(env, kind, *pending_, error ? error->type : std::string_view(),
                        error ? error->message : std::string_view());
              })) {
        next_attempt_ = *again;
        return false;
      }
      pending_.reset();
      finish_to(pending_end_);
    }
    return true;
  }

  template <class Env>
  static bool has_sink(Env& env) noexcept {
    if constexpr (requires { env.events(); })
      return env.events() != nullptr;
    else
      return false;
  }

  /// An attempt of records [from, to) failed (function error, throttle or reported failures).
  template <class Env>
  [[gnu::noinline]] void raise_failed(Env& env, std::uint32_t from, std::uint32_t to,
                                      std::uint32_t attempts, time_point now) {
    if (!has_sink(env)) [[likely]]
      return;
    if constexpr (requires { env.events(); }) {
      event e;
      e.kind = event_kind::batch_failed;
      e.time = now;
      e.mapping = env.mapping_name();
      e.shard = shard_;
      e.first_sequence = sluice::sequence_number(records_[from]);
      e.last_sequence = sluice::sequence_number(records_[to - 1]);
      e.records = to - from;
      e.attempts = attempts;
      if (last_error_) {
        e.error_type = last_error_->type;
        e.error_message = last_error_->message;
      }
      env.events()->on_event(e);
    }
  }

  /// An event about an on-failure record (discarded, delivered, blocking or unblocking its lane).
  template <class Env>
  [[gnu::noinline]] void raise(Env& env, event_kind kind, const on_failure_record<R>& rec,
                               std::string_view error_type = {},
                               std::string_view error_message = {}) {
    if constexpr (requires { env.events(); }) {
      event_sink* sink = env.events();
      if (sink == nullptr) return;
      event e;
      e.kind = kind;
      e.time = kind == event_kind::batch_discarded ? rec.timestamp : env.now();
      e.mapping = env.mapping_name();
      e.shard = shard_;
      e.first_sequence = rec.start_sequence_number;
      e.last_sequence = rec.end_sequence_number;
      e.records = rec.batch_size;
      e.condition = to_string(rec.condition);
      if (!error_type.empty() || !error_message.empty()) {
        e.error_type = error_type;
        e.error_message = error_message;
      } else if (kind == event_kind::batch_discarded) {
        e.attempts = rec.approximate_invoke_count;
        if (rec.error_type) e.error_type = *rec.error_type;
        if (rec.error_message) e.error_message = *rec.error_message;
      }
      sink->on_event(e);
    } else {
      (void)env, (void)kind, (void)rec, (void)error_type, (void)error_message;
    }
  }

  void finish_to(std::uint32_t index) noexcept {
    finished_ = std::max<std::size_t>(finished_, index);
  }

  std::span<const R> records_;
  bool started_ = false;
  shard_id_t shard_ = 0;
  std::size_t finished_ = 0;
  std::vector<segment> stack_;
  std::vector<bool> reported_;
  std::optional<error_info> last_error_;
  std::unique_ptr<on_failure_record<R>> pending_;
  std::uint32_t pending_end_ = 0;
  std::uint32_t consecutive_failures_ = 0;
  time_point next_attempt_{};
  bool waiting_ = false;
  bool blocked_ = false;  // deliveries of pending_ are failing: counted in blocked_lanes
  std::uint64_t rng_;
  [[no_unique_address]] std::conditional_t<Policies::window, window_run, no_window_run> window_;
};

}  // namespace detail
SLUICE_END_NAMESPACE
