// expect: sluice::tumbling_window appears twice in the mapping
#include <sluice/mapping.hpp>

#include <vector>

using R = sluice::record<int>;

void build() {
  std::vector<R> records;
  [[maybe_unused]] auto m =
      sluice::from(records) | sluice::tumbling_window(60) | sluice::tumbling_window(30);
}
