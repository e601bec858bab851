// Tests for sluice/handlers/per_record.hpp: the three failure modes, exceptions as record failures,
// and sluice::throttled escaping the adapter unchanged (S-4.3, S-4.4, S-5.2).
#include "sluice/handlers/per_record.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using text_record = sluice::record<std::string>;
using seqs = std::vector<sluice::sequence_number_t>;

/// Records 1..keys.size(), record i+1 having partition key keys[i].
std::vector<text_record> records_with_keys(const std::vector<std::string>& keys) {
  std::vector<text_record> records;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    records.push_back({keys[i], i + 1, {}, "payload-" + std::to_string(i + 1)});
  }
  return records;
}

/// A record function that fails (returns false) for the given sequence numbers and logs calls.
struct failing_on {
  std::set<sluice::sequence_number_t> failing;
  seqs* called;
  bool operator()(const text_record& r) const {
    called->push_back(r.sequence);
    return !failing.contains(r.sequence);
  }
};

TEST(PerRecord, ContinueOnFailureReportsEveryFailedRecord) {
  const auto records = records_with_keys({"a", "b", "c", "d", "e", "f"});
  const sluice::batch<text_record> b(records, 0);
  seqs called;
  auto handler = sluice::per_record(failing_on{{2, 5}, &called}, sluice::continue_on_failure);
  EXPECT_EQ(handler(b).item_identifiers, (seqs{2, 5}));
  EXPECT_EQ(called, (seqs{1, 2, 3, 4, 5, 6}));
}

TEST(PerRecord, AllRecordsSucceedingGivesAnEmptyReport) {
  const auto records = records_with_keys({"a", "b", "a"});
  const sluice::batch<text_record> b(records, 0);
  int calls = 0;
  auto handler =
      sluice::per_record([&](const text_record&) { ++calls; }, sluice::skip_key_on_failure);
  EXPECT_TRUE(handler(b).empty());
  EXPECT_EQ(calls, 3);
}

TEST(PerRecord, EmptyBatchGivesAnEmptyReportInEveryMode) {
  const std::vector<text_record> none;
  const sluice::batch<text_record> b(none, 0);
  const auto fail = [](const text_record&) { return false; };
  EXPECT_TRUE(sluice::per_record(fail, sluice::continue_on_failure)(b).empty());
  EXPECT_TRUE(sluice::per_record(fail, sluice::stop_on_first_failure)(b).empty());
  EXPECT_TRUE(sluice::per_record(fail, sluice::skip_key_on_failure)(b).empty());
}

TEST(PerRecord, StopOnFirstFailureReportsTheRest) {
  const auto records = records_with_keys({"a", "b", "c", "d", "e", "f"});
  const sluice::batch<text_record> b(records, 0);
  seqs called;
  auto handler = sluice::per_record(failing_on{{3, 5}, &called}, sluice::stop_on_first_failure);
  EXPECT_EQ(handler(b).item_identifiers, (seqs{3, 4, 5, 6}));
  EXPECT_EQ(called, (seqs{1, 2, 3}));  // nothing after the failure is processed
}

TEST(PerRecord, StopOnFirstFailureAtTheFirstRecordReportsTheWholeBatch) {
  const auto records = records_with_keys({"a", "b", "c"});
  const sluice::batch<text_record> b(records, 0);
  seqs called;
  auto handler = sluice::per_record(failing_on{{1}, &called}, sluice::stop_on_first_failure);
  EXPECT_EQ(handler(b).item_identifiers, (seqs{1, 2, 3}));
  EXPECT_EQ(called, (seqs{1}));
}

TEST(PerRecord, SkipKeyOnFailureReportsLaterRecordsOfFailedKeyOnly) {
  //                                    1    2    3    4    5    6    7    8
  const auto records = records_with_keys({"a", "b", "a", "c", "b", "a", "c", "b"});
  const sluice::batch<text_record> b(records, 0);
  seqs called;
  // b fails at 2, a fails at 3 (after a succeeded at 1); c never fails.
  auto handler = sluice::per_record(failing_on{{2, 3}, &called}, sluice::skip_key_on_failure);
  EXPECT_EQ(handler(b).item_identifiers, (seqs{2, 3, 5, 6, 8}));
  EXPECT_EQ(called, (seqs{1, 2, 3, 4, 7}));  // 5, 6, 8 are never processed before a retry
}

TEST(PerRecord, SkipKeyOnFailureComparesKeysByValue) {
  // Keys built separately: equal values in distinct string objects.
  std::vector<text_record> records{{std::string("or") + "der-1", 1, {}, "x"},
                                   {std::string("order-") + "1", 2, {}, "y"},
                                   {"order-10", 3, {}, "z"}};
  const sluice::batch<text_record> b(records, 0);
  seqs called;
  auto handler = sluice::per_record(failing_on{{1}, &called}, sluice::skip_key_on_failure);
  EXPECT_EQ(handler(b).item_identifiers, (seqs{1, 2}));
  EXPECT_EQ(called, (seqs{1, 3}));
}

TEST(PerRecord, SkipKeyOnFailureHandlesMoreFailedKeysThanFitInline) {
  // 40 keys, each appearing twice; the first record of every even key fails. More failed keys
  // than the inline part of the set holds, so lookups also go through the sorted overflow.
  std::vector<std::string> keys;
  for (int round = 0; round < 2; ++round) {
    for (int k = 0; k < 40; ++k) keys.push_back("key-" + std::to_string(k));
  }
  const auto records = records_with_keys(keys);
  const sluice::batch<text_record> b(records, 0);
  std::set<sluice::sequence_number_t> failing;
  seqs expected_failed, expected_called;
  for (int k = 0; k < 40; ++k) {
    if (k % 2 == 0) failing.insert(static_cast<sluice::sequence_number_t>(k + 1));
  }
  for (sluice::sequence_number_t s = 1; s <= 80; ++s) {
    const bool key_failed = ((s - 1) % 40) % 2 == 0;
    if (key_failed) expected_failed.push_back(s);
    if (!key_failed || s <= 40) expected_called.push_back(s);
  }
  seqs called;
  auto handler = sluice::per_record(failing_on{failing, &called}, sluice::skip_key_on_failure);
  EXPECT_EQ(handler(b).item_identifiers, expected_failed);
  EXPECT_EQ(called, expected_called);
}

TEST(PerRecord, SkipKeyOnFailureWorksWithIntegerKeys) {
  using keyed = sluice::record<std::string, std::uint64_t>;
  const std::vector<keyed> records{
      {7, 1, {}, "a"}, {8, 2, {}, "b"}, {7, 3, {}, "c"}, {8, 4, {}, "d"}};
  const sluice::batch<keyed> b(records, 0);
  auto handler = sluice::per_record([](const keyed& r) { return r.sequence != 1; },
                                    sluice::skip_key_on_failure);
  EXPECT_EQ(handler(b).item_identifiers, (seqs{1, 3}));
}

// A key type sluice::key_hash does not know: the adapter must fall back to comparing keys.
struct tenant_key {
  int region;
  int tenant;
  friend bool operator==(const tenant_key&, const tenant_key&) = default;
};

TEST(PerRecord, SkipKeyOnFailureWorksForKeysSluiceCannotHash) {
  using keyed = sluice::record<std::string, tenant_key>;
  const std::vector<keyed> records{{{1, 1}, 1, {}, ""},
                                   {{1, 2}, 2, {}, ""},
                                   {{2, 1}, 3, {}, ""},
                                   {{1, 1}, 4, {}, ""},
                                   {{1, 2}, 5, {}, ""}};
  const sluice::batch<keyed> b(records, 0);
  seqs called;
  auto handler = sluice::per_record(
      [&](const keyed& r) {
        called.push_back(r.sequence);
        return r.sequence != 1;
      },
      sluice::skip_key_on_failure);
  EXPECT_EQ(handler(b).item_identifiers, (seqs{1, 4}));
  EXPECT_EQ(called, (seqs{1, 2, 3, 5}));
}

TEST(PerRecord, ExceptionBecomesReportedFailure) {
  const auto records = records_with_keys({"a", "b", "c", "d"});
  const sluice::batch<text_record> b(records, 0);
  seqs called;
  auto handler = sluice::per_record(
      [&](const text_record& r) {  // returns void: only exceptions say "failed"
        called.push_back(r.sequence);
        if (r.sequence == 2) throw std::runtime_error("bad record");
        if (r.sequence == 3) throw 42;  // not even a std::exception
      },
      sluice::continue_on_failure);
  EXPECT_EQ(handler(b).item_identifiers, (seqs{2, 3}));
  EXPECT_EQ(called, (seqs{1, 2, 3, 4}));
}

TEST(PerRecord, ExceptionCountsAsTheKeysFailureInSkipKeyMode) {
  const auto records = records_with_keys({"a", "b", "a"});
  const sluice::batch<text_record> b(records, 0);
  seqs called;
  auto handler = sluice::per_record(
      [&](const text_record& r) {
        called.push_back(r.sequence);
        if (r.sequence == 1) throw std::runtime_error("bad record");
      },
      sluice::skip_key_on_failure);
  EXPECT_EQ(handler(b).item_identifiers, (seqs{1, 3}));
  EXPECT_EQ(called, (seqs{1, 2}));
}

struct slow_down : sluice::throttled {
  slow_down() : sluice::throttled("table at capacity") {}
};

template <class Mode>
void expect_throttled_propagates(Mode mode) {
  const auto records = records_with_keys({"a", "b", "c"});
  const sluice::batch<text_record> b(records, 0);
  seqs called;
  auto handler = sluice::per_record(
      [&](const text_record& r) {
        called.push_back(r.sequence);
        if (r.sequence == 2) throw slow_down();
        return r.sequence != 1;  // record 1 fails first: throttling must still win
      },
      mode);
  try {
    handler(b);
    ADD_FAILURE() << "sluice::throttled did not propagate";
  } catch (const slow_down& e) {  // the same exception, with its dynamic type and message
    EXPECT_STREQ(e.what(), "table at capacity");
  }
  EXPECT_EQ(called, (seqs{1, 2}));  // the batch stops at the throttle
}

TEST(PerRecord, ThrottledPropagates) {
  expect_throttled_propagates(sluice::continue_on_failure);
  expect_throttled_propagates(sluice::skip_key_on_failure);
}

TEST(PerRecord, ThrottledPropagatesInStopOnFirstFailureMode) {
  const auto records = records_with_keys({"a", "b"});
  const sluice::batch<text_record> b(records, 0);
  auto handler = sluice::per_record([](const text_record&) -> bool { throw sluice::throttled(); },
                                    sluice::stop_on_first_failure);
  EXPECT_THROW(handler(b), sluice::throttled);
}

TEST(PerRecord, WorksOnASubBatchAndThroughAConstHandler) {
  const auto records = records_with_keys({"a", "b", "c", "d", "e"});
  const sluice::batch<text_record> remainder{std::span<const text_record>(records).subspan(2),
                                             0};  // [3, 5]
  const auto handler = sluice::per_record([](const text_record& r) { return r.sequence != 4; },
                                          sluice::stop_on_first_failure);
  EXPECT_EQ(handler(remainder).item_identifiers, (seqs{4, 5}));
}

TEST(PerRecord, MutableFunctionKeepsItsStateAcrossBatches) {
  const auto records = records_with_keys({"a", "b"});
  const sluice::batch<text_record> b(records, 0);
  auto handler = sluice::per_record([n = 0](const text_record&) mutable { return ++n % 2 == 1; },
                                    sluice::continue_on_failure);
  EXPECT_EQ(handler(b).item_identifiers, (seqs{2}));
  EXPECT_EQ(handler(b).item_identifiers, (seqs{2}));  // n went 1,2 then 3,4
}

}  // namespace
