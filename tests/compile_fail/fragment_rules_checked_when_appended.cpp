// expect: sluice::retry needs a batching stage \(sluice::batching\) before it
// A policy fragment is checked stage by stage when a mapping takes it: here without batching.
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  const auto policy =
      sluice::retry(sluice::maximum_retry_attempts(2)) | sluice::bisect_batch_on_function_error;
  [[maybe_unused]] auto m = sluice::from(records) | policy;
}
