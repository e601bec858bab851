// expect: report_batch_item_failures needs a handler that can report failures: it must return
// report_batch_item_failures with a handler that returns void: there is nothing to honour.
#include <sluice/mapping.hpp>

#include <vector>

using R = sluice::record<int>;

void build() {
  std::vector<R> records;
  [[maybe_unused]] auto m = sluice::from(records) | sluice::batching(sluice::batch_size(10)) |
                            sluice::report_batch_item_failures |
                            sluice::invoke([](const sluice::batch<R>&) {});
}
