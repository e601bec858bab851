// Tests of the lease protocol (sluice/leases.hpp) on memory_lease_store and a manual clock: workers
// take free leases up to their share, balance one lease per cycle from the most loaded worker,
// take expired leases, release on stop; a worker whose lease lapsed hands no further batch of that
// shard to its handler, and its checkpoint writes are refused by the fence; a windowed mapping's
// open window moves with its shard to the next holder, under the same fence.
#include "sluice/leases.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "sluice/sluice.hpp"
#include "support/trace.hpp"

namespace {

using namespace std::chrono_literals;
using R = sluice::record<int>;
using stream_t = sluice::memory_stream<int, std::string, sluice::manual_clock>;
using sluice_test::eventually;

static_assert(sluice::lease_store<sluice::memory_lease_store>);
static_assert(sluice::window_lease_store<sluice::memory_lease_store>);
static_assert(
    sluice::window_checkpoint_store<sluice::fenced_checkpoints<sluice::memory_lease_store>>);
static_assert(sluice::source<sluice::shard_view<stream_t>>);

/// What the handlers of all workers saw: per worker, per shard, the records handled.
struct seen_log {
  std::mutex mutex;
  std::map<std::string, std::map<sluice::shard_id_t, std::vector<int>>> by_worker;
  void add(const std::string& worker, const sluice::batch<R>& b) {
    std::lock_guard lock(mutex);
    for (const R& r : b) by_worker[worker][b.shard_id()].push_back(r.payload);
  }
  std::size_t count(const std::string& worker) {
    std::lock_guard lock(mutex);
    std::size_t n = 0;
    for (auto& [shard, v] : by_worker[worker]) n += v.size();
    return n;
  }
};

auto factory_for(seen_log& log, std::string worker) {
  return [&log, worker](sluice::shard_view<stream_t>& view) {
    return sluice::from(view) | sluice::batching(sluice::batch_size(10)) |
           sluice::invoke([&log, worker](const sluice::batch<R>& b) { log.add(worker, b); });
  };
}

sluice::lease_options options_for(std::string id) {
  sluice::lease_options o;
  o.worker_id = std::move(id);
  o.lease_duration = 10s;
  o.renew_interval = 3s;
  return o;
}

using worker_t = sluice::lease_worker<sluice::memory_lease_store, stream_t,
                                      decltype(factory_for(std::declval<seen_log&>(), "")),
                                      sluice::manual_clock>;

struct Leases : ::testing::Test {
  sluice::manual_clock clock;
  stream_t stream{16, clock};
  sluice::memory_lease_store store;
  seen_log log;

  std::unique_ptr<worker_t> worker(const std::string& id) {
    return std::make_unique<worker_t>(store, stream, "orders", options_for(id),
                                      factory_for(log, id), clock);
  }
  std::map<std::string, std::size_t> owners() {
    std::map<std::string, std::size_t> n;
    for (const auto& l : store.leases("orders", 16))
      if (!l.owner.empty()) ++n[l.owner];
    return n;
  }
};

TEST_F(Leases, AWorkerAloneTakesEveryShardAndHandlesEveryRecord) {
  auto w = worker("a");
  w->cycle(clock.now());
  EXPECT_EQ(w->held().size(), 16u);
  for (int i = 0; i < 200; ++i) stream.put("k" + std::to_string(i), i);
  ASSERT_TRUE(eventually([&] { return log.count("a") == 200; }));
  w->stop();
  EXPECT_EQ(w->stats().released, 16u);
  for (const auto& l : store.leases("orders", 16)) EXPECT_TRUE(l.owner.empty());
}

TEST_F(Leases, WorkersBalanceOneLeasePerCycleFromTheMostLoaded) {
  auto a = worker("a");
  a->cycle(clock.now());
  auto b = worker("b");
  auto c = worker("c");
  std::size_t stolen_per_cycle_max = 0;
  for (int round = 0; round < 20; ++round) {
    clock.advance(3s);
    const auto before = owners();
    for (auto* w : {a.get(), b.get(), c.get()}) w->cycle(clock.now());
    const auto after = owners();
    // each cycle of b and c takes at most one lease from another worker
    std::size_t moved = 0;
    for (const auto& [owner, n] : before)
      if (after.contains(owner) && after.at(owner) < n) moved += n - after.at(owner);
    stolen_per_cycle_max = std::max(stolen_per_cycle_max, moved);
  }
  const auto n = owners();
  ASSERT_EQ(n.size(), 3u);
  for (const auto& [owner, count] : n) {
    EXPECT_GE(count, 5u) << owner;  // 16 / 3: each holds 5 or 6
    EXPECT_LE(count, 6u) << owner;
  }
  EXPECT_LE(stolen_per_cycle_max, 2u) << "b and c each take at most one per cycle";
  EXPECT_EQ(a->held().size() + b->held().size() + c->held().size(), 16u)
      << "the losers saw their renewals fail and let go";
  EXPECT_GE(b->stats().stolen, 5u);
}

TEST_F(Leases, ALeaseNotRenewedExpiresAndAnotherWorkerTakesIt) {
  auto a = worker("a");
  a->cycle(clock.now());
  auto b = worker("b");
  b->cycle(clock.now());
  EXPECT_EQ(b->held().size(), 1u) << "a live worker's leases are only balanced, one per cycle";
  clock.advance(11s);  // a did not renew for longer than the lease duration: all a's expired
  b->cycle(clock.now());
  EXPECT_EQ(b->held().size(), 16u);
  a->cycle(clock.now());
  EXPECT_EQ(a->stats().lost, 16u) << "a's renewals fail: its leases expired";
  EXPECT_EQ(a->held().size(), 1u) << "then it balances: one lease from b, with a new counter";
  EXPECT_EQ(a->stats().stolen, 1u);
}

TEST_F(Leases, AZombieHandsNoBatchAndItsCheckpointWritesAreRefused) {
  auto a = worker("a");
  a->cycle(clock.now());
  for (int i = 0; i < 50; ++i) stream.put("k" + std::to_string(i), i);
  ASSERT_TRUE(eventually([&] { return log.count("a") == 50; }));
  const auto checkpoints_before = store.leases("orders", 16);
  // a is paused (no cycle) past its leases' expiry; b takes everything over.
  clock.advance(11s);
  auto b = worker("b");
  b->cycle(clock.now());
  ASSERT_EQ(b->held().size(), 16u);
  // New records: a's mappings still run, but the deadline passed, so its engine hands nothing.
  for (int i = 50; i < 100; ++i) stream.put("k" + std::to_string(i), i);
  ASSERT_TRUE(eventually([&] { return log.count("b") == 50; }));
  EXPECT_EQ(log.count("a"), 50u) << "the zombie handed a batch after its lease lapsed";
  // A checkpoint write with a's fencing token is refused.
  sluice::fenced_checkpoints<sluice::memory_lease_store> zombie(store, 0, "a",
                                                                checkpoints_before[0].counter);
  EXPECT_THROW(zombie.save("orders", 0, 1'000'000), sluice::lease_lost);
  EXPECT_LT(store.load("orders", 0).value_or(0), 1'000'000u);
  a->cycle(clock.now());  // wakes: its leases are gone (it balances one back, as a new holder)
  EXPECT_EQ(a->stats().lost, 16u);
  EXPECT_LE(a->held().size(), 1u);
  b->stop();
  a->stop();
}

TEST_F(Leases, ACleanStopReleasesSoAnotherWorkerTakesOverAtOnce) {
  auto a = worker("a");
  a->cycle(clock.now());
  for (int i = 0; i < 40; ++i) stream.put("k" + std::to_string(i), i);
  ASSERT_TRUE(eventually([&] { return log.count("a") == 40; }));
  a->stop();
  auto b = worker("b");
  b->cycle(clock.now());  // no waiting for expiry
  EXPECT_EQ(b->held().size(), 16u);
  for (int i = 40; i < 60; ++i) stream.put("k" + std::to_string(i), i);
  ASSERT_TRUE(eventually([&] { return log.count("b") == 20; }));
  EXPECT_EQ(log.count("b"), 20u) << "b resumed after a's final checkpoints: nothing twice";
  b->stop();
}

// S-7 on leases: a windowed mapping keeps its shard's open window with the fenced checkpoint, so
// the next holder resumes the window's state, and a zombie's window save is refused.
TEST(LeasedWindows, TheOpenWindowMovesWithItsShardAndAZombieCannotOverwriteIt) {
  sluice::manual_clock clock;  // time stands still: the window stays open throughout
  stream_t stream{1, clock};
  sluice::memory_lease_store store;
  std::mutex mutex;
  std::vector<std::string> calls;  // "<worker>:<first sequence><state>"
  auto windowed = [&](std::string worker) {
    return [&, worker](sluice::shard_view<stream_t>& view) {
      return sluice::from(view) | sluice::batching(sluice::batch_size(2)) |
             sluice::tumbling_window(60) |
             sluice::invoke(
                 [&, worker](const sluice::batch<R>& b,
                             const sluice::window_context& w) -> sluice::window_response {
                   long sum = w.state.empty() ? 0 : std::stol(w.state);
                   for (const R& r : b) sum += r.payload;
                   std::lock_guard lock(mutex);
                   calls.push_back(worker + ":" + std::to_string(b.first_sequence()) + "<" +
                                   w.state + ">");
                   return std::to_string(sum);
                 });
    };
  };
  auto count = [&] {
    std::lock_guard lock(mutex);
    return calls.size();
  };
  using windowed_worker = sluice::lease_worker<sluice::memory_lease_store, stream_t,
                                               decltype(windowed("")), sluice::manual_clock>;
  auto a =
      std::make_unique<windowed_worker>(store, stream, "w", options_for("a"), windowed("a"), clock);
  a->cycle(clock.now());
  ASSERT_EQ(a->held().size(), 1u);
  stream.put("k", 1);
  stream.put("k", 2);
  ASSERT_TRUE(eventually([&] { return count() == 1; }));
  const std::uint64_t a_counter = store.leases("w", 1)[0].counter;
  a->stop();  // the final save: checkpoint 2 and the open window (state 3), fenced
  ASSERT_TRUE(store.load_window("w", 0));
  EXPECT_EQ(store.load_window("w", 0)->state, "3");

  windowed_worker b(store, stream, "w", options_for("b"), windowed("b"), clock);
  b.cycle(clock.now());
  ASSERT_EQ(b.held().size(), 1u);
  stream.put("k", 3);
  stream.put("k", 4);
  ASSERT_TRUE(eventually([&] { return count() == 2; }));
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(calls[0], "a:1<>");
    EXPECT_EQ(calls[1], "b:3<3>") << "b resumed the window a kept with its checkpoint";
  }
  ASSERT_TRUE(eventually([&] {
    const auto w = store.load_window("w", 0);
    return w && w->state == "10";
  }));
  // a, as a zombie with its old fencing token, cannot overwrite the window (nor end it).
  sluice::fenced_checkpoints<sluice::memory_lease_store> zombie(store, 0, "a", a_counter);
  const sluice::window_checkpoint stale{clock.now(), clock.now() + 60s, "3", false};
  EXPECT_THROW(zombie.save("w", 0, 1'000, &stale), sluice::lease_lost);
  EXPECT_THROW(zombie.save("w", 0, 1'000, nullptr), sluice::lease_lost);
  EXPECT_EQ(store.load_window("w", 0)->state, "10");
  EXPECT_LT(store.load("w", 0).value_or(0), 1'000u);
  b.stop();
}

// A worker holding 10 of 1,000 shards runs one mapping per held shard, and each mapping keeps
// state and lanes for its one shard only (shard_view::serves): the same buffers as a mapping over
// a one-shard stream, not 1,000 shards' worth per held shard.
TEST(LeasedLanes, AHeldShardsMappingAllocatesForThatShardOnly) {
  sluice::manual_clock clock;
  constexpr std::uint32_t shards = 1000;
  stream_t stream{shards, clock};
  sluice::memory_lease_store store;
  for (sluice::shard_id_t s = 10; s < shards; ++s)  // another live worker holds all but 10
    ASSERT_TRUE(store.take("m", s, "", 0, "other", std::numeric_limits<std::int64_t>::max()));
  auto factory = [](sluice::shard_view<stream_t>& view) {
    return sluice::from(view) | sluice::batching(sluice::batch_size(100)) |
           sluice::parallelization_factor(4) | sluice::invoke([](const sluice::batch<R>&) {});
  };
  sluice::lease_worker<sluice::memory_lease_store, stream_t, decltype(factory),
                       sluice::manual_clock>
      w(store, stream, "m", options_for("a"), factory, clock);
  w.cycle(clock.now());
  ASSERT_EQ(w.held().size(), 10u);

  stream_t one{1, clock};  // the baseline: what one shard's mapping holds
  auto baseline = sluice::start(sluice::from(one) | sluice::batching(sluice::batch_size(100)) |
                                    sluice::parallelization_factor(4) |
                                    sluice::invoke([](const sluice::batch<R>&) {}),
                                sluice::with_clock(clock));
  const std::size_t per_shard = baseline.buffer_bound();
  baseline.stop();
  ASSERT_GT(per_shard, 0u);
  std::size_t total = 0;
  for (sluice::shard_id_t s : w.held()) {
    const sluice::running_mapping* m = w.mapping_of(s);
    ASSERT_NE(m, nullptr);
    const auto snapshot = m->metrics();
    ASSERT_EQ(snapshot.shards.size(), 1u) << "shard " << s << "'s mapping keeps other shards";
    EXPECT_EQ(snapshot.shards[0].shard_id, s);
    EXPECT_EQ(m->buffer_bound(), per_shard) << "shard " << s;
    total += m->buffer_bound();
  }
  EXPECT_EQ(total, 10 * per_shard) << "lanes for the 10 held shards, not 10 x 1,000";
  // And the held shards' records are handled (the partial engine reads, batches, checkpoints).
  for (int i = 0; i < 3000; ++i) stream.put("k" + std::to_string(i), i);
  ASSERT_TRUE(eventually([&] {
    for (sluice::shard_id_t s : w.held())
      if (store.load("m", s).value_or(0) < stream.last_sequence(s)) return false;
    return true;
  }));
  w.stop();
}

// sluice::run over a shard_view (a partial source): reads, handles and checkpoints its one shard
// to the end, and reports that shard alone.
TEST(LeasedLanes, RunOverAShardViewHandlesThatShardToTheEnd) {
  sluice::manual_clock clock;
  stream_t stream{8, clock};
  for (int i = 0; i < 400; ++i) stream.put("k" + std::to_string(i), i);
  sluice::shard_view<stream_t> view(stream, 5);
  view.hold_until(clock.now() + 1000h);  // as if its lease held throughout
  std::size_t handled = 0;
  sluice::memory_checkpoint_store store;
  const auto m = sluice::run(sluice::from(view) | sluice::batching(sluice::batch_size(10)) |
                                 sluice::invoke([&](const sluice::batch<R>& b) {
                                   EXPECT_EQ(b.shard_id(), 5u);
                                   handled += b.size();
                                 }),
                             sluice::checkpoints(store), sluice::with_clock(clock));
  ASSERT_GT(stream.last_sequence(5), 0u);
  EXPECT_EQ(handled, stream.last_sequence(5));
  EXPECT_EQ(store.load("sluice", 5), stream.last_sequence(5));
  EXPECT_EQ(store.load("sluice", 4), std::nullopt);
  ASSERT_EQ(m.shards.size(), 1u);
  EXPECT_EQ(m.shards[0].shard_id, 5u);
}

TEST_F(Leases, InvalidLeaseOptionsAreRejectedNamingTheParameter) {
  auto expect_rejected = [&](sluice::lease_options o, const std::string& parameter) {
    try {
      worker_t w(store, stream, "orders", std::move(o), factory_for(log, "x"), clock);
      ADD_FAILURE() << parameter << " accepted";
    } catch (const sluice::configuration_error& e) {
      EXPECT_NE(std::string(e.what()).find(parameter), std::string::npos) << e.what();
    }
  };
  expect_rejected(options_for(""), "lease_options::worker_id");
  auto o = options_for("a");
  o.renew_interval = 6s;  // more than half the duration
  expect_rejected(o, "lease_options::renew_interval");
  o = options_for("a");
  o.lease_duration = 0s;
  expect_rejected(o, "lease_options::lease_duration");
}

// A lane waiting to retry when its shard's lease lapses is refused by the engine's gate. It must
// not spin on the refusal until the worker stops the mapping: the mapping's threads sleep on the
// clock (runtime_traits::gate_recheck), and the lane goes on when the lease is renewed.
TEST(LeaseGate, ALaneRefusedByALapsedLeaseSleepsAndGoesOnWhenTheLeaseIsRenewed) {
  sluice::manual_clock clock;
  stream_t stream{1, clock};
  sluice::shard_view<stream_t> view(stream, 0);
  view.hold_until(clock.now() + 10s);
  std::atomic<int> calls{0};
  auto running = sluice::start(
      sluice::from(view) | sluice::batching(sluice::batch_size(10)) |
          sluice::retry(sluice::maximum_retry_attempts(-1), sluice::backoff::fixed(1s)) |
          sluice::invoke([&](const sluice::batch<R>&) {
            if (++calls == 1) throw std::runtime_error("once");
          }),
      sluice::with_clock(clock), sluice::pollers(1), sluice::workers(1));
  stream.put("k", 1);
  ASSERT_TRUE(eventually([&] { return calls.load() == 1; }));
  ASSERT_TRUE(clock.wait_for_sleepers(2));  // the reader and the worker: the lane backs off
  clock.advance(20s);                       // the retry is due, but the lease's deadline has passed
  EXPECT_TRUE(clock.wait_for_sleepers(2, 10s)) << "a thread spins on the refused lane";
  EXPECT_EQ(calls.load(), 1) << "a batch was handed after the lease lapsed";
  view.hold_until(clock.now() + 10s);  // renewed
  clock.advance(1s);
  ASSERT_TRUE(eventually([&] { return calls.load() == 2; }));
  running.stop();
}

}  // namespace
