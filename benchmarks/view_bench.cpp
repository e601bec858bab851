// benchmarks/view_bench.cpp (issue 8): what a batch costs when it is a view of the source's
// storage instead of a copy.
//
// Workload: 1 Mi records with a 64-byte std::string payload (on the heap) in a one-shard
// sluice::memory_stream, put before timing. Timed, each iteration from the start of the shard:
//   sluice      sluice::run(from(stream) | batching(batch_size(100)) | invoke(sum of payload
//               sizes)): no filter or transform, so full batches are views of the stream
//   floor       a hand loop over the stream's records in place (read_spans), 100 at a time
//   copying     the same loop copying each group of 100 records into a std::vector first (what
//               a batch cost before batches could be views)
// All three compute the same sum (checked; the binary aborts on a mismatch).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sluice/bench.hpp"
#include "sluice/sluice.hpp"

namespace {

using stream_t = sluice::memory_stream<std::string>;
using R = stream_t::record_type;
constexpr std::size_t kRecords = std::size_t{1} << 20;
constexpr std::size_t kBatch = 100;

stream_t& stream() {
  static stream_t* s = [] {
    auto* p = new stream_t(1);
    for (std::size_t i = 0; i < kRecords; ++i)
      p->put("k", std::string(56, 'x') + std::to_string(10'000'000 + i % 1000));
    return p;
  }();
  return *s;
}

std::uint64_t expected() {
  static const std::uint64_t e = [] {
    std::uint64_t sum = 0;
    stream().read(0, 0, kRecords, [&](const R& r) {
      sum += r.payload.size();
      return true;
    });
    return sum;
  }();
  return e;
}

void check(std::uint64_t got, const char* who) {
  if (got != expected()) {
    std::fprintf(stderr, "view_bench: %s computed %llu, expected %llu\n", who,
                 static_cast<unsigned long long>(got), static_cast<unsigned long long>(expected()));
    std::abort();
  }
}

void BM_floor(benchmark::State& state) {
  for (auto _ : state) {
    std::uint64_t sum = 0;
    std::size_t seen = 0;
    while (seen < kRecords) {
      seen += stream().read_spans(0, seen, kBatch, [&](const R* first, const R* last) {
        for (const R* p = first; p != last; ++p) sum += p->payload.size();
        return static_cast<std::size_t>(last - first);
      });
    }
    check(sum, "floor");
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kRecords));
}

void BM_copying(benchmark::State& state) {
  std::vector<R> buffer;
  buffer.reserve(kBatch);
  for (auto _ : state) {
    std::uint64_t sum = 0;
    std::size_t seen = 0;
    while (seen < kRecords) {
      buffer.clear();
      seen += stream().read_spans(0, seen, kBatch, [&](const R* first, const R* last) {
        buffer.insert(buffer.end(), first, last);
        return static_cast<std::size_t>(last - first);
      });
      for (const R& r : buffer) sum += r.payload.size();
    }
    check(sum, "copying");
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kRecords));
}

void BM_sluice(benchmark::State& state) {
  for (auto _ : state) {
    std::uint64_t sum = 0;
    sluice::run(sluice::from(stream()) | sluice::batching(sluice::batch_size(kBatch)) |
                sluice::invoke([&](const sluice::batch<R>& b) {
                  for (const R& r : b) sum += r.payload.size();
                }));
    check(sum, "sluice");
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kRecords));
}

BENCHMARK(BM_floor)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_copying)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sluice)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  (void)expected();
  sluice::bench::collecting_reporter reporter;
  if (!sluice::bench::run_benchmarks(argc, argv, reporter)) return 1;
  const double floor = reporter.get("BM_floor").rate();
  const double copying = reporter.get("BM_copying").rate();
  const double sluice = reporter.get("BM_sluice").rate();
  std::printf("\n== view batches: %zu records of 64-byte strings, batch %zu ==\n", kRecords,
              kBatch);
  std::printf("floor (in place)   %8.1f M records/s\n", floor / 1e6);
  std::printf("copying loop       %8.1f M records/s\n", copying / 1e6);
  std::printf("sluice             %8.1f M records/s\n", sluice / 1e6);
  sluice::bench::print_ratio("sluice/floor (view batches, no target)", sluice, floor);
  sluice::bench::print_ratio("sluice/copying loop", sluice, copying);
  sluice::bench::print_ratio("copying loop/floor (no target)", copying, floor);
  sluice::bench::print_load("after");
  return 0;
}
