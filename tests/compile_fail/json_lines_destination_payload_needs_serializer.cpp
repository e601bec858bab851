// expect: the payload is neither a string, a byte vector nor a number; pass a serializer
// A payload sluice cannot render needs a serializer passed to the constructor.
#include <sluice/destinations/json_lines.hpp>

struct order {
  int id;
};

void build() { sluice::json_lines_destination<sluice::record<order>> dead_letters("dlq.jsonl"); }
