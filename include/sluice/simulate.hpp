// sluice/simulate.hpp: sluice::simulate runs a mapping's real engine in virtual time against a
// modelled downstream, to choose batch size, batching window, parallelization factor and failure
// policies before deployment (docs/tuning.md).
//
// What is real and what is modelled. The records come from a workload (sluice/workload.hpp); the
// mapping is composed with the real stages (batching, parallelization_factor, retry, bisect,
// report_batch_item_failures, on_failure) and run by the real engine (detail::engine: reading,
// routing by key, batching windows, the lane rings and their backpressure, the checkpoint) and
// the real failure policies (detail::lane_job). Only two things are simulated:
//  - the clock: a sluice::manual_clock that the simulator sets to each event's time; nothing
//    sleeps;
//  - the handler: a model of the downstream that, called at virtual time t with n records,
//    decides the call's outcome (throttled above a capacity; records failing at a rate or
//    because they are poison) and its latency (fixed + per record x n + a random part).
// The simulated runtime is sluice::start with one worker per lane (execution_mode::handoff,
// workers >= shards x P) on a machine where sluice itself costs no time: the reader reads each
// record the instant it arrives, and every lane runs its batches on its own worker.
//
// How a handler call takes time without anything sleeping: the simulator is a discrete-event
// loop over virtual time. A lane's job is stepped (lane_job::step, the engine's own state
// machine) at virtual time t and makes at most one handler call there; the model says the call
// ends at t + latency. Until that end event the simulator leaves the lane as the engine left it
// when the call began: its batch stays in flight in the lane's ring (so the reader blocks on a
// full lane, as in the real runtime), the checkpoint does not move past it, and the call counts
// against the downstream's concurrency. At the end event it publishes what the step finished,
// releases the batch slot (lane::finish) and steps the lane again. That is what the engine's
// run_job does on a worker thread whose handler call lasted that long; the simulator's loop in
// detail::simulator::run_lane / end_call is that function split at the handler call.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <queue>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/batch.hpp"
#include "sluice/checkpoint.hpp"
#include "sluice/clock.hpp"
#include "sluice/detail/pipeline/engine.hpp"
#include "sluice/failure.hpp"
#include "sluice/hash.hpp"
#include "sluice/limits.hpp"
#include "sluice/mapping.hpp"
#include "sluice/stages.hpp"
#include "sluice/workload.hpp"

SLUICE_BEGIN_NAMESPACE

/// A record of a simulated stream: a workload's record with its shard's sequence number.
struct simulated_record {
  std::uint64_t key = 0;
  sequence_number_t sequence = 0;
  time_point arrival{};
  std::uint64_t index = 0;  // in the workload
  std::uint32_t bytes = 0;
  bool poison = false;

  const std::uint64_t& partition_key() const noexcept { return key; }
  sequence_number_t sequence_number() const noexcept { return sequence; }
  time_point arrival_time() const noexcept { return arrival; }
  std::size_t payload_size_bytes() const noexcept { return bytes; }
};

/// The modelled downstream: what one handler call with n records costs and how it ends.
struct downstream_model {
  enum class jitter_shape { none, uniform, exponential };
  /// Latency of a call: fixed_latency + per_record_latency x n + a random part.
  duration fixed_latency = std::chrono::milliseconds(10);
  duration per_record_latency{};
  /// The random part: none; uniform in [0, jitter]; exponential with mean jitter.
  jitter_shape jitter_kind = jitter_shape::none;
  duration jitter{};
  /// Capacity: a call made while this many calls are in flight throws sluice::throttled
  /// (0: no limit).
  std::uint32_t max_concurrent_calls = 0;
  /// Capacity: records per second, a token bucket holding one second's worth; a call made while
  /// the bucket is empty throws sluice::throttled (0: no limit).
  double max_records_per_second = 0;
  /// How long a throttled call takes.
  duration throttle_latency = std::chrono::milliseconds(1);
  /// Each record of a call fails (transiently) with this probability; poison records always
  /// fail. A call with failed records throws, or with report_batch_item_failures reports them.
  double failure_rate = 0;
};

/// One configuration of the mapping: the parameters a user tunes.
struct tuning {
  std::uint32_t shards = 1;
  std::uint32_t batch_size = 100;
  duration maximum_batching_window{};
  std::uint32_t parallelization_factor = 1;
  std::int64_t maximum_retry_attempts = -1;
  std::optional<duration> maximum_record_age;
  sluice::backoff backoff{};
  bool bisect = false;
  bool report_batch_item_failures = false;
  /// Downstream limits (sluice/limits.hpp), e.g. sluice::maximum_concurrency(8) or
  /// sluice::adaptive_concurrency(1, 64), and sluice::rate_limit(...); empty: none. Simulated
  /// with the runtime's own limiter: a call holds its slot until it ends in virtual time.
  std::optional<concurrency_stage> concurrency;
  std::optional<rate_limit_stage> rate;
};

struct simulation_options {
  /// Virtual time after which the simulation stops (records not finished by then are reported
  /// as unfinished: e.g. a poison record with infinite retries blocks its lane for ever).
  duration horizon = std::chrono::hours(24 * 7);
  /// Threads a sweep uses (each point runs on one thread; results do not depend on it).
  unsigned threads = 1;
  /// Seed of the downstream model's draws (jitter, failures).
  std::uint64_t seed = 1;
  /// Called at the start of every handler call with its virtual time and batch (a trace); by
  /// the thread simulating the configuration (a sweep on several threads calls it concurrently).
  std::function<void(time_point, const batch<simulated_record>&)> on_call;
};

/// What one simulated configuration did.
struct simulation_result {
  tuning point;
  std::uint64_t records = 0;        // in the workload
  std::uint64_t succeeded = 0;      // finished by a successful call
  std::uint64_t dead_lettered = 0;  // sent to the on-failure destination
  std::uint64_t unfinished = 0;     // not finished when the horizon was reached
  std::uint64_t handler_calls = 0;
  std::uint64_t throttles = 0;     // calls that the downstream throttled
  std::uint64_t failed_calls = 0;  // calls that threw or reported failed records
  std::uint64_t redelivered = 0;   // records handed to the handler again (retries, bisect)
  std::uint64_t bisect_splits = 0;
  std::uint32_t peak_concurrent_calls = 0;
  /// Succeeded records per virtual second, from the first arrival to the last finished record.
  double throughput = 0;
  duration makespan{};
  /// Arrival -> success latency of the succeeded records (nearest-rank percentiles).
  duration latency_p50{}, latency_p99{}, latency_max{};
  /// IteratorAge (the engine's metric: age of a batch's newest record when its call starts).
  std::int64_t iterator_age_max_ms = 0;
  /// Records per handler call.
  double mean_batch = 0;
  /// The limits' metrics at the end (the final concurrency limit, its moves, rate waits), when
  /// the configuration has limits.
  std::optional<limits_metrics> limits;
};

namespace detail {

/// The stream of a simulation: each shard's records, visible up to what has arrived.
class simulated_source {
 public:
  using record_type = simulated_record;
  static constexpr bool gap_free_sequences = true;

  explicit simulated_source(const std::vector<std::vector<simulated_record>>& shards)
      : shards_(&shards), visible_(shards.size(), 0) {}

  std::uint32_t shard_count() const noexcept { return static_cast<std::uint32_t>(shards_->size()); }
  std::string_view name() const noexcept { return "simulated"; }

  template <class Visit>
  std::size_t read(shard_id_t shard, sequence_number_t after, std::size_t max, Visit&& visit) {
    const auto& v = (*shards_)[shard];
    const std::size_t end = std::min<std::size_t>(visible_[shard], after + max);
    std::size_t i = after;
    for (; i < end; ++i) {
      if (!visit(v[i])) break;
    }
    return i > after ? i - after : 0;
  }
  template <class OnSpan>
  std::size_t read_spans(shard_id_t shard, sequence_number_t after, std::size_t max,
                         OnSpan&& on_span) {
    if (after >= visible_[shard]) return 0;
    const simulated_record* p = (*shards_)[shard].data() + after;
    const std::size_t n = std::min<std::size_t>(max, visible_[shard] - after);
    return static_cast<std::size_t>(on_span(p, p + n));
  }
  sequence_number_t resolve(shard_id_t, starting_position) const noexcept { return 0; }
  sequence_number_t last_sequence(shard_id_t shard) const noexcept { return visible_[shard]; }
  void subscribe(data_listener*) noexcept {}
  void unsubscribe(data_listener*) noexcept {}

  /// Records [0, n) of the shard have arrived.
  void show(shard_id_t shard, std::size_t n) noexcept { visible_[shard] = n; }

 private:
  const std::vector<std::vector<simulated_record>>* shards_;
  std::vector<std::size_t> visible_;
};

/// A workload split into shards by key (as memory_stream does), arrival offsets from `start`.
inline std::vector<std::vector<simulated_record>> shard_workload(
    const std::vector<generated_record>& records, std::uint32_t shards, time_point start) {
  std::vector<std::vector<simulated_record>> out(shards);
  for (std::size_t i = 0; i < records.size(); ++i) {
    const generated_record& g = records[i];
    if (i > 0 && g.arrival < records[i - 1].arrival)
      reject("generated_record::arrival (record " + std::to_string(i) + ", ns)",
             std::chrono::duration_cast<std::chrono::nanoseconds>(g.arrival).count(),
             "not before the previous record's arrival (records in arrival order)");
    auto& v = out[shard_for(key_hash(g.key), shards)];
    v.push_back(simulated_record{g.key, v.size() + 1, start + g.arrival, i, g.bytes, g.poison});
  }
  return out;
}

class simulator_base;

/// The simulated handler: the downstream model, called by the engine's lane_job.
struct simulated_downstream {
  simulator_base* sim;
  batch_item_failures operator()(const batch<simulated_record>& b) const;
};
/// The on-failure destination of a simulation (the engine counts what it receives).
struct simulated_dead_letters {
  void operator()(const on_failure_record<simulated_record>&) const noexcept {}
};

/// The downstream model's state and the per-record accounting, shared by every mapping shape.
class simulator_base {
 public:
  simulator_base(const downstream_model& model, std::size_t records, bool report,
                 const simulation_options& o)
      : model_(model),
        report_(report),
        rng_(mix64(o.seed ^ 0x51a7e)),
        on_call_(o.on_call),
        delivered_(records, 0) {
    if (!(model.failure_rate >= 0 && model.failure_rate <= 1))
      reject("downstream_model::failure_rate", model.failure_rate, "0..1");
    if (model.max_records_per_second < 0)
      reject("downstream_model::max_records_per_second", model.max_records_per_second,
             ">= 0 (0: no limit)");
    auto ns = [](duration d) {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    };
    if (model.fixed_latency < duration::zero())
      reject("downstream_model::fixed_latency (ns)", ns(model.fixed_latency), ">= 0");
    if (model.per_record_latency < duration::zero())
      reject("downstream_model::per_record_latency (ns)", ns(model.per_record_latency), ">= 0");
    if (model.fixed_latency + model.per_record_latency <= duration::zero())
      reject("downstream_model::fixed_latency + per_record_latency (ns)",
             ns(model.fixed_latency + model.per_record_latency),
             "> 0 (a call takes time, or virtual time could stand still)");
    if (model.jitter < duration::zero())
      reject("downstream_model::jitter (ns)", ns(model.jitter), ">= 0");
    if (model.throttle_latency <= duration::zero())
      reject("downstream_model::throttle_latency (ns)", ns(model.throttle_latency), "> 0");
    tokens_ = model.max_records_per_second;
    latencies_.reserve(records);
  }

  /// One handler call at the current virtual time.
  batch_item_failures call(const batch<simulated_record>& b) {
    const time_point t = clock_.now();
    const std::size_t n = b.size();
    call_made_ = true;
    call_counted_ = false;
    call_first_ = b.records().data();
    if (on_call_) on_call_(t, b);
    for (const simulated_record& r : b) {
      if (delivered_[r.index] != 0) ++redelivered_;
      delivered_[r.index] = 1;
    }
    bool over = model_.max_concurrent_calls > 0 && in_flight_ >= model_.max_concurrent_calls;
    if (model_.max_records_per_second > 0) {
      const double refill =
          std::chrono::duration<double>(t - bucket_time_).count() * model_.max_records_per_second;
      tokens_ = std::min(model_.max_records_per_second, tokens_ + refill);
      bucket_time_ = t;
      over = over || tokens_ <= 0;
    }
    if (over) {
      call_end_ = t + model_.throttle_latency;
      throw throttled("simulated downstream: over capacity");
    }
    if (model_.max_records_per_second > 0) tokens_ -= static_cast<double>(n);
    call_counted_ = true;
    ++in_flight_;
    peak_in_flight_ = std::max(peak_in_flight_, in_flight_);
    duration latency = model_.fixed_latency + model_.per_record_latency * static_cast<long>(n);
    if (model_.jitter_kind == downstream_model::jitter_shape::uniform) {
      latency += duration(static_cast<duration::rep>(unit_interval(draw()) *
                                                     static_cast<double>(model_.jitter.count())));
    } else if (model_.jitter_kind == downstream_model::jitter_shape::exponential) {
      latency += duration(static_cast<duration::rep>(-std::log1p(-unit_interval(draw())) *
                                                     static_cast<double>(model_.jitter.count())));
    }
    call_end_ = t + latency;
    batch_item_failures failed;
    for (const simulated_record& r : b) {
      if (r.poison || (model_.failure_rate > 0 && unit_interval(draw()) < model_.failure_rate))
        failed.add(r.sequence);
    }
    if (!failed.empty() && !report_)
      throw std::runtime_error(
          "simulated downstream: " + std::to_string(failed.item_identifiers.size()) +
          " record(s) failed");
    return failed;
  }

 protected:
  std::uint64_t draw() noexcept { return splitmix64(rng_); }

  downstream_model model_;
  bool report_;
  manual_clock clock_{time_point{}, manual_clock::manual};  // set to each event's time
  std::uint64_t rng_;
  std::function<void(time_point, const batch<simulated_record>&)> on_call_;
  // the call the current step made (at most one)
  bool call_made_ = false;
  bool call_counted_ = false;  // it holds a concurrency slot until it ends
  bool yielded_ = false;       // the step returned because it made a call
  time_point call_end_{};
  const simulated_record* call_first_ = nullptr;
  // the downstream
  std::uint32_t in_flight_ = 0;
  std::uint32_t peak_in_flight_ = 0;
  double tokens_ = 0;
  time_point bucket_time_{};
  // per record
  std::vector<std::uint8_t> delivered_;  // 1: handed to the handler before
  std::uint64_t redelivered_ = 0;
  std::vector<duration::rep> latencies_;
};

inline batch_item_failures simulated_downstream::operator()(
    const batch<simulated_record>& b) const {
  return sim->call(b);
}

template <bool Bisect, bool Report>
auto simulated_mapping(simulated_source& source, const tuning& p, simulator_base* sim) {
  auto base =
      from(source) |
      batching(batch_size(p.batch_size), maximum_batching_window(p.maximum_batching_window)) |
      parallelization_factor(p.parallelization_factor) |
      retry(maximum_retry_attempts(p.maximum_retry_attempts),
            maximum_record_age_param{p.maximum_record_age}, p.backoff);
  if constexpr (Bisect && Report)
    return base | bisect_batch_on_function_error | report_batch_item_failures |
           on_failure(simulated_dead_letters{}) | invoke(simulated_downstream{sim});
  else if constexpr (Bisect)
    return base | bisect_batch_on_function_error | on_failure(simulated_dead_letters{}) |
           invoke(simulated_downstream{sim});
  else if constexpr (Report)
    return base | report_batch_item_failures | on_failure(simulated_dead_letters{}) |
           invoke(simulated_downstream{sim});
  else
    return base | on_failure(simulated_dead_letters{}) | invoke(simulated_downstream{sim});
}

/// The discrete-event loop over one configuration (see the header comment).
template <bool Bisect, bool Report>
class simulator : simulator_base {
  using mapping_t = decltype(simulated_mapping<Bisect, Report>(
      std::declval<simulated_source&>(), std::declval<const tuning&>(), nullptr));
  using engine_t = engine<mapping_t, manual_clock, memory_checkpoint_store, default_runtime_traits>;
  using lane_t = typename engine_t::lane;

  struct simulated_limits;
  /// What lane_job::step reads (the engine's context, with the simulator's clock and handler).
  struct env {
    simulator* sim;
    const retry_config& retry;
    const std::string& stream_name;
    time_point now() const noexcept { return sim->clock_.now(); }
    /// After the step's handler call the step returns: the call's end is another event.
    bool stop_requested() const noexcept {
      if (!sim->call_made_) return false;
      sim->yielded_ = true;
      return true;
    }
    simulated_downstream& handler() noexcept { return sim->handler_; }
    simulated_dead_letters& destination() noexcept { return sim->dead_letters_; }
    /// The limits as lane_job meets them (detail::limiter's calls), without blocking.
    simulated_limits& limits() const noexcept { return sim->limits_; }
  };

  /// detail::limiter in virtual time. A call that finds no free slot is refused (lane_job then
  /// returns as on a stop) and its lane waits in line for one; the tokens a refused call took
  /// stay its own. A call's leave() is kept until the call ends (its end event), so its slot is
  /// held for its whole virtual duration and the controller learns the outcome when the call
  /// returns, as on a real thread.
  struct simulated_limits {
    simulator* sim;
    std::optional<limiter> real;     // only with limits
    std::uint32_t current = 0;       // the lane being stepped
    std::deque<std::uint32_t> line;  // lanes waiting for a slot, in arrival order
    bool refused = false;            // the current step was refused a slot
    std::uint64_t waits = 0;         // lanes that joined the line
    std::optional<std::pair<permit, call_feedback>> left;  // the current call's leave()

    std::optional<time_point> admit(std::size_t records, time_point now) {
      if (!real) return std::nullopt;
      lane_slot& ls = sim->lanes_[current];
      if (ls.admitted) return std::nullopt;  // taken before a refused entry
      auto later = real->admit(records, now);
      if (!later) ls.admitted = true;
      return later;
    }
    permit enter() {
      if (!real) return {true, 0, false};
      const bool first = line.empty() || line.front() == current;
      permit p = first ? real->try_enter() : permit{};
      if (!p) {
        refused = true;
        return p;
      }
      if (!line.empty() && line.front() == current) line.pop_front();
      sim->lanes_[current].admitted = false;
      return p;
    }
    void leave(permit p, call_feedback feedback) { left.emplace(p, feedback); }
  };

  enum kind : std::uint8_t { call_end = 0, arrival = 1, poll = 2, ready = 3 };
  struct event {
    time_point t;
    kind k;
    std::uint64_t order;
    std::uint32_t target;  // lane index (call_end, ready) or shard (arrival, poll)
    bool operator>(const event& o) const noexcept {
      if (t != o.t) return t > o.t;
      if (k != o.k) return k > o.k;
      return order > o.order;
    }
  };

  struct lane_slot {
    lane_t* l;
    std::uint32_t shard;
    // the call in flight (between run_lane and end_call)
    step_result result{};
    std::size_t published = npos;
    bool yielded = false;
    bool counted = false;
    const simulated_record* first = nullptr;
    std::uint64_t succeeded = 0;
    std::optional<std::pair<permit, call_feedback>> left{};  // its call's limiter leave(), deferred
    bool admitted = false;  // its next call's tokens are taken (it was refused a slot)
    bool woken = false;     // in line, and a freed slot scheduled it to step again
  };

  static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

 public:
  simulator(const std::vector<std::vector<simulated_record>>& shards, std::size_t records,
            const downstream_model& model, const tuning& p, const simulation_options& o,
            time_point start)
      : simulator_base(model, records, Report, o),
        shards_(&shards),
        source_(shards),
        point_(p),
        options_(o),
        start_(start),
        retry_(retry_of(p)),
        engine_(simulated_mapping<Bisect, Report>(source_, p, this), clock_, store_, "simulated"),
        env_{this, retry_, stream_name_},
        limits_{this, std::nullopt, 0, {}, false, 0, std::nullopt},
        handler_{this},
        records_(records) {
    clock_.set(start);
    bucket_time_ = start;
    if (p.concurrency || p.rate) limits_.real.emplace(limits_config{p.concurrency, p.rate}, start);
    for (auto& s : engine_.shards()) {
      for (auto& l : s->lanes) {
        index_.emplace(l.get(), static_cast<std::uint32_t>(lanes_.size()));
        lanes_.push_back(lane_slot{l.get(), s->id});
      }
    }
    next_arrival_.assign(shards.size(), 0);
    poll_pending_.assign(shards.size(), time_point::min());
    last_deadline_.assign(shards.size(), time_point::min());
  }

  simulation_result run() {
    for (std::uint32_t s = 0; s < shards_->size(); ++s) {
      if (!(*shards_)[s].empty()) push((*shards_)[s].front().arrival, arrival, s);
    }
    const time_point end = start_ + options_.horizon;
    time_point last = start_;
    while (!queue_.empty()) {
      const event ev = queue_.top();
      if (ev.t > end) break;
      queue_.pop();
      clock_.set(ev.t);
      last = ev.t;
      switch (ev.k) {
        case call_end:
          end_call(ev.target, ev.t);
          break;
        case arrival:
        case poll:
          read(ev.target, ev.t, ev.k == arrival);
          break;
        case ready:
          run_lane(ev.target, ev.t);
          break;
      }
    }
    return result(last);
  }

 private:
  static retry_config retry_of(const tuning& p) {
    retry_config c;
    apply(c, maximum_retry_attempts(p.maximum_retry_attempts));
    apply(c, maximum_record_age_param{p.maximum_record_age});
    apply(c, p.backoff);
    return c;
  }

  /// Schedules an event; never in the past (a deadline that has passed is due now).
  void push(time_point t, kind k, std::uint32_t target) {
    queue_.push(event{std::max(t, clock_.now()), k, order_++, target});
  }
  /// A pass of the shard's reader at t; one pending pass per instant serves every request made
  /// before it runs.
  void schedule_poll(std::uint32_t shard, time_point t) {
    if (poll_pending_[shard] == t) return;
    poll_pending_[shard] = t;
    push(t, poll, shard);
  }

  void read(std::uint32_t shard, time_point t, bool arrived) {
    if (poll_pending_[shard] == t) poll_pending_[shard] = time_point::min();  // runs now
    const auto& v = (*shards_)[shard];
    if (arrived) {
      std::size_t& i = next_arrival_[shard];
      while (i < v.size() && v[i].arrival <= t) ++i;
      source_.show(shard, i);
      if (i < v.size()) push(v[i].arrival, arrival, shard);
    }
    auto& s = *engine_.shards()[shard];
    time_point deadline = far_future;
    while (true) {
      claimed_.clear();
      const poll_result r = engine_.poll(s, t, claimed_, deadline);
      for (lane_t* l : claimed_) push(t, ready, index_.at(l));
      if (!r.more || r.blocked) break;
    }
    if (deadline != far_future && deadline != last_deadline_[shard]) {
      last_deadline_[shard] = deadline;  // one pass per window deadline
      push(deadline, poll, shard);
    }
  }

  /// Steps the lane's job at t: at most one handler call, which ends at the model's time.
  void run_lane(std::uint32_t i, time_point t) {
    lane_slot& ls = lanes_[i];
    lane_t& l = *ls.l;
    auto& current = l.current();
    if (!l.job.started()) l.job.begin(current.records(), ls.shard);
    call_made_ = false;
    yielded_ = false;
    std::size_t published = npos;
    auto& counters = l.shard->counters;
    const std::uint64_t before = counters.succeeded.load(std::memory_order_relaxed);
    limits_.current = i;
    ls.woken = false;
    limits_.refused = false;
    limits_.left.reset();
    const step_result r = l.job.step(env_, counters, [&](std::size_t f) { published = f; });
    if (limits_.refused) {  // no free slot: wait in line (end_call of another call wakes it)
      publish(i, published);
      if (std::find(limits_.line.begin(), limits_.line.end(), i) == limits_.line.end()) {
        limits_.line.push_back(i);
        ++limits_.waits;
      }
      return;
    }
    ls.left = limits_.left;
    if (!call_made_) {
      complete(i, t, r, published, false);
      return;
    }
    ls.result = r;
    ls.published = published;
    ls.yielded = yielded_;
    ls.counted = call_counted_;
    ls.first = call_first_;
    ls.succeeded = counters.succeeded.load(std::memory_order_relaxed) - before;
    push(call_end_, call_end, i);
  }

  void end_call(std::uint32_t i, time_point t) {
    lane_slot& ls = lanes_[i];
    if (ls.counted) --in_flight_;
    if (ls.left) {  // the call returns: its slot frees, the controller learns how it went
      limits_.real->leave(ls.left->first, ls.left->second);
      ls.left.reset();
      // Wake as many lanes, first in line first, as there are free slots now (a lane woken
      // before and not yet stepped counts for its slot).
      const limits_metrics m = limits_.real->snapshot();
      std::size_t free = m.concurrency_limit > m.concurrent_invocations
                             ? m.concurrency_limit - m.concurrent_invocations
                             : (m.concurrency_limit == 0 ? limits_.line.size() : 0);
      for (std::size_t k = 0; k < limits_.line.size() && free > 0; ++k, --free) {
        lane_slot& w = lanes_[limits_.line[k]];
        if (w.woken) continue;
        w.woken = true;
        push(t, ready, limits_.line[k]);
      }
    }
    for (std::uint64_t k = 0; k < ls.succeeded; ++k)
      latencies_.push_back((t - ls.first[k].arrival).count());
    if (ls.succeeded > 0) last_success_ = t;
    complete(i, t, ls.result, ls.published, ls.yielded);
  }

  /// What engine::run_job does after lane_job::step returns, at the step's end time t.
  /// What engine::run_job's publish does: the lane's current batch is finished up to `published`.
  void publish(std::uint32_t i, std::size_t published) {
    if (published == npos) return;
    auto& current = lanes_[i].l->current();
    current.unfinished.store(published < current.n
                                 ? sluice::sequence_number(current.records()[published])
                                 : none_in_flight,
                             std::memory_order_release);
  }

  void complete(std::uint32_t i, time_point t, step_result r, std::size_t published, bool yielded) {
    lane_slot& ls = lanes_[i];
    lane_t& l = *ls.l;
    publish(i, published);
    if (yielded) {  // the job goes on at once (a partial report's rest, a bisect half)
      push(t, ready, i);
      return;
    }
    l.retrying.store(!r.done && !r.paced, std::memory_order_release);
    if (r.done) {
      l.job.end();
      finished_at_ = t;
      if (l.finish()) push(t, ready, i);
    } else {
      push(std::max(t, r.wait_until), ready, i);
    }
    schedule_poll(ls.shard, t);  // a free slot, or a lane the reader may now pass
  }

  simulation_result result(time_point last) {
    for (auto& s : engine_.shards()) engine_.update_checkpoint(*s);
    const metrics_snapshot m = engine_.metrics();
    const metrics_counters& c = m.total;
    simulation_result out;
    out.point = point_;
    out.records = records_;
    out.succeeded = c.succeeded_event_count;
    out.dead_lettered = c.on_failure_destination_delivered_event_count + c.dropped_event_count;
    out.unfinished =
        records_ - std::min<std::uint64_t>(records_, out.succeeded + out.dead_lettered);
    out.handler_calls = c.invocations;
    out.throttles = c.throttles;
    out.failed_calls = c.function_errors;
    out.redelivered = redelivered_;
    out.bisect_splits = c.bisect_splits;
    out.peak_concurrent_calls = peak_in_flight_;
    out.iterator_age_max_ms = c.iterator_age_max_ms;
    out.mean_batch = c.invocations > 0 ? static_cast<double>(c.invoked_event_count) /
                                             static_cast<double>(c.invocations)
                                       : 0.0;
    if (limits_.real) {
      out.limits = limits_.real->snapshot();
      out.limits->concurrency_waits = limits_.waits;  // the simulated runtime never blocks
    }
    time_point first = far_future;
    for (const auto& v : *shards_) {
      if (!v.empty()) first = std::min(first, v.front().arrival);
    }
    const time_point done = out.unfinished > 0 ? last : std::max(finished_at_, last_success_);
    if (first != far_future && done > first) {
      out.makespan = done - first;
      out.throughput =
          static_cast<double>(out.succeeded) / std::chrono::duration<double>(out.makespan).count();
    }
    if (!latencies_.empty()) {
      auto rank = [&](double q) {
        const auto n = static_cast<double>(latencies_.size());
        auto k = static_cast<std::size_t>(std::ceil(q * n));
        k = std::clamp<std::size_t>(k, 1, latencies_.size()) - 1;
        std::nth_element(latencies_.begin(), latencies_.begin() + static_cast<std::ptrdiff_t>(k),
                         latencies_.end());
        return duration(latencies_[k]);
      };
      out.latency_p50 = rank(0.50);
      out.latency_p99 = rank(0.99);
      out.latency_max = duration(*std::max_element(latencies_.begin(), latencies_.end()));
    }
    return out;
  }

  const std::vector<std::vector<simulated_record>>* shards_;
  simulated_source source_;
  tuning point_;
  simulation_options options_;
  time_point start_;
  retry_config retry_;
  std::string stream_name_ = "simulated";
  memory_checkpoint_store store_;
  engine_t engine_;
  env env_;
  simulated_limits limits_;
  simulated_downstream handler_;
  simulated_dead_letters dead_letters_;
  std::uint64_t records_;
  std::vector<lane_slot> lanes_;
  std::unordered_map<const void*, std::uint32_t> index_;
  std::vector<std::size_t> next_arrival_;
  std::vector<time_point> poll_pending_;
  std::vector<time_point> last_deadline_;
  std::vector<lane_t*> claimed_;
  std::priority_queue<event, std::vector<event>, std::greater<>> queue_;
  std::uint64_t order_ = 0;
  time_point finished_at_{};
  time_point last_success_{};
};

inline void validate(const tuning& p) {
  require_in_range<std::uint32_t>("tuning::shards", p.shards, 1, 1024, "1..1024");
  (void)batching(batch_size(p.batch_size), maximum_batching_window(p.maximum_batching_window));
  (void)parallelization_factor(p.parallelization_factor);
  (void)retry(maximum_retry_attempts(p.maximum_retry_attempts),
              maximum_record_age_param{p.maximum_record_age}, p.backoff);
}

inline simulation_result simulate_sharded(const std::vector<std::vector<simulated_record>>& shards,
                                          std::size_t records, const downstream_model& model,
                                          const tuning& p, const simulation_options& o,
                                          time_point start) {
  validate(p);
  auto go = [&](auto bisect, auto report) {
    using sim_t = simulator<decltype(bisect)::value, decltype(report)::value>;
    auto sim = std::make_unique<sim_t>(shards, records, model, p, o, start);
    return sim->run();
  };
  if (p.bisect && p.report_batch_item_failures) return go(std::true_type{}, std::true_type{});
  if (p.bisect) return go(std::true_type{}, std::false_type{});
  if (p.report_batch_item_failures) return go(std::false_type{}, std::true_type{});
  return go(std::false_type{}, std::false_type{});
}

/// Virtual time at which every simulation starts.
inline constexpr time_point simulation_start = time_point{} + std::chrono::hours(24 * 365);

}  // namespace detail

/// Runs configuration `p` of a mapping over the records `records` (in arrival order; see
/// sluice::generate) against the downstream `model`, in virtual time. Deterministic: the same
/// arguments give the same result.
inline simulation_result simulate(const std::vector<generated_record>& records,
                                  const downstream_model& model, const tuning& p,
                                  const simulation_options& o = {}) {
  detail::validate(p);
  const auto shards = detail::shard_workload(records, p.shards, detail::simulation_start);
  return detail::simulate_sharded(shards, records.size(), model, p, o, detail::simulation_start);
}
/// The same over workload `w`'s records.
inline simulation_result simulate(const workload& w, const downstream_model& model, const tuning& p,
                                  const simulation_options& o = {}) {
  return simulate(generate(w), model, p, o);
}

/// Runs every configuration of `points` over the same records (results in the order of
/// `points`; on options.threads threads, which does not change them).
inline std::vector<simulation_result> sweep(const std::vector<generated_record>& records,
                                            const downstream_model& model,
                                            const std::vector<tuning>& points,
                                            const simulation_options& o = {}) {
  for (const tuning& p : points) detail::validate(p);
  std::unordered_map<std::uint32_t, std::vector<std::vector<simulated_record>>> by_shards;
  for (const tuning& p : points) {
    if (by_shards.find(p.shards) == by_shards.end())
      by_shards.emplace(p.shards,
                        detail::shard_workload(records, p.shards, detail::simulation_start));
  }
  std::vector<simulation_result> out(points.size());
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next++; i < points.size(); i = next++) {
      out[i] = detail::simulate_sharded(by_shards.at(points[i].shards), records.size(), model,
                                        points[i], o, detail::simulation_start);
    }
  };
  const auto threads = static_cast<unsigned>(
      std::max<std::size_t>(1, std::min<std::size_t>(o.threads, points.size())));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  return out;
}
/// The same over workload `w`'s records.
inline std::vector<simulation_result> sweep(const workload& w, const downstream_model& model,
                                            const std::vector<tuning>& points,
                                            const simulation_options& o = {}) {
  return sweep(generate(w), model, points, o);
}

/// The grid of a sweep: every combination of the listed values; an empty list keeps `base`'s.
struct tuning_grid {
  tuning base{};
  std::vector<std::uint32_t> batch_sizes;
  std::vector<duration> windows;
  std::vector<std::uint32_t> parallelization_factors;
  std::vector<std::int64_t> retries;
  std::vector<bool> bisect;
  std::vector<bool> report_batch_item_failures;

  std::vector<tuning> points() const {
    auto or_base = [](const auto& values, auto value) {
      return values.empty() ? std::vector<decltype(value)>{value}
                            : std::vector<decltype(value)>(values.begin(), values.end());
    };
    std::vector<tuning> out;
    for (std::uint32_t p : or_base(parallelization_factors, base.parallelization_factor))
      for (std::uint32_t b : or_base(batch_sizes, base.batch_size))
        for (duration w : or_base(windows, base.maximum_batching_window))
          for (std::int64_t r : or_base(retries, base.maximum_retry_attempts))
            for (bool bi : or_base(bisect, base.bisect))
              for (bool re : or_base(report_batch_item_failures, base.report_batch_item_failures)) {
                tuning t = base;
                t.parallelization_factor = p;
                t.batch_size = b;
                t.maximum_batching_window = w;
                t.maximum_retry_attempts = r;
                t.bisect = bi;
                t.report_batch_item_failures = re;
                out.push_back(t);
              }
    return out;
  }
};

/// Prints results as a table, one line per configuration.
inline void print_table(std::ostream& out, const std::vector<simulation_result>& results) {
  auto ms = [](duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  char line[320];
  std::snprintf(line, sizeof line, "%3s %6s %7s %3s %5s %4s  %12s %10s %10s %9s %8s %8s %8s %8s\n",
                "P", "batch", "window", "R", "bis", "rep", "records/s", "p50 ms", "p99 ms",
                "age ms", "calls", "throttle", "redeliv", "dead");
  out << line;
  for (const simulation_result& r : results) {
    const tuning& p = r.point;
    std::snprintf(line, sizeof line,
                  "%3u %6u %7.0f %3lld %5s %4s  %12.0f %10.1f %10.1f %9lld %8llu %8llu %8llu "
                  "%8llu%s\n",
                  p.parallelization_factor, p.batch_size, ms(p.maximum_batching_window),
                  static_cast<long long>(p.maximum_retry_attempts), p.bisect ? "on" : "off",
                  p.report_batch_item_failures ? "on" : "off", r.throughput, ms(r.latency_p50),
                  ms(r.latency_p99), static_cast<long long>(r.iterator_age_max_ms),
                  static_cast<unsigned long long>(r.handler_calls),
                  static_cast<unsigned long long>(r.throttles),
                  static_cast<unsigned long long>(r.redelivered),
                  static_cast<unsigned long long>(r.dead_lettered),
                  r.unfinished > 0 ? "  (unfinished at the horizon)" : "");
    out << line;
  }
}

SLUICE_END_NAMESPACE
