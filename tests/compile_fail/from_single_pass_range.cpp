// expect: sluice::from: a range source must be a forward range: a mapping reads it again
// An istream view can be read once; a retry or restart reads the range again.
#include <sluice/mapping.hpp>

#include <ranges>
#include <sstream>

void build() {
  std::istringstream in("1 2 3");
  auto numbers = std::views::istream<int>(in);
  [[maybe_unused]] auto m = sluice::from(numbers);
}
