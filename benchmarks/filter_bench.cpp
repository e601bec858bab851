// benchmarks/filter_bench.cpp (issue 11): how fast does sluice::filter_criteria decide, against
// what a programmer would write by hand?
//
// Workload: 1 Mi generated JSON order events of ~0.5 KB (nested objects, an array of items, an
// array of tags), fixed-seed PRNG, as sluice::record<std::string>. Each benchmark decides, for
// every record, whether it passes, and counts the passes (all variants must count the same; the
// binary aborts otherwise).
//   sluice:   filter_criteria(patterns...) at run time, and filter_criteria<...>() at compile
//             time (1 and 5 patterns; compile-time patterns are limited to Lambda's 5), calling
//             the stage's predicate as the mapping's per-record path does.
//   floor:    simdjson On-Demand (the same library; like sluice it reads the payload where it
//             lies when the string's capacity leaves simdjson's padding, else a padded copy)
//             walking the object once, extracting exactly the fields the patterns test, then a
//             hand-written comparison (for 100 patterns: a loop over 100 small structs).
//   nlohmann: nlohmann::json::parse of the payload, then the same hand-written comparison.
// Pattern sets: 1 pattern (status, amount range, country list), 5 patterns (also tier, sku
// prefix, currency + amount, shipping method), 100 patterns (status x country x amount).
// Targets (issue 11): 1-5 patterns within 1.3x the floor's time; 100 patterns within 3x one
// pattern's time; >= 10x faster than nlohmann; compile-time at least as fast as run-time.
#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/bench.hpp"
#include "sluice/filter_criteria.hpp"
#include "sluice/json.hpp"

namespace {

using R = sluice::record<std::string>;
constexpr std::size_t kEvents = std::size_t{1} << 20;

const char* const statuses[] = {"paid", "paid", "open", "refunded", "cancelled"};
const char* const countries[] = {"FR", "DE", "US", "GB", "JP", "ES", "IT", "NL", "BE", "CH",
                                 "SE", "NO", "DK", "PL", "PT", "AT", "IE", "CA", "AU", "BR"};
const char* const tiers[] = {"gold", "silver", "bronze"};
const char* const currencies[] = {"EUR", "USD", "JPY", "GBP"};
const char* const methods[] = {"standard", "express", "overnight"};

std::vector<R> make_events() {
  std::mt19937_64 rng(11);
  std::vector<R> v;
  v.reserve(kEvents);
  std::string note(160, 'x');
  for (std::size_t i = 0; i < kEvents; ++i) {
    auto pick = [&](const auto& a) { return a[rng() % std::size(a)]; };
    char amount[32];
    std::snprintf(amount, sizeof amount, "%u.%02u", static_cast<unsigned>(rng() % 400),
                  static_cast<unsigned>(rng() % 100));
    std::string e = R"({"id":"ord-)" + std::to_string(i) + R"(","status":")" + pick(statuses) +
                    R"(","amount":)" + amount + R"(,"currency":")" + pick(currencies) +
                    R"(","created":"2026-11-28T07:45:00Z","customer":{"id":"c-)" +
                    std::to_string(rng() % 100000) + R"(","country":")" + pick(countries) +
                    R"(","tier":")" + pick(tiers) + R"(","email":"user)" +
                    std::to_string(rng() % 100000) +
                    R"(@example.com","tags":["new","newsletter"]},"items":[)";
    const int items = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < items; ++k) {
      if (k > 0) e += ',';
      e += R"({"sku":")" + std::string(1, static_cast<char>('A' + rng() % 26)) + "-" +
           std::to_string(rng() % 10000) + R"(","qty":)" + std::to_string(1 + rng() % 4) +
           R"(,"price":)" + std::to_string(rng() % 100) + ".99}";
    }
    e += R"(],"shipping":{"method":")" + std::string(pick(methods)) +
         R"(","address":{"city":"Paris","zip":"75001"}},"note":")" + note + R"("})";
    v.push_back(R{"k" + std::to_string(i % 64), i + 1, {}, std::move(e)});
  }
  return v;
}

const std::vector<R>& events() {
  static const std::vector<R> v = make_events();
  return v;
}

// ---- the pattern sets, as JSON and as the structs the hand-written code compares ------------

const char* const p1 =
    R"({"data": {"status": ["paid"], "amount": [{"numeric": [">", 100]}], "customer": {"country": ["FR", "DE"]}}})";
const char* const p5[] = {
    p1,
    R"({"data": {"status": ["refunded"], "customer": {"tier": ["gold"]}}})",
    R"({"data": {"items": {"sku": [{"prefix": "Z-"}]}}})",
    R"({"data": {"currency": ["JPY"], "amount": [{"numeric": [">=", 390]}]}})",
    R"({"data": {"shipping": {"method": ["overnight"]}, "customer": {"country": ["US"]}}})",
};

struct hand_pattern {
  std::string status, country;
  double above;
};
std::vector<hand_pattern> hand_100() {
  std::vector<hand_pattern> v;
  for (int i = 0; i < 100; ++i)
    v.push_back({statuses[1 + i % 4], countries[i % 20], static_cast<double>((i * 37) % 380)});
  return v;
}
std::vector<std::string> json_100() {
  std::vector<std::string> out;
  for (const auto& h : hand_100()) {
    char amount[32];
    std::snprintf(amount, sizeof amount, "%g", h.above);
    out.push_back(R"({"data": {"status": [")" + h.status + R"("], "customer": {"country": [")" +
                  h.country + R"("]}, "amount": [{"numeric": [">", )" + amount + "]}]}}");
  }
  return out;
}

/// The fields the hand-written matchers compare.
struct extracted {
  std::string_view status, currency, country, tier, method;
  double amount = 0;
  bool has_amount = false;
  std::string_view skus[8];
  int n_skus = 0;
};

bool hand_match_1(const extracted& x) {
  return x.status == "paid" && x.has_amount && x.amount > 100 &&
         (x.country == "FR" || x.country == "DE");
}
bool hand_match_5(const extracted& x) {
  if (hand_match_1(x)) return true;
  if (x.status == "refunded" && x.tier == "gold") return true;
  for (int i = 0; i < x.n_skus; ++i)
    if (x.skus[i].starts_with("Z-")) return true;
  if (x.currency == "JPY" && x.has_amount && x.amount >= 390) return true;
  return x.method == "overnight" && x.country == "US";
}
bool hand_match_100(const extracted& x, const std::vector<hand_pattern>& ps) {
  for (const auto& p : ps)
    if (x.status == p.status && x.country == p.country && x.has_amount && x.amount > p.above)
      return true;
  return false;
}

// ---- the floor: simdjson On-Demand, one walk, hand-written comparison -------------------------

struct simdjson_extractor {
  simdjson::ondemand::parser parser;
  std::string padded;

  /// all: extract every field hand_match_5 needs (else only status, amount, country).
  bool extract(const std::string& text, extracted& x, bool all) {
    // Read where it lies when the string's capacity leaves simdjson its padding (as sluice
    // does), else from a padded copy.
    simdjson::padded_string_view view(text);
    if (view.padding() < simdjson::SIMDJSON_PADDING) {
      if (padded.size() < text.size() + simdjson::SIMDJSON_PADDING)
        padded.resize(text.size() + simdjson::SIMDJSON_PADDING);
      std::memcpy(padded.data(), text.data(), text.size());
      view = simdjson::padded_string_view(padded.data(), text.size(), padded.size());
    }
    simdjson::ondemand::document doc;
    if (parser.iterate(view).get(doc)) return false;
    simdjson::ondemand::object o;
    if (doc.get_object().get(o)) return false;
    for (auto field : o) {
      std::string_view key;
      if (field.unescaped_key().get(key)) return false;
      if (key == "status") {
        if (field.value().get_string().get(x.status)) return false;
      } else if (key == "amount") {
        if (field.value().get_double().get(x.amount)) return false;
        x.has_amount = true;
      } else if (key == "customer") {
        simdjson::ondemand::object c;
        if (field.value().get_object().get(c)) return false;
        for (auto cf : c) {
          std::string_view ck;
          if (cf.unescaped_key().get(ck)) return false;
          if (ck == "country") {
            if (cf.value().get_string().get(x.country)) return false;
          } else if (all && ck == "tier") {
            if (cf.value().get_string().get(x.tier)) return false;
          }
        }
      } else if (!all) {
        continue;
      } else if (key == "currency") {
        if (field.value().get_string().get(x.currency)) return false;
      } else if (key == "items") {
        simdjson::ondemand::array a;
        if (field.value().get_array().get(a)) return false;
        for (auto item : a) {
          simdjson::ondemand::object io;
          if (item.get_object().get(io)) return false;
          for (auto f : io) {
            std::string_view ik;
            if (f.unescaped_key().get(ik)) return false;
            if (ik == "sku" && x.n_skus < 8) {
              if (f.value().get_string().get(x.skus[x.n_skus++])) return false;
            }
          }
        }
      } else if (key == "shipping") {
        simdjson::ondemand::object s;
        if (field.value().get_object().get(s)) return false;
        for (auto sf : s) {
          std::string_view sk;
          if (sf.unescaped_key().get(sk)) return false;
          if (sk == "method" && sf.value().get_string().get(x.method)) return false;
        }
      }
    }
    return true;
  }
};

// ---- nlohmann::json: parse, then the same comparison ------------------------------------------

bool nlohmann_extract(const std::string& text, nlohmann::json& j, extracted& x, bool all) {
  j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return false;
  auto str = [](const nlohmann::json& o, const char* k) -> std::string_view {
    auto it = o.find(k);
    if (it == o.end() || !it->is_string()) return {};
    return it->get_ref<const std::string&>();
  };
  x.status = str(j, "status");
  if (auto it = j.find("amount"); it != j.end() && it->is_number()) {
    x.amount = it->get<double>();
    x.has_amount = true;
  }
  if (auto c = j.find("customer"); c != j.end() && c->is_object()) {
    x.country = str(*c, "country");
    if (all) x.tier = str(*c, "tier");
  }
  if (all) {
    x.currency = str(j, "currency");
    if (auto s = j.find("shipping"); s != j.end() && s->is_object()) x.method = str(*s, "method");
    if (auto items = j.find("items"); items != j.end() && items->is_array())
      for (const auto& item : *items)
        if (item.is_object() && x.n_skus < 8) {
          auto sv = str(item, "sku");
          if (!sv.empty()) x.skus[x.n_skus++] = sv;
        }
  }
  return true;
}

// ---- benchmarks --------------------------------------------------------------------------------

std::int64_t expected_1 = -1, expected_5 = -1, expected_100 = -1;

void check(std::int64_t& expected, std::int64_t got, const char* who) {
  if (expected < 0) expected = got;
  if (got != expected) {
    std::fprintf(stderr, "filter_bench: %s passed %lld records, another variant %lld\n", who,
                 static_cast<long long>(got), static_cast<long long>(expected));
    std::abort();
  }
}

template <class Pred>
void run_pred(benchmark::State& state, Pred& pred, std::int64_t& expected, const char* who) {
  const auto& v = events();
  std::int64_t passed = 0;
  for (auto _ : state) {
    passed = 0;
    for (const R& r : v) passed += pred(r) ? 1 : 0;
    benchmark::DoNotOptimize(passed);
  }
  check(expected, passed, who);
  state.counters["passed"] = static_cast<double>(passed);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * v.size()));
}

void BM_floor_1(benchmark::State& state) {
  simdjson_extractor ex;
  auto pred = [&](const R& r) {
    extracted x;
    return ex.extract(r.payload, x, false) && hand_match_1(x);
  };
  run_pred(state, pred, expected_1, "floor_1");
}
void BM_floor_5(benchmark::State& state) {
  simdjson_extractor ex;
  auto pred = [&](const R& r) {
    extracted x;
    return ex.extract(r.payload, x, true) && hand_match_5(x);
  };
  run_pred(state, pred, expected_5, "floor_5");
}
void BM_floor_100(benchmark::State& state) {
  simdjson_extractor ex;
  const auto ps = hand_100();
  auto pred = [&](const R& r) {
    extracted x;
    return ex.extract(r.payload, x, false) && hand_match_100(x, ps);
  };
  run_pred(state, pred, expected_100, "floor_100");
}
void BM_nlohmann_1(benchmark::State& state) {
  nlohmann::json j;
  auto pred = [&](const R& r) {
    extracted x;
    return nlohmann_extract(r.payload, j, x, false) && hand_match_1(x);
  };
  run_pred(state, pred, expected_1, "nlohmann_1");
}
void BM_nlohmann_5(benchmark::State& state) {
  nlohmann::json j;
  auto pred = [&](const R& r) {
    extracted x;
    return nlohmann_extract(r.payload, j, x, true) && hand_match_5(x);
  };
  run_pred(state, pred, expected_5, "nlohmann_5");
}
void BM_nlohmann_100(benchmark::State& state) {
  nlohmann::json j;
  const auto ps = hand_100();
  auto pred = [&](const R& r) {
    extracted x;
    return nlohmann_extract(r.payload, j, x, false) && hand_match_100(x, ps);
  };
  run_pred(state, pred, expected_100, "nlohmann_100");
}
void BM_sluice_runtime_1(benchmark::State& state) {
  auto stage = sluice::filter_criteria(p1);
  run_pred(state, stage.pred, expected_1, "sluice_runtime_1");
}
void BM_sluice_runtime_5(benchmark::State& state) {
  auto stage = sluice::filter_criteria(p5[0], p5[1], p5[2], p5[3], p5[4]);
  run_pred(state, stage.pred, expected_5, "sluice_runtime_5");
}
void BM_sluice_runtime_100(benchmark::State& state) {
  auto stage = sluice::filter_criteria(json_100(), sluice::filter_limits{.max_patterns = 100});
  run_pred(state, stage.pred, expected_100, "sluice_runtime_100");
}
void BM_sluice_compile_time_1(benchmark::State& state) {
  auto stage = sluice::filter_criteria<
      R"({"data": {"status": ["paid"], "amount": [{"numeric": [">", 100]}], "customer": {"country": ["FR", "DE"]}}})">();
  run_pred(state, stage.pred, expected_1, "sluice_compile_time_1");
}
void BM_sluice_compile_time_5(benchmark::State& state) {
  auto stage = sluice::filter_criteria<
      R"({"data": {"status": ["paid"], "amount": [{"numeric": [">", 100]}], "customer": {"country": ["FR", "DE"]}}})",
      R"({"data": {"status": ["refunded"], "customer": {"tier": ["gold"]}}})",
      R"({"data": {"items": {"sku": [{"prefix": "Z-"}]}}})",
      R"({"data": {"currency": ["JPY"], "amount": [{"numeric": [">=", 390]}]}})",
      R"({"data": {"shipping": {"method": ["overnight"]}, "customer": {"country": ["US"]}}})">();
  run_pred(state, stage.pred, expected_5, "sluice_compile_time_5");
}

BENCHMARK(BM_floor_1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_floor_5)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_floor_100)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_nlohmann_1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_nlohmann_5)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_nlohmann_100)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sluice_runtime_1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sluice_runtime_5)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sluice_runtime_100)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sluice_compile_time_1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sluice_compile_time_5)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  (void)events();
  sluice::bench::collecting_reporter reporter;
  if (!sluice::bench::run_benchmarks(argc, argv, reporter)) return 1;
  auto ns = [&](const char* name) {
    const double rate = reporter.get(name).rate();
    return rate > 0 ? 1e9 / rate : 0.0;
  };
  std::printf("\n== filter: %zu JSON events (~0.5 KB), ns per event (medians) ==\n", kEvents);
  for (const char* name :
       {"BM_floor_1", "BM_floor_5", "BM_floor_100", "BM_nlohmann_1", "BM_nlohmann_5",
        "BM_nlohmann_100", "BM_sluice_runtime_1", "BM_sluice_runtime_5", "BM_sluice_runtime_100",
        "BM_sluice_compile_time_1", "BM_sluice_compile_time_5"})
    std::printf("%-28s %8.1f ns/event\n", name, ns(name));
  using sluice::bench::print_ratio;
  const bool lower = false;
  print_ratio("time sluice_runtime_1 / floor_1", ns("BM_sluice_runtime_1"), ns("BM_floor_1"), 1.3,
              lower);
  print_ratio("time sluice_runtime_5 / floor_5", ns("BM_sluice_runtime_5"), ns("BM_floor_5"), 1.3,
              lower);
  print_ratio("time sluice_runtime_100 / floor_100 (no target)", ns("BM_sluice_runtime_100"),
              ns("BM_floor_100"));
  print_ratio("time sluice_runtime_100 / sluice_runtime_1", ns("BM_sluice_runtime_100"),
              ns("BM_sluice_runtime_1"), 3.0, lower);
  print_ratio("time nlohmann_1 / sluice_runtime_1", ns("BM_nlohmann_1"), ns("BM_sluice_runtime_1"),
              10.0);
  print_ratio("time nlohmann_5 / sluice_runtime_5", ns("BM_nlohmann_5"), ns("BM_sluice_runtime_5"),
              10.0);
  print_ratio("time nlohmann_100 / sluice_runtime_100", ns("BM_nlohmann_100"),
              ns("BM_sluice_runtime_100"), 10.0);
  print_ratio("time sluice_compile_time_1 / sluice_runtime_1", ns("BM_sluice_compile_time_1"),
              ns("BM_sluice_runtime_1"), 1.0, lower);
  print_ratio("time sluice_compile_time_5 / sluice_runtime_5", ns("BM_sluice_compile_time_5"),
              ns("BM_sluice_runtime_5"), 1.0, lower);
  sluice::bench::print_load("after");
  return 0;
}
