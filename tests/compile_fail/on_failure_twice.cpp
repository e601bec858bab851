// expect: sluice::on_failure appears twice in the mapping
// Two on-failure destinations: a mapping has one (S-5.7).
#include <sluice/mapping.hpp>

#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  auto dead = [](const sluice::on_failure_record<sluice::record<int>>&) {};
  [[maybe_unused]] auto m = sluice::from(records) | sluice::batching(sluice::batch_size(10)) |
                            sluice::on_failure(dead) | sluice::on_failure(dead);
}
