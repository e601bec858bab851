// sluice/mapping.hpp: composing a mapping with `|`. A mapping is a source plus a
// boost::hana::tuple of stage types; every composition rule is checked at compile time with a
// message that names the stage and the rule, and the per-record stages (filter, transform) are
// fused into one inlined function called once per record.
#pragma once

#include <boost/hana/append.hpp>
#include <boost/hana/at.hpp>
#include <boost/hana/count_if.hpp>
#include <boost/hana/fold_left.hpp>
#include <boost/hana/size.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>
#include <concepts>
#include <functional>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>

#include "sluice/batch.hpp"
#include "sluice/failure.hpp"
#include "sluice/record.hpp"
#include "sluice/source.hpp"
#include "sluice/sources/range_source.hpp"
#include "sluice/stages.hpp"

SLUICE_BEGIN_NAMESPACE

namespace hana = boost::hana;

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
inline constexpr bool is_per_record = is_filter<T> || is_transform<T>;
template <class T>
inline constexpr bool is_policy = is_retry<T> || is_bisect<T> || is_report<T> || is_on_failure<T>;
template <class T>
inline constexpr bool is_stage =
    is_per_record<T> || is_batch<T> || is_policy<T> || is_parallelization<T> || is_sink<T>;

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

/// A transform's output record: the function's result if it is a record, otherwise a
/// sluice::record carrying that result as payload and the input's key, sequence and arrival.
template <class R, class F>
struct transform_output {
  using result = std::remove_cvref_t<call_result_t<F, R>>;
  using key = std::remove_cvref_t<decltype(sluice::partition_key(std::declval<const R&>()))>;
  using type = std::conditional_t<stream_record<result>, result, record<result, key>>;
};

template <class R, class F>
typename transform_output<R, F>::type apply_transform(F& f, const R& r) {
  using out = transform_output<R, F>;
  if constexpr (stream_record<typename out::result>) {
    return call_on_record(f, r);
  } else {
    return typename out::type{sluice::partition_key(r), sluice::sequence_number(r),
                              sluice::arrival_time(r), call_on_record(f, r)};
  }
}

template <class R, class Stage>
struct record_after_stage {
  using type = R;
};
template <class R, class F>
struct record_after_stage<R, transform_stage<F>> {
  using type = typename transform_output<R, F>::type;
};

/// The record type that reaches the batcher, folded over the stage list.
template <class R, class... Stages>
struct record_after;
template <class R>
struct record_after<R> {
  using type = R;
};
template <class R, class First, class... Rest>
struct record_after<R, First, Rest...> {
  using type = typename record_after<typename record_after_stage<R, First>::type, Rest...>::type;
};
template <class R0, class Stages>
struct record_after_tuple;
template <class R0, class... Stages>
struct record_after_tuple<R0, hana::tuple<Stages...>> {
  using type = typename record_after<R0, Stages...>::type;
};
template <class R0, class Stages>
using record_after_t = typename record_after_tuple<R0, Stages>::type;

template <class R, class Handler>
using handler_result_t = std::invoke_result_t<Handler&, const batch<R>&>;

template <class T>
inline constexpr bool is_report_type =
    std::is_same_v<T, batch_item_failures> || std::is_same_v<T, std::optional<batch_item_failures>>;
}  // namespace detail

/// A stage of a mapping: filter, transform, batching, parallelization_factor, retry,
/// bisect_batch_on_function_error, report_batch_item_failures, on_failure or invoke.
template <class T>
concept stage = detail::is_stage<std::remove_cvref_t<T>>;

/// A composed mapping: a source and its stages. Built only with `|`.
template <class SourceStage, class Stages>
struct mapping {
  SourceStage source;
  Stages stages;

  using source_type = detail::unwrapped_t<decltype(source.source)>;
  using source_record = typename source_type::record_type;
  using record_type = detail::record_after_t<source_record, Stages>;
  using stages_type = Stages;

  template <class Pred>
  static constexpr bool has =
      decltype(hana::count_if(std::declval<Stages>(), [](auto s) {
        return hana::bool_c<Pred::template test<std::remove_cvref_t<decltype(s)>>>;
      }))::value != 0;
};

namespace detail {
#define SLUICE_STAGE_TEST(name, trait)     \
  struct name {                            \
    template <class T>                     \
    static constexpr bool test = trait<T>; \
  };
SLUICE_STAGE_TEST(batch_test, is_batch)
SLUICE_STAGE_TEST(sink_test, is_sink)
SLUICE_STAGE_TEST(retry_test, is_retry)
SLUICE_STAGE_TEST(bisect_test, is_bisect)
SLUICE_STAGE_TEST(report_test, is_report)
SLUICE_STAGE_TEST(on_failure_test, is_on_failure)
SLUICE_STAGE_TEST(parallelization_test, is_parallelization)
SLUICE_STAGE_TEST(policy_test, is_policy)
#undef SLUICE_STAGE_TEST

template <class T>
inline constexpr bool is_mapping = false;
template <class S, class St>
inline constexpr bool is_mapping<mapping<S, St>> = true;
template <class T>
inline constexpr bool is_source_stage = is_instance_of<T, source_stage>;

/// Every composition rule, checked when `stage` is appended to `M`. Each rule names the stage.
template <class M, class Stage>
constexpr void check_append() {
  using R = typename M::record_type;
  static_assert(is_stage<Stage>,
                "sluice: only sluice stages (filter, transform, batch, parallelization_factor, "
                "retry, bisect_batch_on_function_error, report_batch_item_failures, on_failure, "
                "invoke) can be composed with |");
  static_assert(!M::template has<sink_test>,
                "sluice: a stage follows the sink; sluice::invoke(handler) must be the last stage "
                "of a mapping");
  if constexpr (is_per_record<Stage>) {
    static_assert(!M::template has<batch_test> && !M::template has<policy_test>,
                  "sluice::filter and sluice::transform must come before sluice::batching and the "
                  "failure policies: per-record stages run before batching (S-2.4, S-6.1)");
  }
  if constexpr (is_filter<Stage>) {
    using pred = decltype(std::declval<Stage>().pred);
    static_assert(callable_on_record<pred, R>,
                  "sluice::filter: the predicate cannot be called with the record type that "
                  "reaches it, nor with its payload");
    if constexpr (callable_on_record<pred, R>) {
      static_assert(std::convertible_to<call_result_t<pred, R>, bool>,
                    "sluice::filter: the predicate must return something convertible to bool");
    }
  }
  if constexpr (is_transform<Stage>) {
    using fn = decltype(std::declval<Stage>().fn);
    static_assert(callable_on_record<fn, R>,
                  "sluice::transform: the function cannot be called with the record type that "
                  "reaches it, nor with its payload");
    if constexpr (callable_on_record<fn, R>) {
      static_assert(!std::is_void_v<call_result_t<fn, R>>,
                    "sluice::transform: the function returns void; it must return the new record "
                    "or the new payload that flows downstream");
      if constexpr (!std::is_void_v<call_result_t<fn, R>>) {
        using out = std::remove_cvref_t<call_result_t<fn, R>>;
        static_assert(std::copyable<out>,
                      "sluice::transform: the result type must be copyable so it can be "
                      "batched and retried downstream");
      }
    }
  }
  if constexpr (is_batch<Stage>) {
    static_assert(!M::template has<batch_test>, "sluice::batching appears twice in the mapping");
  }
  if constexpr (is_parallelization<Stage>) {
    static_assert(!M::template has<parallelization_test>,
                  "sluice::parallelization_factor appears twice in the mapping");
  }
  if constexpr (is_retry<Stage>) {
    static_assert(M::template has<batch_test>,
                  "sluice::retry needs a batching stage (sluice::batching) before it");
    static_assert(!M::template has<retry_test>, "sluice::retry appears twice in the mapping");
  }
  if constexpr (is_bisect<Stage>) {
    static_assert(
        M::template has<batch_test>,
        "sluice::bisect_batch_on_function_error needs a batching stage (sluice::batching) "
        "before it");
    static_assert(!M::template has<bisect_test>,
                  "sluice::bisect_batch_on_function_error appears twice in the mapping");
  }
  if constexpr (is_report<Stage>) {
    static_assert(!M::template has<report_test>,
                  "sluice::report_batch_item_failures appears twice in the mapping");
  }
  if constexpr (is_on_failure<Stage>) {
    using dest = unwrapped_t<decltype(std::declval<Stage&>().destination)>;
    static_assert(on_failure_destination<dest, R>,
                  "sluice::on_failure: the argument is not an on-failure destination for this "
                  "record type; it must be callable with, or have deliver() taking, "
                  "const sluice::on_failure_record<Record>&");
    static_assert(!M::template has<on_failure_test>,
                  "sluice::on_failure appears twice in the mapping");
  }
  if constexpr (is_sink<Stage>) {
    using handler = decltype(std::declval<Stage>().handler);
    constexpr bool takes_batch = std::invocable<handler&, const batch<R>&>;
    constexpr bool takes_record = callable_on_record<handler, R>;
    constexpr bool batch_level = M::template has<batch_test> || M::template has<policy_test> ||
                                 M::template has<parallelization_test>;
    if constexpr (!takes_batch && takes_record) {
      static_assert(!batch_level,
                    "sluice::invoke: with batching, parallelization_factor or a failure policy the "
                    "handler takes a batch (const sluice::batch<Record>&); to call a function per "
                    "record there, wrap it: sluice::invoke(sluice::per_record(fn, mode))");
    } else {
      static_assert(
          takes_batch,
          "sluice::invoke: the handler cannot be called with const sluice::batch<Record>& "
          "for the record type that reaches it, nor with one record or its payload");
    }
    if constexpr (takes_batch) {
      using result = handler_result_t<R, handler>;
      static_assert(std::is_void_v<result> || is_report_type<result>,
                    "sluice::invoke: the handler must return void, sluice::batch_item_failures or "
                    "std::optional<sluice::batch_item_failures>");
      static_assert(!M::template has<report_test> || is_report_type<result>,
                    "sluice::report_batch_item_failures needs a handler that can report failures: "
                    "it must return sluice::batch_item_failures or "
                    "std::optional<sluice::batch_item_failures>");
    }
  }
}
}  // namespace detail

namespace detail {
/// The rule run and start share; checked before anything else is instantiated so that it is
/// the only error a user sees.
template <class M>
constexpr bool check_complete() {
  static_assert(M::template has<sink_test>,
                "sluice::run / sluice::start need a complete mapping: it must end with a sink, "
                "sluice::invoke(handler)");
  return M::template has<sink_test>;
}
}  // namespace detail

/// A mapping's source: a sluice::source (held by reference; it must outlive the mapping) or any
/// input range (held as a view; an rvalue container is moved into the mapping).
template <class S>
auto from(S&& s, starting_position position = starting_position::trim_horizon) {
  using plain = std::remove_cvref_t<S>;
  if constexpr (source<plain>) {
    static_assert(std::is_lvalue_reference_v<S>,
                  "sluice::from: pass the source as an lvalue; the mapping refers to it");
    return source_stage<std::reference_wrapper<plain>>{std::ref(s), position};
  } else {
    static_assert(std::ranges::input_range<S>,
                  "sluice::from: the argument is neither a sluice::source nor an input range");
    static_assert(std::ranges::forward_range<S>,
                  "sluice::from: a range source must be a forward range: a mapping reads it again "
                  "after a retry, a restart or a catch-up (copy a single-pass range into a "
                  "container first)");
    using view = std::views::all_t<S>;
    return source_stage<range_source<view>>{range_source<view>(std::views::all(std::forward<S>(s))),
                                            position};
  }
}

template <class Source, class Stage>
requires detail::is_stage<std::remove_cvref_t<Stage>>
auto operator|(source_stage<Source>&& src, Stage&& stage) {
  using plain = std::remove_cvref_t<Stage>;
  using m = mapping<source_stage<Source>, hana::tuple<>>;
  detail::check_append<m, plain>();
  return mapping<source_stage<Source>, hana::tuple<plain>>{
      std::move(src), hana::make_tuple(std::forward<Stage>(stage))};
}

template <class S, class Stages, class Stage>
requires detail::is_stage<std::remove_cvref_t<Stage>>
auto operator|(mapping<S, Stages>&& m, Stage&& stage) {
  using plain = std::remove_cvref_t<Stage>;
  detail::check_append<mapping<S, Stages>, plain>();
  auto stages = hana::append(std::move(m.stages), plain(std::forward<Stage>(stage)));
  return mapping<S, decltype(stages)>{std::move(m.source), std::move(stages)};
}

namespace detail {
/// A sink whose handler takes one record (or its payload) rather than a batch.
template <class R, class Stage>
inline constexpr bool is_record_sink_stage = false;
template <class R, class H>
inline constexpr bool is_record_sink_stage<R, sink_stage<H>> =
    !std::invocable<H&, const batch<R>&> && callable_on_record<H, R>;
template <class R, class Stages>
struct record_sink_of : std::false_type {};
template <class R, class... S>
struct record_sink_of<R, hana::tuple<S...>>
    : std::bool_constant<(is_record_sink_stage<R, S> || ...)> {};

/// What a mapping's stage list says, read once when it starts.
template <class M>
struct mapping_traits {
  using record_type = typename M::record_type;
  static constexpr bool complete = M::template has<sink_test>;
  static constexpr bool has_retry = M::template has<retry_test>;
  static constexpr bool has_bisect = M::template has<bisect_test>;
  static constexpr bool has_report = M::template has<report_test>;
  static constexpr bool has_destination = M::template has<on_failure_test>;
  /// The sink takes one record (or payload), not a batch: it is called in the read loop.
  static constexpr bool record_sink = record_sink_of<record_type, typename M::stages_type>::value;

  template <class Test, class... S>
  static constexpr std::size_t index_of(hana::basic_type<hana::tuple<S...>>) {
    constexpr bool matches[] = {Test::template test<S>...};
    std::size_t i = 0;
    while (!matches[i]) ++i;
    return i;
  }
  template <class Test>
  static auto& find(M& m) {
    constexpr std::size_t i = index_of<Test>(hana::type_c<std::remove_cvref_t<decltype(m.stages)>>);
    return m.stages[hana::size_c<i>];
  }
  static batching_config batching(M& m) {
    if constexpr (M::template has<batch_test>)
      return find<batch_test>(m).config;
    else
      return {};
  }
  static std::uint32_t lanes(M& m) {
    if constexpr (M::template has<parallelization_test>)
      return find<parallelization_test>(m).lanes;
    else
      return 1;
  }
  static retry_config retry(M& m) {
    if constexpr (has_retry)
      return find<retry_test>(m).config;
    else
      return {};
  }
  static auto& handler(M& m) { return find<sink_test>(m).handler; }
  static auto& destination(M& m) { return unwrap(find<on_failure_test>(m).destination); }
};
}  // namespace detail

SLUICE_END_NAMESPACE
