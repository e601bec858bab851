// Tests of the structured events hook (sluice/events.hpp) and its JSON-lines adapter
// (sluice/events/json_lines.hpp): which events a failing mapping raises, in which order, with
// which coordinates; the blocked-lane gauge they go with; and the JSON written for them.
#include "sluice/events.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/events/json_lines.hpp"
#include "sluice/sluice.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;

namespace {

struct recorded {
  sluice::event_kind kind;
  std::string mapping;
  sluice::shard_id_t shard;
  sluice::sequence_number_t first, last;
  std::size_t records;
  std::uint32_t attempts;
  std::string condition, error_type, error_message;
};

class collecting_sink final : public sluice::event_sink {
 public:
  void on_event(const sluice::event& e) noexcept override {
    std::lock_guard lock(mutex_);
    events_.push_back({e.kind, std::string(e.mapping), e.shard, e.first_sequence, e.last_sequence,
                       e.records, e.attempts, std::string(e.condition), std::string(e.error_type),
                       std::string(e.error_message)});
  }
  std::vector<recorded> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::string kinds() const {
    std::string out;
    for (const recorded& r : events()) out += std::string(to_string(r.kind)) + " ";
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<recorded> events_;
};

// A destination that fails its first `failures` deliveries.
struct flaky_destination {
  explicit flaky_destination(int f) : failures(f) {}
  int failures;
  int calls = 0;
  std::vector<sluice::on_failure_record<R>> delivered;
  void deliver(const sluice::on_failure_record<R>& rec) {
    if (++calls <= failures) throw std::runtime_error("disk full");
    delivered.push_back(rec);
  }
};

TEST(Events, RetriesDeadLetterAndBlockedLaneInOrder) {
  sluice::memory_stream<int> stream(1);
  for (int i = 1; i <= 4; ++i) stream.put("k", i);
  sluice::manual_clock clock(sluice::time_point{} + 24h, sluice::manual_clock::auto_advance);
  flaky_destination dlq{2};
  collecting_sink sink;
  const auto m = sluice::run(
      sluice::from(stream) | sluice::batching(sluice::batch_size(4)) |
          sluice::retry(sluice::maximum_retry_attempts(1)) | sluice::on_failure(std::ref(dlq)) |
          sluice::invoke([](const sluice::batch<R>&) { throw std::invalid_argument("bad order"); }),
      sluice::with_clock(clock), sluice::mapping_name("ledger"), sluice::events(sink));
  // Two failed attempts, the discard, one lane_blocked for two failed deliveries, then the
  // delivery that unblocks the lane.
  EXPECT_EQ(sink.kinds(),
            "batch_failed batch_failed batch_discarded lane_blocked dead_letter_delivered "
            "lane_unblocked ");
  const auto ev = sink.events();
  ASSERT_EQ(ev.size(), 6u);
  for (const recorded& e : ev) {
    EXPECT_EQ(e.mapping, "ledger");
    EXPECT_EQ(e.shard, 0u);
    EXPECT_EQ(e.first, 1u);
    EXPECT_EQ(e.last, 4u);
    EXPECT_EQ(e.records, 4u);
  }
  EXPECT_EQ(ev[0].attempts, 1u);
  EXPECT_EQ(ev[1].attempts, 2u);
  EXPECT_EQ(ev[0].error_type, "std::invalid_argument");
  EXPECT_EQ(ev[0].error_message, "bad order");
  EXPECT_EQ(ev[2].condition, "RetryAttemptsExhausted");
  EXPECT_EQ(ev[2].attempts, 2u);
  EXPECT_EQ(ev[2].error_message, "bad order");
  EXPECT_EQ(ev[3].error_type, "std::runtime_error");
  EXPECT_EQ(ev[3].error_message, "disk full");
  EXPECT_EQ(dlq.calls, 3);
  ASSERT_EQ(dlq.delivered.size(), 1u);
  EXPECT_EQ(m.total.destination_failures, 2u);
  EXPECT_EQ(m.total.blocked_lanes, 0u);  // unblocked again
}

TEST(Events, BlockedLaneIsCountedWhileDeliveriesFail) {
  sluice::memory_stream<int> stream(2);
  stream.put("a", 1);
  sluice::manual_clock clock;  // manual: the lane waits for us to move time
  flaky_destination dlq{1000000};
  collecting_sink sink;
  auto running = sluice::start(
      sluice::from(stream) | sluice::batching(sluice::batch_size(1)) |
          sluice::retry(sluice::maximum_retry_attempts(0)) | sluice::on_failure(std::ref(dlq)) |
          sluice::invoke([](const sluice::batch<R>&) { throw std::runtime_error("poison"); }),
      sluice::with_clock(clock), sluice::events(sink));
  const sluice::time_point blocked_at = clock.now();
  sluice::metrics_snapshot m;
  for (int i = 0; i < 1000000 && (m = running.metrics()).total.blocked_lanes == 0; ++i)
    std::this_thread::yield();
  ASSERT_EQ(m.total.blocked_lanes, 1u);
  EXPECT_EQ(m.total.blocked_since, blocked_at);
  const sluice::shard_id_t shard = sluice::shard_for(sluice::key_hash(std::string("a")), 2);
  EXPECT_EQ(m.shards[shard].counters.blocked_lanes, 1u);
  EXPECT_EQ(m.shards[1 - shard].counters.blocked_lanes, 0u);
  // More failed deliveries keep it blocked since the first, and raise no second lane_blocked.
  for (int i = 0; i < 3; ++i) clock.advance(1h);
  for (int i = 0; i < 1000000 && running.metrics().total.destination_failures < 2; ++i)
    std::this_thread::yield();
  m = running.metrics();
  EXPECT_GE(m.total.destination_failures, 2u);
  EXPECT_EQ(m.total.blocked_lanes, 1u);
  EXPECT_EQ(m.total.blocked_since, blocked_at);
  running.request_stop();
  running.stop();
  EXPECT_EQ(sink.kinds(), "batch_failed batch_discarded lane_blocked ");
}

TEST(Events, StageFailureDeliveryBlocksTheReader) {
  sluice::memory_stream<int> stream(1);
  stream.put("k", 1);
  stream.put("k", 2);
  sluice::manual_clock clock(sluice::time_point{} + 24h, sluice::manual_clock::auto_advance);
  flaky_destination dlq{1};
  collecting_sink sink;
  std::vector<int> seen;
  (void)sluice::run(sluice::from(stream) | sluice::filter([](int v) {
                      if (v == 1) throw std::domain_error("unparsable");
                      return true;
                    }) | sluice::batching(sluice::batch_size(10)) |
                        sluice::on_failure(std::ref(dlq)) |
                        sluice::invoke([&](const sluice::batch<R>& b) {
                          for (const R& r : b) seen.push_back(r.payload);
                        }),
                    sluice::with_clock(clock), sluice::events(sink),
                    sluice::on_stage_error(sluice::stage_error_policy::to_destination));
  // The reader meets the record again after back-off: one discard, not one per redelivery.
  const auto ev = sink.events();
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(sink.kinds(), "batch_discarded lane_blocked dead_letter_delivered lane_unblocked ");
  EXPECT_EQ(ev[0].condition, "StageFailed");
  EXPECT_EQ(ev[0].error_type, "std::domain_error");
  EXPECT_EQ(ev[0].first, 1u);
  EXPECT_EQ(seen, std::vector<int>{2});
}

struct failing_store {
  std::optional<sluice::sequence_number_t> load(std::string_view, sluice::shard_id_t) const {
    return std::nullopt;
  }
  void save(std::string_view, sluice::shard_id_t, sluice::sequence_number_t) {
    throw std::runtime_error("read-only file system");
  }
};

TEST(Events, CheckpointFailureIsRaisedAndStopsTheMapping) {
  sluice::memory_stream<int> stream(1);
  stream.put("k", 1);
  failing_store store;
  collecting_sink sink;
  EXPECT_THROW(
      (void)sluice::run(sluice::from(stream) | sluice::invoke([](const sluice::batch<R>&) {}),
                        sluice::checkpoints(store), sluice::events(sink)),
      std::runtime_error);
  const auto ev = sink.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, sluice::event_kind::checkpoint_failed);
  EXPECT_EQ(ev[0].first, 1u);
  EXPECT_EQ(ev[0].error_message, "read-only file system");
}

TEST(Events, DroppedBatchWithoutDestinationIsADiscard) {
  sluice::memory_stream<int> stream(1);
  stream.put("k", 7);
  sluice::manual_clock clock(sluice::time_point{} + 24h, sluice::manual_clock::auto_advance);
  collecting_sink sink;
  const auto m = sluice::run(
      sluice::from(stream) | sluice::batching(sluice::batch_size(1)) |
          sluice::retry(sluice::maximum_retry_attempts(0)) |
          sluice::invoke([](const sluice::batch<R>&) { throw std::runtime_error("x"); }),
      sluice::with_clock(clock), sluice::events(sink));
  EXPECT_EQ(sink.kinds(), "batch_failed batch_discarded ");
  EXPECT_EQ(sink.events()[1].condition, "RetryAttemptsExhausted");
  EXPECT_EQ(m.total.dropped_event_count, 1u);
}

TEST(Events, JsonLinesAdapterWritesOneObjectPerLine) {
  std::ostringstream out;
  sluice::json_lines_event_sink sink(out);
  sluice::event e;
  e.kind = sluice::event_kind::lane_blocked;
  e.time = sluice::time_point{} + std::chrono::milliseconds(1700000000123);
  e.mapping = "led\"ger";
  e.shard = 3;
  e.first_sequence = 40;
  e.last_sequence = 41;
  e.records = 2;
  e.condition = "RetryAttemptsExhausted";
  e.error_type = "std::runtime_error";
  e.error_message = "disk\nfull";
  sink.on_event(e);
  e.kind = sluice::event_kind::lane_unblocked;
  e.error_type = e.error_message = {};
  sink.on_event(e);
  EXPECT_EQ(out.str(),
            R"({"time":"2023-11-14T22:13:20.123Z","event":"lane_blocked","mapping":"led\"ger",)"
            R"("shard":3,"firstSequence":"40","lastSequence":"41","records":2,)"
            R"("condition":"RetryAttemptsExhausted","errorType":"std::runtime_error",)"
            R"("errorMessage":"disk\nfull"})"
            "\n"
            R"({"time":"2023-11-14T22:13:20.123Z","event":"lane_unblocked","mapping":"led\"ger",)"
            R"("shard":3,"firstSequence":"40","lastSequence":"41","records":2,)"
            R"("condition":"RetryAttemptsExhausted"})"
            "\n");
}

}  // namespace
