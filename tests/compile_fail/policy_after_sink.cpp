// expect: a stage follows the sink; sluice::invoke\(handler\) must be the last stage of a mapping
// A failure policy (retry) after sluice::invoke; the batching stage it needs is there.
#include <sluice/mapping.hpp>

#include <vector>

using R = sluice::record<int>;

void build() {
  std::vector<R> records;
  [[maybe_unused]] auto m = sluice::from(records) | sluice::batching(sluice::batch_size(10)) |
                            sluice::invoke([](const sluice::batch<R>&) {}) |
                            sluice::retry(sluice::maximum_retry_attempts(3));
}
