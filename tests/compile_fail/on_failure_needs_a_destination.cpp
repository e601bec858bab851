// expect: sluice::on_failure: the argument is not an on-failure destination for this record type
// A plain value (neither callable with an on_failure_record nor having deliver()).
#include <sluice/mapping.hpp>

#include <string>
#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  std::string not_a_destination = "dlq";
  [[maybe_unused]] auto m = sluice::from(records) | sluice::batching(sluice::batch_size(10)) |
                            sluice::on_failure(not_a_destination);
}
