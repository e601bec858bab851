// expect: a stage follows the sink; sluice::invoke\(handler\) must be the last stage of a mapping
// A batching stage after sluice::invoke.
#include <sluice/mapping.hpp>

#include <vector>

using R = sluice::record<int>;

void build() {
  std::vector<R> records;
  [[maybe_unused]] auto m = sluice::from(records) | sluice::invoke([](const sluice::batch<R>&) {}) |
                            sluice::batching(sluice::batch_size(10));
}
