// sluice/exporters/process.hpp: the process_* series a Prometheus client library exports by
// convention (CPU seconds, resident and virtual memory, open and maximum file descriptors, start
// time, threads), read from Linux's /proc/self. Elsewhere, or when /proc is not mounted, the
// series that cannot be read are left out.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE

/// What process metrics could be read (empty fields could not).
struct process_stats {
  std::optional<double> cpu_seconds;
  std::optional<std::uint64_t> resident_bytes;
  std::optional<std::uint64_t> virtual_bytes;
  std::optional<double> start_time_seconds;  // Unix time
  std::optional<std::uint64_t> open_fds;
  std::optional<std::uint64_t> max_fds;
  std::optional<std::uint64_t> threads;
};

namespace detail {
inline std::string read_small_file(const char* path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
}  // namespace detail

/// Reads this process's statistics from /proc/self.
inline process_stats read_process_stats() {
  process_stats st;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  const long page = ::sysconf(_SC_PAGESIZE);
  // /proc/self/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
  const std::string stat = detail::read_small_file("/proc/self/stat");
  const auto paren = stat.rfind(')');
  if (paren != std::string::npos && ticks > 0 && page > 0) {
    std::istringstream fields(stat.substr(paren + 2));
    std::vector<std::string> f{std::istream_iterator<std::string>(fields),
                               std::istream_iterator<std::string>()};
    // f[0] is field 3 (state): field n is f[n - 3].
    if (f.size() >= 22) {
      const auto t = static_cast<double>(ticks);
      st.cpu_seconds = (std::stod(f[14 - 3]) + std::stod(f[15 - 3])) / t;
      st.threads = std::stoull(f[20 - 3]);
      st.virtual_bytes = std::stoull(f[23 - 3]);
      st.resident_bytes = std::stoull(f[24 - 3]) * static_cast<std::uint64_t>(page);
      std::istringstream proc_stat(detail::read_small_file("/proc/stat"));
      for (std::string line; std::getline(proc_stat, line);) {
        if (line.rfind("btime ", 0) == 0) {
          st.start_time_seconds = std::stod(line.substr(6)) + std::stod(f[22 - 3]) / t;
          break;
        }
      }
    }
  }
  std::error_code ec;
  std::uint64_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec))
    ++fds;
  if (!ec && fds > 0) st.open_fds = fds - 1;  // not counting the iterator's own descriptor
  std::istringstream limits(detail::read_small_file("/proc/self/limits"));
  for (std::string line; std::getline(limits, line);) {
    if (line.rfind("Max open files", 0) == 0) {
      std::istringstream values(line.substr(14));
      std::string soft;
      values >> soft;
      if (!soft.empty() && soft != "unlimited") st.max_fds = std::stoull(soft);
      break;
    }
  }
  return st;
}

/// Appends the process_* families (Prometheus text exposition) for `st`.
inline void append_process_metrics(std::string& out, const process_stats& st) {
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    if (!value) return;
    std::ostringstream text;
    text.precision(15);
    text << *value;
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
    out.append(name).append(" ").append(text.str()).append("\n");
  };
  family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
         st.cpu_seconds);
  family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
         st.resident_bytes);
  family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
         st.virtual_bytes);
  family("process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.", st.start_time_seconds);
  family("process_open_fds", "gauge", "Number of open file descriptors.", st.open_fds);
  family("process_max_fds", "gauge", "Maximum number of open file descriptors.", st.max_fds);
  family("process_threads", "gauge", "Number of OS threads in the process.", st.threads);
}

SLUICE_END_NAMESPACE
