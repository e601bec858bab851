// Tests of sluice::sqlite's errors: each failure an operator meets (missing, unreadable, locked,
// corrupt, wrong schema version, full) throws database_error naming the file and the cause, and
// what was stored before stays readable where the file itself is sound.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "sluice/sqlite/checkpoint_store.hpp"
#include "sluice/sqlite/database.hpp"
#include "sluice/sqlite/destination.hpp"
#include "sluice/sqlite/stream.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::sqlite::database_error;
using text_stream = sluice::sqlite::stream<std::string>;

// Runs f, which must throw database_error; checks the message names the file and every cause
// fragment, and returns the error for further checks.
database_error expect_error(const std::function<void()>& f, const std::filesystem::path& file,
                            const std::vector<std::string>& fragments) {
  try {
    f();
  } catch (const database_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(file.string()), std::string::npos) << "file not named: " << what;
    for (const std::string& fragment : fragments) {
      EXPECT_NE(what.find(fragment), std::string::npos) << "'" << fragment << "' missing: " << what;
    }
    return e;
  }
  ADD_FAILURE() << "expected database_error for " << file;
  return {"", 0, ""};
}

sluice::sqlite::open_options no_create() {
  sluice::sqlite::open_options o;
  o.create = false;
  return o;
}

std::size_t count_records(text_stream& s) {
  std::size_t n = 0;
  for (sluice::shard_id_t shard = 0; shard < s.shard_count(); ++shard) {
    s.read(shard, 0, 1'000'000, [&](const auto&) { return ++n > 0; });
  }
  return n;
}

TEST(SqliteErrors, MissingFileWithoutCreateNamesTheFileAndNoSuchFile) {
  sluice_test::temp_dir dir;
  const auto file = dir / "missing.db";
  const auto e = expect_error([&] { sluice::sqlite::database db(file, no_create()); }, file,
                              {"SQLITE_CANTOPEN", "No such file or directory"});
  EXPECT_EQ(e.primary_code(), SQLITE_CANTOPEN);
  EXPECT_EQ(e.file(), file.string());
  sluice::sqlite::stream_options o;
  o.database = no_create();
  expect_error([&] { text_stream s(file, o); }, file, {"SQLITE_CANTOPEN"});
  EXPECT_FALSE(std::filesystem::exists(file));
}

TEST(SqliteErrors, MissingFileOpenedReadOnlyNamesTheFileAndNoSuchFile) {
  sluice_test::temp_dir dir;
  const auto file = dir / "missing.db";
  sluice::sqlite::open_options o;
  o.read_only = true;
  expect_error([&] { sluice::sqlite::checkpoint_store s(file, o); }, file,
               {"SQLITE_CANTOPEN", "No such file or directory"});
}

TEST(SqliteErrors, UnreadableFileNamesTheFileAndPermissionDenied) {
  sluice_test::temp_dir dir;
  const auto file = dir / "locked-away.db";
  { sluice::sqlite::checkpoint_store create(file); }
  ASSERT_EQ(chmod(file.c_str(), 0), 0);
  if (access(file.c_str(), R_OK) == 0) {
    GTEST_SKIP() << "running as root (or with CAP_DAC_OVERRIDE): chmod 000 does not stop reads "
                    "here; DirectoryInPlaceOfTheFile still covers an unopenable path";
  }
  expect_error([&] { sluice::sqlite::checkpoint_store s(file); }, file,
               {"SQLITE_CANTOPEN", "Permission denied"});
}

TEST(SqliteErrors, DirectoryInPlaceOfTheFileNamesTheFileAndTheCause) {
  sluice_test::temp_dir dir;
  const auto file = dir / "actually-a-directory";
  std::filesystem::create_directory(file);
  expect_error([&] { text_stream s(file); }, file, {"SQLITE_CANTOPEN", "Is a directory"});
}

TEST(SqliteErrors, GarbageFileIsReportedAsNotADatabase) {
  sluice_test::temp_dir dir;
  const auto file = dir / "garbage.db";
  {
    std::ofstream out(file, std::ios::binary);
    for (int i = 0; i < 8192; ++i) out.put(static_cast<char>('a' + i % 23));
  }
  const auto e = expect_error([&] { text_stream s(file); }, file,
                              {"SQLITE_NOTADB", "not a database", "corrupt"});
  EXPECT_EQ(e.primary_code(), SQLITE_NOTADB);
  sluice::sqlite::open_options o;
  o.read_only = true;
  expect_error([&] { sluice::sqlite::database db(file, o); }, file, {"SQLITE_NOTADB"});
}

TEST(SqliteErrors, DamagedPagesAreReportedCorrupt) {
  sluice_test::temp_dir dir;
  const auto file = dir / "damaged.db";
  {
    text_stream s(file);
    std::vector<std::pair<std::string, std::string>> entries;
    entries.reserve(2000);
    for (int i = 0; i < 2000; ++i) {
      entries.emplace_back("k" + std::to_string(i % 10), std::string(200, 'x'));
    }
    s.put_many(entries);
  }  // the last connection to close checkpoints the WAL into the file
  const auto size = std::filesystem::file_size(file);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);  // keep page 1 (header and schema), scribble over every other page
    const std::string garbage(size - 4096, '\xab');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  const auto e = expect_error(
      [&] {
        text_stream s(file);
        count_records(s);
      },
      file, {"SQLITE_CORRUPT", "malformed", "corrupt"});
  EXPECT_EQ(e.primary_code(), SQLITE_CORRUPT);
}

TEST(SqliteErrors, LockedFileFailsWithBusyAfterTheBusyTimeoutAndDataStaysReadable) {
  sluice_test::temp_dir dir;
  const auto file = dir / "busy.db";
  sluice::sqlite::stream_options o;
  o.database.busy_timeout = 50ms;
  text_stream s(file, o);
  s.put("k", "before");
  sluice::sqlite::database other(file);
  {
    auto hold = other.begin();  // BEGIN IMMEDIATE: another writer holds the lock
    const auto started = std::chrono::steady_clock::now();
    const auto e = expect_error([&] { s.put("k", "blocked"); }, file, {"SQLITE_BUSY", "locked"});
    EXPECT_EQ(e.primary_code(), SQLITE_BUSY);
    EXPECT_GE(std::chrono::steady_clock::now() - started, 40ms);  // it did wait
    EXPECT_EQ(count_records(s), 1u);  // WAL: readers are not blocked by the writer
  }
  EXPECT_EQ(s.put("k", "after").sequence, 2u);  // and the failed put left no gap
  EXPECT_EQ(count_records(s), 2u);
}

TEST(SqliteErrors, WrongSchemaVersionNamesTheFileAndBothVersions) {
  sluice_test::temp_dir dir;
  const auto file = dir / "future.db";
  {
    text_stream s(file);
    s.put("k", "kept");
    sluice::sqlite::checkpoint_store c(file);
    sluice::sqlite::destination<text_stream::record_type> d(file);
  }
  sluice::sqlite::database db(file);
  db.exec("UPDATE sluice_meta SET version = 99");
  for (const auto& open : std::vector<std::function<void()>>{
           [&] { text_stream s(file); }, [&] { sluice::sqlite::checkpoint_store c(file); },
           [&] { sluice::sqlite::destination<text_stream::record_type> d(file); }}) {
    const auto e = expect_error(open, file, {"schema version 99", "expects version"});
    EXPECT_EQ(e.code(), 0);
  }
  db.exec("UPDATE sluice_meta SET version = 1 WHERE component <> 'destination'");
  db.exec("UPDATE sluice_meta SET version = " +
          std::to_string(sluice::sqlite::destination_schema_version) +
          " WHERE component = 'destination'");
  text_stream s(file);
  EXPECT_EQ(count_records(s), 1u);  // refusing to open changed nothing
}

TEST(SqliteErrors, ReadOnlyOpenOfAFileWithoutTheTablesSaysSo) {
  sluice_test::temp_dir dir;
  const auto file = dir / "empty.db";
  { sluice::sqlite::database create(file); }
  sluice::sqlite::open_options o;
  o.read_only = true;
  expect_error([&] { sluice::sqlite::checkpoint_store c(file, o); }, file,
               {"has no tables of sluice's checkpoints", "expects version 2"});
}

TEST(SqliteErrors, FullDatabaseFailsWithFullAndEarlierRecordsStayReadable) {
  sluice_test::temp_dir dir;
  const auto file = dir / "full.db";
  sluice::sqlite::stream_options o;
  o.database.max_page_count = 40;  // 160 KiB with 4 KiB pages
  text_stream s(file, o);
  const std::string payload(1000, 'p');
  std::size_t stored = 0;
  const auto e = expect_error(
      [&] {
        for (;;) {
          s.put("k", payload);
          ++stored;
        }
      },
      file, {"SQLITE_FULL", "full"});
  EXPECT_EQ(e.primary_code(), SQLITE_FULL);
  ASSERT_GT(stored, 10u);
  EXPECT_EQ(count_records(s), stored);
  EXPECT_EQ(s.last_sequence(0), stored);      // the failed put was rolled back whole
  s.put("k", "");                             // smaller records may still fit...
  EXPECT_EQ(s.last_sequence(0), stored + 1);  // ...and continue the sequence without a gap
}

TEST(SqliteErrors, FullDatabaseFailsOutboxPutAndKeepsTheCallersTransactionUsable) {
  sluice_test::temp_dir dir;
  const auto file = dir / "full-outbox.db";
  text_stream s(file);
  sluice::sqlite::open_options capped;
  capped.max_page_count = 30;
  sluice::sqlite::database app(file, capped);
  app.exec("CREATE TABLE orders(id INTEGER PRIMARY KEY)");
  const std::string payload(1000, 'p');
  int committed = 0;
  expect_error(
      [&] {
        for (;; ++committed) {
          app.in_transaction([&](sluice::sqlite::transaction& tx) {
            app.exec("INSERT INTO orders DEFAULT VALUES");
            s.put(tx, "k", payload);
          });
        }
      },
      file, {"SQLITE_FULL"});
  EXPECT_EQ(count_records(s), static_cast<std::size_t>(committed));
  auto orders = app.prepare("SELECT count(*) FROM orders");
  orders.step();
  EXPECT_EQ(orders.column_int64(0), committed);  // the business row went with its event
}

}  // namespace
