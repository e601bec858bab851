// benchmarks/sqlite_scratch.hpp: what the SQLite benchmarks (sqlite_bench, queue_bench) share: a
// private scratch directory for their database files, and the raw-SQLite baselines' error check.
#pragma once

#include <sqlite3.h>
#include <stdlib.h>  // mkdtemp

#include <filesystem>
#include <stdexcept>
#include <string>

namespace bench_support {

/// This process's scratch directory, made at first use under the temp directory; the benchmark
/// removes it when done.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "sluice-bench-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    return std::filesystem::path(pattern);
  }();
  return dir;
}

/// A path for a database file in the scratch directory, with any earlier file of that name and
/// its WAL and shared-memory files removed.
inline std::filesystem::path fresh_file(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path file = scratch_dir() / name;
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(file.string() + suffix);
  return file;
}

/// Throws with SQLite's message unless rc is SQLITE_OK, SQLITE_DONE or SQLITE_ROW.
inline void check(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    throw std::runtime_error(std::string(what) + ": " + sqlite3_errmsg(db));
}

}  // namespace bench_support
