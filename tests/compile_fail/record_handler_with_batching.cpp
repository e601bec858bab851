// expect: with batching, parallelization_factor or a failure policy the handler takes a
// batch.*sluice::per_record A function of one record is a per-record sink only without batch-level
// stages; with batching it must be wrapped in sluice::per_record.
#include <vector>

#include "sluice/sluice.hpp"

int main() {
  std::vector<int> v{1, 2, 3};
  int sum = 0;
  sluice::run(sluice::from(v) | sluice::batching(sluice::batch_size(10)) |
              sluice::invoke([&](int x) { sum += x; }));
  return sum;
}
