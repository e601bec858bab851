// The files of sluice::sqlite: created 0600 (or open_options::file_mode) with their -wal and -shm,
// non-regular paths refused at once, the OS's real reason reported, SQL quoted readably in
// messages, empty names refused, and WAL mode only when asked for (open_options::use_wal).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "sluice/sqlite/checkpoint_store.hpp"
#include "sluice/sqlite/database.hpp"
#include "sluice/sqlite/destination.hpp"
#include "sluice/sqlite/stream.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using sluice::sqlite::database_error;
using text_stream = sluice::sqlite::stream<std::string>;
using text_record = sluice::record<std::string>;

mode_t mode_of(const fs::path& p) {
  struct stat info {};
  if (::stat(p.c_str(), &info) != 0) return 07777;
  return info.st_mode & 07777;
}

fs::path with_suffix(const fs::path& p, const char* suffix) {
  return fs::path(p.string() + suffix);
}

class umask_guard {
 public:
  explicit umask_guard(mode_t m) : saved_(::umask(m)) {}
  ~umask_guard() { ::umask(saved_); }

 private:
  mode_t saved_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const database_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("(not a database_error) ") + e.what();
  }
  return "(no error)";
}

// ---- File modes ------------------------------------------------------------------------------

TEST(SqliteFiles, EveryFileAndItsWalAndShmAreCreatedOwnerOnlyUnderTheUsualUmask) {
  sluice_test::temp_dir dir;
  umask_guard umask(022);  // the usual umask, which would make them 0644
  text_stream stream(dir / "stream.db");
  sluice::sqlite::checkpoint_store checkpoints(dir / "checkpoints.db");
  sluice::sqlite::destination<text_record> dead(dir / "dead.db");
  stream.put("k", "payload");
  checkpoints.save("m", 0, 1);
  dead.deliver(sluice::on_failure_record<text_record>{});
  for (const char* name : {"stream.db", "checkpoints.db", "dead.db"}) {
    const fs::path file = dir / name;
    for (const char* suffix : {"", "-wal", "-shm"}) {
      ASSERT_TRUE(fs::exists(with_suffix(file, suffix))) << name << suffix;
      EXPECT_EQ(mode_of(with_suffix(file, suffix)), 0600u) << name << suffix;
    }
  }
}

TEST(SqliteFiles, FileModeOptionSetsTheModeOfTheFileAndItsWalAndShm) {
  sluice_test::temp_dir dir;
  umask_guard umask(077);  // the umask narrows nothing either: the mode is exact
  sluice::sqlite::stream_options o;
  o.database.file_mode = fs::perms(0640);
  text_stream stream(dir / "shared.db", o);
  stream.put("k", "payload");
  for (const char* suffix : {"", "-wal", "-shm"}) {
    EXPECT_EQ(mode_of(with_suffix(dir / "shared.db", suffix)), 0640u) << suffix;
  }
}

TEST(SqliteFiles, AnExistingFileKeepsItsMode) {
  sluice_test::temp_dir dir;
  { sluice::sqlite::checkpoint_store create(dir / "c.db"); }
  fs::permissions(dir / "c.db", fs::perms(0640));
  sluice::sqlite::checkpoint_store reopened(dir / "c.db");
  reopened.save("m", 0, 1);
  EXPECT_EQ(mode_of(dir / "c.db"), 0640u);
}

TEST(SqliteFiles, AFileModeTheOwnerCannotReadAndWriteIsRejected) {
  sluice_test::temp_dir dir;
  sluice::sqlite::open_options o;
  o.file_mode = fs::perms(0444);
  try {
    sluice::sqlite::checkpoint_store s(dir / "c.db", o);
    FAIL() << "accepted 0444";
  } catch (const sluice::configuration_error& e) {
    EXPECT_NE(std::string(e.what()).find("open_options::file_mode = 0444"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "c.db"));
}

// ---- Paths -----------------------------------------------------------------------------------

TEST(SqliteFiles, AFifoIsRefusedAtOnceNamingThePath) {
  // SQLite would open a FIFO and then block forever reading its header.
  sluice_test::temp_dir dir;
  const fs::path fifo = dir / "pipe.db";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::vector<std::function<void()>> opens = {
      [&] { text_stream s(fifo); },
      [&] { sluice::sqlite::checkpoint_store s(fifo); },
      [&] { sluice::sqlite::destination<text_record> d(fifo); },
  };
  for (const auto& open : opens) {
    const std::string what = error_of(open);
    EXPECT_NE(what.find("'" + fifo.string() + "'"), std::string::npos) << what;
    EXPECT_NE(what.find("it is a FIFO, not a regular file"), std::string::npos) << what;
    EXPECT_NE(what.find("SQLITE_CANTOPEN"), std::string::npos) << what;
  }
}

TEST(SqliteFiles, AFileInAReadOnlyDirectoryReportsPermissionDenied) {
  sluice_test::temp_dir dir;
  const fs::path locked = dir / "read-only";
  fs::create_directory(locked);
  fs::permissions(locked, fs::perms(0500));
  if (::geteuid() == 0) GTEST_SKIP() << "running as root: a read-only directory is writable";
  const fs::path file = locked / "stream.db";
  const std::string what = error_of([&] { text_stream s(file); });
  EXPECT_NE(what.find("'" + file.string() + "'"), std::string::npos) << what;
  EXPECT_NE(what.find("Permission denied"), std::string::npos) << what;
  EXPECT_EQ(what.find("No such file or directory"), std::string::npos) << what;
}

// ---- Messages and names ----------------------------------------------------------------------

TEST(SqliteFiles, QuotedSqlIsOneLineAndCutAtAWordBoundary) {
  using sluice::sqlite::detail::operation_of;
  EXPECT_EQ(operation_of("\n  SELECT a,\n\tb   FROM t\n"), "SELECT a, b FROM t");
  EXPECT_EQ(operation_of("SELECT partition_key, seq, arrival_ns, payload, reported_failed FROM "
                         "sluice_failure_records WHERE failure_id = ?1"),
            "SELECT partition_key, seq, arrival_ns, payload...");
  EXPECT_EQ(operation_of(std::string(70, 'x')), std::string(60, 'x') + "...");
}

TEST(SqliteFiles, AFailedStatementsMessageQuotesItsSqlReadably) {
  sluice_test::temp_dir dir;
  sluice::sqlite::database db(dir / "d.db");
  db.exec("CREATE TABLE t(x)");
  const std::string what =
      error_of([&] { db.exec("\nCREATE TABLE t(mapping TEXT NOT NULL, shard INTEGER NOT NULL)"); });
  EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  EXPECT_NE(what.find("sluice::sqlite: CREATE TABLE t(mapping TEXT NOT NULL, shard INTEGER NOT..."),
            std::string::npos)
      << what;
  EXPECT_NE(what.find("already exists"), std::string::npos) << what;
}

TEST(SqliteFiles, EmptyStreamAndDestinationNamesAreRejectedNamingTheParameter) {
  sluice_test::temp_dir dir;
  sluice::sqlite::stream_options o;
  o.name = "";
  try {
    text_stream s(dir / "s.db", o);
    FAIL() << "accepted an empty stream name";
  } catch (const sluice::configuration_error& e) {
    EXPECT_NE(std::string(e.what()).find("stream_options::name"), std::string::npos) << e.what();
  }
  try {
    sluice::sqlite::destination<text_record> d(dir / "d.db", "");
    FAIL() << "accepted an empty destination name";
  } catch (const sluice::configuration_error& e) {
    EXPECT_NE(std::string(e.what()).find("destination name"), std::string::npos) << e.what();
  }
}

// ---- Journal mode ----------------------------------------------------------------------------

std::string journal_mode(const fs::path& file) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, nullptr);
  std::string mode = sqlite3_step(s) == SQLITE_ROW
                         ? reinterpret_cast<const char*>(sqlite3_column_text(s, 0))
                         : "?";
  sqlite3_finalize(s);
  sqlite3_close(db);
  return mode;
}

TEST(SqliteFiles, UseWalFalseLeavesTheApplicationsJournalModeAlone) {
  sluice_test::temp_dir dir;
  {
    sluice::sqlite::database app(dir / "app.db", [] {
      sluice::sqlite::open_options o;
      o.use_wal = false;
      return o;
    }());
    app.exec("CREATE TABLE invoices(total)");
  }
  ASSERT_EQ(journal_mode(dir / "app.db"), "delete");
  sluice::sqlite::stream_options o;
  o.database.use_wal = false;
  {
    text_stream s(dir / "app.db", o);
    s.put("k", "v");
  }
  EXPECT_EQ(journal_mode(dir / "app.db"), "delete");
  { text_stream s(dir / "app.db"); }  // the default switches the file to WAL, for good
  EXPECT_EQ(journal_mode(dir / "app.db"), "wal");
}

}  // namespace
