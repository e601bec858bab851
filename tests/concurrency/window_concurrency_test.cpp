// Tumbling windows (S-7) under sluice::start with several shards and threads (also run under
// ThreadSanitizer): the run side's state, the reader's window tracking and the checkpoint save
// of the state meet here. Checked: every record is counted once, in the window of its arrival
// time; every (shard, window) gets exactly one final invocation, with the complete state; the
// store holds no window once all are final.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "sluice/sluice.hpp"
#include "support/trace.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;
using sluice_test::eventually;

namespace {

class WindowConcurrency : public ::testing::TestWithParam<sluice::execution_mode> {};

TEST_P(WindowConcurrency, EveryRecordCountedOnceAndEveryWindowFinalizedOnce) {
  constexpr int shards = 4, per_window = 300, windows = 4;
  sluice::manual_clock clock{sluice::time_point{} + 1000h};
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream{shards, clock};
  sluice::memory_checkpoint_store store;
  const sluice::time_point t0 = clock.now();
  std::map<std::pair<sluice::shard_id_t, long>, long> expected;  // (shard, window) -> sum
  for (int w = 0; w < windows; ++w) {
    for (int i = 0; i < per_window; ++i) {
      const std::string key = "k" + std::to_string(i % 17);
      const auto put = stream.put(key, i + 1);
      expected[{put.shard, w}] += i + 1;
    }
    clock.advance(60s);
  }

  std::mutex m;
  std::map<std::pair<sluice::shard_id_t, long>, long> finals;
  std::atomic<int> final_calls{0}, duplicates{0};
  auto running = sluice::start(
      sluice::from(stream) | sluice::batching(sluice::batch_size(7)) | sluice::tumbling_window(60) |
          sluice::invoke([&](const sluice::batch<R>& b,
                             const sluice::window_context& w) -> sluice::window_response {
            long sum = w.state.empty() ? 0 : std::stol(w.state);
            if (w.is_final) {
              std::lock_guard lock(m);
              if (!finals.emplace(std::pair{w.shard_id, (w.start - t0) / 60s}, sum).second)
                ++duplicates;
              ++final_calls;
              return w.state;
            }
            for (const R& r : b) {
              EXPECT_EQ(sluice::detail::window_start_of(r.arrival, 60s), w.start);
              sum += r.payload;
            }
            return std::to_string(sum);
          }),
      sluice::with_clock(clock), sluice::checkpoints(store), sluice::workers(2), sluice::pollers(2),
      sluice::execution(GetParam()));
  ASSERT_TRUE(running.wait_until_caught_up(120s));
  // Windows 0..2 ended on a later record; the last one ends after the idle time.
  ASSERT_TRUE(eventually([&] { return final_calls.load() >= shards * (windows - 1); }));
  clock.advance(3min);
  ASSERT_TRUE(eventually([&] { return final_calls.load() >= shards * windows; }));
  running.stop();
  EXPECT_EQ(duplicates.load(), 0);
  EXPECT_EQ(finals, expected);
  for (sluice::shard_id_t s = 0; s < shards; ++s) EXPECT_FALSE(store.load_window("sluice", s));
}

INSTANTIATE_TEST_SUITE_P(Modes, WindowConcurrency,
                         ::testing::Values(sluice::execution_mode::adaptive,
                                           sluice::execution_mode::inline_only,
                                           sluice::execution_mode::handoff));

}  // namespace
