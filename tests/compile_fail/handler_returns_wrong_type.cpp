// expect: sluice::invoke: the handler must return void, sluice::batch_item_failures or
// An int result would read as a status code; sluice does not guess what it means.
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m =
      sluice::from(records) | sluice::batching(sluice::batch_size(10)) |
      sluice::invoke([](const sluice::batch<sluice::record<int>>&) { return 0; });
}
