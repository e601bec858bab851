// Crash-safety test of sluice::sqlite::queue under a started mapping (S-9): fills a FIFO queue,
// runs tests/crash/queue_crash_child.cpp, kills it with SIGKILL at random moments (default 20
// times; env SLUICE_CRASH_SOAK=N for more, SLUICE_CRASH_SEED=S to replay), then lets a last child
// drain the queue. Checked from the children's log and the file:
//   - no message lost: every message sent is handed over at least once, and the queue ends empty;
//   - in-flight messages reappear: messages a killed child held come back (receive count >= 2)
//     after their visibility timeout;
//   - no FIFO group reordered on first delivery: per group, the first time each message is
//     handed over is in send order, without a gap;
//   - a child that is not killed exits with status 0.
// Prints "N passed, M failed"; exit status 0 when nothing failed.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sluice/sqlite/queue.hpp"
#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

namespace {

int passed = 0, failed = 0;
void check(bool ok, const std::string& what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::cerr << "FAILED: " << what << "\n";
  }
}

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::stoull(v) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: queue_crash_test <queue_crash_child>\n";
    return 2;
  }
  const std::string child = argv[1];
  const std::uint64_t kills = env_number("SLUICE_CRASH_SOAK", 20);
  const std::uint64_t seed = env_number("SLUICE_CRASH_SEED", std::random_device{}());
  std::cout << "seed " << seed << ", kills " << kills << std::endl;
  std::mt19937_64 rng(seed);
  sluice_test::temp_dir dir;
  const auto file = dir.path() / "queue.db";
  const auto log = dir.path() / "log.txt";
  constexpr int groups = 16, per_group = 150;

  sluice::queue_options o;
  o.name = "jobs.fifo";
  o.fifo = true;
  o.visibility_timeout = std::chrono::milliseconds(300);
  {
    sluice::sqlite::queue q(file, o);
    for (int i = 0; i < per_group; ++i) {
      std::vector<sluice::send_entry> batch;
      for (int g = 0; g < groups; ++g) {
        batch.push_back({std::to_string(g) + " " + std::to_string(i),
                         sluice::send_options::in_group(
                             std::to_string(g), std::to_string(g) + "/" + std::to_string(i))});
        if (batch.size() == 8) {
          q.send_batch(std::move(batch));
          batch.clear();
        }
      }
      if (!batch.empty()) q.send_batch(std::move(batch));
    }
  }

  std::uniform_int_distribution<int> pause_ms(20, 250);
  for (std::uint64_t k = 0; k < kills; ++k) {
    const pid_t pid = sluice_test::spawn({child, file.string(), log.string()},
                                         dir.path() / "child.out", dir.path() / "child.err");
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
    }
    check(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
          "child " + std::to_string(k) + " was killed, not ended on its own: " +
              sluice_test::read_file(dir.path() / "child.err"));
  }
  const auto last = sluice_test::run({child, file.string(), log.string(), "--drain"}, dir.path());
  check(last.exit_code == 0,
        "the draining child exits 0 (got " + std::to_string(last.exit_code) + "): " + last.err);

  std::map<int, std::vector<int>> first;  // group -> indexes in order of first delivery
  std::map<std::pair<int, int>, int> deliveries;
  std::uint64_t redelivered = 0;
  std::ifstream in(log);
  int g = 0, i = 0;
  unsigned count = 0;
  while (in >> g >> i >> count) {
    if (deliveries[{g, i}]++ == 0) first[g].push_back(i);
    if (count >= 2) ++redelivered;
  }
  std::size_t missing = 0;
  for (int gg = 0; gg < groups; ++gg)
    for (int ii = 0; ii < per_group; ++ii)
      if (deliveries.count({gg, ii}) == 0) ++missing;
  check(missing == 0, std::to_string(missing) + " message(s) lost");
  bool ordered = true;
  for (auto& [group, seq] : first)
    for (std::size_t k = 0; k < seq.size(); ++k)
      if (seq[k] != static_cast<int>(k)) {
        ordered = false;
        std::cerr << "group " << group << ": first delivery " << k << " is index " << seq[k]
                  << "\n";
        break;
      }
  check(ordered, "FIFO groups handed over in send order on first delivery");
  check(redelivered > 0, "in-flight messages of killed children reappeared (receive count >= 2)");
  {
    sluice::sqlite::queue q(file, o);
    check(q.empty(), "the queue is empty at the end");
  }
  std::cout << "redelivered " << redelivered << ", deliveries " << deliveries.size() << "\n"
            << passed << " passed, " << failed << " failed" << std::endl;
  return failed == 0 ? 0 : 1;
}
