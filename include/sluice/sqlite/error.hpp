// sluice/sqlite/error.hpp: sluice::sqlite::database_error and how its message is made. A message
// always names the file and the cause in words (locked, corrupt, full, ...), with SQLite's own
// text and code and, where the OS said why, the OS reason.
#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE
namespace sqlite {

/// A failed SQLite operation. what() reads "sluice::sqlite: <operation> on '<file>' failed:
/// <message> [<SQLITE_CODE>, extended code <n>]: <cause>". code() is SQLite's extended result code,
/// or 0 for sluice's own checks (a schema version this build does not know).
class database_error : public std::runtime_error {
 public:
  database_error(std::string file, int code, const std::string& message)
      : std::runtime_error(message), file_(std::move(file)), code_(code) {}
  const std::string& file() const noexcept { return file_; }
  int code() const noexcept { return code_; }
  int primary_code() const noexcept { return code_ & 0xff; }

 private:
  std::string file_;
  int code_;
};

namespace detail {
inline std::string_view code_name(int primary) noexcept {
  switch (primary) {
    case SQLITE_ERROR:
      return "SQLITE_ERROR";
    case SQLITE_PERM:
      return "SQLITE_PERM";
    case SQLITE_BUSY:
      return "SQLITE_BUSY";
    case SQLITE_LOCKED:
      return "SQLITE_LOCKED";
    case SQLITE_NOMEM:
      return "SQLITE_NOMEM";
    case SQLITE_READONLY:
      return "SQLITE_READONLY";
    case SQLITE_IOERR:
      return "SQLITE_IOERR";
    case SQLITE_CORRUPT:
      return "SQLITE_CORRUPT";
    case SQLITE_FULL:
      return "SQLITE_FULL";
    case SQLITE_CANTOPEN:
      return "SQLITE_CANTOPEN";
    case SQLITE_CONSTRAINT:
      return "SQLITE_CONSTRAINT";
    case SQLITE_MISUSE:
      return "SQLITE_MISUSE";
    case SQLITE_NOTADB:
      return "SQLITE_NOTADB";
    case SQLITE_TOOBIG:
      return "SQLITE_TOOBIG";
    default:
      return "SQLITE_ERROR_CODE";
  }
}

inline std::string_view cause(int primary) noexcept {
  switch (primary) {
    case SQLITE_BUSY:
      return "locked: another connection holds the lock and busy_timeout expired";
    case SQLITE_LOCKED:
      return "locked by another statement of the same connection";
    case SQLITE_CORRUPT:
      return "corrupt: the file is damaged";
    case SQLITE_NOTADB:
      return "corrupt: the file is not a SQLite database";
    case SQLITE_FULL:
      return "full: the disk or the database's max_page_count is exhausted";
    case SQLITE_CANTOPEN:
      return "cannot open: the file is missing, unreadable or a directory";
    case SQLITE_PERM:
      return "permission denied";
    case SQLITE_READONLY:
      return "read-only: the file or its directory is not writable";
    case SQLITE_IOERR:
      return "I/O error";
    default:
      return "SQLite error";
  }
}

inline database_error make_error(std::string_view file, sqlite3* db, int rc,
                                 std::string_view operation) {
  int code = db != nullptr ? sqlite3_extended_errcode(db) : rc;
  if ((code & 0xff) != (rc & 0xff)) code = rc;
  const int primary = code & 0xff;
  std::string message = "sluice::sqlite: ";
  message.append(operation).append(" on '").append(file).append("' failed: ");
  message.append(db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  message.append(" [").append(code_name(primary)).append(", extended code ");
  message.append(std::to_string(code)).append("]: ").append(cause(primary));
  if (const int os = db != nullptr ? sqlite3_system_errno(db) : 0;
      os != 0 && (primary == SQLITE_CANTOPEN || primary == SQLITE_IOERR || primary == SQLITE_PERM ||
                  primary == SQLITE_READONLY || primary == SQLITE_FULL)) {
    message.append(" (os: ").append(std::generic_category().message(os)).append(")");
  }
  return {std::string(file), code, message};
}

/// An error the OS reported before SQLite saw the file (see database::prepare_file), in the same
/// shape: "sluice::sqlite: opening on '<file>' failed: <what> [SQLITE_CANTOPEN, ...]: <cause>
/// (os: <reason>)".
inline database_error make_os_error(std::string_view file, int os, std::string_view operation,
                                    std::string_view what) {
  std::string message = "sluice::sqlite: ";
  message.append(operation).append(" on '").append(file).append("' failed: ").append(what);
  message.append(" [").append(code_name(SQLITE_CANTOPEN)).append(", extended code ");
  message.append(std::to_string(SQLITE_CANTOPEN)).append("]: ").append(cause(SQLITE_CANTOPEN));
  message.append(" (os: ").append(std::generic_category().message(os)).append(")");
  return {std::string(file), SQLITE_CANTOPEN, message};
}

[[noreturn]] inline void throw_error(std::string_view file, sqlite3* db, int rc,
                                     std::string_view operation) {
  throw make_error(file, db, rc, operation);
}

/// The file a connection works on, for messages (SQLite reports an absolute path).
inline std::string file_of(sqlite3* db) {
  const char* name = sqlite3_db_filename(db, "main");
  return name != nullptr && *name != '\0' ? std::string(name) : std::string(":memory:");
}

/// A short name for a failed SQL statement in messages: its text on one line (runs of
/// whitespace become one space), cut at a word boundary with "..." when longer than 60
/// characters.
inline std::string operation_of(std::string_view sql) {
  constexpr std::size_t limit = 60;
  std::string out;
  bool gap = false;
  for (const char c : sql) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
      gap = !out.empty();
      continue;
    }
    if (gap) out += ' ';
    gap = false;
    out += c;
    if (out.size() > limit) break;
  }
  if (out.size() <= limit) return out;
  std::size_t cut = out.rfind(' ', limit);
  if (cut == std::string::npos || cut < limit / 2) cut = limit;  // one long word: cut it
  out.resize(cut);
  while (!out.empty() && (out.back() == ',' || out.back() == ' ')) out.pop_back();
  return out + "...";
}
}  // namespace detail

}  // namespace sqlite
SLUICE_END_NAMESPACE
