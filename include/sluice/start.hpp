// sluice/start.hpp: sluice::start runs a mapping on its own threads and returns a
// sluice::running_mapping, the handle that watches and stops it. Which thread runs a batch, and
// when work moves between threads, is the driver's business (sluice/detail/threads/driver.hpp;
// docs/guide.md, "Execution model"). Destroying the handle stops the mapping.
#pragma once

#include <chrono>
#include <exception>
#include <memory>
#include <utility>

#include "sluice/detail/compose/rules.hpp"
#include "sluice/detail/pipeline/engine.hpp"
#include "sluice/detail/threads/driver.hpp"
#include "sluice/metrics.hpp"
#include "sluice/options.hpp"

SLUICE_BEGIN_NAMESPACE

/// A running mapping (what sluice::start returns). One type for every mapping, so it can be
/// named: a member, a container element, a pointer a handler uses to stop its own mapping.
class running_mapping {
 public:
  explicit running_mapping(std::unique_ptr<detail::running_control> control)
      : control_(std::move(control)) {}
  running_mapping(running_mapping&&) noexcept = default;
  running_mapping& operator=(running_mapping&&) noexcept = default;
  ~running_mapping() = default;  // the control stops and joins

  /// Stops reading, lets running handler calls end, stores the final checkpoints and joins the
  /// threads; rethrows a failure that stopped the mapping. Called from a handler of this
  /// mapping it only requests the stop (a thread cannot join itself): the same as request_stop().
  void stop() {
    control_->stop();
    if (auto e = control_->failure()) std::rethrow_exception(e);
  }
  /// Asks the mapping to stop without waiting; safe anywhere, also from a handler.
  void request_stop() { control_->request_stop(); }
  bool stop_requested() const noexcept { return control_->stop_requested(); }

  /// Blocks until everything put so far is finished. Rethrows a failure that stopped the mapping.
  void wait_until_caught_up() {
    (void)control_->wait_until_caught_up(std::chrono::hours(24 * 365));
  }
  /// As above, for at most `timeout` (real time); returns whether it caught up.
  template <class Rep, class Period>
  bool wait_until_caught_up(std::chrono::duration<Rep, Period> timeout) {
    return control_->wait_until_caught_up(
        std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }

  metrics_snapshot metrics() const { return control_->metrics(); }
  /// The most records the mapping holds between source and handler: shards x P x
  /// batches_per_lane x batch_size.
  std::size_t buffer_bound() const { return control_->buffer_bound(); }
  /// The error that stopped the mapping (a throwing filter/transform or checkpoint store), if any.
  std::exception_ptr failure() const { return control_->failure(); }

 private:
  std::unique_ptr<detail::running_control> control_;
};

/// Starts a mapping on its own threads. Options: checkpoints(store), with_clock(clock),
/// mapping_name(name), pollers(n), workers(n), execution(mode), with_traits<T>(). The handler
/// may run on several threads at once (one batch per lane at a time).
template <class Source, class Stages, class... Opts>
running_mapping start(mapping<Source, Stages>&& m, Opts... opts) {
  if constexpr (!detail::runnable<mapping<Source, Stages>, detail::start_driver, Opts...>()) {
    return running_mapping(nullptr);
  } else {
    using options = detail::resolved_options_for<mapping<Source, Stages>, Opts...>;
    using mapping_t = mapping<Source, Stages>;
    using traits_t = typename options::traits_type;
    using engine_t = detail::engine<mapping_t, typename options::clock_type,
                                    typename options::store_type, traits_t>;
    using driver_t = detail::driver<engine_t, traits_t>;
    struct owning_driver final : detail::running_control {
      // A default in-memory store lives as long as the mapping; threads end before it goes.
      owning_driver(options& o, mapping_t&& m)
          : owned(std::move(o.owned_store)),
            run(o.pollers, o.workers, o.execution, std::move(m), *o.clock, *o.store, o.name,
                o.stage_errors, o.events) {}
      std::unique_ptr<memory_checkpoint_store> owned;
      driver_t run;
      void stop() override { run.stop(); }
      void request_stop() override { run.request_stop(); }
      bool stop_requested() const noexcept override { return run.stop_requested(); }
      bool wait_until_caught_up(std::chrono::nanoseconds t) override {
        return run.wait_until_caught_up(t);
      }
      metrics_snapshot metrics() const override { return run.metrics(); }
      std::size_t buffer_bound() const override { return run.buffer_bound(); }
      std::exception_ptr failure() const override { return run.failure(); }
    };
    options o(m, std::move(opts)...);
    return running_mapping(std::make_unique<owning_driver>(o, std::move(m)));
  }
}

SLUICE_END_NAMESPACE
