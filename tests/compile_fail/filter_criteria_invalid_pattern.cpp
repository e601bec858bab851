// expect: invalid_filter_pattern<sluice::v0::pattern_index<0>, sluice::v0::at_character<29>,
// sluice::v0::pattern_rule::wildcard_consecutive_stars> A compile-time pattern is parsed by the
// compiler: an invalid one names the pattern, the character (0-based) and the rule, and the mapping
// it would have joined reports nothing more.
#include <sluice/filter_criteria.hpp>
#include <sluice/sluice.hpp>
#include <string>
#include <vector>

void compose() {
  std::vector<sluice::record<std::string>> records;
  [[maybe_unused]] auto m =
      sluice::from(records) |
      sluice::filter_criteria<R"({"data": {"x": [{"wildcard": "a**"}]}})">() | sluice::batching() |
      sluice::invoke([](const sluice::batch<sluice::record<std::string>>&) {});
}
