// sluice/limits.hpp: downstream limits of a mapping, for every source: how many handler calls may
// run at once (sluice::maximum_concurrency, as Lambda's ScalingConfig.MaximumConcurrency), how
// fast calls may start (sluice::rate_limit, a token bucket in records/s and/or invocations/s), and
// beyond Lambda a concurrency limit that adapts to the downstream (sluice::adaptive_concurrency:
// lowered when the handler throws sluice::throttled, raised again as calls succeed).
//
// They are stages of the mapping (`| sluice::maximum_concurrency(10)`), not options of run/start:
// Lambda treats them as settings of the event source mapping, so they travel with the mapping's
// type and apply the same way whichever runtime (run, start, simulate) runs it. Each appears at
// most once; maximum_concurrency and adaptive_concurrency are two forms of one stage (a mapping
// has one concurrency limit). They go anywhere before the sink and need a batch handler.
//
// What a runtime does with them: see detail::limiter (sluice/detail/pipeline/limiter.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"

SLUICE_BEGIN_NAMESPACE

// ---- concurrency ------------------------------------------------------------------------------

/// Lambda's range of MaximumConcurrency (2..1,000).
inline constexpr std::int64_t min_maximum_concurrency = 2;
inline constexpr std::int64_t max_maximum_concurrency = 1'000;

/// A mapping's concurrency limit: at most `maximum` handler calls at once across its shards and
/// lanes. Adaptive: the allowed concurrency moves between `minimum` and `maximum` (AIMD, see
/// detail::aimd_controller); fixed: minimum == maximum and it never moves.
struct concurrency_stage {
  std::uint32_t minimum = 1;
  std::uint32_t maximum = 1;
  bool adaptive = false;
  /// Adaptive only: the factor the limit is multiplied by after a throttle (0.5..0.95).
  double decrease_factor = 0.9;
};

/// At most n handler invocations of the mapping at once, across shards and lanes (Lambda's
/// MaximumConcurrency, 2..1,000). Per-key order is kept: a lane waiting for a permit keeps its
/// batches in order, and its reader is slowed by the normal backpressure (a full lane ring).
inline concurrency_stage maximum_concurrency(std::int64_t n) {
  detail::require_in_range<std::int64_t>("maximum_concurrency", n, min_maximum_concurrency,
                                         max_maximum_concurrency, "2..1000");
  const auto v = static_cast<std::uint32_t>(n);
  return {v, v, false, 1.0};
}

/// Beyond Lambda: a concurrency limit that starts at `minimum`, grows while calls succeed and
/// shrinks when the handler throws sluice::throttled, never outside minimum..maximum
/// (1 <= minimum <= maximum <= 1,000). Growth doubles the limit per round of successful calls
/// until the first throttle (slow start), then adds 1 per round (a round = as many successful
/// calls as the limit), counting only calls the limit held back (they waited for a slot or took
/// the last one); a throttle multiplies it by decrease_factor (0.5..0.95, default 0.9), at most
/// once per round. See docs/limits.md.
inline concurrency_stage adaptive_concurrency(std::int64_t minimum, std::int64_t maximum,
                                              double decrease_factor = 0.9) {
  detail::require_in_range<std::int64_t>("adaptive_concurrency minimum", minimum, 1,
                                         max_maximum_concurrency, "1..1000");
  detail::require_in_range<std::int64_t>("adaptive_concurrency maximum", maximum, minimum,
                                         max_maximum_concurrency,
                                         std::to_string(minimum) + "..1000 (minimum..1000)");
  if (!(decrease_factor >= 0.5 && decrease_factor <= 0.95))
    detail::reject("adaptive_concurrency decrease_factor", decrease_factor, "0.5..0.95");
  return {static_cast<std::uint32_t>(minimum), static_cast<std::uint32_t>(maximum), true,
          decrease_factor};
}

// ---- rate ---------------------------------------------------------------------------------------

/// The largest rate and burst rate_limit accepts (per second, and tokens).
inline constexpr double max_rate_per_second = 1e9;

/// One token bucket: `per_second` tokens are added per second up to `burst`; 0 = no limit.
struct token_rate {
  double per_second = 0;
  double burst = 0;
};

struct records_per_second_param {
  double rate;
  std::optional<double> burst;
};
struct invocations_per_second_param {
  double rate;
  std::optional<double> burst;
};

/// At most `rate` records per second handed to the handler (retries count: the downstream sees
/// them), with bursts of up to `burst` records (default: one second's worth, at least 1).
/// rate: > 0 and <= 1e9; burst: 1..1e9. A batch larger than the burst is let through when the
/// bucket is full and leaves it in debt, so the average rate still holds.
constexpr records_per_second_param records_per_second(double rate) noexcept {
  return {rate, std::nullopt};
}
constexpr records_per_second_param records_per_second(double rate, double burst) noexcept {
  return {rate, burst};
}
/// At most `rate` handler invocations per second, bursts of up to `burst` (default: one
/// second's worth, at least 1). rate: > 0 and <= 1e9; burst: 1..1e9.
constexpr invocations_per_second_param invocations_per_second(double rate) noexcept {
  return {rate, std::nullopt};
}
constexpr invocations_per_second_param invocations_per_second(double rate, double burst) noexcept {
  return {rate, burst};
}

/// A mapping's rate limit: a token bucket per unit, both applied before each handler call.
struct rate_limit_stage {
  token_rate records;      // per_second == 0: records are not limited
  token_rate invocations;  // per_second == 0: invocations are not limited
};

namespace detail {
inline token_rate validated_rate(const char* parameter, double rate, std::optional<double> burst) {
  const std::string name(parameter);
  if (!(rate > 0 && rate <= max_rate_per_second)) reject(name + " rate", rate, "> 0 and <= 1e9");
  const double b = burst ? *burst : std::max(1.0, rate);
  if (!(b >= 1 && b <= max_rate_per_second)) reject(name + " burst", b, "1..1e9");
  return {rate, b};
}
inline void apply(rate_limit_stage& s, records_per_second_param p) {
  s.records = validated_rate("records_per_second", p.rate, p.burst);
}
inline void apply(rate_limit_stage& s, invocations_per_second_param p) {
  s.invocations = validated_rate("invocations_per_second", p.rate, p.burst);
}
template <class T>
inline constexpr bool is_rate_param =
    std::is_same_v<T, records_per_second_param> || std::is_same_v<T, invocations_per_second_param>;
}  // namespace detail

/// rate_limit(records_per_second(r[, burst]), invocations_per_second(r[, burst])): one or both,
/// in any order. Applied before the handler (retries included); a call waiting for tokens is
/// backpressure: its lane waits (in order), the lane's ring fills and its reader slows down.
/// Waiting runs on the mapping's clock (a manual_clock plays it in virtual time).
template <class... Params>
rate_limit_stage rate_limit([[maybe_unused]] Params... params) {
  constexpr bool known = sizeof...(Params) > 0 && (detail::is_rate_param<Params> && ...);
  static_assert(known,
                "sluice::rate_limit takes records_per_second(rate[, burst]) and/or "
                "invocations_per_second(rate[, burst])");
  constexpr bool once = ((std::is_same_v<Params, records_per_second_param> + ... + 0) <= 1) &&
                        ((std::is_same_v<Params, invocations_per_second_param> + ... + 0) <= 1);
  static_assert(!known || once, "sluice::rate_limit: a parameter is given twice");
  rate_limit_stage s;
  if constexpr (known && once) (detail::apply(s, params), ...);
  return s;
}

// ---- what a mapping's limits are, read by a runtime --------------------------------------------

/// The limits of one mapping, as a runtime sees them (no concurrency or rate: unlimited).
struct limits_config {
  std::optional<concurrency_stage> concurrency;
  std::optional<rate_limit_stage> rate;
};

SLUICE_END_NAMESPACE
