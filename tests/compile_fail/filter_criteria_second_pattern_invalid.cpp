// expect: invalid_filter_pattern<sluice::v0::pattern_index<1>, sluice::v0::at_character<15>,
// sluice::v0::pattern_rule::field_must_be_an_object_or_array> With several compile-time patterns
// the error names the one that is wrong (0-based): here the second, whose field "a" is given a bare
// string instead of a value list ["paid"].
#include <sluice/filter_criteria.hpp>

auto stage() {
  return sluice::filter_criteria<R"({"partitionKey": ["k"]})", R"({"data": {"a": "paid"}})">();
}
