// expect: sluice::transform: the function returns void; it must return the new record or the new
// A transform whose function returns nothing leaves nothing to flow downstream.
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m = sluice::from(records) | sluice::transform([](int) {});
}
