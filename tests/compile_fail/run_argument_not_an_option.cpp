// expect: sluice::run / sluice::start: an argument after the mapping is not an option
// A stray 42 after the mapping was silently a raw template error before.
#include <sluice/run.hpp>

#include <utility>
#include <vector>

void go() {
  std::vector<sluice::record<int>> records;
  auto m = sluice::from(records) | sluice::invoke([](const sluice::batch<sluice::record<int>>&) {});
  sluice::run(std::move(m), 42);
}
