// sluice/sqlite/destination.hpp: a durable on-failure destination (S-5.7, S-5.8) in a SQLite file.
// deliver() commits the whole on-failure record, with its records, in one transaction before it
// returns, so the caller may advance the checkpoint past those records once it has returned.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/failure.hpp"
#include "sluice/record.hpp"
#include "sluice/sqlite/codec.hpp"
#include "sluice/sqlite/database.hpp"

SLUICE_BEGIN_NAMESPACE
namespace sqlite {

/// 2: AWS's response context (function_error, has_response_context) apart from sluice's own
/// error details (sluice_error_type, sluice_error_message) and how the last attempt ended.
inline constexpr int destination_schema_version = 2;

namespace detail {
// One row per discarded batch, and one row per record of it. Several destinations (say, one per
// mapping) may share a file; the column `destination` tells them apart.
inline const std::string destination_schema = R"sql(
CREATE TABLE sluice_failures(failure_id INTEGER PRIMARY KEY, destination TEXT NOT NULL,
  condition TEXT NOT NULL, approximate_invoke_count INTEGER NOT NULL,
  has_response_context INTEGER NOT NULL, function_error TEXT, last_attempt TEXT NOT NULL,
  sluice_error_type TEXT, sluice_error_message TEXT, stream_name TEXT NOT NULL,
  shard INTEGER NOT NULL,
  start_seq INTEGER NOT NULL, end_seq INTEGER NOT NULL, first_arrival_ns INTEGER NOT NULL,
  last_arrival_ns INTEGER NOT NULL, batch_size INTEGER NOT NULL, timestamp_ns INTEGER NOT NULL);
CREATE INDEX sluice_failures_by_destination ON sluice_failures(destination, failure_id);
CREATE TABLE sluice_failure_records(failure_id INTEGER NOT NULL, position INTEGER NOT NULL,
  partition_key NOT NULL, seq INTEGER NOT NULL, arrival_ns INTEGER NOT NULL, payload,
  reported_failed INTEGER, PRIMARY KEY(failure_id, position)) WITHOUT ROWID;
)sql";

inline constexpr std::string_view insert_failure_sql =
    "INSERT INTO sluice_failures(destination, condition, approximate_invoke_count, "
    "sluice_error_type, sluice_error_message, stream_name, shard, start_seq, end_seq, "
    "first_arrival_ns, last_arrival_ns, batch_size, timestamp_ns, has_response_context, "
    "function_error, last_attempt) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
    "?13, ?14, ?15, ?16)";
inline constexpr std::string_view insert_failure_record_sql =
    "INSERT INTO sluice_failure_records(failure_id, position, partition_key, seq, arrival_ns, "
    "payload, reported_failed) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)";
inline constexpr std::string_view select_failures_sql =
    "SELECT failure_id, condition, approximate_invoke_count, sluice_error_type, "
    "sluice_error_message, stream_name, shard, start_seq, end_seq, first_arrival_ns, "
    "last_arrival_ns, batch_size, timestamp_ns, last_attempt FROM sluice_failures "
    "WHERE destination = ?1 ORDER BY failure_id";
inline constexpr std::string_view select_failure_records_sql =
    "SELECT partition_key, seq, arrival_ns, payload, reported_failed FROM sluice_failure_records "
    "WHERE failure_id = ?1 ORDER BY position";

template <class R>
struct record_parts {
  static constexpr bool is_record = false;
  using payload_type = std::string;  // placeholders: only the static_assert should speak
  using key_type = std::string;
};
template <class Payload, class Key>
struct record_parts<sluice::record<Payload, Key>> {
  static constexpr bool is_record = true;
  using payload_type = Payload;
  using key_type = Key;
};

inline void bind_optional_text(statement& s, int index, const std::optional<std::string>& v) {
  if (v) {
    s.bind_text(index, *v);
  } else {
    s.bind_null(index);
  }
}
inline std::optional<std::string> column_optional_text(const statement& s, int index) {
  if (s.column_is_null(index)) return std::nullopt;
  return std::string(s.column_text(index));
}
}  // namespace detail

/// Models sluice::on_failure_destination for R = sluice::record<Payload, Key> (the records of a
/// sluice::sqlite::stream or a memory_stream) whose Payload and Key are storable (codec.hpp).
/// Thread-safe. A failed delivery throws database_error; the mapping retries it (S-5.8).
template <class R>
class destination {
  static_assert(detail::record_parts<R>::is_record,
                "sluice::sqlite::destination<R> stores R = sluice::record<Payload, Key>");
  using payload_type = typename detail::record_parts<R>::payload_type;
  using key_type = typename detail::record_parts<R>::key_type;
  static_assert(detail::storable_payload_check<payload_type> &&
                detail::storable_key_check<key_type>);

 public:
  using record_type = R;

  /// `name` tells this destination's records apart from other destinations in the same file.
  explicit destination(const std::filesystem::path& file, std::string name = "on-failure",
                       open_options options = {})
      : name_(checked_name(std::move(name))), db_(file, options) {
    db_.require_schema("destination", destination_schema_version, detail::destination_schema);
  }

  /// Stores the on-failure record and its records in one transaction; durable when it returns.
  void deliver(const on_failure_record<R>& rec) {
    std::lock_guard lock(mutex_);
    transaction tx(db_);
    statement& f = db_.cached(detail::insert_failure_sql);
    {
      auto guard = f.scoped();
      f.bind_text(1, name_).bind_text(2, to_string(rec.condition));
      f.bind_int64(3, rec.approximate_invoke_count);
      detail::bind_optional_text(f, 4, rec.error_type);
      detail::bind_optional_text(f, 5, rec.error_message);
      f.bind_text(6, rec.stream_name).bind_int64(7, rec.shard_id);
      f.bind_int64(8, detail::to_db(rec.start_sequence_number));
      f.bind_int64(9, detail::to_db(rec.end_sequence_number));
      f.bind_int64(10, detail::to_ns(rec.approximate_arrival_of_first_record));
      f.bind_int64(11, detail::to_ns(rec.approximate_arrival_of_last_record));
      f.bind_int64(12, static_cast<std::int64_t>(rec.batch_size));
      f.bind_int64(13, detail::to_ns(rec.timestamp));
      // AWS's responseContext, as AWS writes it (S-5.7): function_error is NULL when the
      // function returned normally or when there is no response context at all.
      f.bind_int64(14, has_response_context(rec) ? 1 : 0);
      const auto function_error = aws_function_error(rec);
      if (has_response_context(rec) && function_error) {
        f.bind_text(15, *function_error);
      } else {
        f.bind_null(15);
      }
      f.bind_text(16, to_string(rec.last_attempt));
      f.step();
    }
    const std::int64_t failure_id = sqlite3_last_insert_rowid(db_.handle());
    statement& r = db_.cached(detail::insert_failure_record_sql);
    std::string scratch;
    for (std::size_t i = 0; i < rec.records.size(); ++i) {
      const R& record = rec.records[i];
      auto guard = r.scoped();
      r.bind_int64(1, failure_id).bind_int64(2, static_cast<std::int64_t>(i));
      detail::bind_key(r, 3, record.key);
      r.bind_int64(4, detail::to_db(record.sequence)).bind_int64(5, detail::to_ns(record.arrival));
      detail::bind_payload(r, 6, record.payload, scratch);
      // NULL when the engine gave no per-record flag, so records() returns what was delivered.
      if (i < rec.reported_failed.size()) {
        r.bind_int64(7, rec.reported_failed[i] ? 1 : 0);
      } else {
        r.bind_null(7);
      }
      r.step();
    }
    tx.commit();
  }

  /// On-failure records stored by this destination (all processes, all runs).
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    statement& s = db_.cached("SELECT count(*) FROM sluice_failures WHERE destination = ?1");
    auto guard = s.scoped();
    s.bind_text(1, name_);
    s.step();
    return static_cast<std::size_t>(s.column_int64(0));
  }

  /// Every stored on-failure record, oldest first, with its records.
  std::vector<on_failure_record<R>> records() const {
    std::lock_guard lock(mutex_);
    std::vector<on_failure_record<R>> out;
    statement& f = db_.cached(detail::select_failures_sql);
    auto guard = f.scoped();
    f.bind_text(1, name_);
    statement& r = db_.cached(detail::select_failure_records_sql);
    while (f.step()) {
      on_failure_record<R>& rec = out.emplace_back();
      const auto condition = f.column_text(1);
      rec.condition = condition == to_string(failure_condition::record_age_exceeded)
                          ? failure_condition::record_age_exceeded
                      : condition == to_string(failure_condition::stage_failed)
                          ? failure_condition::stage_failed
                          : failure_condition::retry_attempts_exhausted;
      rec.approximate_invoke_count = static_cast<std::uint32_t>(f.column_int64(2));
      rec.error_type = detail::column_optional_text(f, 3);
      rec.error_message = detail::column_optional_text(f, 4);
      rec.stream_name = std::string(f.column_text(5));
      rec.shard_id = static_cast<shard_id_t>(f.column_int64(6));
      rec.start_sequence_number = detail::from_db(f.column_int64(7));
      rec.end_sequence_number = detail::from_db(f.column_int64(8));
      rec.approximate_arrival_of_first_record = detail::from_ns(f.column_int64(9));
      rec.approximate_arrival_of_last_record = detail::from_ns(f.column_int64(10));
      rec.batch_size = static_cast<std::size_t>(f.column_int64(11));
      rec.timestamp = detail::from_ns(f.column_int64(12));
      const std::string_view last_attempt = f.column_text(13);
      rec.last_attempt = last_attempt == to_string(attempt_outcome::raised)
                             ? attempt_outcome::raised
                         : last_attempt == to_string(attempt_outcome::returned_report)
                             ? attempt_outcome::returned_report
                             : attempt_outcome::none;
      auto records_guard = r.scoped();
      r.bind_int64(1, f.column_int64(0));
      while (r.step()) {
        rec.records.push_back(
            R{detail::column_key<key_type>(r, 0), detail::from_db(r.column_int64(1)),
              detail::from_ns(r.column_int64(2)), detail::column_payload<payload_type>(r, 3)});
        if (!r.column_is_null(4)) rec.reported_failed.push_back(r.column_int64(4) != 0);
      }
    }
    return out;
  }

  const std::string& name() const noexcept { return name_; }
  const std::string& file() const noexcept { return db_.file(); }

 private:
  static std::string checked_name(std::string name) {
    if (name.empty()) sluice::detail::reject("destination name", "\"\"", "a non-empty name");
    return name;
  }

  std::string name_;
  mutable std::mutex mutex_;
  mutable database db_;
};

}  // namespace sqlite
SLUICE_END_NAMESPACE
