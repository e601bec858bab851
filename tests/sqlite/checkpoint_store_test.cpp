// Tests of sluice::sqlite::checkpoint_store: durable checkpoints that a restarted mapping resumes
// from (S-3.4), the monotonic rule, atomic save_all, and the explicit rewind.
#include "sluice/sqlite/checkpoint_store.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/checkpoint.hpp"
#include "sluice/clock.hpp"
#include "sluice/sqlite/stream.hpp"
#include "support/temp_dir.hpp"

namespace {

using sluice::sequence_number_t;
using sluice::shard_id_t;
using store = sluice::sqlite::checkpoint_store;

static_assert(sluice::checkpoint_store<store>);

TEST(SqliteCheckpointStore, LoadsNothingForAnUnknownMappingOrShard) {
  sluice_test::temp_dir dir;
  store s(dir / "c.db");
  EXPECT_EQ(s.load("m", 0), std::nullopt);
  s.save("m", 0, 5);
  EXPECT_EQ(s.load("m", 1), std::nullopt);
  EXPECT_EQ(s.load("other", 0), std::nullopt);
}

TEST(SqliteCheckpointStore, SavedCheckpointsSurviveReopening) {
  sluice_test::temp_dir dir;
  {
    store s(dir / "c.db");
    s.save("m", 0, 10);
    s.save("m", 3, 7);
    s.save("n", 0, 1);
    EXPECT_EQ(s.saves(), 3u);
  }
  store s(dir / "c.db");
  EXPECT_EQ(s.load("m", 0), 10u);
  EXPECT_EQ(s.load("m", 3), 7u);
  EXPECT_EQ(s.load("n", 0), 1u);
  EXPECT_EQ(s.load_all("m"),
            (std::vector<std::pair<shard_id_t, sequence_number_t>>{{0, 10}, {3, 7}}));
}

// Monotonic rule: a lower save is ignored (a stale flush after an at-least-once restart must not
// rewind a newer instance's progress).
TEST(SqliteCheckpointStore, NeverMovesACheckpointBackwards) {
  sluice_test::temp_dir dir;
  store s(dir / "c.db");
  s.save("m", 0, 100);
  s.save("m", 0, 40);
  EXPECT_EQ(s.load("m", 0), 100u);
  s.save("m", 0, 101);
  EXPECT_EQ(s.load("m", 0), 101u);
  s.save_all("m", std::vector<std::pair<shard_id_t, sequence_number_t>>{{0, 3}, {1, 9}});
  EXPECT_EQ(s.load("m", 0), 101u);
  EXPECT_EQ(s.load("m", 1), 9u);
}

TEST(SqliteCheckpointStore, EraseIsTheExplicitRewind) {
  sluice_test::temp_dir dir;
  store s(dir / "c.db");
  s.save("m", 0, 100);
  s.save("m", 1, 50);
  s.save("keep", 0, 1);
  EXPECT_EQ(s.erase("m"), 2u);
  EXPECT_EQ(s.load("m", 0), std::nullopt);
  s.save("m", 0, 3);
  EXPECT_EQ(s.load("m", 0), 3u);
  EXPECT_EQ(s.load("keep", 0), 1u);
}

TEST(SqliteCheckpointStore, SaveAllStoresEveryShardOrNone) {
  sluice_test::temp_dir dir;
  store s(dir / "c.db");
  const std::vector<std::pair<shard_id_t, sequence_number_t>> good{{0, 5}, {1, 6}, {2, 7}};
  s.save_all("m", good);
  EXPECT_EQ(s.load_all("m"), good);
  const std::vector<std::pair<shard_id_t, sequence_number_t>> bad{
      {0, 50}, {1, std::numeric_limits<sequence_number_t>::max()}};
  EXPECT_THROW(s.save_all("m", bad), std::out_of_range);
  EXPECT_EQ(s.load("m", 0), 5u);
}

TEST(SqliteCheckpointStore, SaveAllIsRolledBackWhenTheFileIsLocked) {
  sluice_test::temp_dir dir;
  sluice::sqlite::open_options quick;
  quick.busy_timeout = std::chrono::milliseconds(20);
  store s(dir / "c.db", quick);
  s.save("m", 0, 1);
  sluice::sqlite::database other(dir / "c.db");
  {
    auto hold = other.begin();  // holds the write lock
    const std::vector<std::pair<shard_id_t, sequence_number_t>> cps{{0, 2}, {1, 2}};
    EXPECT_THROW(s.save_all("m", cps), sluice::sqlite::database_error);
    EXPECT_EQ(s.load("m", 0), 1u);  // reads still work while another connection writes
  }
  s.save("m", 0, 2);
  EXPECT_EQ(s.load("m", 0), 2u);
}

TEST(SqliteCheckpointStore, ConcurrentSaversLeaveTheHighestValue) {
  sluice_test::temp_dir dir;
  sluice::sqlite::open_options fast;
  fast.synchronous = sluice::sqlite::synchronous_mode::normal;
  store s(dir / "c.db", fast);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (sequence_number_t i = 1; i <= 100; ++i) s.save("m", 0, i * 4 + static_cast<unsigned>(t));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(s.load("m", 0), 403u);
}

// S-3.4 / C-15 in miniature: a "mapping" reads a batch, checkpoints it, is restarted with new
// objects on the same files, and resumes at checkpoint + 1.
TEST(SqliteCheckpointStore, RestartResumesReadingAtCheckpointPlusOne) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  using stream = sluice::sqlite::stream<std::string, std::string, sluice::manual_clock>;
  sluice::sqlite::stream_options o;
  o.name = "events";
  auto start = [&](stream& events, store& checkpoints) {
    const auto stored = checkpoints.load("mapping", 0);
    return stored ? *stored : events.resolve(0, sluice::starting_position::trim_horizon);
  };
  {
    stream events(dir / "app.db", o, clock);
    store checkpoints(dir / "app.db");
    for (int i = 1; i <= 250; ++i) events.put("k", std::to_string(i));
    sequence_number_t position = start(events, checkpoints);
    for (int batch = 0; batch < 2; ++batch) {
      events.read(0, position, 100, [&](const stream::record_type& r) {
        position = r.sequence;
        return true;
      });
      checkpoints.save("mapping", 0, position);
    }
  }
  stream events(dir / "app.db", o, clock);
  store checkpoints(dir / "app.db");
  const sequence_number_t position = start(events, checkpoints);
  EXPECT_EQ(position, 200u);
  std::vector<sequence_number_t> next;
  events.read(0, position, 100, [&](const stream::record_type& r) {
    next.push_back(r.sequence);
    return true;
  });
  ASSERT_EQ(next.size(), 50u);
  EXPECT_EQ(next.front(), 201u);
  EXPECT_EQ(next.back(), 250u);
}

}  // namespace
