// benchmarks/limits_bench.cpp (issue 12): downstream limits.
//
// Part 1, a saturated downstream. The handler models a downstream of fixed capacity: at most
// kCapacity calls at once, each taking kLatency (a real sleep); a call above the capacity fails
// at once with sluice::throttled (HTTP 429 in real life). One shard, P = kLanes lanes, batches of
// kBatch records, sluice::start with enough workers for every lane (handoff), the same retry
// back-off for all (exponential from 2 ms, cap 50 ms, jitter). Mappings, in the same run:
//   ideal      no sluice: exactly kCapacity threads calling the same downstream back-to-back
//              with full batches, taking the records from a shared counter. What the downstream
//              delivers to a perfect client on this machine in this run (sleep overshoot and
//              thread wake-ups included): the capacity the others are measured against.
//   capacity   maximum_concurrency(kCapacity): the runtime held at the capacity, never over it
//   fixed      maximum_concurrency(kLanes): a fixed limit set too high
//   unlimited  no limit (every lane calls when it has a batch)
//   adaptive   adaptive_concurrency(1, kLanes): AIMD (limits.hpp)
// Reported: records/s, ratio to `ideal` (target for adaptive >= 0.9) and to the theoretical
// kCapacity x kBatch / kLatency, throttle rate = throttled calls / calls (target for adaptive
// < 0.05), and where capacity goes: records per successful call (kBatch is full), the mean
// duration of a successful call (kLatency plus the sleep's overshoot), the downstream's
// utilization (busy slot time / kCapacity x elapsed), the client's own CPU use in cores (getrusage:
// on a loaded machine a busy client delays the wake-up of its own sleeping calls), and the steady
// rate (records/s between 10 % and 90 % of the records done: no start-up, no drain tail of lanes
// with more keys).
//
// Part 2, the cost of the limits when they never bind: sluice::run over 1 Mi records, batches of
// 10 (many calls per record, so a per-call cost shows), the same mapping without limits, with
// maximum_concurrency(1000), with rate_limit(1e9 records/s and calls/s), and with both; batches
// of 100 without and with both; and under sluice::start (P 4, 4 workers) without and with both.
// Ratios to the mapping without limits.
//
// Part 3, part 1 again in sluice::simulate: the same downstream model (max_concurrent_calls,
// 20 ms calls, 1 ms throttles) and mappings in virtual time, deterministic: no sleep overshoot
// and no scheduler, so its fraction of the theoretical capacity is the runtime's own. Run with
// the same records and with 10 times as many (the drain tail then weighs a tenth).
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "sluice/bench.hpp"
#include "sluice/simulate.hpp"
#include "sluice/sluice.hpp"

namespace {

using namespace std::chrono_literals;
using R = sluice::bench::record;

constexpr int kCapacity = 24;
constexpr auto kLatency = 20ms;
constexpr int kLanes = 64;
constexpr int kShards = 16;  // x P 4 = kLanes lanes, 4 readers
constexpr int kBatch = 10;
constexpr std::size_t kSaturatedRecords = 45'000;  // ~3.8 s at capacity

/// The downstream: kCapacity calls at once, kLatency each, throttled above.
struct downstream {
  std::atomic<int> in_flight{0};
  std::atomic<std::uint64_t> calls{0}, throttles{0};
  std::atomic<std::uint64_t> busy_ns{0};  // the sum of successful calls' durations
  std::atomic<std::uint64_t> done{0};     // records of successful calls
  // When 10 % and 90 % of the records were done (ns since `t0`): the steady rate's interval.
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  std::atomic<std::int64_t> at10{0}, at90{0};
  void call(std::size_t records) {
    calls.fetch_add(1, std::memory_order_relaxed);
    if (in_flight.fetch_add(1) + 1 > kCapacity) {
      in_flight.fetch_sub(1);
      throttles.fetch_add(1, std::memory_order_relaxed);
      throw sluice::throttled("downstream at capacity");
    }
    const auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(kLatency);
    const auto end = std::chrono::steady_clock::now();
    busy_ns.fetch_add(
        static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count()),
        std::memory_order_relaxed);
    in_flight.fetch_sub(1);
    const std::uint64_t before = done.fetch_add(records), after = before + records;
    const auto since = std::chrono::duration_cast<std::chrono::nanoseconds>(end - t0).count();
    if (before < kSaturatedRecords / 10 && after >= kSaturatedRecords / 10) at10.store(since);
    if (before < kSaturatedRecords * 9 / 10 && after >= kSaturatedRecords * 9 / 10)
      at90.store(since);
  }
  /// Records per second between 10 % and 90 % of the records done.
  double steady_rate() const {
    const auto ns = at90.load() - at10.load();
    return ns > 0 ? 0.8 * static_cast<double>(kSaturatedRecords) / (static_cast<double>(ns) * 1e-9)
                  : 0;
  }
};

enum class limit { capacity, fixed, unlimited, adaptive, ideal };
const char* name_of(limit l) {
  switch (l) {
    case limit::ideal:
      return "ideal";
    case limit::capacity:
      return "capacity";
    case limit::fixed:
      return "fixed";
    case limit::unlimited:
      return "unlimited";
    default:
      return "adaptive";
  }
}

/// The saturated part's input: kShards shards of a memory stream, filled once; each run reads it
/// from the start with a fresh in-memory checkpoint store.
sluice::memory_stream<int>& saturated_stream() {
  static const auto stream = [] {
    auto s = std::make_unique<sluice::memory_stream<int>>(kShards);
    for (std::size_t i = 0; i < kSaturatedRecords; ++i)
      s->put("key-" + std::to_string(i % 4096), static_cast<int>(i));
    return s;
  }();
  return *stream;
}

template <class... Limit>
sluice::metrics_snapshot run_saturated(downstream& d, Limit... lim) {
  auto running = sluice::start(
      sluice::from(saturated_stream()) | sluice::batching(sluice::batch_size(kBatch)) |
          sluice::parallelization_factor(kLanes / kShards) |
          sluice::retry(sluice::backoff::exponential(2ms, 2.0, 50ms)) |
          (lim | ... |
           sluice::invoke([&d](const sluice::batch<sluice::record<int>>& b) { d.call(b.size()); })),
      sluice::workers(kLanes + 8), sluice::pollers(kShards / 4),
      sluice::execution(sluice::execution_mode::handoff));
  running.wait_until_caught_up();
  auto m = running.metrics();
  running.stop();
  return m;
}

/// CPU time (user + system) this process has used so far, in seconds.
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

/// The ideal client: kCapacity threads, each taking kBatch records at a time from a shared
/// counter and calling the downstream with them back-to-back, until all are done. It never
/// exceeds the capacity (no throttles) and never calls with less than a full batch.
void run_ideal(downstream& d) {
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kCapacity; ++i)
    threads.emplace_back([&] {
      while (true) {
        const std::size_t first = next.fetch_add(kBatch);
        if (first >= kSaturatedRecords) return;
        d.call(std::min<std::size_t>(kBatch, kSaturatedRecords - first));
      }
    });
  for (auto& t : threads) t.join();
}

void BM_saturated(benchmark::State& state) {
  const auto l = static_cast<limit>(state.range(0));
  double calls = 0, throttles = 0, final_limit = 0, decreases = 0, seconds = 0, busy = 0,
         steady = 0, cpu = 0;
  for (auto _ : state) {
    downstream d;
    const double cpu0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    sluice::metrics_snapshot m;
    switch (l) {
      case limit::ideal:
        run_ideal(d);
        break;
      case limit::capacity:
        m = run_saturated(d, sluice::maximum_concurrency(kCapacity));
        break;
      case limit::fixed:
        m = run_saturated(d, sluice::maximum_concurrency(kLanes));
        break;
      case limit::unlimited:
        m = run_saturated(d);
        break;
      case limit::adaptive:
        m = run_saturated(d, sluice::adaptive_concurrency(1, kLanes));
        break;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    seconds += s;
    busy += static_cast<double>(d.busy_ns.load()) * 1e-9;
    calls += static_cast<double>(d.calls.load());
    throttles += static_cast<double>(d.throttles.load());
    steady += d.steady_rate();
    cpu += process_cpu_seconds() - cpu0;
    if (m.limits) {
      final_limit = m.limits->concurrency_limit;
      decreases += static_cast<double>(m.limits->concurrency_decreases);
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kSaturatedRecords));
  const auto n = static_cast<double>(state.iterations());
  state.counters["calls"] = calls / n;
  // The downstream's utilization: the time its kCapacity slots were busy with successful calls
  // over the time they had (kCapacity x elapsed). 1.0 is the capacity fully used.
  state.counters["utilization"] = busy / (kCapacity * seconds);
  state.counters["throttle_rate"] = calls > 0 ? throttles / calls : 0;
  const double ok = calls - throttles;  // successful calls
  state.counters["batch"] = ok > 0 ? n * static_cast<double>(kSaturatedRecords) / ok : 0;
  state.counters["call_ms"] = ok > 0 ? busy * 1e3 / ok : 0;  // kLatency + the sleep's overshoot
  state.counters["steady"] = steady / n;
  state.counters["cores"] = cpu / seconds;  // the client's own CPU use (sleeps cost none)
  state.counters["final_limit"] = final_limit;
  state.counters["decreases"] = decreases / n;
  state.SetLabel(name_of(l));
}
BENCHMARK(BM_saturated)
    ->Arg(static_cast<int>(limit::ideal))
    ->Arg(static_cast<int>(limit::capacity))
    ->Arg(static_cast<int>(limit::fixed))
    ->Arg(static_cast<int>(limit::unlimited))
    ->Arg(static_cast<int>(limit::adaptive))
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// ---- part 2: overhead when the limits never bind ------------------------------------------------

sluice::workload overhead_workload() {
  sluice::workload w;
  w.records = std::size_t{1} << 20;
  w.keys.keys = 1024;
  return w;
}

struct summing {
  std::uint64_t* sum;
  void operator()(const sluice::batch<R>& b) const {
    for (const R& r : b) *sum += r.payload.bytes;
  }
};
std::uint64_t sink_sum = 0;
std::atomic<std::uint64_t> shared_sum{0};
struct atomic_summing {
  void operator()(const sluice::batch<R>& b) const {
    std::uint64_t s = 0;
    for (const R& r : b) s += r.payload.bytes;
    shared_sum.fetch_add(s, std::memory_order_relaxed);
  }
};

auto never_binding_rate() {
  return sluice::rate_limit(sluice::records_per_second(1e9, 1e9),
                            sluice::invocations_per_second(1e9, 1e9));
}

void register_overhead() {
  const auto w = overhead_workload();
  using sluice::bench::register_mapping;
  auto base = [](const std::vector<R>& records) {
    return sluice::from(records) | sluice::batching(sluice::batch_size(10));
  };
  register_mapping("run/no_limits", w, [base](const std::vector<R>& records) {
    return base(records) | sluice::invoke(summing{&sink_sum});
  });
  register_mapping("run/maximum_concurrency", w, [base](const std::vector<R>& records) {
    return base(records) | sluice::maximum_concurrency(1000) | sluice::invoke(summing{&sink_sum});
  });
  register_mapping("run/rate_limit", w, [base](const std::vector<R>& records) {
    return base(records) | never_binding_rate() | sluice::invoke(summing{&sink_sum});
  });
  register_mapping("run/both", w, [base](const std::vector<R>& records) {
    return base(records) | sluice::maximum_concurrency(1000) | never_binding_rate() |
           sluice::invoke(summing{&sink_sum});
  });
  auto base100 = [](const std::vector<R>& records) {
    return sluice::from(records) | sluice::batching(sluice::batch_size(100));
  };
  register_mapping("run b100/no_limits", w, [base100](const std::vector<R>& records) {
    return base100(records) | sluice::invoke(summing{&sink_sum});
  });
  register_mapping("run b100/both", w, [base100](const std::vector<R>& records) {
    return base100(records) | sluice::maximum_concurrency(1000) | never_binding_rate() |
           sluice::invoke(summing{&sink_sum});
  });
  sluice::bench::mapping_options start;
  start.mode = sluice::bench::runner::start;
  start.workers = 4;
  register_mapping(
      "start/no_limits", w,
      [base](const std::vector<R>& records) {
        return base(records) | sluice::parallelization_factor(4) | sluice::invoke(atomic_summing{});
      },
      start);
  register_mapping(
      "start/both", w,
      [base](const std::vector<R>& records) {
        return base(records) | sluice::parallelization_factor(4) |
               sluice::maximum_concurrency(1000) | never_binding_rate() |
               sluice::invoke(atomic_summing{});
      },
      start);
  sluice::bench::compare("run: maximum_concurrency(1000) / no limits", "run/maximum_concurrency",
                         "run/no_limits", 0.9);
  sluice::bench::compare("run: rate_limit(never binding) / no limits", "run/rate_limit",
                         "run/no_limits", 0.9);
  sluice::bench::compare("run: both / no limits", "run/both", "run/no_limits", 0.9);
  sluice::bench::compare("start P4: both / no limits", "start/both", "start/no_limits", 0.9);
  sluice::bench::compare("run, batch 100: both / no limits", "run b100/both", "run b100/no_limits",
                         0.9);
}

/// Part 3: the same downstream and mappings in sluice::simulate (virtual time, the real engine
/// and limiter, no scheduler noise, no sleep overshoot): deterministic numbers for the same
/// comparison, as fractions of the theoretical capacity. `scale` multiplies the records.
void simulated_saturation(std::size_t scale) {
  sluice::workload w;
  w.records = kSaturatedRecords * scale;
  w.keys.keys = 4096;
  sluice::downstream_model model;
  model.fixed_latency = kLatency;
  model.max_concurrent_calls = kCapacity;
  model.throttle_latency = 1ms;
  sluice::tuning base;
  base.shards = kShards;
  base.parallelization_factor = kLanes / kShards;
  base.batch_size = kBatch;
  base.backoff = sluice::backoff::exponential(2ms, 2.0, 50ms);
  std::vector<sluice::tuning> points(4, base);
  points[0].concurrency = sluice::maximum_concurrency(kCapacity);
  points[1].concurrency = sluice::maximum_concurrency(kLanes);
  points[3].concurrency = sluice::adaptive_concurrency(1, kLanes);
  const auto results = sluice::sweep(w, model, points);
  const double theoretical = kCapacity * kBatch / std::chrono::duration<double>(kLatency).count();
  std::printf(
      "\n== simulated (sluice::simulate, virtual time): the same downstream and mappings, %zu "
      "records ==\n",
      w.records);
  std::printf("%-10s %12s %8s %10s %10s %8s %14s %12s %10s\n", "mapping", "records/s", "/theor",
              "/capacity", "calls", "batch", "throttle rate", "final limit", "decreases");
  const double reference = results[0].throughput;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    const limit l = static_cast<limit>(i);
    const auto ok = static_cast<double>(r.handler_calls - r.throttles);
    std::printf("%-10s %12.0f %8.3f %10.3f %10llu %8.2f %14.4f %12u %10llu\n", name_of(l),
                r.throughput, r.throughput / theoretical, r.throughput / reference,
                static_cast<unsigned long long>(r.handler_calls),
                ok > 0 ? static_cast<double>(w.records) / ok : 0,
                static_cast<double>(r.throttles) / static_cast<double>(r.handler_calls),
                r.limits ? r.limits->concurrency_limit : 0u,
                static_cast<unsigned long long>(r.limits ? r.limits->concurrency_decreases : 0));
  }
  sluice::bench::print_ratio("simulated adaptive / theoretical capacity", results[3].throughput,
                             theoretical, 0.9);
  sluice::bench::print_ratio("simulated capacity-held / theoretical capacity",
                             results[0].throughput, theoretical);
  sluice::bench::print_ratio("simulated adaptive / capacity-held (records/s)",
                             results[3].throughput, reference, 0.9);
  const double rate =
      static_cast<double>(results[3].throttles) / static_cast<double>(results[3].handler_calls);
  std::printf("rate  %-52s = %.4f  (target < 0.05: %s)\n", "simulated adaptive throttled / calls",
              rate, rate < 0.05 ? "met" : "MISSED");
  std::printf(
      "rate  %-52s = %.4f\n", "simulated fixed(64) throttled / calls",
      static_cast<double>(results[1].throttles) / static_cast<double>(results[1].handler_calls));
}

}  // namespace

int main(int argc, char** argv) {
  (void)saturated_stream();  // built before any timing
  (void)sluice::bench::detail::records_of(overhead_workload());
  register_overhead();
  sluice::bench::collecting_reporter reporter;
  if (!sluice::bench::run_benchmarks(argc, argv, reporter, {"--benchmark_repetitions=3"})) return 1;
  auto saturated = [&](limit l) {
    return reporter.get("BM_saturated/" + std::to_string(static_cast<int>(l)) +
                        "/iterations:1/manual_time");
  };
  std::printf(
      "\n== a downstream of %d concurrent calls x %lld ms, P %d, batch %d, %zu records ==\n",
      kCapacity, static_cast<long long>(kLatency.count()), kLanes, kBatch, kSaturatedRecords);
  const double theoretical =
      kCapacity * kBatch / std::chrono::duration<double>(kLatency).count();  // records/s
  std::printf("theoretical capacity: %d x %d records / %lld ms = %.0f records/s\n", kCapacity,
              kBatch, static_cast<long long>(kLatency.count()), theoretical);
  std::printf("%-10s %10s %7s %7s %10s %7s %8s %7s %7s %6s %6s %9s %6s %6s\n", "mapping",
              "records/s", "/ideal", "/theor", "steady/s", "/ideal", "throttle", "batch", "call_ms",
              "util", "cores", "calls", "limit", "decr");
  const double ideal = saturated(limit::ideal).rate();
  const double ideal_steady = saturated(limit::ideal).counter("steady");
  for (limit l : {limit::ideal, limit::capacity, limit::fixed, limit::unlimited, limit::adaptive}) {
    const auto r = saturated(l);
    std::printf(
        "%-10s %10.0f %7.3f %7.3f %10.0f %7.3f %8.4f %7.2f %7.2f %6.3f %6.3f %9.0f %6.0f "
        "%6.0f\n",
        name_of(l), r.rate(), ideal > 0 ? r.rate() / ideal : 0, r.rate() / theoretical,
        r.counter("steady"), ideal_steady > 0 ? r.counter("steady") / ideal_steady : 0,
        r.counter("throttle_rate"), r.counter("batch"), r.counter("call_ms"),
        r.counter("utilization"), r.counter("cores"), r.counter("calls"), r.counter("final_limit"),
        r.counter("decreases"));
  }
  std::printf("\n");
  sluice::bench::print_ratio("adaptive / ideal client (records/s)",
                             saturated(limit::adaptive).rate(), ideal, 0.9);
  sluice::bench::print_ratio("adaptive / ideal client (steady records/s)",
                             saturated(limit::adaptive).counter("steady"), ideal_steady, 0.9);
  auto throttle_rate = [&](const char* label, limit l, double target) {
    const double x = saturated(l).counter("throttle_rate");
    std::printf("rate  %-52s = %.4f", label, x);
    if (target > 0) std::printf("  (target < %.2f: %s)", target, x < target ? "met" : "MISSED");
    std::printf("\n");
  };
  throttle_rate("adaptive throttled calls / calls", limit::adaptive, 0.05);
  throttle_rate("fixed(64) throttled calls / calls", limit::fixed, 0);
  throttle_rate("unlimited throttled calls / calls", limit::unlimited, 0);
  sluice::bench::print_ratio("capacity-held / ideal client (records/s)",
                             saturated(limit::capacity).rate(), ideal);
  sluice::bench::print_ratio("adaptive / theoretical capacity (records/s)",
                             saturated(limit::adaptive).rate(), theoretical);
  sluice::bench::print_ratio("ideal client / theoretical capacity (records/s)", ideal, theoretical);
  simulated_saturation(1);
  simulated_saturation(10);
  const auto& registry = sluice::bench::detail::registry::instance();
  for (const auto& c : registry.comparisons) {
    auto full = [&](const std::string& n) {
      auto it = registry.full_names.find(n);
      return it == registry.full_names.end() ? n : it->second;
    };
    sluice::bench::print_ratio(c.label.c_str(), reporter.get(full(c.numerator)).rate(),
                               reporter.get(full(c.denominator)).rate(), c.target);
  }
  sluice::bench::print_load("after");
  return 0;
}
