// sluice/run.hpp: sluice::run runs a mapping on the calling thread until everything its source
// held when run was called is finished (or stop is requested): the simplest mode, used by
// tests, benchmarks and batch jobs. Batches run one at a time; back-offs sleep on the clock (a
// manual_clock in auto_advance mode plays them in virtual time). Open batching windows close
// at the end of the source.
#pragma once

#include <atomic>
#include <memory>
#include <stop_token>
#include <utility>
#include <vector>

#include "sluice/detail/compose/rules.hpp"
#include "sluice/detail/pipeline/engine.hpp"
#include "sluice/metrics.hpp"
#include "sluice/options.hpp"

SLUICE_BEGIN_NAMESPACE

template <class Source, class Stages, class... Opts>
metrics_snapshot run(mapping<Source, Stages>&& m, Opts... opts) {
  if constexpr (!detail::runnable<mapping<Source, Stages>, detail::run_driver, Opts...>()) {
    return {};
  } else {
    using options = detail::resolved_options_for<mapping<Source, Stages>, Opts...>;
    options o(m, std::move(opts)...);
    using engine_t = detail::engine<mapping<Source, Stages>, typename options::clock_type,
                                    typename options::store_type, typename options::traits_type>;
    engine_t e(std::move(m), *o.clock, *o.store, o.name, o.stage_errors, o.events);

    std::vector<sequence_number_t> end;
    for (auto& s : e.shards()) end.push_back(e.source().last_sequence(s->id));

    std::vector<typename engine_t::lane*> claimed;
    sleeper self;
    struct consumer_scope {  // a bounded source must not make this thread wait for itself
      const void* saved = detail::current_consumer();
      explicit consumer_scope(const void* e) { detail::current_consumer() = e; }
      ~consumer_scope() { detail::current_consumer() = saved; }
    } scope(&e);
    std::atomic<bool> stopped{false};
    std::stop_callback on_stop(o.stop, [&] {
      stopped = true;
      e.clock().wake(self);  // a wait for a window's idle time (below) ends
    });
    e.set_stop_flag(&stopped);
    e.isolate_idle_lanes(false);  // every lane runs to completion before the next read

    for (std::size_t i = 0; i < e.shards().size(); ++i) {  // end[i]: shards()[i] (by index)
      auto& s = *e.shards()[i];
      bool flush = false;  // close open batching windows: the source has nothing more for us
      while (!stopped) {
        time_point next = far_future;
        const time_point now = e.now();
        const detail::poll_result polled =
            e.poll(s, now, claimed, next, flush || s.position >= end[i]);
        for (auto* l : claimed) {  // each lane's batches in order, each to completion
          while (true) {
            const auto r = e.run_job(*l);
            if (stopped || (r.done && !r.more)) break;
            if (!r.done) e.clock().sleep_until(r.wait_until, self);
          }
          if (stopped) break;
        }
        claimed.clear();
        // Once per pass: the checkpoint only covers finished records (an abandoned batch is not).
        e.update_checkpoint(s);
        if (!polled.progress) {
          if (s.retry_at > now && s.position < end[i]) {
            // A failed sink call or stage delivery: read it again after back-off.
            e.clock().sleep_until(s.retry_at, self);
            continue;
          }
          // Nothing read: at the end, or retention trimmed the rest; flush, then done. An open
          // tumbling window is waited for: its final invocation comes after its idle time.
          if (flush) {
            const time_point due = e.window_due(s);
            if (due == far_future) break;
            e.clock().sleep_until(due, self);
            continue;
          }
          flush = true;
        }
      }
    }
    return e.metrics();
  }
}

SLUICE_END_NAMESPACE
