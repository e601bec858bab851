// benchmarks/fusion_bench.cpp (issue 2): does a composed mapping run as fast as the loop a
// programmer would write by hand?
//
// Workload: 4 Mi records {key 0..1023 (uint32), sequence 1..N, amount -1000..1000 (int64, from a
// fixed-seed PRNG)} in a std::vector<sluice::record<std::int64_t, std::uint32_t>>. Keep amount > 0,
// double it, sum per key into 1024 sums.
//   sluice:    sluice::run(sluice::from(v) | filter | transform | [batching] | invoke(sum per key))
//              with a batch handler, and with a per-record sink (invoke of a function of one
//              record: no batch is materialized)
//   baseline:  for (r : v) if (r.payload > 0) sums[r.key] += 2 * r.payload;
// Both compute the same sums (checked; the binary aborts on a mismatch).
// Targets (issue 8): per-record sink >= 0.95 x the hand loop's records/s, batch handler >= 0.85.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "sluice/bench.hpp"
#include "sluice/sluice.hpp"
#include "workload.hpp"

namespace {

using R = bench::order;
using sums_t = std::array<std::int64_t, 1024>;

constexpr std::size_t kRecords = std::size_t{4} << 20;

const std::vector<R>& workload() {
  static const std::vector<R> v = bench::make_orders(kRecords);
  return v;
}

const sums_t& expected() {
  static const sums_t e = [] {
    sums_t s{};
    for (const R& r : workload())
      if (r.payload > 0) s[r.key] += 2 * r.payload;
    return s;
  }();
  return e;
}

void check(const sums_t& got, const char* who) {
  if (got != expected()) {
    std::fprintf(stderr, "fusion_bench: %s computed different sums than the reference\n", who);
    std::abort();
  }
}

// ---- baseline ----------------------------------------------------------------------------------

__attribute__((noinline)) void hand_loop(const std::vector<R>& v, sums_t& sums) {
  for (const R& r : v) {
    if (r.payload > 0) sums[r.key] += 2 * r.payload;
  }
}

void BM_hand_loop(benchmark::State& state) {
  const auto& v = workload();
  sums_t sums{};
  for (auto _ : state) {
    sums.fill(0);
    hand_loop(v, sums);
    benchmark::DoNotOptimize(sums);
  }
  check(sums, "hand loop");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * v.size()));
}

// A second, informational baseline: the same work by hand, but with records gathered into a
// 100-record buffer handed to the summing loop (what any batching design must do at least).
__attribute__((noinline)) void hand_batched(const std::vector<R>& v, sums_t& sums,
                                            std::size_t batch) {
  std::vector<R> buf(batch);
  std::size_t n = 0;
  auto flush = [&] {
    for (std::size_t i = 0; i < n; ++i) sums[buf[i].key] += buf[i].payload;
    n = 0;
  };
  for (const R& r : v) {
    if (r.payload > 0) {
      buf[n++] = R{r.key, r.sequence, r.arrival, 2 * r.payload};
      if (n == batch) flush();
    }
  }
  flush();
}

void BM_hand_batched(benchmark::State& state) {
  const auto& v = workload();
  sums_t sums{};
  for (auto _ : state) {
    sums.fill(0);
    hand_batched(v, sums, 100);
    benchmark::DoNotOptimize(sums);
  }
  check(sums, "hand-batched loop");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * v.size()));
}

// ---- sluice ------------------------------------------------------------------------------------

auto keep_positive() {
  return sluice::filter([](std::int64_t amount) { return amount > 0; });
}
auto doubled() {
  return sluice::transform([](std::int64_t amount) { return amount * 2; });
}
auto sum_per_key(sums_t& sums) {
  return sluice::invoke([&sums](const sluice::batch<R>& b) {
    for (const R& r : b) sums[r.key] += r.payload;
  });
}

void BM_sluice_default_batching(benchmark::State& state) {
  const auto& v = workload();
  sums_t sums{};
  for (auto _ : state) {
    sums.fill(0);
    sluice::run(sluice::from(v) | keep_positive() | doubled() | sum_per_key(sums));
    benchmark::DoNotOptimize(sums);
  }
  check(sums, "sluice (default batching)");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * v.size()));
}

void BM_sluice_batch_size(benchmark::State& state) {
  const auto& v = workload();
  const auto n = state.range(0);
  sums_t sums{};
  for (auto _ : state) {
    sums.fill(0);
    sluice::run(sluice::from(v) | keep_positive() | doubled() |
                sluice::batching(sluice::batch_size(n)) | sum_per_key(sums));
    benchmark::DoNotOptimize(sums);
  }
  check(sums, "sluice (batch_size)");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * v.size()));
}

void BM_sluice_per_record_sink(benchmark::State& state) {
  const auto& v = workload();
  sums_t sums{};
  for (auto _ : state) {
    sums.fill(0);
    sluice::run(sluice::from(v) | keep_positive() | doubled() |
                sluice::invoke([&sums](const R& r) { sums[r.key] += r.payload; }));
    benchmark::DoNotOptimize(sums);
  }
  check(sums, "sluice (per-record sink)");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * v.size()));
}

BENCHMARK(BM_hand_loop)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sluice_per_record_sink)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_hand_batched)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sluice_default_batching)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sluice_batch_size)
    ->ArgName("batch")
    ->Arg(1000)
    ->Arg(10000)
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  (void)workload();
  (void)expected();
  sluice::bench::collecting_reporter reporter;
  if (!sluice::bench::run_benchmarks(argc, argv, reporter)) return 1;
  const double hand = reporter.get("BM_hand_loop").rate();
  std::printf("\n== fusion: %zu records, records/s are medians ==\n", kRecords);
  std::printf("hand loop                      %8.1f M records/s\n", hand / 1e6);
  const struct {
    const char* label;
    const char* name;
    double target;
  } rows[] = {{"sluice/hand_loop (per-record sink)", "BM_sluice_per_record_sink", 0.95},
              {"sluice/hand_loop (default batching)", "BM_sluice_default_batching", 0.85},
              {"sluice/hand_loop (batch_size 1000)", "BM_sluice_batch_size/batch:1000", 0.85},
              {"sluice/hand_loop (batch_size 10000)", "BM_sluice_batch_size/batch:10000", 0.85}};
  for (const auto& row : rows) {
    const double s = reporter.get(row.name).rate();
    std::printf("%-34s %8.1f M records/s\n", row.name, s / 1e6);
  }
  const double batched = reporter.get("BM_hand_batched").rate();
  std::printf("%-34s %8.1f M records/s  (informational: hand loop + 100-record buffer)\n",
              "BM_hand_batched", batched / 1e6);
  for (const auto& row : rows) {
    sluice::bench::print_ratio(row.label, reporter.get(row.name).rate(), hand, row.target);
  }
  sluice::bench::print_ratio("hand_batched/hand_loop (no target)", batched, hand);
  sluice::bench::print_ratio("sluice/hand_batched (default batching)",
                             reporter.get("BM_sluice_default_batching").rate(), batched);
  sluice::bench::print_load("after");
  return 0;
}
