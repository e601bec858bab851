// sluice::sqlite::idempotency: a record applied and remembered in one transaction takes effect
// once, however often it is handed over (retries, partial batch responses, restarts); expired
// keys are forgotten; a rolled-back transaction forgets what it remembered.
#include "sluice/sqlite/idempotency.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "sluice/sluice.hpp"
#include "sluice/sqlite/database.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using R = sluice::record<int>;

class Idempotency : public ::testing::Test {
 protected:
  sluice_test::temp_dir dir_;
  sluice::manual_clock clock_{sluice::time_point{} + 1000h};
  sluice::sqlite::database db_{dir_ / "app.db"};
  sluice::sqlite::idempotency<sluice::manual_clock> seen_{
      db_, {.scope = "ledger", .ttl = 1min}, clock_};

  void SetUp() override { db_.exec("CREATE TABLE applied(seq INTEGER NOT NULL)"); }

  /// Applies (shard 0, seq) unless remembered; returns whether it applied.
  bool apply(sluice::sequence_number_t seq) {
    return db_.in_transaction([&](sluice::sqlite::transaction& tx) {
      if (!seen_.remember(tx, "m", 0, seq)) return false;
      auto insert = db_.prepare("INSERT INTO applied(seq) VALUES(?1)");
      insert.bind_int64(1, static_cast<std::int64_t>(seq));
      insert.step();
      return true;
    });
  }
  std::int64_t applied_count() {
    auto s = db_.prepare("SELECT count(*) FROM applied");
    s.step();
    return s.column_int64(0);
  }
};

TEST_F(Idempotency, ASecondApplicationIsSkipped) {
  EXPECT_TRUE(apply(5));
  EXPECT_FALSE(apply(5));
  EXPECT_TRUE(apply(6));  // another record
  EXPECT_EQ(applied_count(), 2);
  EXPECT_TRUE(seen_.contains("m", 0, 5));
  EXPECT_FALSE(seen_.contains("m", 1, 5));  // the shard is part of the key
  // A user key is its own key; another scope does not see this one's keys.
  sluice::sqlite::idempotency<sluice::manual_clock> other(db_, {.scope = "other"}, clock_);
  db_.in_transaction([&](sluice::sqlite::transaction& tx) {
    EXPECT_TRUE(seen_.remember(tx, "order-42"));
    EXPECT_FALSE(seen_.remember(tx, "order-42"));
    EXPECT_TRUE(other.remember(tx, "order-42"));
    EXPECT_TRUE(other.remember(tx, "m", 0, 5));
  });
}

TEST_F(Idempotency, AKeyOlderThanTheTtlIsForgotten) {
  EXPECT_TRUE(apply(1));
  clock_.advance(59s);
  EXPECT_FALSE(apply(1));
  EXPECT_TRUE(seen_.contains("m", 0, 1));
  clock_.advance(1s);  // remembered exactly ttl ago: expired
  EXPECT_FALSE(seen_.contains("m", 0, 1));
  EXPECT_TRUE(apply(1));  // applied again, and remembered afresh
  EXPECT_FALSE(apply(1));
  EXPECT_EQ(applied_count(), 2);

  EXPECT_TRUE(apply(2));
  clock_.advance(2min);
  EXPECT_EQ(seen_.forget_expired(), 2u);
  auto rows = db_.prepare("SELECT count(*) FROM sluice_idempotency");
  rows.step();
  EXPECT_EQ(rows.column_int64(0), 0);
}

TEST_F(Idempotency, ARolledBackTransactionForgetsWhatItRemembered) {
  EXPECT_THROW(db_.in_transaction([&](sluice::sqlite::transaction& tx) {
    EXPECT_TRUE(seen_.remember(tx, "m", 0, 7));
    db_.exec("INSERT INTO applied(seq) VALUES(7)");
    throw std::runtime_error("the handler failed after applying");
  }),
               std::runtime_error);
  EXPECT_EQ(applied_count(), 0);
  EXPECT_FALSE(seen_.contains("m", 0, 7));
  EXPECT_TRUE(apply(7));  // the retry applies it, once
  EXPECT_EQ(applied_count(), 1);
}

TEST_F(Idempotency, TheGuidesDeclarationUsesTheSystemClock) {
  sluice::sqlite::idempotency seen(db_, {.scope = "ledger", .ttl = std::chrono::hours(24)});
  static_assert(std::is_same_v<decltype(seen), sluice::sqlite::idempotency<sluice::system_clock>>);
  db_.in_transaction(
      [&](sluice::sqlite::transaction& tx) { EXPECT_TRUE(seen.remember(tx, "billing", 0, 1)); });
}

TEST_F(Idempotency, RejectsAnEmptyScopeAndANonPositiveTtl) {
  EXPECT_THROW(sluice::sqlite::idempotency<sluice::manual_clock>(db_, {.scope = ""}, clock_),
               sluice::configuration_error);
  EXPECT_THROW(sluice::sqlite::idempotency<sluice::manual_clock>(db_, {.ttl = 0s}, clock_),
               sluice::configuration_error);
}

// A partial batch response re-sends every record after the lowest failed one (S-5.2): a naive
// handler applies those again; with idempotency each record is applied once.
TEST(IdempotencyInAMapping, PartialBatchResponsesApplyEachRecordOnce) {
  sluice_test::temp_dir dir;
  sluice::manual_clock clock{sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance};
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream{1, clock};
  for (int i = 1; i <= 10; ++i) stream.put("k", i);
  sluice::sqlite::database db(dir / "app.db");
  sluice::sqlite::idempotency<sluice::manual_clock> seen(db, {}, clock);
  std::map<int, int> naive, applied;
  bool failed_once = false;
  sluice::run(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
                  sluice::retry(sluice::maximum_retry_attempts(3)) |
                  sluice::report_batch_item_failures |
                  sluice::invoke([&](const sluice::batch<R>& b) {
                    sluice::batch_item_failures failures;
                    db.in_transaction([&](sluice::sqlite::transaction& tx) {
                      for (const R& r : b) {
                        if (r.payload == 3 && !failed_once) {  // fails once, the rest succeed
                          failed_once = true;
                          failures.item_identifiers.push_back(r.sequence);
                          continue;
                        }
                        ++naive[r.payload];
                        if (seen.remember(tx, "sluice", b.shard_id(), r.sequence)) {
                          ++applied[r.payload];
                        }
                      }
                    });
                    return failures;
                  }),
              sluice::with_clock(clock));
  for (int i = 1; i <= 10; ++i) EXPECT_EQ(applied[i], 1) << "record " << i;
  EXPECT_EQ(naive[5], 2);  // handed over twice: after the lowest failed record (3)
}

}  // namespace
