// Tumbling-window state (S-7) in sluice::redis::checkpoint_store: the window checkpoint store
// contract (tests/support/window_store_suite.hpp: saved with the checkpoint by one script,
// survives a new store object, erased with the explicit rewind, a mapping resumes its window),
// and where the window lives: in the shard's checkpoint hash, next to the lease that fences it.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>

#include "sluice/redis/checkpoint_store.hpp"
#include "sluice/redis/leases.hpp"
#include "support/redis_server.hpp"
#include "support/window_store_suite.hpp"

namespace {

using namespace std::chrono_literals;
static_assert(sluice::window_checkpoint_store<sluice::redis::checkpoint_store>);
static_assert(sluice::window_lease_store<sluice::redis::lease_store>);
static_assert(
    sluice::window_checkpoint_store<sluice::fenced_checkpoints<sluice::redis::lease_store>>);

struct redis_env {
  sluice_test::redis_server server;
  std::optional<sluice::redis::checkpoint_store> s{std::in_place, server.tcp()};
  sluice::redis::checkpoint_store& store() { return *s; }
  /// A new store object (new connections) on the same server: a restarted process.
  sluice::redis::checkpoint_store& reopened() {
    s.reset();
    s.emplace(server.tcp());
    return *s;
  }
  std::size_t erase(std::string_view mapping) { return s->erase(mapping, 1); }
};
using redis_stores = ::testing::Types<redis_env>;

}  // namespace

namespace sluice_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Redis, WindowCheckpointStore, redis_stores);
INSTANTIATE_TYPED_TEST_SUITE_P(Redis, WindowCheckpointStoreRewind, redis_stores);
}  // namespace sluice_test

namespace {

TEST(RedisWindowStore, TheWindowLivesInTheShardsCheckpointHashAndGoesWithIt) {
  sluice_test::redis_server server;
  sluice::redis::checkpoint_store store(server.tcp());
  const sluice::time_point start = sluice::time_point{} + 1000h;
  const sluice::window_checkpoint w{start, start + 60s, "17", true};
  store.save("m", 2, 5, &w);
  sluice::redis::connection c(server.tcp());
  const std::string key = "sluice:{m:2}:checkpoint";  // one key: one cluster slot per shard
  EXPECT_EQ(sluice::redis::text(c.command({"HGET", key, "seq"}).get()), "5");
  EXPECT_EQ(sluice::redis::text(c.command({"HGET", key, "window_state"}).get()), "17");
  EXPECT_EQ(sluice::redis::text(c.command({"HGET", key, "window_early"}).get()), "1");
  EXPECT_EQ(sluice::redis::text(c.command({"HGET", key, "window_start"}).get()),
            std::to_string(sluice::redis::detail::to_ns(start)));
  store.save("m", 2, 4, nullptr);  // a lower checkpoint is ignored; the window still goes
  EXPECT_EQ(store.load("m", 2), 5u);
  EXPECT_EQ(c.command({"HEXISTS", key, "window_state"})->integer, 0);
  EXPECT_EQ(c.command({"EXISTS", "sluice:{m:2}:window"})->integer, 0) << "no second key";
}

// The lease store writes windows where the plain store reads them (one layout, one mechanism):
// `sluice checkpoints`-style tools and a mapping moved off leases see the same window.
TEST(RedisWindowStore, AFencedWindowSaveIsReadByThePlainStore) {
  sluice_test::redis_server server;
  sluice::redis::lease_store leases(server.tcp());
  sluice::redis::checkpoint_store store(server.tcp());
  ASSERT_TRUE(leases.take("m", 0, "", 0, "a", 1000));
  const sluice::time_point start = sluice::time_point{} + 1000h;
  const sluice::window_checkpoint w{start, start + 60s, "9", false};
  ASSERT_TRUE(leases.save_fenced("m", 0, "a", 1, 3, &w));
  EXPECT_EQ(store.load("m", 0), 3u);
  EXPECT_EQ(store.load_window("m", 0), w);
  EXPECT_EQ(leases.load_window("m", 0), w);
}

}  // namespace
