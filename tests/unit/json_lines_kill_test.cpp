// kill -9 in the middle of a json_lines_destination write (S-5.8): a child process delivers
// multi-megabyte dead letters and is killed with SIGKILL while a line is half written; the next
// writer opens the file again. Whatever the kills tore, the file must hold whole lines only: every
// line one complete on-failure record, the file ending with a newline.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "sluice/destinations/json_lines.hpp"
#include "support/temp_dir.hpp"

namespace {

using text_record = sluice::record<std::string>;
using namespace std::chrono_literals;

constexpr std::size_t payload_bytes = 1u << 20;  // a 1 MB line: written by many page copies

sluice::on_failure_record<text_record> dead_letter(std::uint64_t n) {
  sluice::on_failure_record<text_record> rec;
  rec.condition = sluice::failure_condition::retry_attempts_exhausted;
  rec.last_attempt = sluice::attempt_outcome::raised;
  rec.error_type = "std::runtime_error";
  rec.stream_name = "big";
  rec.start_sequence_number = rec.end_sequence_number = n;
  rec.batch_size = 1;
  rec.records = {{"k", n, sluice::time_point{}, std::string(payload_bytes, 'a' + n % 26)}};
  return rec;
}

// The child: reopens the file (cutting what an earlier kill tore) and delivers until killed.
[[noreturn]] void deliver_forever(const std::filesystem::path& file, std::uint64_t first) {
  try {
    sluice::json_lines_destination<text_record> d(file);
    for (std::uint64_t n = first;; ++n) d.deliver(dead_letter(n));
  } catch (...) {
    _exit(3);
  }
}

bool ends_mid_line(int fd) {
  struct stat info {};
  char last = '\n';
  return ::fstat(fd, &info) == 0 && info.st_size > 0 &&
         ::pread(fd, &last, 1, info.st_size - 1) == 1 && last != '\n';
}

TEST(JsonLinesKill, KillsMidWriteNeverLeaveATornLine) {
  sluice_test::temp_dir dir;
  const auto file = dir / "dead-letters.jsonl";
  { sluice::json_lines_destination<text_record> create(file); }
  const int watch = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(watch, 0);
  std::mt19937 random(20261128);
  int torn = 0;
  int rounds = 0;
  constexpr int kills = 16;
  // The whole test's hang guard. Generous: on a loaded machine the child may wait for a core, and
  // a round that ends before it tore a line proves nothing (the check below needs two tears).
  const auto give_up = std::chrono::steady_clock::now() + 120s;
  for (int round = 0; round < kills && std::chrono::steady_clock::now() < give_up; ++round) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) deliver_forever(file, static_cast<std::uint64_t>(round) * 1000);
    // Kill while a line is half written (the file does not end with '\n'), after letting a
    // random number of writes pass; a few rounds kill between writes instead.
    const bool mid_write = random() % 5 != 0;
    int mid_writes_seen = 0;
    const int let_pass = static_cast<int>(random() % 3);
    const auto round_limit = std::chrono::steady_clock::now() + 6s;
    bool was_mid = false;
    while (std::chrono::steady_clock::now() < round_limit) {
      const bool mid = ends_mid_line(watch);
      if (mid && !was_mid) ++mid_writes_seen;
      was_mid = mid;
      if (mid_write ? (mid && mid_writes_seen > let_pass) : (!mid && mid_writes_seen > let_pass))
        break;
    }
    ::kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child failed on its own, status " << status;
    if (ends_mid_line(watch)) ++torn;
    ++rounds;
  }
  ::close(watch);
  std::cout << "kills " << rounds << ", torn " << torn << "\n";
  // The kills must really have torn lines, or this test proves nothing.
  ASSERT_GE(torn, 2) << "too few torn writes to test anything";

  { sluice::json_lines_destination<text_record> reopen(file); }  // the last tear is cut here
  std::ifstream in(file, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(content.empty());
  EXPECT_EQ(content.back(), '\n');
  std::size_t lines = 0;
  const std::string head = R"({"requestContext":{"requestId":)";
  for (std::size_t start = 0; start < content.size();) {
    const std::size_t end = content.find('\n', start);
    ASSERT_NE(end, std::string::npos);
    const std::string_view line(content.data() + start, end - start);
    ++lines;
    // A whole record: starts as one, ends as one, and holds exactly one (no torn prefix glued
    // to it) with its full payload.
    EXPECT_EQ(line.substr(0, head.size()), head) << "line " << lines;
    EXPECT_EQ(line.substr(line.size() - 3), R"(}]})") << "line " << lines;
    EXPECT_EQ(line.find(head, 1), std::string_view::npos) << "line " << lines;
    EXPECT_GT(line.size(), payload_bytes) << "line " << lines;
    start = end + 1;
  }
  EXPECT_GE(lines, 1u);
}

}  // namespace
