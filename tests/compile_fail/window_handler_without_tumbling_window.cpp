// expect: a window handler \(batch, window_context\) needs sluice::tumbling_window\(seconds\)
// a window handler in a mapping without a window: nothing would give it a window.
#include <sluice/mapping.hpp>

#include <vector>

using R = sluice::record<int>;

void build() {
  std::vector<R> records;
  [[maybe_unused]] auto m =
      sluice::from(records) | sluice::batching(sluice::batch_size(10)) |
      sluice::invoke([](const sluice::batch<R>&, const sluice::window_context&) {
        return sluice::window_response{std::string()};
      });
}
