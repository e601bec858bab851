// sluice/detail/threads/driver.hpp: the threads of sluice::start. Every thread runs one loop:
// run a due retry or a handed-over lane, read its own shards (if it is a reader), and when
// there is nothing to do spin for a moment (by role: runtime_traits::reader_spin / worker_spin),
// then park on the clock.
//
// Run to completion: a reader that closes a batch and owns its lane runs the batch itself. It
// hands the lane to another thread only when that raises throughput: the lane's batches cost at
// least runtime_traits::handoff_above (a moving average measured here), another thread is idle,
// and the reader has more to do (records to read, or other lanes closed at once). Handed-over
// lanes go through one moodycamel queue; a spinning thread takes them at once, a parked one is
// woken only when no other thread is spinning. The memory bound does not depend on who runs a
// batch: each lane has a fixed ring of batch slots and a full ring stops its reader.
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

#include "sluice/detail/pipeline/engine.hpp"
#include "sluice/detail/threads/job_queue.hpp"
#include "sluice/metrics.hpp"
#include "sluice/options.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/// The control surface of a running mapping, independent of its type (sluice::running_mapping
/// holds one). Not on the data path: no call here is per record or per batch.
class running_control {
 public:
  virtual ~running_control() = default;
  virtual void stop() = 0;
  virtual void request_stop() = 0;
  virtual bool stop_requested() const noexcept = 0;
  virtual bool wait_until_caught_up(std::chrono::nanoseconds timeout) = 0;
  virtual metrics_snapshot metrics() const = 0;
  virtual std::size_t buffer_bound() const = 0;
  virtual std::exception_ptr failure() const = 0;
};

template <class Engine, class Traits>
class driver {
  using lane = typename Engine::lane;
  using shard_state = typename Engine::shard_state;

  enum state : int { running, spinning, parked };

  struct thread_state final : data_listener {
    driver* owner = nullptr;
    std::thread thread;
    sleeper bed;
    std::atomic<int> state{running};
    std::atomic<bool> pending{false};  // something happened that the next read pass must see
    std::vector<shard_state*> shards;  // the shards this thread reads (none for a worker)
    bool runs_jobs = true;
    time_point next_deadline = far_future;  // earliest open batching window of its shards

    void on_data(shard_id_t shard) noexcept override {
      const shard_id_t i = shard - owner->first_shard_;  // wraps below the first: out of range
      if (i < owner->reader_.size() && owner->reader_[i] == this) owner->nudge(*this);
    }
  };

 public:
  template <class... Args>
  driver(std::uint32_t pollers, std::uint32_t workers, execution_mode mode, Args&&... args)
      : engine_(std::forward<Args>(args)...), mode_(mode) {
    auto& shards = engine_.shards();
    std::size_t lanes = 0;
    for (auto& s : shards) lanes += s->lanes.size();
    const std::uint32_t hw = std::max(1u, std::thread::hardware_concurrency());
    const auto shard_count = static_cast<std::uint32_t>(shards.size());
    if (pollers == 0) pollers = Traits::pollers != 0 ? Traits::pollers : std::min(shard_count, hw);
    pollers = std::clamp<std::uint32_t>(pollers, 1, std::max(1u, shard_count));
    if (mode_ == execution_mode::inline_only || Engine::record_sink) {
      workers = 0;  // readers run everything; a per-record sink has no batches to hand over
    } else if (workers == 0) {
      workers = std::max<std::uint32_t>(mode_ == execution_mode::handoff ? 1 : 0,
                                        hw - std::min(hw, pollers));
    }
    ready_ = std::make_unique<job_queue>(lanes + 64, pollers + workers);

    for (std::uint32_t i = 0; i < pollers + workers; ++i) {
      auto t = std::make_unique<thread_state>();
      t->owner = this;
      t->runs_jobs = i >= pollers || mode_ != execution_mode::handoff;
      if (t->runs_jobs) ++job_runners_;
      threads_.push_back(std::move(t));
    }
    // By shard id from the first served one: a partial source's few shards need few entries.
    first_shard_ = shards.empty() ? 0 : shards.front()->id;
    reader_.resize(shards.empty() ? 0 : shards.back()->id - first_shard_ + 1);
    for (std::size_t i = 0; i < shards.size(); ++i) {
      thread_state* t = threads_[i % pollers].get();
      t->shards.push_back(shards[i].get());
      reader_[shards[i]->id - first_shard_] = t;
    }
    for (std::uint32_t i = 0; i < pollers; ++i) engine_.source().subscribe(threads_[i].get());
    subscribed_ = pollers;
    engine_.set_stop_flag(&stopping_);
    for (auto& t : threads_) t->thread = std::thread([this, t = t.get()] { loop(*t); });
  }

  driver(const driver&) = delete;
  driver& operator=(const driver&) = delete;
  ~driver() { stop(); }

  void request_stop() {
    stopping_.store(true, std::memory_order_seq_cst);
    engine_.interrupt_limits();  // a call waiting for a concurrency permit gives up
    for (auto& t : threads_) engine_.clock().wake(t->bed);
    notify_caught_up();
  }

  /// Stops reading, lets running handler calls end, starts no new attempt, stores the final
  /// checkpoints (unfinished batches are not checkpointed: they are read again next time) and
  /// joins every thread. Called from a handler (one of the mapping's own threads), it only
  /// requests the stop: a thread cannot wait for itself.
  void stop() {
    if (on_own_thread()) {
      request_stop();
      return;
    }
    std::lock_guard lock(stop_mutex_);
    if (stopped_) return;
    request_stop();
    for (auto& t : threads_)
      if (t->thread.joinable()) t->thread.join();
    for (std::uint32_t i = 0; i < subscribed_; ++i) engine_.source().unsubscribe(threads_[i].get());
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
    waiters_.fetch_add(1, std::memory_order_seq_cst);  // Dekker pair with the readers' notify
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
  static const driver*& current() noexcept {
    static thread_local const driver* self = nullptr;
    return self;
  }
  bool on_own_thread() const noexcept { return current() == this; }

  // ---- waking ----

  // Dekker pair with park(): the waker publishes `pending`, then looks at the state.
  void nudge(thread_state& t) noexcept {
    t.pending.store(true, std::memory_order_seq_cst);
    int expected = parked;
    if (t.state.load(std::memory_order_seq_cst) == parked &&
        t.state.compare_exchange_strong(expected, running, std::memory_order_seq_cst)) {
      engine_.clock().wake(t.bed);
    }
  }

  /// A job was queued (queued_ already counts it): a spinning thread (not `self`) will take it;
  /// otherwise wake one parked thread that runs jobs.
  void wake_runner(const thread_state* self) noexcept {
    for (auto& t : threads_)
      if (t.get() != self && t->runs_jobs && t->state.load(std::memory_order_seq_cst) == spinning)
        return;
    for (auto& t : threads_) {
      int expected = parked;
      if (t->runs_jobs && t->state.load(std::memory_order_seq_cst) == parked &&
          t->state.compare_exchange_strong(expected, running, std::memory_order_seq_cst)) {
        engine_.clock().wake(t->bed);
        return;
      }
    }
  }

  /// `target` is by index in engine_.shards().
  bool reached(const std::vector<sequence_number_t>& target) {
    const auto& shards = engine_.shards();
    for (std::size_t i = 0; i < shards.size(); ++i)
      if (shards[i]->checkpoint.load(std::memory_order_seq_cst) < target[i]) return false;
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

  // ---- the loop ----

  void loop(thread_state& t) {
    current() = this;
    current_consumer() = &engine_;  // a bounded source must not make this thread wait for itself
    auto produce = ready_->make_producer_token();
    auto consume = ready_->make_consumer_token();
    std::vector<lane*> claimed;
    bool read_now = !t.shards.empty();
    std::chrono::steady_clock::time_point spin_until{};
    bool spinning_now = false;
    try {
      // A thread that takes work stops advertising itself as spinning first, so that a waker
      // does not count on it while it runs a handler.
      auto leave_spin = [&] {
        if (spinning_now) t.state.store(running, std::memory_order_seq_cst);
        spinning_now = false;
      };
      while (!stopping_.load(std::memory_order_relaxed)) {
        bool did = false;
        if (t.runs_jobs) {
          if (lane* job = take_job(consume)) {
            leave_spin();
            // More are queued and this lane's batches take long (or were never measured):
            // another idle runner takes the next one rather than wait behind this handler (a
            // dispatch of several lanes wakes one runner; each passes it on). Quick batches wake
            // nobody: this thread is soon back for the next one.
            if (job_runners_ > 1 && queued_.load(std::memory_order_seq_cst) > 0 && !quick(*job))
              wake_runner(&t);
            run_lane(t, *job, produce);
            did = true;
          }
        }
        if (!t.shards.empty() && (read_now || t.pending.load(std::memory_order_relaxed))) {
          leave_spin();
          // An RMW, so this pass also sees what the nudging thread published before the nudge.
          t.pending.exchange(false, std::memory_order_seq_cst);
          read_now = read_pass(t, claimed, produce);
          did |= read_now;
        }
        if (did) continue;
        // Nothing to do: spin for a moment (work that comes now is taken without a wake-up),
        // then park.
        const auto real_now = std::chrono::steady_clock::now();
        if (!spinning_now) {
          spinning_now = true;
          // A reader that runs its own batches parks at once; a worker, and a reader that only
          // reads (handoff mode), wait on another thread's progress: they spin first.
          const bool runs_own = !t.shards.empty() && t.runs_jobs;
          spin_until = real_now + (runs_own ? Traits::reader_spin : Traits::worker_spin);
          t.state.store(spinning, std::memory_order_seq_cst);
        }
        if (real_now < spin_until) {
          for (int i = 0; i < 32; ++i) cpu_relax();
          continue;
        }
        spinning_now = false;
        park(t);
        read_now = !t.shards.empty();  // windows may have elapsed
      }
    } catch (...) {
      fail(std::current_exception());
    }
  }

  // Dekker pair with nudge() and wake_runner(): announce parking, then look for work.
  void park(thread_state& t) {
    t.state.store(parked, std::memory_order_seq_cst);
    if (!t.pending.load(std::memory_order_seq_cst) &&
        !(t.runs_jobs && queued_.load(std::memory_order_seq_cst) > 0) && !stopping_.load()) {
      time_point deadline = t.next_deadline;
      if (t.runs_jobs) deadline = std::min(deadline, earliest_timer());
      engine_.clock().sleep_until(deadline, t.bed);
    }
    t.state.store(running, std::memory_order_seq_cst);
  }

  /// A due retry or a handed-over lane, if any.
  lane* take_job(job_queue::consumer_token& consume) {
    lane* job = timer_count_.load(std::memory_order_relaxed) > 0 ? take_due_timer() : nullptr;
    if (job == nullptr && queued_.load(std::memory_order_seq_cst) > 0) {
      void* queued = nullptr;
      if (ready_->pop(consume, queued)) {
        queued_.fetch_sub(1, std::memory_order_seq_cst);
        job = static_cast<lane*>(queued);
      }
    }
    return job;
  }

  /// One pass over the thread's shards: read, run or hand over the lanes whose batch closed,
  /// move checkpoints. Returns whether the thread should read again at once.
  bool read_pass(thread_state& t, std::vector<lane*>& claimed, job_queue::producer_token& produce) {
    const time_point now = engine_.now();
    time_point next = far_future;
    bool again = false;
    bool advanced = false;
    for (shard_state* s : t.shards) {
      const poll_result r = engine_.poll(*s, now, claimed, next);
      again |= r.more;
      if (!claimed.empty()) {
        dispatch(t, claimed, r.more || r.blocked, produce);
        claimed.clear();
        again = true;  // running a batch frees ring slots: look again
      }
      advanced |= engine_.update_checkpoint(*s);
    }
    t.next_deadline = next;
    // Waiters are woken when one of them is caught up, not on every advance.
    if (advanced && waiters_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard lock(caught_up_mutex_);
      if (std::ranges::any_of(targets_, [&](const auto* target) { return reached(*target); }))
        caught_up_cv_.notify_all();
    }
    return again;
  }

  /// Decides which thread runs the lanes a read pass claimed (see the file comment). Adaptive:
  /// a lane whose batches take long enough to be worth a hand-off (their measured cost is at
  /// least Traits::handoff_above) goes to another thread when one is idle and the reader has
  /// more to do (records to read, or other lanes); the reader runs the rest itself.
  void dispatch(thread_state& self, std::vector<lane*>& claimed, bool more_to_read,
                job_queue::producer_token& produce) {
    std::size_t keep = claimed.size();  // the reader runs claimed[0, keep) itself
    if (mode_ == execution_mode::handoff) {
      keep = 0;
    } else if (mode_ == execution_mode::adaptive && job_runners_ > 1 &&
               (more_to_read || claimed.size() > 1) && idle_runner(self)) {
      const auto costly = [](const lane* l) {
        return l->cost_ns.load(std::memory_order_relaxed) >=
               static_cast<std::uint64_t>(std::chrono::nanoseconds(Traits::handoff_above).count());
      };
      keep = static_cast<std::size_t>(
          std::stable_partition(claimed.begin(), claimed.end(),
                                [&](const lane* l) { return !costly(l); }) -
          claimed.begin());
      if (keep == 0 && !more_to_read) keep = 1;  // nothing else to do: run one itself
    }
    if (keep < claimed.size()) {
      ready_->push(produce, reinterpret_cast<void* const*>(claimed.data() + keep),
                   claimed.size() - keep);
      // Dekker pair with park(): publish the count, then look at the threads' states.
      queued_.fetch_add(static_cast<std::int64_t>(claimed.size() - keep),
                        std::memory_order_seq_cst);
      wake_runner(&self);
    }
    for (std::size_t i = 0; i < keep; ++i) run_lane(self, *claimed[i], produce);
  }

  /// The lane's batches were measured and take less than Traits::handoff_above: not worth
  /// another thread's wake-up.
  static bool quick(const lane& l) noexcept {
    const std::uint64_t ns = l.cost_ns.load(std::memory_order_relaxed);
    return ns != 0 &&
           ns < static_cast<std::uint64_t>(std::chrono::nanoseconds(Traits::handoff_above).count());
  }

  /// Another thread that runs jobs has nothing to do (spinning or parked).
  bool idle_runner(const thread_state& self) const noexcept {
    for (const auto& t : threads_)
      if (t.get() != &self && t->runs_jobs && t->state.load(std::memory_order_relaxed) != running)
        return true;
    return false;
  }

  /// Runs the lane's batches in order until it is released or must wait.
  void run_lane(thread_state& self, lane& l, job_queue::producer_token& produce) {
    thread_state& reader = *reader_[l.shard->id - first_shard_];
    while (true) {
      const bool measure = job_runners_ > 1;
      const auto t0 =
          measure ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
      const auto r = engine_.run_job(l);
      // The lane's cost per batch, a moving average (dispatch(), quick()), from steps that
      // finished a batch: a step that only waited (tokens, a permit, a lapsed lease) is no
      // measure of what its handler costs.
      if (measure && r.done) {
        const auto ns =
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           std::chrono::steady_clock::now() - t0)
                                           .count());
        const std::uint64_t old = l.cost_ns.load(std::memory_order_relaxed);
        l.cost_ns.store(old == 0 ? ns : (old * 3 + ns) / 4, std::memory_order_relaxed);
      }
      if (!r.done) {
        nudge(reader);  // the lane is retrying: a reader stopped on it may now bypass it
        add_timer(l, refused_by_gate()
                         ? std::max(r.wait_until, engine_.now() + Traits::gate_recheck)
                         : r.wait_until);
        return;
      }
      // The reader looks again when the lane's ring runs low (not after every batch).
      if (l.closed_batches() <= Engine::slots / 2) nudge(reader);
      if (!r.more || stopping_.load(std::memory_order_relaxed)) return;
      if (queued_.load(std::memory_order_relaxed) > 0 && job_runners_ > 1) {
        // Others wait: the lane goes back in line behind them.
        void* job = &l;
        ready_->push(produce, &job, 1);
        queued_.fetch_add(1, std::memory_order_seq_cst);
        wake_runner(&self);
        return;
      }
    }
  }

  /// The job stopped because a gated source (a lapsed lease) refused, not because of a stop:
  /// it is not due again at once (engine::stop_requested, Traits::gate_recheck).
  bool refused_by_gate() const noexcept {
    if constexpr (Engine::gated) {
      return !stopping_.load(std::memory_order_relaxed) && engine_.stop_requested();
    } else {
      return false;
    }
  }

  // ---- back-off timers: lanes waiting to retry (rare: only after failures) ----

  void add_timer(lane& l, time_point due) {
    l.due = due;
    bool earliest = false;
    {
      std::lock_guard lock(timers_mutex_);
      timers_.push_back(&l);
      std::push_heap(timers_.begin(), timers_.end(), later);
      earliest = timers_.front() == &l;
      timer_count_.store(timers_.size(), std::memory_order_relaxed);
    }
    if (earliest) {  // a parked runner recomputes its deadline
      for (auto& t : threads_)
        if (t->runs_jobs) engine_.clock().wake(t->bed);
    }
  }

  static bool later(const lane* a, const lane* b) noexcept { return a->due > b->due; }

  lane* take_due_timer() {
    std::lock_guard lock(timers_mutex_);
    if (timers_.empty() || timers_.front()->due > engine_.now()) return nullptr;
    std::pop_heap(timers_.begin(), timers_.end(), later);
    lane* l = timers_.back();
    timers_.pop_back();
    timer_count_.store(timers_.size(), std::memory_order_relaxed);
    return l;
  }

  time_point earliest_timer() {
    std::lock_guard lock(timers_mutex_);
    return timers_.empty() ? far_future : timers_.front()->due;
  }

  Engine engine_;
  execution_mode mode_;
  std::unique_ptr<job_queue> ready_;
  std::vector<std::unique_ptr<thread_state>> threads_;
  std::vector<thread_state*> reader_;  // by shard id - first_shard_
  shard_id_t first_shard_ = 0;
  std::uint32_t subscribed_ = 0;
  std::uint32_t job_runners_ = 0;
  std::mutex timers_mutex_;
  std::vector<lane*> timers_;
  std::atomic<std::size_t> timer_count_{0};
  std::atomic<bool> stopping_{false};
  std::mutex stop_mutex_;
  bool stopped_ = false;
  mutable std::mutex failure_mutex_;
  std::exception_ptr failure_;
  std::mutex caught_up_mutex_;
  std::condition_variable caught_up_cv_;
  std::vector<const std::vector<sequence_number_t>*> targets_;  // of the waiters, under the mutex
  std::atomic<int> waiters_{0};
  std::atomic<std::int64_t> queued_{0};  // lanes in ready_ as threads account them
};

}  // namespace detail
SLUICE_END_NAMESPACE
