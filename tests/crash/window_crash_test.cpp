// Crash test of tumbling windows (S-7) with the SQLite checkpoint store: a process is killed
// (SIGKILL) in the middle of a window, after the window's state was stored with the checkpoint;
// the restarted mapping resumes the window from that state and makes its final invocation
// exactly once, with the state carried. The child is window_child.cpp.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <string>
#include <thread>

#include "sluice/sqlite/checkpoint_store.hpp"
#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

#ifndef SLUICE_WINDOW_CHILD
#error "SLUICE_WINDOW_CHILD: the path of the window_child program"
#endif

namespace {

using namespace std::chrono_literals;

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(WindowCrash, KilledMidWindowResumesTheStateAndFinalizesOnce) {
  sluice_test::temp_dir dir;
  const std::string child = SLUICE_WINDOW_CHILD;
  ASSERT_EQ(sluice_test::run({child, dir.path().string(), "produce"}, dir.path()).exit_code, 0);

  const pid_t pid =
      sluice_test::spawn({child, dir.path().string(), "die"}, dir / "die.out", dir / "die.err");
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (sluice_test::read_file(dir / "journal").find("ready") == std::string::npos &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(5ms);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << sluice_test::read_file(dir / "die.err");
  const std::string before = sluice_test::read_file(dir / "journal");
  ASSERT_EQ(before, "[1]<>\n[2]<1>\n[3]<3>\nready\n");

  {  // What the killed process left: the checkpoint and the open window's state, together.
    sluice::sqlite::checkpoint_store store(dir / "app.db");
    EXPECT_EQ(store.load("windows", 0), 2u);
    const auto kept = store.load_window("windows", 0);
    ASSERT_TRUE(kept);
    EXPECT_EQ(kept->state, "3");
    EXPECT_EQ(kept->end - kept->start, 60s);
  }

  const auto resumed = sluice_test::run({child, dir.path().string(), "resume"}, dir.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const std::string journal = sluice_test::read_file(dir / "journal");
  EXPECT_EQ(journal.substr(before.size()), "[3]<3>\n[4]<6>\nfinal w0<10>\n[5]<>\nfinal w1<5>\n");
  EXPECT_EQ(count(journal, "final w0"), 1u);
  sluice::sqlite::checkpoint_store store(dir / "app.db");
  EXPECT_EQ(store.load("windows", 0), 5u);
  EXPECT_FALSE(store.load_window("windows", 0)) << "dropped after the final invocation";
}

}  // namespace
