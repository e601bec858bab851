// benchmarks/failure_bench.cpp (issue 4): what failure handling costs, in handler invocations and
// in records/s, when a few records are poison.
//
// Workload: 1 Mi records {key 0..1023, sequence 1..N, amount} in a vector, read with
// sluice::from(v), batch_size 100, run with sluice::run on a sluice::manual_clock in
// auto_advance mode (back-offs cost no real time) and a counting on-failure destination.
// Poison: a fixed set of sequence numbers (sluice::generate's poison_rate, fixed seed) at
// 0.01 %, 0.1 %, 1 %. The handler sums amount per key and fails when its batch holds poison:
//   retry     retry(R=2); the handler throws if the batch holds any poison record
//   bisect    retry(R=2) | bisect_batch_on_function_error; same handler
//   partial   retry(R=2) | report_batch_item_failures; the handler reports the poison ids
//   per_rec   retry(R=2) | report_batch_item_failures |
//             invoke(sluice::per_record(fn, sluice::skip_key_on_failure)); fn fails on poison
// Baseline in the same binary: the same mapping with no poison (rate 0). Reported: records/s,
// ratio to the clean run, handler invocations, invocations per poison record (see below) next to
// the bisect bound 2*ceil(log2 n) + 1 + R, and good records lost to the destination.
//
// Invocations per poison record = (invocations - clean invocations + poisoned batches) / poison
// records: every invocation beyond the clean run, plus each poisoned batch's own first one. For
// retry and bisect the worst batch is reported too: max over poisoned batches of (handler calls
// on that batch and its halves) / (poison records in it).
//
// Also: the cost of arming every policy (retry with R=2 and a 1 h record age, bisect, report,
// on_failure) when nothing fails, against the same mapping with no policy. Target: <= 3 % slower.
#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/bench.hpp"
#include "sluice/handlers/per_record.hpp"
#include "sluice/sluice.hpp"

namespace {

using namespace std::chrono_literals;
using R = sluice::record<std::int64_t, std::uint32_t>;
using sums_t = std::array<std::int64_t, 1024>;

constexpr std::size_t kRecords = std::size_t{1} << 20;
constexpr std::int64_t kBatch = 100;
constexpr std::int64_t kRetries = 2;
const sluice::time_point kStart = sluice::time_point{} + std::chrono::hours(1000);

std::uint64_t splitmix(std::uint64_t x) { return sluice::detail::splitmix64(x); }

/// The records: keys uniform over 1024 (sluice::generate), amount -1000..1000 from the index.
const std::vector<R>& workload() {
  static const std::vector<R> v = [] {
    sluice::workload w;
    w.records = kRecords;
    w.keys = sluice::key_distribution::uniform(1024);
    w.seed = 0x5eed;
    std::vector<R> out;
    out.reserve(kRecords);
    sluice::generate(w, [&](const sluice::generated_record& g) {
      const std::uint64_t x = splitmix(g.index ^ 0x5eed);
      out.push_back(R{static_cast<std::uint32_t>(g.key), g.index + 1, kStart,
                      static_cast<std::int64_t>((x >> 32) % 2001) - 1000});
    });
    return out;
  }();
  return v;
}

/// poison[seq] for rate in basis points (1 = 0.01 %): sluice::generate's poison records. The
/// sets are nested (a record poison at 0.01 % is poison at 0.1 % too): one draw per record.
const std::vector<char>& poison_set(int rate_bp) {
  static std::map<int, std::vector<char>> cache;
  auto& p = cache[rate_bp];
  if (p.empty()) {
    p.assign(kRecords + 1, 0);
    sluice::workload w;
    w.records = kRecords;
    w.poison_rate = rate_bp / 10000.0;
    w.seed = 7919;
    sluice::generate(w, [&](const sluice::generated_record& g) {
      p[g.index + 1] = static_cast<char>(g.poison);
    });
  }
  return p;
}

struct poison_stats {
  std::size_t poison = 0;            // poison records
  std::size_t poisoned_batches = 0;  // 100-record batches (of the clean run) holding poison
};
poison_stats stats_of(int rate_bp) {
  const auto& p = poison_set(rate_bp);
  poison_stats s;
  for (std::size_t b = 0; b < kRecords / kBatch + 1; ++b) {
    bool any = false;
    for (std::size_t i = b * kBatch + 1; i <= std::min<std::size_t>(kRecords, (b + 1) * kBatch);
         ++i) {
      s.poison += p[i] != 0;
      any |= p[i] != 0;
    }
    s.poisoned_batches += any;
  }
  return s;
}

enum mode : int { retry_only = 0, bisect = 1, partial = 2, per_rec = 3 };
const char* mode_name(int m) {
  static const char* names[] = {"retry", "bisect", "partial", "per_rec"};
  return names[m];
}

struct counting_destination {
  std::uint64_t* batches;
  std::uint64_t* records;
  std::uint64_t* good;  // records that were not poison
  const std::vector<char>* poison;
  void operator()(const sluice::on_failure_record<R>& rec) const {
    ++*batches;
    *records += rec.records.size();
    for (const R& r : rec.records) *good += (*poison)[r.sequence] == 0;
  }
};

struct outcome {
  sluice::metrics_snapshot metrics;
  std::uint64_t dlq_batches = 0, dlq_records = 0, dlq_good = 0;
  std::vector<std::uint32_t> calls;  // handler invocations per original 100-record batch
};

/// The largest (invocations of an original batch / poison records in it) over poisoned batches.
double worst_per_poison(const outcome& o, const std::vector<char>& poison) {
  double worst = 0;
  for (std::size_t b = 0; b < o.calls.size(); ++b) {
    std::size_t k = 0;
    for (std::size_t i = b * kBatch + 1; i <= std::min<std::size_t>(kRecords, (b + 1) * kBatch);
         ++i)
      k += poison[i] != 0;
    if (k > 0) worst = std::max(worst, static_cast<double>(o.calls[b]) / static_cast<double>(k));
  }
  return worst;
}

outcome run_mode(int m, const std::vector<char>& poison, sums_t& sums) {
  const auto& v = workload();
  sluice::manual_clock clock(kStart, sluice::manual_clock::auto_advance);
  outcome o;
  o.calls.assign(kRecords / kBatch + 1, 0);
  counting_destination dest{&o.dlq_batches, &o.dlq_records, &o.dlq_good, &poison};
  auto throwing = [&](const sluice::batch<R>& b) {
    ++o.calls[(b.first_sequence() - 1) / kBatch];  // bisect halves stay inside their batch
    bool bad = false;
    for (const R& r : b) bad |= poison[r.sequence] != 0;
    if (bad) throw std::runtime_error("poison in batch");
    for (const R& r : b) sums[r.key] += r.payload;
  };
  auto reporting = [&](const sluice::batch<R>& b) {
    sluice::batch_item_failures failed;
    for (const R& r : b) {
      if (poison[r.sequence])
        failed.add(r.sequence);
      else
        sums[r.key] += r.payload;
    }
    return failed;
  };
  auto retry = [] { return sluice::retry(sluice::maximum_retry_attempts(kRetries)); };
  auto batching = [] { return sluice::batching(sluice::batch_size(kBatch)); };
  switch (m) {
    case retry_only:
      o.metrics = sluice::run(sluice::from(v) | batching() | retry() | sluice::on_failure(dest) |
                                  sluice::invoke(throwing),
                              sluice::with_clock(clock));
      break;
    case bisect:
      o.metrics = sluice::run(sluice::from(v) | batching() | retry() |
                                  sluice::bisect_batch_on_function_error |
                                  sluice::on_failure(dest) | sluice::invoke(throwing),
                              sluice::with_clock(clock));
      break;
    case partial:
      o.metrics =
          sluice::run(sluice::from(v) | batching() | retry() | sluice::report_batch_item_failures |
                          sluice::on_failure(dest) | sluice::invoke(reporting),
                      sluice::with_clock(clock));
      break;
    case per_rec:
      o.metrics = sluice::run(sluice::from(v) | batching() | retry() |
                                  sluice::report_batch_item_failures | sluice::on_failure(dest) |
                                  sluice::invoke(sluice::per_record(
                                      [&](const R& r) {
                                        if (poison[r.sequence]) return false;
                                        sums[r.key] += r.payload;
                                        return true;
                                      },
                                      sluice::skip_key_on_failure)),
                              sluice::with_clock(clock));
      break;
  }
  return o;
}

void BM_failure(benchmark::State& state) {
  const int m = static_cast<int>(state.range(0));
  const int rate = static_cast<int>(state.range(1));
  const auto& poison = poison_set(rate);
  sums_t sums{};
  outcome o;
  for (auto _ : state) {
    sums.fill(0);
    o = run_mode(m, poison, sums);
    benchmark::DoNotOptimize(sums);
  }
  const auto& t = o.metrics.total;
  if (t.succeeded_event_count + t.on_failure_destination_delivered_event_count != kRecords) {
    std::fprintf(stderr, "failure_bench: %s/%d finished %llu + %llu of %zu records\n", mode_name(m),
                 rate, static_cast<unsigned long long>(t.succeeded_event_count),
                 static_cast<unsigned long long>(t.on_failure_destination_delivered_event_count),
                 kRecords);
    std::abort();
  }
  state.counters["invocations"] = static_cast<double>(t.invocations);
  state.counters["dlq_records"] = static_cast<double>(o.dlq_records);
  state.counters["dlq_good"] = static_cast<double>(o.dlq_good);
  state.counters["splits"] = static_cast<double>(t.bisect_splits);
  if (m == retry_only || m == bisect)
    state.counters["worst_inv_per_poison"] = worst_per_poison(o, poison);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kRecords));
}

// ---- arming every policy when nothing fails ---------------------------------------------------

void BM_policies(benchmark::State& state) {
  const bool armed = state.range(0) != 0;
  const auto& v = workload();
  sums_t sums{};
  std::uint64_t dead = 0;
  for (auto _ : state) {
    sums.fill(0);
    sluice::manual_clock clock(kStart, sluice::manual_clock::auto_advance);
    if (armed) {
      sluice::run(sluice::from(v) | sluice::batching(sluice::batch_size(kBatch)) |
                      sluice::retry(sluice::maximum_retry_attempts(kRetries),
                                    sluice::maximum_record_age(1h)) |
                      sluice::bisect_batch_on_function_error | sluice::report_batch_item_failures |
                      sluice::on_failure([&dead](const sluice::on_failure_record<R>&) { ++dead; }) |
                      sluice::invoke([&sums](const sluice::batch<R>& b) {
                        for (const R& r : b) sums[r.key] += r.payload;
                        return sluice::batch_item_failures{};
                      }),
                  sluice::with_clock(clock));
    } else {
      sluice::run(sluice::from(v) | sluice::batching(sluice::batch_size(kBatch)) |
                      sluice::invoke([&sums](const sluice::batch<R>& b) {
                        for (const R& r : b) sums[r.key] += r.payload;
                      }),
                  sluice::with_clock(clock));
    }
    benchmark::DoNotOptimize(sums);
  }
  if (dead != 0) std::abort();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kRecords));
}

BENCHMARK(BM_failure)
    ->ArgNames({"mode", "rate_bp"})
    ->ArgsProduct({{retry_only, bisect, partial, per_rec}, {0, 1, 10, 100}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_policies)->ArgName("armed")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  (void)workload();
  for (int r : {0, 1, 10, 100}) (void)poison_set(r);
  sluice::bench::collecting_reporter reporter;
  if (!sluice::bench::run_benchmarks(argc, argv, reporter)) return 1;

  const double bound = 2 * std::ceil(std::log2(static_cast<double>(kBatch))) + 1 + kRetries;
  std::printf("\n== failure handling: %zu records, batch_size %lld, R=%lld (medians) ==\n",
              kRecords, static_cast<long long>(kBatch), static_cast<long long>(kRetries));
  std::printf("%-8s %-7s %7s %9s %11s %10s %12s %10s %11s %10s\n", "mode", "poison", "records",
              "batches", "M rec/s", "vs clean", "invocations", "inv/poison", "dlq records",
              "dlq good");
  for (int m : {retry_only, bisect, partial, per_rec}) {
    char clean_name[96];
    std::snprintf(clean_name, sizeof clean_name, "BM_failure/mode:%d/rate_bp:0", m);
    const auto clean = reporter.get(clean_name);
    for (int rate : {0, 1, 10, 100}) {
      char name[96];
      std::snprintf(name, sizeof name, "BM_failure/mode:%d/rate_bp:%d", m, rate);
      const auto r = reporter.get(name);
      const poison_stats ps = stats_of(rate);
      const double inv = r.counter("invocations");
      const double per_poison =
          ps.poison
              ? (inv - clean.counter("invocations") + static_cast<double>(ps.poisoned_batches)) /
                    static_cast<double>(ps.poison)
              : 0;
      char rate_s[16];
      std::snprintf(rate_s, sizeof rate_s, "%.2f%%", rate / 100.0);
      std::printf("%-8s %-7s %7zu %9zu %11.2f %10.3f %12.0f %10.2f %11.0f %10.0f\n", mode_name(m),
                  rate_s, ps.poison, ps.poisoned_batches, r.rate() / 1e6,
                  clean.rate() > 0 ? r.rate() / clean.rate() : 0, inv, per_poison,
                  r.counter("dlq_records"), r.counter("dlq_good"));
    }
  }
  std::printf("bisect bound per poison record in a batch of %lld: 2*ceil(log2 n) + 1 + R = %.0f\n",
              static_cast<long long>(kBatch), bound);
  for (int rate : {1, 10, 100}) {
    char name[96], label[96];
    std::snprintf(name, sizeof name, "BM_failure/mode:1/rate_bp:%d", rate);
    const poison_stats ps = stats_of(rate);
    const double inv = reporter.get(name).counter("invocations");
    const double clean = reporter.get("BM_failure/mode:1/rate_bp:0").counter("invocations");
    const double per_poison = ps.poison ? (inv - clean + static_cast<double>(ps.poisoned_batches)) /
                                              static_cast<double>(ps.poison)
                                        : 0;
    std::snprintf(label, sizeof label, "bisect mean inv per poison / bound (%.2f%%)", rate / 100.0);
    sluice::bench::print_ratio(label, per_poison, bound, 1.0, /*higher_is_better=*/false);
    std::snprintf(label, sizeof label, "bisect worst batch inv per poison / bound (%.2f%%)",
                  rate / 100.0);
    sluice::bench::print_ratio(label, reporter.get(name).counter("worst_inv_per_poison"), bound,
                               1.0,
                               /*higher_is_better=*/false);
  }
  for (int m : {retry_only, bisect, partial, per_rec})
    for (int rate : {1, 10, 100}) {
      char name[96], clean[96], label[96];
      std::snprintf(name, sizeof name, "BM_failure/mode:%d/rate_bp:%d", m, rate);
      std::snprintf(clean, sizeof clean, "BM_failure/mode:%d/rate_bp:0", m);
      std::snprintf(label, sizeof label, "%s %.2f%% poison / clean (records/s)", mode_name(m),
                    rate / 100.0);
      sluice::bench::print_ratio(label, reporter.get(name).rate(), reporter.get(clean).rate());
    }
  const double none = reporter.get("BM_policies/armed:0").rate();
  const double all = reporter.get("BM_policies/armed:1").rate();
  std::printf("no policy %.1f M records/s, every policy armed %.1f M records/s\n", none / 1e6,
              all / 1e6);
  sluice::bench::print_ratio("all policies armed / none (nothing fails)", all, none, 0.97);
  sluice::bench::print_load("after");
  return 0;
}
