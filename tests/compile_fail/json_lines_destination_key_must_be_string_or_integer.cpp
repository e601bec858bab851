// expect: sluice::json_lines_destination: a partition key must be string-like or an integer
// partitionKey is a JSON string; a key of another type has no spelling there.
#include <sluice/destinations/json_lines.hpp>

struct region {
  int id;
};

void build() {
  sluice::json_lines_destination<sluice::record<std::string, region>> dead("dlq.jsonl");
  dead.deliver(sluice::on_failure_record<sluice::record<std::string, region>>{});
}
