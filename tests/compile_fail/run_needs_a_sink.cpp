// expect: need a complete mapping: it must end with a sink, sluice::invoke\(handler\)
// sluice::run is given a mapping that has no sluice::invoke(handler) at its end.
#include <sluice/run.hpp>

#include <vector>

void go() {
  std::vector<sluice::record<int>> records;
  sluice::run(sluice::from(records) | sluice::batching(sluice::batch_size(10)));
}
