// memory_stream's lock-free reads (issue 8): a read through a cursor takes no lock, and a reader
// racing retention never both receives a record and has it counted as expired unread, nor
// neither (every record is delivered or is a gap the reader sees). Run under ThreadSanitizer too.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/sluice.hpp"

using namespace std::chrono_literals;

namespace {
using seq_t = sluice::sequence_number_t;
using stream_type = sluice::memory_stream<int>;
using record_type = stream_type::record_type;
}  // namespace

// The stream calls on_expired_unread while it holds the shard's lock. From inside that call
// another thread reads the same shard through a cursor: the read can only finish if it takes
// no lock (a locked read would wait for the callback, which waits for the read).
TEST(MemoryStreamReads, ACursorReadCompletesWhileAProducerHoldsTheShardLock) {
  sluice::stream_options options;
  options.retention_count = 100;
  stream_type* self = nullptr;
  stream_type::cursor cursor;
  std::vector<seq_t> read_in_callback;
  bool finished_under_lock = false;
  bool called = false;
  options.on_expired_unread = [&](sluice::shard_id_t, seq_t, seq_t last) {
    if (called) return;
    called = true;
    // Records up to `last` are gone; read on from the first retained one.
    auto reading = std::async(std::launch::async, [&] {
      self->read(cursor, 0, last, std::numeric_limits<std::size_t>::max(),
                 [&](const record_type& r) {
                   read_in_callback.push_back(r.sequence);
                   return true;
                 });
    });
    // Generous: a lock-free read takes microseconds; a locked one never finishes in here.
    finished_under_lock = reading.wait_for(20s) == std::future_status::ready;
    if (!finished_under_lock) std::abort();  // the read would deadlock this test: fail loudly
  };
  stream_type stream(options, sluice::system_clock::instance());
  self = &stream;
  for (int i = 1; i <= 100; ++i) stream.put("k", i);
  // The reader takes 1..50: its cursor now pins the chunk that holds 49..112.
  seq_t position = 0;
  stream.read(cursor, 0, 0, 50, [&](const record_type& r) {
    position = r.sequence;
    return true;
  });
  ASSERT_EQ(position, 50u);
  for (int i = 101; i <= 130; ++i) stream.put("k", i);  // trims 1..30: all read, no callback
  EXPECT_FALSE(called);
  // Each put now trims one record; the put of 151 trims 51, the first one never read, and calls
  // back under the lock. The read in the callback takes 52..151 (151 was published before the
  // trim), so the later puts trim only records read by then.
  for (int i = 131; i <= 160; ++i) stream.put("k", i);
  ASSERT_TRUE(called);
  EXPECT_TRUE(finished_under_lock);
  ASSERT_EQ(read_in_callback.size(), 100u);
  EXPECT_EQ(read_in_callback.front(), 52u);
  for (std::size_t i = 1; i < read_in_callback.size(); ++i)
    EXPECT_EQ(read_in_callback[i], read_in_callback[i - 1] + 1);
  EXPECT_EQ(stream.expired_unread(0), 1u);
}

// A producer appends as fast as it can into a shard that keeps only 64 records while a reader
// follows through its cursor. Every sequence number ends up delivered to the reader or skipped
// by it (a gap it sees); the stream counts as expired unread only records the reader never
// received.
TEST(MemoryStreamReads, RetentionRacingACursorReaderNeitherLosesNorDoubleCountsARecord) {
  constexpr int records = 200'000;
  sluice::stream_options options;
  options.retention_count = 64;
  std::mutex expired_mutex;
  std::vector<std::pair<seq_t, seq_t>> expired;  // written under the shard's lock
  options.on_expired_unread = [&](sluice::shard_id_t, seq_t first, seq_t last) {
    std::lock_guard lock(expired_mutex);
    expired.emplace_back(first, last);
  };
  stream_type stream(options, sluice::system_clock::instance());
  std::atomic<bool> done{false};
  std::thread producer([&] {
    for (int i = 1; i <= records; ++i) stream.put("k", i);
    done.store(true);
  });
  std::vector<std::uint8_t> delivered(records + 1, 0);
  std::uint64_t gaps = 0;
  stream_type::cursor cursor;
  seq_t position = 0;
  auto visit = [&](const record_type& r) {
    EXPECT_EQ(r.payload, static_cast<int>(r.sequence));  // the record is intact
    gaps += r.sequence - position - 1;
    delivered[r.sequence] = 1;
    position = r.sequence;
    return true;
  };
  while (!done.load() || position < static_cast<seq_t>(records)) {
    if (stream.read(cursor, 0, position, 100, visit) == 0) {
      if (done.load() && stream.last_sequence(0) == position) break;
      std::this_thread::yield();
    }
  }
  producer.join();
  std::uint64_t received = 0;
  for (int q = 1; q <= records; ++q) received += delivered[q];
  EXPECT_EQ(received + gaps, static_cast<std::uint64_t>(records));
  std::uint64_t counted = 0;
  for (const auto& [first, last] : expired) {
    counted += last - first + 1;
    for (seq_t q = first; q <= last; ++q) {
      ASSERT_EQ(delivered[q], 0) << "record " << q << " was delivered and counted as expired";
    }
  }
  EXPECT_EQ(counted, stream.expired_unread(0));
  EXPECT_LE(counted, gaps);
}
