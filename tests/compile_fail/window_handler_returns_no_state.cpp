// expect: a window handler must return sluice::window_response \(or the new state as std::string\)
// a window handler that returns nothing: the state would be lost (S-7: a response needs state).
#include <sluice/mapping.hpp>

#include <vector>

using R = sluice::record<int>;

void build() {
  std::vector<R> records;
  [[maybe_unused]] auto m =
      sluice::from(records) | sluice::tumbling_window(60) |
      sluice::invoke([](const sluice::batch<R>&, const sluice::window_context&) {});
}
