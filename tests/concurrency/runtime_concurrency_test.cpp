// Concurrency of the threaded runtime (sluice::start): per-key order and lane parallelism
// (C-12, S-3.2), failure isolation across lanes (C-13, S-3.3), exactly-once hand-over and final
// checkpoints under load, and backpressure (a slow handler bounds what the runtime buffers).
// These tests also run under ThreadSanitizer.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sluice/sluice.hpp"
#include "support/trace.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;
using sluice_test::eventually;

namespace {

/// Per key, the sequence numbers handed over, in the order the handler saw them.
class order_log {
 public:
  void record(const sluice::batch<R>& b) {
    std::lock_guard lock(mutex_);
    for (const auto& r : b) seen_[r.key].push_back(r.sequence);
  }
  /// Every key's records arrived in strictly increasing order (so also each exactly once).
  ::testing::AssertionResult strictly_increasing_per_key() const {
    std::lock_guard lock(mutex_);
    for (const auto& [key, seqs] : seen_)
      for (std::size_t i = 1; i < seqs.size(); ++i)
        if (seqs[i] <= seqs[i - 1])
          return ::testing::AssertionFailure()
                 << "key " << key << ": " << seqs[i] << " after " << seqs[i - 1];
    return ::testing::AssertionSuccess();
  }
  std::size_t total() const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& [key, seqs] : seen_) n += seqs.size();
    return n;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<sluice::sequence_number_t>> seen_;
};

struct concurrency_meter {
  std::atomic<int> now{0};
  std::atomic<int> max{0};
  void enter() {
    const int n = ++now;
    int seen = max.load();
    while (n > seen && !max.compare_exchange_weak(seen, n)) {
    }
  }
  void leave() { --now; }
};

}  // namespace

// C-12 parallelization factor keeps per-key order (S-3.1, S-3.2)
TEST(Concurrency, C12_ParallelizationFactorKeepsPerKeyOrder) {
  sluice::memory_stream<int> stream(1);
  constexpr int records = 100'000;
  for (int i = 0; i < records; ++i) stream.put("key-" + std::to_string(i % 64), i);
  order_log log;
  concurrency_meter meter;
  std::mutex rng_mutex;
  std::mt19937 rng(12);
  auto running = sluice::start(sluice::from(stream) | sluice::parallelization_factor(4) |
                                   sluice::invoke([&](const sluice::batch<R>& b) {
                                     meter.enter();
                                     log.record(b);
                                     int pause;
                                     {
                                       std::lock_guard lock(rng_mutex);
                                       pause = std::uniform_int_distribution<int>(0, 200)(rng);
                                     }
                                     std::this_thread::sleep_for(std::chrono::microseconds(pause));
                                     meter.leave();
                                   }),
                               sluice::workers(4));
  ASSERT_TRUE(running.wait_until_caught_up(300s));
  EXPECT_EQ(log.total(), static_cast<std::size_t>(records));
  EXPECT_TRUE(log.strictly_increasing_per_key());
  EXPECT_GT(meter.max.load(), 1);
  EXPECT_LE(meter.max.load(), 4);
  EXPECT_EQ(running.metrics().shards[0].checkpoint,
            static_cast<sluice::sequence_number_t>(records));
}

// C-13 failure isolation across lanes (S-3.3)
TEST(Concurrency, C13_PoisonedLaneDoesNotBlockOtherLanes) {
  constexpr std::uint32_t lanes = 4;
  const std::uint32_t poison_lane =
      sluice::lane_for(sluice::key_hash(std::string("poison")), lanes);
  std::vector<std::string> others;  // keys of the other lanes
  for (int i = 0; others.size() < 12; ++i) {
    std::string key = "k" + std::to_string(i);
    if (sluice::lane_for(sluice::key_hash(key), lanes) != poison_lane) others.push_back(key);
  }
  sluice::memory_stream<int> stream(1);
  std::size_t other_records = 0;
  for (int i = 1; i <= 9; ++i, ++other_records) stream.put(others[i % others.size()], i);
  stream.put("poison", 10);
  for (int i = 11; i <= 200; ++i) {
    if (i % 5 == 0) {
      stream.put("poison", i);
    } else {
      stream.put(others[i % others.size()], i);
      ++other_records;
    }
  }
  std::atomic<std::size_t> processed{0};
  std::atomic<bool> later_poison_handed_over{false};
  auto running = sluice::start(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
                                   sluice::parallelization_factor(lanes) |
                                   sluice::retry(sluice::maximum_retry_attempts(-1),
                                                 sluice::backoff::exponential(1ms, 2.0, 20ms)) |
                                   sluice::invoke([&](const sluice::batch<R>& b) {
                                     for (const auto& r : b) {
                                       if (r.key == "poison" && r.sequence > 10)
                                         later_poison_handed_over = true;
                                       if (r.key == "poison") throw std::runtime_error("poison");
                                     }
                                     processed += b.size();
                                   }),
                               sluice::workers(2));
  ASSERT_TRUE(eventually([&] { return processed.load() == other_records; }))
      << processed.load() << " of " << other_records;
  ASSERT_TRUE(eventually([&] { return running.metrics().shards[0].checkpoint == 9; }));
  const auto before = running.metrics().total.function_errors;
  ASSERT_TRUE(eventually([&] { return running.metrics().total.function_errors > before + 2; }));
  EXPECT_EQ(running.metrics().shards[0].checkpoint, 9u) << "the poisoned lane holds the checkpoint";
  EXPECT_FALSE(later_poison_handed_over.load());
  running.stop();
}

// After a bypassed lane recovers, it re-reads what it skipped: every record is processed once
// (successfully), in key order, and the checkpoint reaches the end of the shard.
TEST(Concurrency, BypassedLaneCatchesUpInOrderAfterRecovery) {
  sluice::memory_stream<int> stream(1);
  constexpr int records = 3000;
  for (int i = 1; i <= records; ++i)
    stream.put(i % 10 == 0 ? "poison" : "k" + std::to_string(i % 31), i);
  order_log succeeded;
  std::atomic<int> poison_failures{0};
  auto running = sluice::start(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
                                   sluice::parallelization_factor(4) |
                                   sluice::retry(sluice::maximum_retry_attempts(-1),
                                                 sluice::backoff::exponential(1ms, 2.0, 5ms)) |
                                   sluice::invoke([&](const sluice::batch<R>& b) {
                                     for (const auto& r : b)
                                       if (r.key == "poison" && poison_failures.load() < 20) {
                                         ++poison_failures;
                                         throw std::runtime_error("not yet");
                                       }
                                     succeeded.record(b);
                                   }),
                               sluice::workers(2));
  ASSERT_TRUE(running.wait_until_caught_up(300s));
  EXPECT_EQ(succeeded.total(), static_cast<std::size_t>(records));
  EXPECT_TRUE(succeeded.strictly_increasing_per_key());
  EXPECT_EQ(running.metrics().shards[0].checkpoint,
            static_cast<sluice::sequence_number_t>(records));
  EXPECT_EQ(running.metrics().total.polled_event_count, static_cast<std::uint64_t>(records));
}

// A reader stopped by a full, merely slow lane must bypass it as soon as that lane starts
// retrying, even when nothing else happens (no new puts, no other lane busy).
TEST(Concurrency, ReaderStoppedBySlowLaneBypassesItOnceItStartsRetrying) {
  constexpr std::uint32_t lanes = 2;
  std::string a = "a", b;
  for (int i = 0; b.empty(); ++i) {
    std::string key = "b" + std::to_string(i);
    if (sluice::lane_for(sluice::key_hash(key), lanes) !=
        sluice::lane_for(sluice::key_hash(a), lanes))
      b = key;
  }
  sluice::memory_stream<int> stream(1);
  // Lane a's ring takes batches_per_lane batches of 10 (one in flight); the next record stops
  // the reader.
  const int ring = static_cast<int>(sluice::batches_per_lane) * 10;
  for (int i = 0; i <= ring; ++i) stream.put(a, i);
  for (int i = 0; i < 20; ++i) stream.put(b, i);
  std::atomic<bool> go{false};
  std::atomic<int> b_done{0};
  auto running = sluice::start(
      sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
          sluice::parallelization_factor(lanes) |
          sluice::retry(sluice::maximum_retry_attempts(-1), sluice::backoff::fixed(5ms)) |
          sluice::invoke([&](const sluice::batch<R>& batch) {
            if (batch[0].key == a) {
              while (!go.load()) std::this_thread::sleep_for(100us);
              throw std::runtime_error("lane a fails from now on");
            }
            b_done += static_cast<int>(batch.size());
          }),
      sluice::workers(2));
  ASSERT_TRUE(eventually([&] {
    return running.metrics().total.polled_event_count == static_cast<std::uint64_t>(ring);
  }));
  go = true;
  EXPECT_TRUE(eventually([&] { return b_done.load() == 20; }, 30s)) << b_done.load();
  EXPECT_EQ(running.metrics().shards[0].checkpoint, 0u);
  running.stop();
}

// Issue 3 stress: 2 M records, 16 shards, P = 4, 1,000 keys, random handler delays. Every record
// is handed over exactly once, per-key order holds, every shard ends checkpointed at its last
// sequence number.
TEST(Concurrency, StressEveryRecordOnceInKeyOrderAndFullyCheckpointed) {
  constexpr int records = 2'000'000;
  constexpr std::uint32_t shards = 16;
  sluice::memory_stream<int> stream(shards);
  sluice::memory_checkpoint_store store;
  std::vector<std::string> keys;
  for (int k = 0; k < 1000; ++k) keys.push_back("customer-" + std::to_string(k));

  // Per key: the last sequence seen and how many were seen (one mutex per key stripe).
  struct key_state {
    std::mutex m;
    sluice::sequence_number_t last = 0;
    std::uint32_t shard = 0;
    bool ordered = true;
    std::size_t count = 0;
  };
  std::vector<key_state> state(keys.size());
  std::map<std::string, std::size_t> index;
  for (std::size_t k = 0; k < keys.size(); ++k) index[keys[k]] = k;
  std::atomic<std::uint64_t> handed{0};

  auto running = sluice::start(
      sluice::from(stream) | sluice::batching(sluice::batch_size(100)) |
          sluice::parallelization_factor(4) | sluice::invoke([&](const sluice::batch<R>& b) {
            for (const auto& r : b) {
              key_state& s = state[static_cast<std::size_t>(r.payload) % state.size()];
              std::lock_guard lock(s.m);
              if (s.count > 0 && r.sequence <= s.last) s.ordered = false;
              s.last = r.sequence;
              ++s.count;
            }
            handed += b.size();
            if (b.first_sequence() % 7 == 0)
              std::this_thread::sleep_for(std::chrono::microseconds(b.size() % 50));
          }),
      sluice::checkpoints(store), sluice::workers(2));

  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&, p] {
      for (int i = p; i < records; i += 4) {
        const auto k = static_cast<std::size_t>(i) % keys.size();
        stream.put(keys[k], static_cast<int>(k));
      }
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(running.wait_until_caught_up(600s));
  running.stop();

  EXPECT_EQ(handed.load(), static_cast<std::uint64_t>(records));
  for (std::size_t k = 0; k < state.size(); ++k) {
    EXPECT_TRUE(state[k].ordered) << keys[k];
    EXPECT_EQ(state[k].count, static_cast<std::size_t>(records) / keys.size()) << keys[k];
  }
  for (sluice::shard_id_t s = 0; s < shards; ++s)
    EXPECT_EQ(store.load("sluice", s).value_or(0), stream.last_sequence(s)) << "shard " << s;
}

// Backpressure: a handler far slower than the producer; the runtime never buffers more than its
// bound (shards x P x 2 x batch_size) and the reader falls behind the stream instead.
TEST(Concurrency, SlowHandlerSlowsReaderAndBufferStaysBounded) {
  sluice::memory_stream<int> stream(2);
  std::atomic<bool> release{false};
  auto running = sluice::start(sluice::from(stream) | sluice::batching(sluice::batch_size(50)) |
                                   sluice::parallelization_factor(2) |
                                   sluice::invoke([&](const sluice::batch<R>&) {
                                     if (!release.load()) std::this_thread::sleep_for(1ms);
                                   }),
                               sluice::workers(2));
  const std::size_t bound = running.buffer_bound();
  EXPECT_EQ(bound, 2u * 2u * sluice::batches_per_lane * 50u);  // shards x P x slots x batch
  std::uint64_t max_buffered = 0;
  std::uint64_t max_behind = 0;
  for (int i = 0; i < 50'000; ++i) {
    stream.put("k" + std::to_string(i % 97), i);
    if (i % 500 == 0) {
      const auto m = running.metrics();
      max_buffered = std::max(max_buffered, m.buffered_records);
      max_behind = std::max<std::uint64_t>(
          max_behind, static_cast<std::uint64_t>(i + 1) - m.total.polled_event_count);
      ASSERT_LE(m.buffered_records, bound);
    }
  }
  EXPECT_GT(max_behind, bound) << "the reader should have fallen behind the producer";
  release = true;
  ASSERT_TRUE(running.wait_until_caught_up(300s));
  EXPECT_EQ(running.metrics().buffered_records, 0u);
}

// Idle threads sleep: with nothing to do, no handler call and no clock-driven wake-ups happen;
// all threads are parked on the clock.
TEST(Concurrency, IdleMappingParksAllThreads) {
  sluice::manual_clock clock;
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream(4, clock);
  std::atomic<int> calls{0};
  auto running =
      sluice::start(sluice::from(stream) |
                        sluice::invoke([&](const sluice::batch<sluice::record<int>>&) { ++calls; }),
                    sluice::with_clock(clock), sluice::pollers(2), sluice::workers(3));
  EXPECT_TRUE(clock.wait_for_sleepers(5));  // 2 pollers + 3 workers, all parked
  stream.put("a", 1);
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(clock.wait_for_sleepers(5));
}
