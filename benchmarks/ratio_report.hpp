// benchmarks/ratio_report.hpp: the custom main shared by sluice's benchmarks. Every benchmark
// binary measures sluice and its baseline in the same run; this collects the results through a
// reporter (the console output stays as usual) and, after all benchmarks ran, prints one line per
// comparison:  ratio <what> = <x>   (target ...: met / MISSED)
//
// The ratio is taken between medians over repetitions when repetitions are on (recommended:
// --benchmark_repetitions=5 --benchmark_report_aggregates_only=true), else between the single
// runs. Defaults for repetitions and interleaving are added when the command line gives none.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace sluice_bench {

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

  /// The median result of a benchmark (by its full name, e.g. "BM_hand_loop" or
  /// "BM_runtime/shards:4/P:1/batch:100/real_time").
  result get(const std::string& name) const {
    if (auto it = medians_.find(name); it != medians_.end()) return it->second;
    result r;
    auto it = samples_.find(name);
    if (it == samples_.end() || it->second.empty()) return r;
    std::vector<Run> v = it->second;
    auto mid = [](std::vector<double> xs) {
      std::sort(xs.begin(), xs.end());
      const std::size_t n = xs.size();
      return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
    };
    std::vector<double> rt, ct;
    std::map<std::string, std::vector<double>> cs;
    for (const Run& run : v) {
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

/// Prints /proc/loadavg: the machine is shared, and a ratio means more next to the load it ran in.
inline void print_load(const char* when) {
  std::ifstream f("/proc/loadavg");
  std::string line;
  std::getline(f, line);
  std::printf("load average %s: %s\n", when, line.c_str());
}

/// Runs the registered benchmarks. Flags the command line does not set come from `extra`, then
/// from the defaults every sluice benchmark shares: 5 repetitions, medians only, interleaved.
/// Returns false when the command line asked for something else (e.g. --help, a bad flag).
inline bool run_benchmarks(int argc, char** argv, collecting_reporter& reporter,
                           std::vector<std::string> extra = {}) {
  std::vector<std::string> defaults = std::move(extra);
  for (const char* d : {"--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true",
                        "--benchmark_enable_random_interleaving=true"})
    defaults.emplace_back(d);
  std::vector<std::string> args{argv[0]};
  for (const std::string& d : defaults) {
    const std::string flag = d.substr(0, d.find('='));
    bool given = false;
    for (int i = 1; i < argc; ++i) given |= std::strncmp(argv[i], flag.c_str(), flag.size()) == 0;
    if (!given) args.push_back(d);
  }
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  int n = static_cast<int>(cargs.size());
  std::printf("flags:");
  for (int i = 1; i < n; ++i) std::printf(" %s", cargs[i]);
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

}  // namespace sluice_bench
