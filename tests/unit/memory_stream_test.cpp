// Tests for sluice/sources/memory_stream.hpp: concurrent puts keep per-shard sequences gap-free and
// per-key order (S-1.1, S-1.2); arrival times never go backwards within a shard; retention by
// count and by age; reads from a position; starting positions (S-1.4); data listeners.
#include "sluice/sources/memory_stream.hpp"

#include "sluice/sluice.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <latch>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using stream_type = sluice::memory_stream<int, std::string, sluice::manual_clock>;
using record_type = stream_type::record_type;
using seqs = std::vector<sluice::sequence_number_t>;

/// Every record retained in a shard, read from the start.
std::vector<record_type> read_all(stream_type& s, sluice::shard_id_t shard) {
  std::vector<record_type> out;
  s.read(shard, 0, std::numeric_limits<std::size_t>::max(), [&](const record_type& r) {
    out.push_back(r);
    return true;
  });
  return out;
}

seqs sequences(const std::vector<record_type>& records) {
  seqs out;
  for (const auto& r : records) out.push_back(r.sequence);
  return out;
}

/// Counts on_data calls per shard.
struct counting_listener final : sluice::data_listener {
  std::map<sluice::shard_id_t, int> calls;
  void on_data(sluice::shard_id_t shard) noexcept override { ++calls[shard]; }
};

/// A clock that goes back in time on every now(): a wall clock stepped backwards by NTP.
struct stepping_back_clock {
  sluice::time_point t = sluice::time_point{} + 1000h;
  sluice::time_point now() const { return t; }
  void sleep_until(sluice::time_point, sluice::sleeper&) {}
  void wake(sluice::sleeper&) {}
};
static_assert(sluice::clock_type<stepping_back_clock>);

}  // namespace

TEST(MemoryStream, PutPlacesARecordInTheShardOfItsKeyHash) {
  sluice::manual_clock clock;
  stream_type s(8, clock);
  for (std::string key : {"a", "b", "order-42", "device/7", ""}) {
    const auto where = s.put(key, 1);
    EXPECT_EQ(where.shard, sluice::shard_for(sluice::key_hash(key), 8)) << "key " << key;
  }
  EXPECT_EQ(s.shard_count(), 8u);
}

TEST(MemoryStream, SequencesStartAtOneAndAreGapFreePerShard) {
  sluice::manual_clock clock;
  stream_type s(1, clock);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(s.put("k" + std::to_string(i), i).sequence,
              static_cast<sluice::sequence_number_t>(i + 1));
  EXPECT_EQ(s.last_sequence(0), 5u);
  EXPECT_EQ(sequences(read_all(s, 0)), (seqs{1, 2, 3, 4, 5}));
}

TEST(MemoryStream, ConcurrentPutsFromFourThreadsKeepSequencesGapFreeAndKeysInOrder) {
  sluice::manual_clock clock;
  constexpr std::uint32_t shards = 2;  // few shards: the producers contend on each shard's lock
  stream_type s(shards, clock);
  constexpr int threads = 4;
  constexpr int keys_per_thread = 4;
  constexpr int puts_per_key = 1000;
  std::vector<std::vector<std::string>> keys(threads);
  for (int t = 0; t < threads; ++t) {
    for (int k = 0; k < keys_per_thread; ++k)
      keys[t].push_back("t" + std::to_string(t) + "-k" + std::to_string(k));
  }
  std::latch start(threads);
  std::vector<std::thread> producers;
  for (int t = 0; t < threads; ++t) {
    producers.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < puts_per_key; ++i) {
        for (const auto& key : keys[t]) s.put(key, i);
      }
    });
  }
  for (auto& p : producers) p.join();

  std::size_t total = 0;
  for (sluice::shard_id_t id = 0; id < shards; ++id) {
    const auto records = read_all(s, id);
    total += records.size();
    std::map<std::string, int> next_payload;  // per key: the payload its next record must carry
    for (std::size_t i = 0; i < records.size(); ++i) {
      ASSERT_EQ(records[i].sequence, i + 1) << "shard " << id << " has a gap or duplicate";
      ASSERT_EQ(sluice::shard_for(sluice::key_hash(records[i].key), shards), id);
      ASSERT_EQ(records[i].payload, next_payload[records[i].key]++)
          << "key " << records[i].key << " out of put order in shard " << id;
    }
    EXPECT_EQ(s.last_sequence(id), records.size());
    EXPECT_EQ(s.size(id), records.size());
    for (const auto& [key, n] : next_payload) EXPECT_EQ(n, puts_per_key) << "key " << key;
  }
  EXPECT_EQ(total, static_cast<std::size_t>(threads * keys_per_thread * puts_per_key));
}

TEST(MemoryStream, ArrivalTimesComeFromTheClockAndNeverDecreaseWithinAShard) {
  sluice::manual_clock clock;
  stream_type s(2, clock);
  std::thread advancer([&] {
    for (int i = 0; i < 2000; ++i) clock.advance(1ms);
  });
  std::vector<std::thread> producers;
  for (int t = 0; t < 4; ++t) {
    producers.emplace_back([&s, t] {
      for (int i = 0; i < 500; ++i)
        s.put("t" + std::to_string(t) + "-" + std::to_string(i % 16), i);
    });
  }
  for (auto& p : producers) p.join();
  advancer.join();
  const auto end = clock.now();
  for (sluice::shard_id_t id = 0; id < 2; ++id) {
    const auto records = read_all(s, id);
    for (std::size_t i = 1; i < records.size(); ++i) {
      EXPECT_LE(records[i - 1].arrival, records[i].arrival)
          << "shard " << id << " record " << i + 1;
    }
    for (const auto& r : records) EXPECT_LE(r.arrival, end);
  }
  const auto stamped = s.put("late", 0);
  EXPECT_EQ(read_all(s, stamped.shard).back().arrival, end);  // the clock's now, exactly
}

TEST(MemoryStream, ArrivalTimesStayMonotonicWhenTheClockStepsBack) {
  stepping_back_clock clock;
  sluice::memory_stream<int, std::string, stepping_back_clock> s(1, clock);
  const auto t0 = clock.t;
  s.put("a", 1);
  clock.t = t0 - 1h;
  s.put("b", 2);
  clock.t = t0 + 1s;
  s.put("c", 3);
  std::vector<sluice::time_point> arrivals;
  s.read(0, 0, 10, [&](const auto& r) {
    arrivals.push_back(r.arrival);
    return true;
  });
  EXPECT_EQ(arrivals, (std::vector<sluice::time_point>{t0, t0, t0 + 1s}));
}

TEST(MemoryStream, RetentionByCountTrimsTheOldestRecords) {
  sluice::manual_clock clock;
  stream_type s(
      sluice::stream_options{.shards = 1, .retention_age = std::nullopt, .retention_count = 3},
      clock);
  for (int i = 1; i <= 5; ++i) s.put("k", i);
  EXPECT_EQ(s.size(0), 3u);
  EXPECT_EQ(sequences(read_all(s, 0)), (seqs{3, 4, 5}));
  EXPECT_EQ(s.last_sequence(0), 5u);  // numbering continues past trimmed records
  EXPECT_EQ(s.put("k", 6).sequence, 6u);
  EXPECT_EQ(sequences(read_all(s, 0)), (seqs{4, 5, 6}));
}

TEST(MemoryStream, RetentionByAgeTrimsRecordsOlderThanTheRetention) {
  sluice::manual_clock clock;
  stream_type s(sluice::stream_options{.shards = 1, .retention_age = 10s}, clock);
  s.put("k", 1);  // t0
  clock.advance(4s);
  s.put("k", 2);      // t0 + 4s
  clock.advance(6s);  // now t0 + 10s: record 1 is exactly 10 s old, still retained
  s.trim();
  EXPECT_EQ(s.size(0), 2u);
  clock.advance(1ms);  // record 1 is now older than 10 s
  s.trim();
  EXPECT_EQ(s.size(0), 1u);
  EXPECT_EQ(sequences(read_all(s, 0)), (seqs{2}));
  clock.advance(1h);
  EXPECT_TRUE(read_all(s, 0).empty());  // read() trims too
  EXPECT_EQ(s.size(0), 0u);
  EXPECT_EQ(s.last_sequence(0), 2u);
  EXPECT_EQ(s.put("k", 3).sequence, 3u);
}

TEST(MemoryStream, ReadStartsAfterTheGivenPositionAndStopsAtMax) {
  sluice::manual_clock clock;
  stream_type s(1, clock);
  for (int i = 1; i <= 10; ++i) s.put("k", i * 10);
  seqs seen;
  auto collect = [&](const record_type& r) {
    seen.push_back(r.sequence);
    return true;
  };
  EXPECT_EQ(s.read(0, 4, 3, collect), 3u);
  EXPECT_EQ(seen, (seqs{5, 6, 7}));
  seen.clear();
  EXPECT_EQ(s.read(0, 8, 100, collect), 2u);
  EXPECT_EQ(seen, (seqs{9, 10}));
  seen.clear();
  EXPECT_EQ(s.read(0, 10, 100, collect), 0u);
  EXPECT_EQ(s.read(0, 0, 0, collect), 0u);
  EXPECT_TRUE(seen.empty());
}

TEST(MemoryStream, ReadStopsWhenTheVisitorRefusesAndDoesNotConsumeThatRecord) {
  sluice::manual_clock clock;
  stream_type s(1, clock);
  for (int i = 1; i <= 5; ++i) s.put("k", i);
  seqs seen;
  const auto consumed = s.read(0, 0, 10, [&](const record_type& r) {
    if (r.sequence == 3) return false;
    seen.push_back(r.sequence);
    return true;
  });
  EXPECT_EQ(consumed, 2u);
  EXPECT_EQ(seen, (seqs{1, 2}));
}

TEST(MemoryStream, ReadFromBeforeTheTrimHorizonStartsAtTheOldestRetainedRecord) {
  sluice::manual_clock clock;
  stream_type s(
      sluice::stream_options{.shards = 1, .retention_age = std::nullopt, .retention_count = 2},
      clock);
  for (int i = 1; i <= 6; ++i) s.put("k", i);
  seqs seen;
  s.read(0, 1, 10, [&](const record_type& r) {
    seen.push_back(r.sequence);
    return true;
  });
  EXPECT_EQ(seen, (seqs{5, 6}));
}

TEST(MemoryStream, ResolvesTrimHorizonLatestAndAtTimestamp) {
  sluice::manual_clock clock;
  stream_type s(
      sluice::stream_options{.shards = 1, .retention_age = std::nullopt, .retention_count = 4},
      clock);
  const auto t0 = clock.now();
  for (int i = 1; i <= 6; ++i) {  // record i arrives at t0 + i s; records 1 and 2 are trimmed
    clock.advance(1s);
    s.put("k", i);
  }
  using sp = sluice::starting_position;
  EXPECT_EQ(s.resolve(0, sp::trim_horizon), 2u);  // reading starts after 2: at the oldest, 3
  EXPECT_EQ(s.resolve(0, sp::latest), 6u);        // only records put from now on
  EXPECT_EQ(s.resolve(0, sp::at_timestamp(t0 + 4s)), 3u);  // first record with arrival >= t is 4
  EXPECT_EQ(s.resolve(0, sp::at_timestamp(t0 + 4s + 1ms)), 4u);
  EXPECT_EQ(s.resolve(0, sp::at_timestamp(t0)), 2u);       // before everything retained
  EXPECT_EQ(s.resolve(0, sp::at_timestamp(t0 + 1h)), 6u);  // after everything: like latest
}

TEST(MemoryStream, ResolvesStartingPositionsOfAnEmptyShard) {
  sluice::manual_clock clock;
  stream_type s(2, clock);
  const auto where = s.put("k", 1);
  const sluice::shard_id_t empty = where.shard == 0 ? 1 : 0;
  using sp = sluice::starting_position;
  EXPECT_EQ(s.resolve(empty, sp::trim_horizon), 0u);
  EXPECT_EQ(s.resolve(empty, sp::latest), 0u);
  EXPECT_EQ(s.resolve(empty, sp::at_timestamp(clock.now())), 0u);
  EXPECT_EQ(s.resolve(where.shard, sp::trim_horizon), 0u);
  EXPECT_EQ(s.resolve(where.shard, sp::latest), 1u);
}

TEST(MemoryStream, ListenersAreToldWhichShardGotData) {
  sluice::manual_clock clock;
  stream_type s(4, clock);
  counting_listener a;
  counting_listener b;
  s.subscribe(&a);
  s.subscribe(&b);
  // With 4 shards, "a" lands in shard 2, "b" in shard 1 and "c" in shard 3.
  ASSERT_EQ(s.put("a", 1).shard, 2u);
  ASSERT_EQ(s.put("b", 2).shard, 1u);
  ASSERT_EQ(s.put("a", 3).shard, 2u);
  ASSERT_EQ(s.put("c", 4).shard, 3u);
  const std::map<sluice::shard_id_t, int> after_four = {{1, 1}, {2, 2}, {3, 1}};
  EXPECT_EQ(a.calls, after_four);
  EXPECT_EQ(b.calls, after_four);

  s.unsubscribe(&a);
  s.put("b", 5);
  EXPECT_EQ(a.calls, after_four);  // no call after unsubscribe
  EXPECT_EQ(b.calls, (std::map<sluice::shard_id_t, int>{{1, 2}, {2, 2}, {3, 1}}));
  s.unsubscribe(&b);
}

TEST(MemoryStream, IsASource) {
  static_assert(sluice::source<stream_type>);
  static_assert(sluice::source<sluice::memory_stream<std::string>>);
  sluice::memory_stream<std::string> on_system_clock(2);
  EXPECT_EQ(on_system_clock.shard_count(), 2u);
  EXPECT_EQ(on_system_clock.name(), "memory-stream");
}

// ---- capacity, try_put, records that expire unread (issue 9) ------------------------------------

TEST(MemoryStreamCapacity, TryPutFailsAtCapacityUntilAMappingHasFinishedRecords) {
  sluice::stream_options options;
  options.capacity_records = 3;
  sluice::memory_stream<int> s(options, sluice::system_clock::instance());
  EXPECT_TRUE(s.try_put("k", 1));
  EXPECT_TRUE(s.try_put("k", 2));
  EXPECT_TRUE(s.try_put("k", 3));
  EXPECT_FALSE(s.try_put("k", 4)) << "a full shard accepted a record";
  EXPECT_EQ(s.size(0), 3u);
  std::vector<int> seen;
  sluice::run(sluice::from(s) | sluice::invoke([&](const sluice::batch<sluice::record<int>>& b) {
                for (const auto& r : b) seen.push_back(r.payload);
              }));
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(s.size(0), 0u) << "checkpointed records are released when a capacity is set";
  EXPECT_TRUE(s.try_put("k", 4));
}

TEST(MemoryStreamCapacity, CapacityInBytesCountsPayloads) {
  sluice::stream_options options;
  options.capacity_bytes = 10;
  sluice::memory_stream<std::string> s(options, sluice::system_clock::instance());
  EXPECT_TRUE(s.try_put("k", std::string(6, 'a')));
  EXPECT_FALSE(s.try_put("k", std::string(6, 'b')));
  EXPECT_TRUE(s.try_put("k", std::string(4, 'c')));
  sluice::memory_stream<std::string> big(options, sluice::system_clock::instance());
  EXPECT_TRUE(big.try_put("k", std::string(50, 'x'))) << "an empty shard takes an oversized record";
}

TEST(MemoryStreamCapacity, RejectsAZeroCapacity) {
  sluice::stream_options options;
  options.capacity_records = 0;
  EXPECT_THROW((sluice::memory_stream<int>(options, sluice::system_clock::instance())),
               sluice::configuration_error);
}

// A reader that caught up holds a cursor on the last chunk, which is not full. When every record
// of that chunk is released (all mappings checkpointed them), the chunk must stay the tail: the
// next records go after it, where the cursor finds them. (It used to be dropped and the next put
// started a new chunk the cursor never reached: the reader saw nothing new, and a bounded
// producer waited forever. Found as a rare hang of AFastProducerWaitsForASlowMapping.)
TEST(MemoryStreamCapacity, AReaderThatCaughtUpSeesRecordsPutAfterEverythingWasReleased) {
  sluice::stream_options options;
  options.capacity_records = 100;
  sluice::memory_stream<int> s(options, sluice::system_clock::instance());
  const int consumer = 0;
  s.acknowledge(&consumer, 0, 0);              // attach, as a mapping does
  for (int i = 1; i <= 5; ++i) s.put("k", i);  // the first chunk is not full
  sluice::memory_stream<int>::cursor at;
  std::vector<int> seen;
  auto read = [&](sluice::sequence_number_t after) {
    return s.read_spans(at, 0, after, 100, [&](const auto* first, const auto* last) {
      for (const auto* p = first; p != last; ++p) seen.push_back(p->payload);
      return static_cast<std::size_t>(last - first);
    });
  };
  ASSERT_EQ(read(0), 5u);
  s.acknowledge(&consumer, 0, 5);  // everything released
  EXPECT_EQ(s.size(0), 0u);
  for (int i = 6; i <= 8; ++i) s.put("k", i);
  EXPECT_EQ(read(5), 3u) << "the cursor lost the stream's tail";
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
}

// A producer much faster than the handler is slowed by put(): the stream never holds more than
// its capacity, and every record is handled.
TEST(MemoryStreamCapacity, AFastProducerWaitsForASlowMapping) {
  sluice::stream_options options;
  options.capacity_records = 200;
  sluice::memory_stream<int> s(options, sluice::system_clock::instance());
  std::atomic<int> handled{0};
  auto running = sluice::start(sluice::from(s) | sluice::batching(sluice::batch_size(10)) |
                               sluice::invoke([&](const sluice::batch<sluice::record<int>>& b) {
                                 std::this_thread::sleep_for(
                                     std::chrono::microseconds(200));  // a slow handler
                                 handled += static_cast<int>(b.size());
                               }));
  std::size_t most = 0;
  for (int i = 0; i < 5000; ++i) {
    s.put("k", i);
    most = std::max(most, s.size(0));
  }
  ASSERT_TRUE(running.wait_until_caught_up(std::chrono::seconds(120)));
  running.stop();
  EXPECT_LE(most, 200u);
  EXPECT_EQ(handled.load(), 5000);
}

TEST(MemoryStreamRetention, RecordsTrimmedBeforeAnyReadAreCountedAndReported) {
  sluice::manual_clock clock;
  sluice::stream_options options;
  options.retention_age = std::chrono::hours(1);
  std::vector<std::pair<sluice::sequence_number_t, sluice::sequence_number_t>> reported;
  options.on_expired_unread = [&](sluice::shard_id_t, sluice::sequence_number_t first,
                                  sluice::sequence_number_t last) {
    reported.emplace_back(first, last);
  };
  sluice::memory_stream<int, std::string, sluice::manual_clock> s(options, clock);
  for (int i = 1; i <= 3; ++i) s.put("k", i);
  const auto read_first = sluice::run(
      sluice::from(s) | sluice::invoke([](const sluice::batch<sluice::record<int>>&) {}),
      sluice::with_clock(clock));
  EXPECT_EQ(read_first.total.expired_unread_event_count, 0u);
  for (int i = 4; i <= 8; ++i) s.put("k", i);
  clock.advance(std::chrono::hours(2));  // 1-3 were read, 4-8 were not
  s.trim();
  EXPECT_EQ(s.expired_unread(0), 5u);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0], (std::pair<sluice::sequence_number_t, sluice::sequence_number_t>{4, 8}));
}

/// A stream on the manual clock that keeps records for an hour.
struct retained_an_hour : sluice::memory_stream<int, std::string, sluice::manual_clock> {
  explicit retained_an_hour(sluice::manual_clock& clock)
      : memory_stream(sluice::stream_options{.retention_age = std::chrono::hours(1)}, clock) {}
};

// The mapping counts what it never got to read (the checkpoint passes it: nothing is left).
TEST(MemoryStreamRetention, AMappingCountsRecordsThatExpiredBeforeItRead) {
  sluice::manual_clock clock;
  retained_an_hour s(clock);
  sluice::memory_checkpoint_store store;
  for (int i = 1; i <= 4; ++i) s.put("k", i);
  sluice::run(sluice::from(s) | sluice::invoke([](const sluice::batch<sluice::record<int>>&) {}),
              sluice::with_clock(clock), sluice::checkpoints(store));
  for (int i = 5; i <= 10; ++i) s.put("k", i);
  clock.advance(std::chrono::hours(2));
  s.put("k", 11);
  std::vector<int> seen;
  const auto m = sluice::run(
      sluice::from(s) | sluice::invoke([&](const sluice::batch<sluice::record<int>>& b) {
        for (const auto& r : b) seen.push_back(r.payload);
      }),
      sluice::with_clock(clock), sluice::checkpoints(store));
  EXPECT_EQ(seen, (std::vector<int>{11}));
  EXPECT_EQ(m.total.expired_unread_event_count, 6u);
  EXPECT_EQ(store.load("sluice", 0), 11u);
}

// A handler that puts back into the bounded stream it reads would wait for itself: such a put is
// admitted at once (the mapping's own threads), so the mapping does not deadlock and stops.
TEST(MemoryStreamCapacity, AHandlerPuttingIntoItsOwnFullStreamDoesNotDeadlock) {
  sluice::stream_options options;
  options.capacity_records = 16;
  sluice::memory_stream<int> s(options, sluice::system_clock::instance());
  for (int i = 0; i < 16; ++i) s.put("k", i);
  std::atomic<int> handled{0};
  auto running = sluice::start(sluice::from(s) | sluice::batching(sluice::batch_size(4)) |
                               sluice::invoke([&](const sluice::batch<sluice::record<int>>& b) {
                                 for (const auto& r : b) {
                                   if (r.payload < 100)
                                     s.put("k", r.payload + 100);  // once more, then done
                                   ++handled;
                                 }
                               }));
  ASSERT_TRUE(running.wait_until_caught_up(std::chrono::seconds(60)));
  ASSERT_TRUE(running.wait_until_caught_up(std::chrono::seconds(60)));
  running.stop();
  EXPECT_EQ(handled.load(), 32);
}

// Records trimmed before the mapping read them are counted on the multi-lane path too.
TEST(MemoryStreamRetention, AMappingWithSeveralLanesCountsExpiredRecords) {
  sluice::manual_clock clock;
  retained_an_hour s(clock);
  sluice::memory_checkpoint_store store;
  auto mapping = [&] {
    return sluice::from(s) | sluice::parallelization_factor(3) |
           sluice::invoke([](const sluice::batch<sluice::record<int>>&) {});
  };
  s.put("first", 0);
  sluice::run(mapping(), sluice::with_clock(clock), sluice::checkpoints(store));  // checkpoint 1
  for (int i = 1; i <= 5; ++i) s.put("k" + std::to_string(i), i);
  clock.advance(std::chrono::hours(2));  // 2-6 expire before the next run reads them
  s.put("late", 6);
  const auto m = sluice::run(mapping(), sluice::with_clock(clock), sluice::checkpoints(store));
  EXPECT_EQ(m.total.expired_unread_event_count, 5u);
  EXPECT_EQ(m.total.polled_event_count, 1u);
  EXPECT_EQ(store.load("sluice", 0), 7u);
}
