// Tests of sluice::redis::stream against a private redis-server: it must behave as
// sluice::memory_stream and sluice::sqlite::stream do (S-1, S-1.4, retention), map sequence
// numbers to entry ids as documented, be shared by every stream object of the same name (other
// processes), keep one shard's keys in one cluster slot, and wake listeners for other
// producers' puts.
#include "sluice/redis/stream.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/clock.hpp"
#include "sluice/hash.hpp"
#include "sluice/source.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::sequence_number_t;
using sluice::shard_id_t;
using string_stream = sluice::redis::stream<std::string, std::string, sluice::manual_clock>;
using record = string_stream::record_type;

static_assert(sluice::source<sluice::redis::stream<std::string>>);
static_assert(sluice::source<sluice::redis::stream<std::vector<std::byte>, std::uint64_t>>);

struct RedisStream : ::testing::Test {
  sluice_test::redis_server server;
  sluice::manual_clock clock;

  sluice::redis::stream_options options(std::uint32_t shards, std::string name = "orders") {
    sluice::redis::stream_options o;
    o.name = std::move(name);
    o.shards = shards;
    o.connection = server.tcp();
    return o;
  }
  static std::vector<record> read_all(string_stream& s, shard_id_t shard,
                                      sequence_number_t after = 0) {
    std::vector<record> out;
    s.read(shard, after, 1'000'000, [&](const record& r) {
      out.push_back(r);
      return true;
    });
    return out;
  }
};

struct counting_listener final : sluice::data_listener {
  std::mutex mutex;
  std::condition_variable cv;
  std::map<shard_id_t, int> calls;
  void on_data(shard_id_t shard) noexcept override {
    {
      std::lock_guard lock(mutex);
      ++calls[shard];
    }
    cv.notify_all();
  }
  bool wait_for(shard_id_t shard, int n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 30s, [&] { return calls[shard] >= n; });
  }
};

struct point {
  int x = 0, y = 0;
  friend bool operator==(const point&, const point&) = default;
};

}  // namespace

// One specialization serves every store (sluice/payload_codec.hpp): SQLite's tests use the same.
template <>
struct sluice::payload_codec<point> {
  static std::string encode(const point& p) {
    return std::to_string(p.x) + "," + std::to_string(p.y);
  }
  static point decode(std::string_view bytes) {
    const auto comma = bytes.find(',');
    return {std::stoi(std::string(bytes.substr(0, comma))),
            std::stoi(std::string(bytes.substr(comma + 1)))};
  }
};

namespace {

TEST_F(RedisStream, AUserTypeRoundTripsThroughTheSharedPayloadCodec) {
  sluice::redis::stream<point, std::string, sluice::manual_clock> s(options(1, "points"), clock);
  s.put("k", point{3, -4});
  std::vector<point> seen;
  s.read(0, 0, 10, [&](const auto& r) {
    seen.push_back(r.payload);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<point>{{3, -4}}));
}

TEST_F(RedisStream, PutRoutesByKeyHashAndNumbersEachShardFromOne) {
  string_stream s(options(4), clock);
  std::map<shard_id_t, sequence_number_t> next;
  for (int i = 0; i < 40; ++i) {
    const std::string key = "key-" + std::to_string(i);
    const auto r = s.put(key, "v" + std::to_string(i));
    EXPECT_EQ(r.shard, sluice::shard_for(sluice::key_hash(key), 4)) << key;
    EXPECT_EQ(r.sequence, ++next[r.shard]) << key;
  }
  for (shard_id_t shard = 0; shard < 4; ++shard) {
    EXPECT_EQ(s.last_sequence(shard), next[shard]);
    EXPECT_EQ(read_all(s, shard).size(), next[shard]);
  }
}

TEST_F(RedisStream, SequenceNumberNIsEntryIdNDash0InTheShardsHashTaggedKey) {
  string_stream s(options(2), clock);
  const auto r = s.put("a", "x");
  EXPECT_EQ(s.key_of(r.shard), "sluice:{orders:" + std::to_string(r.shard) + "}:entries");
  sluice::redis::connection c(server.tcp());
  const auto entries = c.command({"XRANGE", s.key_of(r.shard), "-", "+"});
  ASSERT_EQ(entries->elements, 1u);
  EXPECT_EQ(sluice::redis::text(entries->element[0]->element[0]), "1-0");
}

TEST_F(RedisStream, ReadVisitsInSequenceOrderFromAfterUpToMaxAndStopsWhenVisitDeclines) {
  string_stream s(options(1), clock);
  for (int i = 1; i <= 10; ++i) s.put("k", std::to_string(i));
  std::vector<sequence_number_t> seen;
  const std::size_t n = s.read(0, 3, 4, [&](const record& r) {
    seen.push_back(r.sequence);
    return true;
  });
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(seen, (std::vector<sequence_number_t>{4, 5, 6, 7}));
  seen.clear();
  const std::size_t m = s.read(0, 0, 100, [&](const record& r) {
    seen.push_back(r.sequence);
    return r.sequence < 3;
  });
  EXPECT_EQ(m, 2u) << "the declined record is not consumed";
  EXPECT_EQ(seen, (std::vector<sequence_number_t>{1, 2, 3}));
  EXPECT_EQ(read_all(s, 0, 10).size(), 0u);
}

TEST_F(RedisStream, AnotherStreamObjectOfTheSameNameSeesTheSameRecords) {
  string_stream writer(options(2), clock);
  writer.put("a", "1");
  writer.put("b", "2");
  string_stream reader(options(2), clock);  // another process would open it the same way
  std::size_t total = 0;
  for (shard_id_t shard = 0; shard < 2; ++shard) total += read_all(reader, shard).size();
  EXPECT_EQ(total, 2u);
  const auto r = reader.put("a", "3");
  EXPECT_EQ(r.sequence, writer.last_sequence(r.shard)) << "one numbering for all writers";
}

TEST_F(RedisStream, OpeningWithAnotherShardCountIsRefusedNamingBothCounts) {
  string_stream s(options(4), clock);
  try {
    string_stream other(options(8), clock);
    FAIL() << "opened with another shard count";
  } catch (const sluice::configuration_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("has 4 shards"), std::string::npos) << what;
    EXPECT_NE(what.find("opened with 8"), std::string::npos) << what;
  }
}

TEST_F(RedisStream, InvalidOptionsAreRejectedWithTheParameterName) {
  auto expect_rejected = [&](sluice::redis::stream_options o, const std::string& parameter) {
    try {
      string_stream s(std::move(o), clock);
      ADD_FAILURE() << parameter << " accepted";
    } catch (const sluice::configuration_error& e) {
      EXPECT_NE(std::string(e.what()).find(parameter), std::string::npos) << e.what();
    }
  };
  expect_rejected(options(0), "shards");
  expect_rejected(options(1, ""), "stream_options::name");
  expect_rejected(options(1, "a{b}"), "stream_options::name");
  auto o = options(1);
  o.retention_count = 0;
  expect_rejected(o, "retention_count");
  o = options(1);
  o.retention_age = -1s;
  expect_rejected(o, "retention_age");
  o = options(1);
  o.connection.port = 0;
  expect_rejected(o, "connection_options::port");
}

TEST_F(RedisStream, ArrivalTimesComeFromTheClockAndNeverGoBackwardsInAShard) {
  sluice::manual_clock late(clock.now() + 10s);
  string_stream fast(options(1), late);
  string_stream slow(options(1), clock);
  fast.put("k", "1");  // arrives at t0 + 10 s
  slow.put("k", "2");  // its clock says t0: stamped t0 + 10 s, not earlier
  clock.advance(20s);
  slow.put("k", "3");
  const auto all = read_all(slow, 0);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].arrival, late.now());
  EXPECT_EQ(all[1].arrival, late.now());
  EXPECT_EQ(all[2].arrival, clock.now());
}

TEST_F(RedisStream, ResolvesTrimHorizonLatestAndAtTimestamp) {
  string_stream s(options(1), clock);
  const auto t0 = clock.now();
  for (int i = 1; i <= 10; ++i) {
    s.put("k", std::to_string(i));
    clock.advance(1s);
  }
  EXPECT_EQ(s.resolve(0, sluice::starting_position::trim_horizon), 0u);
  EXPECT_EQ(s.resolve(0, sluice::starting_position::latest), 10u);
  EXPECT_EQ(s.resolve(0, sluice::starting_position::at_timestamp(t0 + 3s)), 3u);
  EXPECT_EQ(s.resolve(0, sluice::starting_position::at_timestamp(t0 + 3500ms)), 4u);
  EXPECT_EQ(s.resolve(0, sluice::starting_position::at_timestamp(t0 - 1h)), 0u);
  EXPECT_EQ(s.resolve(0, sluice::starting_position::at_timestamp(t0 + 1h)), 10u);
  string_stream empty(options(1, "empty"), clock);
  EXPECT_EQ(empty.resolve(0, sluice::starting_position::trim_horizon), 0u);
  EXPECT_EQ(empty.resolve(0, sluice::starting_position::at_timestamp(t0)), 0u);
}

TEST_F(RedisStream, RetentionByCountKeepsTheNewestRecords) {
  auto o = options(1);
  o.retention_count = 3;
  string_stream s(o, clock);
  for (int i = 1; i <= 10; ++i) s.put("k", std::to_string(i));
  const auto kept = read_all(s, 0);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept.front().sequence, 8u);
  EXPECT_EQ(s.resolve(0, sluice::starting_position::trim_horizon), 7u);
  EXPECT_EQ(s.last_sequence(0), 10u);
  EXPECT_EQ(s.size(0), 3u);
}

TEST_F(RedisStream, RetentionByAgeHidesExpiredRecordsAndTrimDeletesThem) {
  auto o = options(1);
  o.retention_age = 1h;
  string_stream s(o, clock);
  for (int i = 1; i <= 5; ++i) s.put("k", std::to_string(i));
  clock.advance(30min);
  for (int i = 6; i <= 8; ++i) s.put("k", std::to_string(i));
  clock.advance(45min);  // 1-5 are 75 min old, 6-8 are 45 min old
  const auto kept = read_all(s, 0);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept.front().sequence, 6u) << "expired records are never read";
  EXPECT_EQ(s.trim(), 5u);
  EXPECT_EQ(s.resolve(0, sluice::starting_position::trim_horizon), 5u);
  EXPECT_EQ(s.size(0), 3u);
  clock.advance(1h);
  EXPECT_EQ(read_all(s, 0).size(), 0u);
  EXPECT_EQ(s.resolve(0, sluice::starting_position::trim_horizon), 8u) << "empty: after the last";
}

TEST_F(RedisStream, AReadOfOnlyExpiredRecordsTrimsThemAndGoesOnToTheRest) {
  auto o = options(1);
  o.retention_age = 1h;
  string_stream s(o, clock);
  for (int i = 1; i <= 50; ++i) s.put("k", std::to_string(i));
  clock.advance(2h);
  s.put("k", "51");  // trims 1-50 itself; now make an expired run a put does not trim
  sluice::redis::connection c(server.tcp());
  std::vector<sequence_number_t> seen;
  s.read(0, 0, 10, [&](const record& r) {
    seen.push_back(r.sequence);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<sequence_number_t>{51}));
}

TEST_F(RedisStream, PutManyPipelinesAndKeepsEachShardsOrder) {
  string_stream s(options(3), clock);
  std::vector<std::pair<std::string, std::string>> entries;
  for (int i = 0; i < 300; ++i)
    entries.emplace_back("key-" + std::to_string(i % 17), std::to_string(i));
  const auto results = s.put_many(entries);
  ASSERT_EQ(results.size(), 300u);
  std::map<shard_id_t, sequence_number_t> last;
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].shard, sluice::shard_for(sluice::key_hash(entries[i].first), 3));
    EXPECT_EQ(results[i].sequence, ++last[results[i].shard]);
  }
  for (shard_id_t shard = 0; shard < 3; ++shard) {
    const auto all = read_all(s, shard);
    for (const record& r : all) EXPECT_EQ(entries[std::stoul(r.payload)].first, r.key);
  }
}

TEST_F(RedisStream, PutManyStillWorksAfterTheServerForgotItsScripts) {
  string_stream s(options(2), clock);
  s.put("a", "1");
  sluice::redis::connection(server.tcp()).command({"SCRIPT", "FLUSH"});
  const auto results = s.put_many({{"a", "2"}, {"b", "3"}});
  EXPECT_EQ(results.size(), 2u);
}

TEST_F(RedisStream, PayloadsOfEachBuiltInKindRoundTripExactly) {
  auto o = options(1);
  sluice::redis::stream<std::vector<std::byte>, std::uint64_t, sluice::manual_clock> bytes(o,
                                                                                           clock);
  std::vector<std::byte> blob{std::byte{0}, std::byte{0xff}, std::byte{'\n'}, std::byte{0}};
  bytes.put(42u, blob);
  std::vector<std::byte> got;
  std::uint64_t key = 0;
  bytes.read(0, 0, 10, [&](const auto& r) {
    got = r.payload;
    key = r.key;
    return true;
  });
  EXPECT_EQ(got, blob);
  EXPECT_EQ(key, 42u);
  o.name = "doubles";
  sluice::redis::stream<double, std::string, sluice::manual_clock> doubles(o, clock);
  doubles.put("k", 0.1);
  double d = 0;
  doubles.read(0, 0, 1, [&](const auto& r) {
    d = r.payload;
    return true;
  });
  EXPECT_EQ(d, 0.1);
}

TEST_F(RedisStream, ListenersAreToldOfOwnPutsAndOfPutsByOtherStreamObjects) {
  string_stream s(options(4), clock);
  counting_listener listener;
  s.subscribe(&listener);
  const auto own = s.put("a", "1");
  EXPECT_TRUE(listener.wait_for(own.shard, 1));
  string_stream other(options(4), clock);  // another process: only the channel can tell us
  int before = 0;
  const shard_id_t shard = sluice::shard_for(sluice::key_hash(std::string("zz")), 4);
  {
    std::lock_guard lock(listener.mutex);
    before = listener.calls[shard];
  }
  other.put("zz", "2");
  EXPECT_TRUE(listener.wait_for(shard, before + 1));
  s.unsubscribe(&listener);
}

TEST_F(RedisStream, TheWatcherWakesEveryShardAfterTheServerRestarts) {
  sluice_test::redis_server aof(sluice_test::redis_server_options::with_aof());
  auto o = options(2);
  o.connection = aof.tcp();
  string_stream s(o, clock);
  counting_listener listener;
  s.subscribe(&listener);
  ASSERT_TRUE(listener.wait_for(1, 1));  // the first subscription wakes every shard
  aof.restart();
  EXPECT_TRUE(listener.wait_for(1, 2)) << "not woken after the watcher reconnected";
  s.unsubscribe(&listener);
}

}  // namespace
