// Tests of sluice::sqlite::destination: an S-5.7 on-failure record, with its records, is stored
// whole in one transaction before deliver() returns, and reads back field for field.
#include "sluice/sqlite/destination.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sluice/failure.hpp"
#include "sluice/record.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using text_record = sluice::record<std::string>;
using byte_record = sluice::record<std::vector<std::byte>, std::uint64_t>;

static_assert(
    sluice::on_failure_destination<sluice::sqlite::destination<text_record>, text_record>);
static_assert(
    sluice::on_failure_destination<sluice::sqlite::destination<byte_record>, byte_record>);

const sluice::time_point t0 = sluice::time_point{} + 500000h + 123456789ns;

sluice::on_failure_record<text_record> exhausted_batch() {
  sluice::on_failure_record<text_record> rec;
  rec.condition = sluice::failure_condition::retry_attempts_exhausted;
  rec.approximate_invoke_count = 3;
  rec.last_attempt = sluice::attempt_outcome::raised;
  rec.error_type = "std::runtime_error";
  rec.error_message = "downstream said \"no\"\nand meant it";
  rec.stream_name = "orders";
  rec.shard_id = 2;
  rec.start_sequence_number = 8;
  rec.end_sequence_number = 10;
  rec.approximate_arrival_of_first_record = t0;
  rec.approximate_arrival_of_last_record = t0 + 2s;
  rec.batch_size = 3;
  rec.timestamp = t0 + 1min;
  rec.records = {{"k1", 8, t0, "eight"},
                 {"k2", 9, t0 + 1s, std::string("ni\0ne", 5)},
                 {"k1", 10, t0 + 2s, ""}};
  rec.reported_failed = {true, false, false};
  return rec;
}

void expect_same(const sluice::on_failure_record<text_record>& a,
                 const sluice::on_failure_record<text_record>& b) {
  EXPECT_EQ(a.condition, b.condition);
  EXPECT_EQ(a.approximate_invoke_count, b.approximate_invoke_count);
  EXPECT_EQ(a.last_attempt, b.last_attempt);
  EXPECT_EQ(a.error_type, b.error_type);
  EXPECT_EQ(a.error_message, b.error_message);
  EXPECT_EQ(a.stream_name, b.stream_name);
  EXPECT_EQ(a.shard_id, b.shard_id);
  EXPECT_EQ(a.start_sequence_number, b.start_sequence_number);
  EXPECT_EQ(a.end_sequence_number, b.end_sequence_number);
  EXPECT_EQ(a.approximate_arrival_of_first_record, b.approximate_arrival_of_first_record);
  EXPECT_EQ(a.approximate_arrival_of_last_record, b.approximate_arrival_of_last_record);
  EXPECT_EQ(a.batch_size, b.batch_size);
  EXPECT_EQ(a.timestamp, b.timestamp);
  EXPECT_EQ(a.records, b.records);
  EXPECT_EQ(a.reported_failed, b.reported_failed);
}

TEST(SqliteDestination, RoundTripsEveryFieldOfTheOnFailureRecord) {
  sluice_test::temp_dir dir;
  sluice::sqlite::destination<text_record> dlq(dir / "dlq.db");
  const auto sent = exhausted_batch();
  dlq.deliver(sent);
  ASSERT_EQ(dlq.count(), 1u);
  const auto stored = dlq.records();
  ASSERT_EQ(stored.size(), 1u);
  expect_same(stored[0], sent);
}

TEST(SqliteDestination, KeepsAbsentErrorAndAbsentPerRecordFlagsAbsent) {
  sluice_test::temp_dir dir;
  sluice::sqlite::destination<text_record> dlq(dir / "dlq.db");
  auto aged = exhausted_batch();
  aged.condition = sluice::failure_condition::record_age_exceeded;
  aged.approximate_invoke_count = 1;
  aged.last_attempt = sluice::attempt_outcome::none;
  aged.error_type.reset();  // discarded by age before any invocation (S-5.7)
  aged.error_message.reset();
  aged.reported_failed.clear();
  dlq.deliver(aged);
  const auto stored = dlq.records();
  ASSERT_EQ(stored.size(), 1u);
  expect_same(stored[0], aged);
}

// S-5.7: the columns a reader of the file sees carry AWS's values; sluice's own go apart.
TEST(SqliteDestination, StoresAwsResponseContextApartFromSluiceErrorDetails) {
  sluice_test::temp_dir dir;
  sluice::sqlite::destination<text_record> dlq(dir / "dlq.db");
  auto raised = exhausted_batch();  // the handler threw std::runtime_error
  auto reported = exhausted_batch();
  reported.last_attempt = sluice::attempt_outcome::returned_report;
  reported.error_type = "sluice::batch_item_failures";
  auto aged = exhausted_batch();  // expired after 3 invocations: still no response context
  aged.condition = sluice::failure_condition::record_age_exceeded;
  for (const auto& rec : {raised, reported, aged}) dlq.deliver(rec);
  for (std::size_t i = 0; i < 3; ++i)
    expect_same(dlq.records().at(i), std::vector{raised, reported, aged}[i]);

  sluice::sqlite::database db(dir / "dlq.db");
  auto s = db.prepare(
      "SELECT has_response_context, function_error, last_attempt, sluice_error_type, "
      "sluice_error_message FROM sluice_failures ORDER BY failure_id");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_int64(0), 1);
  EXPECT_EQ(s.column_text(1), "Unhandled");
  EXPECT_EQ(s.column_text(2), "raised");
  EXPECT_EQ(s.column_text(3), "std::runtime_error");
  EXPECT_EQ(s.column_text(4), "downstream said \"no\"\nand meant it");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_int64(0), 1);
  EXPECT_TRUE(s.column_is_null(1));  // returned normally: functionError null
  EXPECT_EQ(s.column_text(2), "returned_report");
  EXPECT_EQ(s.column_text(3), "sluice::batch_item_failures");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_int64(0), 0);  // RecordAgeExceeded: no responseContext at all
  EXPECT_TRUE(s.column_is_null(1));
  EXPECT_EQ(s.column_text(3), "std::runtime_error");
  EXPECT_FALSE(s.step());
}

TEST(SqliteDestination, RecordsSurviveReopeningInDeliveryOrder) {
  sluice_test::temp_dir dir;
  {
    sluice::sqlite::destination<text_record> dlq(dir / "dlq.db");
    for (std::uint64_t i = 1; i <= 3; ++i) {
      auto rec = exhausted_batch();
      rec.start_sequence_number = i;
      dlq.deliver(rec);
    }
  }
  sluice::sqlite::destination<text_record> dlq(dir / "dlq.db");
  const auto stored = dlq.records();
  ASSERT_EQ(stored.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(stored[i].start_sequence_number, i + 1);
}

TEST(SqliteDestination, DestinationsSharingAFileKeepTheirOwnRecords) {
  sluice_test::temp_dir dir;
  sluice::sqlite::destination<text_record> a(dir / "app.db", "mapping-a");
  sluice::sqlite::destination<text_record> b(dir / "app.db", "mapping-b");
  a.deliver(exhausted_batch());
  a.deliver(exhausted_batch());
  b.deliver(exhausted_batch());
  EXPECT_EQ(a.count(), 2u);
  EXPECT_EQ(b.count(), 1u);
  EXPECT_EQ(b.records().size(), 1u);
}

TEST(SqliteDestination, StoresBinaryPayloadsAndIntegerKeys) {
  sluice_test::temp_dir dir;
  sluice::sqlite::destination<byte_record> dlq(dir / "dlq.db");
  sluice::on_failure_record<byte_record> rec;
  rec.stream_name = "bytes";
  rec.records = {{UINT64_MAX, 1, t0, {std::byte{0}, std::byte{0xfe}}}};
  rec.reported_failed = {true};
  rec.batch_size = 1;
  dlq.deliver(rec);
  const auto stored = dlq.records();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].records, rec.records);
  EXPECT_EQ(stored[0].reported_failed, rec.reported_failed);
}

// S-5.8: a delivery that fails stores nothing (the mapping retries it; a half-stored batch would
// turn into a duplicate on that retry).
TEST(SqliteDestination, FailedDeliveryStoresNothingAndALaterRetrySucceeds) {
  sluice_test::temp_dir dir;
  sluice::sqlite::open_options quick;
  quick.busy_timeout = 20ms;
  sluice::sqlite::destination<text_record> dlq(dir / "dlq.db", "on-failure", quick);
  sluice::sqlite::database other(dir / "dlq.db");
  {
    auto hold = other.begin();
    try {
      dlq.deliver(exhausted_batch());
      FAIL() << "expected database_error";
    } catch (const sluice::sqlite::database_error& e) {
      EXPECT_EQ(e.primary_code(), SQLITE_BUSY);
      EXPECT_NE(std::string(e.what()).find("dlq.db"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(dlq.count(), 0u);
  dlq.deliver(exhausted_batch());
  EXPECT_EQ(dlq.count(), 1u);
  EXPECT_EQ(dlq.records()[0].records.size(), 3u);
}

}  // namespace
