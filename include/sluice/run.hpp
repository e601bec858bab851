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
    using options = detail::resolved_options<Opts...>;
    options o(std::move(opts)...);
    using engine_t = detail::engine<mapping<Source, Stages>, typename options::clock_type,
                                    typename options::store_type>;
    engine_t e(std::move(m), *o.clock, *o.store, o.name);

    std::vector<sequence_number_t> end;
    for (auto& s : e.shards()) end.push_back(e.source().last_sequence(s->id));

    const std::size_t chunk = std::max<std::size_t>(1024, e.batching().batch_size);
    std::vector<typename engine_t::lane*> submitted;
    sleeper self;
    std::atomic<bool> stopped{false};
    std::stop_callback on_stop(o.stop, [&] { stopped = true; });
    e.set_stop_flag(&stopped);

    for (auto& sp : e.shards()) {
      auto& s = *sp;
      bool flush = false;  // close open batching windows: the source has nothing more for us
      while (!stopped) {
        time_point next = far_future;
        const bool moved =
            e.poll(s, e.now(), submitted, next, chunk, flush || s.position >= end[s.id]);
        for (auto* l : submitted) {  // one batch at a time, each to completion
          while (true) {             // the lane's batches in order, each to completion
            const auto r = e.run_job(*l);
            if (stopped || (r.done && !r.more)) break;
            if (!r.done) e.clock().sleep_until(r.wait_until, self);
          }
          // Always safe: the checkpoint only covers finished records (an abandoned batch is not).
          e.update_checkpoint(s);
          if (stopped) break;
        }
        submitted.clear();
        e.update_checkpoint(s);
        if (!moved) {  // nothing read: at the end, or retention trimmed the rest; flush, then done
          if (flush) break;
          flush = true;
        }
      }
    }
    return e.metrics();
  }
}

SLUICE_END_NAMESPACE
