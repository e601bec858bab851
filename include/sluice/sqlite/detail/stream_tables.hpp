// sluice/sqlite/detail/stream_tables.hpp: the tables and SQL behind sluice::sqlite::stream, and
// the connections it reads and watches with. Kept apart so stream.hpp reads as the stream's
// behaviour; nothing here is public API.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/sqlite/codec.hpp"
#include "sluice/sqlite/database.hpp"

SLUICE_BEGIN_NAMESPACE
namespace sqlite {

inline constexpr int stream_schema_version = 1;

namespace detail {
// (stream_id, shard, seq) is the primary key of a WITHOUT ROWID table: records are stored in
// read order and a read is one range scan. sluice_shards holds each shard's counter: a put bumps
// it inside its write transaction, so sequences stay gap-free and increasing across threads and
// processes, and a rolled-back put leaves no gap.
inline const std::string stream_schema = R"sql(
CREATE TABLE sluice_streams(stream_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
  shards INTEGER NOT NULL);
CREATE TABLE sluice_shards(stream_id INTEGER NOT NULL, shard INTEGER NOT NULL,
  last_seq INTEGER NOT NULL DEFAULT 0, last_arrival_ns INTEGER,
  PRIMARY KEY(stream_id, shard)) WITHOUT ROWID;
CREATE TABLE sluice_records(stream_id INTEGER NOT NULL, shard INTEGER NOT NULL,
  seq INTEGER NOT NULL, arrival_ns INTEGER NOT NULL, partition_key NOT NULL, payload,
  PRIMARY KEY(stream_id, shard, seq)) WITHOUT ROWID;
)sql";

inline constexpr std::string_view bump_sql =
    "UPDATE sluice_shards SET last_seq = last_seq + 1, "
    "last_arrival_ns = max(coalesce(last_arrival_ns, ?3), ?3) "
    "WHERE stream_id = ?1 AND shard = ?2 RETURNING last_seq, last_arrival_ns";
inline constexpr std::string_view insert_sql =
    "INSERT INTO sluice_records(stream_id, shard, seq, arrival_ns, partition_key, payload) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
inline constexpr std::string_view counter_sql =
    "SELECT last_seq, last_arrival_ns FROM sluice_shards WHERE stream_id = ?1 AND shard = ?2";
inline constexpr std::string_view write_counter_sql =
    "UPDATE sluice_shards SET last_seq = ?3, last_arrival_ns = ?4 "
    "WHERE stream_id = ?1 AND shard = ?2";
inline constexpr std::string_view last_seq_sql =
    "SELECT last_seq FROM sluice_shards WHERE stream_id = ?1 AND shard = ?2";
// Retention is applied to reads as well, so an expired record is never handed out even when no
// put has trimmed it yet (as memory_stream trims on read). ?4 = kept count, ?5 = age horizon.
inline constexpr std::string_view read_sql =
    "SELECT seq, arrival_ns, partition_key, payload FROM sluice_records "
    "WHERE stream_id = ?1 AND shard = ?2 AND arrival_ns >= ?5 AND seq > max(?3, "
    "(SELECT last_seq FROM sluice_shards WHERE stream_id = ?1 AND shard = ?2) - ?4) "
    "ORDER BY seq LIMIT ?6";
inline constexpr std::string_view count_sql =
    "SELECT count(*) FROM sluice_records "
    "WHERE stream_id = ?1 AND shard = ?2 AND arrival_ns >= ?5 AND seq > max(?3, "
    "(SELECT last_seq FROM sluice_shards WHERE stream_id = ?1 AND shard = ?2) - ?4)";
inline constexpr std::string_view trim_count_sql =
    "DELETE FROM sluice_records WHERE stream_id = ?1 AND shard = ?2 AND seq <= "
    "(SELECT last_seq FROM sluice_shards WHERE stream_id = ?1 AND shard = ?2) - ?3";
// Arrival times never decrease in a shard, so expired records are a prefix: find its end by
// scanning from the oldest record, then delete the range.
inline constexpr std::string_view trim_age_sql =
    "DELETE FROM sluice_records WHERE stream_id = ?1 AND shard = ?2 AND seq < coalesce("
    "(SELECT seq FROM sluice_records WHERE stream_id = ?1 AND shard = ?2 AND arrival_ns >= ?3 "
    "ORDER BY seq LIMIT 1), (SELECT last_seq + 1 FROM sluice_shards "
    "WHERE stream_id = ?1 AND shard = ?2))";
inline constexpr std::string_view shard_seqs_sql =
    "SELECT shard, last_seq FROM sluice_shards WHERE stream_id = ?1";

/// Creates the stream's rows on first use and returns its id. Reopening with another shard count
/// is refused: keys would land in other shards and per-key order would break.
inline std::int64_t register_stream(database& db, const std::string& name, std::uint32_t shards) {
  std::int64_t id = 0;
  auto lookup = [&]() -> std::optional<std::uint32_t> {
    statement& s = db.cached("SELECT stream_id, shards FROM sluice_streams WHERE name = ?1");
    auto guard = s.scoped();
    s.bind_text(1, name);
    if (!s.step()) return std::nullopt;
    id = s.column_int64(0);
    return static_cast<std::uint32_t>(s.column_int64(1));
  };
  std::optional<std::uint32_t> stored = lookup();
  if (!stored) {
    transaction tx(db);
    if (!(stored = lookup())) {  // not created by another process meanwhile
      statement& s = db.cached("INSERT INTO sluice_streams(name, shards) VALUES(?1, ?2)");
      auto guard = s.scoped();
      s.bind_text(1, name).bind_int64(2, shards);
      s.step();
      stored = lookup();
      statement& add = db.cached("INSERT INTO sluice_shards(stream_id, shard) VALUES(?1, ?2)");
      for (shard_id_t shard = 0; shard < shards; ++shard) {
        auto add_guard = add.scoped();
        add.bind_int64(1, id).bind_int64(2, shard);
        add.step();
      }
    }
    tx.commit();
  }
  if (*stored != shards) {
    sluice::detail::reject("shards", shards,
                           std::to_string(*stored) + " (stream '" + name + "' in '" + db.file() +
                               "' was created with that many shards)");
  }
  return id;
}

/// A shard's counter row: the last sequence handed out and the last arrival time (NULL before
/// the first record).
struct shard_counter {
  std::int64_t last_seq = 0;
  std::optional<std::int64_t> last_arrival;
};

inline shard_counter read_counter(database& db, std::int64_t stream_id, shard_id_t shard) {
  statement& s = db.cached(counter_sql);
  auto guard = s.scoped();
  s.bind_int64(1, stream_id).bind_int64(2, shard);
  if (!s.step()) throw std::logic_error("sluice::sqlite: shard row missing in " + db.file());
  shard_counter c{s.column_int64(0), std::nullopt};
  if (!s.column_is_null(1)) c.last_arrival = s.column_int64(1);
  return c;
}

inline void write_counter(database& db, std::int64_t stream_id, shard_id_t shard,
                          const shard_counter& c) {
  statement& s = db.cached(write_counter_sql);
  auto guard = s.scoped();
  s.bind_int64(1, stream_id).bind_int64(2, shard).bind_int64(3, c.last_seq);
  if (c.last_arrival) s.bind_int64(4, *c.last_arrival);
  s.step();
}

/// Options for connections that only read (and watch): they never create the file (a deleted
/// file must fail loudly, not come back empty) and never write, so no size cap applies.
inline open_options reader_options(open_options o) {
  o.create = false;
  o.max_page_count.reset();
  return o;
}

/// Reader connections, one per concurrent reader, opened on demand and kept: in WAL mode
/// readers on separate connections never wait for each other or for the writer.
class connection_pool {
 public:
  connection_pool(std::filesystem::path file, const open_options& options)
      : file_(std::move(file)), options_(reader_options(options)) {}
  struct lease {
    connection_pool* pool;
    std::unique_ptr<database> db;
    lease(connection_pool* p, std::unique_ptr<database> d) : pool(p), db(std::move(d)) {}
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() {
      std::lock_guard lock(pool->mutex_);
      pool->idle_.push_back(std::move(db));
    }
    database& operator*() const noexcept { return *db; }
  };
  lease acquire() {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        auto db = std::move(idle_.back());
        idle_.pop_back();
        return {this, std::move(db)};
      }
    }
    return {this, std::make_unique<database>(file_, options_)};
  }

 private:
  std::filesystem::path file_;
  open_options options_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<database>> idle_;
};

/// Runs f inside a savepoint of the caller's open transaction: a put that fails half-way undoes
/// its own writes and leaves the caller's transaction usable.
template <class F>
auto in_savepoint(sqlite3* db, F&& f) {
  const int rc = sqlite3_exec(db, "SAVEPOINT sluice_put", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) throw_error(file_of(db), db, rc, "SAVEPOINT");
  try {
    auto result = f();
    if (const int released = sqlite3_exec(db, "RELEASE sluice_put", nullptr, nullptr, nullptr);
        released != SQLITE_OK) {
      throw_error(file_of(db), db, released, "RELEASE");
    }
    return result;
  } catch (...) {
    if (sqlite3_get_autocommit(db) == 0) {  // else SQLite already rolled everything back
      sqlite3_exec(db, "ROLLBACK TO sluice_put; RELEASE sluice_put", nullptr, nullptr, nullptr);
    }
    throw;
  }
}

/// Wakes a stream's listeners for commits this stream object did not make (other processes, raw
/// connections). PRAGMA data_version changes whenever another connection commits to the file;
/// only then are the shard counters read to find which shards grew.
class commit_watcher {
 public:
  commit_watcher(const std::filesystem::path& file, open_options options, std::int64_t stream_id,
                 std::uint32_t shards, std::chrono::milliseconds interval,
                 std::function<void(shard_id_t)> notify)
      : db_(file, reader_options(options)),
        stream_id_(stream_id),
        interval_(interval),
        notify_(std::move(notify)),
        version_(data_version()),
        seen_(counters(shards)),
        thread_([this](const std::stop_token& stop) { run(stop); }) {}

 private:
  std::int64_t data_version() {
    statement& s = db_.cached("PRAGMA data_version");
    auto guard = s.scoped();
    s.step();
    return s.column_int64(0);
  }

  std::vector<sequence_number_t> counters(std::size_t shards) {
    std::vector<sequence_number_t> seqs(shards, no_sequence);
    statement& s = db_.cached(shard_seqs_sql);
    auto guard = s.scoped();
    s.bind_int64(1, stream_id_);
    while (s.step()) {
      const auto shard = static_cast<std::size_t>(s.column_int64(0));
      if (shard < seqs.size()) seqs[shard] = from_db(s.column_int64(1));
    }
    return seqs;
  }

  void run(const std::stop_token& stop) {
    std::mutex mutex;
    std::condition_variable_any cv;
    while (!stop.stop_requested()) {
      {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, stop, interval_, [] { return false; });  // returns early on stop
      }
      if (stop.stop_requested()) break;
      try {
        const std::int64_t version = data_version();
        if (version == version_) continue;
        version_ = version;
        std::vector<sequence_number_t> current = counters(seen_.size());
        for (shard_id_t shard = 0; shard < current.size(); ++shard) {
          if (current[shard] != seen_[shard]) notify_(shard);
        }
        seen_ = std::move(current);
      } catch (const database_error&) {
        // Busy or briefly unreadable: look again at the next tick; pollers report real errors.
      }
    }
  }

  database db_;
  std::int64_t stream_id_;
  std::chrono::milliseconds interval_;
  std::function<void(shard_id_t)> notify_;
  std::int64_t version_;
  std::vector<sequence_number_t> seen_;
  std::jthread thread_;  // last: started after, and joined before, everything it uses
};
}  // namespace detail

}  // namespace sqlite
SLUICE_END_NAMESPACE
