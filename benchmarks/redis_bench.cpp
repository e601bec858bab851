// benchmarks/redis_bench.cpp (issue 10): the Redis stream against hand-written hiredis loops in
// the same binary, on one private redis-server (127.0.0.1, a free port, --save '', no AOF) that
// the binary starts and kills.
//
//  read     sluice   redis::stream::read of every record of 4 shards, 1,000 per call (as a poller
//                    reads), into sluice::record<std::string>.
//           hiredis  XREAD COUNT 1000 STREAMS <shard> <last id> in a loop per shard, parsing the
//                    same fields into the same record type. Target: sluice >= 0.8x.
//  put      sluice   redis::stream::put_many of 1,000 entries (one pipeline of Lua calls: number,
//                    arrival, XADD, publish).
//           hiredis  a pipeline of 1,000 XADD * with the same fields (no gap-free numbering, no
//                    arrival clamp, no notification): the floor.
//  cluster  sluice   the same read on a private 3-master Redis Cluster (connection_options::
//                    cluster_nodes: slot map, routing by key slot).
//           hiredis  the same XREAD loop on single-server connections opened by hand to the node
//                    that holds each shard (no routing at all). Target: sluice >= 0.8x.
// Then, outside Google Benchmark (processes, real time):
//  end to end   records/s of 1, 2 and 4 worker processes (fork) running sluice::lease_worker
//               over 16 shards and 1,000,000 records put beforehand, until every checkpoint reached
//               the end; ratios 2/1 and 4/1 (this machine has 2 cores).
//  takeover     a worker holding all 16 leases is SIGKILLed; the time until a second worker holds
//               all 16 (target: lease duration + one renewal period).
// SLUICE_REDIS_BENCH_NO_PROCESSES=1 skips the two process measures.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/bench.hpp"
#include "sluice/leases.hpp"
#include "sluice/redis/leases.hpp"
#include "sluice/redis/stream.hpp"
#include "sluice/sluice.hpp"
#include "support/redis_cluster.hpp"
#include "support/redis_server.hpp"

namespace {

using stream_t = sluice::redis::stream<std::string>;
using record_t = stream_t::record_type;
using namespace std::chrono_literals;

constexpr std::uint32_t kShards = 4;
constexpr std::size_t kRecords = 100'000;
constexpr std::size_t kChunk = 1000;

sluice_test::redis_server& server() {
  static sluice_test::redis_server s;
  return s;
}

sluice::redis::stream_options options(const std::string& name, std::uint32_t shards) {
  sluice::redis::stream_options o;
  o.name = name;
  o.shards = shards;
  o.connection = server().tcp();
  return o;
}

std::vector<std::pair<std::string, std::string>> entries(std::size_t n, std::size_t from = 0) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(n);
  for (std::size_t i = from; i < from + n; ++i)
    out.emplace_back("customer-" + std::to_string(i % 10'000), "order-" + std::to_string(i));
  return out;
}

stream_t& read_stream() {
  static stream_t s = [] {
    stream_t st(options("read", kShards));
    for (std::size_t i = 0; i < kRecords; i += kChunk) st.put_many(entries(kChunk, i));
    return stream_t(options("read", kShards));
  }();
  return s;
}

/// Reads every shard of s from the start, in chunks of kChunk, once per iteration.
void read_every_shard(benchmark::State& state, stream_t& s) {
  std::size_t n = 0;
  for (auto _ : state) {
    std::uint64_t bytes = 0;
    for (sluice::shard_id_t shard = 0; shard < kShards; ++shard) {
      sluice::sequence_number_t after = 0;
      while (true) {
        const std::size_t got = s.read(shard, after, kChunk, [&](const record_t& r) {
          after = r.sequence;
          bytes += r.payload.size();
          return true;
        });
        n += got;
        if (got < kChunk) break;
      }
    }
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
}

void BM_read_sluice(benchmark::State& state) { read_every_shard(state, read_stream()); }

/// The baseline: XREAD on each shard's key by hand (connection_of(shard) serves it), decoding
/// each entry into a record as the stream does, once per iteration.
template <class ConnectionOf>
void read_every_shard_by_hand(benchmark::State& state, ConnectionOf connection_of) {
  std::size_t n = 0;
  for (auto _ : state) {
    std::uint64_t bytes = 0;
    for (sluice::shard_id_t shard = 0; shard < kShards; ++shard) {
      const std::string key = "sluice:{read:" + std::to_string(shard) + "}:entries";
      std::string last = "0-0";
      while (true) {
        const auto r =
            connection_of(shard).command({"XREAD", "COUNT", "1000", "STREAMS", key, last});
        if (r.is_nil()) break;
        const redisReply* entries = r->element[0]->element[1];
        for (std::size_t i = 0; i < entries->elements; ++i) {
          const redisReply* e = entries->element[i];
          const redisReply* f = e->element[1];
          const std::string_view id = sluice::redis::text(e->element[0]);
          record_t rec{
              std::string(sluice::redis::text(f->element[1])),
              sluice::redis::detail::parse_number<std::uint64_t>(id.substr(0, id.find('-'))),
              sluice::redis::detail::from_ns(sluice::redis::detail::parse_number<std::int64_t>(
                  sluice::redis::text(f->element[5]))),
              std::string(sluice::redis::text(f->element[3]))};
          bytes += rec.payload.size();
          last = std::string(id);
        }
        n += entries->elements;
        if (entries->elements < kChunk) break;
      }
    }
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
}

void BM_read_hiredis(benchmark::State& state) {
  read_stream();
  sluice::redis::connection c(server().tcp());
  read_every_shard_by_hand(state,
                           [&](sluice::shard_id_t) -> sluice::redis::connection& { return c; });
}

sluice_test::redis_cluster& cluster() {
  static sluice_test::redis_cluster c(3);
  return c;
}

stream_t& cluster_read_stream() {
  static stream_t s = [] {
    auto o = options("read", kShards);
    o.connection = cluster().options();
    stream_t st(o);
    for (std::size_t i = 0; i < kRecords; i += kChunk) st.put_many(entries(kChunk, i));
    return stream_t(o);
  }();
  return s;
}

void BM_read_sluice_cluster(benchmark::State& state) {
  read_every_shard(state, cluster_read_stream());
}

void BM_read_hiredis_cluster(benchmark::State& state) {
  cluster_read_stream();
  std::vector<std::unique_ptr<sluice::redis::connection>> by_shard;  // each to its shard's node
  for (sluice::shard_id_t shard = 0; shard < kShards; ++shard) {
    const std::string key = "sluice:{read:" + std::to_string(shard) + "}:entries";
    sluice::redis::connection_options o;
    o.port = cluster().node(static_cast<std::size_t>(cluster().holder(key))).port();
    by_shard.push_back(std::make_unique<sluice::redis::connection>(o));
  }
  read_every_shard_by_hand(state, [&](sluice::shard_id_t shard) -> sluice::redis::connection& {
    return *by_shard[shard];
  });
}

void BM_put_sluice(benchmark::State& state) {
  stream_t s(options("put-sluice", kShards));
  const auto batch = entries(kChunk);
  for (auto _ : state) s.put_many(batch);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kChunk));
}

void BM_put_hiredis(benchmark::State& state) {
  sluice::redis::connection c(server().tcp());
  const auto batch = entries(kChunk);
  std::vector<std::vector<std::string>> cmds;
  for (const auto& [k, p] : batch) {
    const auto shard = sluice::shard_for(sluice::key_hash(k), kShards);
    cmds.push_back({"XADD", "raw:{" + std::to_string(shard) + "}", "*", "k", k, "p", p, "t",
                    "1700000000000000000"});
  }
  for (auto _ : state) c.pipeline(cmds);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kChunk));
}

BENCHMARK(BM_read_sluice)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_read_hiredis)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_put_sluice)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_read_sluice_cluster)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_read_hiredis_cluster)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_put_hiredis)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- processes ----------------------------------------------------------------------------------

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// A forked worker: a lease_worker over `stream` (mapping named as the stream) until SIGTERM.
pid_t fork_worker(const std::string& stream_name, std::uint32_t shards, const std::string& id,
                  std::chrono::milliseconds lease, std::chrono::milliseconds renew) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  {
    stream_t s(options(stream_name, shards));
    sluice::redis::lease_store leases(server().tcp());
    sluice::lease_options o;
    o.worker_id = id;
    o.lease_duration = lease;
    o.renew_interval = renew;
    std::atomic<std::uint64_t> sum{0};
    auto factory = [&](sluice::shard_view<stream_t>& view) {
      return sluice::from(view) | sluice::batching(sluice::batch_size(500)) |
             sluice::invoke([&](const sluice::batch<record_t>& b) {
               sum.fetch_add(b.size(), std::memory_order_relaxed);
             });
    };
    sluice::lease_worker w(leases, s, stream_name, o, factory, sluice::system_clock::instance(),
                           sluice::workers(1));
    w.start();
    int sig = 0;
    sigwait(&stop, &sig);
    w.stop();
  }
  _exit(0);
}

bool all_checkpointed(sluice::redis::lease_store& leases, stream_t& s) {
  for (sluice::shard_id_t shard = 0; shard < s.shard_count(); ++shard)
    if (leases.load(s.name(), shard).value_or(0) < s.last_sequence(shard)) return false;
  return true;
}

void end_to_end() {
  std::printf("\nend to end: 1,000,000 records, 16 shards, N worker processes (lease_worker)\n");
  double rate[5] = {};
  for (int n : {1, 2, 4}) {
    const std::string name = "e2e-" + std::to_string(n);
    stream_t s(options(name, 16));
    for (std::size_t i = 0; i < 1'000'000; i += kChunk) s.put_many(entries(kChunk, i));
    sluice::redis::lease_store leases(server().tcp());
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<pid_t> pids;
    for (int i = 0; i < n; ++i)
      pids.push_back(fork_worker(name, 16, "w" + std::to_string(i), 2000ms, 500ms));
    while (!all_checkpointed(leases, s)) std::this_thread::sleep_for(5ms);
    const double secs = seconds_since(t0);
    for (pid_t p : pids) kill(p, SIGTERM);
    for (pid_t p : pids) waitpid(p, nullptr, 0);
    rate[n] = 1'000'000 / secs;
    std::printf("  %d worker(s): %.0f records/s (%.2f s, including start-up and lease taking)\n", n,
                rate[n], secs);
  }
  sluice::bench::print_ratio("end to end 2 workers / 1 worker", rate[2], rate[1]);
  sluice::bench::print_ratio("end to end 4 workers / 1 worker", rate[4], rate[1]);
}

void takeover() {
  const auto lease = 2000ms, renew = 500ms;
  stream_t s(options("takeover", 16));
  sluice::redis::lease_store leases(server().tcp());
  auto held_by = [&](const std::string& id) {
    int n = 0;
    for (const auto& l : leases.leases("takeover", 16)) n += l.owner == id ? 1 : 0;
    return n;
  };
  const pid_t a = fork_worker("takeover", 16, "a", lease, renew);
  while (held_by("a") < 16) std::this_thread::sleep_for(5ms);
  const pid_t b = fork_worker("takeover", 16, "b", lease, renew);
  std::this_thread::sleep_for(200ms);  // b is up (and may have balanced one lease over)
  kill(a, SIGKILL);
  const auto t0 = std::chrono::steady_clock::now();
  waitpid(a, nullptr, 0);
  while (held_by("b") < 16) std::this_thread::sleep_for(2ms);
  const double ms = seconds_since(t0) * 1000;
  kill(b, SIGTERM);
  waitpid(b, nullptr, 0);
  std::printf("\nlease takeover after SIGKILL (lease %lld ms, renew %lld ms): %.0f ms\n",
              static_cast<long long>(lease.count()), static_cast<long long>(renew.count()), ms);
  sluice::bench::print_ratio("takeover time / (lease + renew)", ms,
                             static_cast<double>((lease + renew).count()), 1.0, false);
}

}  // namespace

int main(int argc, char** argv) {
  server();   // started before any thread, so fork() is safe later
  cluster();  // likewise
  sluice::bench::compare("redis stream read / hiredis XREAD loop", "BM_read_sluice/real_time",
                         "BM_read_hiredis/real_time", 0.8);
  sluice::bench::compare("redis stream put_many / pipelined XADD", "BM_put_sluice/real_time",
                         "BM_put_hiredis/real_time");
  sluice::bench::compare("cluster: redis stream read / XREAD on each shard's node",
                         "BM_read_sluice_cluster/real_time", "BM_read_hiredis_cluster/real_time",
                         0.8);
  const int rc = sluice::bench::main(argc, argv);
  if (std::getenv("SLUICE_REDIS_BENCH_NO_PROCESSES") == nullptr) {
    end_to_end();
    takeover();
  }
  return rc;
}
