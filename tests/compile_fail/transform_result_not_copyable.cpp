// expect: sluice::transform: the result type must be copyable so it can be batched and retried
// A move-only result cannot be kept in a batch and handed over again on a retry.
#include <sluice/mapping.hpp>

#include <memory>
#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m =
      sluice::from(records) | sluice::transform([](int v) { return std::make_unique<int>(v); });
}
