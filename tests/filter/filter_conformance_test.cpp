// The pattern language's conformance table (filter_cases.hpp), run with run-time patterns and
// with compile-time patterns (every case's pattern is also a template argument): both must give
// the expected answer, and invalid patterns must be rejected with the expected rule and position
// by the run-time check and by the compile-time check alike.
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <sluice/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "filter/filter_cases.hpp"

namespace {

using namespace filter_conformance;
using R = sluice::record<std::string>;

constexpr std::size_t n_match = std::size(match_cases);
constexpr std::size_t n_error = std::size(error_cases);
static_assert(n_match + n_error >= 200, "the suite has at least 200 cases");

R record_of(const match_case& c) {
  return R{std::string(c.key), 7, sluice::time_point(std::chrono::milliseconds(1'545'084'650'987)),
           std::string(c.event)};
}

template <const std::string_view* Text>
constexpr auto as_literal() {
  sluice::fixed_string<Text->size() + 1> f{};
  for (std::size_t i = 0; i < Text->size(); ++i) f.chars[i] = (*Text)[i];
  return f;
}

template <std::size_t I>
struct pattern_of {
  static constexpr std::string_view text = match_cases[I].pattern;
};

template <std::size_t... I>
std::vector<bool> compile_time_answers(std::index_sequence<I...>) {
  return {sluice::filter_criteria<as_literal<&pattern_of<I>::text>()>().pred(
      record_of(match_cases[I]))...};
}

template <std::size_t I>
struct error_pattern_of {
  static constexpr std::string_view text = error_cases[I].pattern;
};
template <std::size_t... I>
constexpr bool compile_time_errors_as_expected(std::index_sequence<I...>) {
  return (
      (sluice::detail::filter::first_error<as_literal<&error_pattern_of<I>::text>()>().rule ==
           error_cases[I].rule &&
       sluice::detail::filter::first_error<as_literal<&error_pattern_of<I>::text>()>().position ==
           expected_position(error_cases[I])) &&
      ...);
}

TEST(FilterConformance, RunTimePatternsGiveTheExpectedAnswer) {
  for (std::size_t i = 0; i < n_match; ++i) {
    const auto& c = match_cases[i];
    auto stage = sluice::filter_criteria(c.pattern);
    EXPECT_EQ(stage.pred(record_of(c)), c.expected)
        << "case " << i << ": pattern " << c.pattern << " event " << c.event << " key " << c.key;
  }
}

TEST(FilterConformance, CompileTimePatternsGiveTheExpectedAnswer) {
  const std::vector<bool> answers = compile_time_answers(std::make_index_sequence<n_match>());
  ASSERT_EQ(answers.size(), n_match);
  for (std::size_t i = 0; i < n_match; ++i)
    EXPECT_EQ(answers[i], match_cases[i].expected)
        << "case " << i << ": pattern " << match_cases[i].pattern << " event "
        << match_cases[i].event;
}

TEST(FilterConformance, RunTimeErrorsNameThePatternThePositionAndTheRule) {
  for (std::size_t i = 0; i < n_error; ++i) {
    const auto& c = error_cases[i];
    try {
      sluice::filter_criteria(R"({"partitionKey": ["ok"]})", c.pattern);
      ADD_FAILURE() << "case " << i << " accepted: " << c.pattern;
    } catch (const sluice::filter_pattern_error& e) {
      EXPECT_EQ(e.pattern_index(), 1u) << c.pattern;
      EXPECT_EQ(e.rule(), c.rule) << "case " << i << ": " << c.pattern << "\n" << e.what();
      EXPECT_EQ(e.position(), expected_position(c)) << "case " << i << ": " << c.pattern << "\n"
                                                    << e.what();
      EXPECT_NE(std::string(e.what()).find("pattern 1 is invalid at character " +
                                           std::to_string(expected_position(c))),
                std::string::npos)
          << e.what();
    }
  }
}

// The compile-time check is a constant expression: checked here by static_assert, over the same
// table (the compile-fail tests show the error a user sees).
static_assert(compile_time_errors_as_expected(std::make_index_sequence<n_error>()));

}  // namespace
