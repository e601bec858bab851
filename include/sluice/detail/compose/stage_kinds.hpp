// sluice/detail/compose/stage_kinds.hpp: the one list of stage kinds (what `|` accepts), the
// tests that find a kind in a mapping's stage list, and how a stage calls a user's per-record
// function (with the record, else with its payload). The rules over these live in rules.hpp.
#pragma once

#include <boost/hana/tuple.hpp>
#include <concepts>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include "sluice/batch.hpp"
#include "sluice/config.hpp"
#include "sluice/failure.hpp"
#include "sluice/limits.hpp"
#include "sluice/stages.hpp"
#include "sluice/window.hpp"

SLUICE_BEGIN_NAMESPACE

/// Stages composed without a source (`sluice::retry(...) |
/// sluice::bisect_batch_on_function_error`): a reusable policy. `mapping | fragment` appends its
/// stages one by one, checking each rule.
template <class Stages>
struct fragment {
  Stages stages;  // a boost::hana::tuple of stages
};

namespace detail {
template <class T, template <class...> class Template>
inline constexpr bool is_instance_of = false;
template <template <class...> class Template, class... Args>
inline constexpr bool is_instance_of<Template<Args...>, Template> = true;

template <class T>
inline constexpr bool is_filter = is_instance_of<T, filter_stage>;
template <class T>
inline constexpr bool is_transform = is_instance_of<T, transform_stage>;
template <class T>
inline constexpr bool is_sink = is_instance_of<T, sink_stage>;
template <class T>
inline constexpr bool is_on_failure = is_instance_of<T, on_failure_stage>;
template <class T>
inline constexpr bool is_batch = std::is_same_v<T, batch_stage>;
template <class T>
inline constexpr bool is_retry = std::is_same_v<T, retry_stage>;
template <class T>
inline constexpr bool is_bisect = std::is_same_v<T, bisect_stage>;
template <class T>
inline constexpr bool is_report = std::is_same_v<T, report_stage>;
template <class T>
inline constexpr bool is_parallelization = std::is_same_v<T, parallelization_stage>;
template <class T>
inline constexpr bool is_concurrency_limit = std::is_same_v<T, concurrency_stage>;
template <class T>
inline constexpr bool is_rate_limit = std::is_same_v<T, rate_limit_stage>;
template <class T>
inline constexpr bool is_limit = is_concurrency_limit<T> || is_rate_limit<T>;
template <class T>
inline constexpr bool is_window = std::is_same_v<T, window_stage>;
template <class T>
inline constexpr bool is_per_record = is_filter<T> || is_transform<T>;
template <class T>
inline constexpr bool is_policy = is_retry<T> || is_bisect<T> || is_report<T> || is_on_failure<T>;
template <class T>
inline constexpr bool is_stage = is_per_record<T> || is_batch<T> || is_policy<T> ||
                                 is_parallelization<T> || is_limit<T> || is_sink<T> || is_window<T>;
template <class T>
inline constexpr bool is_fragment = is_instance_of<T, fragment>;
template <class T>
inline constexpr bool is_source_stage = is_instance_of<T, source_stage>;

/// What `|` leaves after a rule failed: its static_assert has spoken, so every later `|`, run and
/// start pass this on silently instead of adding errors of their own.
struct composition_failed {};
template <class T>
inline constexpr bool is_composition_failed = std::is_same_v<T, composition_failed>;

// `trait` names a variable template: it cannot be parenthesized.
#define SLUICE_STAGE_TEST(name, trait)                                              \
  struct name {                                                                     \
    template <class T>                                                              \
    static constexpr bool test = trait<T>; /* NOLINT(bugprone-macro-parentheses) */ \
  };
SLUICE_STAGE_TEST(batch_test, is_batch)
SLUICE_STAGE_TEST(sink_test, is_sink)
SLUICE_STAGE_TEST(retry_test, is_retry)
SLUICE_STAGE_TEST(bisect_test, is_bisect)
SLUICE_STAGE_TEST(report_test, is_report)
SLUICE_STAGE_TEST(on_failure_test, is_on_failure)
SLUICE_STAGE_TEST(parallelization_test, is_parallelization)
SLUICE_STAGE_TEST(window_test, is_window)
SLUICE_STAGE_TEST(policy_test, is_policy)
SLUICE_STAGE_TEST(concurrency_limit_test, is_concurrency_limit)
SLUICE_STAGE_TEST(rate_limit_test, is_rate_limit)
SLUICE_STAGE_TEST(limit_test, is_limit)
SLUICE_STAGE_TEST(failed_test, is_composition_failed)
#undef SLUICE_STAGE_TEST

template <class T>
decltype(auto) unwrap(T& t) noexcept {
  if constexpr (is_instance_of<std::remove_cv_t<T>, std::reference_wrapper>)
    return t.get();
  else
    return (t);
}
template <class T>
using unwrapped_t = std::remove_cvref_t<decltype(unwrap(std::declval<T&>()))>;

/// Calls a per-record function with the record if it accepts it, else with the payload.
template <class F, class R>
inline constexpr bool callable_on_record = std::invocable<F&, const R&> ||
                                           requires(F& f, const R& r) {
  f(r.payload);
};

template <class F, class R>
decltype(auto) call_on_record(F& f, const R& r) {
  if constexpr (std::invocable<F&, const R&>)
    return f(r);
  else
    return f(r.payload);
}

template <class F, class R>
using call_result_t = decltype(call_on_record(std::declval<F&>(), std::declval<const R&>()));

template <class R, class Handler>
using handler_result_t = std::invoke_result_t<Handler&, const batch<R>&>;

/// A window handler (S-7): takes the batch and its window_context.
template <class R, class Handler>
inline constexpr bool is_window_handler =
    std::invocable<Handler&, const batch<R>&, const window_context&>;

template <class T>
inline constexpr bool is_report_type =
    std::is_same_v<T, batch_item_failures> || std::is_same_v<T, std::optional<batch_item_failures>>;
}  // namespace detail

SLUICE_END_NAMESPACE
