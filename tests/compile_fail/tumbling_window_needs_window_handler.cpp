// expect: with sluice::tumbling_window the handler takes \(const sluice::batch<Record>&, const
// a plain batch handler under a tumbling window: it could neither see nor return the state.
#include <sluice/mapping.hpp>

#include <vector>

using R = sluice::record<int>;

void build() {
  std::vector<R> records;
  [[maybe_unused]] auto m = sluice::from(records) | sluice::tumbling_window(60) |
                            sluice::invoke([](const sluice::batch<R>&) {});
}
