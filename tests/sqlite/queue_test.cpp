// sluice::sqlite::queue (S-9): the memory queue's semantics, durable. Traces,
// on a SQLite file with sluice::run and sluice::start (manual clock in
// auto-advance mode), plus what only a file can show: a message received by one queue object and
// never deleted reappears in another object on the same file after its visibility timeout.
#include "sluice/sqlite/queue.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/limits.hpp"
#include "sluice/sluice.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using sluice::queue_message;
using sluice::send_options;
using squeue = sluice::sqlite::queue<sluice::manual_clock>;
using qbatch = sluice::batch<queue_message>;

namespace {

enum class mode { run, start };

class SqliteQueue : public ::testing::TestWithParam<mode> {
 protected:
  sluice_test::temp_dir dir;
  std::filesystem::path file = dir.path() / "queues.db";
  sluice::manual_clock clock{sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance};
  sluice::time_point t0 = clock.now();
  std::mutex mutex;
  std::vector<std::string> calls;
  sluice::sqlite::queue_file_options no_poll{std::chrono::milliseconds(0), {}};

  sluice::queue_options named(std::string name, bool fifo = false) {
    sluice::queue_options o;
    o.name = std::move(name);
    o.fifo = fifo;
    o.content_based_deduplication = fifo;
    return o;
  }

  void record(const qbatch& b) {
    std::ostringstream out;
    out << '@' << std::chrono::duration<double>(clock.now() - t0).count() << " [";
    for (std::size_t i = 0; i < b.size(); ++i) out << (i ? " " : "") << b[i].body();
    out << ']';
    std::lock_guard lock(mutex);
    calls.push_back(out.str());
  }
  std::string trace() {
    std::lock_guard lock(mutex);
    std::string s;
    for (auto& c : calls) s += (s.empty() ? "" : " ") + c;
    return s;
  }
  template <class Mapping>
  sluice::metrics_snapshot drive(Mapping&& m) {
    if (GetParam() == mode::run) return sluice::run(std::move(m), sluice::with_clock(clock));
    auto running = sluice::start(std::move(m), sluice::with_clock(clock), sluice::workers(1));
    EXPECT_TRUE(running.wait_until_caught_up(60s)) << trace();
    auto s = running.metrics();
    running.stop();
    return s;
  }
};

TEST_P(SqliteQueue, Q01_visibility_and_receive_counts) {
  squeue q(file, named("q"), clock, no_poll);
  q.send("m1");
  int n = 0;
  std::vector<std::uint32_t> counts;
  drive(sluice::from(q) | sluice::invoke([&](const qbatch& b) {
          record(b);
          counts.push_back(b[0].approximate_receive_count);
          if (++n < 3) throw std::runtime_error("not yet");
        }));
  EXPECT_EQ(trace(), "@0 [m1] @30 [m1] @60 [m1]");
  EXPECT_EQ(counts, (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_TRUE(q.empty());
}

TEST_P(SqliteQueue, Q02_redrive) {
  squeue dlq(file, named("dlq"), clock, no_poll);
  squeue q(file, named("q"), clock, no_poll);
  q.set_redrive_policy(dlq, 3);
  const std::string id = q.send("m1");
  drive(sluice::from(q) | sluice::invoke([&](const qbatch& b) {
          record(b);
          throw std::runtime_error("poison");
        }));
  EXPECT_EQ(trace(), "@0 [m1] @30 [m1] @60 [m1]");
  EXPECT_TRUE(q.empty());
  auto letters = dlq.peek_all();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].message_id, id);
  EXPECT_EQ(q.stats().moved_to_dead_letter_queue, 1u);
  EXPECT_EQ(dlq.redrive(), 1u);
  calls.clear();
  drive(sluice::from(q) | sluice::invoke([&](const qbatch& b) {
          record(b);
          EXPECT_EQ(b[0].message_id, id);
          EXPECT_EQ(b[0].approximate_receive_count, 1u);
        }));
  EXPECT_EQ(trace(), "@90 [m1]");
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(dlq.empty());
}

TEST_P(SqliteQueue, Q03_partial_batch_response) {
  squeue q(file, named("q"), clock, no_poll);
  for (int i = 1; i <= 5; ++i) q.send("m" + std::to_string(i));
  int n = 0;
  drive(sluice::from(q) | sluice::report_batch_item_failures | sluice::invoke([&](const qbatch& b) {
          record(b);
          sluice::queue_item_failures f;
          if (++n == 1) {
            f.add(b[1].message_id);
            f.add(b[3].message_id);
          }
          return f;
        }));
  EXPECT_EQ(trace(), "@0 [m1 m2 m3 m4 m5] @30 [m2 m4]");
  EXPECT_TRUE(q.empty());
}

TEST_P(SqliteQueue, Q05_fifo_groups_and_reports) {
  squeue q(file, named("q.fifo", true), clock, no_poll);
  for (const char* m : {"A1", "A2", "B1", "A3", "B2"})
    q.send(m, send_options::in_group(std::string(1, m[0])));
  int n = 0;
  drive(sluice::from(q) | sluice::report_batch_item_failures | sluice::invoke([&](const qbatch& b) {
          record(b);
          sluice::queue_item_failures f;
          if (++n == 1) f.add(b[1].message_id);
          return f;
        }));
  EXPECT_EQ(trace(), "@0 [A1 A2 B1 A3 B2] @30 [A2 A3]");
  EXPECT_TRUE(q.empty());
}

TEST_P(SqliteQueue, Q07_delay_and_Q08_retention) {
  sluice::queue_options o = named("q");
  o.message_retention_period = 60s;
  squeue q(file, o, clock, no_poll);
  q.send("m1", send_options::delayed(10s));
  q.send("m2");
  drive(sluice::from(q) | sluice::invoke([&](const qbatch& b) {
          record(b);
          if (b[0].body() == "m1") throw std::runtime_error("keeps failing");
        }));
  // m1 is received at 10 and 40; at 60 it expires.
  EXPECT_EQ(trace(), "@0 [m2] @10 [m1] @40 [m1]");
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.stats().expired, 1u);
}

TEST_P(SqliteQueue, Q09_deduplication_and_attributes) {
  squeue q(file, named("q.fifo", true), clock, no_poll);
  send_options o = send_options::in_group("g");
  o.attributes["k"] = "v:1";
  const std::string a = q.send("x", o);
  clock.advance(100s);
  EXPECT_EQ(q.send("x", send_options::in_group("g")), a);
  clock.advance(200s);
  EXPECT_NE(q.send("x", send_options::in_group("g")), a);
  EXPECT_EQ(q.size(), 2u);
  std::vector<queue_message> got;
  q.receive(got, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].attributes.at("k"), "v:1");
}

INSTANTIATE_TEST_SUITE_P(Modes, SqliteQueue, ::testing::Values(mode::run, mode::start),
                         [](const auto& info) {
                           return info.param == mode::run ? std::string("run")
                                                          : std::string("start");
                         });

TEST(SqliteQueueFile, InFlightMessageReappearsInAnotherObjectAfterItsTimeout) {
  sluice_test::temp_dir dir;
  const auto file = dir.path() / "q.db";
  sluice::manual_clock clock;
  sluice::queue_options o;
  o.name = "jobs";
  std::string id;
  {
    squeue q(file, o, clock);
    id = q.send("job");
    std::vector<queue_message> got;
    ASSERT_EQ(q.receive(got, 1), 1u);  // received, never deleted: the "process" dies here
  }
  squeue again(file, o, clock);
  std::vector<queue_message> got;
  EXPECT_EQ(again.receive(got, 1), 0u) << "still in flight";
  clock.advance(30s);
  ASSERT_EQ(again.receive(got, 1), 1u);
  EXPECT_EQ(got[0].message_id, id);
  EXPECT_EQ(got[0].approximate_receive_count, 2u);
  EXPECT_TRUE(again.delete_message(got[0].receipt));
  EXPECT_TRUE(again.empty());
}

TEST(SqliteQueueFile, RefusesADeadLetterQueueInAnotherFileAndAChangedKind) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  sluice::queue_options a;
  a.name = "a";
  sluice::queue_options b;
  b.name = "b";
  squeue qa(dir.path() / "1.db", a, clock);
  squeue qb(dir.path() / "2.db", b, clock);
  EXPECT_THROW(qa.set_redrive_policy(qb, 3), sluice::configuration_error);
  a.fifo = true;
  EXPECT_THROW(squeue(dir.path() / "1.db", a, clock), sluice::configuration_error);
}

// Producers on their own queue objects (their own connections to the file) while a started FIFO
// mapping with 3 pollers drains it: every message once, each group in send order.
TEST(SqliteQueueFile, ProducersAndAStartedFifoMappingShareTheFile) {
  sluice_test::temp_dir dir;
  const auto file = dir.path() / "q.db";
  sluice::queue_options o;
  o.name = "jobs.fifo";
  o.fifo = true;
  o.content_based_deduplication = true;
  sluice::sqlite::queue consumer_side(file, o);
  std::mutex mutex;
  std::map<std::string, std::vector<int>> order;
  auto running = sluice::start(
      sluice::from(consumer_side) | sluice::batching(sluice::batch_size(5)) |
      sluice::maximum_concurrency(3) | sluice::invoke([&](const qbatch& b) {
        std::lock_guard lock(mutex);
        for (const auto& m : b)
          order[m.message_group_id].push_back(std::stoi(m.body().substr(m.body().find(' '))));
      }));
  constexpr int producers = 3, per_group = 60;
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      sluice::sqlite::queue mine(file, o);
      for (int i = 0; i < per_group; ++i)
        for (int g = p * 2; g < p * 2 + 2; ++g)
          mine.send("g" + std::to_string(g) + " " + std::to_string(i),
                    send_options::in_group("g" + std::to_string(g)));
    });
  for (auto& t : threads) t.join();
  ASSERT_TRUE(running.wait_until_caught_up(120s));
  running.stop();
  ASSERT_EQ(order.size(), static_cast<std::size_t>(producers * 2));
  for (auto& [g, seq] : order) {
    ASSERT_EQ(seq.size(), static_cast<std::size_t>(per_group)) << g;
    for (int i = 0; i < per_group; ++i) ASSERT_EQ(seq[static_cast<std::size_t>(i)], i) << g;
  }
}

}  // namespace
