// expect: sluice::workers, sluice::pollers and sluice::execution are options of sluice::start only
// run() calls the handler on the calling thread; workers(2) was silently ignored before.
#include <sluice/run.hpp>

#include <utility>
#include <vector>

void go() {
  std::vector<sluice::record<int>> records;
  auto m = sluice::from(records) | sluice::invoke([](const sluice::batch<sluice::record<int>>&) {});
  sluice::run(std::move(m), sluice::workers(2));
}
