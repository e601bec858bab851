// expect: sluice::retry appears twice in the mapping
// The same stage twice: each policy is set once per mapping.
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m = sluice::from(records) | sluice::batching(sluice::batch_size(10)) |
                            sluice::retry(sluice::maximum_retry_attempts(1)) |
                            sluice::retry(sluice::maximum_retry_attempts(1));
}
