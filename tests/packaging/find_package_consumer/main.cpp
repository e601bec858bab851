// Smallest complete uses of sluice from an installed package: a per-record sink (issue 8's
// program: fused into the read loop, no batch), and a batch handler over a range source.
#include <sluice/sluice.hpp>

#include <vector>

int main() {
  std::vector<int> v{1, 2, 3, 4, 5, 6};
  auto even = [](int x) { return x % 2 == 0; };
  auto times10 = [](int x) { return x * 10; };
  int sum = 0;
  sluice::run(sluice::from(v) | sluice::filter(even) | sluice::transform(times10) |
              sluice::invoke([&](int x) { sum += x; }));
  if (sum != 120) return 1;

  std::vector<sluice::record<int>> records{{"a", 1, {}, 5}, {"b", 2, {}, 7}};
  int batched = 0;
  sluice::run(sluice::from(records) |
              sluice::invoke([&](const sluice::batch<sluice::record<int>>& b) {
                for (auto& r : b) batched += r.payload;
              }));
  return batched == 12 ? 0 : 1;
}
