// sluice/detail/pipeline/window.hpp: the parts of a tumbling window (S-7, docs/windows.md) that
// the engine and lane_job share. A windowed mapping has one lane per shard, so a window is a
// shard's: the reader knows which window its batches are in (window_reader, to close a batch at
// a window boundary and to send an idle marker), the run side holds the state (window_run, in
// lane_job), and publishes it for the checkpoint (window_publisher): the reader stores the
// checkpoint and the open window together, in one save.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "sluice/checkpoint.hpp"
#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail {

/// The start of the window of length `length` that holds `t`: windows are aligned to multiples
/// of the length since the clock's epoch.
inline time_point window_start_of(time_point t, duration length) noexcept {
  const auto ticks = t.time_since_epoch().count();
  const auto w = length.count();
  auto q = ticks / w;
  if (ticks % w < 0) --q;  // floor, also before the epoch
  return time_point(duration(q * w));
}

/// The reader's side of a shard's window: the window the lane's last taken record is in.
struct window_reader {
  bool open = false;
  time_point start{};
  time_point last_seen{};  // when the reader last took a record of it (idle time counts from here)
};
struct no_window_reader {};

/// What the run side publishes for the reader's checkpoint save: the open window (or none) and
/// the last record whose effect is in it (every record up to it is finished: one lane, in order).
struct window_snapshot {
  std::shared_ptr<const window_checkpoint> window;
  sequence_number_t through = 0;
  std::uint64_t version = 0;
};

class window_publisher {
 public:
  void publish(const std::optional<window_checkpoint>& open, sequence_number_t through) {
    auto copy = open ? std::make_shared<const window_checkpoint>(*open) : nullptr;
    std::lock_guard lock(mutex_);
    snapshot_.window = std::move(copy);
    snapshot_.through = std::max(snapshot_.through, through);
    ++snapshot_.version;
  }
  window_snapshot get() const {
    std::lock_guard lock(mutex_);
    return snapshot_;
  }

 private:
  mutable std::mutex mutex_;
  window_snapshot snapshot_;
};

/// The run side's window state (a member of a windowed lane_job).
struct window_run {
  std::optional<window_checkpoint> open;  // the current window and its state
  bool checked = false;                   // the begun batch was compared with the open window
  bool final_due = false;                 // the final invocation runs before anything else
  std::uint32_t final_attempts = 0;       // failed final attempts (against retries)
  std::uint32_t final_invocations = 0;
  time_point final_first_failure{};
  sequence_number_t first = 0;  // the window's first and last records so far (for on-failure)
  sequence_number_t last = 0;
  sequence_number_t through = 0;
  window_publisher published;
};
struct no_window_run {};

}  // namespace detail
SLUICE_END_NAMESPACE
