// expect: sluice::transform is not available on a queue source
// S-9.12: a report names message ids, which a transformed record would not carry.
#include <sluice/sources/memory_queue.hpp>

#include <string>

void build() {
  sluice::memory_queue q;
  [[maybe_unused]] auto m =
      sluice::from(q) | sluice::transform([](const std::string& body) { return body.size(); });
}
