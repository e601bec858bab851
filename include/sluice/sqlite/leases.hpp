// sluice/sqlite/leases.hpp: the lease store of sluice::lease_worker (sluice/leases.hpp) in a SQLite
// file, so several processes on one machine share one SQLite stream's shards instead of each
// handling all of them. Leases are rows of sluice_leases; checkpoints are the rows of
// sluice_checkpoints (sluice/sqlite/checkpoint_store.hpp), so `sluice checkpoints show` and a
// plain checkpoint_store read them. Each operation is one BEGIN IMMEDIATE transaction: the
// fenced checkpoint write compares owner and counter and writes in the same transaction.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/leases.hpp"
#include "sluice/sqlite/checkpoint_store.hpp"
#include "sluice/sqlite/codec.hpp"
#include "sluice/sqlite/database.hpp"

SLUICE_BEGIN_NAMESPACE
namespace sqlite {

inline constexpr int lease_schema_version = 1;

namespace detail {
inline const std::string lease_schema = R"sql(
CREATE TABLE sluice_leases(mapping TEXT NOT NULL, shard INTEGER NOT NULL, owner TEXT NOT NULL,
  counter INTEGER NOT NULL, expires_ns INTEGER NOT NULL, PRIMARY KEY(mapping, shard)) WITHOUT ROWID;
)sql";
}  // namespace detail

/// Models sluice::lease_store. Thread-safe (one connection behind a mutex); processes share the
/// file through SQLite's locking.
class lease_store {
 public:
  explicit lease_store(const std::filesystem::path& file, open_options options = {})
      : db_(file, options) {
    db_.require_schema("leases", lease_schema_version, detail::lease_schema);
    db_.require_schema("checkpoints", checkpoint_schema_version, detail::checkpoint_schema);
  }

  std::vector<lease> leases(std::string_view mapping, std::uint32_t shards) const {
    std::lock_guard lock(mutex_);
    std::vector<lease> out(shards);
    for (shard_id_t s = 0; s < shards; ++s) out[s].shard = s;
    statement& q = db_.cached(
        "SELECT shard, owner, counter, expires_ns FROM sluice_leases WHERE mapping = ?1");
    auto guard = q.scoped();
    q.bind_text(1, mapping);
    while (q.step()) {
      const auto shard = static_cast<shard_id_t>(q.column_int64(0));
      if (shard >= shards) continue;
      out[shard].owner = std::string(q.column_text(1));
      out[shard].counter = static_cast<std::uint64_t>(q.column_int64(2));
      out[shard].expires_ns = q.column_int64(3);
    }
    return out;
  }

  bool take(std::string_view mapping, shard_id_t shard, std::string_view expected_owner,
            std::uint64_t expected_counter, std::string_view owner, std::int64_t expires_ns) {
    std::lock_guard lock(mutex_);
    transaction tx(db_);
    if (!holds(mapping, shard, expected_owner, expected_counter)) return false;
    statement& u = db_.cached(
        "INSERT INTO sluice_leases(mapping, shard, owner, counter, expires_ns) "
        "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(mapping, shard) DO UPDATE SET "
        "owner = excluded.owner, counter = excluded.counter, expires_ns = excluded.expires_ns");
    {
      auto guard = u.scoped();
      u.bind_text(1, mapping).bind_int64(2, shard).bind_text(3, owner);
      u.bind_int64(4, static_cast<std::int64_t>(expected_counter + 1)).bind_int64(5, expires_ns);
      u.step();
    }
    tx.commit();
    return true;
  }

  bool renew(std::string_view mapping, shard_id_t shard, std::string_view owner,
             std::uint64_t counter, std::int64_t expires_ns) {
    return update_held(mapping, shard, owner, counter,
                       "UPDATE sluice_leases SET expires_ns = ?3 WHERE mapping = ?1 AND shard = ?2",
                       expires_ns);
  }
  bool release(std::string_view mapping, shard_id_t shard, std::string_view owner,
               std::uint64_t counter) {
    return update_held(
        mapping, shard, owner, counter,
        "UPDATE sluice_leases SET owner = '', expires_ns = ?3 WHERE mapping = ?1 AND shard = ?2",
        0);
  }
  bool save_fenced(std::string_view mapping, shard_id_t shard, std::string_view owner,
                   std::uint64_t counter, sequence_number_t seq) {
    std::lock_guard lock(mutex_);
    transaction tx(db_);
    if (!holds(mapping, shard, owner, counter)) return false;
    statement& s = db_.cached(detail::save_checkpoint_sql);
    {
      auto guard = s.scoped();
      s.bind_text(1, mapping).bind_int64(2, shard).bind_int64(3, detail::to_db(seq));
      s.step();
    }
    tx.commit();
    return true;
  }
  /// The checkpoint and the shard's open window (null: none), fenced together in one
  /// transaction: both or neither.
  bool save_fenced(std::string_view mapping, shard_id_t shard, std::string_view owner,
                   std::uint64_t counter, sequence_number_t seq, const window_checkpoint* window) {
    std::lock_guard lock(mutex_);
    transaction tx(db_);
    if (!holds(mapping, shard, owner, counter)) return false;
    statement& s = db_.cached(detail::save_checkpoint_sql);
    {
      auto guard = s.scoped();
      s.bind_text(1, mapping).bind_int64(2, shard).bind_int64(3, detail::to_db(seq));
      s.step();
    }
    detail::save_window(db_, mapping, shard, window);
    tx.commit();
    return true;
  }
  std::optional<window_checkpoint> load_window(std::string_view mapping, shard_id_t shard) const {
    std::lock_guard lock(mutex_);
    return detail::load_window(db_, mapping, shard);
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

 private:
  /// The lease row has this owner and counter (a missing row: owner "" and counter 0).
  bool holds(std::string_view mapping, shard_id_t shard, std::string_view owner,
             std::uint64_t counter) {
    statement& q =
        db_.cached("SELECT owner, counter FROM sluice_leases WHERE mapping = ?1 AND shard = ?2");
    auto guard = q.scoped();
    q.bind_text(1, mapping).bind_int64(2, shard);
    if (!q.step()) return owner.empty() && counter == 0;
    return q.column_text(0) == owner && static_cast<std::uint64_t>(q.column_int64(1)) == counter;
  }

  bool update_held(std::string_view mapping, shard_id_t shard, std::string_view owner,
                   std::uint64_t counter, std::string_view sql, std::int64_t value) {
    std::lock_guard lock(mutex_);
    transaction tx(db_);
    if (owner.empty() || !holds(mapping, shard, owner, counter)) return false;
    statement& u = db_.cached(sql);
    {
      auto guard = u.scoped();
      u.bind_text(1, mapping).bind_int64(2, shard).bind_int64(3, value);
      u.step();
    }
    tx.commit();
    return true;
  }

  mutable std::mutex mutex_;
  mutable database db_;
};

static_assert(sluice::window_lease_store<lease_store>);

}  // namespace sqlite
SLUICE_END_NAMESPACE
