// expect: sluice::json_lines_destination<R>: the serializer must be callable as
// A serializer that takes the wrong type (an int for a string payload).
#include <sluice/destinations/json_lines.hpp>

#include <string>

void build() {
  sluice::json_lines_destination<sluice::record<std::string>> dead(
      "dlq.jsonl", [](int) { return std::string(); });
}
