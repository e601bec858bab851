// benchmarks/workload.hpp: the records the issue-2 and issue-3 benchmarks share: n records
// {key 0..1023, sequence 1..n, amount -1000..1000}, drawn from a fixed-seed splitmix64 so every
// run and every binary sees the same data.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sluice/detail/pipeline/lane_job.hpp"  // detail::splitmix64
#include "sluice/record.hpp"

namespace bench {

using order = sluice::record<std::int64_t, std::uint32_t>;

inline std::vector<order> make_orders(std::size_t n) {
  std::vector<order> out;
  out.reserve(n);
  std::uint64_t state = 42;
  const sluice::time_point arrival = sluice::time_point{} + std::chrono::hours(1);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t x = sluice::detail::splitmix64(state);
    out.push_back(order{static_cast<std::uint32_t>(x & 1023u), i + 1, arrival,
                        static_cast<std::int64_t>((x >> 32) % 2001) - 1000});
  }
  return out;
}

}  // namespace bench
