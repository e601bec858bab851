// expect: sluice::filter: the predicate must return something convertible to bool
// A predicate that returns a string cannot decide whether a record is kept.
#include <sluice/mapping.hpp>

#include <string>
#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m =
      sluice::from(records) | sluice::filter([](int) { return std::string("yes"); });
}
