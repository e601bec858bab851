// examples/microbench.cpp: microbenchmark a mapping against your own loop in one binary, with
// sluice/bench.hpp (Google Benchmark; link sluice::bench).
//
// The workload: 1 M records (--records N), keys Zipf(1.1) over 10,000 keys, payloads of 50..500
// bytes. The mapping and the baseline compute the same thing: payload bytes per key, skipping
// payloads under 100 bytes. The mapping runs with sluice::run (batch 500) and with sluice::start
// (2 lanes); the report prints each one's records/s relative to the hand-written loop.
// Other flags go to Google Benchmark (e.g. --benchmark_out=bench.json
// --benchmark_out_format=json for scripts/bench-plots --bench).
#include <sluice/bench.hpp>
#include <sluice/sluice.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr std::size_t keys = 10'000;
using record = sluice::bench::record;

// One slot per key; under sluice::start a key stays in one lane, so one writer per slot.
std::array<std::atomic<std::uint64_t>, keys> by_key{};

auto count_bytes() {
  return sluice::invoke([](const sluice::batch<record>& b) {
    for (const record& r : b)
      by_key[r.key].store(by_key[r.key].load(std::memory_order_relaxed) + r.payload.bytes,
                          std::memory_order_relaxed);
  });
}
auto big_enough() {
  return sluice::filter([](const record& r) { return r.payload.bytes >= 100; });
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t records = 1'000'000;
  std::vector<char*> args;  // --records is ours; the rest goes to Google Benchmark
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--records") == 0 && i + 1 < argc) {
      records = std::stoul(argv[++i]);
    } else {
      args.push_back(argv[i]);
    }
  }

  sluice::workload w;
  w.records = records;
  w.keys = sluice::key_distribution::zipf(keys, 1.1);
  w.payload = sluice::payload_sizes::uniform(50, 500);

  sluice::bench::register_baseline("bytes_per_key/hand_loop", w, [](const std::vector<record>& rs) {
    for (const record& r : rs)
      if (r.payload.bytes >= 100)
        by_key[r.key].fetch_add(r.payload.bytes, std::memory_order_relaxed);
  });
  sluice::bench::register_mapping("bytes_per_key/sluice_run", w, [](const auto& rs) {
    return sluice::from(rs) | big_enough() | sluice::batching(sluice::batch_size(500)) |
           count_bytes();
  });
  sluice::bench::mapping_options threads;
  threads.mode = sluice::bench::runner::start;
  threads.workers = 2;
  sluice::bench::register_mapping(
      "bytes_per_key/sluice_start_P2", w,
      [](const auto& rs) {
        return sluice::from(rs) | big_enough() | sluice::batching(sluice::batch_size(500)) |
               sluice::parallelization_factor(2) | count_bytes();
      },
      threads);
  sluice::bench::compare("sluice::run / hand loop", "bytes_per_key/sluice_run",
                         "bytes_per_key/hand_loop");
  sluice::bench::compare("sluice::start P=2 / hand loop", "bytes_per_key/sluice_start_P2",
                         "bytes_per_key/hand_loop");
  return sluice::bench::main(static_cast<int>(args.size()), args.data());
}
