// expect: R has no `payload` member, so there is no payload to write
// A user record type without a `payload` member needs a serializer taking the record.
#include <sluice/destinations/json_lines.hpp>

#include <cstdint>
#include <string>

struct reading {
  std::string device;
  std::uint64_t seq;
  sluice::time_point at;
  const std::string& partition_key() const noexcept { return device; }
  sluice::sequence_number_t sequence_number() const noexcept { return seq; }
  sluice::time_point arrival_time() const noexcept { return at; }
};

void build() { sluice::json_lines_destination<reading> dead_letters("dlq.jsonl"); }
