// expect: sluice::bisect_batch_on_function_error is for streams
// S-9.12: a queue's failed messages return on their own; there is nothing to bisect.
#include <sluice/sources/memory_queue.hpp>

#include <chrono>

void build() {
  sluice::memory_queue q;
  [[maybe_unused]] auto m = sluice::from(q) | sluice::batching(sluice::batch_size(10)) |
                            sluice::bisect_batch_on_function_error;
}
