// The lease store contract (sluice/leases.hpp), one typed suite over its three stores: memory,
// Redis (Lua scripts) and SQLite (transactions). take/renew/release are compare-and-set on owner
// and counter; every take bumps the counter (the fencing token); save_fenced moves the checkpoint
// (and with it a windowed mapping's open window) only for the current holder with its counter,
// and the checkpoint never backwards. The Redis store runs the suite twice: on one server and on
// a 3-master Redis Cluster (each test under its own prefix).
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "sluice/leases.hpp"
#include "sluice/redis/leases.hpp"
#include "sluice/sqlite/leases.hpp"
#include "support/redis_cluster.hpp"
#include "support/redis_server.hpp"
#include "support/temp_dir.hpp"

namespace {

struct memory_env {
  sluice::memory_lease_store store;
};
struct redis_env {
  sluice_test::redis_server server;
  sluice::redis::lease_store store{server.tcp()};
};
struct redis_cluster_env {
  static std::string next_prefix() {
    static int n = 0;
    return "lease-suite-" + std::to_string(n++);
  }
  sluice::redis::lease_store store{sluice_test::shared_redis_cluster().options(), next_prefix()};
};
struct sqlite_env {
  sluice_test::temp_dir dir;
  sluice::sqlite::lease_store store{dir / "leases.db"};
};

template <class Env>
struct LeaseStore : ::testing::Test {
  Env env;
  auto& store() { return env.store; }
};
using stores = ::testing::Types<memory_env, redis_env, redis_cluster_env, sqlite_env>;
TYPED_TEST_SUITE(LeaseStore, stores);

TYPED_TEST(LeaseStore, ANeverLeasedShardIsFreeWithCounterZero) {
  const auto all = this->store().leases("m", 3);
  ASSERT_EQ(all.size(), 3u);
  for (sluice::shard_id_t s = 0; s < 3; ++s) {
    EXPECT_EQ(all[s].shard, s);
    EXPECT_EQ(all[s].owner, "");
    EXPECT_EQ(all[s].counter, 0u);
  }
}

TYPED_TEST(LeaseStore, TakeIsACompareAndSetThatBumpsTheCounter) {
  auto& s = this->store();
  EXPECT_TRUE(s.take("m", 1, "", 0, "a", 1000));
  EXPECT_FALSE(s.take("m", 1, "", 0, "b", 1000)) << "b saw a stale (owner, counter)";
  auto l = s.leases("m", 2)[1];
  EXPECT_EQ(l.owner, "a");
  EXPECT_EQ(l.counter, 1u);
  EXPECT_EQ(l.expires_ns, 1000);
  EXPECT_TRUE(s.take("m", 1, "a", 1, "b", 2000)) << "taking from a (expired or to balance)";
  l = s.leases("m", 2)[1];
  EXPECT_EQ(l.owner, "b");
  EXPECT_EQ(l.counter, 2u);
  EXPECT_EQ(s.leases("other", 2)[1].owner, "") << "mappings are apart";
}

TYPED_TEST(LeaseStore, OnlyTheHolderWithItsCounterRenewsAndReleases) {
  auto& s = this->store();
  ASSERT_TRUE(s.take("m", 0, "", 0, "a", 1000));
  EXPECT_TRUE(s.renew("m", 0, "a", 1, 5000));
  EXPECT_EQ(s.leases("m", 1)[0].expires_ns, 5000);
  EXPECT_FALSE(s.renew("m", 0, "b", 1, 9000));
  EXPECT_FALSE(s.renew("m", 0, "a", 7, 9000));
  EXPECT_FALSE(s.release("m", 0, "b", 1));
  EXPECT_TRUE(s.release("m", 0, "a", 1));
  const auto l = s.leases("m", 1)[0];
  EXPECT_EQ(l.owner, "");
  EXPECT_EQ(l.counter, 1u) << "release keeps the counter; the next take bumps it";
  EXPECT_TRUE(s.take("m", 0, "", 1, "b", 1000));
}

TYPED_TEST(LeaseStore, ACheckpointWriteIsFencedByOwnerAndCounter) {
  auto& s = this->store();
  ASSERT_TRUE(s.take("m", 0, "", 0, "a", 1000));
  EXPECT_TRUE(s.save_fenced("m", 0, "a", 1, 10));
  EXPECT_EQ(s.load("m", 0), 10u);
  ASSERT_TRUE(s.take("m", 0, "a", 1, "b", 2000));  // b takes over (a's lease expired)
  EXPECT_FALSE(s.save_fenced("m", 0, "a", 1, 99)) << "the zombie's write must be refused";
  EXPECT_EQ(s.load("m", 0), 10u);
  EXPECT_TRUE(s.save_fenced("m", 0, "b", 2, 20));
  EXPECT_TRUE(s.save_fenced("m", 0, "b", 2, 15));  // accepted, but never backwards
  EXPECT_EQ(s.load("m", 0), 20u);
  EXPECT_FALSE(s.save_fenced("m", 1, "b", 2, 5)) << "a lease of another shard fences nothing";
  EXPECT_EQ(s.load("m", 1), std::nullopt);
}

// S-7 windows on leases: the open window moves with the checkpoint, under the same fence. A
// zombie's window save is refused whole (neither its checkpoint nor its window lands).
TYPED_TEST(LeaseStore, AWindowIsSavedWithTheCheckpointUnderTheSameFence) {
  using namespace std::chrono_literals;
  auto& s = this->store();
  static_assert(sluice::window_lease_store<std::remove_cvref_t<decltype(s)>>);
  const sluice::time_point start = sluice::time_point{} + 1000h;
  const sluice::window_checkpoint a_window{start, start + 60s, "10", false};
  const sluice::window_checkpoint zombie_window{start, start + 60s, "999", true};
  ASSERT_TRUE(s.take("m", 0, "", 0, "a", 1000));
  EXPECT_EQ(s.load_window("m", 0), std::nullopt);
  EXPECT_TRUE(s.save_fenced("m", 0, "a", 1, 10, &a_window));
  EXPECT_EQ(s.load("m", 0), 10u);
  EXPECT_EQ(s.load_window("m", 0), a_window);
  ASSERT_TRUE(s.take("m", 0, "a", 1, "b", 2000));  // b takes over (a's lease expired)
  EXPECT_FALSE(s.save_fenced("m", 0, "a", 1, 50, &zombie_window))
      << "the zombie's window save must be refused";
  EXPECT_FALSE(s.save_fenced("m", 0, "a", 1, 60, nullptr)) << "so must its window's end";
  EXPECT_EQ(s.load("m", 0), 10u);
  EXPECT_EQ(s.load_window("m", 0), a_window) << "b resumes the window a last saved";
  const sluice::window_checkpoint b_window{start, start + 60s, "25", false};
  EXPECT_TRUE(s.save_fenced("m", 0, "b", 2, 12, &b_window));
  EXPECT_EQ(s.load_window("m", 0), b_window);
  EXPECT_TRUE(s.save_fenced("m", 0, "b", 2, 14, nullptr));  // the window's final succeeded
  EXPECT_EQ(s.load("m", 0), 14u);
  EXPECT_EQ(s.load_window("m", 0), std::nullopt);
  EXPECT_FALSE(s.save_fenced("m", 1, "b", 2, 5, &b_window)) << "another shard's lease";
  EXPECT_EQ(s.load_window("m", 1), std::nullopt);
}

}  // namespace
