// sluice/config.hpp: the versioned namespace and the few vocabulary types every header shares.
// Time is std::chrono::system_clock's time_point so arrival times are wall-clock stamps that mean
// the same thing across processes; all waiting goes through an injected clock (sluice/clock.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>

#define SLUICE_BEGIN_NAMESPACE \
  namespace sluice {           \
  inline namespace v0 {
#define SLUICE_END_NAMESPACE \
  }                          \
  }

SLUICE_BEGIN_NAMESPACE

/// A record's position in its shard; strictly increasing within a shard, first record is 1.
using sequence_number_t = std::uint64_t;
/// Index of a shard in a stream, 0-based.
using shard_id_t = std::uint32_t;

using time_point = std::chrono::system_clock::time_point;
using duration = std::chrono::system_clock::duration;

/// "No record": sequence numbers start at 1, so 0 means "before the first record".
inline constexpr sequence_number_t no_sequence = 0;

/// Batches one lane buffers by default (sluice::runtime_traits::batches_per_lane): the one being
/// filled and up to three closed ones, the oldest in flight. So a mapping holds at most
/// shards x P x batches_per_lane x batch_size records.
inline constexpr std::uint32_t batches_per_lane = 4;
inline constexpr time_point far_future = time_point::max();

SLUICE_END_NAMESPACE
