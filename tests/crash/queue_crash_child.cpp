// The child of queue_crash_test: a started mapping from a FIFO sluice::sqlite::queue that logs
// every message it is handed ("<group> <index> <receive count>" per line, appended with one
// write(2), so a SIGKILL never loses a logged line) and succeeds, so the message is deleted.
//   queue_crash_child <file> <log>            run until killed
//   queue_crash_child <file> <log> --drain    run until the queue is empty, exit 0
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "sluice/limits.hpp"
#include "sluice/sluice.hpp"
#include "sluice/sqlite/queue.hpp"

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const bool drain = argc > 3 && std::string(argv[3]) == "--drain";
  const int log = ::open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (log < 0) return 3;
  sluice::queue_options o;
  o.name = "jobs.fifo";
  o.fifo = true;
  o.visibility_timeout = std::chrono::milliseconds(300);
  sluice::sqlite::queue q(argv[1], o,
                          sluice::sqlite::queue_file_options{std::chrono::milliseconds(20), {}});
  auto running = sluice::start(
      sluice::from(q) | sluice::batching(sluice::batch_size(10)) | sluice::maximum_concurrency(2) |
      sluice::invoke([&](const sluice::batch<sluice::queue_message>& b) {
        for (const auto& m : b) {
          // body "<group> <index>"
          const std::string line =
              m.body() + " " + std::to_string(m.approximate_receive_count) + "\n";
          if (::write(log, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
            throw std::runtime_error("log write failed");
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
      }));
  if (drain) {
    if (!running.wait_until_caught_up(std::chrono::seconds(120))) return 4;
    running.stop();
    return 0;
  }
  while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
}
