// sluice/sqlite/idempotency.hpp: remembers which records a handler has applied, in the handler's
// own SQLite transaction, the way Lambda Powertools' idempotency utility does with DynamoDB.
// Records are handed over more than once: a retried batch, a partial batch response (everything
// after the lowest failed record comes again, S-5.2) and a restart (at least once, S-3.4). With
// "apply + remember" committed together, each record takes effect once.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "sluice/clock.hpp"
#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/record.hpp"
#include "sluice/sqlite/codec.hpp"
#include "sluice/sqlite/database.hpp"

SLUICE_BEGIN_NAMESPACE
namespace sqlite {

inline constexpr int idempotency_schema_version = 1;

namespace detail {
inline const std::string idempotency_schema = R"sql(
CREATE TABLE sluice_idempotency(scope TEXT NOT NULL, key TEXT NOT NULL,
  remembered_ns INTEGER NOT NULL, PRIMARY KEY(scope, key)) WITHOUT ROWID;
CREATE INDEX sluice_idempotency_by_age ON sluice_idempotency(scope, remembered_ns);
)sql";

// A new key is inserted; an expired one is taken over (its clock starts again); a live one is
// left alone, and then no row changes.
inline constexpr std::string_view remember_sql =
    "INSERT INTO sluice_idempotency(scope, key, remembered_ns) VALUES(?1, ?2, ?3) "
    "ON CONFLICT(scope, key) DO UPDATE SET remembered_ns = excluded.remembered_ns "
    "WHERE remembered_ns <= ?4";
inline constexpr std::string_view contains_sql =
    "SELECT 1 FROM sluice_idempotency WHERE scope = ?1 AND key = ?2 AND remembered_ns > ?3";
inline constexpr std::string_view forget_expired_sql =
    "DELETE FROM sluice_idempotency WHERE scope = ?1 AND key IN (SELECT key FROM "
    "sluice_idempotency WHERE scope = ?1 AND remembered_ns <= ?2 LIMIT ?3)";
}  // namespace detail

struct idempotency_options {
  /// Keeps this helper's keys apart from other helpers' in the same file (one per handler, say).
  std::string scope = "sluice";
  /// A key remembered longer ago than this is forgotten: the same key is then applied again.
  /// Choose it longer than a record can come back: the stream's retention, or at least the
  /// retry window (maximum_record_age). Powertools' expires_after_seconds; default 1 hour.
  duration ttl = std::chrono::hours(1);
};

/// Remembers keys in the table sluice_idempotency of a SQLite file, inside the caller's
/// transaction, so that applying a record and remembering it commit together or not at all:
///
///     if (seen.remember(tx, mapping, batch.shard_id(), r.sequence)) apply(tx, r);  // first time
///
/// remember() returns true the first time a key is remembered (and when its earlier remembering
/// has expired), false while it is remembered. A rollback forgets what the transaction
/// remembered, as it undoes what it applied. Keys: (mapping, shard, sequence number), which
/// identify a record of a stream, or any key of yours (an order id: Powertools' "payload
/// hash" or idempotency key), for sources that may carry the same event twice.
///
/// Expired keys are deleted a few at a time by remember() (every 256th call deletes up to 256)
/// and by forget_expired(). Thread-safe as far as the transactions are: each transaction is on
/// one connection, used by one thread at a time.
template <clock_type Clock = system_clock>
class idempotency {
 public:
  /// Creates the table in `db`'s file if needed. Transactions given to remember() must be on
  /// that file (any connection to it). Throws sluice::configuration_error for an empty scope or
  /// a ttl <= 0.
  explicit idempotency(database& db,
                       idempotency_options options = {}) requires std::same_as<Clock, system_clock>
      : idempotency(db, std::move(options), system_clock::instance()) {}

  idempotency(database& db, idempotency_options options, Clock& clock)
      : options_(validated(std::move(options))), clock_(&clock), db_(&db) {
    db.require_schema("idempotency", idempotency_schema_version, detail::idempotency_schema);
    file_ = detail::file_of(db.handle());
  }

  idempotency(const idempotency&) = delete;
  idempotency& operator=(const idempotency&) = delete;

  /// Remembers `key` in `tx`: true when it was not remembered (or had expired), so apply the
  /// record; false when it is remembered, so skip it. Undone if `tx` rolls back.
  bool remember(transaction& tx, std::string_view key) {
    database& db = checked(tx);
    const std::int64_t now = detail::to_ns(clock_->now());
    statement& s = db.cached(detail::remember_sql);
    {
      auto guard = s.scoped();
      s.bind_text(1, options_.scope).bind_text(2, key).bind_int64(3, now);
      s.bind_int64(4, horizon(now));
      s.step();
    }
    const bool first = sqlite3_changes(db.handle()) > 0;
    if (calls_.fetch_add(1, std::memory_order_relaxed) % 256 == 255) forget_expired_in(db, 256);
    return first;
  }

  /// Remembers the record (shard, sequence number) of mapping `mapping` (its name).
  bool remember(transaction& tx, std::string_view mapping, shard_id_t shard,
                sequence_number_t sequence) {
    return remember(tx, record_key(mapping, shard, sequence));
  }

  /// Whether `key` is remembered and not expired (read on the constructor's connection).
  bool contains(std::string_view key) const {
    statement& s = db_->cached(detail::contains_sql);
    auto guard = s.scoped();
    s.bind_text(1, options_.scope).bind_text(2, key);
    s.bind_int64(3, horizon(detail::to_ns(clock_->now())));
    return s.step();
  }
  bool contains(std::string_view mapping, shard_id_t shard, sequence_number_t sequence) const {
    return contains(record_key(mapping, shard, sequence));
  }

  /// Deletes every expired key of this scope in its own transaction on the constructor's
  /// connection; returns how many.
  std::size_t forget_expired() {
    transaction tx(*db_);
    const std::size_t n = forget_expired_in(*db_, -1);
    tx.commit();
    return n;
  }

  /// The key remember(tx, mapping, shard, sequence) uses: "<mapping>/<shard>/<sequence>".
  static std::string record_key(std::string_view mapping, shard_id_t shard,
                                sequence_number_t sequence) {
    std::string key(mapping);
    key.append("/").append(std::to_string(shard)).append("/").append(std::to_string(sequence));
    return key;
  }

  const idempotency_options& options() const noexcept { return options_; }

 private:
  static idempotency_options validated(idempotency_options o) {
    if (o.scope.empty()) {
      sluice::detail::reject("idempotency_options::scope", "\"\"", "a non-empty name");
    }
    if (o.ttl <= duration::zero()) {
      sluice::detail::reject("idempotency_options::ttl (ns)", o.ttl.count(), "> 0");
    }
    return o;
  }

  std::int64_t horizon(std::int64_t now) const {
    const std::int64_t ttl =
        std::chrono::duration_cast<std::chrono::nanoseconds>(options_.ttl).count();
    return now < std::numeric_limits<std::int64_t>::min() + ttl
               ? std::numeric_limits<std::int64_t>::min()
               : now - ttl;
  }

  database& checked(transaction& tx) const {
    if (!tx.active()) {
      throw std::logic_error("sluice::sqlite::idempotency::remember: the transaction is over");
    }
    database& db = tx.db();
    if (&db != db_ && detail::file_of(db.handle()) != file_) {
      throw std::invalid_argument("sluice::sqlite::idempotency: the transaction is on '" +
                                  detail::file_of(db.handle()) + "' but the keys are in '" + file_ +
                                  "'");
    }
    return db;
  }

  std::size_t forget_expired_in(database& db, std::int64_t limit) {
    statement& s = db.cached(detail::forget_expired_sql);
    auto guard = s.scoped();
    s.bind_text(1, options_.scope).bind_int64(2, horizon(detail::to_ns(clock_->now())));
    s.bind_int64(3, limit);
    s.step();
    return static_cast<std::size_t>(sqlite3_changes64(db.handle()));
  }

  idempotency_options options_;
  Clock* clock_;
  database* db_;
  std::string file_;
  std::atomic<std::uint64_t> calls_{0};
};

}  // namespace sqlite
SLUICE_END_NAMESPACE
