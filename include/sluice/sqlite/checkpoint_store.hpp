// sluice/sqlite/checkpoint_store.hpp: durable per-shard checkpoints (S-3.3, S-3.4) in a SQLite
// file, so a mapping restarted on the same machine resumes at checkpoint + 1. Each save is one
// committed transaction; save_all commits a whole set of shards at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/checkpoint.hpp"
#include "sluice/config.hpp"
#include "sluice/sqlite/codec.hpp"
#include "sluice/sqlite/database.hpp"

SLUICE_BEGIN_NAMESPACE
namespace sqlite {

/// 1: sluice_checkpoints. 2: + sluice_windows (a shard's open tumbling window, S-7); a version 1
/// file is migrated when opened read-write (the table is added), and read as is when read-only.
inline constexpr int checkpoint_schema_version = 2;

namespace detail {
inline const std::string checkpoint_windows_table = R"sql(
CREATE TABLE sluice_windows(mapping TEXT NOT NULL, shard INTEGER NOT NULL,
  start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, state BLOB NOT NULL,
  terminated_early INTEGER NOT NULL, PRIMARY KEY(mapping, shard)) WITHOUT ROWID;
)sql";
inline const std::string checkpoint_schema = R"sql(
CREATE TABLE sluice_checkpoints(mapping TEXT NOT NULL, shard INTEGER NOT NULL,
  seq INTEGER NOT NULL, PRIMARY KEY(mapping, shard)) WITHOUT ROWID;
)sql" + checkpoint_windows_table;

// max(): a stored checkpoint never moves backwards (see checkpoint_store).
inline constexpr std::string_view save_checkpoint_sql =
    "INSERT INTO sluice_checkpoints(mapping, shard, seq) VALUES(?1, ?2, ?3) "
    "ON CONFLICT(mapping, shard) DO UPDATE SET seq = max(seq, excluded.seq)";

/// Stores a shard's open window (null: none, the stored row is deleted) in sluice_windows; the
/// caller holds the transaction that also moves the checkpoint (checkpoint_store::save,
/// lease_store::save_fenced).
inline void save_window(database& db, std::string_view mapping, shard_id_t shard,
                        const window_checkpoint* window) {
  if (window != nullptr) {
    statement& w = db.cached(
        "INSERT INTO sluice_windows(mapping, shard, start_ns, end_ns, state, terminated_early) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(mapping, shard) DO UPDATE SET "
        "start_ns = excluded.start_ns, end_ns = excluded.end_ns, state = excluded.state, "
        "terminated_early = excluded.terminated_early");
    auto guard = w.scoped();
    w.bind_text(1, mapping)
        .bind_int64(2, shard)
        .bind_int64(3, window->start.time_since_epoch().count())
        .bind_int64(4, window->end.time_since_epoch().count())
        .bind_blob(5, window->state.data(), window->state.size())
        .bind_int64(6, window->terminated_early ? 1 : 0);
    w.step();
  } else {
    statement& w = db.cached("DELETE FROM sluice_windows WHERE mapping = ?1 AND shard = ?2");
    auto guard = w.scoped();
    w.bind_text(1, mapping).bind_int64(2, shard);
    w.step();
  }
}

/// The open window kept in sluice_windows for a shard, if any.
inline std::optional<window_checkpoint> load_window(database& db, std::string_view mapping,
                                                    shard_id_t shard) {
  statement& s = db.cached(
      "SELECT start_ns, end_ns, state, terminated_early FROM sluice_windows "
      "WHERE mapping = ?1 AND shard = ?2");
  auto guard = s.scoped();
  s.bind_text(1, mapping).bind_int64(2, shard);
  if (!s.step()) return std::nullopt;
  window_checkpoint w;
  w.start = time_point(duration(s.column_int64(0)));
  w.end = time_point(duration(s.column_int64(1)));
  w.state = std::string(s.column_blob(2));
  w.terminated_early = s.column_int64(3) != 0;
  return w;
}
}  // namespace detail

/// Models sluice::checkpoint_store and sluice::window_checkpoint_store (a shard's open tumbling
/// window is saved with its checkpoint in one transaction). Thread-safe (one connection behind a
/// mutex).
///
/// Monotonic rule: a save lower than the stored checkpoint is ignored. A checkpoint only means
/// "everything up to here is finished", so a lower value never carries new information, while
/// writing it would re-deliver finished records; and after an at-least-once restart an old
/// mapping instance still flushing and the new one can race on the same row. To really rewind
/// (reprocess a shard), erase() the mapping's checkpoints, then start it with a starting position.
class checkpoint_store {
 public:
  explicit checkpoint_store(const std::filesystem::path& file, open_options options = {})
      : db_(file, options) {
    if (db_.schema_version("checkpoints") == 1) {
      if (options.read_only) {
        windows_ = false;  // an old file, read as it is: it holds no windows
        return;
      }
      migrate_from_1();
    }
    db_.require_schema("checkpoints", checkpoint_schema_version, detail::checkpoint_schema);
  }

  std::optional<sequence_number_t> load(std::string_view mapping, shard_id_t shard) const {
    std::lock_guard lock(mutex_);
    statement& s =
        db_.cached("SELECT seq FROM sluice_checkpoints WHERE mapping = ?1 AND shard = ?2");
    auto guard = s.scoped();
    s.bind_text(1, mapping).bind_int64(2, shard);
    if (!s.step()) return std::nullopt;
    return detail::from_db(s.column_int64(0));
  }

  /// Every stored checkpoint of a mapping, by shard.
  std::vector<std::pair<shard_id_t, sequence_number_t>> load_all(std::string_view mapping) const {
    std::lock_guard lock(mutex_);
    statement& s =
        db_.cached("SELECT shard, seq FROM sluice_checkpoints WHERE mapping = ?1 ORDER BY shard");
    auto guard = s.scoped();
    s.bind_text(1, mapping);
    std::vector<std::pair<shard_id_t, sequence_number_t>> all;
    while (s.step()) {
      all.emplace_back(static_cast<shard_id_t>(s.column_int64(0)),
                       detail::from_db(s.column_int64(1)));
    }
    return all;
  }

  /// Stores max(stored, seq); committed (and, with synchronous full, on disk) when it returns.
  void save(std::string_view mapping, shard_id_t shard, sequence_number_t seq) {
    check(seq);
    std::lock_guard lock(mutex_);
    upsert(mapping, shard, seq);
    ++saves_;
  }

  /// Saves several shards' checkpoints in one transaction: all or none.
  void save_all(std::string_view mapping,
                std::span<const std::pair<shard_id_t, sequence_number_t>> checkpoints) {
    for (const auto& entry : checkpoints) check(entry.second);
    std::lock_guard lock(mutex_);
    transaction tx(db_);
    for (const auto& [shard, seq] : checkpoints) upsert(mapping, shard, seq);
    tx.commit();
    saves_ += checkpoints.size();
  }

  /// Deletes every checkpoint of a mapping, and its open windows (the explicit rewind); returns
  /// how many checkpoints.
  std::size_t erase(std::string_view mapping) {
    std::lock_guard lock(mutex_);
    transaction tx(db_);
    statement& s = db_.cached("DELETE FROM sluice_checkpoints WHERE mapping = ?1");
    auto guard = s.scoped();
    s.bind_text(1, mapping);
    s.step();
    const auto erased = static_cast<std::size_t>(sqlite3_changes64(db_.handle()));
    if (windows_) {
      statement& w = db_.cached("DELETE FROM sluice_windows WHERE mapping = ?1");
      auto wguard = w.scoped();
      w.bind_text(1, mapping);
      w.step();
    }
    tx.commit();
    return erased;
  }

  /// The checkpoint and the shard's open window (null: none, the stored one is erased), in one
  /// transaction.
  void save(std::string_view mapping, shard_id_t shard, sequence_number_t seq,
            const window_checkpoint* window) {
    check(seq);
    std::lock_guard lock(mutex_);
    transaction tx(db_);
    upsert(mapping, shard, seq);
    detail::save_window(db_, mapping, shard, window);
    tx.commit();
    ++saves_;
  }

  /// The open window saved with the shard's checkpoint, if any.
  std::optional<window_checkpoint> load_window(std::string_view mapping, shard_id_t shard) const {
    std::lock_guard lock(mutex_);
    if (!windows_) return std::nullopt;
    return detail::load_window(db_, mapping, shard);
  }

  /// Saves made through this object (for tests and flush statistics).
  std::size_t saves() const {
    std::lock_guard lock(mutex_);
    return saves_;
  }

  const std::string& file() const noexcept { return db_.file(); }

 private:
  /// Schema 1 -> 2: adds sluice_windows. In one transaction; another process may have migrated
  /// the file meanwhile (then nothing is left to do).
  void migrate_from_1() {
    transaction tx(db_);
    if (db_.schema_version("checkpoints") == 1) {
      db_.exec(detail::checkpoint_windows_table);
      db_.exec("UPDATE sluice_meta SET version = 2 WHERE component = 'checkpoints'");
    }
    tx.commit();
  }

  static void check(sequence_number_t seq) {
    if (seq > static_cast<sequence_number_t>(std::numeric_limits<std::int64_t>::max())) {
      throw std::out_of_range("sluice::sqlite::checkpoint_store: sequence number " +
                              std::to_string(seq) + " exceeds SQLite's INTEGER range");
    }
  }

  void upsert(std::string_view mapping, shard_id_t shard, sequence_number_t seq) {
    statement& s = db_.cached(detail::save_checkpoint_sql);
    auto guard = s.scoped();
    s.bind_text(1, mapping).bind_int64(2, shard).bind_int64(3, detail::to_db(seq));
    s.step();
  }

  mutable std::mutex mutex_;
  mutable database db_;
  std::size_t saves_ = 0;
  bool windows_ = true;  // the file has sluice_windows (not a read-only version 1 file)
};

}  // namespace sqlite
SLUICE_END_NAMESPACE
