// Queue traces Q-01..Q-12 (docs/semantics.md, S-9): exact sequences of handler calls of a mapping
// from a sluice::memory_queue, each with sluice::run and with sluice::start, on a manual clock in
// auto-advance mode (visibility timeouts, delays, windows and retention play in virtual time).
// A trace is "@t [a b]": the call's time in seconds since the start and the bodies it got.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/limits.hpp"
#include "sluice/sluice.hpp"
#include "sluice/sources/memory_queue.hpp"

using namespace std::chrono_literals;
using sluice::queue_message;
using queue = sluice::memory_queue<sluice::manual_clock>;
using qbatch = sluice::batch<queue_message>;

namespace {

enum class mode { run, start };

struct seen {
  double at = 0;
  std::vector<std::string> bodies;
  std::vector<std::uint32_t> counts;
  std::vector<std::string> ids;
};

class QueueTraces : public ::testing::TestWithParam<mode> {
 protected:
  sluice::manual_clock clock{sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance};
  sluice::time_point t0 = clock.now();
  std::mutex mutex;
  std::vector<seen> calls;

  void record(const qbatch& b) {
    seen s;
    s.at = std::chrono::duration<double>(clock.now() - t0).count();
    for (const auto& m : b) {
      s.bodies.push_back(m.body());
      s.counts.push_back(m.approximate_receive_count);
      s.ids.push_back(m.message_id);
    }
    std::lock_guard lock(mutex);
    calls.push_back(std::move(s));
  }

  std::string trace() {
    std::lock_guard lock(mutex);
    std::ostringstream out;
    for (std::size_t i = 0; i < calls.size(); ++i) {
      if (i) out << ' ';
      out << '@' << calls[i].at << " [";
      for (std::size_t j = 0; j < calls[i].bodies.size(); ++j)
        out << (j ? " " : "") << calls[i].bodies[j];
      out << ']';
    }
    return out.str();
  }

  template <class Mapping>
  sluice::metrics_snapshot drive(Mapping&& m) {
    if (GetParam() == mode::run) return sluice::run(std::move(m), sluice::with_clock(clock));
    auto running = sluice::start(std::move(m), sluice::with_clock(clock), sluice::workers(1));
    EXPECT_TRUE(running.wait_until_caught_up(60s)) << "not caught up; trace so far: " << trace();
    auto snapshot = running.metrics();
    running.stop();
    return snapshot;
  }

  static sluice::queue_options standard(sluice::queue_options o = {}) { return o; }
  static sluice::queue_options fifo() {
    sluice::queue_options o;
    o.fifo = true;
    o.content_based_deduplication = true;
    return o;
  }
};

// Q-01 (S-9.5, S-9.11): a message that fails returns after the visibility timeout, its receive
// count one higher each time.
TEST_P(QueueTraces, Q01_visibility_and_receive_counts) {
  queue q(standard(), clock);
  q.send("m1");
  int n = 0;
  auto s = drive(sluice::from(q) | sluice::invoke([&](const qbatch& b) {
                   record(b);
                   if (++n < 3) throw std::runtime_error("not yet");
                 }));
  EXPECT_EQ(trace(), "@0 [m1] @30 [m1] @60 [m1]");
  EXPECT_EQ(calls[0].counts[0], 1u);
  EXPECT_EQ(calls[1].counts[0], 2u);
  EXPECT_EQ(calls[2].counts[0], 3u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(s.total.invocations, 3u);
  EXPECT_EQ(s.total.function_errors, 2u);
  EXPECT_EQ(s.total.succeeded_event_count, 1u);
}

// Q-02 (S-9.6): after max_receive_count receives the message moves to the dead-letter queue
// (same id, count 0); redrive() moves it back and a fixed handler deletes it.
TEST_P(QueueTraces, Q02_redrive_to_dead_letter_queue_and_back) {
  queue dlq(standard(), clock);
  queue q(standard(), clock);
  q.set_redrive_policy(dlq, 3);
  const std::string id = q.send("m1");
  drive(sluice::from(q) | sluice::invoke([&](const qbatch& b) {
          record(b);
          throw std::runtime_error("poison");
        }));
  EXPECT_EQ(trace(), "@0 [m1] @30 [m1] @60 [m1]");
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.stats().moved_to_dead_letter_queue, 1u);
  auto letters = dlq.peek_all();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].message_id, id);
  EXPECT_EQ(letters[0].approximate_receive_count, 0u);
  EXPECT_EQ(letters[0].body(), "m1");
  EXPECT_EQ(std::chrono::duration<double>(clock.now() - t0).count(), 90);

  EXPECT_EQ(dlq.redrive(), 1u);
  EXPECT_TRUE(dlq.empty());
  calls.clear();
  drive(sluice::from(q) | sluice::invoke([&](const qbatch& b) { record(b); }));
  EXPECT_EQ(trace(), "@90 [m1]");
  EXPECT_EQ(calls[0].ids[0], id);
  EXPECT_EQ(calls[0].counts[0], 1u);
  EXPECT_TRUE(q.empty());
}

// Q-03 (S-9.11): the reported messages return, the others are deleted.
TEST_P(QueueTraces, Q03_partial_batch_response) {
  queue q(standard(), clock);
  for (int i = 1; i <= 5; ++i) q.send("m" + std::to_string(i));
  int n = 0;
  auto s = drive(sluice::from(q) | sluice::report_batch_item_failures |
                 sluice::invoke([&](const qbatch& b) {
                   record(b);
                   sluice::queue_item_failures f;
                   if (++n == 1) {
                     f.add(b[1].message_id);
                     f.add(b[3].message_id);
                   }
                   return f;
                 }));
  EXPECT_EQ(trace(), "@0 [m1 m2 m3 m4 m5] @30 [m2 m4]");
  EXPECT_EQ(calls[1].counts, (std::vector<std::uint32_t>{2, 2}));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(s.total.failed_invoke_event_count, 2u);
  EXPECT_EQ(s.total.succeeded_event_count, 5u);
}

// Q-04 (S-9.11): an id not in the batch, or an empty id, fails the whole batch; without
// report_batch_item_failures a report is ignored.
TEST_P(QueueTraces, Q04_malformed_reports_fail_the_whole_batch) {
  for (const std::string bad : {"nope", ""}) {
    calls.clear();
    queue q(standard(), clock);
    t0 = clock.now();
    q.send("m1");
    q.send("m2");
    int n = 0;
    auto s = drive(
        sluice::from(q) | sluice::report_batch_item_failures | sluice::invoke([&](const qbatch& b) {
          record(b);
          return ++n == 1 ? sluice::queue_item_failures{bad} : sluice::queue_item_failures{};
        }));
    EXPECT_EQ(trace(), "@0 [m1 m2] @30 [m1 m2]") << "id \"" << bad << "\"";
    EXPECT_EQ(s.total.function_errors, 1u);
    EXPECT_TRUE(q.empty());
  }
  calls.clear();
  queue q(standard(), clock);
  t0 = clock.now();
  q.send("m1");
  q.send("m2");
  drive(sluice::from(q) | sluice::invoke([&](const qbatch& b) {
          record(b);
          return sluice::queue_item_failures{b[0].message_id};
        }));
  EXPECT_EQ(trace(), "@0 [m1 m2]");
  EXPECT_TRUE(q.empty());
}

// Q-05 (S-9.7, S-9.11): FIFO: after a group's first reported failure, its later messages of the
// batch return too; other groups are deleted.
TEST_P(QueueTraces, Q05_fifo_groups_and_reports) {
  queue q(fifo(), clock);
  for (const char* m : {"A1", "A2", "B1", "A3", "B2"})
    q.send(m, sluice::send_options::in_group(std::string(1, m[0])));
  int n = 0;
  drive(sluice::from(q) | sluice::report_batch_item_failures | sluice::invoke([&](const qbatch& b) {
          record(b);
          sluice::queue_item_failures f;
          if (++n == 1) f.add(b[1].message_id);  // A2
          return f;
        }));
  EXPECT_EQ(trace(), "@0 [A1 A2 B1 A3 B2] @30 [A2 A3]");
  EXPECT_TRUE(q.empty());
}

// Q-06 (S-9.7): one batch per group in flight; a group's messages in order.
TEST_P(QueueTraces, Q06_fifo_one_batch_per_group) {
  queue q(fifo(), clock);
  for (const char* m : {"A1", "A2", "B1"})
    q.send(m, sluice::send_options::in_group(std::string(1, m[0])));
  drive(sluice::from(q) | sluice::batching(sluice::batch_size(1)) |
        sluice::invoke([&](const qbatch& b) { record(b); }));
  EXPECT_EQ(trace(), "@0 [A1] @0 [A2] @0 [B1]");
}

// Q-07 (S-9.2): a delayed message is invisible until its delay has passed.
TEST_P(QueueTraces, Q07_delay) {
  queue q(standard(), clock);
  q.send("m1", sluice::send_options::delayed(10s));
  q.send("m2");
  drive(sluice::from(q) | sluice::invoke([&](const qbatch& b) { record(b); }));
  EXPECT_EQ(trace(), "@0 [m2] @10 [m1]");
}

// Q-08 (S-9.4): retention deletes a message that keeps failing.
TEST_P(QueueTraces, Q08_retention) {
  sluice::queue_options o;
  o.message_retention_period = 60s;
  queue q(o, clock);
  q.send("m1");
  drive(sluice::from(q) | sluice::invoke([&](const qbatch& b) {
          record(b);
          throw std::runtime_error("always");
        }));
  EXPECT_EQ(trace(), "@0 [m1] @30 [m1]");
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.stats().expired, 1u);
}

// Q-10 (S-9.10): a message no filter keeps is deleted without a call.
TEST_P(QueueTraces, Q10_filters_delete_unmatched_messages) {
  queue q(standard(), clock);
  q.send("keep");
  q.send("drop");
  auto s = drive(sluice::from(q) |
                 sluice::filter([](const queue_message& m) { return m.body() == "keep"; }) |
                 sluice::invoke([&](const qbatch& b) { record(b); }));
  EXPECT_EQ(trace(), "@0 [keep]");
  EXPECT_EQ(s.total.filtered_out_event_count, 1u);
  EXPECT_EQ(s.total.polled_event_count, 2u);
  EXPECT_TRUE(q.empty());
}

// Q-11 (S-9.9): with a window the batch waits for more until the window closes.
TEST_P(QueueTraces, Q11_batching_window) {
  queue q(standard(), clock);
  for (int i = 1; i <= 5; ++i) q.send("m" + std::to_string(i));
  drive(sluice::from(q) |
        sluice::batching(sluice::batch_size(20), sluice::maximum_batching_window(1s)) |
        sluice::invoke([&](const qbatch& b) { record(b); }));
  EXPECT_EQ(trace(), "@1 [m1 m2 m3 m4 m5]");
}

// Q-12 (S-9.8): Lambda's parameter ranges for queues.
TEST_P(QueueTraces, Q12_parameters) {
  queue f(fifo(), clock);
  queue s(standard(), clock);
  auto handler = [](const qbatch&) {};
  auto expect_error = [&](auto&& m, const std::string& needle) {
    try {
      drive(std::move(m));
      ADD_FAILURE() << "accepted; expected an error with " << needle;
    } catch (const sluice::configuration_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(sluice::from(f) | sluice::batching(sluice::batch_size(11)) | sluice::invoke(handler),
               "batch_size = 11 is out of range; allowed: 1..10 on a FIFO queue");
  expect_error(sluice::from(s) | sluice::batching(sluice::batch_size(20)) | sluice::invoke(handler),
               "maximum_batching_window (ms) = 0 is out of range");
  expect_error(sluice::from(f) |
                   sluice::batching(sluice::batch_size(5), sluice::maximum_batching_window(1s)) |
                   sluice::invoke(handler),
               "0 on a FIFO queue");
  EXPECT_THROW((void)sluice::maximum_concurrency(1), sluice::configuration_error);
  EXPECT_THROW((void)sluice::maximum_concurrency(1001), sluice::configuration_error);
  // Accepted: batch 10 without a window, 10,000 with one.
  s.send("x");
  drive(sluice::from(s) | sluice::batching(sluice::batch_size(10)) | sluice::invoke(handler));
  s.send("y");
  drive(sluice::from(s) |
        sluice::batching(sluice::batch_size(10'000), sluice::maximum_batching_window(1s)) |
        sluice::invoke(handler));
  EXPECT_TRUE(s.empty());
}

// S-9.11: a throttle is a failure for a queue: the message returns after its visibility timeout.
TEST_P(QueueTraces, Q13_throttle_returns_the_batch) {
  queue q(standard(), clock);
  q.send("m1");
  int n = 0;
  auto s = drive(sluice::from(q) | sluice::invoke([&](const qbatch& b) {
                   record(b);
                   if (++n == 1) throw sluice::throttled("downstream full");
                 }));
  EXPECT_EQ(trace(), "@0 [m1] @30 [m1]");
  EXPECT_EQ(s.total.throttles, 1u);
  EXPECT_EQ(s.total.function_errors, 0u);
  EXPECT_TRUE(q.empty());
}

// S-9.13: the mapping's rate limit (sluice/limits.hpp) paces queue calls on the clock.
TEST_P(QueueTraces, Q14_rate_limit_paces_calls) {
  queue q(standard(), clock);
  for (int i = 1; i <= 3; ++i) q.send("m" + std::to_string(i));
  auto s = drive(sluice::from(q) | sluice::batching(sluice::batch_size(1)) |
                 sluice::rate_limit(sluice::invocations_per_second(1)) |
                 sluice::invoke([&](const qbatch& b) { record(b); }));
  EXPECT_EQ(trace(), "@0 [m1] @1 [m2] @2 [m3]");
  ASSERT_TRUE(s.limits.has_value());
  EXPECT_EQ(s.limits->rate_limit_waits, 2u);
  EXPECT_TRUE(q.empty());
}

INSTANTIATE_TEST_SUITE_P(Modes, QueueTraces, ::testing::Values(mode::run, mode::start),
                         [](const auto& info) {
                           return info.param == mode::run ? std::string("run")
                                                          : std::string("start");
                         });

}  // namespace
