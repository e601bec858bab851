// sluice/leases.hpp: several workers (processes, machines) share one mapping's shards through
// leases, the KCL's model (docs/scale-out.md). One lease per (mapping, shard) records its owner,
// a counter and an expiry. The counter is the fencing token: every take bumps it, and every
// checkpoint write is accepted only if the writer still holds the lease with the counter it took
// it with, so a worker that was paused or partitioned past its expiry (a zombie) can never move a
// checkpoint after another worker took the shard.
//
// The protocol is one mechanism (lease_worker) over a lease_store, which is a compare-and-set
// register per lease plus a fenced checkpoint write; memory_lease_store here, Redis
// (sluice/redis/leases.hpp, Lua scripts) and SQLite (sluice/sqlite/leases.hpp, transactions).
//
// lease_worker runs one sluice::start mapping per shard it holds, over a shard_view of the
// source (only that shard) and with fenced checkpoints. Every renew_interval it renews what it
// holds, takes free and expired leases up to its share (ceil(shards / live workers)), and, when
// it took nothing, takes one lease from the most loaded worker if that one holds at least two
// more than it does. A lease it fails to renew stops that shard's mapping at once; so does the
// lease's local deadline passing (the shard_view tells the engine to hand no further batch, see
// engine::stop_requested). stop() writes the final checkpoints and releases the leases, so other
// workers take the shards over at their next cycle.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "sluice/checkpoint.hpp"
#include "sluice/clock.hpp"
#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/options.hpp"
#include "sluice/source.hpp"
#include "sluice/start.hpp"

SLUICE_BEGIN_NAMESPACE

/// One shard's lease as a store holds it.
struct lease {
  shard_id_t shard = 0;
  std::string owner;            // empty: nobody holds it
  std::uint64_t counter = 0;    // the fencing token: every take adds one
  std::int64_t expires_ns = 0;  // on the holder's clock (ns since the epoch); 0 when free
};

/// A lease store: leases(mapping, shards) lists every shard's lease (a shard never leased is free
/// with counter 0); take() sets owner and expiry and bumps the counter only if the lease still
/// has the expected owner and counter; renew() moves the expiry and release() frees the lease
/// under the same condition; save_fenced() stores max(stored, seq) as the shard's checkpoint
/// only if `owner` holds the lease with `counter`; load() reads the checkpoint. Each returns
/// whether its condition held. Thread-safe.
template <class S>
concept lease_store = requires(S& s, std::string_view mapping, shard_id_t shard,
                               std::uint32_t shards, std::string_view owner, std::uint64_t counter,
                               std::int64_t expires, sequence_number_t seq) {
  { s.leases(mapping, shards) } -> std::same_as<std::vector<lease>>;
  { s.take(mapping, shard, owner, counter, owner, expires) } -> std::same_as<bool>;
  { s.renew(mapping, shard, owner, counter, expires) } -> std::same_as<bool>;
  { s.release(mapping, shard, owner, counter) } -> std::same_as<bool>;
  { s.save_fenced(mapping, shard, owner, counter, seq) } -> std::same_as<bool>;
  { s.load(mapping, shard) } -> std::same_as<std::optional<sequence_number_t>>;
};

/// A lease store that also keeps a shard's open tumbling window (S-7) with its checkpoint:
/// save_fenced(..., seq, window) stores the checkpoint and the window (null: none, the stored one
/// is erased) together, and only if `owner` holds the lease with `counter`, as one atomic step;
/// load_window() reads it. A leased mapping with sluice::tumbling_window needs one (all three
/// stores are: memory, Redis and SQLite).
template <class S>
concept window_lease_store = lease_store<S> &&
    requires(S& s, std::string_view mapping, shard_id_t shard, std::string_view owner,
             std::uint64_t counter, sequence_number_t seq, const window_checkpoint* window) {
  { s.save_fenced(mapping, shard, owner, counter, seq, window) } -> std::same_as<bool>;
  { s.load_window(mapping, shard) } -> std::same_as<std::optional<window_checkpoint>>;
};

/// A checkpoint write refused by the fence: the writer no longer holds the shard's lease.
class lease_lost : public std::runtime_error {
 public:
  lease_lost(const std::string& mapping, shard_id_t shard, const std::string& owner,
             std::uint64_t counter)
      : std::runtime_error("sluice: worker '" + owner + "' no longer holds the lease of mapping '" +
                           mapping + "', shard " + std::to_string(shard) + " (counter " +
                           std::to_string(counter) + "); its checkpoint write was refused") {}
};

/// Leases in memory (one process; tests of the protocol on a manual clock).
class memory_lease_store {
 public:
  std::vector<lease> leases(std::string_view mapping, std::uint32_t shards) const {
    std::lock_guard lock(mutex_);
    std::vector<lease> out;
    for (shard_id_t s = 0; s < shards; ++s) {
      auto it = rows_.find({std::string(mapping), s});
      lease l = it == rows_.end() ? lease{} : it->second.l;
      l.shard = s;
      out.push_back(std::move(l));
    }
    return out;
  }
  bool take(std::string_view mapping, shard_id_t shard, std::string_view expected_owner,
            std::uint64_t expected_counter, std::string_view owner, std::int64_t expires_ns) {
    std::lock_guard lock(mutex_);
    lease& l = rows_[{std::string(mapping), shard}].l;
    if (l.owner != expected_owner || l.counter != expected_counter) return false;
    l.owner = std::string(owner);
    ++l.counter;
    l.expires_ns = expires_ns;
    return true;
  }
  bool renew(std::string_view mapping, shard_id_t shard, std::string_view owner,
             std::uint64_t counter, std::int64_t expires_ns) {
    std::lock_guard lock(mutex_);
    lease* l = held(mapping, shard, owner, counter);
    if (l != nullptr) l->expires_ns = expires_ns;
    return l != nullptr;
  }
  bool release(std::string_view mapping, shard_id_t shard, std::string_view owner,
               std::uint64_t counter) {
    std::lock_guard lock(mutex_);
    lease* l = held(mapping, shard, owner, counter);
    if (l != nullptr) {
      l->owner.clear();
      l->expires_ns = 0;
    }
    return l != nullptr;
  }
  bool save_fenced(std::string_view mapping, shard_id_t shard, std::string_view owner,
                   std::uint64_t counter, sequence_number_t seq) {
    std::lock_guard lock(mutex_);
    if (held(mapping, shard, owner, counter) == nullptr) return false;
    auto& cp = rows_[{std::string(mapping), shard}].checkpoint;
    cp = std::max(cp.value_or(0), seq);
    return true;
  }
  bool save_fenced(std::string_view mapping, shard_id_t shard, std::string_view owner,
                   std::uint64_t counter, sequence_number_t seq, const window_checkpoint* window) {
    std::lock_guard lock(mutex_);
    if (held(mapping, shard, owner, counter) == nullptr) return false;
    row& r = rows_[{std::string(mapping), shard}];
    r.checkpoint = std::max(r.checkpoint.value_or(0), seq);
    r.window = window == nullptr ? std::nullopt : std::optional<window_checkpoint>(*window);
    return true;
  }
  std::optional<sequence_number_t> load(std::string_view mapping, shard_id_t shard) const {
    std::lock_guard lock(mutex_);
    auto it = rows_.find({std::string(mapping), shard});
    return it == rows_.end() ? std::nullopt : it->second.checkpoint;
  }
  std::optional<window_checkpoint> load_window(std::string_view mapping, shard_id_t shard) const {
    std::lock_guard lock(mutex_);
    auto it = rows_.find({std::string(mapping), shard});
    return it == rows_.end() ? std::nullopt : it->second.window;
  }

 private:
  struct row {
    lease l;
    std::optional<sequence_number_t> checkpoint;
    std::optional<window_checkpoint> window;
  };
  lease* held(std::string_view mapping, shard_id_t shard, std::string_view owner,
              std::uint64_t counter) {
    auto it = rows_.find({std::string(mapping), shard});
    if (it == rows_.end() || it->second.l.owner != owner || it->second.l.counter != counter)
      return nullptr;
    return &it->second.l;
  }
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, shard_id_t>, row> rows_;
};
static_assert(window_lease_store<memory_lease_store>);

namespace detail {
template <class S>
inline constexpr bool gap_free_source = requires {
  requires S::gap_free_sequences;
};

inline std::int64_t lease_ns(time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
}  // namespace detail

/// One shard of a source, as a source with the same shard count whose other shards are empty:
/// the engine then reports the real shard id (metrics, on-failure records, checkpoints), and as
/// the view serves() only its shard, the engine keeps state and lanes for that one shard (a
/// worker's memory grows with the shards it holds, not with the stream's shard count). While
/// its lease holds, reads go through; may_hand(now) is the engine's gate before every handler
/// attempt: false once the lease's deadline passed or the lease was lost (close()).
template <source Source>
class shard_view {
 public:
  using record_type = typename Source::record_type;
  static constexpr bool gap_free_sequences = detail::gap_free_source<Source>;

  shard_view(Source& source, shard_id_t shard) : source_(&source), shard_(shard) {}
  shard_view(const shard_view&) = delete;
  shard_view& operator=(const shard_view&) = delete;

  std::uint32_t shard_count() const { return source_->shard_count(); }
  std::string_view name() const { return source_->name(); }
  shard_id_t shard() const noexcept { return shard_; }
  /// The counter (fencing token) of the lease this view serves under (0 outside a lease_worker).
  std::uint64_t lease_counter() const noexcept { return counter_; }
  /// The engine allocates only for the shards a source serves (detail/pipeline/engine.hpp).
  bool serves(shard_id_t shard) const noexcept { return shard == shard_; }
  void set_lease_counter(std::uint64_t c) noexcept { counter_ = c; }

  template <class Visit>
  std::size_t read(shard_id_t shard, sequence_number_t after, std::size_t max, Visit&& visit) {
    if (shard != shard_ || closed_.load(std::memory_order_acquire)) return 0;
    return source_->read(shard, after, max, std::forward<Visit>(visit));
  }
  sequence_number_t resolve(shard_id_t shard, starting_position pos) {
    return shard == shard_ ? source_->resolve(shard, pos) : no_sequence;
  }
  sequence_number_t last_sequence(shard_id_t shard) const {
    return shard == shard_ ? source_->last_sequence(shard) : no_sequence;
  }
  void subscribe(data_listener* l) { source_->subscribe(l); }
  void unsubscribe(data_listener* l) { source_->unsubscribe(l); }

  /// The engine's gate (detail/pipeline/engine.hpp): hand batches only before the deadline.
  bool may_hand(time_point now) const noexcept {
    return !closed_.load(std::memory_order_acquire) &&
           detail::lease_ns(now) < valid_until_ns_.load(std::memory_order_acquire);
  }
  void hold_until(time_point t) noexcept {
    valid_until_ns_.store(detail::lease_ns(t), std::memory_order_release);
  }
  void close() noexcept { closed_.store(true, std::memory_order_release); }

 private:
  Source* source_;
  shard_id_t shard_;
  std::uint64_t counter_ = 0;
  std::atomic<std::int64_t> valid_until_ns_{0};
  std::atomic<bool> closed_{false};
};

/// The checkpoint store a leased shard's mapping writes through: every save is fenced by the
/// lease (owner and counter); a refused save throws lease_lost, which stops that mapping.
template <lease_store Store>
class fenced_checkpoints {
 public:
  fenced_checkpoints(Store& store, shard_id_t shard, std::string owner, std::uint64_t counter)
      : store_(&store), shard_(shard), owner_(std::move(owner)), counter_(counter) {}

  std::optional<sequence_number_t> load(std::string_view mapping, shard_id_t shard) const {
    if (shard != shard_) return std::nullopt;
    return store_->load(mapping, shard);
  }
  void save(std::string_view mapping, shard_id_t shard, sequence_number_t seq) {
    if (shard != shard_) return;  // not reached: the view's other shards never move
    if (!store_->save_fenced(mapping, shard, owner_, counter_, seq)) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      throw lease_lost(std::string(mapping), shard, owner_, counter_);
    }
    saved_.fetch_add(1, std::memory_order_relaxed);
  }
  /// With a window_lease_store: the checkpoint and the open window, fenced together (a windowed
  /// mapping's saves), so fenced_checkpoints is then a sluice::window_checkpoint_store.
  std::optional<window_checkpoint> load_window(
      std::string_view mapping, shard_id_t shard) const requires window_lease_store<Store> {
    if (shard != shard_) return std::nullopt;
    return store_->load_window(mapping, shard);
  }
  void save(std::string_view mapping, shard_id_t shard, sequence_number_t seq,
            const window_checkpoint* window) requires window_lease_store<Store> {
    if (shard != shard_) return;
    if (!store_->save_fenced(mapping, shard, owner_, counter_, seq, window)) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      throw lease_lost(std::string(mapping), shard, owner_, counter_);
    }
    saved_.fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t saved() const noexcept { return saved_.load(std::memory_order_relaxed); }
  std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

 private:
  Store* store_;
  shard_id_t shard_;
  std::string owner_;
  std::uint64_t counter_;
  std::atomic<std::uint64_t> saved_{0};
  std::atomic<std::uint64_t> refused_{0};
};

struct lease_options {
  /// Unique among the workers of a mapping (say host:pid). Required.
  std::string worker_id;
  /// A lease not renewed for this long may be taken by another worker.
  duration lease_duration = std::chrono::seconds(10);
  /// How often the worker renews, takes and balances; at most lease_duration / 2, so one failed
  /// renewal does not lose a lease.
  duration renew_interval = std::chrono::seconds(3);
};

/// What a lease_worker did so far.
struct lease_stats {
  std::uint64_t taken = 0;           // free or expired leases taken
  std::uint64_t stolen = 0;          // leases taken from a more loaded worker to balance
  std::uint64_t lost = 0;            // leases it could not renew (taken by another, or expired)
  std::uint64_t released = 0;        // released on stop()
  std::uint64_t store_errors = 0;    // lease store calls that threw (Redis unreachable...)
  std::uint64_t fenced_refused = 0;  // checkpoint writes the fence refused
  std::uint64_t failed = 0;          // shard mappings that stopped with an error (then released)
  std::string last_error;            // the last such error, or store error
};

/// Runs a mapping over the shards this worker holds leases of. `factory(view)` builds the mapping
/// for one shard from a shard_view (sluice::from(view) | ...); the worker starts it with fenced
/// checkpoints, the mapping name, the clock and `opts` (other sluice::start options).
template <lease_store Store, source Source, class Factory, clock_type Clock = system_clock,
          class... Opts>
class lease_worker {
 public:
  lease_worker(Store& store, Source& source, std::string mapping, lease_options options,
               Factory factory, Clock& clock, Opts... opts)
      : store_(&store),
        source_(&source),
        mapping_(std::move(mapping)),
        options_(validated(std::move(options))),
        factory_(std::move(factory)),
        clock_(&clock),
        opts_(std::move(opts)...) {}
  lease_worker(const lease_worker&) = delete;
  lease_worker& operator=(const lease_worker&) = delete;
  ~lease_worker() {
    try {
      stop();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
    }
  }

  /// Runs cycle() every renew_interval on a thread of its own until stop().
  void start() {
    if (thread_.joinable()) return;
    running_ = true;
    thread_ = std::thread([this] {
      while (running_.load()) {
        const time_point now = clock_->now();
        cycle(now);
        time_point next = now + options_.renew_interval;
        {
          std::lock_guard lock(mutex_);
          for (const auto& [id, h] : held_) next = std::min(next, h->valid_until);
        }
        if (running_.load()) clock_->sleep_until(next, sleeper_);
      }
    });
  }

  /// One round of the protocol at `now`: renew, take free and expired leases, balance.
  void cycle(time_point now) {
    std::lock_guard lock(mutex_);
    renew_all(now);
    std::vector<lease> all;
    try {
      all = store_->leases(mapping_, source_->shard_count());
    } catch (...) {
      ++stats_.store_errors;
      return;
    }
    const std::int64_t now_ns = detail::lease_ns(now);
    std::map<std::string, std::vector<const lease*>> others;  // live leases by owner
    for (const lease& l : all) {
      if (!l.owner.empty() && l.owner != options_.worker_id && l.expires_ns > now_ns)
        others[l.owner].push_back(&l);
    }
    const auto shards = static_cast<std::size_t>(source_->shard_count());
    const std::size_t workers = others.size() + 1;
    const std::size_t target = (shards + workers - 1) / workers;
    bool took = false;
    for (const lease& l : all) {
      if (held_.size() >= target) break;
      if (held_.contains(l.shard)) continue;
      const bool free = l.owner.empty() || l.expires_ns <= now_ns || l.owner == options_.worker_id;
      if (free && try_take(l, now)) {
        ++stats_.taken;
        took = true;
      }
    }
    if (took || others.empty()) return;
    // Balance: one lease per cycle from the most loaded worker, while it holds 2+ more.
    auto most = std::max_element(others.begin(), others.end(), [](const auto& a, const auto& b) {
      return a.second.size() < b.second.size() ||
             (a.second.size() == b.second.size() && a.first > b.first);
    });
    if (most->second.size() >= held_.size() + 2) {
      const lease& victim = *most->second.back();
      if (try_take(victim, now)) ++stats_.stolen;
    }
  }

  /// Stops every shard's mapping (each writes its final checkpoint while its lease holds),
  /// releases the leases and joins the worker thread. Rethrows nothing: see stats().
  void stop() {
    if (thread_.joinable()) {
      running_ = false;
      clock_->wake(sleeper_);
      thread_.join();
    }
    std::lock_guard lock(mutex_);
    for (auto& [shard, h] : held_) {
      stop_mapping(*h);
      try {
        if (store_->release(mapping_, shard, options_.worker_id, h->counter)) ++stats_.released;
      } catch (...) {
        ++stats_.store_errors;
      }
    }
    held_.clear();
  }

  /// The shards this worker holds now.
  std::vector<shard_id_t> held() const {
    std::lock_guard lock(mutex_);
    std::vector<shard_id_t> out;
    for (const auto& [shard, h] : held_) out.push_back(shard);
    return out;
  }
  lease_stats stats() const {
    std::lock_guard lock(mutex_);
    lease_stats s = stats_;
    for (const auto& [shard, h] : held_) s.fenced_refused += h->checkpoints.refused();
    return s;
  }
  /// The running mapping of a held shard (metrics), or null.
  const running_mapping* mapping_of(shard_id_t shard) const {
    std::lock_guard lock(mutex_);
    auto it = held_.find(shard);
    return it == held_.end() || !it->second->running ? nullptr : &*it->second->running;
  }
  const lease_options& options() const noexcept { return options_; }

 private:
  struct held_shard {
    held_shard(Source& source, Store& store, shard_id_t shard, std::string owner,
               std::uint64_t counter)
        : counter(counter),
          view(source, shard),
          checkpoints(store, shard, std::move(owner), counter) {
      view.set_lease_counter(counter);
    }
    std::uint64_t counter;
    time_point valid_until{};
    shard_view<Source> view;
    fenced_checkpoints<Store> checkpoints;
    std::optional<running_mapping> running;  // last: stopped before view and checkpoints go
  };

  static lease_options validated(lease_options o) {
    if (o.worker_id.empty())
      detail::reject("lease_options::worker_id", "\"\"", "a name unique among the workers");
    if (o.lease_duration <= duration::zero())
      detail::reject("lease_options::lease_duration (ns)", o.lease_duration.count(), "> 0");
    if (o.renew_interval <= duration::zero() || o.renew_interval * 2 > o.lease_duration)
      detail::reject("lease_options::renew_interval (ns)", o.renew_interval.count(),
                     "0 < renew_interval <= lease_duration / 2");
    return o;
  }

  void note_failure(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      stats_.last_error = x.what();
    } catch (...) {
      stats_.last_error = "(not a std::exception)";
    }
  }

  void renew_all(time_point now) {
    std::vector<shard_id_t> gone;
    std::vector<shard_id_t> failed;
    for (auto& [shard, h] : held_) {
      if (h->running && h->running->failure()) {  // its mapping failed (say, a refused checkpoint)
        note_failure(h->running->failure());
        ++stats_.failed;
        failed.push_back(shard);
        continue;
      }
      if (now >= h->valid_until) {
        gone.push_back(shard);
        continue;
      }
      try {
        const time_point until = now + options_.lease_duration;
        if (store_->renew(mapping_, shard, options_.worker_id, h->counter,
                          detail::lease_ns(until))) {
          h->valid_until = until;
          h->view.hold_until(until);
        } else {
          gone.push_back(shard);
        }
      } catch (...) {
        ++stats_.store_errors;  // kept until valid_until: the store may come back in time
        note_failure(std::current_exception());
      }
    }
    for (shard_id_t shard : gone) {
      held_[shard]->view.close();  // no further batch of this shard reaches the handler
      stop_mapping(*held_[shard]);
      held_.erase(shard);
      ++stats_.lost;
    }
    // A failed mapping lets its lease go, so this or another worker starts the shard afresh
    // from its checkpoint at the next cycle (a refused checkpoint write cannot release: fine).
    for (shard_id_t shard : failed) {
      held_shard& h = *held_[shard];
      h.view.close();
      stop_mapping(h);
      try {
        store_->release(mapping_, shard, options_.worker_id, h.counter);
      } catch (...) {
        ++stats_.store_errors;
      }
      held_.erase(shard);
    }
  }

  bool try_take(const lease& l, time_point now) {
    const time_point until = now + options_.lease_duration;
    try {
      if (!store_->take(mapping_, l.shard, l.owner, l.counter, options_.worker_id,
                        detail::lease_ns(until)))
        return false;
    } catch (...) {
      ++stats_.store_errors;
      return false;
    }
    auto h =
        std::make_unique<held_shard>(*source_, *store_, l.shard, options_.worker_id, l.counter + 1);
    h->valid_until = until;
    h->view.hold_until(until);
    try {
      h->running.emplace(std::apply(
          [&](const Opts&... opts) {
            return sluice::start(factory_(h->view), sluice::checkpoints(h->checkpoints),
                                 sluice::mapping_name(mapping_), sluice::with_clock(*clock_),
                                 opts...);
          },
          opts_));
    } catch (...) {
      ++stats_.store_errors;
      try {
        store_->release(mapping_, l.shard, options_.worker_id, l.counter + 1);
      } catch (...) {  // NOLINT(bugprone-empty-catch): it expires
      }
      return false;
    }
    held_.emplace(l.shard, std::move(h));
    return true;
  }

  void stop_mapping(held_shard& h) {
    if (!h.running) return;
    try {
      h.running->stop();
    } catch (...) {  // NOLINT(bugprone-empty-catch): counted below (lease_lost), else reported
    }
    stats_.fenced_refused += h.checkpoints.refused();
    h.running.reset();
  }

  Store* store_;
  Source* source_;
  std::string mapping_;
  lease_options options_;
  Factory factory_;
  Clock* clock_;
  std::tuple<Opts...> opts_;
  mutable std::mutex mutex_;
  std::map<shard_id_t, std::unique_ptr<held_shard>> held_;
  lease_stats stats_;
  std::atomic<bool> running_{false};
  sleeper sleeper_;
  std::thread thread_;
};

SLUICE_END_NAMESPACE
