// expect: invalid_filter_pattern<sluice::v0::pattern_index<0>, sluice::v0::at_character<28>,
// sluice::v0::pattern_rule::numeric_range_empty> A numeric range whose lower bound is not below its
// upper bound matches nothing: rejected.
#include <sluice/filter_criteria.hpp>

auto stage() {
  return sluice::filter_criteria<R"({"data": {"a": [{"numeric": [">", 5, "<=", 5]}]}})">();
}
