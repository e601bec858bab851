// sluice/detail/io/durable_append_file.hpp: an append-only file whose append() returns only once
// the bytes are on stable storage (write + fsync), and which never keeps part of a failed append,
// so a retried delivery writes its line exactly once (S-5.8, conformance C-16). POSIX only.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "sluice/config.hpp"
#include "sluice/detail/io/regular_file.hpp"

SLUICE_BEGIN_NAMESPACE

namespace detail {

/// Not thread-safe: the owner serializes appends. One object per file: the constructor takes an
/// exclusive flock(), because cutting a failed append back off is only safe for the sole writer.
class durable_append_file {
 public:
  /// Opens `path` for appending, creating it with exactly `mode` when missing (an existing file
  /// keeps its mode). Refuses anything but a regular file without blocking (a FIFO would block
  /// open() forever, and fsync fails on pipes and devices), and takes the lock. A torn last line
  /// (a crash in the middle of an append) is cut off: its append never returned, so its
  /// delivery was never acknowledged and is made again. Throws std::system_error naming the path
  /// and the real cause.
  explicit durable_append_file(std::filesystem::path path, mode_t mode = S_IRUSR | S_IWUSR)
      : path_(std::move(path)) {
    opened_file opened = open_regular_file(path_, O_RDWR | O_APPEND, true, mode);
    if (opened.error != 0) fail(opened.error, opened.operation.c_str(), opened.reason);
    file_ = std::move(opened.file);
    if (::flock(file_.fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
      fail(errno, "lock (another writer has it open)");
    }  // other flock errors (ENOLCK, EOPNOTSUPP on some network file systems) are not fatal
    if (opened.created) {
      // Make the directory entry durable: an fsync'ed file that no directory names is lost too.
      sync_directory();
    } else {
      cut_torn_tail();
    }
  }

  durable_append_file(const durable_append_file&) = delete;
  durable_append_file& operator=(const durable_append_file&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }

  /// Appends `bytes` and returns once they are on stable storage. On failure the file is cut
  /// back to its size before the call (or, if even that fails, before the next append) and
  /// std::system_error is thrown, naming the operation and the path.
  void append(std::string_view bytes) {
    if (cut_back_to_) {
      if (::ftruncate(file_.fd, *cut_back_to_) != 0) fail(errno, "truncate a failed append in");
      cut_back_to_.reset();
    }
    struct stat info {};
    if (::fstat(file_.fd, &info) != 0) fail(errno, "stat");
    if (const int error = write_all(bytes)) undo_and_fail(info.st_size, error, "write");
    if (const int error = sync(file_.fd)) undo_and_fail(info.st_size, error, "fsync");
  }

 private:
  /// Cuts the file back to just after its last '\n' (to empty when it has none): the rest is a
  /// line whose append was cut short by a crash. Only whole lines stay, each acknowledged.
  void cut_torn_tail() {
    struct stat info {};
    if (::fstat(file_.fd, &info) != 0) fail(errno, "stat");
    ::off_t end = info.st_size;
    if (end == 0) return;
    char buffer[64 * 1024];
    ::off_t keep = 0;
    bool found = false;
    for (::off_t stop = end; stop > 0 && !found;) {
      const ::off_t start = stop > static_cast<::off_t>(sizeof buffer)
                                ? stop - static_cast<::off_t>(sizeof buffer)
                                : 0;
      const auto want = static_cast<std::size_t>(stop - start);
      std::size_t got = 0;
      while (got < want) {
        const ::ssize_t n =
            ::pread(file_.fd, buffer + got, want - got, static_cast<::off_t>(start + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(errno, "read the last line of");
        if (n == 0) fail(EIO, "read the last line of");  // shrunk under our lock: never
        got += static_cast<std::size_t>(n);
      }
      for (std::size_t i = want; i > 0; --i) {
        if (buffer[i - 1] == '\n') {
          keep = start + static_cast<::off_t>(i);
          found = true;
          break;
        }
      }
      stop = start;
    }
    if (keep == end) return;  // ends with a complete line
    if (::ftruncate(file_.fd, keep) != 0) fail(errno, "cut the torn last line of");
    if (const int error = sync(file_.fd)) fail(error, "fsync");
  }

  void sync_directory() const {
    std::filesystem::path directory = path_.parent_path();
    if (directory.empty()) directory = ".";
    const unique_fd dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.fd < 0) fail(errno, "open the directory of");
    // EINVAL: this file system cannot sync directories; nothing more we can do there.
    if (const int error = sync(dir.fd); error != 0 && error != EINVAL) {
      fail(error, "fsync the directory of");
    }
  }

  int write_all(std::string_view bytes) const noexcept {
    while (!bytes.empty()) {
      const ::ssize_t written = ::write(file_.fd, bytes.data(), bytes.size());
      if (written < 0 && errno == EINTR) continue;
      if (written < 0) return errno;
      if (written == 0) return EIO;  // never happens for a regular file; never loop forever
      bytes.remove_prefix(static_cast<std::size_t>(written));  // a short write: go on
    }
    return 0;
  }

  static int sync(int fd) noexcept {
    while (::fsync(fd) != 0) {
      if (errno != EINTR) return errno;
    }
    return 0;
  }

  [[noreturn]] void undo_and_fail(::off_t size_before, int error, const char* operation) {
    // After a failed fsync the written bytes may or may not reach the disk: remove them, so the
    // retry that S-5.8 makes leaves exactly one copy of the line.
    if (::ftruncate(file_.fd, size_before) != 0) cut_back_to_ = size_before;
    fail(error, operation);
  }

  [[noreturn]] void fail(int error, const char* operation, const std::string& reason = {}) const {
    std::string message = std::string("sluice: cannot ") + operation + " '" + path_.string() + "'";
    if (!reason.empty()) message.append(": ").append(reason);
    throw std::system_error(error, std::generic_category(), message);
  }

  std::filesystem::path path_;
  unique_fd file_;
  std::optional<::off_t> cut_back_to_;
};

}  // namespace detail

SLUICE_END_NAMESPACE
