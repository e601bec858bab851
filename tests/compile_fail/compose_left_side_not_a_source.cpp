// expect: sluice: the left side of \| is neither sluice::from\(source\), a mapping, nor a stage
// A container piped straight into a stage: a mapping starts with sluice::from.
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m = records | sluice::filter([](int p) { return p > 0; });
}
