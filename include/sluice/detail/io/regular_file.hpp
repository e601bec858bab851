// sluice/detail/io/regular_file.hpp: opens (or creates, with an exact mode) the files sluice
// writes, refusing anything but a regular file. A FIFO named as a dead-letter file or database
// would block open() forever; here it is refused at once, and every failure keeps the real errno (a
// file in a read-only directory says "Permission denied", not what a later fallback happened to
// see). POSIX.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>

#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"

SLUICE_BEGIN_NAMESPACE

namespace detail {

/// Owns a file descriptor; a member so that a constructor that throws half-way still closes it.
struct unique_fd {
  int fd = -1;
  unique_fd() = default;
  explicit unique_fd(int f) noexcept : fd(f) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  unique_fd(unique_fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  unique_fd& operator=(unique_fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  // close() is not retried on EINTR: on Linux the descriptor is released either way.
  ~unique_fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// What kind of file a mode describes, for messages ("a FIFO").
inline const char* file_kind(mode_t mode) noexcept {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

struct opened_file {
  unique_fd file;
  bool created = false;
  /// On failure: errno (EISDIR for a directory, EINVAL for other non-regular files) and what
  /// was being done ("create", "open", "stat"); error == 0 on success.
  int error = 0;
  std::string operation;
  std::string reason;  // for a non-regular file: "it is a FIFO, not a regular file"
};

/// The mode of a file sluice creates, from a `file_mode` option: permission bits only, and the
/// owner must be able to read and write it (sluice reopens its own files). Throws
/// sluice::configuration_error naming `parameter` otherwise.
inline mode_t checked_file_mode(std::string_view parameter, std::filesystem::perms mode) {
  using std::filesystem::perms;
  const auto bits = static_cast<unsigned>(mode);
  if ((bits & ~0777u) != 0 || (mode & perms::owner_read) == perms::none ||
      (mode & perms::owner_write) == perms::none) {
    char text[16];
    std::snprintf(text, sizeof text, "0%o", bits);
    reject(parameter, text, "permission bits (0..0777) including owner read and write (0600)");
  }
  return static_cast<mode_t>(bits);
}

/// Opens `path` with `access` (O_RDONLY, O_RDWR, O_WRONLY, optionally | O_APPEND). When it does
/// not exist and `create`, creates it with exactly `mode` (the umask does not apply): an existing
/// file keeps its mode. Never blocks: a path that is not a regular file is refused before it is
/// opened (and checked again on the descriptor). Never throws; see opened_file::error.
inline opened_file open_regular_file(const std::filesystem::path& path, int access, bool create,
                                     mode_t mode) {
  opened_file out;
  auto failed = [&](int error, const char* operation) {
    out.file = unique_fd();
    out.created = false;
    out.error = error;
    out.operation = operation;
    return std::move(out);
  };
  auto not_regular = [&](mode_t m) {
    out.operation = "use";
    out.reason = std::string("it is ") + file_kind(m) + ", not a regular file";
    out.file = unique_fd();
    out.error = S_ISDIR(m) ? EISDIR : EINVAL;
    return std::move(out);
  };
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode)) return not_regular(info.st_mode);
  // O_NONBLOCK: should a FIFO appear between stat and open, open must not wait for a peer.
  const int flags = access | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
  for (int attempt = 0;; ++attempt) {
    if (attempt == 100) return failed(errno, "open");
    if (create) {
      out.file = unique_fd(::open(path.c_str(), flags | O_CREAT | O_EXCL, mode));
      if (out.file.fd >= 0) {
        out.created = true;
        break;
      }
      if (errno == EINTR) continue;
      if (errno != EEXIST) return failed(errno, "create");
    }
    out.file = unique_fd(::open(path.c_str(), flags));
    if (out.file.fd >= 0) break;
    if (errno == EINTR || (errno == ENOENT && create)) continue;  // removed meanwhile: again
    return failed(errno, "open");
  }
  if (::fstat(out.file.fd, &info) != 0) return failed(errno, "stat");
  if (!S_ISREG(info.st_mode)) return not_regular(info.st_mode);
  // The umask may have cleared bits of `mode`: make it exact.
  if (out.created && ::fchmod(out.file.fd, mode) != 0) return failed(errno, "chmod");
  const int status = ::fcntl(out.file.fd, F_GETFL);
  if (status < 0 || ::fcntl(out.file.fd, F_SETFL, status & ~O_NONBLOCK) != 0) {
    return failed(errno, "configure");
  }
  return out;
}

}  // namespace detail

SLUICE_END_NAMESPACE
