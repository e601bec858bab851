// Runtime validation of every configuration parameter: an out-of-range value throws
// sluice::configuration_error with "sluice: <parameter> = <value> is out of range; allowed:
// <range>" (sluice/detail/util/validate.hpp); the boundary values are accepted.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "sluice/sluice.hpp"

using namespace std::chrono_literals;

namespace {

/// The message of the configuration_error `fn` throws, or a note that it threw nothing.
std::string rejection(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const sluice::configuration_error& e) {
    return e.what();
  }
  return "<no configuration_error thrown>";
}

std::string expected(const std::string& parameter, const std::string& value,
                     const std::string& allowed) {
  return "sluice: " + parameter + " = " + value + " is out of range; allowed: " + allowed;
}

}  // namespace

TEST(Validation, ConfigurationErrorIsAnInvalidArgument) {
  EXPECT_THROW(sluice::batching(sluice::batch_size(0)), std::invalid_argument);
}

// ---- batching (S-2.1)
// ----------------------------------------------------------------------------

TEST(Validation, BatchSizeOutsideOneToTenThousandIsRejected) {
  EXPECT_EQ(rejection([] { sluice::batching(sluice::batch_size(0)); }),
            expected("batch_size", "0", "1..10000"));
  EXPECT_EQ(rejection([] { sluice::batching(sluice::batch_size(-1)); }),
            expected("batch_size", "-1", "1..10000"));
  EXPECT_EQ(rejection([] { sluice::batching(sluice::batch_size(10'001)); }),
            expected("batch_size", "10001", "1..10000"));
}

TEST(Validation, BatchSizeBoundariesAreAccepted) {
  EXPECT_EQ(sluice::batching(sluice::batch_size(1)).config.batch_size, 1u);
  EXPECT_EQ(sluice::batching(sluice::batch_size(10'000)).config.batch_size, 10'000u);
  EXPECT_EQ(sluice::batching().config.batch_size, 100u);  // Lambda's default
  static_assert(sluice::batch_size_c<1>().value == 1);
  static_assert(sluice::batch_size_c<10'000>().value == 10'000);
}

TEST(Validation, MaximumBatchingWindowOutsideZeroToThreeHundredSecondsIsRejected) {
  EXPECT_EQ(rejection([] { sluice::batching(sluice::maximum_batching_window(-1ms)); }),
            expected("maximum_batching_window (ms)", "-1", "0..300000 ms"));
  EXPECT_EQ(rejection([] { sluice::batching(sluice::maximum_batching_window(300'001ms)); }),
            expected("maximum_batching_window (ms)", "300001", "0..300000 ms"));
  EXPECT_EQ(rejection([] { sluice::batching(sluice::maximum_batching_window(6min)); }),
            expected("maximum_batching_window (ms)", "360000", "0..300000 ms"));
  // Not rounded into the allowed range:
  EXPECT_EQ(rejection([] { sluice::batching(sluice::maximum_batching_window(300s + 1ns)); }),
            expected("maximum_batching_window (ms)", "300000.000001", "0..300000 ms"));
  EXPECT_EQ(rejection([] { sluice::batching(sluice::maximum_batching_window(-1ns)); }),
            expected("maximum_batching_window (ms)", "-1e-06", "0..300000 ms"));
}

TEST(Validation, MaximumBatchingWindowJustOutsideTheRangeIsRejected) {
  // Sub-millisecond excess is still out of range.
  EXPECT_THROW(sluice::batching(sluice::maximum_batching_window(300s + 1ns)),
               sluice::configuration_error);
  EXPECT_THROW(sluice::batching(sluice::maximum_batching_window(-1ns)),
               sluice::configuration_error);
}

TEST(Validation, MaximumBatchingWindowBoundariesAreAccepted) {
  EXPECT_EQ(sluice::batching(sluice::maximum_batching_window(0s)).config.maximum_batching_window,
            sluice::duration::zero());
  EXPECT_EQ(sluice::batching(sluice::maximum_batching_window(300s)).config.maximum_batching_window,
            std::chrono::duration_cast<sluice::duration>(300s));
}

TEST(Validation, MaximumPayloadBytesOutsideOneToTwoPowFortyIsRejected) {
  EXPECT_EQ(rejection([] { sluice::batching(sluice::maximum_payload_bytes(0)); }),
            expected("maximum_payload_bytes", "0", "1..2^40 bytes"));
  EXPECT_EQ(rejection([] { sluice::batching(sluice::maximum_payload_bytes(-5)); }),
            expected("maximum_payload_bytes", "-5", "1..2^40 bytes"));
  EXPECT_EQ(rejection([] {
              sluice::batching(sluice::maximum_payload_bytes((std::int64_t{1} << 40) + 1));
            }),
            expected("maximum_payload_bytes", std::to_string((std::int64_t{1} << 40) + 1),
                     "1..2^40 bytes"));
}

TEST(Validation, MaximumPayloadBytesBoundariesAreAccepted) {
  EXPECT_EQ(sluice::batching(sluice::maximum_payload_bytes(1)).config.maximum_payload_bytes, 1u);
  EXPECT_EQ(sluice::batching(sluice::maximum_payload_bytes(std::int64_t{1} << 40))
                .config.maximum_payload_bytes,
            std::size_t{1} << 40);
}

TEST(Validation, BatchingRejectsTheFirstBadParameterWhateverTheOrder) {
  EXPECT_EQ(rejection([] {
              sluice::batching(sluice::maximum_payload_bytes(10), sluice::batch_size(0),
                               sluice::maximum_batching_window(1s));
            }),
            expected("batch_size", "0", "1..10000"));
}

// ---- parallelization factor (S-3.1)
// --------------------------------------------------------------

TEST(Validation, ParallelizationFactorOutsideOneTo1024IsRejected) {
  EXPECT_EQ(rejection([] { sluice::parallelization_factor(0); }),
            expected("parallelization_factor", "0", "1..1024"));
  EXPECT_EQ(rejection([] { sluice::parallelization_factor(-3); }),
            expected("parallelization_factor", "-3", "1..1024"));
  EXPECT_EQ(rejection([] { sluice::parallelization_factor(1025); }),
            expected("parallelization_factor", "1025", "1..1024"));
}

TEST(Validation, ParallelizationFactorBoundariesAreAccepted) {
  EXPECT_EQ(sluice::parallelization_factor(1).lanes, 1u);
  EXPECT_EQ(sluice::parallelization_factor(10).lanes, 10u);  // Lambda's maximum
  EXPECT_EQ(sluice::parallelization_factor(1024).lanes, 1024u);
}

// ---- retry policy (S-5.1, S-5.4, S-5.6)
// ----------------------------------------------------------

TEST(Validation, MaximumRetryAttemptsOutsideMinusOneToTenThousandIsRejected) {
  EXPECT_EQ(rejection([] { sluice::retry(sluice::maximum_retry_attempts(-2)); }),
            expected("maximum_retry_attempts", "-2", "-1 (infinite) or 0..10000"));
  EXPECT_EQ(rejection([] { sluice::retry(sluice::maximum_retry_attempts(10'001)); }),
            expected("maximum_retry_attempts", "10001", "-1 (infinite) or 0..10000"));
}

TEST(Validation, MaximumRetryAttemptsBoundariesAreAccepted) {
  EXPECT_EQ(sluice::retry(sluice::maximum_retry_attempts(-1)).config.maximum_retry_attempts, -1);
  EXPECT_EQ(sluice::retry(sluice::maximum_retry_attempts(0)).config.maximum_retry_attempts, 0);
  EXPECT_EQ(sluice::retry(sluice::maximum_retry_attempts(10'000)).config.maximum_retry_attempts,
            10'000);
  EXPECT_EQ(sluice::retry().config.maximum_retry_attempts, -1);  // infinite by default
  static_assert(sluice::maximum_retry_attempts_c<-1>().value == -1);
  static_assert(sluice::maximum_retry_attempts_c<10'000>().value == 10'000);
}

TEST(Validation, MaximumRecordAgeMustBePositive) {
  EXPECT_EQ(rejection([] { sluice::retry(sluice::maximum_record_age(0s)); }),
            expected("maximum_record_age (ms)", "0", "> 0 ms, or sluice::infinite_age"));
  EXPECT_EQ(rejection([] { sluice::retry(sluice::maximum_record_age(-5s)); }),
            expected("maximum_record_age (ms)", "-5000", "> 0 ms, or sluice::infinite_age"));
}

TEST(Validation, MaximumRecordAgeSmallestPositiveAndInfiniteAreAccepted) {
  EXPECT_EQ(sluice::retry(sluice::maximum_record_age(1ns)).config.maximum_record_age,
            std::optional<sluice::duration>(1ns));
  EXPECT_EQ(sluice::retry(sluice::maximum_record_age(7 * 24h)).config.maximum_record_age,
            std::optional<sluice::duration>(7 * 24h));
  EXPECT_FALSE(sluice::retry(sluice::infinite_age).config.maximum_record_age.has_value());
  EXPECT_FALSE(sluice::retry().config.maximum_record_age.has_value());
}

TEST(Validation, BackoffBaseMustNotBeNegative) {
  EXPECT_EQ(rejection([] { sluice::retry(sluice::backoff::fixed(-1ns)); }),
            expected("backoff.base (ns)", "-1", ">= 0"));
}

TEST(Validation, BackoffCapMustNotBeBelowBase) {
  EXPECT_EQ(rejection([] { sluice::retry(sluice::backoff::exponential(2s, 2.0, 1s)); }),
            expected("backoff.cap (ns)", "1000000000", ">= backoff.base"));
}

TEST(Validation, BackoffFactorOutsideOneToThousandIsRejected) {
  EXPECT_EQ(rejection([] { sluice::retry(sluice::backoff::exponential(1s, 0.5)); }),
            expected("backoff.factor", "0.5", "1..1000"));
  EXPECT_EQ(rejection([] { sluice::retry(sluice::backoff::exponential(1s, 1001.0)); }),
            expected("backoff.factor", "1001", "1..1000"));
  EXPECT_THROW(sluice::retry(sluice::backoff::exponential(1s, std::nan(""))),
               sluice::configuration_error);
}

TEST(Validation, BackoffBoundariesAreAccepted) {
  EXPECT_EQ(sluice::retry(sluice::backoff::fixed(0s)).config.backoff.base,
            sluice::duration::zero());
  const auto equal_cap = sluice::retry(sluice::backoff::exponential(1s, 1.0, 1s)).config.backoff;
  EXPECT_EQ(equal_cap.cap, equal_cap.base);
  EXPECT_EQ(sluice::retry(sluice::backoff::exponential(1ms, 1000.0)).config.backoff.factor, 1000.0);
}

// ---- run/start options
// ---------------------------------------------------------------------------

TEST(Validation, PollersOutsideOneTo1024AreRejected) {
  EXPECT_EQ(rejection([] { sluice::pollers(0); }), expected("pollers", "0", "1..1024"));
  EXPECT_EQ(rejection([] { sluice::pollers(1025); }), expected("pollers", "1025", "1..1024"));
  EXPECT_EQ(sluice::pollers(1).n, 1u);
  EXPECT_EQ(sluice::pollers(1024).n, 1024u);
}

TEST(Validation, WorkersOutsideOneTo1024AreRejected) {
  EXPECT_EQ(rejection([] { sluice::workers(0); }), expected("workers", "0", "1..1024"));
  EXPECT_EQ(rejection([] { sluice::workers(-1); }), expected("workers", "-1", "1..1024"));
  EXPECT_EQ(rejection([] { sluice::workers(1025); }), expected("workers", "1025", "1..1024"));
  EXPECT_EQ(sluice::workers(1).n, 1u);
  EXPECT_EQ(sluice::workers(1024).n, 1024u);
}

TEST(Validation, EmptyMappingNameIsRejectedWhenTheMappingRuns) {
  std::vector<sluice::record<int>> records;
  auto handled = 0;
  auto mapping = [&] {
    return sluice::from(records) |
           sluice::invoke([&](const sluice::batch<sluice::record<int>>&) { ++handled; });
  };
  EXPECT_EQ(rejection([&] { sluice::run(mapping(), sluice::mapping_name("")); }),
            expected("mapping_name", "\"\"", "a non-empty name"));
  EXPECT_EQ(rejection([&] { auto running = sluice::start(mapping(), sluice::mapping_name("")); }),
            expected("mapping_name", "\"\"", "a non-empty name"));
  EXPECT_EQ(sluice::run(mapping(), sluice::mapping_name("x")).mapping_name, "x");
}

// ---- memory_stream
// -------------------------------------------------------------------------------

TEST(Validation, StreamShardsOutsideOneToTwoPowTwentyAreRejected) {
  sluice::manual_clock clock;
  EXPECT_EQ(
      rejection([&] { sluice::memory_stream<int, std::string, sluice::manual_clock> s(0, clock); }),
      expected("shards", "0", "1..1048576"));
  EXPECT_EQ(rejection([&] {
              sluice::memory_stream<int, std::string, sluice::manual_clock> s((1u << 20) + 1,
                                                                              clock);
            }),
            expected("shards", "1048577", "1..1048576"));
  sluice::memory_stream<int, std::string, sluice::manual_clock> one(1, clock);
  EXPECT_EQ(one.shard_count(), 1u);
  // The upper boundary (2^20 shards) is not built here: a million shard objects under
  // AddressSanitizer cost far more memory than the check is worth.
}

TEST(Validation, StreamRetentionCountMustBeAtLeastOne) {
  sluice::manual_clock clock;
  using stream = sluice::memory_stream<int, std::string, sluice::manual_clock>;
  EXPECT_EQ(rejection([&] {
              stream s(
                  sluice::stream_options{
                      .shards = 1, .retention_age = std::nullopt, .retention_count = 0},
                  clock);
            }),
            expected("retention_count", "0", ">= 1"));
  stream one(
      sluice::stream_options{.shards = 1, .retention_age = std::nullopt, .retention_count = 1},
      clock);
  one.put("k", 1);
  one.put("k", 2);
  EXPECT_EQ(one.size(0), 1u);
}

TEST(Validation, StreamRetentionAgeMustBePositive) {
  sluice::manual_clock clock;
  using stream = sluice::memory_stream<int, std::string, sluice::manual_clock>;
  EXPECT_EQ(
      rejection([&] { stream s(sluice::stream_options{.shards = 1, .retention_age = 0s}, clock); }),
      expected("retention_age (ns)", "0", "> 0"));
  EXPECT_EQ(rejection([&] {
              stream s(sluice::stream_options{.shards = 1, .retention_age = -1ns}, clock);
            }),
            expected("retention_age (ns)", "-1", "> 0"));
  stream smallest(sluice::stream_options{.shards = 1, .retention_age = 1ns}, clock);
  smallest.put("k", 1);
  EXPECT_EQ(smallest.size(0), 1u);  // age 0 is not older than 1 ns
}
