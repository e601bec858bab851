// sluice/window.hpp: tumbling windows (S-7, docs/windows.md). `| sluice::tumbling_window(60)`
// groups a shard's records into windows aligned to multiples of W by arrival time; the handler
// takes (const batch<R>&, const window_context&) and returns a window_response carrying the new
// state. State is bytes (std::string), like Lambda's JSON state; it is stored with the
// checkpoint, so a restarted mapping resumes the window.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "sluice/batch.hpp"
#include "sluice/checkpoint.hpp"
#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/stages.hpp"

SLUICE_BEGIN_NAMESPACE

/// What a window handler is told besides its batch.
struct window_context {
  time_point start;  // the window is [start, end)
  time_point end;
  shard_id_t shard_id = 0;
  /// The state the previous invocation of this window returned; empty for its first one.
  const std::string& state;
  /// The window has ended: this invocation has no records and its returned state is dropped.
  bool is_final = false;
  /// With is_final: the window ended early because a state grew over the cap; the next
  /// invocation continues the same window (same bounds) with a fresh, empty state.
  bool terminated_early = false;
};

/// A window handler's answer: the new state (required: a response without one is a failed
/// invocation, as in Lambda) and, with report_batch_item_failures, the failed records.
struct window_response {
  std::optional<std::string> state;
  batch_item_failures failures;

  window_response() = default;
  window_response(std::string s) : state(std::move(s)) {}  // NOLINT(google-explicit-constructor)
  window_response(std::string s, batch_item_failures f)
      : state(std::move(s)), failures(std::move(f)) {}
};

// ---- the stage --------------------------------------------------------------------------------

struct window_config {
  duration length = std::chrono::seconds(60);
  duration idle_timeout = std::chrono::minutes(2);
  std::size_t maximum_state_bytes = std::size_t{1} << 20;
};

struct window_idle_timeout_param {
  duration value;
};
struct maximum_state_bytes_param {
  std::int64_t value;
};

/// How long a window waits with no record before its final invocation (> 0; default 2 min).
template <class Rep, class Period>
constexpr window_idle_timeout_param window_idle_timeout(std::chrono::duration<Rep, Period> d) {
  return {std::chrono::duration_cast<duration>(d)};
}
/// The state cap in bytes, 1..2^30 (default 1 MiB, Lambda's); a larger state ends the window
/// early.
constexpr maximum_state_bytes_param maximum_state_bytes(std::int64_t n) noexcept { return {n}; }

struct window_stage {
  window_config config;
};

inline constexpr std::int64_t max_tumbling_window_seconds = 900;

namespace detail {
inline void apply(window_config& c, window_idle_timeout_param p) {
  if (p.value <= duration::zero())
    reject("window_idle_timeout (ms)", std::chrono::duration<double, std::milli>(p.value).count(),
           "> 0 ms");
  c.idle_timeout = p.value;
}
inline void apply(window_config& c, maximum_state_bytes_param p) {
  require_in_range<std::int64_t>("maximum_state_bytes", p.value, 1, std::int64_t{1} << 30,
                                 "1..2^30 bytes");
  c.maximum_state_bytes = static_cast<std::size_t>(p.value);
}
template <class T>
inline constexpr bool is_window_param =
    std::is_same_v<T, window_idle_timeout_param> || std::is_same_v<T, maximum_state_bytes_param>;

template <class... Params>
window_stage make_window(duration length, Params... params) {
  constexpr bool known = (is_window_param<Params> && ...);
  static_assert(known,
                "sluice::tumbling_window takes the window length, then window_idle_timeout(d) "
                "and maximum_state_bytes(n)");
  constexpr bool once = ((count_of<Params, Params...> == 1) && ...);
  static_assert(!known || once, "sluice::tumbling_window: a parameter is given twice");
  window_stage s;
  s.config.length = length;
  if constexpr (known && once) (apply(s.config, params), ...);
  return s;
}
}  // namespace detail

/// Lambda's TumblingWindowInSeconds: 1..900 whole seconds.
template <class... Params>
window_stage tumbling_window(std::int64_t seconds, Params... params) {
  detail::require_in_range<std::int64_t>(
      "tumbling_window (s)", seconds, 1, max_tumbling_window_seconds,
      "1..900 s (Lambda's range; pass a std::chrono duration for any other positive length)");
  return detail::make_window(std::chrono::seconds(seconds), params...);
}
/// Beyond Lambda: any positive duration (sub-second windows, hours, days).
template <class Rep, class Period, class... Params>
window_stage tumbling_window(std::chrono::duration<Rep, Period> length, Params... params) {
  const auto d = std::chrono::duration_cast<duration>(length);
  if (d <= duration::zero())
    detail::reject("tumbling_window (ms)", std::chrono::duration<double, std::milli>(d).count(),
                   "> 0 ms");
  return detail::make_window(d, params...);
}
/// Compile-time window length in seconds: out-of-range values do not compile.
template <std::int64_t Seconds>
window_stage tumbling_window_c() {
  static_assert(Seconds >= 1 && Seconds <= max_tumbling_window_seconds,
                "sluice::tumbling_window_c<s>: s must be in 1..900 (Lambda's range; pass a "
                "std::chrono duration to tumbling_window for other lengths)");
  return detail::make_window(std::chrono::seconds(Seconds));
}

SLUICE_END_NAMESPACE
