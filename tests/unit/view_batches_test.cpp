// Batches that are views of the source's storage (issue 8, "no copy that is not needed"): when a
// mapping over a memory_stream neither filters nor transforms, a full batch that lies within one
// storage chunk is handed to the handler in place, and the stream keeps those records alive
// until the batch is finished, even if retention trims them meanwhile.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/sluice.hpp"

namespace {
using stream_type = sluice::memory_stream<std::string>;
using record_type = stream_type::record_type;

std::string payload_of(std::uint64_t i) {
  return "payload long enough to live on the heap #" + std::to_string(i);
}

/// The address at which the stream keeps record `seq` of shard 0.
const record_type* stored_at(stream_type& stream, sluice::sequence_number_t seq) {
  const record_type* where = nullptr;
  stream.read(0, seq - 1, 1, [&](const record_type& r) {
    where = &r;
    return true;
  });
  return where;
}
}  // namespace

TEST(ViewBatches, FullBatchesOfAnUntransformedStreamAreTheStreamsOwnRecords) {
  stream_type stream(1);
  constexpr int records = 20'000;
  for (int i = 1; i <= records; ++i) stream.put("k", payload_of(static_cast<std::uint64_t>(i)));
  int batches = 0, views = 0, delivered = 0;
  sluice::sequence_number_t expected = 1;
  const auto result = sluice::run(sluice::from(stream) | sluice::batching(sluice::batch_size(100)) |
                                  sluice::invoke([&](const sluice::batch<record_type>& b) {
                                    ++batches;
                                    if (&b[0] == stored_at(stream, b.first_sequence())) ++views;
                                    for (const record_type& r : b) {
                                      EXPECT_EQ(r.sequence, expected);
                                      EXPECT_EQ(r.payload, payload_of(r.sequence));
                                      ++expected;
                                      ++delivered;
                                    }
                                  }));
  EXPECT_EQ(delivered, records);
  EXPECT_EQ(result.total.polled_event_count, static_cast<std::uint64_t>(records));
  EXPECT_EQ(batches, records / 100);
  // Storage chunks grow to 4,096 records: only a batch that straddles two chunks is copied.
  EXPECT_GE(views * 10, batches * 9) << views << " of " << batches << " batches were views";
}

TEST(ViewBatches, AFilterMakesEveryBatchACopy) {
  stream_type stream(1);
  for (int i = 1; i <= 5'000; ++i) stream.put("k", payload_of(static_cast<std::uint64_t>(i)));
  int views = 0, delivered = 0;
  sluice::run(sluice::from(stream) | sluice::filter([](const record_type&) { return true; }) |
              sluice::batching(sluice::batch_size(100)) |
              sluice::invoke([&](const sluice::batch<record_type>& b) {
                if (&b[0] == stored_at(stream, b.first_sequence())) ++views;
                delivered += static_cast<int>(b.size());
              }));
  EXPECT_EQ(delivered, 5'000);
  EXPECT_EQ(views, 0);
}

// The handler of the first batch puts enough into its own stream that retention (200 records)
// trims that batch's records, then reads them: a view batch pins the stream's storage, so they
// are intact (under AddressSanitizer a missing pin is a heap-use-after-free).
TEST(ViewBatches, AViewBatchStaysValidWhileRetentionTrimsItsRecords) {
  sluice::stream_options options;
  options.retention_count = 200;
  stream_type stream(options, sluice::system_clock::instance());
  for (int i = 1; i <= 200; ++i) stream.put("k", payload_of(static_cast<std::uint64_t>(i)));
  bool first = true;
  int checked = 0, views = 0;
  sluice::run(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
              sluice::invoke([&](const sluice::batch<record_type>& b) {
                if (!first) return;
                first = false;
                if (&b[0] == stored_at(stream, b.first_sequence())) ++views;
                for (int i = 0; i < 5'000; ++i) stream.put("other", "x");
                EXPECT_GT(stream.resolve(0, sluice::starting_position::trim_horizon),
                          b.last_sequence());  // trimmed
                for (const record_type& r : b) {
                  EXPECT_EQ(r.payload, payload_of(r.sequence));
                  ++checked;
                }
              }));
  EXPECT_EQ(views, 1);
  EXPECT_EQ(checked, 10);
}
