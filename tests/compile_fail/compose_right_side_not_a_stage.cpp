// expect: sluice: the right side of \| is not a sluice stage; a mapping is composed of
// sluice::filter An int on the right of |: only sluice stages compose (the operator is not
// constrained away).
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m = sluice::from(records) | 42;
}
