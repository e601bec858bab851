// Compile-time patterns are compiled at compile time: the matcher of filter_criteria<"...">() is
// a constexpr variable (its tables are checked by static_assert below), and evaluating it on
// values given in a constant expression is itself a constant expression. Run-time patterns build
// the same tables with the same compiler. The `numeric` bounds come from a constexpr, correctly
// rounded decimal -> double conversion, checked here against std::from_chars.
#include <gtest/gtest.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sluice/json.hpp>
#include <sluice/sluice.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace f = sluice::detail::filter;
using f::decimal_to_double;

// ---- decimal -> double at compile time ---------------------------------------------------------
static_assert(decimal_to_double("0") == 0.0);
static_assert(decimal_to_double("100") == 100.0);
static_assert(decimal_to_double("0.1") == 0.1);
static_assert(decimal_to_double("-1.5") == -1.5);
static_assert(decimal_to_double("1e23") == 1e23);  // the classic hard case of naive conversion
static_assert(decimal_to_double("8.5e-3") == 8.5e-3);
static_assert(decimal_to_double("1E+2") == 100.0);
// 2^53 + 1 lies halfway between two doubles: ties to the even one, 2^53.
static_assert(decimal_to_double("9007199254740993") == 9007199254740992.0);
static_assert(decimal_to_double("9007199254740995") == 9007199254740996.0);
// Just above the halfway point: rounds up (a digit far past the 17th decides).
static_assert(decimal_to_double("9007199254740993.0000000000000000001") == 9007199254740994.0);
static_assert(decimal_to_double("1.7976931348623157e308") == std::numeric_limits<double>::max());
static_assert(decimal_to_double("1e400") == std::numeric_limits<double>::infinity());
static_assert(decimal_to_double("-1e400") == -std::numeric_limits<double>::infinity());
static_assert(decimal_to_double("2.2250738585072014e-308") ==
              std::numeric_limits<double>::min());  // the smallest normal
static_assert(decimal_to_double("4.9406564584124654e-324") ==
              std::numeric_limits<double>::denorm_min());  // the smallest subnormal
static_assert(decimal_to_double("2.4703282292062328e-324") ==
              std::numeric_limits<double>::denorm_min());            // just above half of it
static_assert(decimal_to_double("2.4703282292062327e-324") == 0.0);  // just below
static_assert(decimal_to_double("1e-400") == 0.0);

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

/// The conversion agrees with std::from_chars wherever from_chars gives a value.
void expect_as_from_chars(const std::string& text, long& compared) {
  double expected = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), expected);
  if (ec != std::errc()) {  // out of range: ours is +-infinity or +-0
    const double got = decimal_to_double(text);
    EXPECT_TRUE(got == 0 || got == std::numeric_limits<double>::infinity() ||
                got == -std::numeric_limits<double>::infinity())
        << text;
    return;
  }
  ASSERT_EQ(ptr, text.data() + text.size()) << text;
  const double got = decimal_to_double(text);
  EXPECT_TRUE(same_bits(got, expected)) << text << ": " << got << " != " << expected;
  ++compared;
}

TEST(FilterDecimal, CorrectlyRoundedAsFromChars) {
  long compared = 0;
  for (const char* t :
       {"0",
        "-0",
        "0.0",
        "1",
        "-1",
        "5e-324",
        "3e-324",
        "1e-323",
        "2.2250738585072011e-308",
        "2.2250738585072012e-308",
        "1.7976931348623158e308",
        "4503599627370496.5",
        "4503599627370497.5",
        "123456789012345678901234567890",
        "0.000000000000000000000000000001",
        "1.00000000000000011102230246251565404236316680908203125",  // halfway 1 and its next
        "1.00000000000000011102230246251565404236316680908203124",
        "1.00000000000000011102230246251565404236316680908203126",
        "7.038531e-26",
        "9007199254740993",
        "0.30000000000000004",
        "1e22",
        "1e23",
        "1e-22",
        "1e308",
        "5e-310"})
    expect_as_from_chars(t, compared);
  std::mt19937_64 g(20261128);
  for (int i = 0; i < 8000; ++i) {  // random decimal texts: 1..25 digits, point, exponent
    std::string s;
    if (g() % 2 == 0) s += '-';
    const int digits = 1 + static_cast<int>(g() % 25);
    s += static_cast<char>('1' + g() % 9);
    for (int k = 1; k < digits; ++k) s += static_cast<char>('0' + g() % 10);
    if (g() % 2 == 0)  // a point after the first digit at the earliest
      s.insert(s.size() - static_cast<std::size_t>(g() % digits), ".");
    if (s.back() == '.') s += '5';
    if (g() % 3 != 0) s += "e" + std::to_string(static_cast<int>(g() % 700) - 350);
    expect_as_from_chars(s, compared);
  }
  for (int i = 0; i < 4000; ++i) {  // random doubles: shortest text, 17 digits, 40 digits
    const std::uint64_t bits = g() & 0x7FEFFFFFFFFFFFFFu;
    double x = 0;
    std::memcpy(&x, &bits, sizeof x);
    char buf[80];
    auto r = std::to_chars(buf, buf + sizeof buf, x);
    expect_as_from_chars(std::string(buf, r.ptr), compared);
    r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific, 16);
    expect_as_from_chars(std::string(buf, r.ptr), compared);
    r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific, 40);
    expect_as_from_chars(std::string(buf, r.ptr), compared);
  }
  EXPECT_GT(compared, 15000);
}

// ---- the compile-time matcher is a constant --------------------------------------------------
using paid =
    f::static_criteria<R"({"data": {"status": ["paid"], "amount": [{"numeric": [">", 100.5]}]}})",
                       R"({"partitionKey": [{"prefix": "eu-"}]})">;

// The tables exist at compile time: two paths under data and one metadata path, 3 fields.
static_assert(paid::view.path_count() == 3);
static_assert(paid::view.header.pattern_count == 2 && paid::view.header.field_count == 3);
static_assert(paid::view.data_path("status") != f::npos32);
static_assert(paid::view.data_path("amount") != f::npos32);
static_assert(paid::view.data_path("customer") == f::npos32);
static_assert(paid::view.metadata_path(f::metadata::partition_key) != f::npos32);
static_assert(paid::tables.listed[0].kind == f::op::numeric &&
              paid::tables.listed[0].lower == 100.5);

/// Evaluates `paid` on values given directly (no JSON), in a constant expression when the
/// arguments are constants.
constexpr bool paid_matches(std::string_view status, std::string_view amount,
                            std::string_view key) {
  f::eval_state s;
  paid::view.begin(s);
  if (!status.empty())
    s.values[paid::view.data_path("status")].push_back({f::leaf_kind::string, status});
  if (!amount.empty())
    s.values[paid::view.data_path("amount")].push_back({f::leaf_kind::number, amount});
  s.values[paid::view.metadata_path(f::metadata::partition_key)].push_back(
      {f::leaf_kind::string, key});
  return paid::view.evaluate(s, true);
}
static_assert(paid_matches("paid", "150", "us-1"));
static_assert(paid_matches("paid", "100.50000000000001", "us-1"));
static_assert(!paid_matches("paid", "100.5", "us-1"));
static_assert(!paid_matches("paid", "1e400", "us-1"));  // out of range: no numeric match
static_assert(!paid_matches("open", "150", "us-1"));
static_assert(!paid_matches("paid", "", "us-1"));
static_assert(paid_matches("open", "", "eu-west"));  // the second pattern

TEST(FilterStaticMatcher, ConstantEvaluationAndRunTimeEvaluationAgree) {
  // The same calls at run time (the static_asserts above ran them at compile time).
  EXPECT_TRUE(paid_matches("paid", "150", "us-1"));
  EXPECT_FALSE(paid_matches("paid", "100.5", "us-1"));
  EXPECT_FALSE(paid_matches("paid", "1e400", "us-1"));
  EXPECT_TRUE(paid_matches("open", "", "eu-west"));
}

TEST(FilterStaticMatcher, RunTimePatternsCompileToTheSameTables) {
  const std::vector<std::string_view> texts{
      R"({"data": {"status": ["paid"], "amount": [{"numeric": [">", 100.5]}]}})",
      R"({"partitionKey": [{"prefix": "eu-"}]})"};
  const f::compiled_criteria run_time(texts, sluice::filter_limits{});
  const f::matcher_view& r = run_time.view();
  const f::matcher_view& c = paid::view;
  constexpr f::table_sizes sizes = paid::sizes;
  EXPECT_EQ(r.path_count(), c.path_count());
  EXPECT_EQ(r.header.field_count, c.header.field_count);
  EXPECT_EQ(r.header.pattern_count, c.header.pattern_count);
  EXPECT_EQ(std::string_view(r.chars, sizes.chars), std::string_view(c.chars, sizes.chars));
  EXPECT_EQ(std::memcmp(r.ids, c.ids, sizes.ids * sizeof *r.ids), 0);
  EXPECT_EQ(r.data_path("amount"), c.data_path("amount"));
  EXPECT_EQ(r.listed[0].lower, c.listed[0].lower);
}

TEST(FilterStaticMatcher, ManyValuesUseTheHashedIndexAtCompileTimeToo) {
  // More than 8 exact values on one path: the compiler builds the hashed slots.
  using many = f::static_criteria<
      R"({"data": {"c": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"]}})">;
  static_assert(many::tables.paths[0].strings.slots.size >= 16);
  std::vector<sluice::record<std::string>> records;
  auto stage = sluice::filter_criteria<
      R"({"data": {"c": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"]}})">();
  for (char ch = 'a'; ch <= 'z'; ++ch) {
    const sluice::record<std::string> rec{"k", 1, sluice::time_point{},
                                          std::string(R"({"c": ")") + ch + "\"}"};
    EXPECT_EQ(stage.pred(rec), ch <= 'l') << ch;
  }
}

}  // namespace
