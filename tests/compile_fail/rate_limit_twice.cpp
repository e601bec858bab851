// expect: sluice::rate_limit appears twice in the mapping
// Both buckets go into one rate_limit(records_per_second(..), invocations_per_second(..)).
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m = sluice::from(records) |
                            sluice::rate_limit(sluice::records_per_second(100)) |
                            sluice::rate_limit(sluice::invocations_per_second(10));
}
