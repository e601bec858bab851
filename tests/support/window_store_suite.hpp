// tests/support/window_store_suite.hpp: the contract of sluice::window_checkpoint_store (a shard's
// open tumbling window, S-7, saved with its checkpoint in one atomic save), one typed suite that
// each store instantiates in its own test binary:
//   INSTANTIATE_TYPED_TEST_SUITE_P(Sqlite, WindowCheckpointStore, ::testing::Types<env>);
// An environment `Env` has store() (the store under test) and reopened() (a new store object over
// the same data: a restarted process; the memory store answers itself). A store with an explicit
// rewind also instantiates WindowCheckpointStoreRewind, whose `Env` has erase(mapping).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>

#include "sluice/sluice.hpp"

namespace sluice_test {

template <class Env>
class WindowCheckpointStore : public ::testing::Test {
 protected:
  Env env;

  static sluice::window_checkpoint window(std::string state, bool early = false) {
    using namespace std::chrono_literals;
    const sluice::time_point start = sluice::time_point{} + 1000h;
    return {start, start + 60s, std::move(state), early};
  }
};
TYPED_TEST_SUITE_P(WindowCheckpointStore);

TYPED_TEST_P(WindowCheckpointStore, WindowIsSavedWithTheCheckpointAndSurvivesReopening) {
  static_assert(sluice::window_checkpoint_store<std::remove_cvref_t<decltype(this->env.store())>>);
  const std::string bytes("a\0b\xff", 4);  // state is bytes, not text
  {
    auto& s = this->env.store();
    EXPECT_FALSE(s.load_window("m", 0));
    const auto w = this->window(bytes, true);
    s.save("m", 0, 7, &w);
  }
  auto& s = this->env.reopened();
  EXPECT_EQ(s.load("m", 0), 7u);
  ASSERT_TRUE(s.load_window("m", 0));
  EXPECT_EQ(*s.load_window("m", 0), this->window(bytes, true));
  EXPECT_FALSE(s.load_window("m", 1)) << "another shard";
  EXPECT_FALSE(s.load_window("other", 0)) << "another mapping";
  const auto later = this->window("12");
  s.save("m", 0, 8, &later);  // a later invocation of the same window replaces its state
  EXPECT_EQ(s.load_window("m", 0)->state, "12");
  EXPECT_FALSE(s.load_window("m", 0)->terminated_early);
  s.save("m", 0, 9, nullptr);  // the window's final invocation succeeded: no open window
  EXPECT_EQ(s.load("m", 0), 9u);
  EXPECT_FALSE(s.load_window("m", 0));
  s.save("m", 0, 10);  // a plain save keeps (the absence of) the window
  EXPECT_EQ(s.load("m", 0), 10u);
  EXPECT_FALSE(s.load_window("m", 0));
}

// A windowed mapping over the store, stopped mid-window and started again with new objects on the
// same data, resumes the window's state (W-10 with this store).
TYPED_TEST_P(WindowCheckpointStore, AMappingResumesItsWindowFromTheStore) {
  using namespace std::chrono_literals;
  using R = sluice::record<int>;
  sluice::manual_clock clock{sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance};
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream{1, clock};
  for (int i = 1; i <= 4; ++i) stream.put("k", i);
  std::string seen;
  auto handler = [&](const sluice::batch<R>& b,
                     const sluice::window_context& w) -> sluice::window_response {
    seen +=
        (w.is_final ? std::string("F") : std::to_string(b.first_sequence())) + "<" + w.state + "> ";
    long sum = w.state.empty() ? 0 : std::stol(w.state);
    for (const R& r : b) sum += r.payload;
    return std::to_string(sum);
  };
  {
    std::stop_source stop;
    sluice::run(sluice::from(stream) | sluice::batching(sluice::batch_size(2)) |
                    sluice::tumbling_window(60) |
                    sluice::invoke([&](const sluice::batch<R>& b, const sluice::window_context& w) {
                      if (b.first_sequence() == 3) stop.request_stop();
                      if (b.first_sequence() == 3) throw std::runtime_error("stopping");
                      return handler(b, w);
                    }),
                sluice::with_clock(clock), sluice::checkpoints(this->env.store()),
                sluice::stop_when(stop.get_token()));
  }
  EXPECT_EQ(seen, "1<> ");
  auto& s = this->env.reopened();
  EXPECT_EQ(s.load("sluice", 0), 2u);
  ASSERT_TRUE(s.load_window("sluice", 0));
  EXPECT_EQ(s.load_window("sluice", 0)->state, "3");
  sluice::run(sluice::from(stream) | sluice::batching(sluice::batch_size(2)) |
                  sluice::tumbling_window(60) | sluice::invoke(handler),
              sluice::with_clock(clock), sluice::checkpoints(s));
  EXPECT_EQ(seen, "1<> 3<3> F<10> ");
  EXPECT_FALSE(s.load_window("sluice", 0));
}

REGISTER_TYPED_TEST_SUITE_P(WindowCheckpointStore,
                            WindowIsSavedWithTheCheckpointAndSurvivesReopening,
                            AMappingResumesItsWindowFromTheStore);

/// For stores with an explicit rewind: `Env` also has erase(mapping) -> checkpoints erased.
template <class Env>
class WindowCheckpointStoreRewind : public WindowCheckpointStore<Env> {};
TYPED_TEST_SUITE_P(WindowCheckpointStoreRewind);

TYPED_TEST_P(WindowCheckpointStoreRewind, EraseDropsTheWindowsToo) {
  auto& s = this->env.store();
  const auto w = this->window("5");
  s.save("m", 0, 3, &w);
  s.save("other", 0, 3, &w);
  EXPECT_EQ(this->env.erase("m"), 1u);
  EXPECT_FALSE(s.load("m", 0));
  EXPECT_FALSE(s.load_window("m", 0));
  EXPECT_TRUE(s.load_window("other", 0));
}

REGISTER_TYPED_TEST_SUITE_P(WindowCheckpointStoreRewind, EraseDropsTheWindowsToo);

}  // namespace sluice_test
