// Redis Cluster: sluice::redis::connection with cluster_nodes against a private 3-master cluster
// on 127.0.0.1 (tests/support/redis_cluster.hpp). Key slots follow the cluster specification
// (CRC16 XMODEM, hash tags); every command reaches its slot's master (checked by asking each node
// directly, not through the router); pipelines across nodes keep their order; the stream, its
// checkpoints, the lease store and the dead-letter destination work unchanged over the cluster,
// with a stream's shards on different nodes; and a slot migrated while records are written and
// read (IMPORTING/MIGRATING, MIGRATE, then SETSLOT NODE) is followed through ASK and MOVED with
// nothing lost or reordered.
#include <gtest/gtest.h>

#include <algorithm>
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
#include "sluice/sluice.hpp"
#include "support/redis_cluster.hpp"
#include "support/trace.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::redis::key_slot;
using sluice::redis::text;
using string_stream = sluice::redis::stream<std::string, std::string, sluice::manual_clock>;
using record = string_stream::record_type;
using sluice_test::eventually;

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

// ---- checkpoints, leases and the dead-letter destination over the cluster ----

TEST_F(RedisCluster, CheckpointsOfShardsOnDifferentNodesSaveLoadAndErase) {
  sluice::redis::checkpoint_store store(cluster->options(), "cp");
  std::set<int> nodes;
  for (sluice::shard_id_t s = 0; s < 12; ++s) {
    store.save("m", s, 100 + s);
    store.save("m", s, 5);  // lower: ignored, as on one server
    nodes.insert(cluster->holder(sluice::redis::detail::checkpoint_key("cp", "m", s)));
  }
  EXPECT_FALSE(nodes.contains(-1));
  EXPECT_GE(nodes.size(), 2u) << "the (mapping, shard) hash tags spread checkpoints over nodes";
  for (sluice::shard_id_t s = 0; s < 12; ++s) EXPECT_EQ(store.load("m", s), 100u + s);
  EXPECT_EQ(store.erase("m", 12), 12u) << "one DEL pipeline, split per node";
  for (sluice::shard_id_t s = 0; s < 12; ++s) EXPECT_EQ(store.load("m", s), std::nullopt);
}

TEST_F(RedisCluster, LeasesOfEveryNodeAreReadInOnePipelineAndCheckpointsAreFenced) {
  sluice::redis::lease_store leases(cluster->options(), "lf");
  constexpr std::uint32_t shards = 16;
  for (sluice::shard_id_t s = 0; s < shards; ++s)
    ASSERT_TRUE(leases.take("m", s, "", 0, s % 2 == 0 ? "a" : "b", 1000 + s));
  const auto all = leases.leases("m", shards);  // HMGET of 16 keys over 3 nodes
  ASSERT_EQ(all.size(), shards);
  for (sluice::shard_id_t s = 0; s < shards; ++s) {
    EXPECT_EQ(all[s].shard, s);
    EXPECT_EQ(all[s].owner, s % 2 == 0 ? "a" : "b");
    EXPECT_EQ(all[s].counter, 1u);
    EXPECT_EQ(all[s].expires_ns, 1000 + s);
  }
  for (sluice::shard_id_t s = 0; s < shards; ++s) {
    const std::string owner = s % 2 == 0 ? "a" : "b";
    EXPECT_TRUE(leases.save_fenced("m", s, owner, 1, 10));
    ASSERT_TRUE(leases.take("m", s, owner, 1, "c", 5000));  // c takes over
    EXPECT_FALSE(leases.save_fenced("m", s, owner, 1, 99)) << "the zombie's write is refused";
    EXPECT_TRUE(leases.save_fenced("m", s, "c", 2, 20));
    EXPECT_EQ(leases.load("m", s), 20u);
  }
}

TEST_F(RedisCluster, TheDeadLetterStreamStoresAndReadsBackAFailedBatch) {
  using R = sluice::record<int>;
  sluice::manual_clock c{sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance};
  sluice::memory_stream<int, std::string, sluice::manual_clock> source{1, c};
  for (int i = 1; i <= 5; ++i) source.put("k", i);
  sluice::redis::destination<R> dlq(cluster->options(), "cluster-dead");
  sluice::memory_checkpoint_store store;
  sluice::run(sluice::from(source) | sluice::batching(sluice::batch_size(5)) |
                  sluice::retry(sluice::maximum_retry_attempts(0)) | sluice::on_failure(dlq) |
                  sluice::invoke([](const sluice::batch<R>&) { throw std::runtime_error("boom"); }),
              sluice::with_clock(c), sluice::checkpoints(store));
  const auto dead = dlq.records();
  ASSERT_EQ(dead.size(), 1u);
  ASSERT_EQ(dead[0].records.size(), 5u);
  EXPECT_EQ(dead[0].records[4].payload, 5);
  EXPECT_EQ(dead[0].error_message, "boom");
  EXPECT_GE(cluster->holder(dlq.key()), 0);
}

TEST_F(RedisCluster, AMappingResumesAfterItsCheckpointsOnTheCluster) {
  using R = sluice::record<int>;
  sluice::redis::stream_options o;
  o.name = "resume";
  o.shards = 6;
  o.connection = cluster->options();
  sluice::redis::stream<int> stream(o);
  for (int i = 0; i < 60; ++i) stream.put("k" + std::to_string(i), i);
  std::atomic<int> first{0}, second{0};
  sluice::run(sluice::from(stream) | sluice::invoke([&](const R&) { ++first; }));
  for (int i = 60; i < 75; ++i) stream.put("k" + std::to_string(i), i);
  sluice::run(sluice::from(stream) | sluice::invoke([&](const R&) { ++second; }));
  EXPECT_EQ(first.load(), 60);
  EXPECT_EQ(second.load(), 15) << "the second run must start after the first run's checkpoints";
}

// Two lease workers (the KCL protocol of sluice/leases.hpp) over a cluster stream and the cluster
// lease store, cycled by hand on a manual clock: they split the shards, hand every record once
// and in order per key, and the survivor takes the leases a stopped worker released.
using cluster_stream = sluice::redis::stream<int, std::string, sluice::manual_clock>;
struct handled_log {
  std::mutex mutex;
  std::map<std::string, std::vector<int>> by_key;
  std::map<std::string, std::size_t> by_worker;
  std::size_t total() {
    std::lock_guard lock(mutex);
    std::size_t n = 0;
    for (auto& [w, c] : by_worker) n += c;
    return n;
  }
};
auto cluster_factory(handled_log& log, std::string worker) {
  using R = sluice::record<int>;
  return [&log, worker](sluice::shard_view<cluster_stream>& view) {
    return sluice::from(view) | sluice::batching(sluice::batch_size(10)) |
           sluice::invoke([&log, worker](const sluice::batch<R>& b) {
             std::lock_guard lock(log.mutex);
             for (const R& r : b) log.by_key[r.key].push_back(r.payload);
             log.by_worker[worker] += b.size();
           });
  };
}

TEST_F(RedisCluster, LeaseWorkersShareTheShardsAndHandOverOnStop) {
  sluice::redis::stream_options o;
  o.name = "leased";
  o.shards = 8;
  o.connection = cluster->options();
  cluster_stream stream(o, clock);
  sluice::redis::lease_store leases(cluster->options());
  handled_log log;
  sluice::lease_options lo;
  lo.lease_duration = 10s;
  lo.renew_interval = 3s;
  lo.worker_id = "a";
  sluice::lease_worker a(leases, stream, "orders", lo, cluster_factory(log, "a"), clock);
  lo.worker_id = "b";
  sluice::lease_worker b(leases, stream, "orders", lo, cluster_factory(log, "b"), clock);
  a.cycle(clock.now());
  EXPECT_EQ(a.held().size(), 8u);
  for (int i = 0; i < 8 && (a.held().size() != 4 || b.held().size() != 4); ++i) {
    b.cycle(clock.now());
    a.cycle(clock.now());
  }
  EXPECT_EQ(a.held().size(), 4u);
  EXPECT_EQ(b.held().size(), 4u);
  for (int i = 0; i < 300; ++i) stream.put("k" + std::to_string(i % 23), i);
  ASSERT_TRUE(eventually([&] { return log.total() == 300; }));
  a.stop();  // final checkpoints, leases released
  b.cycle(clock.now());
  EXPECT_EQ(b.held().size(), 8u) << "b takes the released leases at once";
  for (int i = 300; i < 400; ++i) stream.put("k" + std::to_string(i % 23), i);
  ASSERT_TRUE(eventually([&] { return log.total() == 400; })) << "records lost or duplicated";
  b.stop();
  std::lock_guard lock(log.mutex);
  std::set<int> seen;
  for (const auto& [key, payloads] : log.by_key) {
    EXPECT_TRUE(std::is_sorted(payloads.begin(), payloads.end())) << key;
    seen.insert(payloads.begin(), payloads.end());
  }
  EXPECT_EQ(seen.size(), 400u);
  for (sluice::shard_id_t s = 0; s < 8; ++s)
    EXPECT_EQ(leases.load("orders", s).value_or(0), stream.last_sequence(s)) << "shard " << s;
}

// ---- resharding: a slot with a shard's keys migrates while the shard is written and read ----

TEST_F(RedisCluster, ASlotMigratedDuringWritesAndReadsIsFollowedThroughAskAndMovedLosingNothing) {
  constexpr std::uint32_t shards = 4;
  string_stream writer_stream(stream_options(shards, "reshard"), clock);
  string_stream reader_stream(stream_options(shards, "reshard"), clock);  // another process
  std::vector<std::string> keys;  // keys of every shard, so each put_many spans nodes
  for (int i = 0; keys.size() < 12; ++i) keys.push_back("key" + std::to_string(i));
  const sluice::shard_id_t moving = sluice::shard_for(sluice::key_hash(keys[0]), shards);
  const std::string entries = writer_stream.key_of(moving);
  const std::string shard_hash = "sluice:{reshard:" + std::to_string(moving) + "}:shard";
  const std::uint32_t slot = key_slot(entries);
  ASSERT_EQ(key_slot(shard_hash), slot);
  const auto source = cluster->initial_owner(slot);
  const auto target = (source + 1) % cluster->size();

  std::atomic<bool> stop{false};
  std::atomic<std::size_t> writes{0}, reads{0};
  std::mutex failure_mutex;
  std::string failure;
  std::map<sluice::shard_id_t, std::vector<std::string>> written;  // writer thread only
  std::thread writer([&] {
    try {
      for (int i = 0; !stop.load(); ++i) {
        std::vector<std::pair<std::string, std::string>> batch;
        for (int j = 0; j < 4; ++j) {  // the moving shard's key first, then the others in turn
          const std::string& k =
              j == 0 ? keys[0] : keys[1 + static_cast<std::size_t>(i * 3 + j) % (keys.size() - 1)];
          batch.emplace_back(k, "p" + std::to_string(i) + "." + std::to_string(j));
        }
        const auto results = writer_stream.put_many(batch);
        for (std::size_t j = 0; j < results.size(); ++j) {
          auto& w = written[results[j].shard];
          w.push_back(batch[j].second);
          if (results[j].sequence != w.size())
            throw std::runtime_error("shard " + std::to_string(results[j].shard) + " got seq " +
                                     std::to_string(results[j].sequence) + ", expected " +
                                     std::to_string(w.size()));
        }
        const auto one = writer_stream.put(keys[0], "single" + std::to_string(i));
        written[one.shard].push_back("single" + std::to_string(i));
        writes += 5;
      }
    } catch (const std::exception& e) {
      std::lock_guard lock(failure_mutex);
      failure = std::string("writer: ") + e.what();
    }
  });
  std::vector<std::string> seen;  // what the reader read of the moving shard, in order
  std::thread reader([&] {
    try {
      sluice::sequence_number_t after = 0;
      while (!stop.load()) {
        const std::size_t n = reader_stream.read(moving, after, 50, [&](const record& r) {
          if (r.sequence != after + 1)
            throw std::runtime_error("read seq " + std::to_string(r.sequence) + " after " +
                                     std::to_string(after));
          after = r.sequence;
          seen.push_back(r.payload);
          return true;
        });
        reads += 1 + n;
        if (n == 0) std::this_thread::yield();
      }
    } catch (const std::exception& e) {
      std::lock_guard lock(failure_mutex);
      failure = std::string("reader: ") + e.what();
    }
  });
  // Stops and joins both threads however the test leaves (an ASSERT returns early).
  struct joiner {
    std::atomic<bool>& stop;
    std::thread& a;
    std::thread& b;
    ~joiner() {
      stop = true;
      if (a.joinable()) a.join();
      if (b.joinable()) b.join();
    }
  } join_threads{stop, writer, reader};
  auto progress = [&](std::atomic<std::size_t>& counter, std::size_t more) {
    const std::size_t from = counter.load();
    return eventually([&] {
      std::lock_guard lock(failure_mutex);
      return !failure.empty() || counter.load() >= from + more;
    });
  };
  auto src = cluster->direct(source);
  auto dst = cluster->direct(target);
  auto probe_cluster = cluster->options();
  sluice::redis::connection probe(probe_cluster);  // a cluster connection made before the move
  const std::string source_id = cluster->id(source), target_id = cluster->id(target);
  ASSERT_EQ(probe.node_of(entries), cluster->name(source));

  EXPECT_TRUE(progress(writes, 50));
  dst.command({"CLUSTER", "SETSLOT", std::to_string(slot), "IMPORTING", source_id});
  src.command({"CLUSTER", "SETSLOT", std::to_string(slot), "MIGRATING", target_id});
  EXPECT_TRUE(progress(writes, 50)) << "both keys still on the source: served there";
  // Move the entries alone: a read of them is now an ASK to the target, a put (both keys, one
  // missing) a TRYAGAIN until the shard hash follows.
  const auto port = std::to_string(cluster->node(target).port());
  src.command({"MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS", entries});
  const auto asked = src.pipeline_unchecked({{"XLEN", entries}});
  ASSERT_TRUE(asked.front().is_error());
  EXPECT_TRUE(text(asked.front().get()).starts_with("ASK " + std::to_string(slot)))
      << text(asked.front().get());
  EXPECT_TRUE(progress(reads, 20)) << "reads follow ASK to the target";
  const auto before = probe.redirections();
  EXPECT_GE(probe.command({"XLEN", entries})->integer, 1);
  EXPECT_EQ(probe.redirections(), before + 1) << "one ASK followed";
  EXPECT_EQ(probe.node_of(entries), cluster->name(source)) << "ASK leaves the slot map alone";
  src.command({"MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS", shard_hash});
  EXPECT_TRUE(progress(writes, 50)) << "puts follow ASK to the target (ASKING + script)";
  EXPECT_TRUE(progress(reads, 20));
  // Finish: the target owns the slot; the source answers MOVED from now on.
  dst.command({"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", target_id});
  src.command({"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", target_id});
  const auto moved = src.pipeline_unchecked({{"XLEN", entries}});
  ASSERT_TRUE(moved.front().is_error());
  EXPECT_EQ(text(moved.front().get()),
            "MOVED " + std::to_string(slot) + " " + cluster->name(target));
  EXPECT_TRUE(progress(writes, 50)) << "puts follow MOVED";
  EXPECT_TRUE(progress(reads, 20));
  const auto before_moved = probe.redirections();
  EXPECT_GE(probe.command({"XLEN", entries})->integer, 1);
  EXPECT_EQ(probe.redirections(), before_moved + 1) << "one MOVED followed";
  EXPECT_EQ(probe.node_of(entries), cluster->name(target)) << "MOVED updated the slot map";
  probe.command({"XLEN", entries});
  EXPECT_EQ(probe.redirections(), before_moved + 1) << "then straight to the new owner";
  stop = true;
  writer.join();
  reader.join();
  ASSERT_EQ(failure, "") << "a put or read failed during the migration";

  EXPECT_EQ(cluster->holder(entries), static_cast<int>(target));
  EXPECT_EQ(cluster->holder(shard_hash), static_cast<int>(target));
  for (sluice::shard_id_t s = 0; s < shards; ++s) {
    const auto got = read_all(writer_stream, s);
    ASSERT_EQ(got.size(), written[s].size()) << "shard " << s << ": records lost";
    for (std::size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].sequence, i + 1);
      ASSERT_EQ(got[i].payload, written[s][i]) << "shard " << s << " record " << i + 1;
    }
  }
  ASSERT_LE(seen.size(), written[moving].size());
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], written[moving][i]);
  EXPECT_GE(written[moving].size(), 100u) << "two puts per round went to the moving shard";
  // Put the slot back so the other tests of the suite see the initial layout.
  const auto back_port = std::to_string(cluster->node(source).port());
  src.command({"CLUSTER", "SETSLOT", std::to_string(slot), "IMPORTING", target_id});
  dst.command({"CLUSTER", "SETSLOT", std::to_string(slot), "MIGRATING", source_id});
  dst.command({"MIGRATE", "127.0.0.1", back_port, "", "0", "5000", "KEYS", entries, shard_hash});
  src.command({"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", source_id});
  dst.command({"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", source_id});
}

// ---- a node that dies and comes back ----

TEST(RedisClusterNodeFailure, ItsSlotsFailNamingTheNodeOthersCarryOnAndItIsReconnectedWhenBack) {
  sluice_test::redis_cluster cluster(3);  // its own: this test kills a node
  auto o = cluster.options();
  o.reconnect_attempts = 2;
  o.reconnect_initial = 5ms;
  o.reconnect_max = 5ms;
  sluice::redis::connection c(o);
  std::vector<std::string> on_node(3);
  for (int i = 0; std::any_of(on_node.begin(), on_node.end(), [](auto& k) { return k.empty(); });
       ++i) {
    const std::string key = "nf:" + std::to_string(i);
    on_node[cluster.initial_owner(key_slot(key))] = key;
  }
  for (const auto& key : on_node) c.command({"SET", key, "before"});
  cluster.node(2).kill_now();
  try {
    c.command({"GET", on_node[2]});
    FAIL() << "a dead node answered";
  } catch (const sluice::redis::error& e) {
    EXPECT_EQ(e.what_kind(), sluice::redis::error::kind::io_error);
    EXPECT_EQ(e.server(), cluster.name(2)) << "the error names the node, not the seed";
    EXPECT_EQ(e.command(), "GET " + on_node[2]);
  }
  EXPECT_EQ(text(c.command({"GET", on_node[0]}).get()), "before") << "other nodes carry on";
  EXPECT_EQ(text(c.command({"GET", on_node[1]}).get()), "before");
  cluster.node(2).restart();  // same port, same nodes.conf: the same node, its data gone
  cluster.wait_until_stable();
  c.command({"SET", on_node[2], "after"});  // the same connection reconnects to it
  EXPECT_EQ(text(cluster.direct(2).command({"GET", on_node[2]}).get()), "after");
}

TEST(RedisClusterNodeFailure, AfterAFailoverTheSameConnectionFindsThePromotedReplica) {
  sluice_test::redis_cluster cluster(3);
  const std::size_t replica = cluster.add_replica(2);
  auto o = cluster.options();
  o.reconnect_initial = 5ms;
  o.reconnect_max = 100ms;
  o.reconnect_attempts = 100;  // bounded; the takeover below is quick
  sluice::redis::connection c(o);
  std::string key;  // a key of the master that fails
  for (int i = 0; key.empty(); ++i) {
    const std::string k = "fo:" + std::to_string(i);
    if (cluster.initial_owner(key_slot(k)) == 2) key = k;
  }
  {
    auto master = cluster.direct(2);  // WAIT counts this connection's writes: same connection
    master.command({"SET", key, "kept"});
    ASSERT_EQ(master.command({"WAIT", "1", "5000"})->integer, 1) << "replicated before the crash";
  }
  EXPECT_EQ(c.node_of(key), cluster.name(2));
  cluster.node(2).kill_now();
  cluster.direct(replica).command({"CLUSTER", "FAILOVER", "TAKEOVER"});
  // The same connection: an I/O error on the dead master, a slot map refreshed from a live node,
  // and the command resent to the promoted replica.
  EXPECT_EQ(text(c.command({"GET", key}).get()), "kept");
  EXPECT_EQ(c.node_of(key), cluster.name(replica));
  c.command({"SET", key, "after"});
  EXPECT_EQ(text(cluster.direct(replica).command({"GET", key}).get()), "after");
}

}  // namespace
