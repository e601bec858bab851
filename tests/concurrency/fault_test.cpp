// Issue 4 fault test (S-3.3, S-5, S-5.8): 1 M records, 4 shards, P = 4, a handler that fails,
// reports partial failures or throttles at random (5 %) and always fails on about 1 record in
// 10,000, with R = 2, bisect and partial
// responses on. A monitor checks continuously that no stored checkpoint ever passes a record
// that is neither processed nor in the destination; at the end every record is one or both.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sluice/sluice.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;

TEST(Fault, NoCheckpointPassesARecordThatIsNeitherProcessedNorDeadLettered) {
  constexpr int records = 1'000'000;
  constexpr std::uint32_t shards = 4;
  sluice::memory_stream<int> stream(shards);
  for (int i = 0; i < records; ++i) stream.put("key-" + std::to_string(i % 5000), i);

  // finished[shard][seq]: 1 = processed successfully, 2 = in the destination.
  std::vector<std::unique_ptr<std::atomic<std::uint8_t>[]>> finished;
  for (std::uint32_t s = 0; s < shards; ++s) {
    const auto n = stream.last_sequence(s) + 1;
    finished.emplace_back(new std::atomic<std::uint8_t>[n]);
    for (std::size_t i = 0; i < n; ++i) finished[s][i] = 0;
  }
  auto mark = [&](const R& r, std::uint8_t how) {
    // Which shard? The stream put it by key; recompute the same way.
    const auto s = sluice::shard_for(sluice::key_hash(r.key), shards);
    finished[s][r.sequence].fetch_or(how);
  };

  std::mutex rng_mutex;
  std::mt19937_64 rng(2026);
  auto roll = [&] {
    std::lock_guard lock(rng_mutex);
    return std::uniform_int_distribution<int>(0, 99)(rng);
  };
  std::atomic<std::uint64_t> dead{0};
  auto destination = [&](const sluice::on_failure_record<R>& rec) {
    if (roll() < 5) throw std::runtime_error("destination hiccup");  // S-5.8: retried
    for (const auto& r : rec.records) mark(r, 2);
    dead += rec.records.size();
  };

  sluice::memory_checkpoint_store store;
  auto running = sluice::start(
      sluice::from(stream) | sluice::batching(sluice::batch_size(100)) |
          sluice::parallelization_factor(4) |
          sluice::retry(sluice::maximum_retry_attempts(2),
                        sluice::backoff::exponential(100us, 2.0, 2ms)) |
          sluice::bisect_batch_on_function_error | sluice::report_batch_item_failures |
          sluice::on_failure(destination) | sluice::invoke([&](const sluice::batch<R>& b) {
            for (const auto& r : b)  // about 1 in 10,000 records always fails: some batches exhaust
              if (r.payload % 9973 == 0) throw std::runtime_error("poison");
            const int dice = roll();
            if (dice < 2) throw std::runtime_error("function error");
            if (dice < 3) throw sluice::throttled();
            sluice::batch_item_failures failures;
            if (dice < 5) {  // report a random record and everything after it as failed
              const std::size_t from = static_cast<std::size_t>(roll()) % b.size();
              for (std::size_t i = from; i < b.size(); ++i) failures.add(b[i].sequence);
            }
            // Records before the lowest reported failure are finished by this attempt (S-4.3).
            const std::size_t ok =
                failures.empty() ? b.size() : b.size() - failures.item_identifiers.size();
            for (std::size_t i = 0; i < ok; ++i) mark(b[i], 1);
            return failures;
          }),
      sluice::checkpoints(store), sluice::workers(2));

  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> violations{0};
  std::atomic<std::uint64_t> checks{0};
  std::thread monitor([&] {
    std::vector<sluice::sequence_number_t> verified(shards, 0);
    while (!done.load()) {
      for (std::uint32_t s = 0; s < shards; ++s) {
        const auto cp = store.load("sluice", s).value_or(0);
        for (auto seq = verified[s] + 1; seq <= cp; ++seq)
          if (finished[s][seq].load() == 0) ++violations;
        verified[s] = std::max(verified[s], cp);
        ++checks;
      }
      std::this_thread::sleep_for(1ms);
    }
  });

  const bool caught_up = running.wait_until_caught_up(600s);
  done = true;
  monitor.join();
  const auto metrics = running.metrics();
  running.stop();
  ASSERT_TRUE(caught_up);

  EXPECT_EQ(violations.load(), 0u) << "a checkpoint passed an unfinished record";
  EXPECT_GT(checks.load(), 0u);
  std::uint64_t missing = 0;
  for (std::uint32_t s = 0; s < shards; ++s) {
    for (sluice::sequence_number_t seq = 1; seq <= stream.last_sequence(s); ++seq)
      if (finished[s][seq].load() == 0) ++missing;
    EXPECT_EQ(store.load("sluice", s).value_or(0), stream.last_sequence(s));
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_GT(dead.load(), 0u) << "the fault rate should exhaust some batches";
  EXPECT_EQ(metrics.total.on_failure_destination_delivered_event_count, dead.load());
  EXPECT_GT(metrics.total.throttles, 0u);
  EXPECT_GT(metrics.total.bisect_splits, 0u);
  EXPECT_GT(metrics.total.destination_failures, 0u);
  EXPECT_EQ(metrics.total.dropped_event_count, 0u);
}
