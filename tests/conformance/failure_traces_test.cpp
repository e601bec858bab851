// Conformance scenarios C-04..C-11 and C-16..C-18 (shared/spec/conformance.md): exact traces of
// the failure policies (S-4, S-5). Each runs twice: with sluice::run on the calling thread and
// with sluice::start on worker threads, both on a manual clock in auto-advance mode, so back-offs
// play out in virtual time and every trace is deterministic.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "sluice/exporters/prometheus.hpp"
#include "sluice/sluice.hpp"
#include "support/trace.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;
using sluice_test::trace;

// The stream the traces run on: a memory_stream, unless the file that includes this one chose
// another (tests/redis/traces/redis_traces_test.cpp runs the same traces on a Redis stream).
#ifndef SLUICE_TRACE_STREAM
#define SLUICE_TRACE_STREAM(clock) \
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream { 1, clock }
#endif

namespace {

// run: sluice::run on the calling thread; the start modes force where sluice::start runs a
// batch (the reader itself, or always another thread), and adaptive lets it choose.
enum class mode { run, start, start_inline, start_handoff };

sluice::execution_mode execution_of(mode m) {
  switch (m) {
    case mode::start_inline:
      return sluice::execution_mode::inline_only;
    case mode::start_handoff:
      return sluice::execution_mode::handoff;
    default:
      return sluice::execution_mode::adaptive;
  }
}

class FailureTraces : public ::testing::TestWithParam<mode> {
 protected:
  sluice::manual_clock clock{sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance};
  SLUICE_TRACE_STREAM(clock);
  sluice::memory_checkpoint_store store;
  sluice::memory_destination<R> dlq;
  trace calls;
  sluice::time_point t0 = clock.now();

  void put(int n) {
    for (int i = 1; i <= n; ++i) stream.put("k", i);
  }

  template <class Mapping>
  sluice::metrics_snapshot drive(Mapping&& m) {
    if (GetParam() == mode::run) {
      return sluice::run(std::move(m), sluice::with_clock(clock), sluice::checkpoints(store));
    }
    auto running =
        sluice::start(std::move(m), sluice::with_clock(clock), sluice::checkpoints(store),
                      sluice::workers(1), sluice::execution(execution_of(GetParam())));
    EXPECT_TRUE(running.wait_until_caught_up(60s))
        << "did not finish; trace so far: " << calls.str();
    auto snapshot = running.metrics();
    running.stop();
    return snapshot;
  }

  sluice::sequence_number_t checkpoint() const { return store.load("sluice", 0).value_or(0); }

  auto record_call() {
    return [this](const sluice::batch<R>& b) { calls.record(b, clock.now()); };
  }
};

bool contains(const sluice::batch<R>& b, sluice::sequence_number_t seq) {
  for (const auto& r : b)
    if (r.sequence == seq) return true;
  return false;
}

}  // namespace

// C-04 retries exhausted (S-5.1, S-5.5)
TEST_P(FailureTraces, C04_RetriesExhaustedGoToDestination) {
  put(10);
  auto snapshot = drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
                        sluice::retry(sluice::maximum_retry_attempts(2)) | sluice::on_failure(dlq) |
                        sluice::invoke([&](const sluice::batch<R>& b) {
                          calls.record(b, clock.now());
                          throw std::runtime_error("boom");
                        }));
  EXPECT_EQ(calls.str(), "[1-10] [1-10] [1-10]");
  const auto dead = dlq.records();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].condition, sluice::failure_condition::retry_attempts_exhausted);
  EXPECT_EQ(dead[0].approximate_invoke_count, 3u);
  EXPECT_EQ(dead[0].start_sequence_number, 1u);
  EXPECT_EQ(dead[0].end_sequence_number, 10u);
  EXPECT_EQ(dead[0].batch_size, 10u);
  ASSERT_EQ(dead[0].records.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(dead[0].records[i].payload, i + 1);
  EXPECT_EQ(dead[0].last_attempt, sluice::attempt_outcome::raised);  // functionError "Unhandled"
  EXPECT_EQ(dead[0].error_type, "std::runtime_error");
  EXPECT_EQ(dead[0].error_message, "boom");
  EXPECT_EQ(checkpoint(), 10u);
  EXPECT_EQ(snapshot.total.on_failure_destination_delivered_event_count, 10u);
  EXPECT_EQ(snapshot.total.function_errors, 3u);
  EXPECT_EQ(snapshot.total.retries, 2u);
}

// C-05 bisect isolates a poison record (S-5.3)
TEST_P(FailureTraces, C05_BisectIsolatesPoisonRecord) {
  put(10);
  auto snapshot = drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
                        sluice::retry(sluice::maximum_retry_attempts(0)) |
                        sluice::bisect_batch_on_function_error | sluice::on_failure(dlq) |
                        sluice::invoke([&](const sluice::batch<R>& b) {
                          calls.record(b, clock.now());
                          if (contains(b, 7)) throw std::runtime_error("poison");
                        }));
  EXPECT_EQ(calls.str(), "[1-10] [1-5] [6-10] [6-8] [6-7] [6] [7] [8] [9-10]");
  const auto dead = dlq.records();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].start_sequence_number, 7u);
  EXPECT_EQ(dead[0].end_sequence_number, 7u);
  EXPECT_EQ(dead[0].condition, sluice::failure_condition::retry_attempts_exhausted);
  EXPECT_EQ(dead[0].approximate_invoke_count, 1u);
  EXPECT_EQ(checkpoint(), 10u);
  EXPECT_EQ(snapshot.total.bisect_splits, 4u);
}

TEST_P(FailureTraces, C05_BisectWithTwoRetriesAttemptsPoisonThreeTimes) {
  put(10);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
        sluice::retry(sluice::maximum_retry_attempts(2)) | sluice::bisect_batch_on_function_error |
        sluice::on_failure(dlq) | sluice::invoke([&](const sluice::batch<R>& b) {
          calls.record(b, clock.now());
          if (contains(b, 7)) throw std::runtime_error("poison");
        }));
  EXPECT_EQ(calls.str(), "[1-10] [1-5] [6-10] [6-8] [6-7] [6] [7] [7] [7] [8] [9-10]");
  const auto dead = dlq.records();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].approximate_invoke_count, 3u);
  EXPECT_EQ(checkpoint(), 10u);
}

namespace {
// The C-06/C-07 handler: fail{4,8} on the first call, then fail{8} whenever 8 is in the batch.
struct c06_handler {
  trace* calls;
  sluice::manual_clock* clock;
  int call = 0;
  sluice::batch_item_failures operator()(const sluice::batch<R>& b) {
    calls->record(b, clock->now());
    if (call++ == 0) return {4, 8};
    if (contains(b, 8)) return {8};
    return {};
  }
};
}  // namespace

// C-06 partial batch response (S-4.3, S-5.2)
TEST_P(FailureTraces, C06_PartialBatchResponseRetriesFromLowestFailure) {
  put(10);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
        sluice::retry(sluice::maximum_retry_attempts(1)) | sluice::report_batch_item_failures |
        sluice::on_failure(dlq) | sluice::invoke(c06_handler{&calls, &clock}));
  EXPECT_EQ(calls.str(), "[1-10] [4-10] [8-10] [8-10]");
  const auto dead = dlq.records();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].start_sequence_number, 8u);
  EXPECT_EQ(dead[0].end_sequence_number, 10u);
  EXPECT_EQ(dead[0].approximate_invoke_count, 2u);
  EXPECT_EQ(dead[0].reported_failed, (std::vector<bool>{true, false, false}));
  EXPECT_EQ(checkpoint(), 10u);
}

// C-07 partial batch response ignored when the feature is off (S-4.2)
TEST_P(FailureTraces, C07_ReportIgnoredWithoutTheFeature) {
  put(10);
  auto snapshot = drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
                        sluice::retry(sluice::maximum_retry_attempts(1)) | sluice::on_failure(dlq) |
                        sluice::invoke(c06_handler{&calls, &clock}));
  EXPECT_EQ(calls.str(), "[1-10]");
  EXPECT_EQ(dlq.size(), 0u);
  EXPECT_EQ(checkpoint(), 10u);
  EXPECT_EQ(snapshot.total.succeeded_event_count, 10u);
}

// C-08 invalid item identifier (S-4.3)
TEST_P(FailureTraces, C08_InvalidIdentifierFailsWholeBatch) {
  put(10);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
        sluice::retry(sluice::maximum_retry_attempts(0)) | sluice::report_batch_item_failures |
        sluice::on_failure(dlq) | sluice::invoke([&](const sluice::batch<R>& b) {
          calls.record(b, clock.now());
          return sluice::batch_item_failures{999};
        }));
  EXPECT_EQ(calls.str(), "[1-10]");
  const auto dead = dlq.records();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].start_sequence_number, 1u);
  EXPECT_EQ(dead[0].end_sequence_number, 10u);
  EXPECT_EQ(dead[0].last_attempt, sluice::attempt_outcome::returned_report);  // functionError null
  EXPECT_EQ(dead[0].error_type, "sluice::invalid_batch_item_failures");
  EXPECT_EQ(checkpoint(), 10u);
}

// C-09 bisect plus partial response (S-5.3)
TEST_P(FailureTraces, C09_BisectWithPartialResponse) {
  put(8);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(8)) |
        sluice::retry(sluice::maximum_retry_attempts(0)) | sluice::bisect_batch_on_function_error |
        sluice::report_batch_item_failures | sluice::on_failure(dlq) |
        sluice::invoke([&](const sluice::batch<R>& b) {
          calls.record(b, clock.now());
          return contains(b, 5) ? sluice::batch_item_failures{5} : sluice::batch_item_failures{};
        }));
  EXPECT_EQ(calls.str(), "[1-8] [5-8] [5-6] [5] [6] [7-8]");
  const auto dead = dlq.records();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].start_sequence_number, 5u);
  EXPECT_EQ(dead[0].end_sequence_number, 5u);
  EXPECT_EQ(dead[0].reported_failed, std::vector<bool>{true});
  EXPECT_EQ(checkpoint(), 8u);
}

// C-10 maximum record age (S-5.4)
TEST_P(FailureTraces, C10_RecordAgeSendsExpiredRecordsWithoutInvoking) {
  put(3);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
        sluice::retry(sluice::maximum_retry_attempts(-1), sluice::maximum_record_age(60s),
                      sluice::backoff::fixed(10s)) |
        sluice::on_failure(dlq) | sluice::invoke([&](const sluice::batch<R>& b) {
          calls.record(b, clock.now());
          throw std::runtime_error("always");
        }));
  const auto invocations = calls.calls();
  ASSERT_EQ(invocations.size(), 7u) << calls.str();
  for (std::size_t i = 0; i < invocations.size(); ++i) {
    EXPECT_EQ(invocations[i].at - t0, std::chrono::seconds(10 * i)) << "attempt " << i;
    EXPECT_EQ(invocations[i].size, 3u);
  }
  const auto dead = dlq.records();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].condition, sluice::failure_condition::record_age_exceeded);
  EXPECT_EQ(dead[0].start_sequence_number, 1u);
  EXPECT_EQ(dead[0].end_sequence_number, 3u);
  EXPECT_EQ(dead[0].timestamp - t0, 70s);
  EXPECT_EQ(dead[0].approximate_invoke_count, 7u);
  // Invoked before it expired, yet AWS writes no responseContext for RecordAgeExceeded (S-5.7).
  EXPECT_FALSE(sluice::has_response_context(dead[0]));
  EXPECT_EQ(dead[0].error_type, "std::runtime_error");  // sluice's own details are kept
  EXPECT_EQ(checkpoint(), 3u);
}

// C-11 throttle (S-4.4)
TEST_P(FailureTraces, C11_ThrottleConsumesNoAttempt) {
  put(5);
  auto snapshot =
      drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
            sluice::retry(sluice::maximum_retry_attempts(0), sluice::maximum_record_age(60s),
                          sluice::backoff::fixed(10s)) |
            sluice::on_failure(dlq) | sluice::invoke([&](const sluice::batch<R>& b) {
              calls.record(b, clock.now());
              if (clock.now() - t0 < 20s) throw sluice::throttled();
            }));
  const auto invocations = calls.calls();
  ASSERT_EQ(calls.str(), "[1-5] [1-5] [1-5]");
  EXPECT_EQ(invocations[0].at - t0, 0s);
  EXPECT_EQ(invocations[1].at - t0, 10s);
  EXPECT_EQ(invocations[2].at - t0, 20s);
  EXPECT_EQ(dlq.size(), 0u);
  EXPECT_EQ(checkpoint(), 5u);
  EXPECT_EQ(snapshot.total.throttles, 2u);
}

// A throttle consumes no attempt, so only the record age ends it; the destination says it was
// throttled (S-4.4, S-5.4, S-5.7: sluice's error_type and error_message of the last attempt).
TEST_P(FailureTraces, ThrottledUntilTheRecordAgeEndsInTheDestinationAsThrottled) {
  put(3);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
        sluice::retry(sluice::maximum_retry_attempts(0), sluice::maximum_record_age(60s),
                      sluice::backoff::fixed(10s)) |
        sluice::on_failure(dlq) | sluice::invoke([&](const sluice::batch<R>& b) {
          calls.record(b, clock.now());
          throw sluice::throttled("downstream full");
        }));
  EXPECT_EQ(calls.calls().size(), 7u) << calls.str();  // 0, 10, ..., 60 s: no attempt limit
  const auto dead = dlq.records();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].condition, sluice::failure_condition::record_age_exceeded);
  EXPECT_EQ(dead[0].error_type, "sluice::throttled");
  EXPECT_EQ(dead[0].error_message, "downstream full");
  EXPECT_EQ(checkpoint(), 3u);
}

// C-16 destination failure loses nothing (S-5.8)
TEST_P(FailureTraces, C16_DestinationFailureIsRetriedAndBlocksCheckpoint) {
  put(10);
  int deliveries = 0;
  std::vector<sluice::sequence_number_t> checkpoint_seen_at_delivery;
  auto flaky = [&](const sluice::on_failure_record<R>& rec) {
    checkpoint_seen_at_delivery.push_back(checkpoint());
    if (++deliveries <= 2) throw std::runtime_error("destination down");
    dlq.deliver(rec);
  };
  auto snapshot = drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
                        sluice::retry(sluice::maximum_retry_attempts(2)) |
                        sluice::on_failure(flaky) | sluice::invoke([&](const sluice::batch<R>& b) {
                          calls.record(b, clock.now());
                          throw std::runtime_error("boom");
                        }));
  EXPECT_EQ(calls.str(), "[1-10] [1-10] [1-10]");
  EXPECT_EQ(deliveries, 3);
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq.records()[0].end_sequence_number, 10u);
  EXPECT_EQ(checkpoint_seen_at_delivery, (std::vector<sluice::sequence_number_t>{0, 0, 0}));
  EXPECT_EQ(checkpoint(), 10u);
  EXPECT_EQ(snapshot.total.destination_failures, 2u);
}

// S-5.8: while deliveries fail the lane is blocked, and the destination's error is visible in
// the metrics and in Prometheus (failure() stays empty: the mapping has not failed); it clears
// once a delivery succeeds.
TEST_P(FailureTraces, C16_DestinationErrorIsVisibleWhileTheLaneRetries) {
  if (GetParam() == mode::run) GTEST_SKIP() << "needs a running mapping to look at";
  put(10);
  std::atomic<bool> down{true};
  auto flaky = [&](const sluice::on_failure_record<R>& rec) {
    if (down.load()) throw std::runtime_error("destination down");
    dlq.deliver(rec);
  };
  auto running = sluice::start(
      sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
          sluice::retry(sluice::maximum_retry_attempts(0)) | sluice::on_failure(flaky) |
          sluice::invoke([](const sluice::batch<R>&) { throw std::runtime_error("boom"); }),
      sluice::with_clock(clock), sluice::checkpoints(store), sluice::workers(1));
  sluice::metrics_snapshot m;
  const auto give_up = std::chrono::steady_clock::now() + 30s;  // a hang guard, not a timing
  do {
    std::this_thread::yield();
    m = running.metrics();
  } while (m.total.destination_failures < 2 && std::chrono::steady_clock::now() < give_up);
  ASSERT_GE(m.total.destination_failures, 2u);
  EXPECT_EQ(m.total.last_destination_error, "std::runtime_error: destination down");
  ASSERT_EQ(m.shards.size(), 1u);
  EXPECT_EQ(m.shards[0].counters.last_destination_error, "std::runtime_error: destination down");
  EXPECT_GE(m.shards[0].counters.last_destination_error_time, t0);
  EXPECT_EQ(checkpoint(), 0u);
  const std::string text = sluice::to_prometheus(m);
  EXPECT_NE(text.find("sluice_destination_error_info{mapping=\"sluice\",shard=\"0\","
                      "error=\"std::runtime_error: destination down\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("sluice_destination_error_timestamp_seconds{mapping=\"sluice\",shard=\"0\"} "
                      "0\n"),
            std::string::npos)
      << text;

  down = false;
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  m = running.metrics();
  running.stop();
  EXPECT_EQ(m.total.last_destination_error, "");
  EXPECT_EQ(m.shards[0].counters.last_destination_error, "");
  EXPECT_EQ(sluice::to_prometheus(m).find("sluice_destination_error_info{"), std::string::npos);
  EXPECT_EQ(dlq.size(), 1u);
  EXPECT_EQ(checkpoint(), 10u);
}

// C-17 the AWS-observed partial failure (S-5.2)
TEST_P(FailureTraces, C17_AwsObservedPartialFailure) {
  put(6);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(3)) |
        sluice::retry(sluice::maximum_retry_attempts(3)) | sluice::report_batch_item_failures |
        sluice::on_failure(dlq) | sluice::invoke([&](const sluice::batch<R>& b) {
          calls.record(b, clock.now());
          return contains(b, 6) ? sluice::batch_item_failures{6} : sluice::batch_item_failures{};
        }));
  EXPECT_EQ(calls.str(), "[1-3] [4-6] [6] [6] [6] [6]");
  const auto dead = dlq.records();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].approximate_invoke_count, 4u);
  EXPECT_EQ(dead[0].batch_size, 1u);
  EXPECT_EQ(dead[0].start_sequence_number, 6u);
  EXPECT_EQ(dead[0].end_sequence_number, 6u);
  std::map<sluice::sequence_number_t, int> handed;
  for (const auto& c : calls.calls())
    for (auto s : c.sequences) ++handed[s];
  for (sluice::sequence_number_t s = 1; s <= 5; ++s) EXPECT_EQ(handed[s], 1) << s;
  EXPECT_EQ(handed[6], 5);
}

namespace {
/// C-18's setup: one record, batch_size 1, R = 2, a destination; returns how often the handler
/// was called and what reached the destination. With `report`, report_batch_item_failures is on.
struct one_record_outcome {
  int invocations = 0;
  std::vector<sluice::on_failure_record<R>> dead;
  std::optional<sluice::sequence_number_t> checkpoint;
};

template <bool Report, class Handler>
one_record_outcome one_record(mode md, sluice::manual_clock& clock, Handler handler) {
  sluice::memory_stream<int, std::string, sluice::manual_clock> s{1, clock};
  sluice::memory_checkpoint_store store;
  sluice::memory_destination<R> dlq;
  s.put("k", 1);
  one_record_outcome out;
  auto counted = [&](const sluice::batch<R>& b) {
    ++out.invocations;
    return handler(b);
  };
  auto run = [&](auto&& m) {
    if (md == mode::run) {
      sluice::run(std::move(m), sluice::with_clock(clock), sluice::checkpoints(store));
    } else {
      auto r = sluice::start(std::move(m), sluice::with_clock(clock), sluice::checkpoints(store),
                             sluice::execution(execution_of(md)));
      EXPECT_TRUE(r.wait_until_caught_up(60s));
    }
  };
  auto base = sluice::from(s) | sluice::batching(sluice::batch_size(1)) |
              sluice::retry(sluice::maximum_retry_attempts(2));
  if constexpr (Report) {
    run(std::move(base) | sluice::report_batch_item_failures | sluice::on_failure(dlq) |
        sluice::invoke(counted));
  } else {
    run(std::move(base) | sluice::on_failure(dlq) | sluice::invoke(counted));
  }
  out.dead = dlq.records();
  out.checkpoint = store.load("sluice", 0);
  return out;
}
}  // namespace

// C-18 malformed reports fail the whole attempt (S-4.3)
TEST_P(FailureTraces, C18_MalformedReportsFailTheAttempt) {
  const std::vector<std::function<sluice::batch_item_failures()>> malformed = {
      [] { return sluice::batch_item_failures{999}; },  // not in the batch
      [] { return sluice::batch_item_failures{0}; },    // the empty identifier
      []() -> sluice::batch_item_failures { throw std::runtime_error("handler threw"); },
  };
  for (std::size_t i = 0; i < malformed.size(); ++i) {
    SCOPED_TRACE(i);
    const auto out = one_record<true>(GetParam(), clock,
                                      [&](const sluice::batch<R>&) { return malformed[i](); });
    EXPECT_EQ(out.invocations, 3);
    ASSERT_EQ(out.dead.size(), 1u);
    EXPECT_EQ(out.dead[0].approximate_invoke_count, 3u);
    EXPECT_EQ(out.checkpoint, 1u);
  }
}

TEST_P(FailureTraces, C18_EmptyOrAbsentReportIsSuccess) {
  const auto no_report = one_record<false>(GetParam(), clock, [](const sluice::batch<R>&) {});
  const auto empty = one_record<true>(
      GetParam(), clock, [](const sluice::batch<R>&) { return sluice::batch_item_failures{}; });
  const auto absent = one_record<true>(GetParam(), clock, [](const sluice::batch<R>&) {
    return std::optional<sluice::batch_item_failures>{};
  });
  for (const auto* out : {&no_report, &empty, &absent}) {
    EXPECT_EQ(out->invocations, 1);
    EXPECT_TRUE(out->dead.empty());
    EXPECT_EQ(out->checkpoint, 1u);
  }
}

// S-5.8 without a destination: expired records are dropped, counted, and the checkpoint passes
// them (the lane must not keep holding the shard).
TEST_P(FailureTraces, RecordAgeDropWithoutDestinationIsCountedAndCheckpointed) {
  put(3);
  clock.advance(2h);
  auto snapshot =
      drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
            sluice::retry(sluice::maximum_record_age(1h)) | sluice::invoke(record_call()));
  EXPECT_EQ(calls.size(), 0u);
  EXPECT_EQ(snapshot.total.dropped_event_count, 3u);
  EXPECT_EQ(checkpoint(), 3u);
}

TEST_P(FailureTraces, RetriesExhaustedWithoutDestinationAreDroppedAndCounted) {
  put(4);
  auto snapshot = drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
                        sluice::retry(sluice::maximum_retry_attempts(1)) |
                        sluice::invoke([&](const sluice::batch<R>& b) {
                          calls.record(b, clock.now());
                          throw std::runtime_error("boom");
                        }));
  EXPECT_EQ(calls.str(), "[1-4] [1-4]");
  EXPECT_EQ(snapshot.total.dropped_event_count, 4u);
  EXPECT_EQ(checkpoint(), 4u);
}

INSTANTIATE_TEST_SUITE_P(Conformance, FailureTraces,
                         ::testing::Values(mode::run, mode::start, mode::start_inline,
                                           mode::start_handoff),
                         [](const auto& info) {
                           switch (info.param) {
                             case mode::run:
                               return "run";
                             case mode::start_inline:
                               return "start_inline";
                             case mode::start_handoff:
                               return "start_handoff";
                             default:
                               return "start_adaptive";
                           }
                         });
