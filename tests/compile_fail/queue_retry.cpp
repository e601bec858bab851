// expect: sluice::retry .maximum_retry_attempts, maximum_record_age. is for streams
// S-9.12: a queue retries through its visibility timeout and gives up through its redrive policy.
#include <sluice/sources/memory_queue.hpp>

#include <chrono>

void build() {
  sluice::memory_queue q;
  [[maybe_unused]] auto m = sluice::from(q) | sluice::batching(sluice::batch_size(10)) |
                            sluice::retry(sluice::maximum_retry_attempts(2));
}
