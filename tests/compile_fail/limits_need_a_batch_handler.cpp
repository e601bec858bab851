// expect: sluice::maximum_concurrency, adaptive_concurrency and rate_limit limit batch handler
// calls A per-record sink is called in the read loop, one record at a time: there is no call to
// limit.
#include <vector>

#include "sluice/sluice.hpp"

int main() {
  std::vector<int> v{1, 2, 3};
  int sum = 0;
  sluice::run(sluice::from(v) | sluice::maximum_concurrency(4) |
              sluice::invoke([&](int x) { sum += x; }));
  return sum;
}
