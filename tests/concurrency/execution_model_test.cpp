// The execution model of sluice::start (docs/guide.md, "Execution model"): which thread runs a
// batch in each execution mode, the per-record sink fused into the read loop, stopping a mapping
// from its own handler, and the nameable sluice::running_mapping. Runs under ThreadSanitizer too.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/sluice.hpp"
#include "support/trace.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;
using sluice_test::eventually;

namespace {

/// Runs 2,000 records through one shard in `mode` and returns the thread ids that ran the
/// filter (the reader) and the handler.
struct threads_seen {
  std::set<std::thread::id> reader;
  std::set<std::thread::id> handler;
};
threads_seen run_in(sluice::execution_mode mode) {
  sluice::memory_stream<int> stream(1);
  for (int i = 0; i < 2000; ++i) stream.put("k" + std::to_string(i % 7), i);
  std::mutex m;
  threads_seen seen;
  auto running = sluice::start(sluice::from(stream) | sluice::filter([&](int) {
                                 std::lock_guard lock(m);
                                 seen.reader.insert(std::this_thread::get_id());
                                 return true;
                               }) | sluice::batching(sluice::batch_size(10)) |
                                   sluice::invoke([&](const sluice::batch<R>&) {
                                     std::lock_guard lock(m);
                                     seen.handler.insert(std::this_thread::get_id());
                                   }),
                               sluice::pollers(1), sluice::workers(1), sluice::execution(mode));
  EXPECT_TRUE(running.wait_until_caught_up(60s));
  EXPECT_EQ(running.metrics().total.succeeded_event_count, 2000u);
  running.stop();
  return seen;
}

}  // namespace

TEST(ExecutionModel, InlineModeRunsEveryBatchOnTheReaderThread) {
  const auto seen = run_in(sluice::execution_mode::inline_only);
  ASSERT_EQ(seen.reader.size(), 1u);
  EXPECT_EQ(seen.handler, seen.reader);
}

TEST(ExecutionModel, HandoffModeNeverRunsABatchOnTheReaderThread) {
  const auto seen = run_in(sluice::execution_mode::handoff);
  ASSERT_EQ(seen.reader.size(), 1u);
  ASSERT_EQ(seen.handler.size(), 1u);
  EXPECT_NE(*seen.handler.begin(), *seen.reader.begin());
}

TEST(ExecutionModel, AdaptiveModeDeliversEverythingInKeyOrder) {
  sluice::memory_stream<int> stream(2);
  std::vector<std::thread> producers;
  for (int p = 0; p < 2; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < 20000; ++i) stream.put("k" + std::to_string(p * 100 + i % 50), i);
    });
  }
  std::mutex m;
  std::map<std::string, int> last;
  bool in_order = true;
  std::atomic<std::uint64_t> seen{0};
  auto running = sluice::start(sluice::from(stream) | sluice::batching(sluice::batch_size(37)) |
                                   sluice::parallelization_factor(3) |
                                   sluice::invoke([&](const sluice::batch<R>& b) {
                                     std::lock_guard lock(m);
                                     for (const R& r : b) {
                                       auto [it, fresh] = last.try_emplace(r.key, r.payload);
                                       if (!fresh && it->second >= r.payload) in_order = false;
                                       it->second = r.payload;
                                     }
                                     seen += b.size();
                                   }),
                               sluice::workers(2));
  for (auto& t : producers) t.join();
  ASSERT_TRUE(running.wait_until_caught_up(120s));
  running.stop();
  EXPECT_EQ(seen.load(), 40000u);
  EXPECT_TRUE(in_order);
}

// A handler may stop its own mapping: stop() from a handler requests the stop and returns (a
// thread cannot join itself); the owner's stop() then joins. The handle's type can be named.
TEST(ExecutionModel, StopFromInsideAHandlerRequestsTheStop) {
  sluice::memory_stream<int> stream(1);
  for (int i = 0; i < 100; ++i) stream.put("k", i);
  sluice::running_mapping* self = nullptr;
  std::atomic<int> calls{0};
  std::atomic<bool> stop_threw{false};
  std::atomic<bool> ready{false};
  sluice::running_mapping running =
      sluice::start(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
                        sluice::invoke([&](const sluice::batch<R>&) {
                          while (!ready.load()) std::this_thread::yield();
                          if (++calls == 2) {
                            try {
                              self->stop();
                            } catch (...) {
                              stop_threw = true;
                            }
                          }
                        }),
                    sluice::workers(1));
  self = &running;
  ready = true;
  ASSERT_TRUE(eventually([&] { return running.stop_requested(); }));
  running.stop();
  EXPECT_FALSE(stop_threw.load());
  EXPECT_EQ(running.failure(), nullptr);
  EXPECT_LT(running.metrics().total.invocations, 10u);
}

// The per-record sink (issue's program): a function of one payload, no batching stage, fused
// into the read loop.
TEST(PerRecordSink, RunCallsAFunctionOfOneRecordPerKeptRecord) {
  std::vector<int> v{1, 2, 3, 4, 5, 6};
  int sum = 0;
  sluice::run(sluice::from(v) | sluice::filter([](int x) { return x % 2 == 0; }) |
              sluice::transform([](int x) { return x * 10; }) |
              sluice::invoke([&](int x) { sum += x; }));
  EXPECT_EQ(sum, 120);
}

TEST(PerRecordSink, StartCallsItInSequenceOrderAndCheckpoints) {
  sluice::memory_stream<int> stream(3);
  for (int i = 0; i < 3000; ++i) stream.put("k" + std::to_string(i % 11), i);
  sluice::memory_checkpoint_store store;
  std::mutex m;
  std::map<std::string, int> last;
  bool in_order = true;
  int seen = 0;
  auto running = sluice::start(sluice::from(stream) | sluice::invoke([&](const R& r) {
                                 std::lock_guard lock(m);
                                 auto [it, fresh] = last.try_emplace(r.key, r.payload);
                                 if (!fresh && it->second >= r.payload) in_order = false;
                                 it->second = r.payload;
                                 ++seen;
                               }),
                               sluice::checkpoints(store));
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  running.stop();
  EXPECT_EQ(seen, 3000);
  EXPECT_TRUE(in_order);
  for (sluice::shard_id_t s = 0; s < 3; ++s)
    EXPECT_EQ(store.load("sluice", s), stream.last_sequence(s));
  EXPECT_EQ(running.metrics().total.invoked_event_count, 3000u);
}

// A per-record sink that throws: the record is read again after back-off (on the manual clock),
// the checkpoint never passes it, and nothing after it is handed over first.
TEST(PerRecordSink, AThrowingCallIsRetriedAfterBackoffAndHoldsTheCheckpoint) {
  sluice::manual_clock clock(sluice::time_point{} + 100h, sluice::manual_clock::auto_advance);
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream(1, clock);
  for (int i = 1; i <= 5; ++i) stream.put("k", i);
  sluice::memory_checkpoint_store store;
  std::vector<int> calls;
  int failures_left = 2;
  const auto metrics = sluice::run(sluice::from(stream) | sluice::invoke([&](int x) {
                                     calls.push_back(x);
                                     if (x == 3 && failures_left-- > 0)
                                       throw std::runtime_error("downstream down");
                                   }),
                                   sluice::with_clock(clock), sluice::checkpoints(store));
  EXPECT_EQ(calls, (std::vector<int>{1, 2, 3, 3, 3, 4, 5}));
  EXPECT_EQ(metrics.total.function_errors, 2u);
  EXPECT_EQ(store.load("sluice", 0), 5u);
}

TEST(MemoryStreamPutMany, PlacesEachRecordInItsKeysShard) {
  sluice::memory_stream<int> stream(2);
  std::vector<std::pair<std::string, int>> entries;
  for (int i = 0; i < 100; ++i) entries.emplace_back("k" + std::to_string(i % 9), i);
  const auto where = stream.put_many(entries);
  ASSERT_EQ(where.size(), 100u);
  std::uint64_t total = 0;
  for (sluice::shard_id_t s = 0; s < 2; ++s) total += stream.last_sequence(s);
  EXPECT_EQ(total, 100u);
  for (std::size_t i = 0; i < entries.size(); ++i)
    EXPECT_EQ(where[i].shard, sluice::shard_for(sluice::key_hash(entries[i].first), 2));
}

// A reader never sees part of a put_many's records of one shard: while a producer puts batches
// of 50 records of one key, every read finds a multiple of 50 records; listeners are told once
// per call and shard, not once per record.
TEST(MemoryStreamPutMany, AShardsRecordsBecomeVisibleTogether) {
  sluice::memory_stream<int> stream(1);
  struct counting final : sluice::data_listener {
    std::atomic<int> calls{0};
    void on_data(sluice::shard_id_t) noexcept override { ++calls; }
  } listener;
  stream.subscribe(&listener);
  const std::vector<std::pair<std::string, int>> fifty(50, {"k", 1});
  std::atomic<bool> done{false};
  std::thread producer([&] {
    for (int i = 0; i < 400; ++i) stream.put_many(fifty);
    done = true;
  });
  bool torn = false;
  while (!done.load()) {
    const std::size_t seen = stream.read(0, 0, 1 << 20, [](const R&) { return true; });
    if (seen % 50 != 0) torn = true;
  }
  producer.join();
  stream.unsubscribe(&listener);
  EXPECT_FALSE(torn) << "a reader saw part of a put_many";
  EXPECT_EQ(stream.last_sequence(0), 20000u);
  EXPECT_EQ(listener.calls.load(), 400);
}
