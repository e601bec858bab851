// expect: sluice::retry needs a batching stage \(sluice::batching\) before it
// Retries re-attempt batches, so retry needs a batching stage before it.
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m =
      sluice::from(records) | sluice::retry(sluice::maximum_retry_attempts(3));
}
