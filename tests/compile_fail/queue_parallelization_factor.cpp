// expect: sluice::parallelization_factor is for streams
// S-9.12: a queue has no shards to split into lanes.
#include <sluice/sources/memory_queue.hpp>

#include <chrono>

void build() {
  sluice::memory_queue q;
  [[maybe_unused]] auto m = sluice::from(q) | sluice::batching(sluice::batch_size(10)) |
                            sluice::parallelization_factor(2);
}
