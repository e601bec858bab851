// Tests of sluice::sqlite::stream: it must behave as sluice::memory_stream does (S-1, S-1.4,
// retention), survive reopening, stay gap-free under concurrent producers (threads and
// processes), and make outbox puts atomic with the caller's own rows.
#include "sluice/sqlite/stream.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sluice/clock.hpp"
#include "sluice/hash.hpp"
#include "sluice/source.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::sequence_number_t;
using sluice::shard_id_t;
using string_stream = sluice::sqlite::stream<std::string, std::string, sluice::manual_clock>;
using record = string_stream::record_type;

static_assert(sluice::source<sluice::sqlite::stream<std::string>>);
static_assert(sluice::source<sluice::sqlite::stream<std::vector<std::byte>, std::uint64_t>>);

std::vector<record> read_all(string_stream& s, shard_id_t shard, sequence_number_t after = 0) {
  std::vector<record> out;
  s.read(shard, after, 1'000'000, [&](const record& r) {
    out.push_back(r);
    return true;
  });
  return out;
}

sluice::sqlite::stream_options options(std::uint32_t shards, std::string name = "orders") {
  sluice::sqlite::stream_options o;
  o.name = std::move(name);
  o.shards = shards;
  return o;
}

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
  int count(shard_id_t shard) {
    std::lock_guard lock(mutex);
    return calls[shard];
  }
  bool wait_for(shard_id_t shard, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return calls[shard] > 0; });
  }
};

TEST(SqliteStream, PutRoutesByKeyHashAndNumbersEachShardFromOne) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  string_stream s(dir / "s.db", options(4), clock);
  std::map<shard_id_t, sequence_number_t> expected_next;
  for (int i = 0; i < 40; ++i) {
    const std::string key = "key-" + std::to_string(i % 7);
    const auto r = s.put(key, "payload-" + std::to_string(i));
    EXPECT_EQ(r.shard, sluice::shard_for(sluice::key_hash(key), 4));
    EXPECT_EQ(r.sequence, ++expected_next[r.shard]);
  }
  for (const auto& [shard, last] : expected_next) EXPECT_EQ(s.last_sequence(shard), last);
  EXPECT_EQ(s.shard_count(), 4u);
  EXPECT_EQ(s.name(), "orders");
}

TEST(SqliteStream, ReadVisitsInSequenceOrderFromAfterUpToMaxAndStopsWhenVisitDeclines) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  string_stream s(dir / "s.db", options(1), clock);
  for (int i = 1; i <= 10; ++i) s.put("k", std::to_string(i));
  std::vector<sequence_number_t> seen;
  auto collect = [&](const record& r) {
    seen.push_back(r.sequence);
    return true;
  };
  EXPECT_EQ(s.read(0, 3, 4, collect), 4u);
  EXPECT_EQ(seen, (std::vector<sequence_number_t>{4, 5, 6, 7}));
  seen.clear();
  // The record for which visit returns false is not consumed.
  EXPECT_EQ(s.read(0, 0, 100, [&](const record& r) { return r.sequence < 3 && collect(r); }), 2u);
  EXPECT_EQ(s.read(0, 10, 100, collect), 0u);
  EXPECT_EQ(s.read(0, 0, 0, collect), 0u);
  const auto all = read_all(s, 0);
  ASSERT_EQ(all.size(), 10u);
  EXPECT_EQ(all[4].key, "k");
  EXPECT_EQ(all[4].payload, "5");
}

TEST(SqliteStream, RecordsAndSequencesSurviveReopening) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  {
    string_stream s(dir / "s.db", options(2), clock);
    s.put("a", "1");
    s.put("a", "2");
  }
  string_stream s(dir / "s.db", options(2), clock);
  const shard_id_t shard = sluice::shard_for(sluice::key_hash(std::string("a")), 2);
  EXPECT_EQ(s.last_sequence(shard), 2u);
  EXPECT_EQ(s.put("a", "3").sequence, 3u);
  const auto all = read_all(s, shard);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2].payload, "3");
}

TEST(SqliteStream, ReopeningWithAnotherShardCountIsRefusedNamingBothCounts) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  { string_stream s(dir / "s.db", options(4), clock); }
  try {
    string_stream s(dir / "s.db", options(8), clock);
    FAIL() << "expected configuration_error";
  } catch (const sluice::configuration_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("shards = 8"), std::string::npos) << what;
    EXPECT_NE(what.find("created with"), std::string::npos) << what;
    EXPECT_NE(what.find((dir / "s.db").string()), std::string::npos) << what;
  }
}

TEST(SqliteStream, SeveralStreamsInOneFileAreIndependent) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  string_stream orders(dir / "s.db", options(1, "orders"), clock);
  string_stream payments(dir / "s.db", options(3, "payments"), clock);
  orders.put("k", "o1");
  orders.put("k", "o2");
  const auto p = payments.put("k", "p1");
  EXPECT_EQ(p.sequence, 1u);
  EXPECT_EQ(read_all(orders, 0).size(), 2u);
  EXPECT_EQ(read_all(payments, p.shard).size(), 1u);
}

TEST(SqliteStream, InvalidOptionsAreRejectedWithTheParameterName) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  EXPECT_THROW(string_stream(dir / "s.db", options(0), clock), sluice::configuration_error);
  auto o = options(1);
  o.retention_count = 0;
  EXPECT_THROW(string_stream(dir / "s.db", o, clock), sluice::configuration_error);
}

// A clock that can be set backwards, to show arrival times still never decrease in a shard.
struct rewindable_clock {
  sluice::time_point t = sluice::time_point{} + 1000h;
  sluice::time_point now() const { return t; }
  void sleep_until(sluice::time_point, sluice::sleeper&) {}
  void wake(sluice::sleeper&) {}
};

TEST(SqliteStream, ArrivalTimesComeFromTheClockAndNeverGoBackwardsInAShard) {
  sluice_test::temp_dir dir;
  rewindable_clock clock;
  sluice::sqlite::stream<std::string, std::string, rewindable_clock> s(dir / "s.db", options(1),
                                                                       clock);
  s.put("k", "1");
  clock.t -= 10s;
  s.put("k", "2");
  clock.t += 60s;
  s.put("k", "3");
  std::vector<sluice::time_point> arrivals;
  s.read(0, 0, 10, [&](const auto& r) {
    arrivals.push_back(r.arrival);
    return true;
  });
  const auto start = sluice::time_point{} + 1000h;
  EXPECT_EQ(arrivals, (std::vector<sluice::time_point>{start, start, start + 50s}));
}

TEST(SqliteStream, ResolvesTrimHorizonLatestAndAtTimestamp) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  string_stream s(dir / "s.db", options(1), clock);
  using sp = sluice::starting_position;
  EXPECT_EQ(s.resolve(0, sp::trim_horizon), 0u);
  EXPECT_EQ(s.resolve(0, sp::latest), 0u);
  const auto t0 = clock.now();
  for (int i = 0; i < 5; ++i) {
    s.put("k", std::to_string(i));
    clock.advance(10s);
  }  // arrivals t0, t0+10s, ..., t0+40s for sequences 1..5
  EXPECT_EQ(s.resolve(0, sp::trim_horizon), 0u);
  EXPECT_EQ(s.resolve(0, sp::latest), 5u);
  EXPECT_EQ(s.resolve(0, sp::at_timestamp(t0 + 20s)), 2u);  // first arrival >= t is seq 3
  EXPECT_EQ(s.resolve(0, sp::at_timestamp(t0 + 15s)), 2u);
  EXPECT_EQ(s.resolve(0, sp::at_timestamp(t0 - 1h)), 0u);
  EXPECT_EQ(s.resolve(0, sp::at_timestamp(t0 + 1h)), 5u);  // none yet: only later records
}

TEST(SqliteStream, RetentionByCountKeepsTheNewestRecords) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  auto o = options(1);
  o.retention_count = 3;
  string_stream s(dir / "s.db", o, clock);
  for (int i = 1; i <= 10; ++i) s.put("k", std::to_string(i));
  const auto all = read_all(s, 0);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all.front().sequence, 8u);
  EXPECT_EQ(s.size(0), 3u);
  EXPECT_EQ(s.resolve(0, sluice::starting_position::trim_horizon), 7u);
  EXPECT_EQ(s.last_sequence(0), 10u);
  EXPECT_EQ(s.put("k", "11").sequence, 11u);  // trimming never reuses sequence numbers
}

TEST(SqliteStream, RetentionByAgeHidesExpiredRecordsAndTrimDeletesThem) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  auto o = options(1);
  o.retention_age = 1h;
  string_stream s(dir / "s.db", o, clock);
  s.put("k", "old-1");
  s.put("k", "old-2");
  clock.advance(50min);
  s.put("k", "new");
  clock.advance(20min);  // the first two are now 70 minutes old
  const auto all = read_all(s, 0);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].payload, "new");
  EXPECT_EQ(s.resolve(0, sluice::starting_position::trim_horizon), 2u);
  EXPECT_EQ(s.trim(), 2u);
  EXPECT_EQ(s.trim(), 0u);
  EXPECT_EQ(s.size(0), 1u);
  clock.advance(2h);
  s.put("k", "newest");  // a put trims its shard: "new" goes
  EXPECT_EQ(s.trim(), 0u);
  const auto after = read_all(s, 0);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].sequence, 4u);
}

TEST(SqliteStream, PutManyCommitsAllInOneTransaction) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  string_stream s(dir / "s.db", options(2), clock);
  std::vector<std::pair<std::string, std::string>> entries;
  for (int i = 0; i < 100; ++i)
    entries.emplace_back("k" + std::to_string(i % 5), std::to_string(i));
  const auto results = s.put_many(entries);
  ASSERT_EQ(results.size(), 100u);
  EXPECT_EQ(read_all(s, 0).size() + read_all(s, 1).size(), 100u);
  const auto more = s.put_many({{"a", "x"}, {"b", "y"}});
  EXPECT_EQ(more.size(), 2u);
}

struct order {
  int id = 0;
  std::string item;
  friend bool operator==(const order&, const order&) = default;
};

}  // namespace

template <>
struct sluice::payload_codec<order> {
  static std::string encode(const order& o) {
    if (o.id < 0) throw std::invalid_argument("negative order id");
    return std::to_string(o.id) + "|" + o.item;
  }
  static order decode(std::string_view bytes) {
    const auto bar = bytes.find('|');
    return {std::stoi(std::string(bytes.substr(0, bar))), std::string(bytes.substr(bar + 1))};
  }
};

namespace {

TEST(SqliteStream, PutManyStoresNothingWhenOneEntryFails) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  sluice::sqlite::stream<order, std::string, sluice::manual_clock> s(dir / "s.db", options(1),
                                                                     clock);
  s.put("k", {1, "first"});
  std::vector<std::pair<std::string, order>> entries{{"k", {2, "a"}}, {"k", {-1, "bad"}}};
  EXPECT_THROW(s.put_many(entries), std::invalid_argument);
  EXPECT_EQ(s.last_sequence(0), 1u);
  EXPECT_EQ(s.put("k", {3, "third"}).sequence, 2u);  // no gap left by the failed batch
  std::vector<order> seen;
  s.read(0, 0, 10, [&](const auto& r) {
    seen.push_back(r.payload);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<order>{{1, "first"}, {3, "third"}}));
}

template <class Payload, class Key>
Payload round_trip(const std::filesystem::path& file, const Key& key, const Payload& payload) {
  sluice::sqlite::stream<Payload, Key> s(file, options(1));
  s.put(key, payload);
  Payload out{};
  Key key_out{};
  s.read(0, 0, 1, [&](const auto& r) {
    out = r.payload;
    key_out = r.key;
    return true;
  });
  EXPECT_EQ(key_out, key);
  return out;
}

TEST(SqliteStream, PayloadsOfEachBuiltInKindRoundTripExactly) {
  sluice_test::temp_dir dir;
  const std::string with_nul("a\0b\xff", 4);
  EXPECT_EQ(round_trip(dir / "1.db", std::string("k"), with_nul), with_nul);
  EXPECT_EQ(round_trip(dir / "2.db", std::string("k"), std::string()), std::string());
  const std::vector<std::byte> bytes{std::byte{0}, std::byte{0xff}, std::byte{7}};
  EXPECT_EQ(round_trip(dir / "3.db", std::uint64_t{42}, bytes), bytes);
  const std::vector<unsigned char> uchars{0, 1, 255};
  EXPECT_EQ(round_trip(dir / "4.db", -7, uchars), uchars);
  EXPECT_EQ(round_trip(dir / "5.db", std::string("k"), UINT64_MAX), UINT64_MAX);
  EXPECT_EQ(round_trip(dir / "6.db", std::string("k"), -12345), -12345);
  EXPECT_EQ(round_trip(dir / "7.db", std::string("k"), 2.5), 2.5);
  EXPECT_EQ(round_trip(dir / "8.db", std::string("k"), order{7, "tea"}), (order{7, "tea"}));
  EXPECT_EQ(round_trip(dir / "9.db", std::string("k\0k", 3), std::string("v")), "v");
}

// Producers on 4 threads put 4 x 500 records over 16 keys into 3 shards. Every shard must hold
// 1..n without a gap, and every key's records must appear in the order its producer put them.
void expect_gap_free_and_ordered(string_stream& s, int producers, int per_producer) {
  std::size_t total = 0;
  for (shard_id_t shard = 0; shard < s.shard_count(); ++shard) {
    const auto all = read_all(s, shard);
    total += all.size();
    std::map<std::string, int> last_index;
    for (std::size_t i = 0; i < all.size(); ++i) {
      ASSERT_EQ(all[i].sequence, i + 1) << "gap in shard " << shard;
      EXPECT_EQ(sluice::shard_for(sluice::key_hash(all[i].key), s.shard_count()), shard);
      const int index = std::stoi(all[i].payload);
      auto [it, fresh] = last_index.try_emplace(all[i].key, index);
      if (!fresh) {
        EXPECT_GT(index, it->second) << "key " << all[i].key << " out of order";
        it->second = index;
      }
    }
  }
  EXPECT_EQ(total, static_cast<std::size_t>(producers * per_producer));
}

TEST(SqliteStream, ConcurrentProducersGetGapFreeSequencesPerShard) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  auto o = options(3);
  o.database.synchronous = sluice::sqlite::synchronous_mode::normal;
  string_stream s(dir / "s.db", o, clock);
  constexpr int producers = 4, per_producer = 500;
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < per_producer; ++i) {
        // Each key belongs to one producer, so its put order is the producer's loop order.
        s.put("p" + std::to_string(p) + "-key" + std::to_string(i % 4), std::to_string(i));
      }
    });
  }
  for (auto& t : threads) t.join();
  expect_gap_free_and_ordered(s, producers, per_producer);
}

TEST(SqliteStream, ProducersWithSeparateConnectionsGetGapFreeSequences) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  auto o = options(3);
  o.database.synchronous = sluice::sqlite::synchronous_mode::normal;
  string_stream reader(dir / "s.db", o, clock);
  constexpr int producers = 4, per_producer = 200;
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      string_stream mine(dir / "s.db", o, clock);  // its own connections, like another process
      for (int i = 0; i < per_producer; i += 2) {
        const std::string key = "p" + std::to_string(p) + "-key" + std::to_string(i % 3);
        mine.put_many({{key, std::to_string(i)}, {key, std::to_string(i + 1)}});
      }
    });
  }
  for (auto& t : threads) t.join();
  expect_gap_free_and_ordered(reader, producers, per_producer);
}

TEST(SqliteStream, ProducersInSeparateProcessesGetGapFreeSequences) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  auto o = options(2);
  o.database.synchronous = sluice::sqlite::synchronous_mode::normal;
  { string_stream create(dir / "s.db", o, clock); }
  constexpr int producers = 3, per_producer = 150;
  std::vector<pid_t> children;
  for (int p = 0; p < producers; ++p) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int code = 0;
      try {
        string_stream mine(dir / "s.db", o, clock);
        for (int i = 0; i < per_producer; ++i) {
          mine.put("proc" + std::to_string(p) + "-key" + std::to_string(i % 5), std::to_string(i));
        }
      } catch (...) {
        code = 1;
      }
      _exit(code);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  string_stream reader(dir / "s.db", o, clock);
  expect_gap_free_and_ordered(reader, producers, per_producer);
}

TEST(SqliteStream, OutboxPutCommitsWithTheCallersBusinessRow) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  string_stream s(dir / "app.db", options(1), clock);
  sluice::sqlite::database app(dir / "app.db");
  app.exec("CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT)");
  app.in_transaction([&](sluice::sqlite::transaction& tx) {
    app.exec("INSERT INTO orders VALUES(1, 'tea')");
    s.put(tx, "order-1", R"({"id":1})");
  });
  const auto all = read_all(s, 0);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].payload, R"({"id":1})");
  auto count = app.prepare("SELECT count(*) FROM orders");
  count.step();
  EXPECT_EQ(count.column_int64(0), 1);
}

TEST(SqliteStream, RolledBackOutboxTransactionLeavesNeitherRowNorEventNorGap) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  string_stream s(dir / "app.db", options(1), clock);
  sluice::sqlite::database app(dir / "app.db");
  app.exec("CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT)");
  EXPECT_THROW(app.in_transaction([&](sluice::sqlite::transaction& tx) {
    app.exec("INSERT INTO orders VALUES(1, 'tea')");
    s.put(tx, "order-1", "event");
    throw std::runtime_error("payment declined");
  }),
               std::runtime_error);
  EXPECT_TRUE(read_all(s, 0).empty());
  EXPECT_EQ(s.last_sequence(0), 0u);
  auto count = app.prepare("SELECT count(*) FROM orders");
  count.step();
  EXPECT_EQ(count.column_int64(0), 0);
  EXPECT_EQ(s.put("order-2", "next").sequence, 1u);
}

TEST(SqliteStream, OutboxPutOnARawConnectionJoinsItsTransaction) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  string_stream s(dir / "app.db", options(1), clock);
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "app.db").c_str(), &raw), SQLITE_OK);
  sqlite3_busy_timeout(raw, 5000);
  ASSERT_EQ(sqlite3_exec(raw, "CREATE TABLE orders(id INTEGER)", nullptr, nullptr, nullptr), 0);
  EXPECT_THROW(s.put(raw, "k", "no transaction"), std::logic_error);
  ASSERT_EQ(
      sqlite3_exec(raw, "BEGIN IMMEDIATE; INSERT INTO orders VALUES(1)", nullptr, nullptr, nullptr),
      0);
  s.put(raw, "k", "rolled back");
  ASSERT_EQ(sqlite3_exec(raw, "ROLLBACK", nullptr, nullptr, nullptr), 0);
  EXPECT_TRUE(read_all(s, 0).empty());
  ASSERT_EQ(
      sqlite3_exec(raw, "BEGIN IMMEDIATE; INSERT INTO orders VALUES(2)", nullptr, nullptr, nullptr),
      0);
  const auto r = s.put(raw, "k", "committed");
  ASSERT_EQ(sqlite3_exec(raw, "COMMIT", nullptr, nullptr, nullptr), 0);
  EXPECT_EQ(r.sequence, 1u);
  const auto all = read_all(s, 0);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].payload, "committed");
  sqlite3_close(raw);
}

TEST(SqliteStream, OutboxPutOnAnotherFileIsRefused) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  string_stream s(dir / "events.db", options(1), clock);
  sluice::sqlite::database other(dir / "other.db");
  auto tx = other.begin();
  EXPECT_THROW(s.put(tx, "k", "v"), std::invalid_argument);
}

TEST(SqliteStream, ListenersAreToldAfterPutsAndOnlyAfterOutboxCommits) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  auto o = options(1);
  o.poll_interval = 0ms;  // no watcher: only direct notifications count here
  string_stream s(dir / "s.db", o, clock);
  counting_listener listener;
  s.subscribe(&listener);
  s.put("k", "1");
  EXPECT_EQ(listener.count(0), 1);
  sluice::sqlite::database app(dir / "s.db");
  {
    auto tx = app.begin();
    s.put(tx, "k", "2");
    EXPECT_EQ(listener.count(0), 1);  // not visible yet: not told yet
  }                                   // rolled back
  EXPECT_EQ(listener.count(0), 1);
  {
    auto tx = app.begin();
    s.put(tx, "k", "3");
    tx.commit();
  }
  EXPECT_EQ(listener.count(0), 2);
  s.unsubscribe(&listener);
  s.put("k", "4");
  EXPECT_EQ(listener.count(0), 2);
}

TEST(SqliteStream, WatcherWakesListenersForPutsFromOtherConnections) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock;
  auto o = options(4);
  o.poll_interval = 10ms;
  string_stream s(dir / "s.db", o, clock);
  counting_listener listener;
  s.subscribe(&listener);
  string_stream other_process(dir / "s.db", o, clock);
  const auto r = other_process.put("k", "from elsewhere");
  EXPECT_TRUE(listener.wait_for(r.shard, 10s));
  for (shard_id_t shard = 0; shard < 4; ++shard) {
    if (shard != r.shard) {
      EXPECT_EQ(listener.count(shard), 0) << "shard " << shard;
    }
  }
  s.unsubscribe(&listener);
  EXPECT_EQ(s.poll_interval(), 10ms);
}

}  // namespace
