// expect: sluice::batching: a parameter is given twice
#include <sluice/stages.hpp>

void build() {
  [[maybe_unused]] auto b = sluice::batching(sluice::batch_size(10), sluice::batch_size(20));
}
