// The SQLite queue and checkpoint store under concurrency, built in the ASan tree and in the TSan
// tree (tests/CMakeLists.txt: sqlite_concurrency/ is part of SLUICE_TSAN_SUBSET): many producers
// and consumers on one sluice::sqlite::queue object and on objects of their own (their own
// connections, as other processes) with no loss and no duplicate on success, FIFO order per group
// through a started mapping with several pollers, failures returning until handled, and
// concurrent checkpoint savers plus a started mapping checkpointing into one file.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sluice/limits.hpp"
#include "sluice/sluice.hpp"
#include "sluice/sqlite/checkpoint_store.hpp"
#include "sluice/sqlite/queue.hpp"
#include "support/queue_consumers.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using sluice::queue_message;
using qbatch = sluice::batch<queue_message>;

namespace {

sluice::sqlite::queue_file_options fast() {
  sluice::sqlite::queue_file_options f;
  f.database.synchronous = sluice::sqlite::synchronous_mode::normal;
  f.poll_interval = 5ms;  // sends by other objects are seen soon
  return f;
}

// Consumers share one queue object (its mutex), producers each have their own object (their own
// connection to the file); every message is received and deleted exactly once.
TEST(SqliteQueueConcurrency, ManyProducersAndConsumersLoseNothing) {
  sluice_test::temp_dir dir;
  const auto file = dir.path() / "q.db";
  sluice::queue_options o;
  o.name = "jobs";
  sluice::sqlite::queue shared(file, o, fast());
  constexpr int producers = 3, per_producer = 150, consumers = 3;
  sluice_test::queue_consumers consumers_of(shared, consumers);
  std::vector<std::thread> senders;
  for (int p = 0; p < producers; ++p)
    senders.emplace_back([&, p] {
      sluice::sqlite::queue mine(file, o, fast());
      for (int i = 0; i < per_producer; ++i) mine.send(std::to_string(p) + ":" + std::to_string(i));
    });
  for (auto& t : senders) t.join();
  consumers_of.finish();
  consumers_of.expect_each_once(producers * per_producer);
  EXPECT_TRUE(shared.empty());
}

// A started FIFO mapping with 4 pollers on one object while producers send on the same object
// and on their own: each group in send order, every message once, at most 4 handler calls at once.
TEST(SqliteQueueConcurrency, StartedFifoMappingKeepsGroupOrderWithManyPollers) {
  sluice_test::temp_dir dir;
  const auto file = dir.path() / "q.db";
  sluice::queue_options o;
  o.name = "jobs.fifo";
  o.fifo = true;
  o.content_based_deduplication = true;
  sluice::sqlite::queue consumer_side(file, o, fast());
  constexpr int groups = 8, per_group = 40;
  std::mutex mutex;
  std::map<std::string, std::vector<int>> order;
  std::atomic<int> in_handler{0}, max_in_handler{0};
  auto running = sluice::start(
      sluice::from(consumer_side) | sluice::batching(sluice::batch_size(5)) |
      sluice::maximum_concurrency(4) | sluice::invoke([&](const qbatch& b) {
        const int now = ++in_handler;
        int seen = max_in_handler.load();
        while (now > seen && !max_in_handler.compare_exchange_weak(seen, now)) {
        }
        {
          std::lock_guard lock(mutex);
          for (const auto& m : b)
            order[m.message_group_id].push_back(std::stoi(m.body().substr(m.body().find(':') + 1)));
        }
        std::this_thread::yield();
        --in_handler;
      }));
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p)
    producers.emplace_back([&, p] {
      // Two producers on the mapping's object (its local wake-up), two on their own connection.
      std::optional<sluice::sqlite::queue<>> own;
      if (p % 2 == 1) own.emplace(file, o, fast());
      auto& q = own ? *own : consumer_side;
      for (int i = 0; i < per_group; ++i)
        for (int g = p; g < groups; g += 4)
          q.send("g" + std::to_string(g) + ":" + std::to_string(i),
                 sluice::send_options::in_group("g" + std::to_string(g)));
    });
  for (auto& t : producers) t.join();
  ASSERT_TRUE(running.wait_until_caught_up(120s));
  auto m = running.metrics();
  running.stop();
  EXPECT_LE(max_in_handler.load(), 4);
  EXPECT_EQ(m.total.succeeded_event_count, static_cast<std::uint64_t>(groups * per_group));
  ASSERT_EQ(order.size(), static_cast<std::size_t>(groups));
  for (auto& [g, seq] : order) {
    ASSERT_EQ(seq.size(), static_cast<std::size_t>(per_group)) << g;
    for (int i = 0; i < per_group; ++i) ASSERT_EQ(seq[static_cast<std::size_t>(i)], i) << g;
  }
}

// Partial batch failures under a started mapping with 3 pollers: the reported messages return
// after their visibility timeout (the test moves the manual clock) until handled; none is lost.
TEST(SqliteQueueConcurrency, FailuresReturnAndNothingIsLost) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  sluice::queue_options o;
  o.visibility_timeout = 1s;
  sluice::sqlite::queue<sluice::manual_clock> q(dir.path() / "q.db", o, clock, fast());
  for (int i = 0; i < 150; ++i) q.send(std::to_string(i));
  std::mutex mutex;
  std::set<std::string> done;
  auto running =
      sluice::start(sluice::from(q) | sluice::report_batch_item_failures |
                        sluice::maximum_concurrency(3) | sluice::invoke([&](const qbatch& b) {
                          sluice::queue_item_failures f;
                          for (const auto& m : b) {
                            if (m.approximate_receive_count == 1 && std::stoi(m.body()) % 7 == 0) {
                              f.add(m.message_id);
                            } else {
                              std::lock_guard lock(mutex);  // at least once: count distinct bodies
                              done.insert(m.body());
                            }
                          }
                          return f;
                        }),
                    sluice::with_clock(clock));
  for (int i = 0; i < 200 && !running.wait_until_caught_up(50ms); ++i) clock.advance(1s);
  ASSERT_TRUE(running.wait_until_caught_up(30s));
  running.stop();
  EXPECT_EQ(done.size(), 150u);
  EXPECT_TRUE(q.empty());
}

// Checkpoint savers on one store object and on their own objects: the highest value stays.
TEST(SqliteCheckpointConcurrency, ConcurrentSaversLeaveTheHighestValue) {
  sluice_test::temp_dir dir;
  sluice::sqlite::open_options f;
  f.synchronous = sluice::sqlite::synchronous_mode::normal;
  sluice::sqlite::checkpoint_store shared(dir / "c.db", f);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::optional<sluice::sqlite::checkpoint_store> own;
      if (t % 2 == 1) own.emplace(dir / "c.db", f);
      auto& s = own ? *own : shared;
      for (sluice::sequence_number_t i = 1; i <= 60; ++i)
        s.save("m", static_cast<sluice::shard_id_t>(t % 2), i * 4 + static_cast<unsigned>(t));
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(shared.load("m", 0), 60u * 4 + 2);
  EXPECT_EQ(shared.load("m", 1), 60u * 4 + 3);
}

// A started mapping with several threads checkpointing 4 shards into a SQLite store.
TEST(SqliteCheckpointConcurrency, StartedMappingCheckpointsEveryShard) {
  sluice_test::temp_dir dir;
  sluice::sqlite::open_options f;
  f.synchronous = sluice::sqlite::synchronous_mode::normal;
  sluice::sqlite::checkpoint_store store(dir / "c.db", f);
  sluice::memory_stream<int> stream(4);
  for (int i = 0; i < 2000; ++i) stream.put("k" + std::to_string(i % 64), i);
  std::atomic<long> sum{0};
  auto running = sluice::start(sluice::from(stream) | sluice::batching(sluice::batch_size(25)) |
                                   sluice::parallelization_factor(2) |
                                   sluice::invoke([&](const sluice::batch<sluice::record<int>>& b) {
                                     for (const auto& r : b) sum += r.payload;
                                   }),
                               sluice::checkpoints(store), sluice::mapping_name("counted"),
                               sluice::workers(4), sluice::pollers(2));
  ASSERT_TRUE(running.wait_until_caught_up(120s));
  running.stop();
  EXPECT_EQ(sum.load(), 1999L * 2000 / 2);
  std::uint64_t total = 0;
  for (sluice::shard_id_t s = 0; s < 4; ++s) {
    const auto cp = store.load("counted", s);
    ASSERT_TRUE(cp.has_value()) << "shard " << s;
    total += *cp;
  }
  EXPECT_EQ(total, 2000u) << "each shard's checkpoint is its last sequence number";
}

}  // namespace
