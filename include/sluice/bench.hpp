// sluice/bench.hpp: microbenchmark any mapping with Google Benchmark (target sluice::bench).
// Register a mapping factory with a workload (sluice/workload.hpp) and a baseline loop of your
// own over the same records; sluice::bench::main runs them in one binary and prints the ratios,
// the way sluice's own benchmarks report (benchmarks/*.cpp use this header). Each mapping entry
// reports records/s, bytes/s, ns per record, handler calls and batches per run, user and kernel
// CPU time and context switches per batch, and (under sluice::start) the peak of buffered
// records. --benchmark_out=<file> --benchmark_out_format=json writes the usual JSON.
//
//   sluice::bench::register_mapping("mine", w, [](const auto& records) {
//     return sluice::from(records) | sluice::batching(sluice::batch_size(500)) | invoke(...);
//   });
//   sluice::bench::register_baseline("hand loop", w, [](const auto& records) { ... });
//   sluice::bench::compare("mine / hand loop", "mine", "hand loop", 0.9);
//   return sluice::bench::main(argc, argv);
#pragma once

#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sluice/metrics.hpp"
#include "sluice/record.hpp"
#include "sluice/run.hpp"
#include "sluice/start.hpp"
#include "sluice/workload.hpp"

SLUICE_BEGIN_NAMESPACE
namespace bench {

// ---- the ratio report ------------------------------------------------------------------------

/// One benchmark's result: its median counters ("items_per_second" included) and real time
/// per iteration (ns).
struct result {
  std::map<std::string, double> counters;
  double real_time_ns = 0;
  double cpu_time_ns = 0;
  bool present = false;
  double rate() const {
    auto it = counters.find("items_per_second");
    return it == counters.end() ? 0.0 : it->second;
  }
  double counter(const std::string& name) const {
    auto it = counters.find(name);
    return it == counters.end() ? 0.0 : it->second;
  }
};

/// The console reporter, also keeping every result for the ratios printed after the run. The
/// ratio is taken between medians over repetitions when repetitions are on, else between the
/// medians of the single runs.
class collecting_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    benchmark::ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const std::string name = run.run_name.str();
      if (run.run_type == Run::RT_Aggregate) {
        if (run.aggregate_name != "median") continue;
        result& r = medians_[name];
        r.present = true;
        r.real_time_ns = run.GetAdjustedRealTime() * multiplier(run.time_unit);
        r.cpu_time_ns = run.GetAdjustedCPUTime() * multiplier(run.time_unit);
        for (const auto& [k, c] : run.counters) r.counters[k] = c.value;
      } else {
        samples_[name].push_back(run);
      }
    }
  }

  /// The median result of a benchmark by its full name (e.g. "BM_hand_loop" or
  /// "BM_runtime/shards:4/P:1/batch:100/real_time").
  result get(const std::string& name) const {
    if (auto it = medians_.find(name); it != medians_.end()) return it->second;
    result r;
    auto it = samples_.find(name);
    if (it == samples_.end() || it->second.empty()) return r;
    auto mid = [](std::vector<double> xs) {
      std::sort(xs.begin(), xs.end());
      const std::size_t n = xs.size();
      return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
    };
    std::vector<double> rt, ct;
    std::map<std::string, std::vector<double>> cs;
    for (const Run& run : it->second) {
      rt.push_back(run.GetAdjustedRealTime() * multiplier(run.time_unit));
      ct.push_back(run.GetAdjustedCPUTime() * multiplier(run.time_unit));
      for (const auto& [k, c] : run.counters) cs[k].push_back(c.value);
    }
    r.present = true;
    r.real_time_ns = mid(rt);
    r.cpu_time_ns = mid(ct);
    for (auto& [k, xs] : cs) r.counters[k] = mid(xs);
    return r;
  }

 private:
  static double multiplier(benchmark::TimeUnit u) {
    switch (u) {
      case benchmark::kSecond:
        return 1e9;
      case benchmark::kMillisecond:
        return 1e6;
      case benchmark::kMicrosecond:
        return 1e3;
      default:
        return 1.0;
    }
  }
  std::map<std::string, result> medians_;
  std::map<std::string, std::vector<Run>> samples_;
};

/// Prints /proc/loadavg: the machine may be shared, and a ratio means more next to the load it
/// ran in.
inline void print_load(const char* when) {
  std::ifstream f("/proc/loadavg");
  std::string line;
  std::getline(f, line);
  std::printf("load average %s: %s\n", when, line.c_str());
}

/// Runs the registered benchmarks. Flags the command line does not set come from `extra`, then
/// from the defaults: 5 repetitions, medians only, interleaved. Returns false when the command
/// line asked for something else (e.g. --help, a bad flag).
inline bool run_benchmarks(int argc, char** argv, collecting_reporter& reporter,
                           std::vector<std::string> extra = {}) {
  std::vector<std::string> defaults = std::move(extra);
  for (const char* d : {"--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true",
                        "--benchmark_enable_random_interleaving=true"})
    defaults.emplace_back(d);
  std::vector<std::string> args{argv[0]};
  for (const std::string& d : defaults) {
    const std::string flag = d.substr(0, d.find('=') + 1);
    bool given = false;  // on the command line, or earlier in the list (`extra` before defaults)
    for (int i = 1; i < argc; ++i) given |= std::strncmp(argv[i], flag.c_str(), flag.size()) == 0;
    for (std::size_t i = 1; i < args.size(); ++i) given |= args[i].rfind(flag, 0) == 0;
    if (!given) args.push_back(d);
  }
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  std::vector<char*> cargs;
  cargs.reserve(args.size());
  for (std::string& a : args) cargs.push_back(a.data());
  int n = static_cast<int>(cargs.size());
  std::printf("flags:");
  for (int i = 1; i < n; ++i) std::printf(" %s", cargs[static_cast<std::size_t>(i)]);
  std::printf("\n");
  print_load("before");
  benchmark::Initialize(&n, cargs.data());
  if (benchmark::ReportUnrecognizedArguments(n, cargs.data())) return false;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return true;
}

/// Prints "ratio <label> = x.xx  (target >= t: met|MISSED by p %)". target <= 0: no target.
inline void print_ratio(const char* label, double numerator, double denominator, double target = 0,
                        bool higher_is_better = true) {
  if (numerator <= 0 || denominator <= 0) {
    std::printf("ratio %-52s = n/a (benchmark missing or filtered out)\n", label);
    return;
  }
  const double x = numerator / denominator;
  if (target <= 0) {
    std::printf("ratio %-52s = %.3f\n", label, x);
  } else if (higher_is_better) {
    const bool met = x >= target;
    std::printf("ratio %-52s = %.3f  (target >= %.2f: %s", label, x, target,
                met ? "met" : "MISSED");
    if (!met) std::printf(" by %.1f %%", (target - x) / target * 100.0);
    std::printf(")\n");
  } else {
    const bool met = x <= target;
    std::printf("ratio %-52s = %.3f  (target <= %.2f: %s", label, x, target,
                met ? "met" : "MISSED");
    if (!met) std::printf(" by %.1f %%", (x - target) / target * 100.0);
    std::printf(")\n");
  }
}

// ---- the process's resource usage ---------------------------------------------------------------

/// CPU time and context switches of the whole process so far (getrusage RUSAGE_SELF: every
/// thread, sluice::start's included).
struct resource_usage {
  double user_s = 0;
  double system_s = 0;
  double context_switches = 0;  // voluntary + involuntary

  static resource_usage now() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto seconds = [](const timeval& t) {
      return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
    };
    return {seconds(u.ru_utime), seconds(u.ru_stime),
            static_cast<double>(u.ru_nvcsw) + static_cast<double>(u.ru_nivcsw)};
  }
  resource_usage operator-(const resource_usage& o) const {
    return {user_s - o.user_s, system_s - o.system_s, context_switches - o.context_switches};
  }
  resource_usage& operator+=(const resource_usage& o) {
    user_s += o.user_s;
    system_s += o.system_s;
    context_switches += o.context_switches;
    return *this;
  }
};

// ---- workload records --------------------------------------------------------------------------

/// The payload of a benchmark record: `bytes` bytes (a view into one shared buffer, so a
/// million records do not allocate a million strings) and whether the record is poison.
struct payload {
  using value_type = char;
  const char* data = nullptr;
  std::uint32_t bytes = 0;
  bool poison = false;
  std::size_t size() const noexcept { return bytes; }
};
using record = sluice::record<payload, std::uint64_t>;

/// A workload's records (sluice/workload.hpp) as sluice::record<bench::payload, uint64_t>: key,
/// sequence 1..n, arrival `start` + the workload's offset, payload of the drawn size.
inline std::vector<record> make_records(const workload& w,
                                        time_point start = time_point{} + std::chrono::hours(1)) {
  static const std::vector<char> buffer(std::size_t{1} << 24, 'x');  // 16 MiB of payload bytes
  std::vector<record> out;
  out.reserve(w.records);
  generate(w, [&](const generated_record& g) {
    const std::uint32_t bytes = std::min<std::uint32_t>(g.bytes, std::uint32_t{1} << 24);
    out.push_back(
        record{g.key, g.index + 1, start + g.arrival, payload{buffer.data(), bytes, g.poison}});
  });
  return out;
}

// ---- registering mappings and baselines -------------------------------------------------------

/// How a registered mapping runs: sluice::run on the benchmark's thread, or sluice::start on
/// its own threads (timed until wait_until_caught_up() returns, then stopped).
enum class runner { run, start };

struct mapping_options {
  runner mode = runner::run;
  /// sluice::start's workers (0: its default).
  std::uint32_t workers = 0;
  benchmark::TimeUnit unit = benchmark::kMillisecond;
};

namespace detail {
/// The registered names, so compare() can find their results; and the comparisons to print.
struct registry {
  std::map<std::string, std::string> full_names;  // as registered -> as reported
  struct comparison {
    std::string label, numerator, denominator;
    double target;
  };
  std::vector<comparison> comparisons;
  static registry& instance() {
    static registry r;
    return r;
  }
};

/// The workload's records, made once per workload and shared by every entry that uses it.
inline std::shared_ptr<const std::vector<record>> records_of(const workload& w) {
  static std::vector<std::pair<workload, std::shared_ptr<const std::vector<record>>>> cache;
  for (const auto& [k, v] : cache) {
    if (k.records == w.records && k.seed == w.seed && k.poison_rate == w.poison_rate &&
        k.keys.shape == w.keys.shape && k.keys.keys == w.keys.keys && k.keys.skew == w.keys.skew &&
        k.keys.hot_share == w.keys.hot_share && k.payload.shape == w.payload.shape &&
        k.payload.small == w.payload.small && k.payload.large == w.payload.large &&
        k.payload.large_share == w.payload.large_share && k.arrival.shape == w.arrival.shape &&
        k.arrival.per_second == w.arrival.per_second && k.arrival.burst == w.arrival.burst &&
        k.arrival.every == w.arrival.every)
      return v;
  }
  auto v = std::make_shared<const std::vector<record>>(make_records(w));
  cache.emplace_back(w, v);
  return v;
}

/// ns per record from the benchmark's own time (the one records/s is computed from): a rate
/// counter of records x 1e-9, inverted.
inline benchmark::Counter ns_per_record(const benchmark::State& state, std::size_t records) {
  return {static_cast<double>(state.iterations()) * static_cast<double>(records) * 1e-9,
          benchmark::Counter::Flags(benchmark::Counter::kIsRate | benchmark::Counter::kInvert)};
}

inline std::uint64_t bytes_of(const std::vector<record>& records) {
  std::uint64_t n = 0;
  for (const record& r : records) n += r.payload.bytes;
  return n;
}
}  // namespace detail

/// Registers a benchmark entry that, per iteration, builds factory(records) (a mapping over
/// the workload's records, e.g. sluice::from(records) | ... | sluice::invoke(...)) and runs it
/// to the end. Counters: items_per_second (records/s), bytes_per_second, ns_per_record,
/// handler_calls and batches (per run), user_us_per_batch, sys_us_per_batch,
/// context_switches_per_batch, and with runner::start peak_buffered (the most records held
/// between source and handler, sampled every 100 us).
template <class Factory>
benchmark::internal::Benchmark* register_mapping(const std::string& name, const workload& w,
                                                 Factory factory, mapping_options o = {}) {
  auto fn = [w, factory, o](benchmark::State& state) mutable {
    const auto records = detail::records_of(w);
    const std::uint64_t bytes = detail::bytes_of(*records);
    resource_usage used;
    double calls = 0, batches = 0, peak = 0;
    for (auto _ : state) {
      auto mapping = factory(*records);
      const resource_usage u0 = resource_usage::now();
      metrics_snapshot m;
      if (o.mode == runner::run) {
        m = sluice::run(std::move(mapping));
      } else {
        running_mapping running = o.workers > 0
                                      ? sluice::start(std::move(mapping), workers(o.workers))
                                      : sluice::start(std::move(mapping));
        while (!running.wait_until_caught_up(std::chrono::microseconds(100)))
          peak = std::max(peak, static_cast<double>(running.metrics().buffered_records));
        m = running.metrics();
        running.stop();
      }
      used += resource_usage::now() - u0;
      calls += static_cast<double>(m.total.invocations);
      batches += static_cast<double>(m.total.invocations - m.total.retries);
    }
    const auto iterations = static_cast<double>(state.iterations());
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(records->size()));
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
    state.counters["ns_per_record"] = detail::ns_per_record(state, records->size());
    state.counters["handler_calls"] = calls / iterations;
    state.counters["batches"] = batches / iterations;
    const double per_batch = batches > 0 ? 1.0 / batches : 0.0;
    state.counters["user_us_per_batch"] = used.user_s * 1e6 * per_batch;
    state.counters["sys_us_per_batch"] = used.system_s * 1e6 * per_batch;
    state.counters["context_switches_per_batch"] = used.context_switches * per_batch;
    if (o.mode == runner::start) state.counters["peak_buffered"] = peak;
  };
  auto* b = benchmark::RegisterBenchmark(name.c_str(), fn);
  b->Unit(o.unit)->UseRealTime();
  detail::registry::instance().full_names[name] = name + "/real_time";
  return b;
}

/// Registers the baseline: loop(records) is the user's own code over the same records.
/// Counters: items_per_second, bytes_per_second, ns_per_record.
template <class Loop>
benchmark::internal::Benchmark* register_baseline(
    const std::string& name, const workload& w, Loop loop,
    benchmark::TimeUnit unit = benchmark::kMillisecond) {
  auto fn = [w, loop](benchmark::State& state) mutable {
    const auto records = detail::records_of(w);
    const std::uint64_t bytes = detail::bytes_of(*records);
    for (auto _ : state) loop(*records);
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(records->size()));
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
    state.counters["ns_per_record"] = detail::ns_per_record(state, records->size());
  };
  auto* b = benchmark::RegisterBenchmark(name.c_str(), fn);
  b->Unit(unit)->UseRealTime();
  detail::registry::instance().full_names[name] = name + "/real_time";
  return b;
}

/// After the run, main() prints "ratio <label> = records/s of numerator / of denominator"
/// (entries by their registered names, or any benchmark's full name), against `target` if > 0.
inline void compare(std::string label, std::string numerator, std::string denominator,
                    double target = 0) {
  detail::registry::instance().comparisons.push_back(
      {std::move(label), std::move(numerator), std::move(denominator), target});
}

/// Runs every registered benchmark (the defaults of run_benchmarks) and prints the ratios.
/// Returns the process exit code.
inline int main(int argc, char** argv) {
  collecting_reporter reporter;
  if (!run_benchmarks(argc, argv, reporter)) return 1;
  const auto& r = detail::registry::instance();
  auto full = [&](const std::string& name) {
    auto it = r.full_names.find(name);
    return it == r.full_names.end() ? name : it->second;
  };
  if (!r.comparisons.empty()) std::printf("\n");
  for (const auto& c : r.comparisons) {
    print_ratio(c.label.c_str(), reporter.get(full(c.numerator)).rate(),
                reporter.get(full(c.denominator)).rate(), c.target);
  }
  print_load("after");
  return 0;
}

}  // namespace bench
SLUICE_END_NAMESPACE
