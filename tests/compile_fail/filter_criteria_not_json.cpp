// expect: invalid_filter_pattern<sluice::v0::pattern_index<0>, sluice::v0::at_character<8>,
// sluice::v0::pattern_rule::not_json> A pattern that is not JSON (a missing ':' after "data") fails
// at the character where the JSON goes wrong.
#include <sluice/filter_criteria.hpp>

auto stage() { return sluice::filter_criteria<R"({"data" {"a": ["x"]}})">(); }
