// libFuzzer target over sluice::filter_criteria (issue 11). An input is up to three lines:
//   pattern A \n pattern B \n event payload
// Each pattern goes through the parser (a rejected one must be a filter_pattern_error naming a
// position inside the text, nothing else may escape). When both are accepted, the event is
// matched as a JSON payload, and the one matcher over both patterns must answer as the two
// matchers alone OR-ed (the shared index and the gating must not change an answer). The payload
// is also read by both JSON readers of sluice/json.hpp for pattern A's fields: the structural
// walk (from a copy and in place) must answer as the On-Demand reader, on whether the payload is
// JSON and on every collected value. ASan and UBSan watch the parser, the matcher and the walks.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sluice/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using R = sluice::record<std::string>;
const sluice::filter_limits limits{.max_patterns = 5, .max_pattern_chars = 1 << 16};

bool accepted(std::string_view pattern) {
  try {
    sluice::filter_criteria(limits, pattern);
    return true;
  } catch (const sluice::filter_pattern_error& e) {
    if (e.position() > pattern.size()) std::abort();  // an error points into the text
    return false;
  }
}

namespace f = sluice::detail::filter;

/// What a JSON reader makes of a payload: JSON or not, and if JSON the values per path.
std::pair<bool, std::vector<std::vector<std::pair<f::leaf_kind, std::string>>>> read_with(
    const f::compiled_criteria& c, std::string_view text, int how) {
  f::scratch s;
  c.begin(s);
  f::field_reader r(c, s);
  std::string in_place;
  bool json = false;
  if (how == 0) {
    json = f::read_json(text, text.size(), r);
  } else if (how == 1) {
    in_place.reserve(text.size() + simdjson::SIMDJSON_PADDING);
    in_place.assign(text);
    json = f::read_json(in_place, in_place.capacity(), r);
  } else {
    f::json_state& st = f::thread_json_state();
    json = f::read_json_on_demand(st, f::padded_copy(st, text), text, r);
  }
  std::vector<std::vector<std::pair<f::leaf_kind, std::string>>> values;
  if (json)
    for (std::uint32_t p = 0; p < c.path_count(); ++p) {
      values.emplace_back();
      for (const f::leaf& v : s.values[p]) values.back().emplace_back(v.kind, std::string(v.text));
    }
  return {json, values};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view parts[3];
  for (int i = 0; i < 2; ++i) {
    const std::size_t nl = in.find('\n');
    parts[i] = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
  }
  parts[2] = in;
  const bool a = accepted(parts[0]);
  const bool b = accepted(parts[1]);
  if (!a || !b) return 0;
  const R r{"k1", 7, {}, std::string(parts[2])};
  const bool alone_a = sluice::filter_criteria(limits, parts[0]).pred(r);
  const bool alone_b = sluice::filter_criteria(limits, parts[1]).pred(r);
  const bool both = sluice::filter_criteria(limits, parts[0], parts[1]).pred(r);
  if (both != (alone_a || alone_b)) std::abort();
  const f::compiled_criteria c(std::vector<std::string_view>{parts[0]}, limits);
  // The On-Demand reader must not see deep nesting (it asserts; read_json answers "not JSON"
  // beyond 1,024 levels): brackets counted naively, strings included, so this skips more.
  int depth = 0, deepest = 0;
  for (const char ch : parts[2]) {
    if (ch == '[' || ch == '{') deepest = std::max(deepest, ++depth);
    if (ch == ']' || ch == '}') --depth;
  }
  if (deepest > 1000) return 0;
  const auto exact = read_with(c, parts[2], 2);
  if (read_with(c, parts[2], 0) != exact || read_with(c, parts[2], 1) != exact) std::abort();
  return 0;
}
