// sluice/traits.hpp: the runtime's tuning knobs, as one traits struct in the manner of
// moodycamel's ConcurrentQueueDefaultTraits: derive from sluice::runtime_traits, override what
// you need, and pass it with sluice::with_traits<YourTraits>(). Defaults were chosen by
// measurement on a 2-core machine (docs/performance.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE

struct runtime_traits {
  /// Batch slots per lane: one being filled, the rest closed and waiting, the oldest in flight.
  /// Memory bound: shards x P x batches_per_lane x batch_size records. At least 2.
  static constexpr std::uint32_t batches_per_lane = ::sluice::batches_per_lane;
  /// Records a reader takes from a shard per pass (at least batch_size). Larger: fewer passes
  /// and checkpoint saves; smaller: fairer between shards that share a thread.
  static constexpr std::size_t read_chunk = 1024;
  /// How long a thread that ran out of work keeps looking for more before it parks: a spinning
  /// thread takes work that comes within the spin without a wake-up, at the price of a busy core
  /// meanwhile. Measured on a 2-core KVM guest (docs/performance.md):
  /// - a reader (a thread that reads shards) parks at once by default: a 50 us spin made the
  ///   wake-up after it slower (put -> handler p50 24 us against 9.5 us) and gained no
  ///   throughput, since a reader runs quick batches itself; a spin longer than the gap between
  ///   records (200 us at 10,000 records/s) gives ~1 us p50 and keeps a core busy;
  /// - a worker (a thread that only runs handed-over batches), and a reader in the handoff mode
  ///   (it only reads), spin 50 us: they wait on each other's progress, and the spin keeps that
  ///   pipeline flowing (1 shard, batch 100, handoff: ~100 M records/s with it, 13-29 M without,
  ///   where batches cost wake-ups).
  static constexpr std::chrono::microseconds reader_spin{0};  // readers that run their batches
  static constexpr std::chrono::microseconds worker_spin{50};
  /// In the adaptive execution mode a lane whose batches take at least this long (measured) is
  /// handed to an idle thread when its reader has more to do; quicker ones run on the reader,
  /// where a hand-off would cost more than it brings.
  static constexpr std::chrono::microseconds handoff_above{5};
  /// A lane whose source withdrew the right to hand it batches (a leased shard whose lease
  /// lapsed, sluice/leases.hpp) looks again after this long, on the mapping's clock, until the
  /// lease is renewed or the mapping is stopped: it sleeps meanwhile rather than spin.
  static constexpr std::chrono::milliseconds gate_recheck{20};
  /// Poller threads when no pollers(n) option is given: 0 means one per shard, at most one per
  /// hardware thread.
  static constexpr std::uint32_t pollers = 0;
};

/// The default: sluice::runtime_traits as is.
using default_runtime_traits = runtime_traits;

SLUICE_END_NAMESPACE
