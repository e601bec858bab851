// expect: a queue mapping's handler must return void, sluice::queue_item_failures
// S-9.11: a queue's report names message ids (sluice::queue_item_failures), not sequence numbers.
#include <sluice/sources/memory_queue.hpp>

void build() {
  sluice::memory_queue q;
  [[maybe_unused]] auto m = sluice::from(q) | sluice::report_batch_item_failures |
                            sluice::invoke([](const sluice::batch<sluice::queue_message>&) {
                              return sluice::batch_item_failures{};
                            });
}
