// expect: sluice::batching appears twice in the mapping
// Two batching stages in one mapping.
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m = sluice::from(records) | sluice::batching(sluice::batch_size(10)) |
                            sluice::batching(sluice::batch_size(20));
}
