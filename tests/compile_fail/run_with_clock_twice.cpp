// expect: sluice::run / sluice::start: an option is given twice
// Two clocks: which one would the mapping read? Both compiled before.
#include <sluice/run.hpp>

#include <utility>
#include <vector>

void go() {
  std::vector<sluice::record<int>> records;
  sluice::manual_clock a, b;
  auto m = sluice::from(records) | sluice::invoke([](const sluice::batch<sluice::record<int>>&) {});
  sluice::run(std::move(m), sluice::with_clock(a), sluice::with_clock(b));
}
