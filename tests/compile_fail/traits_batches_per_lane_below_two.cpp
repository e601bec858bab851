// expect: sluice::runtime_traits::batches_per_lane must be at least 2
// A lane needs a slot to fill while another is in flight.
#include <vector>

#include "sluice/sluice.hpp"

struct one_slot : sluice::runtime_traits {
  static constexpr std::uint32_t batches_per_lane = 1;
};

int main() {
  std::vector<int> v{1, 2, 3};
  sluice::run(sluice::from(v) |
                  sluice::invoke([](const sluice::batch<sluice::record<int, std::uint64_t>>&) {}),
              sluice::with_traits<one_slot>());
  return 0;
}
