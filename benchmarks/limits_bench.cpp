// benchmarks/limits_bench.cpp (issue 12): downstream limits.
//
// Part 1, a saturated downstream. The handler models a downstream of fixed capacity: at most
// kCapacity calls at once, each taking kLatency (a real sleep); a call above the capacity fails
// at once with sluice::throttled (HTTP 429 in real life). One shard, P = kLanes lanes, batches of
// kBatch records, sluice::start with enough workers for every lane (handoff), the same retry
// back-off for all (exponential from 2 ms, cap 50 ms, jitter). Mappings, in the same run:
//   capacity   maximum_concurrency(kCapacity): the reference, the throughput this runtime gets
//              from the downstream when it never exceeds it
//   fixed      maximum_concurrency(kLanes): a fixed limit set too high
//   unlimited  no limit (every lane calls when it has a batch)
//   adaptive   adaptive_concurrency(1, kLanes): AIMD (limits.hpp)
// Reported: records/s, ratio to `capacity` (target for adaptive >= 0.9), throttle rate =
// throttled calls / calls (target for adaptive < 0.05), the final concurrency limit.
//
// Part 2, the cost of the limits when they never bind: sluice::run over 1 Mi records, batches of
// 10 (many calls per record, so a per-call cost shows), the same mapping without limits, with
// maximum_concurrency(1000), with rate_limit(1e9 records/s and calls/s), and with both; and under
// sluice::start (P 4, 4 workers) without and with both. Ratios to the mapping without limits.
#include <benchmark/benchmark.h>

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
  template <class Batch>
  void operator()(const Batch&) {
    calls.fetch_add(1, std::memory_order_relaxed);
    if (in_flight.fetch_add(1) + 1 > kCapacity) {
      in_flight.fetch_sub(1);
      throttles.fetch_add(1, std::memory_order_relaxed);
      throw sluice::throttled("downstream at capacity");
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(kLatency);
    busy_ns.fetch_add(
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::steady_clock::now() - t0)
                                       .count()),
        std::memory_order_relaxed);
    in_flight.fetch_sub(1);
  }
};

enum class limit { capacity, fixed, unlimited, adaptive };
const char* name_of(limit l) {
  switch (l) {
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
          (lim | ... | sluice::invoke([&d](const sluice::batch<sluice::record<int>>& b) { d(b); })),
      sluice::workers(kLanes + 8), sluice::pollers(kShards / 4),
      sluice::execution(sluice::execution_mode::handoff));
  running.wait_until_caught_up();
  auto m = running.metrics();
  running.stop();
  return m;
}

void BM_saturated(benchmark::State& state) {
  const auto l = static_cast<limit>(state.range(0));
  double calls = 0, throttles = 0, final_limit = 0, decreases = 0, seconds = 0, busy = 0;
  for (auto _ : state) {
    downstream d;
    const auto t0 = std::chrono::steady_clock::now();
    sluice::metrics_snapshot m;
    switch (l) {
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
  state.counters["final_limit"] = final_limit;
  state.counters["decreases"] = decreases / n;
  state.SetLabel(name_of(l));
}
BENCHMARK(BM_saturated)
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
  std::printf("%-10s %12s %10s %12s %12s %10s %14s %12s %10s\n", "mapping", "records/s",
              "/capacity", "/theoretical", "utilization", "calls", "throttle rate", "final limit",
              "decreases");
  const double reference = saturated(limit::capacity).rate();
  for (limit l : {limit::capacity, limit::fixed, limit::unlimited, limit::adaptive}) {
    const auto r = saturated(l);
    std::printf("%-10s %12.0f %10.3f %12.3f %12.3f %10.0f %14.4f %12.0f %10.0f\n", name_of(l),
                r.rate(), reference > 0 ? r.rate() / reference : 0, r.rate() / theoretical,
                r.counter("utilization"), r.counter("calls"), r.counter("throttle_rate"),
                r.counter("final_limit"), r.counter("decreases"));
  }
  std::printf("\n");
  sluice::bench::print_ratio("adaptive / capacity (records/s)", saturated(limit::adaptive).rate(),
                             reference, 0.9);
  auto throttle_rate = [&](const char* label, limit l, double target) {
    const double x = saturated(l).counter("throttle_rate");
    std::printf("rate  %-52s = %.4f", label, x);
    if (target > 0) std::printf("  (target < %.2f: %s)", target, x < target ? "met" : "MISSED");
    std::printf("\n");
  };
  throttle_rate("adaptive throttled calls / calls", limit::adaptive, 0.05);
  throttle_rate("fixed(64) throttled calls / calls", limit::fixed, 0);
  throttle_rate("unlimited throttled calls / calls", limit::unlimited, 0);
  sluice::bench::print_ratio("adaptive / theoretical capacity (records/s)",
                             saturated(limit::adaptive).rate(), theoretical, 0.9);
  sluice::bench::print_ratio("adaptive downstream utilization (busy / capacity)",
                             saturated(limit::adaptive).counter("utilization"), 1.0, 0.9);
  sluice::bench::print_ratio("capacity downstream utilization (busy / capacity)",
                             saturated(limit::capacity).counter("utilization"), 1.0);
  sluice::bench::print_ratio("unlimited / capacity (records/s)", saturated(limit::unlimited).rate(),
                             reference);
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
