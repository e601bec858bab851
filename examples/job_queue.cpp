// job_queue: a durable job queue (sluice::sqlite::queue) drained by a mapping, the way Lambda
// drains an SQS queue. One job is poison: its handler fails on it, the queue hands it over again
// after each visibility timeout, and after 3 receives its redrive policy moves it to the
// dead-letter queue while the other jobs are done. Then the handler is fixed, the dead-letter
// queue is redriven to its source, and the job goes through.
//
//   job_queue [file]   (default: a fresh file under $TMPDIR)
#include <unistd.h>
#include <sluice/sluice.hpp>
#include <sluice/sqlite/queue.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  fs::path file = argc > 1 ? fs::path(argv[1])
                           : fs::temp_directory_path() /
                                 ("sluice-job-queue-" + std::to_string(::getpid()) + ".db");
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(file.string() + suffix);

  sluice::queue_options jobs_options;
  jobs_options.name = "jobs";
  jobs_options.visibility_timeout = std::chrono::milliseconds(200);  // short, for the demo
  sluice::queue_options dlq_options;
  dlq_options.name = "jobs-dlq";
  sluice::sqlite::queue jobs(file, jobs_options);
  sluice::sqlite::queue dead_letters(file, dlq_options);
  jobs.set_redrive_policy(dead_letters, 3);  // maxReceiveCount 3

  for (int i = 1; i <= 20; ++i)
    jobs.send("resize image-" + std::to_string(i) + (i == 13 ? " (corrupt)" : ""));

  std::set<std::string> done;
  bool fixed = false;  // version 1 of the handler cannot read corrupt images
  auto handler = [&](const sluice::batch<sluice::queue_message>& batch) {
    sluice::queue_item_failures failures;
    for (const auto& job : batch) {
      if (!fixed && job.body().find("corrupt") != std::string::npos) {
        std::cout << "  cannot process " << job.body() << " (receive "
                  << job.approximate_receive_count << ")\n";
        failures.add(job.message_id);  // only this job returns; the others are deleted
        continue;
      }
      done.insert(job.body());
    }
    return failures;
  };

  // clang-format off
  std::cout << "draining jobs with handler v1\n";
  sluice::run(sluice::from(jobs)
            | sluice::batching(sluice::batch_size(10))
            | sluice::report_batch_item_failures
            | sluice::invoke(handler));
  // clang-format on
  const auto letters = dead_letters.peek_all();
  std::cout << done.size() << " jobs done; dead-letter queue holds " << letters.size() << ":";
  for (const auto& m : letters) std::cout << " " << m.body() << " [" << m.message_id << "]";
  std::cout << "\n";

  fixed = true;  // version 2 of the handler repairs corrupt images
  std::cout << "redriving " << dead_letters.redrive() << " job(s) to " << jobs.name()
            << " and draining with handler v2\n";
  sluice::run(sluice::from(jobs) | sluice::batching(sluice::batch_size(10)) |
              sluice::report_batch_item_failures | sluice::invoke(handler));
  std::cout << done.size() << " jobs done; dead-letter queue holds " << dead_letters.size()
            << ", jobs queue holds " << jobs.size() << "\n";

  const bool ok = letters.size() == 1 && letters[0].body() == "resize image-13 (corrupt)" &&
                  done.size() == 20 && dead_letters.empty() && jobs.empty();
  if (argc <= 1)
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(file.string() + suffix);
  std::cout << (ok ? "ok" : "UNEXPECTED") << "\n";
  return ok ? 0 : 1;
}
