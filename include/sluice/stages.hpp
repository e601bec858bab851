// sluice/stages.hpp: the stage types a mapping is composed of, and the functions that make them.
// Each stage is a small value type; `|` (sluice/mapping.hpp) puts them into the mapping's
// compile-time stage list. Names follow Lambda's parameters (batch_size, maximum_retry_attempts).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/source.hpp"

SLUICE_BEGIN_NAMESPACE

// ---- per-record stages ------------------------------------------------------------------------

/// Keeps the records for which pred returns true (S-6.1: the others are finished at once).
/// pred takes the record, or its payload.
template <class Pred>
struct filter_stage {
  Pred pred;
};
template <class Pred>
constexpr filter_stage<std::decay_t<Pred>> filter(Pred&& pred) {
  return {std::forward<Pred>(pred)};
}

/// Maps each record. fn takes the record (or its payload) and returns a new record, or a new
/// payload that keeps the record's key, sequence number and arrival time.
template <class Fn>
struct transform_stage {
  Fn fn;
};
template <class Fn>
constexpr transform_stage<std::decay_t<Fn>> transform(Fn&& fn) {
  return {std::forward<Fn>(fn)};
}

// ---- batching (S-2) ---------------------------------------------------------------------------

/// Runtime batching parameters; batch(...) validates them when the mapping is built.
struct batching_config {
  std::uint32_t batch_size = 100;
  duration maximum_batching_window = duration::zero();
  std::size_t maximum_payload_bytes = 6u << 20;
};

struct batch_size_param {
  std::int64_t value;
};
struct maximum_batching_window_param {
  duration value;
};
struct maximum_payload_bytes_param {
  std::int64_t value;
};

inline constexpr std::int64_t max_batch_size = 10'000;
inline constexpr auto max_batching_window = std::chrono::seconds(300);

/// Records per batch, 1..10,000 (default 100).
constexpr batch_size_param batch_size(std::int64_t n) noexcept { return {n}; }
/// Compile-time batch size: out-of-range values do not compile.
template <std::int64_t N>
constexpr batch_size_param batch_size_c() noexcept {
  static_assert(N >= 1 && N <= max_batch_size, "sluice::batch_size_c<N>: N must be in 1..10000");
  return {N};
}
/// How long the first buffered record may wait for more, 0..300 s (default 0).
template <class Rep, class Period>
constexpr maximum_batching_window_param maximum_batching_window(
    std::chrono::duration<Rep, Period> d) {
  return {std::chrono::duration_cast<duration>(d)};
}
/// Compile-time batching window in milliseconds: out-of-range values do not compile.
template <std::int64_t Milliseconds>
constexpr maximum_batching_window_param maximum_batching_window_c() noexcept {
  static_assert(Milliseconds >= 0 && Milliseconds <= 300'000,
                "sluice::maximum_batching_window_c<ms>: ms must be in 0..300000");
  return {std::chrono::milliseconds(Milliseconds)};
}
/// Cap on the sum of payload sizes in a batch, >= 1 (default 6 MiB).
constexpr maximum_payload_bytes_param maximum_payload_bytes(std::int64_t n) noexcept { return {n}; }
template <std::int64_t N>
constexpr maximum_payload_bytes_param maximum_payload_bytes_c() noexcept {
  static_assert(N >= 1 && N <= (std::int64_t{1} << 40),
                "sluice::maximum_payload_bytes_c<N>: N must be in 1..2^40");
  return {N};
}

struct batch_stage {
  batching_config config;
};

namespace detail {
template <class T, class... Ts>
inline constexpr int count_of = (std::is_same_v<T, Ts> + ... + 0);
template <class T>
inline constexpr bool is_batching_param =
    std::is_same_v<T, batch_size_param> || std::is_same_v<T, maximum_batching_window_param> ||
    std::is_same_v<T, maximum_payload_bytes_param>;
}  // namespace detail

namespace detail {
inline void apply(batching_config& c, batch_size_param p) {
  require_in_range<std::int64_t>("batch_size", p.value, 1, max_batch_size, "1..10000");
  c.batch_size = static_cast<std::uint32_t>(p.value);
}
inline void apply(batching_config& c, maximum_batching_window_param p) {
  if (p.value < duration::zero() || p.value > max_batching_window)
    reject("maximum_batching_window (ms)",
           std::chrono::duration<double, std::milli>(p.value).count(), "0..300000 ms");
  c.maximum_batching_window = p.value;
}
inline void apply(batching_config& c, maximum_payload_bytes_param p) {
  require_in_range<std::int64_t>("maximum_payload_bytes", p.value, 1, std::int64_t{1} << 40,
                                 "1..2^40 bytes");
  c.maximum_payload_bytes = static_cast<std::size_t>(p.value);
}
}  // namespace detail

/// The batcher: batching(batch_size(500), maximum_batching_window(20ms),
/// maximum_payload_bytes(..)), any subset in any order; the rest keep Lambda's defaults.
/// Throws sluice::configuration_error naming the parameter, value and allowed range.
template <class... Params>
batch_stage batching([[maybe_unused]] Params... params) {
  constexpr bool known = (detail::is_batching_param<Params> && ...);
  static_assert(known,
                "sluice::batching takes batch_size(n), maximum_batching_window(d), "
                "maximum_payload_bytes(n)");
  constexpr bool once = ((detail::count_of<Params, Params...> == 1) && ...);
  static_assert(!known || once, "sluice::batching: a parameter is given twice");
  batch_stage s;
  if constexpr (known && once) (detail::apply(s.config, params), ...);
  return s;
}

// ---- parallelization factor (S-3) ------------------------------------------------------------

struct parallelization_stage {
  std::uint32_t lanes = 1;
};
/// P lanes per shard (Lambda: 1..10; sluice accepts 1..1024).
inline parallelization_stage parallelization_factor(std::int64_t p) {
  detail::require_in_range<std::int64_t>("parallelization_factor", p, 1, 1024, "1..1024");
  return {static_cast<std::uint32_t>(p)};
}
template <std::int64_t P>
constexpr parallelization_stage parallelization_factor_c() noexcept {
  static_assert(P >= 1 && P <= 1024, "sluice::parallelization_factor_c<P>: P must be in 1..1024");
  return {static_cast<std::uint32_t>(P)};
}

// ---- failure policies (S-4, S-5) ---------------------------------------------------------------

/// Delay before re-attempting records after an attempt that made no progress (S-5.6).
/// Default: exponential, base 100 ms, factor 2, cap 30 s, with jitter (delay/2 + up to delay/2).
struct backoff {
  duration base = std::chrono::milliseconds(100);
  double factor = 2.0;
  duration cap = std::chrono::seconds(30);
  bool jitter = true;

  static backoff fixed(duration d) { return backoff{d, 1.0, d, false}; }
  static backoff exponential(duration base, double factor = 2.0,
                             duration cap = std::chrono::seconds(30), bool jitter = true) {
    return backoff{base, factor, cap, jitter};
  }
  /// Delay after the n-th consecutive failed attempt (n >= 1); `random` is a uniform 64-bit draw.
  duration delay(std::uint32_t n, std::uint64_t random) const noexcept {
    auto d = static_cast<double>(base.count());
    for (std::uint32_t i = 1; i < n && d < static_cast<double>(cap.count()); ++i) d *= factor;
    auto ticks = static_cast<duration::rep>(std::min(d, static_cast<double>(cap.count())));
    if (jitter && ticks > 1)
      ticks = ticks / 2 +
              static_cast<duration::rep>(random % static_cast<std::uint64_t>(ticks / 2 + 1));
    return duration(ticks);
  }
};

struct maximum_retry_attempts_param {
  std::int64_t value;
};
struct maximum_record_age_param {
  std::optional<duration> value;  // nullopt = infinite
};

/// Retries after the first attempt: -1 (infinite, default) or 0..10,000.
constexpr maximum_retry_attempts_param maximum_retry_attempts(std::int64_t r) noexcept {
  return {r};
}
template <std::int64_t R>
constexpr maximum_retry_attempts_param maximum_retry_attempts_c() noexcept {
  static_assert(R >= -1 && R <= 10'000,
                "sluice::maximum_retry_attempts_c<R>: R must be -1 (infinite) or 0..10000");
  return {R};
}
/// Records older than this are sent to the on-failure destination before an attempt (S-5.4).
/// Any positive duration; sluice::infinite_age (the default) disables it.
template <class Rep, class Period>
constexpr maximum_record_age_param maximum_record_age(std::chrono::duration<Rep, Period> d) {
  return {std::chrono::duration_cast<duration>(d)};
}
inline constexpr maximum_record_age_param infinite_age{std::nullopt};
/// Compile-time maximum record age in seconds: non-positive values do not compile.
template <std::int64_t Seconds>
constexpr maximum_record_age_param maximum_record_age_c() noexcept {
  static_assert(Seconds > 0, "sluice::maximum_record_age_c<s>: s must be > 0");
  return {std::chrono::seconds(Seconds)};
}

struct retry_config {
  std::int64_t maximum_retry_attempts = -1;
  std::optional<duration> maximum_record_age;
  sluice::backoff backoff;
};

struct retry_stage {
  retry_config config;
};

namespace detail {
template <class T>
inline constexpr bool is_retry_param =
    std::is_same_v<T, maximum_retry_attempts_param> ||
    std::is_same_v<T, maximum_record_age_param> || std::is_same_v<T, sluice::backoff>;
}  // namespace detail

namespace detail {
inline void apply(retry_config& c, maximum_retry_attempts_param p) {
  require_in_range<std::int64_t>("maximum_retry_attempts", p.value, -1, 10'000,
                                 "-1 (infinite) or 0..10000");
  c.maximum_retry_attempts = p.value;
}
inline void apply(retry_config& c, maximum_record_age_param p) {
  if (p.value && *p.value <= duration::zero())
    reject("maximum_record_age (ms)", std::chrono::duration<double, std::milli>(*p.value).count(),
           "> 0 ms, or sluice::infinite_age");
  c.maximum_record_age = p.value;
}
inline void apply(retry_config& c, const sluice::backoff& b) {
  if (b.base < duration::zero()) reject("backoff.base (ns)", b.base.count(), ">= 0");
  if (b.cap < b.base) reject("backoff.cap (ns)", b.cap.count(), ">= backoff.base");
  if (!(b.factor >= 1.0 && b.factor <= 1000.0)) reject("backoff.factor", b.factor, "1..1000");
  c.backoff = b;
}
}  // namespace detail

/// retry(maximum_retry_attempts(3), maximum_record_age(1h), backoff::fixed(1s)), any order.
template <class... Params>
retry_stage retry([[maybe_unused]] Params... params) {
  constexpr bool known = (detail::is_retry_param<Params> && ...);
  static_assert(known,
                "sluice::retry takes maximum_retry_attempts(n), maximum_record_age(d), "
                "infinite_age, backoff");
  constexpr bool once = ((detail::count_of<Params, Params...> == 1) && ...);
  static_assert(!known || once, "sluice::retry: a parameter is given twice");
  retry_stage s;
  if constexpr (known && once) (detail::apply(s.config, params), ...);
  return s;
}

/// S-5.3: split a batch that fails with a function error in two halves.
struct bisect_stage {};
inline constexpr bisect_stage bisect_batch_on_function_error{};

/// S-4.3: honour the handler's batch item failure report.
struct report_stage {};
inline constexpr report_stage report_batch_item_failures{};

/// S-5.5, S-5.7, S-5.8: where discarded batches go. Holds a reference (std::ref) or a copy.
template <class Destination>
struct on_failure_stage {
  Destination destination;
};
template <class Destination>
on_failure_stage<std::reference_wrapper<Destination>> on_failure(Destination& destination) {
  return {std::ref(destination)};
}
template <class Destination>
requires(!std::is_lvalue_reference_v<Destination>)
    on_failure_stage<Destination> on_failure(Destination&& destination) {
  return {std::forward<Destination>(destination)};
}

// ---- the sink -----------------------------------------------------------------------------------

/// The last stage: calls the handler with each batch (S-4.1). The handler may be called
/// concurrently for different lanes by sluice::start.
template <class Handler>
struct sink_stage {
  Handler handler;
};
template <class Handler>
constexpr sink_stage<std::decay_t<Handler>> invoke(Handler&& handler) {
  return {std::forward<Handler>(handler)};
}

// ---- the source -------------------------------------------------------------------------------

template <class Source>
struct source_stage {
  Source source;  // a reference wrapper to a user's source, or an owning range source
  starting_position position = starting_position::trim_horizon;
};

SLUICE_END_NAMESPACE
