// sluice::filter_criteria in a mapping and around the pattern table: filtered records are
// finished and counted like any filter's (S-6.1), several patterns are OR-ed, many patterns in
// one matcher answer as each pattern alone would, limits are Lambda's by default and
// configurable, a user type exposes its fields through sluice::filter_fields.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <sluice/json.hpp>
#include <sluice/sluice.hpp>
#include <string>
#include <vector>

namespace {

using R = sluice::record<std::string>;
using seqs = std::vector<sluice::sequence_number_t>;

R rec(std::string key, sluice::sequence_number_t seq, std::string payload) {
  return R{std::move(key), seq, sluice::time_point{}, std::move(payload)};
}

TEST(FilterCriteria, DroppedRecordsAreFinishedCountedAndNeverHandedOver) {
  std::vector<R> records{rec("a", 1, R"({"status": "paid", "amount": 150})"),
                         rec("a", 2, R"({"status": "paid", "amount": 50})"),
                         rec("a", 3, R"({"status": "open", "amount": 500})"),
                         rec("a", 4, R"(not json)"),
                         rec("a", 5, R"({"status": "paid", "amount": 101})"),
                         rec("a", 6, R"({"status": "paid"})")};
  seqs seen;
  const auto metrics = sluice::run(
      sluice::from(records) |
      sluice::filter_criteria(
          R"({"data": {"status": ["paid"], "amount": [{"numeric": [">", 100]}]}})") |
      sluice::batching(sluice::batch_size(100)) | sluice::invoke([&](const sluice::batch<R>& b) {
        for (const auto& r : b) seen.push_back(r.sequence);
      }));
  EXPECT_EQ(seen, (seqs{1, 5}));
  EXPECT_EQ(metrics.total.polled_event_count, 6u);
  EXPECT_EQ(metrics.total.filtered_out_event_count, 4u);
  EXPECT_EQ(metrics.total.invoked_event_count, 2u);
  EXPECT_EQ(metrics.shards.at(0).checkpoint, 6u);  // the filtered tail is finished too (S-6.1)
}

TEST(FilterCriteria, CompileTimePatternsAreAFilterStageToo) {
  std::vector<R> records{rec("k1", 1, R"({"a": 1})"), rec("k2", 2, R"({"a": 2})"),
                         rec("k1", 3, R"({"a": 3})")};
  seqs seen;
  const auto metrics = sluice::run(
      sluice::from(records) |
      sluice::filter_criteria<R"({"partitionKey": ["k1"]})", R"({"data": {"a": [3]}})">() |
      sluice::batching() | sluice::invoke([&](const sluice::batch<R>& b) {
        for (const auto& r : b) seen.push_back(r.sequence);
      }));
  EXPECT_EQ(seen, (seqs{1, 3}));
  EXPECT_EQ(metrics.total.filtered_out_event_count, 1u);
}

TEST(FilterCriteria, PatternsAreOredAndAFilterAfterThemStillRuns) {
  std::vector<R> records{rec("a", 1, R"({"t": "x"})"), rec("a", 2, R"({"t": "y"})"),
                         rec("a", 3, R"({"t": "z"})"), rec("b", 4, R"({"t": "x"})")};
  seqs seen;
  sluice::run(sluice::from(records) |
              sluice::filter_criteria(R"({"data": {"t": ["x"]}})", R"({"data": {"t": ["y"]}})") |
              sluice::filter([](const R& r) { return r.key == "a"; }) | sluice::batching() |
              sluice::invoke([&](const sluice::batch<R>& b) {
                for (const auto& r : b) seen.push_back(r.sequence);
              }));
  EXPECT_EQ(seen, (seqs{1, 2}));
}

TEST(FilterCriteria, LimitsAreLambdasByDefaultAndConfigurable) {
  const std::string p = R"({"data": {"a": ["x"]}})";
  EXPECT_NO_THROW(sluice::filter_criteria(p, p, p, p, p));
  try {
    sluice::filter_criteria(p, p, p, p, p, p);
    ADD_FAILURE() << "six patterns accepted";
  } catch (const sluice::filter_pattern_error& e) {
    EXPECT_EQ(e.rule(), sluice::pattern_rule::too_many_patterns);
    EXPECT_EQ(e.pattern_index(), 5u);
    EXPECT_NE(std::string(e.what()).find("at most 5 patterns"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(
      sluice::filter_criteria(sluice::filter_limits{.max_patterns = 6}, p, p, p, p, p, p));

  std::string long_pattern = R"({"data": {"a": [")" + std::string(5000, 'x') + R"("]}})";
  try {
    sluice::filter_criteria(long_pattern);
    ADD_FAILURE() << "a pattern over 4096 characters accepted";
  } catch (const sluice::filter_pattern_error& e) {
    EXPECT_EQ(e.rule(), sluice::pattern_rule::pattern_too_long);
    EXPECT_EQ(e.position(), 4096u);
    EXPECT_NE(std::string(e.what()).find("at most 4096 characters"), std::string::npos);
  }
  auto wide =
      sluice::filter_criteria(sluice::filter_limits{.max_pattern_chars = 8192}, long_pattern);
  EXPECT_TRUE(wide.pred(rec("k", 1, R"({"a": ")" + std::string(5000, 'x') + R"("})")));

  // Lambda's FilterCriteria.Filters as a list.
  auto listed = sluice::filter_criteria(std::vector<std::string>{p, R"({"partitionKey": ["z"]})"});
  EXPECT_TRUE(listed.pred(rec("z", 1, "{}")));
  EXPECT_TRUE(listed.pred(rec("k", 1, R"({"a": "x"})")));
  EXPECT_FALSE(listed.pred(rec("k", 1, R"({"a": "y"})")));
}

TEST(FilterCriteria, TheErrorNamesTheFailingPatternAmongSeveral) {
  try {
    sluice::filter_criteria(R"({"data": {"a": ["x"]}})", R"({"data": {"a": ["x"]}})",
                            R"({"data": {"a": [{"numeric": [">", 5, "<", 1]}]}})");
    ADD_FAILURE() << "accepted";
  } catch (const sluice::filter_pattern_error& e) {
    EXPECT_EQ(e.pattern_index(), 2u);
    EXPECT_EQ(e.rule(), sluice::pattern_rule::numeric_range_empty);
    EXPECT_EQ(e.position(), 28u);
    EXPECT_EQ(
        std::string(e.what()).rfind("sluice: filter_criteria pattern 2 is invalid at character 28: "
                                    "numeric: the lower bound must be below the upper bound",
                                    0),
        0u)
        << e.what();
  }
}

TEST(FilterCriteria, NestingAndOrExpansionAreBounded) {
  std::string deep = R"({"data": )";
  for (int i = 0; i < 40; ++i) deep += R"({"a": )";
  deep += R"(["x"])";
  for (int i = 0; i < 41; ++i) deep += "}";
  try {
    sluice::filter_criteria(sluice::filter_limits{.max_pattern_chars = 100000}, deep);
    ADD_FAILURE() << "40 levels accepted";
  } catch (const sluice::filter_pattern_error& e) {
    EXPECT_EQ(e.rule(), sluice::pattern_rule::too_deep);
  }
  // 11 $or of two branches each: 2^11 = 2048 conjunctions.
  std::string ors = R"({"data": {)";
  for (int i = 0; i < 11; ++i) {
    if (i > 0) ors += ", ";
    ors += R"("f)" + std::to_string(i) + R"(": {"$or": [{"a": ["1"]}, {"b": ["1"]}]})";
  }
  ors += "}}";
  try {
    sluice::filter_criteria(ors);
    ADD_FAILURE() << "2048 conjunctions accepted";
  } catch (const sluice::filter_pattern_error& e) {
    EXPECT_EQ(e.rule(), sluice::pattern_rule::too_many_branches);
  }
}

// ---- many patterns in one matcher answer as the patterns one by one ---------------------------

std::string random_pattern(std::mt19937& rng) {
  const char* fields[] = {"a", "b", "c", "n"};
  const char* ops[] = {
      R"(["v1", "v2"])",
      R"([{"prefix": "v"}])",
      R"([{"anything-but": "v1"}])",
      R"([{"numeric": [">", 2, "<=", 7]}])",
      R"([{"exists": false}])",
      R"([{"exists": true}])",
      R"([3, 5])",
      R"([{"equals-ignore-case": "V3"}])",
      R"([{"wildcard": "*2"}])",
      R"([null])",
  };
  std::string p = R"({"data": {)";
  const int n = 1 + static_cast<int>(rng() % 3);
  bool used[4] = {};
  for (int i = 0; i < n; ++i) {
    int f = static_cast<int>(rng() % 4);
    if (used[f]) continue;
    used[f] = true;
    if (p.back() != '{') p += ", ";
    p += std::string("\"") + fields[f] + "\": " + ops[rng() % std::size(ops)];
  }
  return p + "}}";
}

std::string random_event(std::mt19937& rng) {
  const char* values[] = {R"("v1")", R"("v2")", R"("V3")", R"("x")",       "3",
                          "5",       "8",       "null",    R"(["v1", 3])", "[]"};
  const char* fields[] = {"a", "b", "c", "n"};
  std::string e = "{";
  for (const char* f : fields) {
    if (rng() % 3 == 0) continue;
    if (e.size() > 1) e += ", ";
    e += std::string("\"") + f + "\": " + values[rng() % std::size(values)];
  }
  return e + "}";
}

TEST(FilterCriteria, OneMatcherOverManyPatternsAnswersAsEachPatternAlone) {
  std::mt19937 rng(20261128);
  for (int round = 0; round < 40; ++round) {
    std::vector<std::string> patterns;
    for (int i = 0; i < 100; ++i) patterns.push_back(random_pattern(rng));
    auto all = sluice::filter_criteria(patterns, sluice::filter_limits{.max_patterns = 100});
    std::vector<sluice::filter_stage<sluice::criteria_matcher>> alone;
    for (const auto& p : patterns) alone.push_back(sluice::filter_criteria(p));
    for (int k = 0; k < 50; ++k) {
      const R r = rec("k", 1, random_event(rng));
      bool any = false;
      for (auto& s : alone) any = any || s.pred(r);
      ASSERT_EQ(all.pred(r), any) << r.payload;
    }
  }
}

TEST(FilterCriteria, LongValueListsAreHashedAndAnswerTheSame) {
  // More than 8 values on one path switch the index from a scanned list to a hash map.
  std::string list, ic;
  for (int i = 0; i < 20; ++i) {
    list += (i ? ", " : "") + std::string("\"v") + std::to_string(i) + "\", " + std::to_string(i);
    ic += (i ? ", " : "") + std::string(R"({"equals-ignore-case": "W)") + std::to_string(i) + "\"}";
  }
  auto f = sluice::filter_criteria(R"({"data": {"a": [)" + list + "]}}",
                                   R"({"data": {"b": [)" + ic + "]}}");
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(f.pred(rec("k", 1, R"({"a": "v)" + std::to_string(i) + R"("})")));
    EXPECT_TRUE(f.pred(rec("k", 1, R"({"a": )" + std::to_string(i) + "}")));
    EXPECT_TRUE(f.pred(rec("k", 1, R"({"b": "w)" + std::to_string(i) + R"("})")));
  }
  EXPECT_FALSE(f.pred(rec("k", 1, R"({"a": "v20"})")));
  EXPECT_FALSE(f.pred(rec("k", 1, R"({"a": 20})")));
  EXPECT_FALSE(f.pred(rec("k", 1, R"({"a": "V1"})")));
  EXPECT_FALSE(f.pred(rec("k", 1, R"({"b": "w20"})")));
}

// ---- a user type exposes its fields without JSON ----------------------------------------------

struct order {
  std::string status;
  double amount = 0;
  bool express = false;
  std::optional<std::string> coupon;
  std::vector<std::string> tags;
  std::string country;
};

}  // namespace

template <>
struct sluice::filter_fields<order> {
  static constexpr auto fields = std::make_tuple(
      sluice::field("status", &order::status), sluice::field("amount", &order::amount),
      sluice::field("express", &order::express), sluice::field("coupon", &order::coupon),
      sluice::field("tags", &order::tags),
      sluice::field("customer.country", [](const order& o) { return o.country; }));
};

// A field computed by applying other criteria: an evaluation inside an evaluation.
struct envelope {
  std::string kind;
  order inner;
};
template <>
struct sluice::filter_fields<envelope> {
  static bool inner_paid(const envelope& e) {
    static const auto paid = sluice::filter_criteria(R"({"data": {"status": ["paid"]}})");
    return paid.pred(sluice::record<order>{"k", 1, {}, e.inner});
  }
  static constexpr auto fields = std::make_tuple(sluice::field("kind", &envelope::kind),
                                                 sluice::field("inner_paid", &inner_paid));
};

namespace {

TEST(FilterCriteria, AGetterMayItselfApplyFilterCriteria) {
  // The outer evaluation has already collected "kind" when the getter runs the inner one; the
  // inner one must not clear it (each nesting level has its own scratch).
  using E = sluice::record<envelope>;
  auto f = sluice::filter_criteria(R"({"data": {"kind": ["order"], "inner_paid": [true]}})");
  order paid{"paid", 1.0, false, std::nullopt, {}, "FR"};
  order open = paid;
  open.status = "open";
  EXPECT_TRUE(f.pred(E{"k", 1, {}, envelope{"order", paid}}));
  EXPECT_FALSE(f.pred(E{"k", 1, {}, envelope{"order", open}}));
  EXPECT_FALSE(f.pred(E{"k", 1, {}, envelope{"refund", paid}}));
}

TEST(FilterCriteria, AUserTypeExposesItsFieldsThroughFilterFields) {
  using O = sluice::record<order>;
  auto f = sluice::filter_criteria(
      R"({"data": {"status": ["paid"], "amount": [{"numeric": [">=", 100]}], "express": [true],
                   "coupon": [{"exists": false}], "tags": [{"prefix": "vip"}],
                   "customer": {"country": ["FR", "DE"]}}})");
  order o{"paid", 100.0, true, std::nullopt, {"new", "vip-gold"}, "FR"};
  EXPECT_TRUE(f.pred(O{"k", 1, {}, o}));
  auto changed = o;
  changed.amount = 99.5;
  EXPECT_FALSE(f.pred(O{"k", 1, {}, changed}));
  changed = o;
  changed.coupon = "SAVE";
  EXPECT_FALSE(f.pred(O{"k", 1, {}, changed}));
  changed = o;
  changed.tags = {"new"};
  EXPECT_FALSE(f.pred(O{"k", 1, {}, changed}));
  changed = o;
  changed.country = "US";
  EXPECT_FALSE(f.pred(O{"k", 1, {}, changed}));
  changed = o;
  changed.express = false;
  EXPECT_FALSE(f.pred(O{"k", 1, {}, changed}));
  // A number's text is what std::to_chars writes: 100.0 is "100".
  auto exact = sluice::filter_criteria(R"({"data": {"amount": [100]}})");
  EXPECT_TRUE(exact.pred(O{"k", 1, {}, o}));
  // A field the type does not expose is absent.
  auto missing = sluice::filter_criteria(R"({"data": {"weight": [{"exists": false}]}})");
  EXPECT_TRUE(missing.pred(O{"k", 1, {}, o}));
}

TEST(FilterCriteria, IntegerKeysAndBytePayloads) {
  using B = sluice::record<std::vector<std::byte>, std::uint64_t>;
  const std::string text = R"({"a": "x"})";
  std::vector<std::byte> bytes(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) bytes[i] = static_cast<std::byte>(text[i]);
  auto f = sluice::filter_criteria(R"({"partitionKey": ["42"], "data": {"a": ["x"]}})");
  EXPECT_TRUE(f.pred(B{42, 1, {}, bytes}));
  EXPECT_FALSE(f.pred(B{43, 1, {}, bytes}));
}

}  // namespace
