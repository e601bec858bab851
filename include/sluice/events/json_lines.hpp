// sluice/events/json_lines.hpp: an event_sink that writes each event as one JSON object per line,
// for log shippers:
//   {"time":"2026-11-28T07:55:01.123Z","event":"lane_blocked","mapping":"ledger","shard":1,
//    "firstSequence":"40","lastSequence":"41","records":2,"errorType":"std::runtime_error",
//    "errorMessage":"disk full"}
// Sequence numbers are quoted, as in the on-failure records. Lines are written whole, under a
// lock, and flushed, so concurrent events never interleave.
#pragma once

#include <mutex>
#include <ostream>
#include <string>

#include "sluice/config.hpp"
#include "sluice/detail/io/json_text.hpp"
#include "sluice/events.hpp"

SLUICE_BEGIN_NAMESPACE

/// The JSON line (without its line feed) for one event.
inline std::string to_json_line(const event& e) {
  std::string out;
  out.reserve(256);
  out += R"({"time":)";
  detail::append_quoted_time(out, e.time);
  out += R"(,"event":")";
  out += to_string(e.kind);
  out += R"(","mapping":)";
  detail::append_json_string(out, e.mapping);
  out += R"(,"shard":)";
  detail::append_number(out, e.shard);
  out += R"(,"firstSequence":)";
  detail::append_quoted_number(out, e.first_sequence);
  out += R"(,"lastSequence":)";
  detail::append_quoted_number(out, e.last_sequence);
  out += R"(,"records":)";
  detail::append_number(out, e.records);
  if (e.attempts > 0) {
    out += R"(,"attempts":)";
    detail::append_number(out, e.attempts);
  }
  if (!e.condition.empty()) {
    out += R"(,"condition":)";
    detail::append_json_string(out, e.condition);
  }
  if (!e.error_type.empty() || !e.error_message.empty()) {
    out += R"(,"errorType":)";
    detail::append_json_string(out, e.error_type);
    out += R"(,"errorMessage":)";
    detail::append_json_string(out, e.error_message);
  }
  out += '}';
  return out;
}

/// Writes every event as a JSON line to a stream (std::clog, an std::ofstream, ...), which must
/// outlive the sink. A write that fails sets the stream's state and is otherwise ignored: logging
/// never stops a mapping.
class json_lines_event_sink final : public event_sink {
 public:
  explicit json_lines_event_sink(std::ostream& out) : out_(&out) {}

  void on_event(const event& e) noexcept override {
    try {
      std::string line = to_json_line(e);
      line += '\n';
      std::lock_guard lock(mutex_);
      out_->write(line.data(), static_cast<std::streamsize>(line.size()));
      out_->flush();
    } catch (...) {  // out of memory, or a stream with exceptions() set: the event is lost
    }
  }

 private:
  std::mutex mutex_;
  std::ostream* out_;
};

SLUICE_END_NAMESPACE
