// sluice/mapping.hpp: composing a mapping with `|`. A mapping is a source plus a
// boost::hana::tuple of stage types; every composition rule is checked at compile time with a
// message that names the stage and the rule, and the per-record stages (filter, transform) are
// fused into one inlined function called once per record.
#pragma once

#include <boost/hana/append.hpp>
#include <boost/hana/at.hpp>
#include <boost/hana/concat.hpp>
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
#include "sluice/detail/compose/rules.hpp"
#include "sluice/detail/compose/stage_kinds.hpp"
#include "sluice/failure.hpp"
#include "sluice/limits.hpp"
#include "sluice/record.hpp"
#include "sluice/source.hpp"
#include "sluice/sources/range_source.hpp"
#include "sluice/stages.hpp"

SLUICE_BEGIN_NAMESPACE

namespace hana = boost::hana;

namespace detail {
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
template <class T>
inline constexpr bool is_mapping = false;
template <class S, class St>
inline constexpr bool is_mapping<mapping<S, St>> = true;

/// Stands in for the source of the mapping a failed rule leaves (see composition_failed).
struct no_source {
  using record_type = void;
};
using failed_mapping = mapping<source_stage<no_source>, hana::tuple<composition_failed>>;

template <class T>
inline constexpr bool is_failed = std::is_same_v<T, failed_mapping>;

template <class T>
concept composes_on_the_left =
    is_source_stage<std::remove_cvref_t<T>> || is_mapping<std::remove_cvref_t<T>> ||
    is_stage<std::remove_cvref_t<T>> || is_fragment<std::remove_cvref_t<T>>;
template <class T>
concept not_a_composition = !composes_on_the_left<T>;
template <class T>
concept stage_or_fragment = is_stage<std::remove_cvref_t<T>> || is_fragment<std::remove_cvref_t<T>>;

/// An lvalue is copied (composing in steps keeps the earlier step usable), an rvalue moved.
template <class T>
std::remove_cvref_t<T> copy_or_move(T&& t) {
  return std::forward<T>(t);
}

template <class T>
auto as_mapping(T&& t) {
  using plain = std::remove_cvref_t<T>;
  if constexpr (is_source_stage<plain>)
    return mapping<plain, hana::tuple<>>{std::forward<T>(t), {}};
  else
    return std::forward<T>(t);
}

template <class T>
auto as_stages(T&& t) {
  if constexpr (is_fragment<std::remove_cvref_t<T>>)
    return std::forward<T>(t).stages;
  else
    return hana::make_tuple(std::forward<T>(t));
}

// NOLINTBEGIN(bugprone-branch-clone): each failed check yields the failed mapping.

/// Appends one stage to a mapping if every rule holds; after a failed rule (reported by its
/// static_assert) the result is the failed mapping, which later steps pass on silently.
template <class S, class Stages, class Stage>
auto append_checked(mapping<S, Stages>&& m, Stage&& stage) {
  using plain = std::remove_cvref_t<Stage>;
  if constexpr (is_failed<mapping<S, Stages>>) {
    return failed_mapping{};
  } else if constexpr (!appendable<mapping<S, Stages>, plain>()) {
    return failed_mapping{};
  } else {
    auto stages = hana::append(std::move(m.stages), plain(std::forward<Stage>(stage)));
    return mapping<S, decltype(stages)>{std::move(m.source), std::move(stages)};
  }
}
}  // namespace detail

/// A mapping's source: a sluice::source (held by reference; it must outlive the mapping) or any
/// standard or range-v3 input range (held as a view; an rvalue container is moved into the
/// mapping).
template <class S>
auto from(S&& s, starting_position position = starting_position::trim_horizon) {
  using plain = std::remove_cvref_t<S>;
  if constexpr (source<plain>) {
    static_assert(std::is_lvalue_reference_v<S>,
                  "sluice::from: pass the source as an lvalue; the mapping refers to it");
    if constexpr (std::is_lvalue_reference_v<S>)
      return source_stage<std::reference_wrapper<plain>>{std::ref(s), position};
    else
      return detail::failed_mapping{};
  } else if constexpr (!std::ranges::input_range<S>) {
    static_assert(std::ranges::input_range<S>,
                  "sluice::from: the argument is neither a sluice::source nor an input range");
    return detail::failed_mapping{};
  } else if constexpr (!std::ranges::forward_range<S>) {
    static_assert(std::ranges::forward_range<S>,
                  "sluice::from: a range source must be a forward range: a mapping reads it again "
                  "after a retry, a restart or a catch-up (copy a single-pass range into a "
                  "container first)");
    return detail::failed_mapping{};
  } else {
    using view = std::views::all_t<S>;
    return source_stage<range_source<view>>{range_source<view>(std::views::all(std::forward<S>(s))),
                                            position};
  }
}

/// Composes: `from(source) | stage` and `mapping | stage` give a mapping, checking every rule
/// (detail/compose/rules.hpp); `stage | stage` gives a fragment (a reusable policy) that a mapping
/// takes later, stage by stage, with the same checks. Lvalue operands are copied.
template <detail::composes_on_the_left L, class R>
auto operator|(L&& left, R&& right) {
  using l = std::remove_cvref_t<L>;
  using r = std::remove_cvref_t<R>;
  constexpr bool has_source = detail::is_source_stage<l> || detail::is_mapping<l>;
  if constexpr (detail::is_failed<l> || detail::is_failed<r>) {
    return detail::failed_mapping{};
  } else if constexpr (!detail::right_side_is_a_stage<r>()) {
    return detail::failed_mapping{};
  } else if constexpr (!detail::lvalue_operand_is_copyable<L&&>()) {
    return detail::failed_mapping{};
  } else if constexpr (!detail::lvalue_operand_is_copyable<R&&>()) {
    return detail::failed_mapping{};
  } else if constexpr (has_source) {
    return hana::fold_left(
        detail::as_stages(detail::copy_or_move(std::forward<R>(right))),
        detail::as_mapping(detail::copy_or_move(std::forward<L>(left))),
        [](auto m, auto stage) { return detail::append_checked(std::move(m), std::move(stage)); });
  } else {
    auto stages = hana::concat(detail::as_stages(detail::copy_or_move(std::forward<L>(left))),
                               detail::as_stages(detail::copy_or_move(std::forward<R>(right))));
    return fragment<decltype(stages)>{std::move(stages)};
  }
}

// NOLINTEND(bugprone-branch-clone)

/// A sluice stage on the right of | needs a mapping or a stage on its left.
template <detail::not_a_composition L, detail::stage_or_fragment R>
auto operator|(L&&, R&&) {
  static_cast<void>(detail::left_side_is_composable<std::remove_cvref_t<L>>());  // it reports
  return detail::failed_mapping{};
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
  static constexpr bool has_window = M::template has<window_test>;  // S-7
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
  static window_config window(M& m) {
    if constexpr (has_window)
      return find<window_test>(m).config;
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
  /// The mapping has a concurrency limit or a rate limit (sluice/limits.hpp).
  static constexpr bool has_limits = M::template has<limit_test>;
  static limits_config limits(M& m) {
    limits_config c;
    if constexpr (M::template has<concurrency_limit_test>)
      c.concurrency = find<concurrency_limit_test>(m);
    if constexpr (M::template has<rate_limit_test>) c.rate = find<rate_limit_test>(m);
    return c;
  }
  static auto& handler(M& m) { return find<sink_test>(m).handler; }
  static auto& destination(M& m) { return unwrap(find<on_failure_test>(m).destination); }
};
}  // namespace detail

SLUICE_END_NAMESPACE
