// expect: sluice::on_failure is for streams
// S-9.12: a queue's dead letters go to its redrive policy's queue.
#include <sluice/sources/memory_queue.hpp>

#include <chrono>

void build() {
  sluice::memory_queue q;
  [[maybe_unused]] auto m =
      sluice::from(q) | sluice::batching(sluice::batch_size(10)) |
      sluice::on_failure([](const sluice::on_failure_record<sluice::queue_message>&) {});
}
