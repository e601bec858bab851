// sluice/events.hpp: structured events for logs. A mapping started or run with
// sluice::events(sink) tells the sink when a batch attempt failed, a batch was discarded (its
// retries ran out, its records were too old, a stage threw on a record), a
// dead letter reached the on-failure destination, a lane got blocked on a failing destination
// or unblocked, and a checkpoint could not be stored. Events are raised only on these failure
// paths, each behind one null-pointer test, so a mapping without a sink pays nothing on its
// success path. A ready-made sink writes JSON lines: sluice/events/json_lines.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE

enum class event_kind {
  batch_failed,           // an attempt of a batch failed (function error, throttle, report)
  batch_discarded,        // records leave their lane unprocessed: condition says why
                          // (RetryAttemptsExhausted, RecordAgeExceeded, StageFailed); they go
                          // to the on-failure destination, or are dropped without one
  dead_letter_delivered,  // the on-failure destination accepted a discarded batch
  lane_blocked,           // a delivery to the on-failure destination failed: the lane waits
  lane_unblocked,         // a delivery succeeded again after failures
  checkpoint_failed,      // the checkpoint store threw while saving (the mapping stops)
};

/// The kind's spelling in logs ("batch_failed", ...).
constexpr std::string_view to_string(event_kind k) noexcept {
  switch (k) {
    case event_kind::batch_failed:
      return "batch_failed";
    case event_kind::batch_discarded:
      return "batch_discarded";
    case event_kind::dead_letter_delivered:
      return "dead_letter_delivered";
    case event_kind::lane_blocked:
      return "lane_blocked";
    case event_kind::lane_unblocked:
      return "lane_unblocked";
    default:
      return "checkpoint_failed";
  }
}

/// One event. Views are valid only during the call to event_sink::on_event.
struct event {
  event_kind kind{};
  time_point time{};         // the mapping's clock
  std::string_view mapping;  // the mapping's name
  shard_id_t shard = 0;
  sequence_number_t first_sequence = 0;  // the records concerned (checkpoint_failed: the
  sequence_number_t last_sequence = 0;   // checkpoint that could not be stored, in both)
  std::size_t records = 0;
  std::uint32_t attempts = 0;   // batch_failed, batch_discarded: attempts of these records
  std::string_view condition;   // why records were discarded (not for batch_failed and
                                // checkpoint_failed): RetryAttemptsExhausted, RecordAgeExceeded,
                                // StageFailed
  std::string_view error_type;  // the exception's type, when there is one
  std::string_view error_message;
};

/// Receives a mapping's events, on the thread that raised them (possibly several at once): an
/// implementation must be thread-safe, should be quick, and must not throw.
class event_sink {
 public:
  virtual void on_event(const event& e) noexcept = 0;

 protected:
  ~event_sink() = default;
};

struct events_option {
  event_sink* sink;
};
/// Option of sluice::run and sluice::start: the sink that receives the mapping's events. The
/// sink must outlive the mapping.
inline events_option events(event_sink& sink) noexcept { return {&sink}; }

SLUICE_END_NAMESPACE
