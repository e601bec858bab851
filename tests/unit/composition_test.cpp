// Composing mappings (sluice/mapping.hpp, sluice/sources/range_source.hpp, sluice/run.hpp): user
// record types adapted by members or by record_traits, per-record stages called with the record or
// its payload, sources from standard and range-v3 ranges, the fused per-record path (S-2.4, S-6.1),
// stop_when, and the batch metadata the handler sees (S-4.1).
#include <gtest/gtest.h>

#include <boost/hana/tuple.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <range/v3/view/iota.hpp>
#include <range/v3/view/transform.hpp>
#include <ranges>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/detail/pipeline/fused_stages.hpp"
#include "sluice/sluice.hpp"

using namespace std::chrono_literals;

// ---- user record types
// ---------------------------------------------------------------------------

namespace app {
/// Adapted by member functions.
struct reading {
  std::string device;
  std::uint64_t seq = 0;
  sluice::time_point at{};
  double celsius = 0;

  const std::string& partition_key() const noexcept { return device; }
  sluice::sequence_number_t sequence_number() const noexcept { return seq; }
  sluice::time_point arrival_time() const noexcept { return at; }
  std::size_t payload_size_bytes() const noexcept { return sizeof(celsius); }
};
}  // namespace app

namespace legacy {
/// A type that cannot be changed: adapted by specializing sluice::record_traits.
struct event {
  std::string topic;
  std::int64_t offset = 0;
  std::int64_t epoch_ms = 0;
  std::string body;
};
}  // namespace legacy

template <>
struct sluice::record_traits<legacy::event> {
  static const std::string& partition_key(const legacy::event& e) noexcept { return e.topic; }
  static sluice::sequence_number_t sequence_number(const legacy::event& e) noexcept {
    return static_cast<sluice::sequence_number_t>(e.offset);
  }
  static sluice::time_point arrival_time(const legacy::event& e) noexcept {
    return sluice::time_point{} + std::chrono::milliseconds(e.epoch_ms);
  }
  static std::size_t payload_size_bytes(const legacy::event& e) noexcept { return e.body.size(); }
};

static_assert(sluice::stream_record<app::reading>);
static_assert(sluice::stream_record<legacy::event>);
static_assert(sluice::stream_record<sluice::record<int>>);
static_assert(!sluice::stream_record<int>);

namespace {

using R = sluice::record<int>;
using seqs = std::vector<sluice::sequence_number_t>;

/// A manual clock and a one-shard stream whose records are stamped by it.
struct clocked_stream {
  sluice::manual_clock clock;
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream{1, clock};
};

}  // namespace

// ---- user record types through from(range) and run() -------------------------------------------

TEST(Composition, RecordTypeAdaptedByMembersFlowsThroughRun) {
  const sluice::time_point t0 = sluice::time_point{} + 1000h;
  const std::vector<app::reading> readings = {
      {"boiler", 1, t0, 71.5}, {"boiler", 2, t0 + 1s, 72.0}, {"freezer", 3, t0 + 2s, -18.0}};
  auto m = sluice::from(readings) |
           sluice::filter([](const app::reading& r) { return r.celsius > 0; }) |
           sluice::batching(sluice::batch_size(10));
  static_assert(std::is_same_v<decltype(m)::record_type, app::reading>);

  std::vector<std::string> devices;
  seqs seen;
  std::size_t bytes = 0;
  sluice::time_point last_arrival{};
  const auto metrics =
      sluice::run(std::move(m) | sluice::invoke([&](const sluice::batch<app::reading>& b) {
                    for (const auto& r : b) {
                      devices.push_back(r.device);
                      seen.push_back(r.seq);
                    }
                    bytes += b.size_bytes();
                    last_arrival = b.last_arrival();
                  }));
  EXPECT_EQ(devices, (std::vector<std::string>{"boiler", "boiler"}));
  EXPECT_EQ(seen, (seqs{1, 2}));
  EXPECT_EQ(bytes, 2 * sizeof(double));  // read through payload_size_bytes()
  EXPECT_EQ(last_arrival, t0 + 1s);
  EXPECT_EQ(metrics.total.filtered_out_event_count, 1u);
  EXPECT_EQ(metrics.shards.at(0).checkpoint, 3u);
}

TEST(Composition, RecordTypeAdaptedByTraitsFlowsThroughRun) {
  std::vector<legacy::event> events = {{"orders", 10, 5'000, "created"},
                                       {"orders", 11, 6'000, "paid"},
                                       {"orders", 12, 7'000, "shipped"}};
  auto m = sluice::from(std::move(events)) | sluice::batching(sluice::batch_size(2));
  static_assert(std::is_same_v<decltype(m)::record_type, legacy::event>);

  std::vector<std::string> bodies;
  std::vector<std::pair<sluice::sequence_number_t, sluice::sequence_number_t>> ranges;
  std::vector<std::size_t> sizes_bytes;
  sluice::time_point first_arrival{};
  sluice::run(std::move(m) | sluice::invoke([&](const sluice::batch<legacy::event>& b) {
                for (const auto& e : b) bodies.push_back(e.body);
                ranges.emplace_back(b.first_sequence(), b.last_sequence());
                sizes_bytes.push_back(b.size_bytes());
                if (first_arrival == sluice::time_point{}) first_arrival = b.first_arrival();
              }));
  EXPECT_EQ(bodies, (std::vector<std::string>{"created", "paid", "shipped"}));
  EXPECT_EQ(ranges, (std::vector<std::pair<sluice::sequence_number_t, sluice::sequence_number_t>>{
                        {10, 11}, {12, 12}}));
  EXPECT_EQ(sizes_bytes, (std::vector<std::size_t>{7 + 4, 7}));
  EXPECT_EQ(first_arrival, sluice::time_point{} + 5s);
}

// ---- filter and transform: with the record or with the payload ---------------------------------

TEST(Composition, FilterIsCalledWithTheRecordWhenItTakesTheRecord) {
  std::vector<R> records = {{"keep", 1, {}, 1}, {"drop", 2, {}, 2}, {"keep", 3, {}, 3}};
  seqs seen;
  sluice::run(sluice::from(records) | sluice::filter([](const R& r) { return r.key == "keep"; }) |
              sluice::invoke([&](const sluice::batch<R>& b) {
                for (const auto& r : b) seen.push_back(r.sequence);
              }));
  EXPECT_EQ(seen, (seqs{1, 3}));
}

TEST(Composition, FilterIsCalledWithThePayloadWhenItTakesThePayload) {
  std::vector<R> records = {{"a", 1, {}, 10}, {"a", 2, {}, 25}, {"a", 3, {}, 30}};
  std::vector<int> predicate_saw;
  seqs seen;
  sluice::run(sluice::from(records) | sluice::filter([&](int payload) {
                predicate_saw.push_back(payload);
                return payload % 10 == 0;
              }) |
              sluice::invoke([&](const sluice::batch<R>& b) {
                for (const auto& r : b) seen.push_back(r.sequence);
              }));
  EXPECT_EQ(predicate_saw, (std::vector<int>{10, 25, 30}));
  EXPECT_EQ(seen, (seqs{1, 3}));
}

TEST(Composition, TransformReturningAPayloadKeepsKeySequenceAndArrival) {
  clocked_stream s;
  const auto t1 = s.clock.now();
  s.stream.put("alpha", 3);
  s.clock.advance(5s);
  const auto t2 = s.clock.now();
  s.stream.put("beta", 4);

  auto m = sluice::from(s.stream) |
           sluice::transform([](int p) { return std::string(static_cast<std::size_t>(p), 'x'); });
  using out = sluice::record<std::string, std::string>;
  static_assert(std::is_same_v<decltype(m)::record_type, out>);

  std::vector<out> seen;
  sluice::run(std::move(m) | sluice::invoke([&](const sluice::batch<out>& b) {
                seen.insert(seen.end(), b.begin(), b.end());
              }),
              sluice::with_clock(s.clock));
  EXPECT_EQ(seen, (std::vector<out>{{"alpha", 1, t1, "xxx"}, {"beta", 2, t2, "xxxx"}}));
}

TEST(Composition, TransformTakingTheRecordMayReturnAPayload) {
  std::vector<R> records = {{"a", 7, {}, 1}, {"b", 8, {}, 2}};
  using out = sluice::record<std::string, std::string>;
  std::vector<out> seen;
  sluice::run(sluice::from(records) | sluice::transform([](const R& r) {
                return r.key + ":" + std::to_string(r.payload);
              }) |
              sluice::invoke([&](const sluice::batch<out>& b) {
                seen.insert(seen.end(), b.begin(), b.end());
              }));
  EXPECT_EQ(seen, (std::vector<out>{{"a", 7, {}, "a:1"}, {"b", 8, {}, "b:2"}}));
}

TEST(Composition, TransformReturningARecordTypeReplacesTheRecord) {
  const sluice::time_point t0 = sluice::time_point{} + 1h;
  std::vector<R> records = {{"boiler", 1, t0, 700}, {"boiler", 2, t0 + 1s, 715}};
  auto m =
      sluice::from(records) | sluice::transform([](const R& r) {
        return app::reading{"device-" + r.key, r.sequence * 100, r.arrival + 1min,
                            r.payload / 10.0};
      }) |
      sluice::filter([](const app::reading& r) { return r.celsius > 71; });  // sees the new type
  static_assert(std::is_same_v<decltype(m)::record_type, app::reading>);
  std::vector<app::reading> seen;
  sluice::run(std::move(m) | sluice::invoke([&](const sluice::batch<app::reading>& b) {
                seen.insert(seen.end(), b.begin(), b.end());
                EXPECT_EQ(b.first_sequence(), 200u);  // the new record's own metadata
              }));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].device, "device-boiler");
  EXPECT_EQ(seen[0].seq, 200u);
  EXPECT_EQ(seen[0].at, t0 + 1s + 1min);
  EXPECT_DOUBLE_EQ(seen[0].celsius, 71.5);
}

TEST(Composition, ChainedTransformsComposeInOrder) {
  std::vector<R> records = {{"k", 1, {}, 2}};
  using out = sluice::record<std::string, std::string>;
  std::vector<out> seen;
  sluice::run(sluice::from(records) | sluice::transform([](int p) { return p + 1; }) |
              sluice::transform([](int p) { return p * 10; }) |
              sluice::transform([](int p) { return std::to_string(p); }) |
              sluice::invoke([&](const sluice::batch<out>& b) {
                seen.insert(seen.end(), b.begin(), b.end());
              }));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].payload, "30");  // (2 + 1) * 10, not 2 * 10 + 1
}

// ---- sources from ranges
// -------------------------------------------------------------------------

TEST(Composition, FromVectorOfRecordsKeepsTheirMetadata) {
  const sluice::time_point t0 = sluice::time_point{} + 2h;
  std::vector<R> records = {{"a", 5, t0, 1}, {"b", 9, t0 + 1s, 2}};
  std::vector<R> seen;
  sluice::run(sluice::from(records) | sluice::invoke([&](const sluice::batch<R>& b) {
                seen.insert(seen.end(), b.begin(), b.end());
              }));
  EXPECT_EQ(seen, records);
}

TEST(Composition, FromPlainValuesWrapsThemWithKeyZeroAndSequenceIndexPlusOne) {
  using wrapped = sluice::record<std::string, std::uint64_t>;
  const auto before = std::chrono::system_clock::now();
  auto m = sluice::from(std::vector<std::string>{"a", "b", "c"});
  const auto after = std::chrono::system_clock::now();
  std::vector<wrapped> seen;
  sluice::run(std::move(m) | sluice::invoke([&](const sluice::batch<wrapped>& b) {
                seen.insert(seen.end(), b.begin(), b.end());
              }));
  ASSERT_EQ(seen.size(), 3u);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].key, 0u);
    EXPECT_EQ(seen[i].sequence, i + 1);
    EXPECT_GE(seen[i].arrival, before);  // the time from() was called
    EXPECT_LE(seen[i].arrival, after);
  }
  EXPECT_EQ(seen[0].payload, "a");
  EXPECT_EQ(seen[2].payload, "c");
}

TEST(Composition, FromStdFilterAndTransformViewsNumbersTheViewsElements) {
  const std::vector<int> numbers = {1, 2, 3, 4, 5, 6};
  using wrapped = sluice::record<int, std::uint64_t>;
  std::vector<std::pair<sluice::sequence_number_t, int>> seen;
  sluice::run(sluice::from(numbers | std::views::filter([](int n) { return n % 2 == 0; }) |
                           std::views::transform([](int n) { return n * n; })) |
              sluice::invoke([&](const sluice::batch<wrapped>& b) {
                for (const auto& r : b) seen.emplace_back(r.sequence, r.payload);
              }));
  EXPECT_EQ(seen,
            (std::vector<std::pair<sluice::sequence_number_t, int>>{{1, 4}, {2, 16}, {3, 36}}));
}

TEST(Composition, FromRangeV3ViewOfRecords) {
  const sluice::time_point t0 = sluice::time_point{} + 3h;
  auto view = ranges::views::iota(1, 6) | ranges::views::transform([t0](int i) {
                return R{"key-" + std::to_string(i % 2), static_cast<sluice::sequence_number_t>(i),
                         t0 + std::chrono::seconds(i), i * 100};
              });
  auto m = sluice::from(std::move(view)) | sluice::batching(sluice::batch_size(2));
  static_assert(std::is_same_v<decltype(m)::record_type, R>);
  std::vector<R> seen;
  std::size_t batches = 0;
  sluice::run(std::move(m) | sluice::invoke([&](const sluice::batch<R>& b) {
                ++batches;
                seen.insert(seen.end(), b.begin(), b.end());
              }));
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(batches, 3u);
  for (int i = 1; i <= 5; ++i) {
    const R& r = seen[static_cast<std::size_t>(i - 1)];
    EXPECT_EQ(r.sequence, static_cast<sluice::sequence_number_t>(i));
    EXPECT_EQ(r.key, "key-" + std::to_string(i % 2));
    EXPECT_EQ(r.arrival, t0 + std::chrono::seconds(i));
    EXPECT_EQ(r.payload, i * 100);
  }
}

// ---- the fused per-record path
// -------------------------------------------------------------------

TEST(Composition, StageListIsAHanaTupleOfTheStageTypes) {
  std::vector<int> values = {1, 2, 3};
  auto keep_even = [](int p) { return p % 2 == 0; };
  auto tenfold = [](int p) { return p * 10; };
  using wrapped = sluice::record<int, std::uint64_t>;
  auto handler = [](const sluice::batch<wrapped>&) {};
  auto m = sluice::from(values) | sluice::filter(keep_even) | sluice::transform(tenfold) |
           sluice::batching() | sluice::retry() | sluice::invoke(handler);
  static_assert(std::is_same_v<
                decltype(m.stages),
                boost::hana::tuple<sluice::filter_stage<decltype(keep_even)>,
                                   sluice::transform_stage<decltype(tenfold)>, sluice::batch_stage,
                                   sluice::retry_stage, sluice::sink_stage<decltype(handler)>>>);
  static_assert(std::is_same_v<decltype(m)::record_type, wrapped>);
  SUCCEED();
}

TEST(Composition, FusedPerRecordPathFiltersThenTransformsEachRecordOnce) {
  int filter_calls = 0;
  int transform_calls = 0;
  auto stages = boost::hana::make_tuple(sluice::filter([&](int p) {
                                          ++filter_calls;
                                          return p > 0;
                                        }),
                                        sluice::transform([&](int p) {
                                          ++transform_calls;
                                          return std::to_string(p);
                                        }));
  std::vector<sluice::record<std::string>> emitted;
  auto emit = [&](auto&& make) {  // the engine builds make()'s record in place
    emitted.push_back(make());
    return true;
  };
  const sluice::time_point t = sluice::time_point{} + 1s;
  EXPECT_FALSE(sluice::detail::run_per_record<0>(stages, R{"k", 1, t, -5}, emit));  // filtered
  EXPECT_TRUE(sluice::detail::run_per_record<0>(stages, R{"k", 2, t, 42}, emit));
  EXPECT_EQ(filter_calls, 2);
  EXPECT_EQ(transform_calls, 1);  // never called for the dropped record
  ASSERT_EQ(emitted.size(), 1u);
  EXPECT_EQ(emitted[0], (sluice::record<std::string>{"k", 2, t, "42"}));
}

TEST(Composition, FilteredRecordsAreCountedAndNeverHandedOver) {
  std::vector<R> records;
  for (int i = 1; i <= 10; ++i)
    records.push_back({"k", static_cast<sluice::sequence_number_t>(i), {}, i});
  seqs seen;
  int filter_calls = 0;
  const auto metrics = sluice::run(sluice::from(records) | sluice::filter([&](int p) {
                                     ++filter_calls;
                                     return p % 3 == 0;
                                   }) |
                                   sluice::batching(sluice::batch_size(100)) |
                                   sluice::invoke([&](const sluice::batch<R>& b) {
                                     for (const auto& r : b) seen.push_back(r.sequence);
                                   }));
  EXPECT_EQ(seen, (seqs{3, 6, 9}));
  EXPECT_EQ(filter_calls, 10);
  EXPECT_EQ(metrics.total.polled_event_count, 10u);
  EXPECT_EQ(metrics.total.filtered_out_event_count, 7u);
  EXPECT_EQ(metrics.total.invoked_event_count, 3u);
  EXPECT_EQ(metrics.total.invocations, 1u);
  EXPECT_EQ(metrics.shards.at(0).counters.filtered_out_event_count, 7u);
  EXPECT_EQ(metrics.shards.at(0).checkpoint, 10u);  // the filtered tail is finished too (S-6.1)
}

// ---- stop_when
// -----------------------------------------------------------------------------------

TEST(Composition, RunReturnsEarlyWhenStopIsRequested) {
  std::vector<R> records;
  for (int i = 1; i <= 10; ++i)
    records.push_back({"k", static_cast<sluice::sequence_number_t>(i), {}, i});
  std::stop_source stop;
  seqs seen;
  sluice::memory_checkpoint_store store;
  sluice::run(sluice::from(records) | sluice::batching(sluice::batch_size(2)) |
                  sluice::invoke([&](const sluice::batch<R>& b) {
                    for (const auto& r : b) seen.push_back(r.sequence);
                    stop.request_stop();
                  }),
              sluice::stop_when(stop.get_token()), sluice::checkpoints(store));
  EXPECT_EQ(seen, (seqs{1, 2}));
  EXPECT_EQ(store.load("sluice", 0), std::optional<sluice::sequence_number_t>(2));
}

TEST(Composition, RunWithStopAlreadyRequestedHandsNothingOver) {
  std::vector<R> records = {{"k", 1, {}, 1}, {"k", 2, {}, 2}};
  std::stop_source stop;
  stop.request_stop();
  int calls = 0;
  const auto metrics =
      sluice::run(sluice::from(records) | sluice::invoke([&](const sluice::batch<R>&) { ++calls; }),
                  sluice::stop_when(stop.get_token()));
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(metrics.total.invocations, 0u);
}

TEST(Composition, RunStartsNoNewAttemptOnceStopIsRequested) {
  std::vector<R> records = {{"k", 1, {}, 1}, {"k", 2, {}, 2}};
  sluice::manual_clock clock{sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance};
  std::stop_source stop;
  int attempts = 0;
  sluice::memory_checkpoint_store store;
  sluice::run(sluice::from(records) | sluice::batching(sluice::batch_size(2)) |
                  sluice::retry(sluice::maximum_retry_attempts(5)) |
                  sluice::invoke([&](const sluice::batch<R>&) {
                    ++attempts;
                    stop.request_stop();
                    throw std::runtime_error("fails every time");
                  }),
              sluice::stop_when(stop.get_token()), sluice::with_clock(clock),
              sluice::checkpoints(store));
  EXPECT_EQ(attempts, 1);
  EXPECT_EQ(store.load("sluice", 0).value_or(0), 0u);  // the failed batch is not finished
}

// ---- batch metadata (S-4.1)
// ----------------------------------------------------------------------

TEST(Composition, BatchCarriesShardSequencesArrivalsSizeAndBytes) {
  sluice::manual_clock clock;
  sluice::memory_stream<std::string, std::string, sluice::manual_clock> stream{4, clock};
  struct put_info {
    std::string key;
    sluice::time_point arrival;
    std::string payload;
  };
  std::map<std::pair<sluice::shard_id_t, sluice::sequence_number_t>, put_info> expected;
  for (int i = 0; i < 40; ++i) {
    const std::string key = "key-" + std::to_string(i % 7);
    const std::string payload(static_cast<std::size_t>(i % 5 + 1), 'p');
    const auto where = stream.put(key, payload);
    expected[{where.shard, where.sequence}] = {key, clock.now(), payload};
    clock.advance(1s);
  }

  std::size_t handed_over = 0;
  using rec = sluice::record<std::string, std::string>;
  sluice::run(
      sluice::from(stream) | sluice::batching(sluice::batch_size(3)) |
          sluice::invoke([&](const sluice::batch<rec>& b) {
            ASSERT_FALSE(b.empty());
            ASSERT_LE(b.size(), 3u);
            std::size_t bytes = 0;
            for (std::size_t i = 0; i < b.size(); ++i) {
              const auto it = expected.find({b.shard_id(), b[i].sequence});
              ASSERT_NE(it, expected.end()) << "record not put in shard " << b.shard_id();
              EXPECT_EQ(b[i].key, it->second.key);
              EXPECT_EQ(b[i].arrival, it->second.arrival);
              EXPECT_EQ(b[i].payload, it->second.payload);
              if (i > 0) {
                EXPECT_EQ(b[i].sequence, b[i - 1].sequence + 1);
              }
              bytes += it->second.payload.size();
            }
            EXPECT_EQ(b.size_bytes(), bytes);
            EXPECT_EQ(b.first_sequence(), b[0].sequence);
            EXPECT_EQ(b.last_sequence(), b[0].sequence + b.size() - 1);
            EXPECT_EQ(b.first_arrival(), expected.at({b.shard_id(), b.first_sequence()}).arrival);
            EXPECT_EQ(b.last_arrival(), expected.at({b.shard_id(), b.last_sequence()}).arrival);
            handed_over += b.size();
          }),
      sluice::with_clock(clock));
  EXPECT_EQ(handed_over, expected.size());
}

// ---- composing in steps, and policy fragments
// -----------------------------------------------------

TEST(Composition, InStepsWithLvaluesEachStepStaysUsable) {
  std::vector<R> records = {{"k", 1, {}, 1}, {"k", 2, {}, 2}, {"k", 3, {}, 3}};
  auto source = sluice::from(records);
  auto odd = source | sluice::filter([](int p) { return p % 2 == 1; });  // copies `source`
  auto batched = odd | sluice::batching(sluice::batch_size(10));         // copies `odd`
  seqs all, only_odd, odd_again;
  sluice::run(source | sluice::invoke([&](const sluice::batch<R>& b) {
                for (const auto& r : b) all.push_back(r.sequence);
              }));
  sluice::run(batched | sluice::invoke([&](const sluice::batch<R>& b) {
                for (const auto& r : b) only_odd.push_back(r.sequence);
              }));
  sluice::run(std::move(odd) | sluice::invoke([&](const sluice::batch<R>& b) {
                for (const auto& r : b) odd_again.push_back(r.sequence);
              }));
  EXPECT_EQ(all, (seqs{1, 2, 3}));
  EXPECT_EQ(only_odd, (seqs{1, 3}));
  EXPECT_EQ(odd_again, (seqs{1, 3}));
}

TEST(Composition, PolicyFragmentAppendsItsStagesAndIsReused) {
  const auto policy =
      sluice::retry(sluice::maximum_retry_attempts(0)) | sluice::bisect_batch_on_function_error;
  static_assert(std::is_same_v<
                std::remove_cvref_t<decltype(policy)>,
                sluice::fragment<boost::hana::tuple<sluice::retry_stage, sluice::bisect_stage>>>);
  std::vector<R> records;
  for (int i = 1; i <= 4; ++i)
    records.push_back({"k", static_cast<sluice::sequence_number_t>(i), {}, i});
  auto fails_on_3 = [](const sluice::batch<R>& b) {
    for (const auto& r : b)
      if (r.payload == 3) throw std::runtime_error("poison");
  };
  auto first = sluice::from(records) | sluice::batching(sluice::batch_size(4)) | policy |
               sluice::invoke(fails_on_3);
  auto second = sluice::from(records) | sluice::batching(sluice::batch_size(4)) | policy |
                sluice::invoke(fails_on_3);
  static_assert(std::is_same_v<
                decltype(first.stages),
                boost::hana::tuple<sluice::batch_stage, sluice::retry_stage, sluice::bisect_stage,
                                   sluice::sink_stage<decltype(fails_on_3)>>>);
  const auto a = sluice::run(std::move(first));
  const auto b = sluice::run(std::move(second));
  // Both mappings bisect (S-5.3): without the fragment's bisect stage nothing would be split.
  EXPECT_GT(a.total.bisect_splits, 0u);
  EXPECT_EQ(a.total.bisect_splits, b.total.bisect_splits);
  EXPECT_EQ(a.total.succeeded_event_count, 3u);
}

TEST(Composition, FragmentOfSeveralStagesComposesWithAFragment) {
  auto batching = sluice::batching(sluice::batch_size(2)) | sluice::parallelization_factor(1);
  auto policy =
      sluice::retry(sluice::maximum_retry_attempts(1)) | sluice::report_batch_item_failures;
  auto both = batching | policy;
  std::vector<R> records = {{"k", 1, {}, 1}, {"k", 2, {}, 2}, {"k", 3, {}, 3}};
  std::size_t calls = 0;
  auto m = sluice::from(records) | both |
           sluice::invoke([&](const sluice::batch<R>&) -> sluice::batch_item_failures {
             ++calls;
             return {};
           });
  static_assert(decltype(m)::has<sluice::detail::report_test>);
  sluice::run(std::move(m));
  EXPECT_EQ(calls, 2u);
}
