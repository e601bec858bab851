// sluice/detail/queue/runtime.hpp: mappings from a queue (S-9). A queue is not a stream: no
// shards, no positions, no checkpoints, and a failed message is not retried by the mapping but
// returns by itself after its visibility timeout. So queue mappings do not go through the shard
// engine (engine.hpp, lane_job.hpp); they reuse its parts: the composition rules and stage types
// (`|`, batching, filters), the fused per-record stages, the metrics counters, the events, the
// options and the clock. This file holds:
// - sluice::from(queue): the source stage of a queue mapping;
// - queue_core: one poll (receive, filter, batch window) and one settle (invoke, classify the
//   outcome, delete what succeeded), shared by run and start;
// - sluice::run and sluice::start for queue mappings (overloads constrained on a queue source,
//   chosen over the stream ones in run.hpp and start.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/batch.hpp"
#include "sluice/clock.hpp"
#include "sluice/detail/compose/rules.hpp"
#include "sluice/detail/filter/addressing.hpp"
#include "sluice/detail/pipeline/fused_stages.hpp"
#include "sluice/detail/pipeline/lane_job.hpp"
#include "sluice/detail/pipeline/limiter.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/events.hpp"
#include "sluice/mapping.hpp"
#include "sluice/metrics.hpp"
#include "sluice/options.hpp"
#include "sluice/queue.hpp"
#include "sluice/run.hpp"
#include "sluice/start.hpp"

SLUICE_BEGIN_NAMESPACE

/// A mapping from a queue (S-9.8). The queue must outlive the mapping.
template <queue_source Q>
auto from(Q& queue) {
  return source_stage<std::reference_wrapper<Q>>{std::ref(queue), starting_position::trim_horizon};
}

namespace detail {

template <class M>
inline constexpr bool is_queue_mapping = is_queue_source_v<typename M::source_type>;

/// A queue mapping's settings, checked against the queue (S-9.8).
struct queue_mapping_config {
  std::uint32_t batch_size = 10;
  duration window = duration::zero();
  std::size_t max_bytes = 6u << 20;
};

template <class M>
queue_mapping_config queue_config(M& m, bool fifo) {
  queue_mapping_config c;
  if constexpr (M::template has<batch_test>) {
    const batching_config b = mapping_traits<M>::batching(m);
    c.batch_size = b.batch_size;
    c.window = b.maximum_batching_window;
    c.max_bytes = b.maximum_payload_bytes;
  }
  using ms = std::chrono::duration<double, std::milli>;
  if (fifo) {
    require_in_range<std::uint32_t>("batch_size", c.batch_size, 1, 10, "1..10 on a FIFO queue");
    if (c.window != duration::zero())
      reject("maximum_batching_window (ms)", std::chrono::duration_cast<ms>(c.window).count(),
             "0 on a FIFO queue (Lambda has no batching window for FIFO queues)");
  } else if (c.batch_size > 10 && c.window < std::chrono::seconds(1)) {
    reject(
        "maximum_batching_window (ms)", std::chrono::duration_cast<ms>(c.window).count(),
        "1000..300000 ms when batch_size > 10 (batch_size = " + std::to_string(c.batch_size) + ")");
  }
  return c;
}

/// The one place a queue mapping's concurrency is decided (S-9.13): how many pollers
/// sluice::start may have (each runs one handler call at a time). With maximum_concurrency (or
/// adaptive_concurrency) its maximum, and the mapping's limiter gates the calls; else
/// workers(n), else the hardware threads.
template <class M>
std::uint32_t queue_concurrency(M& m, std::uint32_t workers) {
  if constexpr (M::template has<concurrency_limit_test>)
    return mapping_traits<M>::limits(m).concurrency->maximum;
  if (workers != 0) return workers;
  return std::max(1u, std::thread::hardware_concurrency());
}

/// What run and start share: one poll and one settle of a queue mapping.
template <class M, class Clock>
class queue_core {
 public:
  using queue_type = unwrapped_t<decltype(std::declval<M&>().source.source)>;
  using traits = mapping_traits<M>;
  using handler_result =
      handler_result_t<queue_message, decltype(traits::handler(std::declval<M&>()))>;
  static constexpr bool report = M::template has<report_test>;

  queue_core(M&& m, Clock& clock, std::string name, event_sink* events)
      : m_(std::move(m)),
        queue_(unwrap(m_.source.source)),
        cfg_(queue_config(m_, queue_.fifo())),
        clock_(clock),
        name_(std::move(name)),
        events_(events),
        limiter_(traits::limits(m_), clock.now()) {
    check_filter_addressing<true>(m_.stages);  // S-9.10: `body`, not `data`
  }

  queue_type& queue() noexcept { return queue_; }
  Clock& clock() noexcept { return clock_; }
  const queue_mapping_config& config() const noexcept { return cfg_; }
  /// The mapping's downstream limits (sluice/limits.hpp): a poller holds a permit from before it
  /// receives until the batch is settled, and waits for rate tokens before the handler.
  limiter& limits() noexcept { return limiter_; }

  /// Waits (on the clock, on `self`) until the rate limit admits buf; false if stopped first.
  bool admit(const std::vector<queue_message>& buf, sleeper& self, const std::atomic<bool>& stop) {
    while (auto later = limiter_.admit(buf.size(), clock_.now())) {
      if (stop.load()) return false;
      clock_.sleep_until(*later, self);
    }
    return true;
  }

  /// Receives one batch into buf (S-9.9), deleting the messages no filter keeps (S-9.10).
  /// Returns how many messages were received (buf holds the kept ones). With a batching window
  /// it waits on `self` (a send wakes it when the caller subscribed it).
  std::size_t collect(std::vector<queue_message>& buf, sleeper& self,
                      const std::atomic<bool>& stop) {
    buf.clear();
    std::size_t received = receive_more(buf, cfg_.batch_size, cfg_.max_bytes);
    if (received == 0 || cfg_.window == duration::zero()) return received;
    const time_point deadline = clock_.now() + cfg_.window;
    while (!stop.load(std::memory_order_relaxed) && buf.size() < cfg_.batch_size) {
      const std::size_t bytes = payload_bytes(buf);
      if (bytes >= cfg_.max_bytes) break;
      const time_point now = clock_.now();
      if (now >= deadline) break;
      const std::size_t got =
          receive_more(buf, cfg_.batch_size - buf.size(), cfg_.max_bytes - bytes);
      received += got;
      if (got == 0) clock_.sleep_until(std::min(deadline, queue_.next_visible_time()), self);
    }
    return received;
  }

  /// Invokes the handler with buf and settles the outcome (S-9.11): deletes what succeeded;
  /// what failed stays in flight and returns after its visibility timeout.
  call_feedback settle(std::vector<queue_message>& buf) {
    if (buf.empty()) return call_feedback::neutral;
    const time_point now = clock_.now();
    const auto oldest = std::min_element(buf.begin(), buf.end(), [](const auto& a, const auto& b) {
                          return a.sent_timestamp < b.sent_timestamp;
                        })->sent_timestamp;
    counters_.record_iterator_age(
        std::chrono::duration_cast<std::chrono::milliseconds>(now - oldest).count());
    live_counters::add(counters_.invoked, buf.size());
    live_counters::add(counters_.invocations, 1);
    for (const auto& msg : buf)
      if (msg.approximate_receive_count > 1) {
        live_counters::add(counters_.retries, 1);
        break;
      }
    attempt a;  // per call: several pollers settle at once
    a.failed.assign(buf.size(), false);
    const outcome o = invoke(buf, a);
    std::vector<receipt_handle> done;
    if (o == outcome::success || o == outcome::partial) {
      if (o == outcome::partial && queue_.fifo()) {  // S-9.11: after a group's first failure
        std::unordered_map<std::string_view, bool> group_failed;
        for (std::size_t i = 0; i < buf.size(); ++i) {
          bool& g = group_failed[buf[i].message_group_id];
          if (a.failed[i]) g = true;
          if (g) a.failed[i] = true;
        }
      }
      std::size_t failed = 0;
      for (std::size_t i = 0; i < buf.size(); ++i) {
        if (a.failed[i])
          ++failed;
        else
          done.push_back(buf[i].receipt);
      }
      live_counters::add(counters_.failed_invoke, failed);
      live_counters::add(counters_.succeeded, done.size());
      if (failed > 0) raise_failed(buf, failed, a.error);
    } else {  // failure or throttle: every message returns after its visibility timeout
      live_counters::add(counters_.failed_invoke, buf.size());
      raise_failed(buf, buf.size(), a.error);
    }
    if (!done.empty()) queue_.delete_messages(done);
    return o == outcome::throttle  ? call_feedback::throttled
           : o == outcome::failure ? call_feedback::neutral
                                   : call_feedback::success;
  }

  metrics_snapshot metrics(std::uint64_t buffered) const {
    metrics_snapshot s;
    s.mapping_name = name_;
    shard_metrics sm;
    sm.counters = counters_.snapshot();
    s.total = sm.counters;
    s.shards.push_back(std::move(sm));
    s.buffered_records = buffered;
    if constexpr (traits::has_limits) s.limits = limiter_.snapshot();
    return s;
  }

 private:
  enum class outcome { success, partial, failure, throttle };
  /// One handler call's state: which messages failed, and the error.
  struct attempt {
    std::vector<bool> failed;
    error_info error;
  };

  static std::size_t payload_bytes(const std::vector<queue_message>& buf) {
    std::size_t n = 0;
    for (const auto& msg : buf) n += msg.payload.size();
    return n;
  }

  std::size_t receive_more(std::vector<queue_message>& buf, std::size_t n, std::size_t bytes) {
    const std::size_t before = buf.size();
    const std::size_t got = queue_.receive(buf, n, bytes);
    live_counters::add(counters_.polled, got);
    if constexpr (per_record_count<typename M::stages_type>::value > 0) {
      std::vector<receipt_handle> unmatched;
      auto keep = [](auto&&) { return true; };
      auto out = buf.begin() + static_cast<std::ptrdiff_t>(before);
      for (auto it = out; it != buf.end(); ++it) {
        if (run_per_record<0>(m_.stages, *it, keep)) {
          if (out != it) *out = std::move(*it);
          ++out;
        } else {
          unmatched.push_back(it->receipt);
        }
      }
      buf.erase(out, buf.end());
      if (!unmatched.empty()) {
        live_counters::add(counters_.filtered_out, unmatched.size());
        queue_.delete_messages(unmatched);
      }
    }
    return got;
  }

  outcome invoke(const std::vector<queue_message>& buf, attempt& a) {
    const batch<queue_message> b(std::span<const queue_message>(buf.data(), buf.size()), 0);
    auto& handler = traits::handler(m_);
    try {
      if constexpr (std::is_void_v<handler_result>) {
        handler(b);
        return outcome::success;
      } else if constexpr (!report) {
        (void)handler(b);  // a report is ignored without report_batch_item_failures (S-4.2)
        return outcome::success;
      } else {
        const handler_result r = handler(b);
        const queue_item_failures* failures = nullptr;
        if constexpr (std::is_same_v<handler_result, queue_item_failures>)
          failures = &r;
        else if (r)
          failures = &*r;
        if (failures == nullptr || failures->empty()) return outcome::success;
        return read_report(buf, *failures, a);
      }
    } catch (...) {
      if (describe_caught(a.error)) {
        live_counters::add(counters_.throttles, 1);
        return outcome::throttle;
      }
    }
    live_counters::add(counters_.function_errors, 1);
    return outcome::failure;
  }

  /// S-9.11: every identifier must be a message id of the batch, else the whole batch fails.
  outcome read_report(const std::vector<queue_message>& buf, const queue_item_failures& f,
                      attempt& a) {
    for (const std::string& id : f.item_identifiers) {
      std::size_t i = 0;
      while (i < buf.size() && buf[i].message_id != id) ++i;
      if (id.empty() || i == buf.size()) {
        a.error = error_info{"sluice::invalid_batch_item_failures",
                             "item identifier \"" + id + "\" is not a message id of the batch",
                             attempt_outcome::returned_report};
        std::fill(a.failed.begin(), a.failed.end(), false);
        live_counters::add(counters_.function_errors, 1);
        return outcome::failure;
      }
      a.failed[i] = true;
    }
    a.error = error_info{
        "sluice::queue_item_failures",
        "the handler reported " + std::to_string(f.item_identifiers.size()) + " failed message(s)",
        attempt_outcome::returned_report};
    return outcome::partial;
  }

  void raise_failed(const std::vector<queue_message>& buf, std::size_t failed,
                    const error_info& error) {
    if (events_ == nullptr) return;
    std::uint32_t attempts = 0;
    for (const auto& msg : buf) attempts = std::max(attempts, msg.approximate_receive_count);
    event e;
    e.kind = event_kind::batch_failed;
    e.time = clock_.now();
    e.mapping = name_;
    e.first_sequence = buf.front().sequence;
    e.last_sequence = buf.back().sequence;
    e.records = failed;
    e.attempts = attempts;
    e.error_type = error.type;
    e.error_message = error.message;
    events_->on_event(e);
  }

  M m_;
  queue_type& queue_;
  queue_mapping_config cfg_;
  Clock& clock_;
  std::string name_;
  event_sink* events_;
  live_counters counters_;
  limiter limiter_;
};

/// Wakes one sleeper when the queue has news (sluice::run's thread).
template <class Clock>
struct wake_on_data final : data_listener {
  Clock& clock;
  sleeper& self;
  wake_on_data(Clock& c, sleeper& s) : clock(c), self(s) {}
  void on_data(shard_id_t) noexcept override { clock.wake(self); }
};

/// sluice::start's threads for a queue mapping (S-9.13): pollers that each receive a batch and
/// run the handler. One waits on an empty queue (asleep until a send or a visibility deadline);
/// the others park. A poller that got a full batch wakes or starts another, up to the limit.
template <class Core>
class queue_driver final : public running_control, private data_listener {
 public:
  queue_driver(std::unique_ptr<Core> core, std::uint32_t limit)
      : core_(std::move(core)), limit_(limit) {
    core_->queue().subscribe(this);
    std::lock_guard lock(mutex_);
    spawn_locked();
  }
  queue_driver(const queue_driver&) = delete;
  queue_driver& operator=(const queue_driver&) = delete;
  ~queue_driver() override { stop(); }

  void stop() override {
    request_stop();
    std::vector<std::unique_ptr<poller>> all;
    {
      std::lock_guard lock(mutex_);
      if (joined_) return;
      for (auto& p : pollers_)
        if (p->thread.get_id() == std::this_thread::get_id()) return;  // a handler: request only
      joined_ = true;
      all = std::move(pollers_);
    }
    for (auto& p : all)
      if (p->thread.joinable()) p->thread.join();
    core_->queue().unsubscribe(this);
  }
  void request_stop() override {
    stop_.store(true);
    core_->limits().interrupt();
    std::lock_guard lock(mutex_);
    for (auto& p : pollers_) core_->clock().wake(p->sleep);
    caught_up_cv_.notify_all();
  }
  bool stop_requested() const noexcept override { return stop_.load(); }
  bool wait_until_caught_up(std::chrono::nanoseconds timeout) override {
    const auto until = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(mutex_);
    while (true) {
      if (failure_) std::rethrow_exception(failure_);
      if (busy_ == 0) {
        lock.unlock();
        const bool empty = core_->queue().empty();
        lock.lock();
        if (empty && busy_ == 0) return true;
      }
      if (std::chrono::steady_clock::now() >= until) return false;
      caught_up_cv_.wait_for(lock, std::chrono::milliseconds(5));
    }
  }
  metrics_snapshot metrics() const override {
    return core_->metrics(held_.load(std::memory_order_relaxed));
  }
  std::size_t buffer_bound() const override {
    return std::size_t{limit_} * core_->config().batch_size;
  }
  std::exception_ptr failure() const override {
    std::lock_guard lock(mutex_);
    return failure_;
  }

 private:
  struct poller {
    sleeper sleep;
    std::thread thread;
    bool parked = false;
  };

  void on_data(shard_id_t) noexcept override {
    try {
      std::lock_guard lock(mutex_);
      data_pending_ = true;
      if (waiter_ != nullptr) {
        core_->clock().wake(waiter_->sleep);
      } else if (!wake_parked_locked() && idle_ == 0 && !stop_.load()) {
        spawn_locked();  // every poller is busy: the backlog grows, so the pollers do
      }
    } catch (...) {  // a thread that cannot be started: the running pollers go on
    }
  }

  bool wake_parked_locked() {
    for (auto& p : pollers_)
      if (p->parked) {
        p->parked = false;
        core_->clock().wake(p->sleep);
        return true;
      }
    return false;
  }

  void spawn_locked() {
    if (joined_ || pollers_.size() >= limit_) return;
    auto p = std::make_unique<poller>();
    poller* raw = p.get();
    ++idle_;
    pollers_.push_back(std::move(p));
    raw->thread = std::thread([this, raw] { loop(*raw); });
  }

  void loop(poller& p) {
    std::vector<queue_message> buf;
    auto& core = *core_;
    while (!stop_.load()) {
      {
        std::lock_guard lock(mutex_);
        data_pending_ = false;
        --idle_;
        ++busy_;
      }
      std::size_t received = 0;
      permit call = core.limits().enter();  // before receiving: nothing held while waiting
      try {
        if (call) {
          received = core.collect(buf, p.sleep, stop_);
          held_.fetch_add(buf.size(), std::memory_order_relaxed);
          if (buf.size() >= core.config().batch_size) {
            std::lock_guard lock(mutex_);
            if (!wake_parked_locked()) spawn_locked();
          }
          // Nothing received: no call, so no tokens (an empty poll must not wait for them).
          const call_feedback feedback = !buf.empty() && core.admit(buf, p.sleep, stop_)
                                             ? core.settle(buf)
                                             : call_feedback::neutral;
          core.limits().leave(std::exchange(call, permit{}), feedback);
          held_.fetch_sub(buf.size(), std::memory_order_relaxed);
          buf.clear();
        }
      } catch (...) {  // a filter threw: stop; its message returns after its visibility timeout
        core.limits().leave(call, call_feedback::neutral);
        core.limits().interrupt();
        std::lock_guard lock(mutex_);
        if (!failure_) failure_ = std::current_exception();
        stop_.store(true);
        for (auto& q : pollers_) core.clock().wake(q->sleep);
      }
      bool wait = false;
      bool park = false;
      {
        std::lock_guard lock(mutex_);
        --busy_;
        ++idle_;
        caught_up_cv_.notify_all();
        if (received > 0 || stop_.load()) continue;
        if (data_pending_) continue;
        if (waiter_ != nullptr) {
          p.parked = park = true;
        } else {
          waiter_ = &p;
          wait = true;
        }
      }
      if (park) {
        core.clock().sleep_until(far_future, p.sleep);
        std::lock_guard lock(mutex_);
        p.parked = false;
      } else if (wait) {
        core.clock().sleep_until(core.queue().next_visible_time(), p.sleep);
        std::lock_guard lock(mutex_);
        waiter_ = nullptr;
      }
    }
    std::lock_guard lock(mutex_);
    --idle_;
  }

  std::unique_ptr<Core> core_;
  std::uint32_t limit_;
  mutable std::mutex mutex_;
  std::condition_variable caught_up_cv_;
  std::vector<std::unique_ptr<poller>> pollers_;
  poller* waiter_ = nullptr;
  std::size_t idle_ = 0;
  std::size_t busy_ = 0;
  bool data_pending_ = false;
  bool joined_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> held_{0};
  std::exception_ptr failure_;
};

}  // namespace detail

/// sluice::run for a queue mapping (S-9.14): on the calling thread, until the queue holds no
/// message (visible, delayed or in flight) or stop is requested.
template <class Source, class Stages, class... Opts>
requires detail::is_queue_mapping<mapping<Source, Stages>> metrics_snapshot
run(mapping<Source, Stages>&& m, Opts... opts) {
  if constexpr (!detail::runnable<mapping<Source, Stages>, detail::run_driver, Opts...>()) {
    return {};
  } else {
    using options = detail::options_with_default_store<memory_checkpoint_store, Opts...>;
    options o(nullptr, std::move(opts)...);
    using core_t = detail::queue_core<mapping<Source, Stages>, typename options::clock_type>;
    core_t core(std::move(m), *o.clock, o.name, o.events);
    sleeper self;
    detail::wake_on_data<typename options::clock_type> listener(*o.clock, self);
    core.queue().subscribe(&listener);
    struct unsubscribe {
      core_t& core;
      data_listener* l;
      ~unsubscribe() { core.queue().unsubscribe(l); }
    } guard{core, &listener};
    std::atomic<bool> stopped{false};
    std::stop_callback on_stop(o.stop, [&] {
      stopped = true;
      o.clock->wake(self);
    });
    std::vector<queue_message> buf;
    while (!stopped) {
      const detail::permit call = core.limits().enter();  // one call at a time: always free
      const std::size_t received = core.collect(buf, self, stopped);
      if (!buf.empty()) {
        const detail::call_feedback feedback =
            core.admit(buf, self, stopped) ? core.settle(buf) : detail::call_feedback::neutral;
        core.limits().leave(call, feedback);
        continue;
      }
      core.limits().leave(call, detail::call_feedback::neutral);
      if (received > 0) continue;  // all filtered out
      if (core.queue().empty()) break;
      o.clock->sleep_until(core.queue().next_visible_time(), self);
    }
    return core.metrics(0);
  }
}

/// sluice::start for a queue mapping (S-9.13): pollers on their own threads, at most
/// the concurrency limit (workers(n), default: hardware threads) handler calls at once.
template <class Source, class Stages, class... Opts>
requires detail::is_queue_mapping<mapping<Source, Stages>> running_mapping
start(mapping<Source, Stages>&& m, Opts... opts) {
  if constexpr (!detail::runnable<mapping<Source, Stages>, detail::start_driver, Opts...>()) {
    return running_mapping(nullptr);
  } else {
    using options = detail::options_with_default_store<memory_checkpoint_store, Opts...>;
    options o(nullptr, std::move(opts)...);
    using core_t = detail::queue_core<mapping<Source, Stages>, typename options::clock_type>;
    const std::uint32_t limit = detail::queue_concurrency(m, o.workers);
    auto core = std::make_unique<core_t>(std::move(m), *o.clock, o.name, o.events);
    return running_mapping(std::make_unique<detail::queue_driver<core_t>>(std::move(core), limit));
  }
}

SLUICE_END_NAMESPACE
