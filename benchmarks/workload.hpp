// benchmarks/workload.hpp: the records the issue-2 and issue-3 benchmarks share: n records
// {key 0..1023 (sluice::generate, uniform, seed 42), sequence 1..n, amount -1000..1000}, the
// same in every run and every binary.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sluice/record.hpp"
#include "sluice/workload.hpp"

namespace bench {

using order = sluice::record<std::int64_t, std::uint32_t>;

inline std::vector<order> make_orders(std::size_t n) {
  sluice::workload w;
  w.records = n;
  w.keys = sluice::key_distribution::uniform(1024);
  w.seed = 42;
  std::vector<order> out;
  out.reserve(n);
  const sluice::time_point arrival = sluice::time_point{} + std::chrono::hours(1);
  sluice::generate(w, [&](const sluice::generated_record& g) {
    // The amount is the benchmarks' own payload, drawn from the index.
    const std::uint64_t x = sluice::detail::mix64(g.index ^ 0xa40u);
    out.push_back(order{static_cast<std::uint32_t>(g.key), g.index + 1, arrival,
                        static_cast<std::int64_t>((x >> 32) % 2001) - 1000});
  });
  return out;
}

}  // namespace bench
