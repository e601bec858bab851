// benchmarks/runtime_bench.cpp (issue 3): sluice::start on threads against two hand-built
// pipelines over the same records, plus latency and idle cost.
//
// Workload (as fusion_bench): records {key 0..1023 (uint32), amount -1000..1000 (int64, fixed-seed
// PRNG)}; keep amount > 0, double it, sum per key. Every run's sums are checked (abort on
// mismatch).
//
//  sluice      the records are put into a sluice::memory_stream<int64_t, uint32_t> with S shards
//              before timing; timed: sluice::start(from(stream) | filter | transform |
//              batching(batch_size(B)) | parallelization_factor(P) | invoke(sum), workers(2))
//              -> wait_until_caught_up() -> stop(). The handler adds into one cache-line-padded
//              slot per key with a relaxed load + store: a key lives in exactly one lane and a
//              lane has one batch in flight (S-3.2), so no read-modify-write is needed.
//  tbb         oneTBB parallel_pipeline over the vector: serial_in_order reader of 256-record
//              chunks -> parallel filter/transform/sum (thread-local sums) -> serial_in_order
//              writer (advances an in-order "checkpoint", like sluice's).
//  floor       one producer thread (filter/transform into 256-input-record batches from a ring)
//              -> one moodycamel::ConcurrentQueue of batch pointers -> one consumer thread (sum).
//              Spinning, no sleeping, no ordering/checkpoint/failure machinery: the floor.
// Targets at batch_size 100, P=1: sluice >= 1.0x tbb and >= 0.8x floor. Each sluice row also
// reports handler calls, process user/kernel CPU and voluntary context switches per batch.
//
// After the throughput matrix (Google Benchmark), main() runs two measurements:
//  latency     a producer thread puts 10,000 records/s (payload = steady_clock ns at put) into a
//              1-shard stream, window 0; the handler records now - payload. p50/p99/max.
//              Baseline: the same producer and rate into a moodycamel::BlockingConcurrentQueue
//              with a blocking consumer. Target: sluice p99 <= 100 us.
//  idle        CPU time (getrusage RUSAGE_SELF, user + sys) of the process over 2 s while a
//              started mapping has nothing to do. Target < 1 % of one core.
// Flags of our own: --skip_latency, --skip_idle.
#include <benchmark/benchmark.h>
#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/concurrentqueue.h>
#include <sys/resource.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_pipeline.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "sluice/bench.hpp"
#include "sluice/sluice.hpp"
#include "workload.hpp"

namespace {

using namespace std::chrono_literals;
using R = bench::order;
using stream_t = sluice::memory_stream<std::int64_t, std::uint32_t>;
using sums_t = std::array<std::int64_t, 1024>;

constexpr std::size_t kLarge = std::size_t{10} << 20;   // records for batch_size 100 and 1000
constexpr std::size_t kSmall = std::size_t{256} << 10;  // records for batch_size 10 (slow)

const std::vector<R>& workload() {
  static const std::vector<R> v = bench::make_orders(kLarge);
  return v;
}

const sums_t& expected(std::size_t n) {
  static std::map<std::size_t, sums_t> cache;
  auto it = cache.find(n);
  if (it == cache.end()) {
    sums_t s{};
    for (std::size_t i = 0; i < n; ++i) {
      const R& r = workload()[i];
      if (r.payload > 0) s[r.key] += 2 * r.payload;
    }
    it = cache.emplace(n, s).first;
  }
  return it->second;
}

void check(const sums_t& got, std::size_t n, const char* who) {
  if (got != expected(n)) {
    std::fprintf(stderr, "runtime_bench: %s computed different sums than the reference\n", who);
    std::abort();
  }
}

/// Streams holding the first n records of the workload, by shard count (built once, untimed).
stream_t& stream_for(std::uint32_t shards, std::size_t n) {
  static std::map<std::pair<std::uint32_t, std::size_t>, std::unique_ptr<stream_t>> streams;
  auto& slot = streams[{shards, n}];
  if (!slot) {
    slot = std::make_unique<stream_t>(shards);
    const auto& v = workload();
    for (std::size_t i = 0; i < n; ++i) slot->put(v[i].key, v[i].payload);
  }
  return *slot;
}

/// Per-key sums written by sluice's workers: one cache line per key (no false sharing between
/// lanes running on different workers).
struct alignas(64) padded_sum {
  std::atomic<std::int64_t> v{0};
};
struct lane_sums {
  std::array<padded_sum, 1024> slot;
  void reset() {
    for (auto& s : slot) s.v.store(0, std::memory_order_relaxed);
  }
  sums_t get() const {
    sums_t out{};
    for (std::size_t k = 0; k < out.size(); ++k) out[k] = slot[k].v.load(std::memory_order_relaxed);
    return out;
  }
};

double seconds(const timeval& t) {
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
}

// ---- sluice ------------------------------------------------------------------------------------

sluice::execution_mode mode_of(std::int64_t m) {
  return m == 1   ? sluice::execution_mode::inline_only
         : m == 2 ? sluice::execution_mode::handoff
                  : sluice::execution_mode::adaptive;
}
const char* mode_name(std::int64_t m) {
  return m == 1 ? "inline" : m == 2 ? "handoff" : "adaptive";
}

void BM_sluice(benchmark::State& state) {
  const auto shards = static_cast<std::uint32_t>(state.range(0));
  const auto p = state.range(1);
  const auto batch = state.range(2);
  const auto mode = mode_of(state.range(3));
  const std::size_t n = batch < 100 ? kSmall : kLarge;
  stream_t& stream = stream_for(shards, n);
  auto sums = std::make_unique<lane_sums>();
  double batches = 0, user_s = 0, sys_s = 0, vcsw = 0;
  for (auto _ : state) {
    sums->reset();
    lane_sums* out = sums.get();
    rusage u0{};
    getrusage(RUSAGE_SELF, &u0);
    const auto t0 = std::chrono::steady_clock::now();
    auto running = sluice::start(
        sluice::from(stream) | sluice::filter([](std::int64_t a) { return a > 0; }) |
            sluice::transform([](std::int64_t a) { return a * 2; }) |
            sluice::batching(sluice::batch_size(batch)) | sluice::parallelization_factor(p) |
            sluice::invoke([out](const sluice::batch<R>& b) {
              for (const R& r : b) {
                auto& s = out->slot[r.key].v;
                s.store(s.load(std::memory_order_relaxed) + r.payload, std::memory_order_relaxed);
              }
            }),
        sluice::execution(mode));
    running.wait_until_caught_up();
    batches += static_cast<double>(running.metrics().total.invocations);
    running.stop();
    const auto t1 = std::chrono::steady_clock::now();
    rusage u1{};
    getrusage(RUSAGE_SELF, &u1);
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    user_s += seconds(u1.ru_utime) - seconds(u0.ru_utime);
    sys_s += seconds(u1.ru_stime) - seconds(u0.ru_stime);
    vcsw += static_cast<double>(u1.ru_nvcsw - u0.ru_nvcsw);
    check(sums->get(), n, "sluice");
  }
  // Where the time goes: handler calls, CPU split (user/kernel) and voluntary context switches
  // (a thread going to sleep) per batch, for the whole process during start..stop.
  const double it = static_cast<double>(state.iterations());
  state.counters["batches"] = batches / it;
  state.counters["user_ms"] = user_s / it * 1e3;
  state.counters["sys_ms"] = sys_s / it * 1e3;
  state.counters["csw_per_batch"] = batches > 0 ? vcsw / batches : 0;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// ---- baseline (a): oneTBB parallel_pipeline
// ------------------------------------------------------

void BM_tbb_pipeline(benchmark::State& state) {
  const auto& v = workload();
  const auto kChunk = static_cast<std::size_t>(state.range(0));
  const std::size_t n = kChunk < 100 ? kSmall : kLarge;
  struct chunk {
    const R* first = nullptr;
    const R* last = nullptr;
  };
  for (auto _ : state) {
    tbb::enumerable_thread_specific<sums_t> local([] { return sums_t{}; });
    std::size_t pos = 0;
    std::uint64_t checkpoint = 0;
    const auto t0 = std::chrono::steady_clock::now();
    tbb::parallel_pipeline(
        8, tbb::make_filter<void, chunk>(tbb::filter_mode::serial_in_order,
                                         [&](tbb::flow_control& fc) -> chunk {
                                           if (pos >= n) {
                                             fc.stop();
                                             return {};
                                           }
                                           const std::size_t end = std::min(n, pos + kChunk);
                                           chunk c{v.data() + pos, v.data() + end};
                                           pos = end;
                                           return c;
                                         }) &
               tbb::make_filter<chunk, chunk>(tbb::filter_mode::parallel,
                                              [&](chunk c) {
                                                sums_t& s = local.local();
                                                for (const R* r = c.first; r != c.last; ++r) {
                                                  if (r->payload > 0) s[r->key] += 2 * r->payload;
                                                }
                                                return c;
                                              }) &
               tbb::make_filter<chunk, void>(tbb::filter_mode::serial_in_order, [&](chunk c) {
                 checkpoint = (c.last - 1)->sequence;
               }));
    sums_t total{};
    for (const sums_t& s : local)
      for (std::size_t k = 0; k < total.size(); ++k) total[k] += s[k];
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    check(total, n, "tbb pipeline");
    if (checkpoint != n) std::abort();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// ---- baseline (b): producer thread -> moodycamel queue of batches -> consumer thread ------------

void BM_floor_queue(benchmark::State& state) {
  const auto& v = workload();
  const auto kChunk = static_cast<std::size_t>(state.range(0));
  const std::size_t n = kChunk < 100 ? kSmall : kLarge;
  struct fbatch {
    std::vector<R> recs;
    std::uint32_t n = 0;
  };
  constexpr std::size_t kRing = 64;  // batches in flight at most (bounded memory, like sluice)
  auto ring = std::make_unique<std::array<fbatch, kRing>>();
  for (auto& b : *ring) b.recs.resize(kChunk);
  for (auto _ : state) {
    moodycamel::ConcurrentQueue<fbatch*> q(kRing * 2);
    std::atomic<std::uint64_t> consumed{0};
    sums_t sums{};
    const auto t0 = std::chrono::steady_clock::now();
    std::thread producer([&] {
      moodycamel::ProducerToken tok(q);
      std::uint64_t produced = 0;
      for (std::size_t pos = 0; pos < n; pos += kChunk) {
        while (produced - consumed.load(std::memory_order_acquire) >= kRing)
          std::this_thread::yield();
        fbatch& b = (*ring)[produced % kRing];
        b.n = 0;
        const std::size_t end = std::min(n, pos + kChunk);
        for (std::size_t i = pos; i < end; ++i) {
          const R& r = v[i];
          if (r.payload > 0) b.recs[b.n++] = R{r.key, r.sequence, r.arrival, 2 * r.payload};
        }
        q.enqueue(tok, &b);
        ++produced;
      }
      q.enqueue(tok, nullptr);  // end
    });
    std::thread consumer([&] {
      moodycamel::ConsumerToken tok(q);
      fbatch* items[8];
      int idle = 0;
      for (;;) {
        const std::size_t k = q.try_dequeue_bulk(tok, items, 8);
        if (k == 0) {
          if (++idle > 64) std::this_thread::yield();
          continue;
        }
        idle = 0;
        for (std::size_t i = 0; i < k; ++i) {
          if (items[i] == nullptr) return;
          const fbatch& b = *items[i];
          for (std::uint32_t j = 0; j < b.n; ++j) sums[b.recs[j].key] += b.recs[j].payload;
          consumed.fetch_add(1, std::memory_order_release);
        }
      }
    });
    producer.join();
    consumer.join();
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    check(sums, n, "floor queue");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// Baselines at the hand-off units sluice's batch sizes correspond to (and 256, TBB's sweet spot).
void baseline_chunks(benchmark::internal::Benchmark* b) {
  b->ArgName("chunk")->Arg(10)->Arg(100)->Arg(256)->Arg(1000);
  b->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(2);
}
BENCHMARK(BM_tbb_pipeline)->Apply(baseline_chunks);
BENCHMARK(BM_floor_queue)->Apply(baseline_chunks);
// mode: 0 adaptive (the default), 1 inline_only, 2 handoff. Default thread counts.
BENCHMARK(BM_sluice)
    ->ArgNames({"shards", "P", "batch", "mode"})
    ->ArgsProduct({{1, 4, 16, 64}, {1, 4, 10}, {100}, {0}})  // scaling sweep
    ->ArgsProduct({{1, 16}, {1}, {10, 1000}, {0}})           // batch sizes
    ->ArgsProduct({{1, 16}, {1, 4}, {100}, {1, 2}})          // forced execution modes
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

// ---- a slow handler: ~1 us of work per record ---------------------------------------------------

constexpr std::size_t kSlow = 100'000;

/// About 1 us of CPU work, that the optimizer cannot remove.
__attribute__((noinline)) std::uint64_t work_1us(std::uint64_t x) {
  static const std::uint64_t rounds = [] {  // calibrated once
    std::uint64_t n = 1 << 16, y = 1;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < n; ++i) y = y * 6364136223846793005ull + 1442695040888963407ull;
    benchmark::DoNotOptimize(y);
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    return static_cast<std::uint64_t>(static_cast<double>(n) * 1000.0 / std::max(ns, 1.0));
  }();
  for (std::uint64_t i = 0; i < rounds; ++i)
    x = x * 6364136223846793005ull + 1442695040888963407ull;
  return x;
}

void BM_sluice_slow(benchmark::State& state) {
  const auto p = state.range(0);
  const auto mode = mode_of(state.range(1));
  stream_t& stream = stream_for(1, kSlow);
  for (auto _ : state) {
    std::atomic<std::uint64_t> sink{0};
    const auto t0 = std::chrono::steady_clock::now();
    auto running = sluice::start(sluice::from(stream) | sluice::batching(sluice::batch_size(100)) |
                                     sluice::parallelization_factor(p) |
                                     sluice::invoke([&](const sluice::batch<R>& b) {
                                       std::uint64_t x = 0;
                                       for (const R& r : b)
                                         x += work_1us(static_cast<std::uint64_t>(r.payload));
                                       sink.fetch_add(x, std::memory_order_relaxed);
                                     }),
                                 sluice::execution(mode));
    running.wait_until_caught_up();
    running.stop();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    benchmark::DoNotOptimize(sink.load());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kSlow));
}

void BM_tbb_slow(benchmark::State& state) {
  const auto& v = workload();
  for (auto _ : state) {
    std::atomic<std::uint64_t> sink{0};
    std::size_t pos = 0;
    const auto t0 = std::chrono::steady_clock::now();
    tbb::parallel_pipeline(
        8, tbb::make_filter<void, std::size_t>(tbb::filter_mode::serial_in_order,
                                               [&](tbb::flow_control& fc) -> std::size_t {
                                                 if (pos >= kSlow) {
                                                   fc.stop();
                                                   return 0;
                                                 }
                                                 const std::size_t at = pos;
                                                 pos += 100;
                                                 return at;
                                               }) &
               tbb::make_filter<std::size_t, void>(tbb::filter_mode::parallel, [&](std::size_t at) {
                 std::uint64_t x = 0;
                 for (std::size_t i = at; i < std::min(kSlow, at + 100); ++i)
                   x += work_1us(static_cast<std::uint64_t>(v[i].payload));
                 sink.fetch_add(x, std::memory_order_relaxed);
               }));
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    benchmark::DoNotOptimize(sink.load());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kSlow));
}

BENCHMARK(BM_sluice_slow)
    ->ArgNames({"P", "mode"})
    ->ArgsProduct({{1, 4}, {0, 1, 2}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_tbb_slow)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(1);

// ---- (c) latency
// ---------------------------------------------------------------------------------

struct latency_result {
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  std::size_t samples = 0;
};

latency_result summarize(std::vector<std::int64_t> ns) {
  latency_result r;
  if (ns.empty()) return r;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    return static_cast<double>(
               ns[std::min(ns.size() - 1, static_cast<std::size_t>(q * ns.size()))]) /
           1e3;
  };
  r.p50_us = at(0.50);
  r.p99_us = at(0.99);
  r.p999_us = at(0.999);
  r.max_us = static_cast<double>(ns.back()) / 1e3;
  r.samples = ns.size();
  return r;
}

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Calls put(i) at `rate` per second for `count` records, on the calling thread, on schedule
/// (sleeping between puts; a late put goes out at once).
template <class Put>
void paced(std::size_t count, double rate, Put&& put) {
  const auto start = std::chrono::steady_clock::now();
  const auto interval = std::chrono::duration<double>(1.0 / rate);
  for (std::size_t i = 0; i < count; ++i) {
    const auto due =
        start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval * i);
    std::this_thread::sleep_until(due);
    put(i);
  }
}

latency_result sluice_latency(std::size_t count, double rate) {
  stream_t stream(1);
  std::vector<std::int64_t> ns(count);
  std::atomic<std::size_t> seen{0};
  auto running = sluice::start(
      sluice::from(stream, sluice::starting_position::latest) |
      sluice::batching(sluice::batch_size(100), sluice::maximum_batching_window(0ms)) |
      sluice::invoke([&](const sluice::batch<R>& b) {
        const std::int64_t now = steady_ns();
        for (const R& r : b) {
          const std::size_t i = seen.fetch_add(1, std::memory_order_relaxed);
          if (i < ns.size()) ns[i] = now - r.payload;
        }
      }));
  paced(count, rate,
        [&](std::size_t i) { stream.put(static_cast<std::uint32_t>(i & 1023u), steady_ns()); });
  running.wait_until_caught_up();
  running.stop();
  ns.resize(std::min(ns.size(), seen.load()));
  return summarize(std::move(ns));
}

latency_result floor_latency(std::size_t count, double rate) {
  moodycamel::BlockingConcurrentQueue<std::int64_t> q(1024);
  std::vector<std::int64_t> ns;
  ns.reserve(count);
  std::thread consumer([&] {
    moodycamel::ConsumerToken tok(q);
    for (std::size_t i = 0; i < count; ++i) {
      std::int64_t put_at = 0;
      q.wait_dequeue(tok, put_at);
      ns.push_back(steady_ns() - put_at);
    }
  });
  moodycamel::ProducerToken tok(q);
  paced(count, rate, [&](std::size_t) { q.enqueue(tok, steady_ns()); });
  consumer.join();
  return summarize(std::move(ns));
}

// ---- (d) idle CPU
// ----------------------------------------------------------------------------------

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

/// Percent of one core used by the whole process while a started mapping idles for `span`.
double sluice_idle_cpu_percent(std::chrono::milliseconds span) {
  stream_t stream(4);
  for (std::uint32_t k = 0; k < 1000; ++k) stream.put(k, 1);
  auto running = sluice::start(
      sluice::from(stream) |
      sluice::batching(sluice::batch_size(100), sluice::maximum_batching_window(20ms)) |
      sluice::parallelization_factor(4) | sluice::invoke([](const sluice::batch<R>&) {}));
  running.wait_until_caught_up();  // drained: from here on, nothing to do
  std::this_thread::sleep_for(100ms);
  const double c0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(span);
  const double c1 = cpu_seconds();
  const auto t1 = std::chrono::steady_clock::now();
  running.stop();
  return (c1 - c0) / std::chrono::duration<double>(t1 - t0).count() * 100.0;
}

}  // namespace

int main(int argc, char** argv) {
  bool skip_latency = false, skip_idle = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--skip_latency") == 0)
      skip_latency = true;
    else if (std::strcmp(argv[i], "--skip_idle") == 0)
      skip_idle = true;
    else
      args.push_back(argv[i]);
  }
  // Build the inputs before any timing.
  (void)expected(kLarge);
  (void)expected(kSmall);
  for (std::uint32_t s : {1u, 4u, 16u, 64u}) (void)stream_for(s, kLarge);
  for (std::uint32_t s : {1u, 16u}) (void)stream_for(s, kSmall);
  (void)stream_for(1, kSlow);
  (void)work_1us(1);

  sluice::bench::collecting_reporter reporter;
  if (!sluice::bench::run_benchmarks(static_cast<int>(args.size()), args.data(), reporter))
    return 1;

  auto baseline = [&](const char* name, int chunk) {
    char full[96];
    std::snprintf(full, sizeof full, "%s/chunk:%d/iterations:2/manual_time", name, chunk);
    return reporter.get(full).rate();
  };
  const double tbb = baseline("BM_tbb_pipeline", 256);
  const double floor = baseline("BM_floor_queue", 256);
  std::printf("\n== runtime throughput (medians; M records/s; sluice: default threads) ==\n");
  std::printf("%-8s %10s %10s\n", "chunk", "tbb", "floor");
  for (int c : {10, 100, 256, 1000})
    std::printf("%-8d %10.1f %10.1f\n", c, baseline("BM_tbb_pipeline", c) / 1e6,
                baseline("BM_floor_queue", c) / 1e6);
  std::printf("%-8s %-3s %-6s %-9s %10s %10s %10s %10s %9s %9s %10s %9s\n", "shards", "P", "batch",
              "mode", "M rec/s", "/tbb", "/floor", "batches", "user ms", "sys ms", "csw/batch",
              "sys/user");
  auto row = [&](int s, int p, int b, int m) {
    char name[128];
    std::snprintf(name, sizeof name,
                  "BM_sluice/shards:%d/P:%d/batch:%d/mode:%d/iterations:1/manual_time", s, p, b, m);
    const auto r = reporter.get(name);
    const double x = r.rate();
    if (x <= 0) return 0.0;
    const double user = r.counter("user_ms"), sys = r.counter("sys_ms");
    std::printf("%-8d %-3d %-6d %-9s %10.1f %10.3f %10.3f %10.0f %9.0f %9.0f %10.3f %9.3f%s\n", s,
                p, b, mode_name(m), x / 1e6, tbb > 0 ? x / tbb : 0, floor > 0 ? x / floor : 0,
                r.counter("batches"), user, sys, r.counter("csw_per_batch"),
                user > 0 ? sys / user : 0, b == 10 ? "   (256 Ki records)" : "");
    return x;
  };
  for (int s : {1, 4, 16, 64})
    for (int p : {1, 4, 10}) row(s, p, 100, 0);
  for (int s : {1, 16})
    for (int b : {10, 1000}) row(s, 1, b, 0);
  for (int s : {1, 16})
    for (int p : {1, 4})
      for (int m : {1, 2}) row(s, p, 100, m);
  std::printf("\n");
  auto rate = [&](int s, int p, int b, int m) {
    char name[128];
    std::snprintf(name, sizeof name,
                  "BM_sluice/shards:%d/P:%d/batch:%d/mode:%d/iterations:1/manual_time", s, p, b, m);
    return reporter.get(name).rate();
  };
  sluice::bench::print_ratio("sluice/tbb (shards 1, P 1, batch 100)", rate(1, 1, 100, 0), tbb, 0.8);
  sluice::bench::print_ratio("sluice/floor (shards 1, P 1, batch 100)", rate(1, 1, 100, 0), floor,
                             1.0);
  sluice::bench::print_ratio("sluice/tbb (shards 16, P 4, batch 100)", rate(16, 4, 100, 0), tbb,
                             0.8);
  sluice::bench::print_ratio("sluice/tbb (shards 1, P 1, batch 1000)", rate(1, 1, 1000, 0), tbb,
                             1.0);
  sluice::bench::print_ratio("sluice/tbb chunk 10 (shards 1, P 1, batch 10)", rate(1, 1, 10, 0),
                             baseline("BM_tbb_pipeline", 10), 0.3);
  sluice::bench::print_ratio("sluice/tbb chunk 10 (shards 16, P 1, batch 10)", rate(16, 1, 10, 0),
                             baseline("BM_tbb_pipeline", 10), 0.3);
  for (int p : {1, 4, 10}) {
    char label[96];
    std::snprintf(label, sizeof label, "16 shards / 1 shard (P %d, batch 100)", p);
    sluice::bench::print_ratio(label, rate(16, p, 100, 0), rate(1, p, 100, 0), 0.95);
    std::snprintf(label, sizeof label, "64 shards / 1 shard (P %d, batch 100)", p);
    sluice::bench::print_ratio(label, rate(64, p, 100, 0), rate(1, p, 100, 0), 0.95);
  }
  {
    const double t = reporter.get("BM_tbb_slow/iterations:1/manual_time").rate();
    std::printf("\n== slow handler (~1 us per record, 1 shard, batch 100, %zu records) ==\n",
                kSlow);
    std::printf("tbb parallel_pipeline (parallel stage)  %8.3f M rec/s\n", t / 1e6);
    for (int p : {1, 4})
      for (int m : {0, 1, 2}) {
        char name[96];
        std::snprintf(name, sizeof name, "BM_sluice_slow/P:%d/mode:%d/iterations:1/manual_time", p,
                      m);
        const double x = reporter.get(name).rate();
        std::printf("sluice P %d %-9s                  %8.3f M rec/s  (%.3f of tbb)\n", p,
                    mode_name(m), x / 1e6, t > 0 ? x / t : 0);
      }
    sluice::bench::print_ratio(
        "slow handler, P 4: adaptive / inline",
        reporter.get("BM_sluice_slow/P:4/mode:0/iterations:1/manual_time").rate(),
        reporter.get("BM_sluice_slow/P:4/mode:1/iterations:1/manual_time").rate());
  }

  if (!skip_latency) {
    // Five rounds, floor and sluice alternating, so that a noisy neighbour hits both alike.
    const std::size_t count = 20'000;  // 2 s at 10,000 records/s
    std::vector<latency_result> fs, ss;
    for (int round = 0; round < 5; ++round) {
      fs.push_back(floor_latency(count, 10'000));
      ss.push_back(sluice_latency(count, 10'000));
    }
    auto med = [](std::vector<latency_result> v, double latency_result::*f) {
      std::sort(v.begin(), v.end(),
                [f](const latency_result& a, const latency_result& b) { return a.*f < b.*f; });
      return v[v.size() / 2].*f;
    };
    std::printf(
        "\n== latency put -> handler, 10,000 records/s, window 0, %zu records x 5 rounds ==\n",
        count);
    for (std::size_t i = 0; i < ss.size(); ++i) {
      std::printf(
          "round %zu  sluice p50 %7.1f us  p99 %8.1f us  p999 %8.1f us | floor p50 %7.1f us  p99 "
          "%8.1f us  p999 %8.1f us\n",
          i + 1, ss[i].p50_us, ss[i].p99_us, ss[i].p999_us, fs[i].p50_us, fs[i].p99_us,
          fs[i].p999_us);
    }
    const double s50 = med(ss, &latency_result::p50_us), s99 = med(ss, &latency_result::p99_us),
                 s999 = med(ss, &latency_result::p999_us);
    const double f50 = med(fs, &latency_result::p50_us), f99 = med(fs, &latency_result::p99_us),
                 f999 = med(fs, &latency_result::p999_us);
    std::printf(
        "median   sluice p50 %7.1f us  p99 %8.1f us  p999 %8.1f us | floor p50 %7.1f us  p99 %8.1f "
        "us  p999 %8.1f us\n",
        s50, s99, s999, f50, f99, f999);
    std::printf(
        "(sluice: 1 shard, default threads, batch_size 100, window 0; floor: "
        "moodycamel::BlockingConcurrentQueue, 1 consumer)\n");
    sluice::bench::print_ratio("sluice/floor latency p50", s50, f50);
    sluice::bench::print_ratio("sluice/floor latency p99", s99, f99, 3.0, false);
    sluice::bench::print_ratio("sluice/floor latency p999", s999, f999);
    std::printf("target sluice p99 <= 100 us: %s (median of rounds %.1f us)\n",
                s99 <= 100 ? "met" : "MISSED", s99);
  }
  if (!skip_idle) {
    const double pct = sluice_idle_cpu_percent(2000ms);
    std::printf(
        "\n== idle: started mapping (4 shards, P 4, window 20 ms, default threads), 2 s ==\n");
    std::printf("CPU used by the process: %.3f %% of one core  (target < 1 %%: %s)\n", pct,
                pct < 1.0 ? "met" : "MISSED");
  }
  sluice::bench::print_load("after");
  return 0;
}
