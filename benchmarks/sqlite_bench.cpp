// benchmarks/sqlite_bench.cpp (issue 5): the SQLite embedded default against raw SQLite doing the
// same work in the same binary, on the same disk.
//
// Rows: key "customer-NNNNN" (10,000 customers), payload "<order>,<cents>" (~12 bytes), 4 shards:
// what examples/order_ledger.cpp writes. Files live in a fresh directory under $TMPDIR (or /tmp).
//
//  put      sluice  sluice::sqlite::stream::put_many of B entries (one transaction each).
//           raw     one BEGIN IMMEDIATE .. COMMIT per B rows on a plain sqlite3 connection: the
//                   same rows (shard from sluice::key_hash, seq counted in memory, arrival now)
//                   inserted with one prepared statement into the same table (the stream's own
//                   schema). The floor: no shard counters, no notifications.
//           Both in WAL mode, at synchronous FULL (the default: one fsync per commit) and NORMAL.
//  consume  read    stream::read of every record, 1,024 per call and shard (as a poller reads).
//           run     sluice::run(from(stream) | batching(batch_size(1000)) | invoke(sum)): the whole
//                   data path on one thread, in-memory checkpoints.
//           raw     the same rows, 1,024 per SELECT (one read transaction each) and shard, into
//                   the same record type.
//  checkpoint       checkpoint_store::save per batch (one committed transaction each) at FULL and
//                   NORMAL, against a raw autocommit UPSERT of the same row. Then the cost per
//                   record for batches of 100 and 1,000, next to the consume cost.
// Paired measurements: each benchmark iteration runs sluice and its floor back to back, in
// alternating order, each timed on its own (wall clock: puts and saves wait for fsync, which costs
// no CPU time). The disk of a shared machine drifts by a factor of several within seconds; pairs
// see the same disk, so their ratio holds still where separate benchmarks would not. Counters:
// <side>_rec_s (records/s) or <side>_us (microseconds per save); ratio lines follow Google
// Benchmark's output (medians over repetitions, sluice/bench.hpp). The run takes about a minute.
#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sluice/bench.hpp"
#include "sluice/hash.hpp"
#include "sluice/sluice.hpp"
#include "sluice/sqlite/checkpoint_store.hpp"
#include "sluice/sqlite/stream.hpp"
#include "sqlite_scratch.hpp"

namespace {

using bench_support::check;
using bench_support::fresh_file;

namespace fs = std::filesystem;
using stream_t = sluice::sqlite::stream<std::string>;
using record_t = stream_t::record_type;
using entry = std::pair<std::string, std::string>;
using sync_mode = sluice::sqlite::synchronous_mode;

constexpr std::uint32_t kShards = 4;
constexpr std::size_t kConsumeRecords = 200'000;
constexpr std::size_t kReadChunk = 1024;

std::vector<entry> make_entries(std::size_t n, std::uint64_t first = 1) {
  std::vector<entry> out;
  out.reserve(n);
  for (std::uint64_t i = first; i < first + n; ++i) {
    const std::uint64_t h = sluice::detail::fmix64(i);
    char key[32];
    std::snprintf(key, sizeof key, "customer-%05u", static_cast<unsigned>(h % 10'000));
    out.emplace_back(
        key, std::to_string(i) + "," + std::to_string(static_cast<std::int64_t>(h >> 48) - 30'000));
  }
  return out;
}

sluice::sqlite::stream_options stream_options(sync_mode sync) {
  sluice::sqlite::stream_options o;
  o.name = "orders";
  o.shards = kShards;
  o.database.synchronous = sync;
  return o;
}

/// The benchmark argument `index` says synchronous FULL (1) or NORMAL (0).
sync_mode sync_of(const benchmark::State& state, int index) {
  return state.range(index) != 0 ? sync_mode::full : sync_mode::normal;
}

// ---- raw SQLite helpers -------------------------------------------------------------------------

struct raw_db {
  sqlite3* db = nullptr;
  explicit raw_db(const fs::path& file, sync_mode sync) {
    check(
        sqlite3_open_v2(file.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr),
        db, "open");
    exec("PRAGMA journal_mode=WAL");
    exec(sync == sync_mode::full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  }
  ~raw_db() { sqlite3_close_v2(db); }
  raw_db(const raw_db&) = delete;
  raw_db& operator=(const raw_db&) = delete;
  void exec(const std::string& sql) {
    check(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), db, sql.c_str());
  }
  sqlite3_stmt* prepare(std::string_view sql) {
    sqlite3_stmt* s = nullptr;
    check(sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                             SQLITE_PREPARE_PERSISTENT, &s, nullptr),
          db, "prepare");
    return s;
  }
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- paired timing ------------------------------------------------------------------------------

/// Wall-clock seconds spent in each of several alternatives, run back to back once per call, the
/// order rotating from call to call so that neither side always goes first.
template <std::size_t N>
class paired {
 public:
  template <class... F>
  void run(F&&... sides) {
    static_assert(sizeof...(F) == N);
    std::array<std::function<void()>, N> fs{std::forward<F>(sides)...};
    for (std::size_t k = 0; k < N; ++k) {
      const std::size_t i = (k + rotation_) % N;
      const auto t0 = std::chrono::steady_clock::now();
      fs[i]();
      seconds_[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    ++rotation_;
  }
  double seconds(std::size_t i) const { return seconds_[i]; }

 private:
  std::array<double, N> seconds_{};
  std::size_t rotation_ = 0;
};

// ---- put ----------------------------------------------------------------------------------------

/// The floor for put_many: the same rows into the same table, one transaction per batch.
class raw_writer {
 public:
  raw_writer(const fs::path& file, sync_mode sync) : raw_(file, sync) {
    raw_.exec(sluice::sqlite::detail::stream_schema);  // the very table the stream writes
    insert_ = raw_.prepare(sluice::sqlite::detail::insert_sql);
  }
  ~raw_writer() { sqlite3_finalize(insert_); }
  raw_writer(const raw_writer&) = delete;
  raw_writer& operator=(const raw_writer&) = delete;

  void put_many(const std::vector<entry>& entries) {
    raw_.exec("BEGIN IMMEDIATE");
    for (const auto& [key, payload] : entries) {
      const auto shard = sluice::shard_for(sluice::key_hash(key), kShards);
      sqlite3_bind_int64(insert_, 1, 1);
      sqlite3_bind_int64(insert_, 2, shard);
      sqlite3_bind_int64(insert_, 3, ++seq_[shard]);
      sqlite3_bind_int64(insert_, 4, now_ns());
      sqlite3_bind_text64(insert_, 5, key.data(), key.size(), SQLITE_STATIC, SQLITE_UTF8);
      sqlite3_bind_blob64(insert_, 6, payload.data(), payload.size(), SQLITE_STATIC);
      check(sqlite3_step(insert_), raw_.db, "insert");
      sqlite3_reset(insert_);
    }
    raw_.exec("COMMIT");
  }

 private:
  raw_db raw_;
  sqlite3_stmt* insert_ = nullptr;
  std::array<std::int64_t, kShards> seq_{};
};

// Args: {batch size, synchronous full (1) or normal (0)}.
void BM_put(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const sync_mode sync = sync_of(state, 1);
  paired<2> timing;
  {
    stream_t stream(fresh_file("put-sluice.db"), stream_options(sync));
    raw_writer raw(fresh_file("put-raw.db"), sync);
    const std::vector<entry> entries = make_entries(batch);
    for (auto _ : state) {
      timing.run([&] { stream.put_many(entries); }, [&] { raw.put_many(entries); });
    }
  }
  const auto records = static_cast<double>(state.iterations() * batch);
  state.counters["sluice_rec_s"] = records / timing.seconds(0);
  state.counters["raw_rec_s"] = records / timing.seconds(1);
}

// ---- consume ------------------------------------------------------------------------------------

/// A stream file with kConsumeRecords records, written once.
const fs::path& consume_file() {
  static const fs::path file = [] {
    const fs::path f = fresh_file("consume.db");
    stream_t stream(f, stream_options(sync_mode::normal));
    for (std::size_t done = 0; done < kConsumeRecords; done += 10'000) {
      stream.put_many(make_entries(10'000, done + 1));
    }
    return f;
  }();
  return file;
}

/// Every record through stream::read, kReadChunk per call and shard, as a poller reads.
std::size_t consume_read(stream_t& stream, std::int64_t& bytes) {
  std::size_t n = 0;
  for (sluice::shard_id_t shard = 0; shard < kShards; ++shard) {
    for (sluice::sequence_number_t after = 0;;) {
      const std::size_t got = stream.read(shard, after, kReadChunk, [&](const record_t& r) {
        bytes += static_cast<std::int64_t>(r.payload.size());
        after = r.sequence;
        return true;
      });
      n += got;
      if (got == 0) break;
    }
  }
  return n;
}

/// Every record through a whole mapping on the calling thread. Checkpoints in memory, fresh each
/// time (the raw baseline keeps none; without the option a SQLite stream keeps its own, and a
/// second pass would resume at the end).
std::size_t consume_run(stream_t& stream, std::int64_t& bytes) {
  std::size_t n = 0;
  sluice::memory_checkpoint_store checkpoints;
  sluice::run(sluice::from(stream) | sluice::batching(sluice::batch_size(1000)) |
                  sluice::invoke([&](const sluice::batch<record_t>& b) {
                    for (const record_t& r : b)
                      bytes += static_cast<std::int64_t>(r.payload.size());
                    n += b.size();
                  }),
              sluice::checkpoints(checkpoints));
  return n;
}

/// The floor: the same rows, kReadChunk per SELECT and shard, into the same record type.
class raw_reader {
 public:
  raw_reader() : raw_(consume_file(), sync_mode::normal) {
    select_ = raw_.prepare(
        "SELECT seq, arrival_ns, partition_key, payload FROM sluice_records "
        "WHERE stream_id = 1 AND shard = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
  }
  ~raw_reader() { sqlite3_finalize(select_); }
  raw_reader(const raw_reader&) = delete;
  raw_reader& operator=(const raw_reader&) = delete;

  std::size_t consume(std::int64_t& bytes) {
    std::size_t n = 0;
    for (std::int64_t shard = 0; shard < kShards; ++shard) {
      for (std::int64_t after = 0;;) {
        sqlite3_bind_int64(select_, 1, shard);
        sqlite3_bind_int64(select_, 2, after);
        sqlite3_bind_int64(select_, 3, kReadChunk);
        std::size_t got = 0;
        while (sqlite3_step(select_) == SQLITE_ROW) {
          const auto* key = reinterpret_cast<const char*>(sqlite3_column_text(select_, 2));
          const auto* payload = static_cast<const char*>(sqlite3_column_blob(select_, 3));
          const record_t r{
              std::string(key, static_cast<std::size_t>(sqlite3_column_bytes(select_, 2))),
              static_cast<sluice::sequence_number_t>(sqlite3_column_int64(select_, 0)),
              sluice::time_point(std::chrono::duration_cast<sluice::duration>(
                  std::chrono::nanoseconds(sqlite3_column_int64(select_, 1)))),
              std::string(payload, static_cast<std::size_t>(sqlite3_column_bytes(select_, 3)))};
          bytes += static_cast<std::int64_t>(r.payload.size());
          after = static_cast<std::int64_t>(r.sequence);
          ++got;
        }
        sqlite3_reset(select_);
        n += got;
        if (got == 0) break;
      }
    }
    return n;
  }

 private:
  raw_db raw_;
  sqlite3_stmt* select_ = nullptr;
};

void BM_consume(benchmark::State& state) {
  stream_t stream(consume_file(), stream_options(sync_mode::normal));
  raw_reader raw;
  paired<3> timing;
  std::int64_t bytes = 0;
  std::array<std::size_t, 3> n{};
  for (auto _ : state) {
    timing.run([&] { n[0] = consume_read(stream, bytes); },
               [&] { n[1] = consume_run(stream, bytes); }, [&] { n[2] = raw.consume(bytes); });
    if (n != std::array<std::size_t, 3>{kConsumeRecords, kConsumeRecords, kConsumeRecords}) {
      state.SkipWithError("wrong record count");
      break;
    }
  }
  benchmark::DoNotOptimize(bytes);
  const auto records = static_cast<double>(state.iterations() * kConsumeRecords);
  state.counters["read_rec_s"] = records / timing.seconds(0);
  state.counters["run_rec_s"] = records / timing.seconds(1);
  state.counters["raw_rec_s"] = records / timing.seconds(2);
}

// ---- checkpoint commits -------------------------------------------------------------------------

// Arg: synchronous full (1) or normal (0).
void BM_checkpoint(benchmark::State& state) {
  const sync_mode sync = sync_of(state, 0);
  paired<2> timing;
  {
    sluice::sqlite::open_options o;
    o.synchronous = sync;
    sluice::sqlite::checkpoint_store store(fresh_file("checkpoints-sluice.db"), o);
    raw_db raw(fresh_file("checkpoints-raw.db"), sync);
    raw.exec(sluice::sqlite::detail::checkpoint_schema);
    sqlite3_stmt* upsert = raw.prepare(sluice::sqlite::detail::save_checkpoint_sql);
    std::int64_t seq = 0;
    for (auto _ : state) {
      ++seq;
      timing.run(
          [&] {
            store.save("order-ledger", static_cast<sluice::shard_id_t>(seq % kShards),
                       static_cast<sluice::sequence_number_t>(seq));
          },
          [&] {
            sqlite3_bind_text(upsert, 1, "order-ledger", -1, SQLITE_STATIC);
            sqlite3_bind_int64(upsert, 2, seq % kShards);
            sqlite3_bind_int64(upsert, 3, seq);
            check(sqlite3_step(upsert), raw.db, "upsert");
            sqlite3_reset(upsert);
          });
    }
    sqlite3_finalize(upsert);
  }
  const auto saves = static_cast<double>(state.iterations());
  state.counters["sluice_us"] = timing.seconds(0) / saves * 1e6;
  state.counters["raw_us"] = timing.seconds(1) / saves * 1e6;
}

BENCHMARK(BM_put)
    ->ArgsProduct({{100, 1000}, {1, 0}})
    ->ArgNames({"batch", "full"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_consume)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_checkpoint)
    ->Arg(1)
    ->Arg(0)
    ->ArgName("full")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  (void)consume_file();  // written before any timing
  sluice::bench::collecting_reporter reporter;
  const bool ran =
      sluice::bench::run_benchmarks(argc, argv, reporter, {"--benchmark_min_time=0.5"});
  std::error_code ec;
  fs::remove_all(bench_support::scratch_dir(), ec);
  if (!ran) return 1;

  // UseRealTime() adds "/real_time" to every name.
  auto counter = [&](const std::string& name, const std::string& c) {
    return reporter.get(name + "/real_time").counter(c);
  };
  std::printf("\n== SQLite stream vs raw SQLite (medians of paired runs) ==\n");
  std::printf("%-38s %12s %12s %8s\n", "records/s", "sluice", "raw", "ratio");
  for (int full : {1, 0}) {
    for (int batch : {100, 1000}) {
      const std::string name =
          "BM_put/batch:" + std::to_string(batch) + "/full:" + std::to_string(full);
      const double s = counter(name, "sluice_rec_s"), r = counter(name, "raw_rec_s");
      std::printf("put_many, %4d per transaction, %-6s %12.0f %12.0f %8.3f\n", batch,
                  full ? "FULL" : "NORMAL", s, r, r > 0 ? s / r : 0);
    }
  }
  const double read = counter("BM_consume", "read_rec_s"), run = counter("BM_consume", "run_rec_s"),
               raw = counter("BM_consume", "raw_rec_s");
  std::printf("%-38s %12.0f %12.0f %8.3f\n", "consume: stream::read", read, raw,
              raw > 0 ? read / raw : 0);
  std::printf("%-38s %12.0f %12.0f %8.3f\n", "consume: sluice::run (batch 1000)", run, raw,
              raw > 0 ? run / raw : 0);

  std::printf("\n== checkpoint commit (checkpoint_store::save = one transaction) ==\n");
  std::array<double, 2> save_us{};
  for (int full : {1, 0}) {
    const std::string name = "BM_checkpoint/full:" + std::to_string(full);
    const double s = counter(name, "sluice_us"), r = counter(name, "raw_us");
    save_us[static_cast<std::size_t>(full)] = s;
    std::printf("%-8s sluice %8.1f us per save   raw upsert %8.1f us   ratio %.3f\n",
                full ? "FULL" : "NORMAL", s, r, r > 0 ? s / r : 0);
  }
  const double run_us = run > 0 ? 1e6 / run : 0;
  for (int batch : {100, 1000}) {
    for (int full : {1, 0}) {
      const double per_record = save_us[static_cast<std::size_t>(full)] / batch;
      std::printf(
          "one save per batch of %4d, %-6s: +%.3f us per record (%.0f %% of sluice::run's "
          "%.3f us per record)\n",
          batch, full ? "FULL" : "NORMAL", per_record, run_us > 0 ? per_record / run_us * 100 : 0,
          run_us);
    }
  }

  std::printf("\n");
  for (int full : {1, 0}) {
    for (int batch : {100, 1000}) {
      const std::string name =
          "BM_put/batch:" + std::to_string(batch) + "/full:" + std::to_string(full);
      const std::string label =
          "put sluice/raw (" + std::to_string(batch) + "/tx, " + (full ? "FULL" : "NORMAL") + ")";
      sluice::bench::print_ratio(label.c_str(), counter(name, "sluice_rec_s"),
                                 counter(name, "raw_rec_s"));
    }
  }
  sluice::bench::print_ratio("consume read/raw", read, raw);
  sluice::bench::print_ratio("consume run/raw (batch 1000)", run, raw);
  sluice::bench::print_ratio("checkpoint save time sluice/raw (FULL)",
                             counter("BM_checkpoint/full:1", "sluice_us"),
                             counter("BM_checkpoint/full:1", "raw_us"));
  sluice::bench::print_ratio("checkpoint save time sluice/raw (NORMAL)",
                             counter("BM_checkpoint/full:0", "sluice_us"),
                             counter("BM_checkpoint/full:0", "raw_us"));
  sluice::bench::print_ratio("checkpoint save time FULL/NORMAL", save_us[1], save_us[0]);
  return 0;
}
