// sluice/start.hpp: sluice::start runs a mapping on its own threads. Pollers read shards and
// close batches; workers run the lane jobs (handler and failure policies). Batches, never
// records, cross threads, through one moodycamel queue with producer/consumer tokens and bulk
// dequeues. Each lane has at most one batch in flight and one filling, so a slow handler stops
// the reader and memory stays bounded; waiting jobs sit in a timer heap instead of holding a
// worker; idle threads sleep on the clock. The returned handle stops the mapping when destroyed.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/detail/compose/rules.hpp"
#include "sluice/detail/pipeline/engine.hpp"
#include "sluice/detail/threads/job_queue.hpp"
#include "sluice/metrics.hpp"
#include "sluice/options.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail {

template <class Engine>
class runtime {
  using lane = typename Engine::lane;
  using shard_state = typename Engine::shard_state;

  struct worker {
    std::thread thread;
    sleeper parked;
    std::atomic<bool> idle{false};
  };

  struct poller final : data_listener {
    runtime* owner = nullptr;
    std::uint32_t index = 0;
    std::thread thread;
    sleeper parked;
    std::atomic<bool> sleeping{false};
    std::atomic<bool> pending{false};  // something happened that the next pass must look at
    std::vector<shard_state*> shards;

    void on_data(shard_id_t shard) noexcept override {
      if (shard % owner->pollers_.size() == index) owner->nudge(*this);
    }
  };

 public:
  template <class... Args>
  runtime(std::uint32_t pollers, std::uint32_t workers, Args&&... args)
      : engine_(std::forward<Args>(args)...) {
    auto& shards = engine_.shards();
    std::size_t lanes = 0;
    for (auto& s : shards) lanes += s->lanes.size();
    const std::uint32_t hw = std::max(1u, std::thread::hardware_concurrency());
    if (pollers == 0) pollers = std::max(1u, hw / 4);
    pollers = std::min<std::uint32_t>(pollers, static_cast<std::uint32_t>(shards.size()));
    if (workers == 0) workers = hw;
    ready_ = std::make_unique<job_queue>(lanes + 64, pollers + workers);
    chunk_ = std::max<std::size_t>(1024, engine_.batching().batch_size);

    for (std::uint32_t i = 0; i < pollers; ++i) {
      auto p = std::make_unique<poller>();
      p->owner = this;
      p->index = i;
      pollers_.push_back(std::move(p));
    }
    for (auto& s : shards) pollers_[s->id % pollers]->shards.push_back(s.get());
    for (std::uint32_t i = 0; i < workers; ++i) workers_.push_back(std::make_unique<worker>());
    for (auto& p : pollers_) engine_.source().subscribe(p.get());
    engine_.set_stop_flag(&stopping_);
    for (auto& w : workers_) w->thread = std::thread([this, w = w.get()] { work(*w); });
    for (auto& p : pollers_) p->thread = std::thread([this, p = p.get()] { poll(*p); });
  }

  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;
  ~runtime() { stop(); }

  void request_stop() {
    stopping_.store(true, std::memory_order_seq_cst);
    for (auto& p : pollers_) nudge(*p);
    for (auto& w : workers_) engine_.clock().wake(w->parked);
    notify_caught_up();
  }

  /// Stops polling, lets running handler calls end, starts no new attempt, stores the final
  /// checkpoints (unfinished batches are not checkpointed: they are read again next time) and
  /// joins every thread.
  void stop() {
    if (stopped_) return;
    request_stop();
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();
    for (auto& p : pollers_)
      if (p->thread.joinable()) p->thread.join();
    for (auto& p : pollers_) engine_.source().unsubscribe(p.get());
    if (!failure()) {
      try {
        for (auto& s : engine_.shards()) engine_.update_checkpoint(*s);
      } catch (...) {
        fail(std::current_exception());
      }
    }
    stopped_ = true;
  }

  bool stop_requested() const noexcept { return stopping_.load(); }

  /// Waits until every record the source held when called is finished, the mapping failed
  /// (rethrown) or stopped, or the timeout passed. Returns whether it caught up.
  bool wait_until_caught_up(std::chrono::nanoseconds timeout) {
    std::vector<sequence_number_t> target;
    for (auto& s : engine_.shards()) target.push_back(engine_.source().last_sequence(s->id));
    std::unique_lock lock(caught_up_mutex_);
    targets_.push_back(&target);
    waiters_.fetch_add(1, std::memory_order_seq_cst);  // Dekker pair with poll()'s notify
    const bool ok = caught_up_cv_.wait_for(
        lock, timeout, [&] { return reached(target) || stopping_.load() || failure() != nullptr; });
    waiters_.fetch_sub(1, std::memory_order_seq_cst);
    std::erase(targets_, &target);
    if (auto e = failure()) std::rethrow_exception(e);
    return ok && reached(target);
  }

  metrics_snapshot metrics() const { return engine_.metrics(); }
  std::size_t buffer_bound() const { return engine_.buffer_bound(); }

  std::exception_ptr failure() const {
    std::lock_guard lock(failure_mutex_);
    return failure_;
  }

 private:
  // Dekker pair with poll(): the waker publishes `pending`, then checks `sleeping`.
  void nudge(poller& p) noexcept {
    p.pending.store(true, std::memory_order_seq_cst);
    if (p.sleeping.load(std::memory_order_seq_cst) && p.sleeping.exchange(false)) {
      engine_.clock().wake(p.parked);
    }
  }

  bool reached(const std::vector<sequence_number_t>& target) {
    for (auto& s : engine_.shards())
      if (s->checkpoint.load(std::memory_order_seq_cst) < target[s->id]) return false;
    return true;
  }

  // Through the lock, so a waiter between its check and its wait cannot miss it.
  void notify_caught_up() {
    { std::lock_guard lock(caught_up_mutex_); }
    caught_up_cv_.notify_all();
  }

  void fail(std::exception_ptr e) {
    {
      std::lock_guard lock(failure_mutex_);
      if (!failure_) failure_ = e;
    }
    request_stop();
  }

  void poll(poller& p) {
    auto token = ready_->make_producer_token();
    std::vector<lane*> submitted;
    std::vector<void*> handoff;
    try {
      while (!stopping_.load(std::memory_order_relaxed)) {
        // An RMW, so this pass also sees what the nudging thread published before the nudge.
        p.pending.exchange(false, std::memory_order_seq_cst);
        const time_point now = engine_.now();
        time_point next = far_future;
        bool moved = false;
        bool advanced = false;
        for (shard_state* s : p.shards) {
          moved |= engine_.poll(*s, now, submitted, next, chunk_);
          if (!submitted.empty()) {
            handoff.assign(submitted.begin(), submitted.end());
            ready_->push(token, handoff.data(), handoff.size());
            // Dekker pair with work(): publish the count, then look for idle workers.
            queued_.fetch_add(static_cast<std::int64_t>(submitted.size()),
                              std::memory_order_seq_cst);
            wake_workers(submitted.size());
            submitted.clear();
          }
          advanced |= engine_.update_checkpoint(*s);
        }
        // Waiters are woken when one of them is caught up, not on every advance.
        if (advanced && waiters_.load(std::memory_order_seq_cst) > 0) {
          std::lock_guard lock(caught_up_mutex_);
          if (std::ranges::any_of(targets_, [&](const auto* t) { return reached(*t); }))
            caught_up_cv_.notify_all();
        }
        if (moved) continue;
        p.sleeping.store(true, std::memory_order_seq_cst);
        if (!p.pending.load(std::memory_order_seq_cst) && !stopping_.load()) {
          engine_.clock().sleep_until(next, p.parked);
        }
        p.sleeping.store(false, std::memory_order_seq_cst);
      }
    } catch (...) {
      fail(std::current_exception());
    }
  }

  void wake_workers(std::size_t n) {
    for (auto& w : workers_) {
      if (n == 0) break;
      bool idle = true;
      if (w->idle.load(std::memory_order_seq_cst) && w->idle.compare_exchange_strong(idle, false)) {
        engine_.clock().wake(w->parked);
        --n;
      }
    }
  }

  void work(worker& self) {
    auto token = ready_->make_consumer_token();
    auto requeue = ready_->make_producer_token();
    try {
      while (!stopping_.load(std::memory_order_relaxed)) {
        // A due retry first, then one queued batch: one job at a time leaves the rest to the
        // other workers.
        lane* job = take_due_timer();
        void* queued = nullptr;
        if (job == nullptr && ready_->pop(token, queued)) {
          queued_.fetch_sub(1, std::memory_order_seq_cst);
          job = static_cast<lane*>(queued);
        }
        if (job == nullptr) {
          // Dekker pair with poll(): announce idleness, then look at the count.
          self.idle.store(true, std::memory_order_seq_cst);
          if (queued_.load(std::memory_order_seq_cst) <= 0 && !stopping_.load()) {
            engine_.clock().sleep_until(earliest_timer(), self.parked);
          }
          self.idle.store(false, std::memory_order_seq_cst);
          continue;
        }
        run(*job, requeue);
      }
    } catch (...) {
      fail(std::current_exception());
    }
  }

  void run(lane& l, job_queue::producer_token& requeue) {
    const auto r = engine_.run_job(l);
    // The poller looks again when the lane's ring runs low (not after every batch: it fills
    // several ahead), and when the lane starts retrying: a reader stopped on it may now bypass
    // it (engine::poll).
    if (!r.done || engine_.waiting_batches(l) <= Engine::slots / 2)
      nudge(*pollers_[l.shard->id % pollers_.size()]);
    if (r.done) {
      if (r.more) {  // the lane's next batch has begun: back in line, behind the other lanes
        void* job = &l;
        ready_->push(requeue, &job, 1);
        queued_.fetch_add(1, std::memory_order_seq_cst);
      }
      return;
    }
    l.due = r.wait_until;
    bool earliest = false;
    {
      std::lock_guard lock(timers_mutex_);
      timers_.push_back(&l);
      std::push_heap(timers_.begin(), timers_.end(), later);
      earliest = timers_.front() == &l;
    }
    if (earliest) wake_workers(1);  // a sleeping worker recomputes its deadline
  }

  static bool later(const lane* a, const lane* b) noexcept { return a->due > b->due; }

  lane* take_due_timer() {
    std::lock_guard lock(timers_mutex_);
    if (timers_.empty() || timers_.front()->due > engine_.now()) return nullptr;
    std::pop_heap(timers_.begin(), timers_.end(), later);
    lane* l = timers_.back();
    timers_.pop_back();
    return l;
  }

  time_point earliest_timer() {
    std::lock_guard lock(timers_mutex_);
    return timers_.empty() ? far_future : timers_.front()->due;
  }

  Engine engine_;
  std::unique_ptr<job_queue> ready_;
  std::size_t chunk_ = 1024;
  std::vector<std::unique_ptr<poller>> pollers_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::mutex timers_mutex_;
  std::vector<lane*> timers_;
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;
  mutable std::mutex failure_mutex_;
  std::exception_ptr failure_;
  std::mutex caught_up_mutex_;
  std::condition_variable caught_up_cv_;
  std::vector<const std::vector<sequence_number_t>*> targets_;  // of the waiters, under the mutex
  std::atomic<int> waiters_{0};
  std::atomic<std::int64_t> queued_{0};  // jobs in ready_ as poller and workers account them
};

}  // namespace detail

/// The handle of a running mapping (sluice::start). Destroying it stops the mapping.
template <class Runtime>
class running_mapping {
 public:
  explicit running_mapping(std::unique_ptr<Runtime> rt) : rt_(std::move(rt)) {}

  /// Stops and joins (see detail::runtime::stop); rethrows a failure that stopped the mapping.
  void stop() {
    rt_->stop();
    if (auto e = rt_->failure()) std::rethrow_exception(e);
  }
  /// Asks the mapping to stop without waiting; safe from a handler.
  void request_stop() { rt_->request_stop(); }
  bool stop_requested() const noexcept { return rt_->stop_requested(); }

  /// Blocks until everything put so far is finished. Rethrows a failure that stopped the mapping.
  void wait_until_caught_up() { (void)rt_->wait_until_caught_up(std::chrono::hours(24 * 365)); }
  /// As above, for at most `timeout` (real time); returns whether it caught up.
  template <class Rep, class Period>
  bool wait_until_caught_up(std::chrono::duration<Rep, Period> timeout) {
    return rt_->wait_until_caught_up(timeout);
  }

  metrics_snapshot metrics() const { return rt_->metrics(); }
  /// The most records the mapping holds between source and handler: shards x P x batches_per_lane x
  /// batch_size.
  std::size_t buffer_bound() const { return rt_->buffer_bound(); }
  /// The error that stopped the mapping (a throwing filter/transform or checkpoint store), if any.
  std::exception_ptr failure() const { return rt_->failure(); }

 private:
  std::unique_ptr<Runtime> rt_;
};

/// Starts a mapping on its own threads: options are checkpoints(store), with_clock(clock),
/// mapping_name(name), pollers(n), workers(n). The handler may run on several workers at once
/// (one batch per lane at a time).
template <class Source, class Stages, class... Opts>
auto start(mapping<Source, Stages>&& m, Opts... opts) {
  if constexpr (!detail::runnable<mapping<Source, Stages>, detail::start_driver, Opts...>()) {
    return;
  } else {
    using options = detail::resolved_options<Opts...>;
    using mapping_t = mapping<Source, Stages>;
    using engine_t =
        detail::engine<mapping_t, typename options::clock_type, typename options::store_type>;
    using runtime_t = detail::runtime<engine_t>;
    struct owning_runtime : runtime_t {  // a default in-memory store lives as long as the mapping
      owning_runtime(options& o, mapping_t&& m)
          : runtime_t(o.pollers, o.workers, std::move(m), *o.clock, *o.store, o.name),
            owned(std::move(o.owned_store)) {}
      ~owning_runtime() { this->stop(); }  // threads end before the store they use
      std::unique_ptr<memory_checkpoint_store> owned;
    };
    options o(std::move(opts)...);
    return running_mapping<owning_runtime>(std::make_unique<owning_runtime>(o, std::move(m)));
  }
}

SLUICE_END_NAMESPACE
