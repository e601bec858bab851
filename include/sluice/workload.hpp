// sluice/workload.hpp: synthetic workloads, the one generator behind sluice::simulate
// (sluice/simulate.hpp), sluice/bench.hpp and the project's own benchmarks. A workload says how
// many records, how their keys are distributed (uniform, Zipf with a skew, one hot key), how big
// their payloads are (fixed, or uniform in a range, or a mix of small and large), when they
// arrive (all at once, at a rate, in bursts) and which are poison (a rate). Generation is
// deterministic: record i's key, size and poison flag depend only on the seed and i.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"

SLUICE_BEGIN_NAMESPACE

namespace detail {
/// splitmix64 of one value (a stateless hash: the generator's draws are f(seed, index, field)).
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
/// A uniform draw in [0, 1) from 64 random bits.
constexpr double unit_interval(std::uint64_t x) noexcept {
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}
}  // namespace detail

/// How record keys are drawn from `keys` distinct keys 0..keys-1.
struct key_distribution {
  enum class kind { uniform, zipf, hot_key };
  kind shape = kind::uniform;
  std::uint64_t keys = 1024;
  double skew = 0;       // zipf: P(key k) ~ 1 / (k + 1)^skew
  double hot_share = 0;  // hot_key: this share of records has key 0, the rest is uniform

  static key_distribution uniform(std::uint64_t keys) {
    detail::require_in_range<std::uint64_t>("key_distribution::uniform keys", keys, 1,
                                            std::uint64_t{1} << 40, "1..2^40");
    return {kind::uniform, keys, 0, 0};
  }
  /// Zipf over `keys` keys with exponent `skew` (0: uniform; 1: classic Zipf; larger: hotter).
  static key_distribution zipf(std::uint64_t keys, double skew) {
    detail::require_in_range<std::uint64_t>("key_distribution::zipf keys", keys, 1,
                                            std::uint64_t{1} << 24, "1..2^24");
    if (!(skew >= 0 && skew <= 10)) detail::reject("key_distribution::zipf skew", skew, "0..10");
    return {kind::zipf, keys, skew, 0};
  }
  /// One hot key: `share` of the records (0..1) have key 0, the others are uniform over `keys`.
  static key_distribution one_hot_key(std::uint64_t keys, double share) {
    detail::require_in_range<std::uint64_t>("key_distribution::one_hot_key keys", keys, 1,
                                            std::uint64_t{1} << 40, "1..2^40");
    if (!(share >= 0 && share <= 1))
      detail::reject("key_distribution::one_hot_key share", share, "0..1");
    return {kind::hot_key, keys, 0, share};
  }
};

/// Payload sizes in bytes.
struct payload_sizes {
  enum class kind { fixed, uniform, bimodal };
  kind shape = kind::fixed;
  std::uint32_t small = 100;  // fixed: the size; uniform: the minimum; bimodal: the small size
  std::uint32_t large = 100;  // uniform: the maximum; bimodal: the large size
  double large_share = 0;     // bimodal: the share of large payloads

  static payload_sizes fixed(std::uint32_t bytes) { return {kind::fixed, bytes, bytes, 0}; }
  /// Uniform in [min, max] bytes.
  static payload_sizes uniform(std::uint32_t min, std::uint32_t max) {
    if (max < min) detail::reject("payload_sizes::uniform max", max, ">= min");
    return {kind::uniform, min, max, 0};
  }
  /// `small` bytes, except a share `large_share` (0..1) of `large` bytes.
  static payload_sizes bimodal(std::uint32_t small, std::uint32_t large, double large_share) {
    if (!(large_share >= 0 && large_share <= 1))
      detail::reject("payload_sizes::bimodal large_share", large_share, "0..1");
    return {kind::bimodal, small, large, large_share};
  }
};

/// When records arrive, as offsets from the start of the workload.
struct arrival_pattern {
  enum class kind { all_at_once, rate, bursts };
  kind shape = kind::all_at_once;
  double per_second = 0;    // rate: records per second, evenly spaced
  std::uint64_t burst = 0;  // bursts: records per burst, all at the same instant
  duration every{};         // bursts: time between bursts

  static arrival_pattern all_at_once() { return {}; }
  static arrival_pattern rate(double records_per_second) {
    if (!(records_per_second > 0 && records_per_second <= 1e12))
      detail::reject("arrival_pattern::rate records_per_second", records_per_second, "(0, 1e12]");
    return {kind::rate, records_per_second, 0, {}};
  }
  template <class Rep, class Period>
  static arrival_pattern bursts(std::uint64_t records, std::chrono::duration<Rep, Period> every) {
    detail::require_in_range<std::uint64_t>("arrival_pattern::bursts records", records, 1,
                                            std::uint64_t{1} << 40, "1..2^40");
    const auto d = std::chrono::duration_cast<duration>(every);
    if (d <= duration::zero())
      detail::reject("arrival_pattern::bursts every (ns)",
                     std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(), "> 0");
    return {kind::bursts, 0, records, d};
  }
};

/// A synthetic workload. Every field has a default; change what matters.
struct workload {
  std::size_t records = 1'000'000;
  key_distribution keys = key_distribution::uniform(1024);
  payload_sizes payload = payload_sizes::fixed(100);
  arrival_pattern arrival = arrival_pattern::all_at_once();
  double poison_rate = 0;  // share of records (0..1) a downstream rejects every time
  std::uint64_t seed = 42;
};

/// One generated record: its index in the workload, key, arrival offset, payload size, poison.
struct generated_record {
  std::uint64_t index = 0;
  std::uint64_t key = 0;
  duration arrival{};
  std::uint32_t bytes = 0;
  bool poison = false;
};

/// Generates a workload's records in order, calling f(const generated_record&) for each; stores
/// nothing but the Zipf table. Arrival offsets never decrease.
template <class F>
void generate(const workload& w, F&& f) {
  if (!(w.poison_rate >= 0 && w.poison_rate <= 1))
    detail::reject("workload::poison_rate", w.poison_rate, "0..1");
  std::vector<double> cdf;  // zipf: cumulative probabilities of keys 0..keys-1
  if (w.keys.shape == key_distribution::kind::zipf) {
    cdf.resize(w.keys.keys);
    double sum = 0;
    for (std::uint64_t k = 0; k < w.keys.keys; ++k)
      cdf[k] = sum += 1.0 / std::pow(static_cast<double>(k + 1), w.keys.skew);
    for (double& c : cdf) c /= sum;
  }
  const std::uint64_t seed = detail::mix64(w.seed);
  for (std::uint64_t i = 0; i < w.records; ++i) {
    const std::uint64_t a = detail::mix64(seed ^ (i * 4 + 0));
    const std::uint64_t b = detail::mix64(seed ^ (i * 4 + 1));
    const std::uint64_t c = detail::mix64(seed ^ (i * 4 + 2));
    generated_record r;
    r.index = i;
    switch (w.keys.shape) {
      case key_distribution::kind::uniform:
        r.key = a % w.keys.keys;
        break;
      case key_distribution::kind::zipf: {
        const double u = detail::unit_interval(a);
        r.key =
            static_cast<std::uint64_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
        r.key = std::min(r.key, w.keys.keys - 1);
        break;
      }
      case key_distribution::kind::hot_key:
        r.key = detail::unit_interval(a) < w.keys.hot_share ? 0 : (a >> 7) % w.keys.keys;
        break;
    }
    switch (w.payload.shape) {
      case payload_sizes::kind::fixed:
        r.bytes = w.payload.small;
        break;
      case payload_sizes::kind::uniform:
        r.bytes = w.payload.small + static_cast<std::uint32_t>(
                                        b % (std::uint64_t{w.payload.large} - w.payload.small + 1));
        break;
      case payload_sizes::kind::bimodal:
        r.bytes =
            detail::unit_interval(b) < w.payload.large_share ? w.payload.large : w.payload.small;
        break;
    }
    switch (w.arrival.shape) {
      case arrival_pattern::kind::all_at_once:
        break;
      case arrival_pattern::kind::rate:
        r.arrival = std::chrono::duration_cast<duration>(
            std::chrono::duration<double>(static_cast<double>(i) / w.arrival.per_second));
        break;
      case arrival_pattern::kind::bursts:
        r.arrival = w.arrival.every * static_cast<duration::rep>(i / w.arrival.burst);
        break;
    }
    r.poison = w.poison_rate > 0 && detail::unit_interval(c) < w.poison_rate;
    f(static_cast<const generated_record&>(r));
  }
}

/// All of a workload's records.
inline std::vector<generated_record> generate(const workload& w) {
  std::vector<generated_record> out;
  out.reserve(w.records);
  generate(w, [&](const generated_record& r) { out.push_back(r); });
  return out;
}

SLUICE_END_NAMESPACE
