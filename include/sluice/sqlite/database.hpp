// sluice/sqlite/database.hpp: the small SQLite layer under the durable stream, checkpoint store and
// on-failure destination: a WAL connection, prepared statements, BEGIN IMMEDIATE transactions, and
// errors that name the file and the cause ("database is locked" alone never says which file).
#pragma once

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/io/regular_file.hpp"
#include "sluice/sqlite/error.hpp"

SLUICE_BEGIN_NAMESPACE
namespace sqlite {

/// What a commit waits for. In WAL mode:
/// - full (default): each commit is fsync'ed before it returns; a committed checkpoint, dead
///   letter or event survives a power loss. Costs one fsync per transaction.
/// - normal: the WAL is fsync'ed only at WAL checkpoints. The file never corrupts, and a process
///   crash loses nothing, but a power loss or OS crash may roll back the last few commits: a
///   checkpoint may come back lower (records are redelivered; at least once holds), yet an event
///   or dead letter acknowledged to its producer may be lost. Use it when that is acceptable.
enum class synchronous_mode { normal, full };

struct open_options {
  /// Create the file when it does not exist (ignored when read_only).
  bool create = true;
  bool read_only = false;
  /// How long a connection waits for another connection's (or process's) write lock before an
  /// operation fails with SQLITE_BUSY.
  std::chrono::milliseconds busy_timeout{5000};
  synchronous_mode synchronous = synchronous_mode::full;
  /// Caps the file at this many pages (SQLite's PRAGMA max_page_count): writes beyond it fail
  /// with SQLITE_FULL instead of filling the disk.
  std::optional<std::uint32_t> max_page_count;
  /// The mode of the file when sluice creates it, exactly (the umask does not apply); SQLite
  /// gives its -wal and -shm files the mode of the database file. An existing file keeps its
  /// mode. 0600 by default: streams and dead letters hold payloads. Must include owner read and
  /// write (sluice::configuration_error otherwise).
  std::filesystem::perms file_mode =
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;
  /// Switches the file to WAL journal mode (PRAGMA journal_mode=WAL). Note: WAL mode is stored
  /// in the file and stays on for every later connection, your application's too, until someone
  /// sets another journal mode. It lets readers and the writer proceed at the same time; sluice's
  /// stream is built for it. false leaves the file's journal mode as it is (use it when
  /// sluice's tables live in your application's database and its journal mode is yours to
  /// choose; in rollback-journal mode readers and the writer wait for each other).
  bool use_wal = true;
};

namespace detail {
struct connection_closer {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
}  // namespace detail

/// A prepared statement. Move-only; finalized on destruction. bind_* indices start at 1,
/// column_* at 0 (SQLite's convention). Text and blobs are bound without copying: the bound data
/// must outlive the step() that uses it.
class statement {
 public:
  statement() = default;
  statement(sqlite3* db, std::string_view sql, bool persistent = false,
            std::string_view operation = {})
      : db_(db) {
    const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                      persistent ? SQLITE_PREPARE_PERSISTENT : 0, &stmt_, nullptr);
    if (rc != SQLITE_OK) {
      detail::throw_error(detail::file_of(db), db, rc,
                          operation.empty() ? detail::operation_of(sql) : operation);
    }
  }
  statement(statement&& o) noexcept
      : db_(std::exchange(o.db_, nullptr)), stmt_(std::exchange(o.stmt_, nullptr)) {}
  statement& operator=(statement&& o) noexcept {
    std::swap(db_, o.db_);
    std::swap(stmt_, o.stmt_);
    return *this;
  }
  ~statement() { sqlite3_finalize(stmt_); }

  statement& bind_int64(int i, std::int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
  statement& bind_double(int i, double v) { return check(sqlite3_bind_double(stmt_, i, v)); }
  statement& bind_null(int i) { return check(sqlite3_bind_null(stmt_, i)); }
  statement& bind_text(int i, std::string_view v) {
    return check(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8));
  }
  statement& bind_blob(int i, const void* data, std::size_t size) {
    // An empty blob with a null pointer would bind NULL; payloads keep "empty" distinct.
    if (size == 0) return check(sqlite3_bind_zeroblob(stmt_, i, 0));
    return check(sqlite3_bind_blob64(stmt_, i, data, size, SQLITE_STATIC));
  }

  /// Runs one step: true when a row is available, false when done.
  bool step(std::string_view operation = {}) {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    const char* sql = sqlite3_sql(stmt_);
    auto error = detail::make_error(detail::file_of(db_), db_, rc,
                                    !operation.empty() ? operation
                                    : sql != nullptr   ? detail::operation_of(sql)
                                                       : "step");
    sqlite3_reset(stmt_);
    throw error;
  }
  /// Ends the current run (releasing its read snapshot) and clears the bindings.
  void reset() noexcept {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  /// Resets the statement when the scope ends, also by exception: a statement left mid-run
  /// would hold its read snapshot and stop WAL checkpoints from completing.
  [[nodiscard]] auto scoped() noexcept {
    struct guard {
      statement* s;
      ~guard() { s->reset(); }
    };
    return guard{this};
  }

  int column_type(int i) const noexcept { return sqlite3_column_type(stmt_, i); }
  bool column_is_null(int i) const noexcept { return column_type(i) == SQLITE_NULL; }
  std::int64_t column_int64(int i) const noexcept { return sqlite3_column_int64(stmt_, i); }
  double column_double(int i) const noexcept { return sqlite3_column_double(stmt_, i); }
  std::string_view column_text(int i) const noexcept {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p != nullptr
               ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i)))
               : std::string_view();
  }
  std::string_view column_blob(int i) const noexcept {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
    return p != nullptr
               ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i)))
               : std::string_view();
  }
  sqlite3_stmt* handle() const noexcept { return stmt_; }

 private:
  statement& check(int rc) {
    if (rc != SQLITE_OK) detail::throw_error(detail::file_of(db_), db_, rc, "binding a parameter");
    return *this;
  }
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

class transaction;

/// One connection to one file, opened in WAL mode (see open_options::use_wal). Not thread-safe:
/// use it from one thread at a time (sluice's own classes each guard theirs with a mutex).
///
/// The file must be a regular file: a FIFO, device or directory is refused at once, and a file
/// that cannot be created or opened is reported with the OS's reason (say, "Permission denied"
/// for a read-only directory), both as database_error naming the file.
class database {
 public:
  explicit database(const std::filesystem::path& file, open_options options = {})
      : file_(file.string()), options_(options) {
    prepare_file();
    int flags = (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
                SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    if (options.create && !options.read_only) flags |= SQLITE_OPEN_CREATE;
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(file_.c_str(), &db, flags, nullptr);
    db_.reset(db);
    if (rc != SQLITE_OK) detail::throw_error(file_, db, rc, "opening");
    sqlite3_busy_timeout(db, static_cast<int>(options.busy_timeout.count()));
    // Each pragma reads the file header, so a garbage file or a locked one fails here, in the
    // constructor, with the file named, not later in some unrelated put().
    if (!options.read_only && options.use_wal) query("PRAGMA journal_mode=WAL", "setting WAL mode");
    exec(options.synchronous == synchronous_mode::full ? "PRAGMA synchronous=FULL"
                                                       : "PRAGMA synchronous=NORMAL");
    if (options.max_page_count) {
      query("PRAGMA max_page_count=" + std::to_string(*options.max_page_count),
            "setting max_page_count");
    }
    query("SELECT count(*) FROM sqlite_schema", "reading the schema");
  }

  database(database&&) noexcept = default;
  database& operator=(database&&) noexcept = default;

  sqlite3* handle() const noexcept { return db_.get(); }
  /// The path as given when opening.
  const std::string& file() const noexcept { return file_; }
  const open_options& options() const noexcept { return options_; }

  /// Runs one or more SQL statements that return no rows of interest.
  void exec(const std::string& sql) {
    const int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) detail::throw_error(file_, db_.get(), rc, detail::operation_of(sql));
  }

  statement prepare(std::string_view sql) { return {db_.get(), sql}; }

  /// A statement prepared once per connection and reused (reset before it is handed out, so one
  /// SQL text must not be in use twice at once; distinct texts may be stepped nested).
  statement& cached(std::string_view sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      it = cache_.emplace(std::string(sql), statement(db_.get(), sql, true)).first;
    }
    it->second.reset();
    return it->second;
  }

  /// Starts a write transaction (BEGIN IMMEDIATE, see transaction).
  transaction begin();

  /// Runs f inside a write transaction and commits; rolls back when f throws. f may take the
  /// transaction& (to put outbox events in it) or nothing.
  template <class F>
  decltype(auto) in_transaction(F&& f);

  /// Makes sure the tables of `component` exist at `version`, creating them with `ddl` in a fresh
  /// file. A file written by another schema version of that component is refused with an error
  /// that names the file and both versions. Versions live in the table sluice_meta, one row per
  /// component, so PRAGMA user_version stays the application's own (outbox files are theirs).
  void require_schema(std::string_view component, int version, const std::string& ddl);

  /// The stored schema version of a component; 0 when it has no tables in this file.
  int schema_version(std::string_view component) {
    statement& has_meta =
        cached("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sluice_meta'");
    auto guard_meta = has_meta.scoped();
    if (!has_meta.step()) return 0;
    statement& s = cached("SELECT version FROM sluice_meta WHERE component = ?1");
    auto guard = s.scoped();
    s.bind_text(1, component);
    return s.step() ? static_cast<int>(s.column_int64(0)) : 0;
  }

 private:
  /// Checks the path (and creates the file with options_.file_mode) before SQLite opens it:
  /// SQLite would block on a FIFO, create the file with the umask's mode, and report the errno
  /// of its last fallback rather than the real cause.
  ///
  /// An existing file is checked without opening it: closing any descriptor of a file releases
  /// every POSIX lock this process holds on it, SQLite's included, and another process could
  /// then take the file for unused and checkpoint and delete the WAL under this process's other
  /// connections (a stream, checkpoint store and destination sharing one file). Only a file this
  /// call creates is opened here; nothing can hold locks on it yet.
  void prepare_file() {
    const mode_t mode =
        sluice::detail::checked_file_mode("open_options::file_mode", options_.file_mode);
    if (file_.empty() || file_ == ":memory:" || file_.rfind("file:", 0) == 0) return;
    struct stat info {};
    if (::stat(file_.c_str(), &info) == 0) {
      if (!S_ISREG(info.st_mode)) {
        throw detail::make_os_error(file_, S_ISDIR(info.st_mode) ? EISDIR : EINVAL, "opening",
                                    std::string("it is ") +
                                        sluice::detail::file_kind(info.st_mode) +
                                        ", not a regular file");
      }
      if (::access(file_.c_str(), options_.read_only ? R_OK : R_OK | W_OK) != 0)
        throw detail::make_os_error(file_, errno, "opening", "cannot open the file");
      return;
    }
    const bool create = options_.create && !options_.read_only;
    const auto opened = sluice::detail::open_regular_file(
        file_, options_.read_only ? O_RDONLY : O_RDWR, create, mode);
    if (opened.error != 0) {
      throw detail::make_os_error(
          file_, opened.error, "opening",
          opened.reason.empty() ? "cannot " + opened.operation + " the file" : opened.reason);
    }
  }

  void query(const std::string& sql, std::string_view operation) {
    statement s(db_.get(), sql, false, operation);
    while (s.step(operation)) {
    }
  }

  std::string file_;
  open_options options_;
  std::unique_ptr<sqlite3, detail::connection_closer> db_;
  // Declared after db_ so that statements are finalized before the connection closes.
  std::map<std::string, statement, std::less<>> cache_;
};

/// A write transaction: BEGIN IMMEDIATE takes the write lock at once (waiting up to busy_timeout),
/// so a transaction never fails half-way with SQLITE_BUSY when it upgrades from reading to
/// writing. Rolled back on destruction unless committed. on_commit callbacks run after a
/// successful COMMIT (a stream uses them to wake its pollers).
class transaction {
 public:
  explicit transaction(database& db) : db_(&db) {
    const int rc = sqlite3_exec(db.handle(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      detail::throw_error(db.file(), db.handle(), rc,
                          "BEGIN IMMEDIATE (busy_timeout " +
                              std::to_string(db.options().busy_timeout.count()) + " ms)");
    }
    active_ = true;
  }
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;
  ~transaction() { rollback(); }

  void commit() {
    if (!active_) throw std::logic_error("sluice::sqlite: commit() of a finished transaction");
    const int rc = sqlite3_exec(db_->handle(), "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      if (sqlite3_get_autocommit(db_->handle()) != 0) active_ = false;  // SQLite rolled back
      detail::throw_error(db_->file(), db_->handle(), rc, "COMMIT");
    }
    active_ = false;
    auto callbacks = std::move(on_commit_);
    for (auto& f : callbacks) f();
  }

  void rollback() noexcept {
    if (!active_) return;
    active_ = false;
    on_commit_.clear();
    // After SQLITE_FULL, IOERR or NOMEM SQLite may already have rolled back on its own.
    if (sqlite3_get_autocommit(db_->handle()) == 0) {
      sqlite3_exec(db_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  bool active() const noexcept { return active_; }
  database& db() const noexcept { return *db_; }
  /// Runs f after this transaction commits; dropped if it rolls back. f must not throw.
  void on_commit(std::function<void()> f) { on_commit_.push_back(std::move(f)); }

 private:
  database* db_;
  bool active_ = false;
  std::vector<std::function<void()>> on_commit_;
};

inline transaction database::begin() { return transaction(*this); }

template <class F>
decltype(auto) database::in_transaction(F&& f) {
  transaction tx(*this);
  if constexpr (std::is_invocable_v<F&, transaction&>) {
    if constexpr (std::is_void_v<std::invoke_result_t<F&, transaction&>>) {
      f(tx);
      tx.commit();
    } else {
      auto result = f(tx);
      tx.commit();
      return result;
    }
  } else if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
    f();
    tx.commit();
  } else {
    auto result = f();
    tx.commit();
    return result;
  }
}

inline void database::require_schema(std::string_view component, int version,
                                     const std::string& ddl) {
  auto mismatch = [&](int found) {
    std::string message = "sluice::sqlite: '" + file_ + "' ";
    message += found == 0 ? "has no tables of sluice's " + std::string(component)
                          : "holds schema version " + std::to_string(found) + " of sluice's " +
                                std::string(component) + " tables";
    message += "; this build expects version " + std::to_string(version) +
               " [schema version mismatch]: use a file written by this version of sluice";
    throw database_error(file_, 0, message);
  };
  int found = schema_version(component);
  if (found == version) return;
  if (options_.read_only) mismatch(found);
  transaction tx(*this);
  exec(
      "CREATE TABLE IF NOT EXISTS sluice_meta(component TEXT PRIMARY KEY, "
      "version INTEGER NOT NULL) WITHOUT ROWID");
  found = schema_version(component);  // another process may have created it meanwhile
  if (found == version) return;
  if (found != 0) mismatch(found);
  exec(ddl);
  statement& s = cached("INSERT INTO sluice_meta(component, version) VALUES(?1, ?2)");
  auto guard = s.scoped();
  s.bind_text(1, component).bind_int64(2, version);
  s.step();
  tx.commit();
}

}  // namespace sqlite
SLUICE_END_NAMESPACE
