// benchmarks/queue_bench.cpp (issue 12): the queues against their floors, in one binary.
//
//  BM_sqlite_queue   sluice::sqlite::queue: N messages sent with send_batch (10 per transaction),
//                    then received 10 at a time (receive: one transaction) and deleted 10 at a
//                    time (delete_messages: one transaction), until the queue is empty.
//           raw      the same work with raw SQLite statements on a plain connection, in the same
//                    table layout (sluice's schema): per 10 messages one transaction that bumps
//                    the queue's counter and inserts 10 rows (an id formatted per message); per
//                    receive one transaction that selects the first 10 visible rows in order and
//                    marks each in flight; per delete one transaction that deletes the 10 rows by
//                    (seq, receive). No retention, no redrive, no attributes decoding.
//                    Both WAL, synchronous NORMAL (FULL would time the disk's fsync, 3 per 10
//                    messages, not the queue).
//  BM_memory_queue   sluice::memory_queue: the same send / receive / delete cycle in memory.
//           floor    moodycamel::ConcurrentQueue<std::string>: enqueue_bulk of 10, then
//                    try_dequeue_bulk of 10 (a lock-free queue has no visibility, receipts or
//                    deletion: the floor of moving a message through a queue).
//  BM_memory_run     sluice::run(from(memory_queue) | batching(batch_size(10)) | invoke(sum)):
//                    the whole mapping data path, against a moodycamel try_dequeue_bulk loop
//                    calling the same handler on batches of 10.
// Paired measurements: each iteration runs sluice and its floor back to back, alternating the
// order, each timed on its own (wall clock). Counters: <side>_msg_s (messages per second);
// ratio lines after Google Benchmark's output (medians over repetitions, sluice/bench.hpp).
#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/bench.hpp"
#include "sluice/sluice.hpp"
#include "sluice/sources/memory_queue.hpp"
#include "sluice/sqlite/queue.hpp"
#include "sqlite_scratch.hpp"

namespace {

using bench_support::check;
using bench_support::fresh_file;

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;
constexpr std::size_t kSqliteMessages = 20'000;
constexpr std::size_t kMemoryMessages = 200'000;
constexpr std::size_t kBatch = 10;

std::string body_of(std::size_t i) { return "job-" + std::to_string(i) + "-payload-0123456789"; }

double seconds_of(const std::function<void()>& f) {
  const auto t0 = steady::now();
  f();
  return std::chrono::duration<double>(steady::now() - t0).count();
}

// ---- SQLite ------------------------------------------------------------------------------------

void sluice_sqlite_cycle(const fs::path& file) {
  sluice::queue_options o;
  o.name = "jobs";
  sluice::sqlite::queue_file_options f;
  f.database.synchronous = sluice::sqlite::synchronous_mode::normal;
  sluice::sqlite::queue q(file, o, f);
  std::vector<sluice::send_entry> entries;
  for (std::size_t i = 0; i < kSqliteMessages; i += kBatch) {
    entries.clear();
    for (std::size_t j = i; j < i + kBatch; ++j) entries.push_back({body_of(j), {}});
    q.send_batch(entries);
  }
  std::vector<sluice::queue_message> got;
  std::vector<sluice::receipt_handle> receipts;
  std::size_t done = 0;
  while (true) {
    got.clear();
    receipts.clear();
    if (q.receive(got, kBatch) == 0) break;
    for (const auto& m : got) receipts.push_back(m.receipt);
    done += q.delete_messages(receipts);
  }
  if (done != kSqliteMessages) throw std::runtime_error("sluice side lost messages");
}

void raw_sqlite_cycle(const fs::path& file) {
  sqlite3* db = nullptr;
  check(sqlite3_open_v2(file.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr),
        db, "open");
  auto exec = [&](const char* sql) {
    check(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), db, sql);
  };
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");
  exec(sluice::sqlite::detail::queue_schema.c_str());
  exec("INSERT INTO sluice_queues(name, fifo) VALUES('jobs', 0)");
  auto prepare = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    check(sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr), db, sql);
    return s;
  };
  sqlite3_stmt* bump = prepare(
      "UPDATE sluice_queues SET last_seq = last_seq + 1 WHERE queue_id = 1 "
      "RETURNING last_seq");
  sqlite3_stmt* ins = prepare(
      "INSERT INTO sluice_queue_messages(queue_id, seq, message_id, body, attributes, group_id, "
      "dedup_id, sent_ns, visible_ns) VALUES(1, ?1, ?2, ?3, x'', '', '', ?4, ?4)");
  sqlite3_stmt* sel = prepare(
      "SELECT seq, message_id, body, receive FROM sluice_queue_messages WHERE queue_id = 1 AND "
      "visible_ns <= ?1 ORDER BY seq LIMIT 10");
  sqlite3_stmt* upd = prepare(
      "UPDATE sluice_queue_messages SET receive_count = receive_count + 1, receive = receive + 1, "
      "in_flight = 1, visible_ns = ?2 WHERE queue_id = 1 AND seq = ?1");
  sqlite3_stmt* del =
      prepare("DELETE FROM sluice_queue_messages WHERE queue_id = 1 AND seq = ?1 AND receive = ?2");
  auto now_ns = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  char id[40];
  for (std::size_t i = 0; i < kSqliteMessages; i += kBatch) {
    exec("BEGIN IMMEDIATE");
    const std::int64_t t = now_ns();
    for (std::size_t j = i; j < i + kBatch; ++j) {
      check(sqlite3_step(bump), db, "bump");
      const std::int64_t seq = sqlite3_column_int64(bump, 0);
      sqlite3_reset(bump);
      std::snprintf(id, sizeof id, "%08llx-0000-4000-8000-%012llx",
                    static_cast<unsigned long long>(seq), static_cast<unsigned long long>(j));
      const std::string body = body_of(j);
      sqlite3_bind_int64(ins, 1, seq);
      sqlite3_bind_text(ins, 2, id, 36, SQLITE_STATIC);
      sqlite3_bind_blob(ins, 3, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
      sqlite3_bind_int64(ins, 4, t);
      check(sqlite3_step(ins), db, "insert");
      sqlite3_reset(ins);
    }
    exec("COMMIT");
  }
  struct row {
    std::int64_t seq, receive;
    std::string id, body;
  };
  std::vector<row> rows;
  std::size_t done = 0;
  while (true) {
    rows.clear();
    exec("BEGIN IMMEDIATE");
    const std::int64_t t = now_ns();
    sqlite3_bind_int64(sel, 1, t);
    while (sqlite3_step(sel) == SQLITE_ROW) {
      rows.push_back({sqlite3_column_int64(sel, 0), sqlite3_column_int64(sel, 3) + 1,
                      reinterpret_cast<const char*>(sqlite3_column_text(sel, 1)),
                      std::string(static_cast<const char*>(sqlite3_column_blob(sel, 2)),
                                  static_cast<std::size_t>(sqlite3_column_bytes(sel, 2)))});
    }
    sqlite3_reset(sel);
    for (const row& r : rows) {
      sqlite3_bind_int64(upd, 1, r.seq);
      sqlite3_bind_int64(upd, 2, t + 30'000'000'000);
      check(sqlite3_step(upd), db, "update");
      sqlite3_reset(upd);
    }
    exec("COMMIT");
    if (rows.empty()) break;
    exec("BEGIN IMMEDIATE");
    for (const row& r : rows) {
      sqlite3_bind_int64(del, 1, r.seq);
      sqlite3_bind_int64(del, 2, r.receive);
      check(sqlite3_step(del), db, "delete");
      done += static_cast<std::size_t>(sqlite3_changes(db));
      sqlite3_reset(del);
    }
    exec("COMMIT");
  }
  for (sqlite3_stmt* s : {bump, ins, sel, upd, del}) sqlite3_finalize(s);
  sqlite3_close_v2(db);
  if (done != kSqliteMessages) throw std::runtime_error("raw side lost messages");
}

void BM_sqlite_queue(benchmark::State& state) {
  double sluice_s = 0, raw_s = 0;
  bool sluice_first = true;
  for (auto _ : state) {
    const auto a = fresh_file("sluice.db"), b = fresh_file("raw.db");
    auto run_sluice = [&] { sluice_s += seconds_of([&] { sluice_sqlite_cycle(a); }); };
    auto run_raw = [&] { raw_s += seconds_of([&] { raw_sqlite_cycle(b); }); };
    if (sluice_first) {
      run_sluice();
      run_raw();
    } else {
      run_raw();
      run_sluice();
    }
    sluice_first = !sluice_first;
  }
  const double n = static_cast<double>(state.iterations() * kSqliteMessages);
  state.counters["sluice_msg_s"] = n / sluice_s;
  state.counters["raw_msg_s"] = n / raw_s;
}
BENCHMARK(BM_sqlite_queue)->UseRealTime()->Unit(benchmark::kMillisecond);

// ---- memory ------------------------------------------------------------------------------------

void sluice_memory_cycle(const std::vector<std::string>& bodies) {
  sluice::memory_queue q;
  std::vector<sluice::send_entry> entries;
  for (std::size_t i = 0; i < bodies.size(); i += kBatch) {
    entries.clear();
    for (std::size_t j = i; j < i + kBatch; ++j) entries.push_back({bodies[j], {}});
    q.send_batch(std::move(entries));
  }
  std::vector<sluice::queue_message> got;
  std::vector<sluice::receipt_handle> receipts;
  std::size_t done = 0;
  while (true) {
    got.clear();
    receipts.clear();
    if (q.receive(got, kBatch) == 0) break;
    for (const auto& m : got) receipts.push_back(m.receipt);
    done += q.delete_messages(receipts);
  }
  if (done != bodies.size()) throw std::runtime_error("sluice side lost messages");
}

void moodycamel_cycle(const std::vector<std::string>& bodies) {
  moodycamel::ConcurrentQueue<std::string> q;
  std::string batch[kBatch];
  for (std::size_t i = 0; i < bodies.size(); i += kBatch) {
    for (std::size_t j = 0; j < kBatch; ++j) batch[j] = bodies[i + j];
    q.enqueue_bulk(std::make_move_iterator(batch), kBatch);
  }
  std::size_t done = 0;
  std::size_t bytes = 0;
  while (true) {
    const std::size_t n = q.try_dequeue_bulk(batch, kBatch);
    if (n == 0) break;
    for (std::size_t j = 0; j < n; ++j) bytes += batch[j].size();
    done += n;
  }
  benchmark::DoNotOptimize(bytes);
  if (done != bodies.size()) throw std::runtime_error("floor lost messages");
}

const std::vector<std::string>& memory_bodies() {
  static const std::vector<std::string> b = [] {
    std::vector<std::string> v;
    for (std::size_t i = 0; i < kMemoryMessages; ++i) v.push_back(body_of(i));
    return v;
  }();
  return b;
}

template <class Sluice, class Floor>
void paired(benchmark::State& state, Sluice&& s, Floor&& f, std::size_t messages) {
  double sluice_s = 0, floor_s = 0;
  bool sluice_first = true;
  for (auto _ : state) {
    if (sluice_first) {
      sluice_s += seconds_of(s);
      floor_s += seconds_of(f);
    } else {
      floor_s += seconds_of(f);
      sluice_s += seconds_of(s);
    }
    sluice_first = !sluice_first;
  }
  const double n = static_cast<double>(state.iterations() * messages);
  state.counters["sluice_msg_s"] = n / sluice_s;
  state.counters["raw_msg_s"] = n / floor_s;
}

void BM_memory_queue(benchmark::State& state) {
  const auto& bodies = memory_bodies();
  paired(
      state, [&] { sluice_memory_cycle(bodies); }, [&] { moodycamel_cycle(bodies); },
      bodies.size());
}
BENCHMARK(BM_memory_queue)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_memory_run(benchmark::State& state) {
  const auto& bodies = memory_bodies();
  std::size_t sum = 0;
  auto handler = [&sum](const sluice::batch<sluice::queue_message>& b) {
    for (const auto& m : b) sum += m.body().size();
  };
  auto sluice_side = [&] {
    sluice::memory_queue q;
    std::vector<sluice::send_entry> entries;
    for (std::size_t i = 0; i < bodies.size(); i += kBatch) {
      entries.clear();
      for (std::size_t j = i; j < i + kBatch; ++j) entries.push_back({bodies[j], {}});
      q.send_batch(std::move(entries));
    }
    sluice::run(sluice::from(q) | sluice::batching(sluice::batch_size(kBatch)) |
                sluice::invoke(handler));
  };
  auto floor_side = [&] {
    moodycamel::ConcurrentQueue<std::string> q;
    std::string batch[kBatch];
    for (std::size_t i = 0; i < bodies.size(); i += kBatch) {
      for (std::size_t j = 0; j < kBatch; ++j) batch[j] = bodies[i + j];
      q.enqueue_bulk(std::make_move_iterator(batch), kBatch);
    }
    std::vector<sluice::queue_message> msgs(kBatch);
    while (true) {
      const std::size_t n = q.try_dequeue_bulk(batch, kBatch);
      if (n == 0) break;
      for (std::size_t j = 0; j < n; ++j) msgs[j].payload = std::move(batch[j]);
      handler(sluice::batch<sluice::queue_message>(std::span(msgs.data(), n), 0));
    }
  };
  paired(state, sluice_side, floor_side, bodies.size());
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_memory_run)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  sluice::bench::collecting_reporter reporter;
  const bool ran =
      sluice::bench::run_benchmarks(argc, argv, reporter, {"--benchmark_min_time=0.5"});
  std::error_code ec;
  fs::remove_all(bench_support::scratch_dir(), ec);
  if (!ran) return 1;
  auto counter = [&](const std::string& name, const std::string& c) {
    return reporter.get(name + "/real_time").counter(c);
  };
  std::printf("\n== queues vs their floors (medians of paired runs, messages/s) ==\n");
  const double s = counter("BM_sqlite_queue", "sluice_msg_s"),
               r = counter("BM_sqlite_queue", "raw_msg_s");
  sluice::bench::print_ratio("sqlite::queue send/receive/delete / raw SQLite", s, r, 0.8);
  const double ms = counter("BM_memory_queue", "sluice_msg_s"),
               mf = counter("BM_memory_queue", "raw_msg_s");
  sluice::bench::print_ratio("memory_queue send/receive/delete / moodycamel floor", ms, mf);
  const double rs = counter("BM_memory_run", "sluice_msg_s"),
               rf = counter("BM_memory_run", "raw_msg_s");
  sluice::bench::print_ratio("sluice::run(memory_queue) / moodycamel + handler", rs, rf);
  std::printf(
      "sqlite::queue %.0f msg/s, raw %.0f; memory_queue %.0f, moodycamel %.0f; "
      "run %.0f, moodycamel+handler %.0f\n",
      s, r, ms, mf, rs, rf);
  return 0;
}
