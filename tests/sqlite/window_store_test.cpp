// Tumbling-window state in sluice::sqlite::checkpoint_store (S-7): the window checkpoint store
// contract (tests/support/window_store_suite.hpp: saved with the checkpoint in one transaction,
// survives reopening the file, erased with the explicit rewind, a mapping resumes its window) on
// SQLite and on memory_checkpoint_store, and the schema migration from version 1 (checkpoints
// only) to 2 (+ sluice_windows).
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

#include "sluice/sluice.hpp"
#include "sluice/sqlite/checkpoint_store.hpp"
#include "sluice/sqlite/database.hpp"
#include "support/temp_dir.hpp"
#include "support/window_store_suite.hpp"

namespace {

using namespace std::chrono_literals;
using store = sluice::sqlite::checkpoint_store;
static_assert(sluice::window_checkpoint_store<store>);
static_assert(sluice::window_checkpoint_store<sluice::memory_checkpoint_store>);

sluice::window_checkpoint window(std::string state, bool early = false) {
  const sluice::time_point start = sluice::time_point{} + 1000h;
  return {start, start + 60s, std::move(state), early};
}

struct sqlite_env {
  sluice_test::temp_dir dir;
  std::optional<sluice::sqlite::checkpoint_store> s{std::in_place, dir / "c.db"};
  sluice::sqlite::checkpoint_store& store() { return *s; }
  /// A new connection on the same file (the old one is closed first).
  sluice::sqlite::checkpoint_store& reopened() {
    s.reset();
    s.emplace(dir / "c.db");
    return *s;
  }
  std::size_t erase(std::string_view mapping) { return s->erase(mapping); }
};
struct memory_env {
  sluice::memory_checkpoint_store s;
  sluice::memory_checkpoint_store& store() { return s; }
  sluice::memory_checkpoint_store& reopened() { return s; }  // it lives as long as the process
};
using sqlite_stores = ::testing::Types<sqlite_env>;
using memory_stores = ::testing::Types<memory_env>;

}  // namespace

namespace sluice_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Sqlite, WindowCheckpointStore, sqlite_stores);
INSTANTIATE_TYPED_TEST_SUITE_P(Sqlite, WindowCheckpointStoreRewind, sqlite_stores);
INSTANTIATE_TYPED_TEST_SUITE_P(Memory, WindowCheckpointStore, memory_stores);
}  // namespace sluice_test

namespace {

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

}  // namespace
