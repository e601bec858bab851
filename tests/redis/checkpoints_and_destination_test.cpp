// Tests of sluice::redis::checkpoint_store (monotonic, 64-bit exact, the stream's default store so
// a restarted mapping resumes) and sluice::redis::destination (the S-5.7 record and its records in
// a Redis dead-letter stream, read back whole; kept across a Redis restart with AOF).
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "sluice/redis/checkpoint_store.hpp"
#include "sluice/redis/destination.hpp"
#include "sluice/redis/stream.hpp"
#include "sluice/sluice.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using R = sluice::record<int>;

static_assert(sluice::checkpoint_store<sluice::redis::checkpoint_store>);

TEST(RedisCheckpointStore, SavesLoadsAndNeverMovesBackwards) {
  sluice_test::redis_server server;
  sluice::redis::checkpoint_store store(server.tcp());
  EXPECT_EQ(store.load("m", 3), std::nullopt);
  store.save("m", 3, 100);
  store.save("m", 3, 40);  // lower: ignored
  EXPECT_EQ(store.load("m", 3), 100u);
  EXPECT_EQ(store.load("other", 3), std::nullopt);
  EXPECT_EQ(store.saves(), 2u);
  sluice::redis::connection c(server.tcp());
  EXPECT_EQ(sluice::redis::text(c.command({"HGET", "sluice:{m:3}:checkpoint", "seq"}).get()), "100")
      << "the documented key, hash-tagged by mapping and shard";
}

TEST(RedisCheckpointStore, ComparesSequenceNumbersBeyondTwoToThe53Exactly) {
  sluice_test::redis_server server;
  sluice::redis::checkpoint_store store(server.tcp());
  const sluice::sequence_number_t big = (1ull << 53) + 1;  // a double cannot tell it from 2^53
  store.save("m", 0, big);
  store.save("m", 0, big - 1);
  EXPECT_EQ(store.load("m", 0), big);
  store.save("m", 0, 18446744073709551615ull);
  EXPECT_EQ(store.load("m", 0), 18446744073709551615ull);
}

TEST(RedisCheckpointStore, EraseRewindsAMappingOnPurpose) {
  sluice_test::redis_server server;
  sluice::redis::checkpoint_store store(server.tcp());
  store.save("m", 0, 5);
  store.save("m", 1, 7);
  EXPECT_EQ(store.erase("m", 2), 2u);
  EXPECT_EQ(store.load("m", 1), std::nullopt);
}

TEST(RedisCheckpointStore, TheStreamsDefaultStoreLetsARestartedMappingResume) {
  sluice_test::redis_server server;
  sluice::redis::stream_options o;
  o.name = "resume";
  o.shards = 2;
  o.connection = server.tcp();
  sluice::redis::stream<int> stream(o);
  for (int i = 0; i < 20; ++i) stream.put("k" + std::to_string(i), i);
  int first = 0, second = 0;
  sluice::run(sluice::from(stream) | sluice::invoke([&](const R&) { ++first; }));
  for (int i = 20; i < 25; ++i) stream.put("k" + std::to_string(i), i);
  sluice::run(sluice::from(stream) | sluice::invoke([&](const R&) { ++second; }));
  EXPECT_EQ(first, 20);
  EXPECT_EQ(second, 5) << "the second run must start after the first run's checkpoints";
}

TEST(RedisDestination, StoresTheFailureRecordWithItsRecordsAndReadsItBack) {
  sluice_test::redis_server server(sluice_test::redis_server_options::with_aof());
  sluice::manual_clock clock{sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance};
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream{1, clock};
  for (int i = 1; i <= 10; ++i) stream.put("k", i);
  sluice::redis::destination<R> dlq(server.tcp(), "dead");
  sluice::memory_checkpoint_store store;
  sluice::run(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
                  sluice::retry(sluice::maximum_retry_attempts(2)) | sluice::on_failure(dlq) |
                  sluice::invoke([](const sluice::batch<R>&) { throw std::runtime_error("boom"); }),
              sluice::with_clock(clock), sluice::checkpoints(store));
  EXPECT_EQ(store.load("sluice", 0), 10u) << "delivered, so finished";
  server.restart();  // SIGKILL; AOF with fsync always kept the acknowledged XADD
  sluice::redis::destination<R> reopened(server.tcp(), "dead");
  ASSERT_EQ(reopened.count(), 1u);
  const auto dead = reopened.records();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].condition, sluice::failure_condition::retry_attempts_exhausted);
  EXPECT_EQ(dead[0].approximate_invoke_count, 3u);
  EXPECT_EQ(dead[0].last_attempt, sluice::attempt_outcome::raised);
  EXPECT_EQ(dead[0].error_type, "std::runtime_error");
  EXPECT_EQ(dead[0].error_message, "boom");
  EXPECT_EQ(dead[0].shard_id, 0u);
  EXPECT_EQ(dead[0].start_sequence_number, 1u);
  EXPECT_EQ(dead[0].end_sequence_number, 10u);
  EXPECT_EQ(dead[0].batch_size, 10u);
  EXPECT_EQ(dead[0].approximate_arrival_of_first_record, sluice::time_point{} + 1000h);
  ASSERT_EQ(dead[0].records.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(dead[0].records[i].payload, i + 1);
    EXPECT_EQ(dead[0].records[i].sequence, static_cast<sluice::sequence_number_t>(i + 1));
    EXPECT_EQ(dead[0].records[i].key, "k");
  }
  sluice::redis::connection c(server.tcp());
  const auto entry = c.command({"XRANGE", "sluice:{dead}:failures", "-", "+"});
  ASSERT_EQ(entry->elements, 1u);
  EXPECT_EQ(sluice::redis::detail::field(entry->element[0]->element[1], "functionError"),
            "Unhandled")
      << "AWS's responseContext.functionError for a handler that raised";
}

TEST(RedisDestination, AnUnreachableDestinationThrowsAnErrorNamingTheServer) {
  auto server = std::make_unique<sluice_test::redis_server>();
  auto o = server->tcp();
  o.reconnect_attempts = 1;
  o.reconnect_initial = 5ms;
  o.reconnect_max = 5ms;
  sluice::redis::destination<R> dlq(o, "dead");
  server.reset();
  sluice::on_failure_record<R> rec;
  try {
    dlq.deliver(rec);
    FAIL() << "delivered to a dead server";
  } catch (const sluice::redis::error& e) {
    EXPECT_EQ(e.server(), o.server());
    EXPECT_EQ(e.command(), "XADD sluice:{dead}:failures");
  }
}

}  // namespace
