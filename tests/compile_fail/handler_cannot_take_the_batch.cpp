// expect: sluice::invoke: the handler cannot be called with const sluice::batch<Record>& for the
// The handler takes batches of strings; the records that reach it carry ints.
#include <sluice/mapping.hpp>

#include <string>
#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m =
      sluice::from(records) | sluice::batching(sluice::batch_size(10)) |
      sluice::invoke([](const sluice::batch<sluice::record<std::string>>&) {});
}
