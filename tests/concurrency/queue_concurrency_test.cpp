// Queues under concurrency (S-9.7, S-9.13), also run under TSan: many producers and consumers on
// a memory_queue with no loss and no duplicate on success, FIFO order per group through a started
// mapping with several pollers, maximum_concurrency honoured, and an idle mapping asleep.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sluice/limits.hpp"
#include "sluice/sluice.hpp"
#include "sluice/sources/memory_queue.hpp"
#include "support/queue_consumers.hpp"

using namespace std::chrono_literals;
using sluice::queue_message;
using qbatch = sluice::batch<queue_message>;

namespace {

TEST(QueueConcurrency, ManyProducersAndConsumersLoseNothing) {
  sluice::memory_queue q;
  constexpr int producers = 4, per_producer = 2000, consumers = 4;
  sluice_test::queue_consumers consumers_of(q, consumers);
  std::vector<std::thread> senders;
  for (int p = 0; p < producers; ++p)
    senders.emplace_back([&, p] {
      for (int i = 0; i < per_producer; ++i) q.send(std::to_string(p) + ":" + std::to_string(i));
    });
  for (auto& t : senders) t.join();
  consumers_of.finish();
  consumers_of.expect_each_once(producers * per_producer);
}

TEST(QueueConcurrency, StartedFifoMappingKeepsGroupOrderWithManyPollers) {
  sluice::queue_options o;
  o.fifo = true;
  o.content_based_deduplication = true;
  sluice::memory_queue q(o);
  constexpr int groups = 16, per_group = 200;
  std::mutex mutex;
  std::map<std::string, std::vector<int>> order;
  std::atomic<int> in_handler{0}, max_in_handler{0};
  auto running = sluice::start(
      sluice::from(q) | sluice::batching(sluice::batch_size(5)) | sluice::maximum_concurrency(4) |
      sluice::invoke([&](const qbatch& b) {
        const int now = ++in_handler;
        int seen = max_in_handler.load();
        while (now > seen && !max_in_handler.compare_exchange_weak(seen, now)) {
        }
        {
          std::lock_guard lock(mutex);
          for (const auto& m : b)
            order[m.message_group_id].push_back(std::stoi(m.body().substr(m.body().find(':') + 1)));
        }
        std::this_thread::yield();
        --in_handler;
      }));
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p)
    producers.emplace_back([&, p] {
      for (int i = 0; i < per_group; ++i)
        for (int g = p; g < groups; g += 4)
          q.send("g" + std::to_string(g) + ":" + std::to_string(i),
                 sluice::send_options::in_group("g" + std::to_string(g)));
    });
  for (auto& t : producers) t.join();
  ASSERT_TRUE(running.wait_until_caught_up(120s));
  auto m = running.metrics();
  running.stop();
  EXPECT_LE(max_in_handler.load(), 4);
  EXPECT_EQ(m.total.succeeded_event_count, static_cast<std::uint64_t>(groups * per_group));
  ASSERT_EQ(order.size(), static_cast<std::size_t>(groups));
  for (auto& [g, seq] : order) {
    ASSERT_EQ(seq.size(), static_cast<std::size_t>(per_group)) << g;
    for (int i = 0; i < per_group; ++i) ASSERT_EQ(seq[i], i) << g;
  }
}

TEST(QueueConcurrency, FailuresReturnAndNothingIsLost) {
  sluice::manual_clock clock;
  sluice::queue_options o;
  o.visibility_timeout = 1s;
  sluice::memory_queue<sluice::manual_clock> q(o, clock);
  for (int i = 0; i < 500; ++i) q.send(std::to_string(i));
  std::mutex mutex;
  std::set<std::string> done;
  std::atomic<int> calls{0};
  auto running =
      sluice::start(sluice::from(q) | sluice::report_batch_item_failures |
                        sluice::maximum_concurrency(3) | sluice::invoke([&](const qbatch& b) {
                          sluice::queue_item_failures f;
                          ++calls;
                          for (const auto& m : b) {
                            if (m.approximate_receive_count == 1 && std::stoi(m.body()) % 7 == 0)
                              f.add(m.message_id);
                            else {
                              // At least once: a message whose visibility timeout passes while its
                              // handler runs (the test moves the clock) may be handed over again,
                              // so count distinct bodies.
                              std::lock_guard lock(mutex);
                              done.insert(m.body());
                            }
                          }
                          return f;
                        }),
                    sluice::with_clock(clock));
  // The returned messages come back once the clock passes their visibility timeout.
  for (int i = 0; i < 200 && !running.wait_until_caught_up(50ms); ++i) clock.advance(1s);
  ASSERT_TRUE(running.wait_until_caught_up(30s));
  running.stop();
  EXPECT_EQ(done.size(), 500u);
  EXPECT_TRUE(q.empty());
}

TEST(QueueConcurrency, IdleMappingSleeps) {
  sluice::manual_clock clock;
  sluice::memory_queue<sluice::manual_clock> q({}, clock);
  std::atomic<int> n{0};
  auto running = sluice::start(
      sluice::from(q) | sluice::invoke([&](const qbatch& b) { n += static_cast<int>(b.size()); }),
      sluice::with_clock(clock), sluice::workers(4));
  // One poller waits on the empty queue, asleep on the clock (not spinning).
  EXPECT_TRUE(clock.wait_for_sleepers(1));
  q.send("wake");
  ASSERT_TRUE(running.wait_until_caught_up(30s));
  EXPECT_EQ(n.load(), 1);
  EXPECT_TRUE(clock.wait_for_sleepers(1));
  running.stop();
}

}  // namespace
