// expect: sluice::maximum_concurrency / adaptive_concurrency appears twice in the mapping
// A fixed and an adaptive limit are two forms of one stage: a mapping has one concurrency limit.
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m =
      sluice::from(records) | sluice::maximum_concurrency(10) | sluice::adaptive_concurrency(1, 10);
}
