// expect: sluice::bisect_batch_on_function_error needs a batching stage \(sluice::batching\) before
// Bisecting splits batches, so it needs a batching stage before it.
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m = sluice::from(records) | sluice::bisect_batch_on_function_error;
}
