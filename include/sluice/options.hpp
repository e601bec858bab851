// sluice/options.hpp: the options of sluice::run and sluice::start: checkpoint store, clock,
// mapping name, thread counts, stop token, event sink (sluice::events, in sluice/events.hpp).
// Options may come in any order; each at most once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>

#include "sluice/checkpoint.hpp"
#include "sluice/clock.hpp"
#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/events.hpp"
#include "sluice/traits.hpp"

SLUICE_BEGIN_NAMESPACE

template <class Store>
struct checkpoints_option {
  Store* store;
};
/// Where checkpoints are loaded from and saved to. Default: the source's own durable store when it
/// offers one (sluice::sqlite::stream keeps them in its file, see default_checkpoint_store()),
/// else a fresh in-memory store (a restarted mapping then starts from its starting position).
template <checkpoint_store Store>
checkpoints_option<Store> checkpoints(Store& store) {
  return {&store};
}

template <class Clock>
struct clock_option {
  Clock* clock;
};
/// The clock every window, back-off and age reads (default: sluice::system_clock).
template <clock_type Clock>
clock_option<Clock> with_clock(Clock& clock) {
  return {&clock};
}

struct name_option {
  std::string name;
};
/// The mapping's name: the key of its checkpoints in the store (default "sluice").
inline name_option mapping_name(std::string name) { return {std::move(name)}; }

struct pollers_option {
  std::uint32_t n;
};
/// Poller threads of sluice::start (default: one per 4 hardware threads, at most one per shard).
inline pollers_option pollers(std::int64_t n) {
  detail::require_in_range<std::int64_t>("pollers", n, 1, 1024, "1..1024");
  return {static_cast<std::uint32_t>(n)};
}
struct workers_option {
  std::uint32_t n;
};
/// Worker threads of sluice::start, which call the handler (default: hardware threads).
inline workers_option workers(std::int64_t n) {
  detail::require_in_range<std::int64_t>("workers", n, 1, 1024, "1..1024");
  return {static_cast<std::uint32_t>(n)};
}

/// Which thread runs a lane's batches in sluice::start (docs/guide.md, "Execution model").
enum class execution_mode {
  /// The reader runs a batch itself when it has nothing more to read right now, and hands it to
  /// another thread when it has (so reading and handling overlap). The default.
  adaptive,
  /// Readers run every batch of their shards themselves; no other thread runs handlers.
  inline_only,
  /// Readers only read; every batch runs on a worker thread (the reader never calls a handler).
  handoff,
};
struct execution_option {
  execution_mode mode;
};
/// Forces where sluice::start runs batches (default: execution_mode::adaptive).
inline execution_option execution(execution_mode mode) { return {mode}; }

/// What happens when a filter or transform throws on a record (its error always names the
/// shard, sequence number and key: sluice::stage_error).
enum class stage_error_policy {
  /// The mapping stops with a sluice::stage_error; the checkpoint stays below the record, so a
  /// restart meets it again. The default: a throwing filter is usually a bug to fix.
  stop,
  /// The record goes to the on-failure destination (condition StageFailed, the error in
  /// error_type / error_message) and the mapping goes on. Needs sluice::on_failure(destination).
  to_destination,
};
struct stage_error_option {
  stage_error_policy policy;
};
/// Chooses what a throwing filter or transform does (default: stage_error_policy::stop).
inline stage_error_option on_stage_error(stage_error_policy policy) { return {policy}; }

template <class Traits>
struct traits_option {};
/// Tuning knobs of sluice::start and sluice::run (sluice/traits.hpp).
template <class Traits>
traits_option<Traits> with_traits() {
  return {};
}

struct stop_option {
  std::stop_token token;
};
/// sluice::run returns early, without starting another attempt, once stop is requested.
inline stop_option stop_when(std::stop_token token) { return {std::move(token)}; }

namespace detail {
template <class T, template <class> class Option>
inline constexpr bool is_option_of = false;
template <class T, template <class> class Option>
inline constexpr bool is_option_of<Option<T>, Option> = true;

template <template <class> class Option, class Default, class... Opts>
struct option_type {
  using type = Default;
};
template <template <class> class Option, class Default, class First, class... Rest>
struct option_type<Option, Default, First, Rest...> {
  using type = std::conditional_t<is_option_of<First, Option>, First,
                                  typename option_type<Option, Default, Rest...>::type>;
};

template <class... Opts>
struct traits_of {
  using type = default_runtime_traits;
};
template <class T, class... Rest>
struct traits_of<traits_option<T>, Rest...> {
  using type = T;
};
template <class First, class... Rest>
struct traits_of<First, Rest...> : traits_of<Rest...> {};

/// A source that keeps its own checkpoints (a durable source): default_checkpoint_store()
/// returns a checkpoint store that lives as long as the source.
template <class Source>
concept provides_checkpoint_store = requires(Source& s) {
  requires std::is_lvalue_reference_v<decltype(s.default_checkpoint_store())>;
  requires checkpoint_store<std::remove_reference_t<decltype(s.default_checkpoint_store())>>;
};

/// The store used when no checkpoints(...) option is given.
template <class Source>
struct default_store {
  using type = memory_checkpoint_store;
};
template <provides_checkpoint_store Source>
struct default_store<Source> {
  using type =
      std::remove_reference_t<decltype(std::declval<Source&>().default_checkpoint_store())>;
};

/// All options, resolved to concrete types: Store and Clock default when not given. With no
/// checkpoints(...) option the store is `fallback` when given, else a fresh in-memory store
/// (only possible when DefaultStore is memory_checkpoint_store).
template <class DefaultStore, class... Opts>
struct options_with_default_store {
  using store_option =
      typename option_type<checkpoints_option, checkpoints_option<DefaultStore>, Opts...>::type;
  using clock_opt = typename option_type<clock_option, clock_option<system_clock>, Opts...>::type;
  using store_type = std::remove_pointer_t<decltype(store_option::store)>;
  using traits_type = typename traits_of<Opts...>::type;
  using clock_type = std::remove_pointer_t<decltype(clock_opt::clock)>;

  store_type* store = nullptr;
  clock_type* clock = nullptr;
  std::string name = "sluice";
  std::uint32_t pollers = 0;
  std::uint32_t workers = 0;
  execution_mode execution = execution_mode::adaptive;
  stage_error_policy stage_errors = stage_error_policy::stop;
  event_sink* events = nullptr;
  std::stop_token stop;

  /// The in-memory store used when no checkpoints(...) option is given and the source keeps
  /// none; whoever runs the mapping keeps it alive as long as the mapping.
  std::unique_ptr<memory_checkpoint_store> owned_store;

  explicit options_with_default_store(DefaultStore* fallback, Opts... opts) {
    (take(std::move(opts)), ...);
    if constexpr (std::is_same_v<clock_type, system_clock>) {
      if (!clock) clock = &system_clock::instance();
    }
    if constexpr (std::is_same_v<store_type, DefaultStore>) {
      if (!store) store = fallback;
      if constexpr (std::is_same_v<store_type, memory_checkpoint_store>) {
        if (!store) {
          owned_store = std::make_unique<memory_checkpoint_store>();
          store = owned_store.get();
        }
      }
    }
  }

 private:
  void take(store_option o) { store = o.store; }
  void take(clock_opt o) { clock = o.clock; }
  void take(name_option o) {
    if (o.name.empty()) reject("mapping_name", "\"\"", "a non-empty name");
    name = std::move(o.name);
  }
  void take(pollers_option o) { pollers = o.n; }
  void take(workers_option o) { workers = o.n; }
  void take(stop_option o) { stop = std::move(o.token); }
  void take(execution_option o) { execution = o.mode; }
  void take(stage_error_option o) { stage_errors = o.policy; }
  void take(events_option o) { events = o.sink; }
  void take(traits_option<traits_type>) {}
};

template <class T>
T& source_object(T& source) noexcept {
  return source;
}
template <class T>
T& source_object(std::reference_wrapper<T> source) noexcept {
  return source.get();
}

/// The options of mapping `m` (a sluice::mapping): with no checkpoints(...) option, a durable
/// source's own store (provides_checkpoint_store) is used, so that a restart resumes where the
/// mapping stopped instead of reprocessing everything; other sources get an in-memory store.
template <class Mapping, class... Opts>
struct resolved_options_for
    : options_with_default_store<typename default_store<typename Mapping::source_type>::type,
                                 Opts...> {
  using source_type = typename Mapping::source_type;
  using default_store_type = typename default_store<source_type>::type;

  explicit resolved_options_for(Mapping& m, Opts... opts)
      : options_with_default_store<default_store_type, Opts...>(fallback(m), std::move(opts)...) {}

 private:
  static default_store_type* fallback(Mapping& m) {
    if constexpr (provides_checkpoint_store<source_type>) {
      // Only opened when it is used: a checkpoints(...) option leaves the source's store alone.
      if constexpr ((is_option_of<Opts, checkpoints_option> || ...)) {
        return nullptr;
      } else {
        return &source_object(m.source.source).default_checkpoint_store();
      }
    } else {
      (void)m;
      return nullptr;
    }
  }
};
}  // namespace detail

SLUICE_END_NAMESPACE
