// expect: need a complete mapping: it must end with a sink, sluice::invoke\(handler\)
// errors: 2 (start() still returns void after its failed gate, so `auto running =` adds one)
// sluice::start is given a mapping that has no sluice::invoke(handler) at its end.
#include <sluice/start.hpp>

#include <vector>

void go() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto running =
      sluice::start(sluice::from(records) | sluice::batching(sluice::batch_size(10)));
}
