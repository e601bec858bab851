// Conformance scenarios C-01, C-02, C-03, C-14 and C-15 (shared/spec/conformance.md): batching
// (S-2), filtering (S-6.1) and resuming from a checkpoint (S-1.4, S-3.4), on the threaded
// runtime (sluice::start) and, where the scenario allows, on sluice::run too.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <stop_token>
#include <string>

#include "sluice/sluice.hpp"
#include "support/trace.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;
using sluice_test::eventually;
using sluice_test::trace;

// The stream the traces run on: a memory_stream, unless the file that includes this one chose
// another (tests/redis/traces/redis_traces_test.cpp runs the same traces on a Redis stream).
#ifndef SLUICE_TRACE_STREAM
#define SLUICE_TRACE_STREAM(clock) \
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream { 1, clock }
#endif

namespace {
struct Engine : ::testing::TestWithParam<sluice::execution_mode> {
  sluice::manual_clock clock;
  SLUICE_TRACE_STREAM(clock);
  sluice::memory_checkpoint_store store;
  trace calls;

  void put(int n) {
    for (int i = 1; i <= n; ++i) stream.put("k", i);
  }
  auto record_call() {
    return [this](const sluice::batch<R>& b) { calls.record(b, clock.now()); };
  }
};
}  // namespace

// C-01 batch size (S-2.1)
TEST_P(Engine, C01_BatchSizeSplitsInput) {
  put(250);
  auto running = sluice::start(sluice::from(stream) | sluice::batching(sluice::batch_size(100)) |
                                   sluice::invoke(record_call()),
                               sluice::with_clock(clock), sluice::checkpoints(store),
                               sluice::execution(GetParam()));
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  EXPECT_EQ(calls.str(), "[1-100] [101-200] [201-250]");
  EXPECT_EQ(store.load("sluice", 0), 250u);
  EXPECT_EQ(running.metrics().total.invoked_event_count, 250u);
}

// C-02 batching window (S-2.1): the window opens at the first buffered record.
TEST_P(Engine, C02_BatchingWindowHoldsBatchUntilItElapses) {
  const auto t0 = clock.now();
  put(30);
  auto running = sluice::start(
      sluice::from(stream) |
          sluice::batching(sluice::batch_size(100), sluice::maximum_batching_window(5s)) |
          sluice::invoke(record_call()),
      sluice::with_clock(clock), sluice::checkpoints(store), sluice::workers(1), sluice::pollers(1),
      sluice::execution(GetParam()));
  ASSERT_TRUE(eventually([&] { return running.metrics().total.polled_event_count == 30; }));
  // Every thread (the reader waiting for the window; the idle worker, if any) has looked at the
  // clock. In inline mode the reader is the only thread.
  const std::size_t threads = GetParam() == sluice::execution_mode::inline_only ? 1 : 2;
  ASSERT_TRUE(clock.wait_for_sleepers(threads));
  EXPECT_EQ(calls.size(), 0u);
  clock.advance(4999ms);
  ASSERT_TRUE(clock.wait_for_sleepers(threads));
  EXPECT_EQ(calls.size(), 0u) << "invoked before the window elapsed";
  clock.advance(1ms);
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  EXPECT_EQ(calls.str(), "[1-30]");
  EXPECT_EQ(calls.calls()[0].at - t0, 5s);
}

// C-03 payload cap (S-2.1, S-2.2)
TEST(EngineBytes, C03_PayloadCapClosesBatchesAndOversizedRecordGoesAlone) {
  sluice::manual_clock clock;
  sluice::memory_stream<std::string, std::string, sluice::manual_clock> stream{1, clock};
  const std::string mib(1 << 20, 'x');
  for (int i = 0; i < 20; ++i) stream.put("k", mib);
  stream.put("k", std::string(7 << 20, 'y'));
  trace calls;
  std::vector<std::size_t> bytes;
  std::mutex m;
  auto running = sluice::start(
      sluice::from(stream) |
          sluice::batching(sluice::batch_size(100), sluice::maximum_payload_bytes(6 << 20)) |
          sluice::invoke([&](const sluice::batch<sluice::record<std::string>>& b) {
            calls.record(b, clock.now());
            std::lock_guard lock(m);
            bytes.push_back(b.size_bytes());
          }),
      sluice::with_clock(clock));
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  EXPECT_EQ(calls.str(), "[1-6] [7-12] [13-18] [19-20] [21]");
  EXPECT_EQ(bytes, (std::vector<std::size_t>{6 << 20, 6 << 20, 6 << 20, 2 << 20, 7 << 20}));
}

// C-14 filtered records are finished (S-6.1)
TEST_P(Engine, C14_FilteredRecordsAreFinished) {
  put(10);
  auto running = sluice::start(
      sluice::from(stream) | sluice::filter([](const R& r) { return r.sequence % 2 == 1; }) |
          sluice::batching(sluice::batch_size(10)) | sluice::invoke(record_call()),
      sluice::with_clock(clock), sluice::checkpoints(store), sluice::execution(GetParam()));
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls.calls()[0].sequences, (std::vector<sluice::sequence_number_t>{1, 3, 5, 7, 9}));
  EXPECT_EQ(store.load("sluice", 0), 10u);
  EXPECT_EQ(running.metrics().total.filtered_out_event_count, 5u);
}

// C-15 resume from checkpoint (S-1.4, S-3.4): threaded runtime.
TEST_P(Engine, C15_ResumeFromCheckpointAfterStop) {
  put(250);
  {
    int call = 0;
    std::atomic<bool> stop_now{false};
    auto running =
        sluice::start(sluice::from(stream) | sluice::batching(sluice::batch_size(100)) |
                          sluice::invoke([&](const sluice::batch<R>& b) {
                            if (++call == 3) {  // the third batch does not succeed: stop here
                              stop_now = true;
                              throw std::runtime_error("stopping");
                            }
                            calls.record(b, clock.now());
                          }),
                      sluice::with_clock(clock), sluice::checkpoints(store), sluice::workers(1),
                      sluice::execution(GetParam()));
    ASSERT_TRUE(eventually([&] { return stop_now.load(); }));
    running.stop();
  }
  EXPECT_EQ(calls.str(), "[1-100] [101-200]");
  EXPECT_EQ(store.load("sluice", 0), 200u);
  trace resumed;
  auto running = sluice::start(
      sluice::from(stream, sluice::starting_position::trim_horizon) |
          sluice::batching(sluice::batch_size(100)) |
          sluice::invoke([&](const sluice::batch<R>& b) { resumed.record(b, clock.now()); }),
      sluice::with_clock(clock), sluice::checkpoints(store));
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  EXPECT_EQ(resumed.str(), "[201-250]");
}

// C-15 on the single-thread driver, stopped through a stop token.
TEST_P(Engine, C15_RunResumesFromCheckpoint) {
  put(250);
  std::stop_source stop;
  int call = 0;
  sluice::run(sluice::from(stream) | sluice::batching(sluice::batch_size(100)) |
                  sluice::invoke([&](const sluice::batch<R>& b) {
                    if (++call == 3) {
                      stop.request_stop();
                      throw std::runtime_error("stopping");
                    }
                    calls.record(b, clock.now());
                  }),
              sluice::with_clock(clock), sluice::checkpoints(store),
              sluice::stop_when(stop.get_token()));
  EXPECT_EQ(store.load("sluice", 0), 200u);
  trace resumed;
  sluice::run(
      sluice::from(stream) | sluice::batching(sluice::batch_size(100)) |
          sluice::invoke([&](const sluice::batch<R>& b) { resumed.record(b, clock.now()); }),
      sluice::with_clock(clock), sluice::checkpoints(store));
  EXPECT_EQ(resumed.str(), "[201-250]");
}

// S-1.4: a stored checkpoint wins; without one, latest skips what is already there.
TEST_P(Engine, StartingPositionLatestSkipsExistingRecords) {
  put(5);
  trace seen;
  auto running = sluice::start(
      sluice::from(stream, sluice::starting_position::latest) |
          sluice::invoke([&](const sluice::batch<R>& b) { seen.record(b, clock.now()); }),
      sluice::with_clock(clock), sluice::checkpoints(store));
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  EXPECT_EQ(seen.size(), 0u);
  stream.put("k", 6);
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  EXPECT_EQ(seen.str(), "[6]");
}

TEST_P(Engine, StartingPositionAtTimestamp) {
  put(3);
  clock.advance(10s);
  const auto t = clock.now();
  put(2);  // sequences 4 and 5, arrival t
  const auto m = sluice::run(sluice::from(stream, sluice::starting_position::at_timestamp(t)) |
                                 sluice::invoke(record_call()),
                             sluice::with_clock(clock));
  EXPECT_EQ(calls.str(), "[4-5]");
  EXPECT_EQ(m.shards[0].checkpoint, 5u);
}

// A throwing filter stops the mapping (the default policy) with an error that names the record,
// instead of losing or skipping records.
TEST_P(Engine, ThrowingFilterStopsMappingWithAnErrorNamingTheRecord) {
  put(10);
  auto running = sluice::start(sluice::from(stream) | sluice::filter([](const R& r) {
                                 if (r.sequence == 5) throw std::logic_error("bad filter");
                                 return true;
                               }) | sluice::invoke(record_call()),
                               sluice::with_clock(clock), sluice::checkpoints(store),
                               sluice::execution(GetParam()));
  try {
    running.wait_until_caught_up(60s);
    ADD_FAILURE() << "no error";
  } catch (const sluice::stage_error& e) {
    EXPECT_EQ(e.shard(), 0u);
    EXPECT_EQ(e.sequence(), 5u);
    EXPECT_EQ(e.key(), "k");
    EXPECT_NE(
        std::string(e.what()).find("shard 0, sequence 5, key \"k\": std::logic_error: bad filter"),
        std::string::npos)
        << e.what();
    EXPECT_THROW(std::rethrow_if_nested(e), std::logic_error);
  }
  EXPECT_THROW(running.stop(), sluice::stage_error);
  EXPECT_LT(store.load("sluice", 0).value_or(0), 5u);
}

// on_stage_error(to_destination): the record a transform threw on goes to the on-failure
// destination (condition StageFailed, the error named) and the mapping goes on.
TEST_P(Engine, ThrowingTransformSendsTheRecordToTheDestinationWhenAskedTo) {
  put(10);
  sluice::memory_destination<sluice::record<int>> dlq;
  auto running = sluice::start(sluice::from(stream) | sluice::transform([](const R& r) {
                                 if (r.sequence == 4 || r.sequence == 7)
                                   throw std::invalid_argument("cannot parse");
                                 return r;
                               }) | sluice::batching(sluice::batch_size(100)) |
                                   sluice::on_failure(dlq) | sluice::invoke(record_call()),
                               sluice::with_clock(clock), sluice::checkpoints(store),
                               sluice::execution(GetParam()),
                               sluice::on_stage_error(sluice::stage_error_policy::to_destination));
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  std::vector<sluice::sequence_number_t> handled;
  for (const auto& c : calls.calls())
    handled.insert(handled.end(), c.sequences.begin(), c.sequences.end());
  EXPECT_EQ(handled, (std::vector<sluice::sequence_number_t>{1, 2, 3, 5, 6, 8, 9, 10}));
  const auto dead = dlq.records();
  ASSERT_EQ(dead.size(), 2u);
  EXPECT_EQ(dead[0].condition, sluice::failure_condition::stage_failed);
  EXPECT_EQ(dead[0].start_sequence_number, 4u);
  EXPECT_EQ(dead[0].end_sequence_number, 4u);
  EXPECT_EQ(dead[0].error_type, "std::invalid_argument");
  EXPECT_EQ(dead[0].error_message, "cannot parse");
  ASSERT_EQ(dead[0].records.size(), 1u);
  EXPECT_EQ(dead[0].records[0].payload, 4);
  EXPECT_EQ(dead[1].start_sequence_number, 7u);
  EXPECT_EQ(store.load("sluice", 0), 10u);
  EXPECT_EQ(running.metrics().total.on_failure_destination_delivered_event_count, 2u);
}

TEST(EngineStageErrors, ToDestinationWithoutADestinationIsRejectedWhenStarted) {
  sluice::memory_stream<int> stream(1);
  try {
    auto running =
        sluice::start(sluice::from(stream) | sluice::filter([](int) { return true; }) |
                          sluice::invoke([](const sluice::batch<R>&) {}),
                      sluice::on_stage_error(sluice::stage_error_policy::to_destination));
    ADD_FAILURE() << "accepted";
  } catch (const sluice::configuration_error& e) {
    EXPECT_NE(std::string(e.what()).find("on_stage_error = to_destination is out of range"),
              std::string::npos)
        << e.what();
  }
}

// S-5.8 for stage failures: a destination that fails is retried after back-off; the record is
// delivered exactly once and the checkpoint never passes it before.
TEST(EngineStageErrors, AFailingDestinationIsRetriedAndHoldsTheCheckpoint) {
  sluice::manual_clock clock(sluice::time_point{} + 100h, sluice::manual_clock::auto_advance);
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream(1, clock);
  for (int i = 1; i <= 3; ++i) stream.put("k", i);
  sluice::memory_checkpoint_store store;
  int refusals = 2;
  std::vector<sluice::on_failure_record<R>> accepted;
  auto destination = [&](const sluice::on_failure_record<R>& rec) {
    EXPECT_LT(store.load("sluice", 0).value_or(0), 2u) << "checkpoint passed an undelivered record";
    if (refusals-- > 0) throw std::runtime_error("destination down");
    accepted.push_back(rec);
  };
  std::vector<int> handled;
  sluice::run(sluice::from(stream) | sluice::filter([](int x) {
                if (x == 2) throw std::runtime_error("bad");
                return true;
              }) | sluice::batching(sluice::batch_size(10)) |
                  sluice::on_failure(destination) | sluice::invoke([&](const sluice::batch<R>& b) {
                    for (const R& r : b) handled.push_back(r.payload);
                  }),
              sluice::with_clock(clock), sluice::checkpoints(store),
              sluice::on_stage_error(sluice::stage_error_policy::to_destination));
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_EQ(accepted[0].start_sequence_number, 2u);
  EXPECT_EQ(handled, (std::vector<int>{1, 3}));
  EXPECT_EQ(store.load("sluice", 0), 3u);
}

// The same with two lanes (the reader's per-record visit path) and two throwing records in one
// read pass: each is delivered once, in order, and the checkpoint passes neither before.
TEST(EngineStageErrors, TwoFailingRecordsInOnePassWithTwoLanesAreEachDeliveredOnce) {
  sluice::manual_clock clock(sluice::time_point{} + 100h, sluice::manual_clock::auto_advance);
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream(1, clock);
  for (int i = 1; i <= 6; ++i) stream.put("k" + std::to_string(i), i);
  sluice::memory_checkpoint_store store;
  int refusals = 2;
  std::vector<sluice::sequence_number_t> accepted;
  auto destination = [&](const sluice::on_failure_record<R>& rec) {
    EXPECT_LT(store.load("sluice", 0).value_or(0), rec.start_sequence_number)
        << "checkpoint passed an undelivered record";
    if (refusals-- > 0) throw std::runtime_error("destination down");
    accepted.push_back(rec.start_sequence_number);
  };
  std::vector<int> handled;
  const auto m =
      sluice::run(sluice::from(stream) | sluice::filter([](int x) {
                    if (x == 2 || x == 4) throw std::runtime_error("bad");
                    return true;
                  }) | sluice::batching(sluice::batch_size(10)) |
                      sluice::parallelization_factor(2) | sluice::on_failure(destination) |
                      sluice::invoke([&](const sluice::batch<R>& b) {
                        for (const R& r : b) handled.push_back(r.payload);
                      }),
                  sluice::with_clock(clock), sluice::checkpoints(store),
                  sluice::on_stage_error(sluice::stage_error_policy::to_destination));
  EXPECT_EQ(accepted, (std::vector<sluice::sequence_number_t>{2, 4}));
  std::sort(handled.begin(), handled.end());
  EXPECT_EQ(handled, (std::vector<int>{1, 3, 5, 6}));
  EXPECT_EQ(store.load("sluice", 0), 6u);
  EXPECT_EQ(m.total.polled_event_count, 6u);
  EXPECT_EQ(m.total.on_failure_destination_delivered_event_count, 2u);
}

// sluice::run ends when retention trimmed records it meant to read, instead of spinning.
TEST(EngineRetention, RunEndsWhenRetentionTrimmedTheRest) {
  sluice::manual_clock clock;
  sluice::stream_options options;
  options.retention_age = std::chrono::hours(1);
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream(options, clock);
  for (int i = 1; i <= 5; ++i) stream.put("k", i);
  clock.advance(std::chrono::hours(2));  // everything expires before it is read
  const auto m = sluice::run(sluice::from(stream) | sluice::invoke([](const sluice::batch<R>&) {}),
                             sluice::with_clock(clock));
  EXPECT_EQ(m.total.polled_event_count, 0u);
}

// S-2.3: with window 0 a batch is what is available now, up to batch_size: the reader's chunk
// size must not cut batches short when more records are already there.
TEST_P(Engine, WindowZeroBatchesAreFullWhenRecordsAreAvailable) {
  put(5000);
  sluice::run(sluice::from(stream) | sluice::batching(sluice::batch_size(1000)) |
                  sluice::invoke(record_call()),
              sluice::with_clock(clock));
  EXPECT_EQ(calls.str(), "[1-1000] [1001-2000] [2001-3000] [3001-4000] [4001-5000]");
  sluice::memory_stream<int, std::string, sluice::manual_clock> threaded{1, clock};
  for (int i = 0; i < 2500; ++i) threaded.put("k", i);
  trace seen;
  auto running = sluice::start(
      sluice::from(threaded) | sluice::batching(sluice::batch_size(1000)) |
          sluice::invoke([&](const sluice::batch<R>& b) { seen.record(b, clock.now()); }),
      sluice::with_clock(clock));
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  EXPECT_EQ(seen.str(), "[1-1000] [1001-2000] [2001-2500]");
}

INSTANTIATE_TEST_SUITE_P(Conformance, Engine,
                         ::testing::Values(sluice::execution_mode::adaptive,
                                           sluice::execution_mode::inline_only,
                                           sluice::execution_mode::handoff),
                         [](const auto& info) {
                           switch (info.param) {
                             case sluice::execution_mode::inline_only:
                               return "inline";
                             case sluice::execution_mode::handoff:
                               return "handoff";
                             default:
                               return "adaptive";
                           }
                         });
