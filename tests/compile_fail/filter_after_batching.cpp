// expect: sluice::filter and sluice::transform must come before sluice::batching and the failure
// A filter after batching: per-record stages must run before records are batched.
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m = sluice::from(records) | sluice::batching(sluice::batch_size(10)) |
                            sluice::filter([](int v) { return v > 0; });
}
