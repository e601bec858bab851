// expect: sluice: an lvalue in a \| composition is copied, and this one cannot be copied
// from(an rvalue container) moves the container into the mapping, so the mapping is move-only.
#include <sluice/mapping.hpp>

#include <utility>
#include <vector>

void build() {
  auto m = sluice::from(std::vector<int>{1, 2, 3});
  [[maybe_unused]] auto m2 = m | sluice::batching(sluice::batch_size(2));
}
