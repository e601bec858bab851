// Tumbling-window state in sluice::sqlite::checkpoint_store (S-7): saved with the checkpoint in
// one transaction, erased with the explicit rewind, and the schema migration from version 1
// (checkpoints only) to 2 (+ sluice_windows).
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "sluice/sluice.hpp"
#include "sluice/sqlite/checkpoint_store.hpp"
#include "sluice/sqlite/database.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using store = sluice::sqlite::checkpoint_store;
static_assert(sluice::window_checkpoint_store<store>);
static_assert(sluice::window_checkpoint_store<sluice::memory_checkpoint_store>);

sluice::window_checkpoint window(std::string state, bool early = false) {
  const sluice::time_point start = sluice::time_point{} + 1000h;
  return {start, start + 60s, std::move(state), early};
}

TEST(SqliteWindowStore, WindowIsSavedWithTheCheckpointAndSurvivesReopening) {
  sluice_test::temp_dir dir;
  const std::string bytes("a\0b\xff", 4);  // state is bytes, not text
  {
    store s(dir / "c.db");
    EXPECT_FALSE(s.load_window("m", 0));
    const auto w = window(bytes, true);
    s.save("m", 0, 7, &w);
  }
  store s(dir / "c.db");
  EXPECT_EQ(s.load("m", 0), 7u);
  ASSERT_TRUE(s.load_window("m", 0));
  EXPECT_EQ(*s.load_window("m", 0), window(bytes, true));
  EXPECT_FALSE(s.load_window("m", 1));
  s.save("m", 0, 9, nullptr);  // the window's final invocation succeeded: no open window
  EXPECT_EQ(s.load("m", 0), 9u);
  EXPECT_FALSE(s.load_window("m", 0));
}

TEST(SqliteWindowStore, EraseDropsTheWindowsToo) {
  sluice_test::temp_dir dir;
  store s(dir / "c.db");
  const auto w = window("5");
  s.save("m", 0, 3, &w);
  s.save("other", 0, 3, &w);
  EXPECT_EQ(s.erase("m"), 1u);
  EXPECT_FALSE(s.load_window("m", 0));
  EXPECT_TRUE(s.load_window("other", 0));
}

TEST(SqliteWindowStore, MigratesAVersion1FileAndReadsOneReadOnly) {
  sluice_test::temp_dir dir;
  {  // a file as sluice wrote it before windows: schema 1, one checkpoint
    sluice::sqlite::database db(dir / "old.db");
    db.exec(
        "CREATE TABLE sluice_meta(component TEXT PRIMARY KEY, version INTEGER NOT NULL) "
        "WITHOUT ROWID;"
        "INSERT INTO sluice_meta VALUES('checkpoints', 1);"
        "CREATE TABLE sluice_checkpoints(mapping TEXT NOT NULL, shard INTEGER NOT NULL, "
        "seq INTEGER NOT NULL, PRIMARY KEY(mapping, shard)) WITHOUT ROWID;"
        "INSERT INTO sluice_checkpoints VALUES('m', 0, 42);");
  }
  {
    sluice::sqlite::open_options read_only;
    read_only.read_only = true;
    store s(dir / "old.db", read_only);  // read as it is: no migration
    EXPECT_EQ(s.load("m", 0), 42u);
    EXPECT_FALSE(s.load_window("m", 0));
  }
  {
    sluice::sqlite::database db(dir / "old.db");
    EXPECT_EQ(db.schema_version("checkpoints"), 1);
  }
  {
    store s(dir / "old.db");  // read-write: migrated to 2
    EXPECT_EQ(s.load("m", 0), 42u);
    const auto w = window("x");
    s.save("m", 0, 43, &w);
  }
  sluice::sqlite::database db(dir / "old.db");
  EXPECT_EQ(db.schema_version("checkpoints"), sluice::sqlite::checkpoint_schema_version);
  EXPECT_EQ(sluice::sqlite::checkpoint_schema_version, 2);
  store s(dir / "old.db");
  EXPECT_EQ(s.load("m", 0), 43u);
  EXPECT_EQ(s.load_window("m", 0)->state, "x");
}

// A windowed mapping over the SQLite store, stopped mid-window and started again with new
// objects on the same file, resumes the window's state (W-10 with a durable store).
TEST(SqliteWindowStore, AMappingResumesItsWindowFromTheFile) {
  sluice_test::temp_dir dir;
  using R = sluice::record<int>;
  sluice::manual_clock clock{sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance};
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream{1, clock};
  for (int i = 1; i <= 4; ++i) stream.put("k", i);
  std::string seen;
  auto handler = [&](const sluice::batch<R>& b,
                     const sluice::window_context& w) -> sluice::window_response {
    seen +=
        (w.is_final ? std::string("F") : std::to_string(b.first_sequence())) + "<" + w.state + "> ";
    long sum = w.state.empty() ? 0 : std::stol(w.state);
    for (const R& r : b) sum += r.payload;
    return std::to_string(sum);
  };
  {
    store s(dir / "c.db");
    std::stop_source stop;
    sluice::run(sluice::from(stream) | sluice::batching(sluice::batch_size(2)) |
                    sluice::tumbling_window(60) |
                    sluice::invoke([&](const sluice::batch<R>& b, const sluice::window_context& w) {
                      if (b.first_sequence() == 3) stop.request_stop();
                      if (b.first_sequence() == 3) throw std::runtime_error("stopping");
                      return handler(b, w);
                    }),
                sluice::with_clock(clock), sluice::checkpoints(s),
                sluice::stop_when(stop.get_token()));
  }
  EXPECT_EQ(seen, "1<> ");
  store s(dir / "c.db");
  EXPECT_EQ(s.load("sluice", 0), 2u);
  sluice::run(sluice::from(stream) | sluice::batching(sluice::batch_size(2)) |
                  sluice::tumbling_window(60) | sluice::invoke(handler),
              sluice::with_clock(clock), sluice::checkpoints(s));
  EXPECT_EQ(seen, "1<> 3<3> F<10> ");
  EXPECT_FALSE(s.load_window("sluice", 0));
}

}  // namespace
