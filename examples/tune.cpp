// examples/tune.cpp: choose a batch size and a parallelization factor before deployment, with
// sluice::simulate (docs/tuning.md explains the output).
//
// The scenario: one shard receives 20,000 records/s (1,024 keys, 1 M records by default). The
// downstream takes 20 ms + 50 us per record per call, plus an exponential 5 ms on average, and
// accepts at most 4 calls at once: a call made while 4 are in flight is throttled
// (sluice::throttled; the mapping backs off and tries again). The sweep runs the real engine in
// virtual time for 25 batch sizes x P = 1, 2, 4, 10 (100 configurations), prints throughput and
// p99 latency (arrival -> success) per batch size, a recommendation, and writes a gnuplot plot;
// then two small sweeps around the recommendation: the batching window, and the failure policies
// (retries x bisect x partial batch responses) with 0.01 % poison records.
//
// Usage: tune [--records N] [--out DIR] [--threads T]
//   writes DIR/tune.dat, DIR/tune.gp and, when gnuplot is installed, DIR/tune.svg (DIR: .)
#include <sluice/simulate.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  std::size_t records = 1'000'000;
  std::string out = ".";
  unsigned threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--records")
      records = std::stoul(argv[i + 1]);
    else if (flag == "--out")
      out = argv[i + 1];
    else if (flag == "--threads")
      threads = static_cast<unsigned>(std::stoul(argv[i + 1]));
  }

  std::filesystem::create_directories(out);
  const double rate = 20'000;
  sluice::workload w;
  w.records = records;
  w.keys = sluice::key_distribution::uniform(1024);
  w.arrival = sluice::arrival_pattern::rate(rate);

  sluice::downstream_model downstream;
  downstream.fixed_latency = 20ms;
  downstream.per_record_latency = 50us;
  downstream.jitter_kind = sluice::downstream_model::jitter_shape::exponential;
  downstream.jitter = 5ms;
  downstream.max_concurrent_calls = 4;

  sluice::tuning_grid grid;
  grid.batch_sizes = {1,   2,   5,   10,  20,   30,   50,   75,   100,  150,  200,  300,  400,
                      500, 600, 750, 900, 1000, 1250, 1500, 2000, 3000, 4000, 5000, 10000};
  grid.parallelization_factors = {1, 2, 4, 10};
  const std::vector<sluice::tuning> points = grid.points();

  sluice::simulation_options options;
  options.threads = threads;
  const auto started = std::chrono::steady_clock::now();
  const std::vector<sluice::simulation_result> results =
      sluice::sweep(w, downstream, points, options);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  const std::size_t sizes = grid.batch_sizes.size();
  const std::size_t factors = grid.parallelization_factors.size();
  auto at = [&](std::size_t f, std::size_t b) -> const sluice::simulation_result& {
    return results[f * sizes + b];  // points() varies the batch size fastest after P
  };
  auto ms = [](sluice::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };

  std::printf(
      "%zu records arriving at %.0f/s; downstream 20 ms + 50 us/record + exp(5 ms), "
      "throttles above 4 concurrent calls\n",
      records, rate);
  std::printf("%zu configurations simulated in %.1f s (%u thread%s)\n\n", points.size(), took,
              threads, threads == 1 ? "" : "s");
  std::printf("%6s", "batch");
  for (std::uint32_t p : grid.parallelization_factors)
    std::printf(" | P=%-2u %9s %9s %7s", p, "rec/s", "p99 ms", "thrott");
  std::printf("\n");
  for (std::size_t b = 0; b < sizes; ++b) {
    std::printf("%6u", grid.batch_sizes[b]);
    for (std::size_t f = 0; f < factors; ++f) {
      const auto& r = at(f, b);
      std::printf(" |      %9.0f %9.1f %7llu", r.throughput, ms(r.latency_p99),
                  static_cast<unsigned long long>(r.throttles));
    }
    std::printf("\n");
  }

  // A recommendation: among configurations that keep up with the arrivals (throughput within
  // 1 % of the rate) and are never throttled, the lowest p99; ties go to fewer lanes.
  const sluice::simulation_result* best = nullptr;
  for (const auto& r : results) {
    if (r.unfinished > 0 || r.throttles > 0 || r.throughput < 0.99 * rate) continue;
    if (best == nullptr || r.latency_p99 < best->latency_p99) best = &r;
  }
  std::printf("\n");
  for (std::size_t f = 0; f < factors; ++f) {
    const sluice::simulation_result* lowest = &at(f, 0);
    for (std::size_t b = 1; b < sizes; ++b)
      if (at(f, b).latency_p99 < lowest->latency_p99) lowest = &at(f, b);
    std::printf(
        "P=%-2u lowest p99: batch %5u, %8.0f records/s, p99 %8.1f ms, %llu throttles, "
        "%.1f records per call\n",
        grid.parallelization_factors[f], lowest->point.batch_size, lowest->throughput,
        ms(lowest->latency_p99), static_cast<unsigned long long>(lowest->throttles),
        lowest->mean_batch);
  }
  if (best != nullptr) {
    std::printf(
        "recommended: P=%u, batch_size %u (p99 %.1f ms, %.1f records per call, no "
        "throttles)\n",
        best->point.parallelization_factor, best->point.batch_size, ms(best->latency_p99),
        best->mean_batch);
  } else {
    std::printf("recommended: none keeps up with %.0f records/s without throttles\n", rate);
  }

  // Two smaller sweeps at the recommended point's neighbourhood (P=4, batch 400): the batching
  // window, and the failure policies when 0.01 % of the records are poison.
  {
    sluice::tuning_grid windows;
    windows.base.parallelization_factor = 4;
    windows.base.batch_size = 400;
    windows.windows = {0ms, 10ms, 50ms, 200ms};
    std::printf("\nbatching window (P=4, batch 400):\n");
    sluice::print_table(std::cout, sluice::sweep(w, downstream, windows.points(), options));

    sluice::workload poisoned = w;
    poisoned.poison_rate = 0.0001;
    sluice::tuning_grid policies;
    policies.base = windows.base;
    policies.base.backoff = sluice::backoff::exponential(100ms, 2.0, 5s);
    policies.retries = {0, 2, 10};
    policies.bisect = {false, true};
    policies.report_batch_item_failures = {false, true};
    std::printf("\nfailure policies, 0.01 %% poison records (P=4, batch 400):\n");
    std::cout.flush();
    sluice::print_table(std::cout, sluice::sweep(poisoned, downstream, policies.points(), options));
    std::cout.flush();
  }

  // The plot: throughput and p99 against batch size, one line per P.
  {
    std::ofstream dat(out + "/tune.dat");
    dat << "# batch";
    for (std::uint32_t p : grid.parallelization_factors) dat << " rate_P" << p << " p99ms_P" << p;
    dat << "\n";
    for (std::size_t b = 0; b < sizes; ++b) {
      dat << grid.batch_sizes[b];
      for (std::size_t f = 0; f < factors; ++f)
        dat << ' ' << at(f, b).throughput << ' ' << ms(at(f, b).latency_p99);
      dat << "\n";
    }
    std::ofstream gp(out + "/tune.gp");
    gp << "set terminal svg size 900,420 dynamic font 'sans,12' noenhanced\n"
          "set output '"
       << out
       << "/tune.svg'\n"
          "set multiplot layout 1,2\n"
          "set grid\nset logscale x\nset xlabel 'batch size'\nset key bottom right\n"
          "set title 'Throughput (records/s)'\nset yrange [0:*]\n"
          "plot for [i=0:3] '"
       << out
       << "/tune.dat' using 1:(column(2+2*i)) with linespoints lw 2 "
          "title sprintf('P=%s', word('1 2 4 10', i+1))\n"
          "set title 'p99 latency, arrival to success (ms)'\nset logscale y\nset yrange [*:*]\n"
          "set key top right\n"
          "plot for [i=0:3] '"
       << out
       << "/tune.dat' using 1:(column(3+2*i)) with linespoints lw 2 "
          "title sprintf('P=%s', word('1 2 4 10', i+1))\n"
          "unset multiplot\n";
  }
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    const std::string command = "gnuplot '" + out + "/tune.gp'";
    if (std::system(command.c_str()) == 0) {
      std::printf("wrote %s/tune.svg\n", out.c_str());
      return 0;
    }
    std::fprintf(stderr, "tune: gnuplot failed on %s/tune.gp\n", out.c_str());
    return 1;
  }
  std::printf("wrote %s/tune.dat and %s/tune.gp (install gnuplot to draw tune.svg)\n", out.c_str(),
              out.c_str());
  return 0;
}
