// sluice/detail/compose/rules.hpp: every compile-time rule of sluice, one checker each, and the
// gates that chain them: appendable() for `|`, runnable() for run and start. A checker returns
// whether its rule holds and, when it does not, fails one static_assert whose message says what
// is wrong; a gate instantiates the next checker only when the previous one held, so a misuse
// yields exactly one error.
#pragma once

#include <concepts>
#include <type_traits>

#include "sluice/batch.hpp"
#include "sluice/config.hpp"
#include "sluice/detail/compose/stage_kinds.hpp"
#include "sluice/failure.hpp"
#include "sluice/options.hpp"
#include "sluice/queue.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail {

// ---- composing: `mapping | stage` -----------------------------------------------------------

template <class Stage>
constexpr bool right_side_is_a_stage() {
  constexpr bool ok = is_stage<Stage> || is_fragment<Stage>;
  static_assert(ok,
                "sluice: the right side of | is not a sluice stage; a mapping is composed of "
                "sluice::filter, transform, batching, tumbling_window, parallelization_factor, "
                "retry, bisect_batch_on_function_error, report_batch_item_failures, on_failure, "
                "maximum_concurrency, adaptive_concurrency, rate_limit and invoke");
  return ok;
}

template <class Left>
constexpr bool left_side_is_composable() {
  constexpr bool ok = is_source_stage<Left> || is_stage<Left> || is_fragment<Left>;
  static_assert(ok,
                "sluice: the left side of | is neither sluice::from(source), a mapping, nor a "
                "stage; a mapping starts with sluice::from(source)");
  return ok;
}

/// `m | stage` with an lvalue copies it (m is still usable); that needs copyable stages.
template <class Operand>
constexpr bool lvalue_operand_is_copyable() {
  using plain = std::remove_cvref_t<Operand>;
  constexpr bool ok = !std::is_lvalue_reference_v<Operand> || std::copy_constructible<plain>;
  static_assert(ok,
                "sluice: an lvalue in a | composition is copied, and this one cannot be copied (it "
                "owns a range moved into sluice::from, or holds a move-only function); compose "
                "it with std::move(x)");
  return ok;
}

template <class M, class Stage>
constexpr bool sink_is_last() {
  constexpr bool ok = !M::template has<sink_test>;
  static_assert(ok,
                "sluice: a stage follows the sink; sluice::invoke(handler) must be the last stage "
                "of a mapping");
  return ok;
}

template <class M, class Stage>
constexpr bool per_record_stage_before_batching() {
  constexpr bool ok =
      !is_per_record<Stage> || (!M::template has<batch_test> && !M::template has<policy_test> &&
                                !M::template has<window_test>);
  static_assert(ok,
                "sluice::filter and sluice::transform must come before sluice::batching and the "
                "failure policies: per-record stages run before batching (S-2.4, S-6.1)");
  return ok;
}

template <class M, class Stage>
constexpr bool filter_takes_the_record() {
  if constexpr (!is_filter<Stage>) {
    return true;
  } else {
    constexpr bool ok = callable_on_record<decltype(Stage::pred), typename M::record_type>;
    static_assert(ok,
                  "sluice::filter: the predicate cannot be called with the record type that "
                  "reaches it, nor with its payload");
    return ok;
  }
}

template <class M, class Stage>
constexpr bool filter_returns_bool() {
  if constexpr (!is_filter<Stage>) {
    return true;
  } else {
    using result = call_result_t<decltype(Stage::pred), typename M::record_type>;
    constexpr bool ok = std::convertible_to<result, bool>;
    static_assert(ok, "sluice::filter: the predicate must return something convertible to bool");
    return ok;
  }
}

template <class M, class Stage>
constexpr bool transform_takes_the_record() {
  if constexpr (!is_transform<Stage>) {
    return true;
  } else {
    constexpr bool ok = callable_on_record<decltype(Stage::fn), typename M::record_type>;
    static_assert(ok,
                  "sluice::transform: the function cannot be called with the record type that "
                  "reaches it, nor with its payload");
    return ok;
  }
}

template <class M, class Stage>
constexpr bool transform_returns_a_value() {
  if constexpr (!is_transform<Stage>) {
    return true;
  } else {
    using result = call_result_t<decltype(Stage::fn), typename M::record_type>;
    constexpr bool ok = !std::is_void_v<result>;
    static_assert(ok,
                  "sluice::transform: the function returns void; it must return the new record "
                  "or the new payload that flows downstream");
    return ok;
  }
}

template <class M, class Stage>
constexpr bool transform_result_is_copyable() {
  if constexpr (!is_transform<Stage>) {
    return true;
  } else {
    using result = call_result_t<decltype(Stage::fn), typename M::record_type>;
    constexpr bool ok = std::copyable<std::remove_cvref_t<result>>;
    static_assert(ok,
                  "sluice::transform: the result type must be copyable so it can be batched and "
                  "retried downstream");
    return ok;
  }
}

/// Each of batching, parallelization_factor and the failure policies at most once.
template <class M, class Stage>
constexpr bool stage_appears_once() {
  if constexpr (is_batch<Stage>) {
    constexpr bool ok = !M::template has<batch_test>;
    static_assert(ok, "sluice::batching appears twice in the mapping");
    return ok;
  } else if constexpr (is_parallelization<Stage>) {
    constexpr bool ok = !M::template has<parallelization_test>;
    static_assert(ok, "sluice::parallelization_factor appears twice in the mapping");
    return ok;
  } else if constexpr (is_retry<Stage>) {
    constexpr bool ok = !M::template has<retry_test>;
    static_assert(ok, "sluice::retry appears twice in the mapping");
    return ok;
  } else if constexpr (is_bisect<Stage>) {
    constexpr bool ok = !M::template has<bisect_test>;
    static_assert(ok, "sluice::bisect_batch_on_function_error appears twice in the mapping");
    return ok;
  } else if constexpr (is_report<Stage>) {
    constexpr bool ok = !M::template has<report_test>;
    static_assert(ok, "sluice::report_batch_item_failures appears twice in the mapping");
    return ok;
  } else if constexpr (is_on_failure<Stage>) {
    constexpr bool ok = !M::template has<on_failure_test>;
    static_assert(ok, "sluice::on_failure appears twice in the mapping");
    return ok;
  } else if constexpr (is_concurrency_limit<Stage>) {
    constexpr bool ok = !M::template has<concurrency_limit_test>;
    static_assert(ok,
                  "sluice::maximum_concurrency / adaptive_concurrency appears twice in the "
                  "mapping; a mapping has one concurrency limit");
    return ok;
  } else if constexpr (is_rate_limit<Stage>) {
    constexpr bool ok = !M::template has<rate_limit_test>;
    static_assert(ok,
                  "sluice::rate_limit appears twice in the mapping; give records_per_second and "
                  "invocations_per_second to one rate_limit");
    return ok;
  } else if constexpr (is_window<Stage>) {
    constexpr bool ok = !M::template has<window_test>;
    static_assert(ok, "sluice::tumbling_window appears twice in the mapping");
    return ok;
  } else {
    return true;
  }
}

template <class M, class Stage>
constexpr bool policy_follows_batching() {
  if constexpr (is_retry<Stage>) {
    constexpr bool ok = M::template has<batch_test>;
    static_assert(ok, "sluice::retry needs a batching stage (sluice::batching) before it");
    return ok;
  } else if constexpr (is_bisect<Stage>) {
    constexpr bool ok = M::template has<batch_test>;
    static_assert(ok,
                  "sluice::bisect_batch_on_function_error needs a batching stage "
                  "(sluice::batching) before it");
    return ok;
  } else {
    return true;
  }
}

template <class M, class Stage>
constexpr bool on_failure_takes_the_record() {
  if constexpr (!is_on_failure<Stage>) {
    return true;
  } else {
    using destination = unwrapped_t<decltype(std::declval<Stage&>().destination)>;
    constexpr bool ok = on_failure_destination<destination, typename M::record_type>;
    static_assert(ok,
                  "sluice::on_failure: the argument is not an on-failure destination for this "
                  "record type; it must be callable with, or have deliver() taking, "
                  "const sluice::on_failure_record<Record>&");
    return ok;
  }
}

/// The sink takes a batch, or (with no batching, parallelization or failure policy) one record
/// or its payload: a per-record sink.
template <class M, class Stage>
constexpr bool handler_takes_the_batch() {
  if constexpr (!is_sink<Stage>) {
    return true;
  } else {
    using record = typename M::record_type;
    using handler = decltype(Stage::handler);
    constexpr bool ok = std::invocable<handler&, const batch<record>&> ||
                        callable_on_record<handler, record> || is_window_handler<record, handler>;
    static_assert(ok,
                  "sluice::invoke: the handler cannot be called with const sluice::batch<Record>& "
                  "for the record type that reaches it, nor with one record or its payload");
    return ok;
  }
}

/// A handler that takes one record (a per-record sink) is not a batch handler.
template <class M, class Stage>
constexpr bool takes_a_batch() {
  if constexpr (is_sink<Stage>)
    return std::invocable<decltype(Stage::handler)&, const batch<typename M::record_type>&>;
  else
    return false;
}

/// S-9.12: the stream-only stages have no meaning on a queue (its failures go through its
/// visibility timeout and redrive policy), and a transform would lose the message ids a report
/// names.
template <class M, class Stage>
constexpr bool stage_applies_to_a_queue() {
  if constexpr (!is_queue_source_v<typename M::source_type>) {
    return true;
  } else {
    constexpr bool batch_sink = takes_a_batch<M, Stage>() || !is_sink<Stage>;
    constexpr bool ok = !is_bisect<Stage> && !is_parallelization<Stage> && !is_retry<Stage> &&
                        !is_on_failure<Stage> && !is_transform<Stage> && !is_window<Stage> &&
                        batch_sink;
    static_assert(batch_sink,
                  "sluice::invoke: a queue mapping's handler takes "
                  "const sluice::batch<sluice::queue_message>& (a queue settles whole batches)");
    static_assert(!is_bisect<Stage>,
                  "sluice::bisect_batch_on_function_error is for streams: a queue's failed "
                  "messages return after their visibility timeout, each on its own");
    static_assert(!is_parallelization<Stage>,
                  "sluice::parallelization_factor is for streams: a queue has no shards; cap a "
                  "queue mapping's concurrency with sluice::maximum_concurrency(n)");
    static_assert(!is_retry<Stage>,
                  "sluice::retry (maximum_retry_attempts, maximum_record_age) is for streams: a "
                  "queue retries through its visibility timeout and gives up through its redrive "
                  "policy's max_receive_count");
    static_assert(!is_on_failure<Stage>,
                  "sluice::on_failure is for streams: a queue's failed messages go to the "
                  "dead-letter queue of its redrive policy (set_redrive_policy)");
    static_assert(!is_transform<Stage>,
                  "sluice::transform is not available on a queue source: a batch item failure "
                  "report names message ids, which a transformed record no longer has; transform "
                  "in the handler");
    static_assert(!is_window<Stage>,
                  "sluice::tumbling_window is for streams: a window aggregates a shard's records "
                  "by arrival time, and a queue has no shards (Lambda offers tumbling windows for "
                  "Kinesis and DynamoDB streams only)");
    return ok;
  }
}

/// S-7: a window handler (batch, window_context) goes with sluice::tumbling_window, and only it.
template <class M, class Stage>
constexpr bool window_handler_matches_window_stage() {
  if constexpr (!is_sink<Stage>) {
    return true;
  } else {
    constexpr bool window_form =
        is_window_handler<typename M::record_type, decltype(Stage::handler)>;
    constexpr bool windowed = M::template has<window_test>;
    static_assert(!windowed || window_form,
                  "sluice::invoke: with sluice::tumbling_window the handler takes "
                  "(const sluice::batch<Record>&, const sluice::window_context&) and returns "
                  "sluice::window_response");
    static_assert(windowed || !window_form,
                  "sluice::invoke: a window handler (batch, window_context) needs "
                  "sluice::tumbling_window(seconds) before the sink");
    return windowed == window_form;
  }
}

template <class M, class Stage>
constexpr bool window_handler_returns_a_window_response() {
  if constexpr (!is_sink<Stage> || !M::template has<window_test>) {
    return true;
  } else {
    using result =
        std::invoke_result_t<decltype(Stage::handler)&, const batch<typename M::record_type>&,
                             const window_context&>;
    constexpr bool ok = std::is_convertible_v<result, window_response>;
    static_assert(ok,
                  "sluice::invoke: a window handler must return sluice::window_response (or "
                  "the new state as std::string)");
    return ok;
  }
}

template <class M, class Stage>
constexpr bool record_handler_has_no_batch_level_stage() {
  if constexpr (!is_sink<Stage>) {
    return true;
  } else {
    constexpr bool batch_level = M::template has<batch_test> || M::template has<policy_test> ||
                                 M::template has<parallelization_test>;
    constexpr bool ok = takes_a_batch<M, Stage>() || !batch_level;
    static_assert(ok,
                  "sluice::invoke: with batching, parallelization_factor or a failure policy the "
                  "handler takes a batch (const sluice::batch<Record>&); to call a function per "
                  "record there, wrap it: sluice::invoke(sluice::per_record(fn, mode))");
    return ok;
  }
}

/// The downstream limits count and pace batch handler calls: a per-record sink has none.
template <class M, class Stage>
constexpr bool limits_have_a_batch_handler() {
  if constexpr (!is_sink<Stage>) {
    return true;
  } else {
    constexpr bool ok = takes_a_batch<M, Stage>() || !M::template has<limit_test>;
    static_assert(ok,
                  "sluice::maximum_concurrency, adaptive_concurrency and rate_limit limit batch "
                  "handler calls: the handler must take a batch (const sluice::batch<Record>&); "
                  "wrap a per-record function: sluice::invoke(sluice::per_record(fn, mode))");
    return ok;
  }
}

/// Only a batch handler's result is read (a per-record sink's is not).
template <class M, class Stage>
constexpr bool handler_returns_a_report_or_void() {
  if constexpr (!takes_a_batch<M, Stage>()) {
    return true;
  } else {
    using result = handler_result_t<typename M::record_type, decltype(Stage::handler)>;
    if constexpr (is_queue_source_v<typename M::source_type>) {
      constexpr bool ok = std::is_void_v<result> || is_queue_report_type<result>;
      static_assert(ok,
                    "sluice::invoke: a queue mapping's handler must return void, "
                    "sluice::queue_item_failures or std::optional<sluice::queue_item_failures> "
                    "(a report names message ids)");
      return ok;
    } else {
      constexpr bool ok = std::is_void_v<result> || is_report_type<result>;
      static_assert(ok,
                    "sluice::invoke: the handler must return void, sluice::batch_item_failures or "
                    "std::optional<sluice::batch_item_failures>");
      return ok;
    }
  }
}

template <class M, class Stage>
constexpr bool report_has_a_reporting_handler() {
  if constexpr (!takes_a_batch<M, Stage>()) {
    return true;
  } else {
    using result = handler_result_t<typename M::record_type, decltype(Stage::handler)>;
    constexpr bool ok =
        !M::template has<report_test> || is_report_type<result> || is_queue_report_type<result>;
    static_assert(ok,
                  "sluice::report_batch_item_failures needs a handler that can report failures: "
                  "it must return sluice::batch_item_failures or "
                  "std::optional<sluice::batch_item_failures>");
    return ok;
  }
}

/// The gate of `|`: whether Stage may be appended to the mapping M, checked rule by rule; the
/// first rule that fails reports, and the later ones are not instantiated.
// NOLINTBEGIN(bugprone-branch-clone): the gates' branches are alike on purpose, one per rule.
template <class M, class Stage>
constexpr bool appendable() {
  if constexpr (!sink_is_last<M, Stage>())
    return false;
  else if constexpr (!stage_applies_to_a_queue<M, Stage>())
    return false;
  else if constexpr (!per_record_stage_before_batching<M, Stage>())
    return false;
  else if constexpr (!filter_takes_the_record<M, Stage>())
    return false;
  else if constexpr (!filter_returns_bool<M, Stage>())
    return false;
  else if constexpr (!transform_takes_the_record<M, Stage>())
    return false;
  else if constexpr (!transform_returns_a_value<M, Stage>())
    return false;
  else if constexpr (!transform_result_is_copyable<M, Stage>())
    return false;
  else if constexpr (!stage_appears_once<M, Stage>())
    return false;
  else if constexpr (!policy_follows_batching<M, Stage>())
    return false;
  else if constexpr (!on_failure_takes_the_record<M, Stage>())
    return false;
  else if constexpr (!handler_takes_the_batch<M, Stage>())
    return false;
  else if constexpr (!window_handler_matches_window_stage<M, Stage>())
    return false;
  else if constexpr (!window_handler_returns_a_window_response<M, Stage>())
    return false;
  else if constexpr (M::template has<window_test> && is_sink<Stage>)
    return true;  // a window handler: the batch-handler rules below do not apply
  else if constexpr (!record_handler_has_no_batch_level_stage<M, Stage>())
    return false;
  else if constexpr (!limits_have_a_batch_handler<M, Stage>())
    return false;
  else if constexpr (!handler_returns_a_report_or_void<M, Stage>())
    return false;
  else
    return report_has_a_reporting_handler<M, Stage>();
}

// ---- running: sluice::run and sluice::start ---------------------------------------------------

/// Which driver a gate checks for: options differ between them.
struct run_driver {};
struct start_driver {};

template <class M>
constexpr bool mapping_is_complete() {
  constexpr bool ok = M::template has<sink_test>;
  static_assert(ok,
                "sluice::run / sluice::start need a complete mapping: it must end with a sink, "
                "sluice::invoke(handler)");
  return ok;
}

/// The options, by kind; each kind may be given once.
template <class T>
inline constexpr int option_kind = 0;  // not an option
template <class S>
inline constexpr int option_kind<checkpoints_option<S>> = 1;
template <class C>
inline constexpr int option_kind<clock_option<C>> = 2;
template <>
inline constexpr int option_kind<name_option> = 3;
template <>
inline constexpr int option_kind<stop_option> = 4;
template <>
inline constexpr int option_kind<workers_option> = 5;
template <>
inline constexpr int option_kind<pollers_option> = 6;
template <>
inline constexpr int option_kind<execution_option> = 7;
template <class T>
inline constexpr int option_kind<traits_option<T>> = 8;
template <>
inline constexpr int option_kind<stage_error_option> = 9;
template <>
inline constexpr int option_kind<events_option> = 10;

template <class Opt>
constexpr bool argument_is_an_option() {
  constexpr bool ok = option_kind<Opt> != 0;
  static_assert(ok,
                "sluice::run / sluice::start: an argument after the mapping is not an option; the "
                "options are sluice::checkpoints(store), with_clock(clock), mapping_name(name), "
                "with_traits<T>(), on_stage_error(policy), events(sink), stop_when(token) (run "
                "only), "
                "workers(n), pollers(n) and "
                "execution(mode) (start only)");
  return ok;
}

template <class Driver, class Opt>
constexpr bool option_applies_to_driver() {
  if constexpr (std::is_same_v<Driver, run_driver>) {
    constexpr bool ok = option_kind<Opt> != 5 && option_kind<Opt> != 6 && option_kind<Opt> != 7;
    static_assert(ok,
                  "sluice::workers, sluice::pollers and sluice::execution are options of "
                  "sluice::start only; sluice::run calls the handler on the calling thread");
    return ok;
  } else {
    constexpr bool ok = option_kind<Opt> != 4;
    static_assert(ok,
                  "sluice::stop_when is an option of sluice::run only; stop a started mapping "
                  "with its stop() or request_stop()");
    return ok;
  }
}

template <class Opt, class... Opts>
constexpr bool option_given_once() {
  constexpr bool ok = ((option_kind<Opts> == option_kind<Opt> ? 1 : 0) + ...) == 1;
  static_assert(ok,
                "sluice::run / sluice::start: an option is given twice (checkpoints, with_clock, "
                "mapping_name, stop_when, workers and pollers may each be given once)");
  return ok;
}

template <class... T>
struct type_list {};

/// Each option in turn: an option at all, one this driver reads, given once among All.
template <class Driver, class First, class... Rest, class... All>
constexpr bool options_valid_from(type_list<All...>) {
  if constexpr (!argument_is_an_option<First>())
    return false;
  else if constexpr (!option_applies_to_driver<Driver, First>())
    return false;
  else if constexpr (!option_given_once<First, All...>())
    return false;
  else if constexpr (sizeof...(Rest) == 0)
    return true;
  else
    return options_valid_from<Driver, Rest...>(type_list<All...>{});
}

/// The gate of run and start: a mapping that a failed `|` left (already reported) is refused
/// silently; otherwise the mapping must be complete and the options valid, checked in that order.
template <class M, class Driver, class... Opts>
constexpr bool runnable() {
  if constexpr (M::template has<failed_test>)
    return false;
  else if constexpr (!mapping_is_complete<M>())
    return false;
  else if constexpr (sizeof...(Opts) == 0)
    return true;
  else
    return options_valid_from<Driver, Opts...>(type_list<Opts...>{});
}
// NOLINTEND(bugprone-branch-clone)

}  // namespace detail
SLUICE_END_NAMESPACE
