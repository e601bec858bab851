// The JSON payload reader of sluice::filter_criteria (sluice/json.hpp) against the reader it
// replaced: the structural walk (simdjson's stage 1, then one walk that checks the payload and
// collects the addressed values) must answer exactly as the On-Demand reader (an extracting walk,
// then a walk that checks every value) on whether a payload is JSON and on the values it collects
// (kind and text, in order) for every addressed field, whether it reads a padded copy or the
// payload where it lies: on the conformance table's payloads, on
// hand-written edge cases (numbers, literals, escapes, white space, grammar, nesting) and on
// 20,000 seeded mutations of JSON documents.
#include <gtest/gtest.h>

#include <cstddef>
#include <random>
#include <sluice/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "filter/filter_cases.hpp"

namespace {

namespace f = sluice::detail::filter;

struct reading {
  bool json = false;
  std::vector<std::vector<std::pair<f::leaf_kind, std::string>>> values;  // per path
  bool operator==(const reading&) const = default;
};

/// Patterns that address the root, nested fields, a key with an escape and array elements.
const f::compiled_criteria& criteria() {
  static const f::compiled_criteria c(
      {R"({"data": {"a": ["x"], "b": {"c": ["x"], "d": {"e": ["x"]}}, "k\"q": ["x"]}})",
       R"({"data": ["x"]})", R"({"data": {"items": {"sku": ["x"], "n": [1]}, "é": ["x"]}})"},
      sluice::filter_limits{});
  return c;
}

enum class reader { structural_copy, structural_in_place, on_demand };

reading read(std::string_view text, reader how) {
  const f::compiled_criteria& c = criteria();
  f::scratch s;
  c.begin(s);
  f::field_reader r(c, s);
  reading out;
  std::string padded;
  if (how == reader::structural_copy) {
    out.json = f::read_json(text, text.size(), r);
  } else if (how == reader::structural_in_place) {  // read where it lies: no copy
    padded.reserve(text.size() + simdjson::SIMDJSON_PADDING);
    padded.assign(text);
    out.json = f::read_json(padded, padded.capacity(), r);
  } else {
    f::json_state& st = f::thread_json_state();
    out.json = f::read_json_on_demand(st, f::padded_copy(st, text), text, r);
  }
  if (!out.json) return out;  // the values of a payload that is not JSON are never used
  for (std::uint32_t p = 0; p < c.path_count(); ++p) {
    out.values.emplace_back();
    for (const f::leaf& v : s.values[p])
      out.values.back().emplace_back(v.kind, std::string(v.text));
  }
  return out;
}

void expect_same(std::string_view text) {
  const reading exact = read(text, reader::on_demand);
  for (reader how : {reader::structural_copy, reader::structural_in_place}) {
    const reading fast = read(text, how);
    EXPECT_EQ(fast.json, exact.json) << "payload: " << text;
    EXPECT_TRUE(fast == exact) << "payload: " << text;
  }
}

TEST(JsonReader, AnswersAsTheOnDemandReaderOnTheConformancePayloads) {
  for (const auto& c : filter_conformance::match_cases) expect_same(c.event);
}

TEST(JsonReader, AnswersAsTheOnDemandReaderOnEdgeCases) {
  const std::string deep_ok = std::string(1000, '[') + std::string(1000, ']');
  // (Deeper than simdjson's 1,024 levels the On-Demand reader asserts in debug builds: both
  // readers leave such payloads to it, so there is nothing to compare.)
  std::string deep_object;
  for (int i = 0; i < 1000; ++i) deep_object += R"({"b": )";
  deep_object += "1" + std::string(1000, '}');
  const std::vector<std::string> cases = {R"({"a": "x", "b": {"c": "y", "d": {"e": 1}}})",
                                          R"(  {"a" :"x" ,"b":{ "c" : [ "y" , "z" ] } }  )",
                                          "\t{\"a\":\r\n\"x\"}\n",
                                          R"({"a": 0})",
                                          R"({"a": -0})",
                                          R"({"a": -0.0e+0})",
                                          R"({"a": 1E5})",
                                          R"({"a": 1.5e-10})",
                                          R"({"a": 300})",
                                          R"({"a": 300.0})",
                                          R"({"a": 3e2})",
                                          R"({"a": 1e400})",
                                          R"({"a": 123456789012345678901234567890})",
                                          R"({"a": -123456789012345678901234567890.5})",
                                          R"({"a": 01})",
                                          R"({"a": 1.})",
                                          R"({"a": .5})",
                                          R"({"a": -})",
                                          R"({"a": +1})",
                                          R"({"a": 1e})",
                                          R"({"a": 1e+})",
                                          R"({"a": 0x10})",
                                          R"({"a": 1 2})",
                                          R"({"a": NaN})",
                                          R"({"a": true})",
                                          R"({"a": false})",
                                          R"({"a": null})",
                                          R"({"a": tru})",
                                          R"({"a": truex})",
                                          R"({"a": nulll})",
                                          R"({"a": True})",
                                          R"({"a": t})",
                                          R"({"a": [true,false,null]})",
                                          R"({"a": "\u00e9\n\"\\\/\b\f\r\t"})",
                                          R"({"a": "\ud83d\ude00"})",
                                          R"({"a": "\ud800"})",
                                          R"({"a": "\udc00"})",
                                          R"({"a": "\ud800\u0041"})",
                                          R"({"a": "\u00zz"})",
                                          R"({"a": "\u0000"})",
                                          R"({"a": "\x"})",
                                          R"({"k\"q": "x"})",
                                          R"({"k\u0022q": "x"})",
                                          R"({"\u00e9": "x"})",
                                          R"({"é": "x"})",
                                          R"({"a\q": "x"})",
                                          R"({"a": "x\\"})",
                                          R"({"a": "\\\""})",
                                          R"({"a": ["x", ["y", ["z"]], {"c": 1}]})",
                                          R"({"items": [{"sku": "A", "n": 1}, {"sku": "B"}]})",
                                          R"({"items": {"sku": ["A", "B"], "n": [1, 2.5]}})",
                                          R"({"a": {"x": 1}})",
                                          R"({"a": []})",
                                          R"({"a": {}})",
                                          R"({})",
                                          R"([])",
                                          R"("x")",
                                          R"(  "x"  )",
                                          R"(12)",
                                          R"(-1.5)",
                                          R"(true)",
                                          R"(null)",
                                          R"(["x", "y"])",
                                          R"([{"a": "x"}])",
                                          R"("x" "y")",
                                          R"(1 2)",
                                          R"("abc"x)",
                                          R"({"a": "x"} x)",
                                          R"({"a": "x"}{"b": 1})",
                                          R"({"a": "x"}})",
                                          R"({"a": "x")",
                                          R"({"a" "x"})",
                                          R"({"a": })",
                                          R"({"a": "x",})",
                                          R"({,})",
                                          R"([,])",
                                          R"([1,])",
                                          R"([1 2])",
                                          R"({"a": 1 "b": 2})",
                                          R"({"a"; 1})",
                                          R"({a: 1})",
                                          R"({'a': 1})",
                                          R"({"a": [1, 2,], "b": "x"})",
                                          R"({1: 2})",
                                          R"({"a": {"c": nul}, "b": "x"})",
                                          R"(:)",
                                          R"(,)",
                                          R"(])",
                                          R"(})",
                                          R"({)",
                                          R"([)",
                                          R"(")",
                                          "",
                                          " ",
                                          "\n",
                                          "x",
                                          "{\"a\": \"\x01\"}",
                                          "{\"a\": \"\xff\"}",
                                          "{\"a\": \"\xc3\xa9\"}",
                                          "[1\f]",
                                          "{\"a\":\f1}",
                                          "\xef\xbb\xbf{\"a\": \"x\"}",
                                          std::string("{\"a\": \"x\"}\0", 11),
                                          deep_ok,
                                          deep_object};
  for (const auto& c : cases) expect_same(c);
}

TEST(JsonReader, AnswersAsTheOnDemandReaderOnMutatedDocuments) {
  const std::string seeds[] = {
      R"({"a": "x", "b": {"c": ["y", 1.5, true], "d": {"e": null}}, "k\"q": "z", "n": -2e3})",
      R"({"items": [{"sku": "A-1", "n": 1}, {"sku": "B\u0041", "n": [2, 3]}], "é": "\ud83d\ude00"})",
      R"([{"a": "x"}, "y", 12, false, {"b": {"c": "\n"}}])",
  };
  const std::string alphabet = R"({}[]:,"\ -+.0123456789eEtruefalsn x\u)";
  std::mt19937 rng(11);
  for (int i = 0; i < 20000; ++i) {
    std::string doc = seeds[rng() % std::size(seeds)];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      const std::size_t at = rng() % (doc.size() + 1);
      const char ch = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          if (at < doc.size()) doc[at] = ch;
          break;
        case 1:
          doc.insert(at, 1, ch);
          break;
        default:
          if (at < doc.size()) doc.erase(at, 1);
      }
    }
    expect_same(doc);
    if (HasFailure()) return;  // the first difference is enough to read
  }
}

}  // namespace

namespace {

// Nesting deeper than the reader's limit (1,024 levels, simdjson's default) is "not JSON" for
// the filter (RFC 8259, section 9, lets a parser limit nesting): every pattern that addresses
// data fails, and the reader answers without crashing in any build. 1,024 levels still read.
TEST(JsonReader, NestingDeeperThanTheLimitIsNotJson) {
  auto nested = [](int depth, std::string_view inner) {
    return std::string(static_cast<std::size_t>(depth), '[') + std::string(inner) +
           std::string(static_cast<std::size_t>(depth), ']');
  };
  for (reader how : {reader::structural_copy, reader::structural_in_place}) {
    EXPECT_TRUE(read(nested(1024, "1"), how).json);
    EXPECT_FALSE(read(nested(1025, "1"), how).json);
    EXPECT_FALSE(read(nested(5000, "1"), how).json);
    EXPECT_FALSE(read(nested(5000, "nul"), how).json);  // deep and invalid
    for (int depth : {1020, 1021, 1022, 1023, 1024})
      EXPECT_FALSE(read(nested(depth, "nul"), how).json);
    EXPECT_FALSE(read("[nul, " + nested(5000, "1") + "]", how).json);  // invalid before deep
    EXPECT_FALSE(read("{\"a\": " + nested(3000, "{}") + "}", how).json);
  }
}

}  // namespace
