// expect: sluice::invoke: the handler cannot be called with const sluice::batch<Record>& for the
// The case: a handler of the wrong batch type, run at once. The failed | leaves a mapping
// that run() refuses silently, so the engine is not instantiated and no second error follows.
#include <sluice/run.hpp>

#include <string>
#include <vector>

void go() {
  std::vector<sluice::record<int>> records;
  sluice::run(sluice::from(records) | sluice::batching(sluice::batch_size(10)) |
              sluice::invoke([](const sluice::batch<sluice::record<std::string>>&) {}));
}
