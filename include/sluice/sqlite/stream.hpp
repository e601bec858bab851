// sluice/sqlite/stream.hpp: the embedded default source, a durable sharded stream in a SQLite file.
// It behaves like sluice::memory_stream, takes puts from many threads and processes, and can put an
// event in the caller's own transaction (transactional outbox: rows and events commit as one).
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/clock.hpp"
#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/hash.hpp"
#include "sluice/record.hpp"
#include "sluice/source.hpp"
#include "sluice/sources/memory_stream.hpp"
#include "sluice/sqlite/checkpoint_store.hpp"
#include "sluice/sqlite/codec.hpp"
#include "sluice/sqlite/database.hpp"
#include "sluice/sqlite/detail/stream_tables.hpp"

SLUICE_BEGIN_NAMESPACE
namespace sqlite {

struct stream_options {
  /// Identifies the stream in the file (several streams may share one file) and in on-failure
  /// records.
  std::string name = "sqlite-stream";
  /// Fixed when the stream is first created in the file: reopening with another count is refused,
  /// since it would send a key to another shard and break per-key order.
  std::uint32_t shards = 1;
  /// Records older than this are trimmed. nullopt = keep forever.
  std::optional<duration> retention_age;
  /// At most this many records are kept per shard; the oldest are trimmed first.
  std::size_t retention_count = std::numeric_limits<std::size_t>::max();
  /// Puts by this stream object wake subscribed pollers at once; commits by other processes or
  /// by raw connections (put(sqlite3*, ...)) cannot. While a listener is subscribed, a watcher
  /// thread checks the file every poll_interval (PRAGMA data_version, a few microseconds) and
  /// wakes the listeners of shards that grew. Zero turns the watcher off: pollers must then poll.
  std::chrono::milliseconds poll_interval{100};
  open_options database{};
};

template <class Payload, class Key = std::string, clock_type Clock = system_clock>
class stream {
  static_assert(detail::storable_payload_check<Payload> && detail::storable_key_check<Key>);

 public:
  using record_type = record<Payload, Key>;
  /// Each shard numbers its records 1, 2, 3, ... without gaps (a gap seen by a reader is
  /// records that retention trimmed before they were read).
  static constexpr bool gap_free_sequences = true;

  explicit stream(const std::filesystem::path& file,
                  stream_options options = {}) requires std::same_as<Clock, system_clock>
      : stream(file, std::move(options), system_clock::instance()) {}

  stream(const std::filesystem::path& file, stream_options options, Clock& clock)
      : options_(validated(std::move(options))),
        clock_(&clock),
        file_(file),
        writer_(file, options_.database),
        readers_(file, options_.database) {
    writer_.require_schema("stream", stream_schema_version, detail::stream_schema);
    stream_id_ = detail::register_stream(writer_, options_.name, options_.shards);
    writer_path_ = detail::file_of(writer_.handle());
  }

  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;

  /// Appends a record to its key's shard in its own transaction; durable when it returns.
  put_result put(const Key& key, const Payload& payload) {
    put_result result{};
    {
      std::lock_guard lock(write_mutex_);
      transaction tx(writer_);
      result = append(cached(writer_), key, payload);
      if (retains()) trim_shard(cached(writer_), result.shard);
      tx.commit();
    }
    notify(result.shard);
    return result;
  }

  /// Appends entries (pairs of key and payload, in order) in one transaction: all or none.
  template <std::ranges::input_range Entries>
  std::vector<put_result> put_many(Entries&& entries) {
    std::vector<put_result> results;
    {
      std::lock_guard lock(write_mutex_);
      transaction tx(writer_);
      // The transaction holds the write lock, so each shard's counter is read once and written
      // back once instead of bumped per record: half the statements, same gap-free numbering.
      std::map<shard_id_t, detail::shard_counter> counters;
      for (auto&& entry : entries) {
        const auto& [key, payload] = entry;
        const shard_id_t shard = shard_for(key_hash(key), options_.shards);
        auto it = counters.find(shard);
        if (it == counters.end()) {
          it = counters.emplace(shard, detail::read_counter(writer_, stream_id_, shard)).first;
        }
        auto& [last_seq, last_arrival] = it->second;
        const std::int64_t now = detail::to_ns(clock_->now());
        last_arrival = last_arrival ? std::max(*last_arrival, now) : now;
        insert(cached(writer_), shard, ++last_seq, *last_arrival, key, payload);
        results.push_back({shard, detail::from_db(last_seq)});
      }
      for (const auto& [shard, c] : counters) detail::write_counter(writer_, stream_id_, shard, c);
      if (retains()) {
        for (shard_id_t shard : touched(results)) trim_shard(cached(writer_), shard);
      }
      tx.commit();
    }
    for (shard_id_t shard : touched(results)) notify(shard);
    return results;
  }
  std::vector<put_result> put_many(std::initializer_list<std::pair<Key, Payload>> entries) {
    return put_many(std::views::all(entries));
  }

  /// Outbox: appends inside the caller's open transaction on a database of the same file. The
  /// record becomes visible, and subscribed pollers are woken, when the caller commits; a
  /// rollback leaves no record and no gap in the sequence. The stream must outlive the
  /// transaction (its commit wakes this stream's listeners).
  put_result put(transaction& tx, const Key& key, const Payload& payload) {
    if (!tx.active())
      throw std::logic_error("sluice::sqlite::stream::put: the transaction is over");
    require_same_file(tx.db().handle());
    const put_result result = detail::in_savepoint(tx.db().handle(), [&] {
      const put_result r = append(cached(tx.db()), key, payload);
      if (retains()) trim_shard(cached(tx.db()), r.shard);
      return r;
    });
    tx.on_commit([this, shard = result.shard] { notify(shard); });
    return result;
  }

  /// Outbox through a raw connection (yours, on the same file) with an open transaction, best
  /// begun with BEGIN IMMEDIATE. This stream cannot see your COMMIT: call notify(result.shard)
  /// after it, or let the watcher (poll_interval) find the record.
  put_result put(sqlite3* connection, const Key& key, const Payload& payload) {
    if (sqlite3_get_autocommit(connection) != 0) {
      throw std::logic_error(
          "sluice::sqlite::stream::put(sqlite3*, key, payload) writes into the caller's open "
          "transaction, and the connection has none: BEGIN IMMEDIATE first, or use "
          "put(key, payload)");
    }
    require_same_file(connection);
    return detail::in_savepoint(connection, [&] {
      std::vector<std::unique_ptr<statement>> prepared;
      auto prepare = [&](std::string_view sql) -> statement& {
        return *prepared.emplace_back(std::make_unique<statement>(connection, sql));
      };
      const put_result r = append(prepare, key, payload);
      if (retains()) trim_shard(prepare, r.shard);
      return r;
    });
  }

  /// Wakes the listeners of a shard (after committing an outbox put made on a raw connection).
  void notify(shard_id_t shard) {
    std::lock_guard lock(listeners_mutex_);
    for (data_listener* l : listeners_) l->on_data(shard);
  }

  /// The checkpoints of mappings over this stream, kept in the stream's own file (table
  /// sluice_checkpoints, opened with the stream's open_options on first use). sluice::run and
  /// sluice::start use it when they are given no checkpoints(store) option, so a restarted
  /// mapping resumes after its last checkpoint instead of reprocessing the stream. Pass
  /// checkpoints(store) to keep them elsewhere (a separate file, or sluice::memory_checkpoint_store
  /// to reprocess on purpose).
  sqlite::checkpoint_store& default_checkpoint_store() {
    std::call_once(checkpoints_opened_, [this] {
      checkpoints_ = std::make_unique<sqlite::checkpoint_store>(file_, options_.database);
    });
    return *checkpoints_;
  }

  std::uint32_t shard_count() const noexcept { return options_.shards; }
  std::string_view name() const noexcept { return options_.name; }
  const std::filesystem::path& file() const noexcept { return file_; }
  /// How often a poller should look for records from other processes when it has not been woken.
  std::chrono::milliseconds poll_interval() const noexcept {
    return options_.poll_interval > std::chrono::milliseconds::zero()
               ? options_.poll_interval
               : std::chrono::milliseconds(100);
  }

  template <class Visit>
  std::size_t read(shard_id_t shard, sequence_number_t after, std::size_t max, Visit&& visit) {
    if (max == 0) return 0;
    auto lease = readers_.acquire();
    statement& s = (*lease).cached(detail::read_sql);
    auto guard = s.scoped();
    bind_retained(s, shard, after);
    s.bind_int64(6, static_cast<std::int64_t>(
                        std::min<std::size_t>(max, std::numeric_limits<std::int64_t>::max())));
    std::size_t consumed = 0;
    while (s.step()) {
      const record_type r{detail::column_key<Key>(s, 2), detail::from_db(s.column_int64(0)),
                          detail::from_ns(s.column_int64(1)),
                          detail::column_payload<Payload>(s, 3)};
      if (!visit(r)) break;
      ++consumed;
    }
    return consumed;
  }

  sequence_number_t resolve(shard_id_t shard, starting_position pos) {
    auto lease = readers_.acquire();
    const sequence_number_t last = last_sequence_on(*lease, shard);
    if (pos.where == starting_position::kind::latest) return last;
    statement& s = (*lease).cached(detail::read_sql);
    auto guard = s.scoped();
    bind_retained(s, shard, no_sequence);
    if (pos.where == starting_position::kind::at_timestamp) {
      s.bind_int64(5, std::max(horizon_ns(), detail::to_ns(pos.timestamp)));
    }
    s.bind_int64(6, 1);
    return s.step() ? detail::from_db(s.column_int64(0)) - 1 : last;
  }

  sequence_number_t last_sequence(shard_id_t shard) const {
    auto lease = readers_.acquire();
    return last_sequence_on(*lease, shard);
  }

  /// Records currently retained in a shard.
  std::size_t size(shard_id_t shard) const {
    auto lease = readers_.acquire();
    statement& s = (*lease).cached(detail::count_sql);
    auto guard = s.scoped();
    bind_retained(s, shard, no_sequence);
    s.step();
    return static_cast<std::size_t>(s.column_int64(0));
  }

  /// Deletes the records that retention no longer keeps; returns how many. Puts trim the shards
  /// they write; call this for streams fed only by other processes.
  std::size_t trim() {
    if (!retains()) return 0;
    std::lock_guard lock(write_mutex_);
    transaction tx(writer_);
    std::size_t deleted = 0;
    for (shard_id_t shard = 0; shard < options_.shards; ++shard) {
      deleted += trim_shard(cached(writer_), shard);
    }
    tx.commit();
    return deleted;
  }

  void subscribe(data_listener* listener) {
    std::lock_guard lock(listeners_mutex_);
    if (!watcher_ && options_.poll_interval > std::chrono::milliseconds::zero()) {
      watcher_ = std::make_unique<detail::commit_watcher>(
          file_, options_.database, stream_id_, options_.shards, options_.poll_interval,
          [this](shard_id_t shard) { notify(shard); });
    }
    listeners_.push_back(listener);
  }
  void unsubscribe(data_listener* listener) {
    std::unique_ptr<detail::commit_watcher> stopped;  // joined after the lock is released:
                                                      // the watcher notifies under that lock
    std::lock_guard lock(listeners_mutex_);
    std::erase(listeners_, listener);
    if (listeners_.empty()) stopped = std::move(watcher_);
  }

 private:
  static stream_options validated(stream_options o) {
    if (o.name.empty()) sluice::detail::reject("stream_options::name", "\"\"", "a non-empty name");
    sluice::detail::require_in_range<std::uint32_t>("shards", o.shards, 1, 1u << 20, "1..1048576");
    if (o.retention_count == 0) sluice::detail::reject("retention_count", 0, ">= 1");
    if (o.retention_age && *o.retention_age <= duration::zero())
      sluice::detail::reject("retention_age (ns)", o.retention_age->count(), "> 0");
    if (o.poll_interval < std::chrono::milliseconds::zero())
      sluice::detail::reject("poll_interval (ms)", o.poll_interval.count(), ">= 0");
    return o;
  }

  static auto cached(database& db) {
    return [&db](std::string_view sql) -> statement& { return db.cached(sql); };
  }

  template <class Prepare>
  put_result append(Prepare&& prepare, const Key& key, const Payload& payload) {
    const shard_id_t shard = shard_for(key_hash(key), options_.shards);
    statement& bump = prepare(detail::bump_sql);
    auto bump_guard = bump.scoped();
    bump.bind_int64(1, stream_id_).bind_int64(2, shard).bind_int64(3, detail::to_ns(clock_->now()));
    if (!bump.step())
      throw std::logic_error("sluice::sqlite: shard row missing in " + file_.string());
    const std::int64_t seq = bump.column_int64(0);
    const std::int64_t arrival = bump.column_int64(1);
    insert(prepare, shard, seq, arrival, key, payload);
    return {shard, detail::from_db(seq)};
  }

  template <class Prepare>
  void insert(Prepare&& prepare, shard_id_t shard, std::int64_t seq, std::int64_t arrival,
              const Key& key, const Payload& payload) {
    statement& s = prepare(detail::insert_sql);
    auto guard = s.scoped();
    std::string scratch;
    s.bind_int64(1, stream_id_).bind_int64(2, shard).bind_int64(3, seq).bind_int64(4, arrival);
    detail::bind_key(s, 5, key);
    detail::bind_payload(s, 6, payload, scratch);
    s.step();
  }

  bool retains() const noexcept {
    return options_.retention_age.has_value() ||
           options_.retention_count != std::numeric_limits<std::size_t>::max();
  }
  std::int64_t kept_count() const noexcept {
    return static_cast<std::int64_t>(
        std::min<std::size_t>(options_.retention_count, std::numeric_limits<std::int64_t>::max()));
  }
  std::int64_t horizon_ns() const {
    if (!options_.retention_age) return std::numeric_limits<std::int64_t>::min();
    const std::int64_t now = detail::to_ns(clock_->now());
    const std::int64_t age =
        std::chrono::duration_cast<std::chrono::nanoseconds>(*options_.retention_age).count();
    return now < std::numeric_limits<std::int64_t>::min() + age
               ? std::numeric_limits<std::int64_t>::min()
               : now - age;
  }

  void bind_retained(statement& s, shard_id_t shard, sequence_number_t after) const {
    s.bind_int64(1, stream_id_).bind_int64(2, shard).bind_int64(3, detail::to_db(after));
    s.bind_int64(4, kept_count()).bind_int64(5, horizon_ns());
  }

  template <class Prepare>
  std::size_t trim_shard(Prepare&& prepare, shard_id_t shard) {
    std::size_t deleted = 0;
    auto run = [&](std::string_view sql, std::int64_t bound) {
      statement& s = prepare(sql);
      auto guard = s.scoped();
      s.bind_int64(1, stream_id_).bind_int64(2, shard).bind_int64(3, bound);
      s.step();
      deleted += static_cast<std::size_t>(sqlite3_changes64(sqlite3_db_handle(s.handle())));
    };
    if (options_.retention_count != std::numeric_limits<std::size_t>::max()) {
      run(detail::trim_count_sql, kept_count());
    }
    if (options_.retention_age) run(detail::trim_age_sql, horizon_ns());
    return deleted;
  }

  sequence_number_t last_sequence_on(database& db, shard_id_t shard) const {
    statement& s = db.cached(detail::last_seq_sql);
    auto guard = s.scoped();
    s.bind_int64(1, stream_id_).bind_int64(2, shard);
    return s.step() ? detail::from_db(s.column_int64(0)) : no_sequence;
  }

  static std::vector<shard_id_t> touched(const std::vector<put_result>& results) {
    std::vector<shard_id_t> shards;
    shards.reserve(results.size());
    for (const put_result& r : results) shards.push_back(r.shard);
    std::sort(shards.begin(), shards.end());
    shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
    return shards;
  }

  void require_same_file(sqlite3* connection) const {
    const std::string theirs = detail::file_of(connection);
    std::error_code ec;
    if (theirs == writer_path_ || std::filesystem::equivalent(theirs, writer_path_, ec)) return;
    throw std::invalid_argument("sluice::sqlite::stream '" + options_.name +
                                "': the connection is on '" + theirs + "' but the stream is in '" +
                                writer_path_ + "'; an outbox put needs a connection to that file");
  }

  stream_options options_;
  Clock* clock_;
  std::filesystem::path file_;
  std::string writer_path_;
  std::int64_t stream_id_ = 0;
  std::mutex write_mutex_;
  database writer_;
  mutable detail::connection_pool readers_;
  std::mutex listeners_mutex_;
  std::vector<data_listener*> listeners_;
  std::once_flag checkpoints_opened_;
  std::unique_ptr<sqlite::checkpoint_store> checkpoints_;
  std::unique_ptr<detail::commit_watcher> watcher_;  // last: joined before what it uses goes
};

}  // namespace sqlite
SLUICE_END_NAMESPACE
