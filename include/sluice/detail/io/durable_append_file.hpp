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

SLUICE_BEGIN_NAMESPACE

namespace detail {

/// Owns a file descriptor; a member so that a constructor that throws half-way still closes it.
struct unique_fd {
  int fd = -1;
  unique_fd() = default;
  explicit unique_fd(int f) noexcept : fd(f) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  // close() is not retried on EINTR: on Linux the descriptor is released either way.
  ~unique_fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// Not thread-safe: the owner serializes appends. One object per file: the constructor takes an
/// exclusive flock(), because cutting a failed append back off is only safe for the sole writer.
class durable_append_file {
 public:
  explicit durable_append_file(std::filesystem::path path) : path_(std::move(path)) {
    const bool created = open_or_create();
    struct stat info {};
    if (::fstat(file_.fd, &info) != 0) fail(errno, "stat");
    // fsync on a pipe or device fails, so every delivery would fail: refuse it now, clearly.
    if (!S_ISREG(info.st_mode)) fail(EINVAL, "append to (not a regular file)");
    if (::flock(file_.fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
      fail(errno, "lock (another writer has it open)");
    }  // other flock errors (ENOLCK, EOPNOTSUPP on some network file systems) are not fatal
    if (created) {
      // The umask may have cleared bits of 0600; make it exactly owner read/write. Then make
      // the directory entry durable: an fsync'ed file that no directory names is lost too.
      if (::fchmod(file_.fd, S_IRUSR | S_IWUSR) != 0) fail(errno, "chmod");
      sync_directory();
    } else if (info.st_size > 0 && !ends_with_newline(info)) {
      // A crash in the middle of an append left a torn last line. End it, so the next record
      // starts on a line of its own; that line's delivery was never acknowledged, so the engine
      // delivers it again.
      append("\n");
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
  bool open_or_create() {
    // O_EXCL tells us whether we created the file: only then do we set its mode and sync its
    // directory. An existing file keeps its mode. The loop covers the file being removed
    // between the two opens.
    for (int attempt = 0; attempt < 100; ++attempt) {
      file_.fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (file_.fd >= 0) return true;
      if (errno == EINTR) continue;
      if (errno != EEXIST) fail(errno, "create");
      file_.fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      if (file_.fd >= 0) return false;
      if (errno != ENOENT && errno != EINTR) fail(errno, "open");
    }
    fail(errno, "open");
  }

  bool ends_with_newline(const struct stat& info) const {
    // The append descriptor is write-only; peek through a second one, if it is the same file.
    const unique_fd reader(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat same {};
    char last = '\n';
    if (reader.fd < 0 || ::fstat(reader.fd, &same) != 0 || same.st_ino != info.st_ino ||
        same.st_dev != info.st_dev) {
      return true;  // cannot tell: leave the file as it is
    }
    return ::pread(reader.fd, &last, 1, info.st_size - 1) != 1 || last == '\n';
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

  [[noreturn]] void fail(int error, const char* operation) const {
    throw std::system_error(
        error, std::generic_category(),
        std::string("sluice: cannot ") + operation + " '" + path_.string() + "'");
  }

  std::filesystem::path path_;
  unique_fd file_;
  std::optional<::off_t> cut_back_to_;
};

}  // namespace detail

SLUICE_END_NAMESPACE
