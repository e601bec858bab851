// order_ledger: the main sluice example. An order ledger on the embedded default (SQLite).
//
//   4 producers --put_many--> orders stream --mapping--> ledger: balances + journal
//                             (4 shards)             \--> dead letters: orders it cannot apply
//
// Four producer threads write orders into a durable sharded stream, keyed by customer. A mapping
// reads it with Lambda's event source mapping semantics: a filter drops zero-amount orders,
// batches go to one handler call per lane (4 lanes per shard, so up to 16 batches in flight), and
// the handler posts each batch to the customers' balances in ONE SQLite transaction. Orders of one
// customer are always handed over in stream order. Malformed orders are reported as failed items;
// the mapping retries, bisects and finally sends them to the dead-letter destination. Checkpoints
// are stored, so a second run resumes where the first one stopped, even after `kill -9`.
//
// Delivery is at least once: after a crash, orders finished past the last stored checkpoint are
// handed over again. The ledger makes that harmless by being idempotent: it stores, per customer,
// the (shard, sequence number) of the last order applied and skips anything at or below it.
//
//   order_ledger [--orders N] [--customers N] [--data DIR] [--fresh] [--quiet] [--verify]
//
// --orders N means "the stream holds orders 1..N": a run writes the missing ones, so running it
// again with a larger N adds orders (--help lists every flag). Ctrl-C stops cleanly; kill -9
// loses nothing either; run it again to resume (tests/crash/ does exactly that, many times).
//
// The data folder (default ./ledger-data) holds four SQLite files you can open with `sqlite3`
// or inspect with the `sluice` tool (docs/operations.md), and the mapping's events log:
//   stream.db        the orders stream          checkpoints.db   where the mapping is
//   ledger.db        balances, journal, runs    dead-letters.db  orders that could not be applied
//   events.jsonl     one JSON line per failed batch, dead letter, blocked lane (sluice::events)

#include <sluice/events/json_lines.hpp>
#include <sluice/handlers/per_record.hpp>
#include <sluice/sluice.hpp>
#include <sluice/sqlite/checkpoint_store.hpp>
#include <sluice/sqlite/database.hpp>
#include <sluice/sqlite/destination.hpp>
#include <sluice/sqlite/stream.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// ---- orders -------------------------------------------------------------------------------------
// An order is a record of the stream: key = customer id, payload = "<order number>,<amount in
// cents>". The customer is the partition key, so all orders of a customer land in one shard and
// one lane, in the order they were put.
using order_stream = sluice::sqlite::stream<std::string>;
using order_record = order_stream::record_type;

struct order {
  std::uint64_t number = 0;
  std::int64_t amount_cents = 0;
};

template <class T>
bool parse_number(std::string_view text, T& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc{} && end == text.data() + text.size();
}

/// The order in a payload, or nothing when the payload is malformed.
std::optional<order> parse_order(std::string_view payload) {
  order o;
  const auto comma = payload.find(',');
  if (comma == std::string_view::npos || !parse_number(payload.substr(0, comma), o.number) ||
      !parse_number(payload.substr(comma + 1), o.amount_cents)) {
    return std::nullopt;
  }
  return o;
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64: order n always gets the same customer, amount
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// Order number n, as (customer, payload). Deterministic, so a producer that resumes after a
/// crash writes exactly what the crashed one would have written. About 1 % of the orders have
/// amount 0 (filtered out), 5 % are refunds, and 1 in `malformed_every` has a typo.
std::pair<std::string, std::string> make_order(std::uint64_t n, std::uint32_t customers,
                                               std::uint64_t malformed_every) {
  const std::uint64_t h = mix(n);
  char customer[32];
  std::snprintf(customer, sizeof customer, "customer-%05u", static_cast<unsigned>(h % customers));
  const std::int64_t amount =
      (h >> 32) % 100 == 0 ? 0 : static_cast<std::int64_t>((h >> 40) % 20'000) - 1'000;
  std::string payload = std::to_string(n) + ",";
  payload += n % malformed_every == 777 % malformed_every ? "12O0"  // a letter O: cannot be parsed
                                                          : std::to_string(amount);
  return {customer, std::move(payload)};
}

// ---- the ledger ---------------------------------------------------------------------------------
// balances: one row per customer, with the (shard, sequence) of the last order applied.
// entries:  the journal, one row per applied order, append-only.
// runs:     one row per run of this program, with what its handler applied and skipped.
// redeliveries: the orders a run was handed although an earlier run had applied them.
const std::string ledger_schema = R"sql(
CREATE TABLE IF NOT EXISTS balances(customer TEXT PRIMARY KEY, balance_cents INTEGER NOT NULL,
  orders INTEGER NOT NULL, last_shard INTEGER NOT NULL, last_seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries(entry_id INTEGER PRIMARY KEY, customer TEXT NOT NULL,
  shard INTEGER NOT NULL, seq INTEGER NOT NULL, order_no INTEGER NOT NULL,
  amount_cents INTEGER NOT NULL, run INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs(run INTEGER PRIMARY KEY, started_ns INTEGER NOT NULL,
  applied INTEGER NOT NULL DEFAULT 0, redelivered INTEGER NOT NULL DEFAULT 0,
  rehanded INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS redeliveries(run INTEGER NOT NULL, shard INTEGER NOT NULL,
  seq INTEGER NOT NULL);
)sql";

// The idempotency rule in one statement: the update happens only when the order comes after the
// customer's last applied one, and RETURNING yields a row only when it did. (A customer's shard
// never changes, so comparing (shard, seq) amounts to comparing sequence numbers.)
constexpr std::string_view apply_sql = R"sql(
INSERT INTO balances(customer, balance_cents, orders, last_shard, last_seq)
VALUES(?1, ?2, 1, ?3, ?4)
ON CONFLICT(customer) DO UPDATE SET balance_cents = balance_cents + excluded.balance_cents,
  orders = orders + 1, last_shard = excluded.last_shard, last_seq = excluded.last_seq
WHERE (excluded.last_shard, excluded.last_seq) > (balances.last_shard, balances.last_seq)
RETURNING 1)sql";
constexpr std::string_view journal_sql =
    "INSERT INTO entries(customer, shard, seq, order_no, amount_cents, run) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
constexpr std::string_view redelivery_sql =
    "INSERT INTO redeliveries(run, shard, seq) VALUES(?1, ?2, ?3)";
constexpr std::string_view run_stats_sql =
    "UPDATE runs SET applied = applied + ?2, redelivered = redelivered + ?3, "
    "rehanded = rehanded + ?4 WHERE run = ?1";

class ledger {
 public:
  // synchronous=full (the default): a committed batch survives even a power loss. It must be at
  // least as durable as the checkpoints, or a checkpoint could point past balances that are lost.
  explicit ledger(const fs::path& file) : db_(file) {
    db_.in_transaction([&] {
      db_.exec(ledger_schema);
      auto& s = db_.cached("INSERT INTO runs(started_ns) VALUES(?1)");
      auto guard = s.scoped();
      s.bind_int64(1, std::chrono::system_clock::now().time_since_epoch().count());
      s.step();
      run_ = sqlite3_last_insert_rowid(db_.handle());
    });
  }

  /// The batch handler. Workers call it concurrently for different lanes; SQLite has one writer
  /// at a time anyway, so one connection behind a mutex is the simple and fast choice.
  sluice::batch_item_failures apply(const sluice::batch<order_record>& batch) {
    std::lock_guard lock(mutex_);
    sluice::sqlite::transaction tx(db_);  // the whole batch or nothing
    stats batch_stats;
    // per_record runs apply_one on each order and reports the ones that return false. With
    // skip_key_on_failure, once a customer's order fails, that customer's later orders in the batch
    // are reported too, without being applied: a customer's orders are never applied out of order.
    auto failures = sluice::per_record(
        [&](const order_record& r) { return apply_one(r, batch.shard_id(), batch_stats); },
        sluice::skip_key_on_failure)(batch);
    if (batch_stats.applied + batch_stats.redelivered + batch_stats.rehanded > 0) {
      auto& s = db_.cached(run_stats_sql);
      auto guard = s.scoped();
      s.bind_int64(1, run_).bind_int64(2, batch_stats.applied);
      s.bind_int64(3, batch_stats.redelivered).bind_int64(4, batch_stats.rehanded);
      s.step();
    }
    tx.commit();
    totals_.applied += batch_stats.applied;  // counted only once committed
    totals_.redelivered += batch_stats.redelivered;
    totals_.rehanded += batch_stats.rehanded;
    return failures;
  }

  /// What this run's handler did: orders applied; orders skipped because an earlier run had
  /// applied them (redelivered after a restart); orders skipped because this run had already
  /// been handed them (the retry of a partially failed batch repeats its later orders).
  struct stats {
    std::int64_t applied = 0, redelivered = 0, rehanded = 0;
  };
  stats run_stats() const {
    std::lock_guard lock(mutex_);
    return totals_;
  }
  std::int64_t run_id() const noexcept { return run_; }

 private:
  /// Applies one order unless it was applied before. Returns false for a malformed order.
  bool apply_one(const order_record& r, sluice::shard_id_t shard, stats& st) {
    const std::optional<order> o = parse_order(r.payload);
    if (!o) return false;  // reported failed: retried, bisected, then sent to the dead letters
    // (A database error, say a full disk, throws instead: the batch fails as a whole and is
    // retried; if the error persists, its orders end in the dead letters, never lost.)
    auto& s = db_.cached(apply_sql);
    auto guard = s.scoped();
    s.bind_text(1, r.key).bind_int64(2, o->amount_cents);
    s.bind_int64(3, shard).bind_int64(4, static_cast<std::int64_t>(r.sequence));
    // Handed over before in this run? (This run sees a customer's orders in sequence order.)
    auto& highest_seen = seen_this_run_[r.key];
    const bool seen = r.sequence <= highest_seen;
    highest_seen = std::max(highest_seen, r.sequence);
    if (!s.step()) {  // at or below the customer's last applied order: a duplicate, skip it
      if (seen) {
        ++st.rehanded;
      } else {
        ++st.redelivered;
        auto& d = db_.cached(redelivery_sql);
        auto redelivery_guard = d.scoped();
        d.bind_int64(1, run_).bind_int64(2, shard).bind_int64(
            3, static_cast<std::int64_t>(r.sequence));
        d.step();
      }
      return true;
    }
    auto& j = db_.cached(journal_sql);
    auto journal_guard = j.scoped();
    j.bind_text(1, r.key).bind_int64(2, shard).bind_int64(3, static_cast<std::int64_t>(r.sequence));
    j.bind_int64(4, static_cast<std::int64_t>(o->number)).bind_int64(5, o->amount_cents);
    j.bind_int64(6, run_);
    j.step();
    ++st.applied;
    return true;
  }

  mutable std::mutex mutex_;
  sluice::sqlite::database db_;
  std::int64_t run_ = 0;
  std::unordered_map<std::string, sluice::sequence_number_t> seen_this_run_;
  stats totals_;
};

// ---- producers ----------------------------------------------------------------------------------

/// The order numbers in 1..n that the stream does not hold yet. Each put_many below is one
/// transaction, so a producer killed half-way leaves whole chunks behind, in any order; reading the
/// stream back lets the next run write exactly the missing ones: the producer is idempotent too.
std::vector<std::uint64_t> missing_orders(order_stream& stream, std::uint64_t n) {
  std::vector<bool> held(n + 1, false);
  for (sluice::shard_id_t shard = 0; shard < stream.shard_count(); ++shard) {
    for (sluice::sequence_number_t after = 0;;) {
      const std::size_t read = stream.read(shard, after, 65'536, [&](const order_record& r) {
        std::uint64_t number = 0;
        const std::string_view p = r.payload;
        if (parse_number(p.substr(0, p.find(',')), number) && number <= n) held[number] = true;
        after = r.sequence;
        return true;
      });
      if (read == 0) break;
    }
  }
  std::vector<std::uint64_t> missing;
  for (std::uint64_t i = 1; i <= n; ++i) {
    if (!held[i]) missing.push_back(i);
  }
  return missing;
}

/// Writes the given orders with a few threads, 5,000 per put_many (one transaction, one fsync).
class producers {
 public:
  producers(order_stream& stream, std::vector<std::uint64_t> todo, std::uint32_t customers,
            std::uint64_t malformed_every, unsigned threads)
      : stream_(stream),
        todo_(std::move(todo)),
        customers_(customers),
        malformed_every_(malformed_every),
        running_(threads) {
    for (unsigned i = 0; i < threads; ++i) {
      threads_.emplace_back([this](const std::stop_token& stop) { produce(stop); });
    }
  }
  bool done() const { return running_.load() == 0; }
  std::uint64_t written() const { return written_.load(); }
  /// Stops early if asked, joins, and rethrows a producer's error.
  void finish(bool early) {
    for (auto& t : threads_) {
      if (early) t.request_stop();
      t.join();
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void produce(const std::stop_token& stop) {
    constexpr std::size_t chunk = 5'000;
    try {
      std::vector<std::pair<std::string, std::string>> entries;
      for (std::size_t first = 0;
           !stop.stop_requested() && (first = next_.fetch_add(chunk)) < todo_.size();) {
        entries.clear();
        for (std::size_t i = first; i < std::min(first + chunk, todo_.size()); ++i) {
          entries.push_back(make_order(todo_[i], customers_, malformed_every_));
        }
        stream_.put_many(entries);
        written_ += entries.size();
      }
    } catch (...) {
      std::lock_guard lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    --running_;
  }

  order_stream& stream_;
  const std::vector<std::uint64_t> todo_;
  const std::uint32_t customers_;
  const std::uint64_t malformed_every_;
  std::atomic<std::size_t> next_{0};
  std::atomic<std::uint64_t> written_{0};
  std::atomic<unsigned> running_;
  std::mutex error_mutex_;
  std::exception_ptr error_;
  std::vector<std::jthread> threads_;  // last: joined before the rest goes
};

// ---- command line, output -----------------------------------------------------------------------

struct options {
  std::uint64_t orders = 1'000'000;
  std::uint32_t customers = 10'000;
  std::int64_t batch_size = 500;
  std::uint64_t malformed_every = 50'000;
  fs::path data = "ledger-data";
  bool fresh = false, quiet = false, verify = false;
};

constexpr const char* usage =
    "usage: order_ledger [--orders N] [--customers N] [--data DIR] [--fresh] [--quiet] [--verify]\n"
    "                    [--batch-size N] [--malformed-every N]\n"
    "  --orders N      the stream holds orders 1..N (default 1000000); a run writes the missing "
    "ones\n"
    "  --customers N   customers (partition keys), default 10000\n"
    "  --data DIR      where the SQLite files are (default ./ledger-data)\n"
    "  --fresh         delete DIR first\n"
    "  --quiet         no progress lines\n"
    "  --verify        check the whole ledger against the stream at the end (exit 1 if wrong)\n"
    "  --batch-size N  records per handler call (default 500)\n"
    "  --malformed-every N  one order in N cannot be parsed (default 50000)";

options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) throw std::invalid_argument(std::string(arg) + " needs a value");
      return argv[++i];
    };
    auto number = [&](auto& out, std::uint64_t low, std::uint64_t high) {
      const std::string_view v = value();
      std::uint64_t n = 0;
      if (!parse_number(v, n) || n < low || n > high) {
        throw std::invalid_argument(std::string(arg) + " " + std::string(v) + ": expected " +
                                    std::to_string(low) + ".." + std::to_string(high));
      }
      out = static_cast<std::remove_reference_t<decltype(out)>>(n);
    };
    if (arg == "--orders") {
      number(o.orders, 0, 100'000'000);
    } else if (arg == "--customers") {
      number(o.customers, 1, 99'999);
    } else if (arg == "--batch-size") {
      number(o.batch_size, 1, 10'000);
    } else if (arg == "--malformed-every") {
      number(o.malformed_every, 1, 1'000'000'000);
    } else if (arg == "--data") {
      o.data = value();
    } else if (arg == "--fresh") {
      o.fresh = true;
    } else if (arg == "--quiet") {
      o.quiet = true;
    } else if (arg == "--verify") {
      o.verify = true;
    } else if (arg == "--help") {
      std::puts(usage);
      std::exit(0);
    } else {
      throw std::invalid_argument("unknown argument " + std::string(arg) + "\n" + usage);
    }
  }
  return o;
}

std::string grouped(std::int64_t n) {  // 1234567 -> "1,234,567"
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}
std::string grouped(std::uint64_t n) { return grouped(static_cast<std::int64_t>(n)); }

std::uint64_t finished(const sluice::metrics_counters& c) {
  return c.filtered_out_event_count + c.succeeded_event_count +
         c.on_failure_destination_delivered_event_count + c.dropped_event_count;
}

volatile std::sig_atomic_t interrupted = 0;  // Ctrl-C stops cleanly; kill -9 is safe as well

// ---- the ledger's totals, and --verify ----------------------------------------------------------

sluice::sqlite::open_options read_only() {
  sluice::sqlite::open_options o;
  o.create = false;
  o.read_only = true;
  return o;
}

struct ledger_totals {
  std::int64_t customers = 0, entries = 0, balance_cents = 0;
  std::uint64_t checksum = 14695981039346656037ull;  // FNV-1a over "customer=balance;" by customer
};

ledger_totals read_totals(const fs::path& file) {
  sluice::sqlite::database db(file, read_only());
  ledger_totals t;
  auto& s = db.cached("SELECT customer, balance_cents FROM balances ORDER BY customer");
  while (s.step()) {
    ++t.customers;
    t.balance_cents += s.column_int64(1);
    const std::string line =
        std::string(s.column_text(0)) + "=" + std::to_string(s.column_int64(1)) + ";";
    for (const char c : line)
      t.checksum = (t.checksum ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  }
  auto& e = db.cached("SELECT count(*) FROM entries");
  if (e.step()) t.entries = e.column_int64(0);
  return t;
}

/// Recomputes the ledger from the stream and compares: every order 1..n is in the stream exactly
/// once; every order is applied exactly once, in stream order per customer, or filtered out (amount
/// 0), or a dead letter (malformed); balances add up; the checkpoints cover the whole stream.
/// Returns the number of problems found (each printed).
int verify(order_stream& stream, const options& opt, sluice::sqlite::checkpoint_store& checkpoints,
           const sluice::sqlite::destination<order_record>& dead_letters) {
  int problems = 0;
  auto problem = [&](const std::string& what) {
    if (++problems <= 20) std::printf("verify: %s\n", what.c_str());
  };
  using position = std::pair<sluice::shard_id_t, sluice::sequence_number_t>;
  struct customer_expectation {
    std::vector<position> applied;  // in stream order
    std::int64_t balance = 0;
  };
  std::map<std::string, customer_expectation> expected;
  std::set<position> malformed;
  std::vector<int> copies(opt.orders + 1, 0);
  for (sluice::shard_id_t shard = 0; shard < stream.shard_count(); ++shard) {
    const sluice::sequence_number_t last = stream.last_sequence(shard);
    stream.read(shard, 0, last, [&](const order_record& r) {
      const std::optional<order> o = parse_order(r.payload);
      std::uint64_t number = 0;
      const std::string_view p = r.payload;
      if (parse_number(p.substr(0, p.find(',')), number) && number <= opt.orders) ++copies[number];
      if (!o) {
        malformed.insert({shard, r.sequence});
      } else if (o->amount_cents != 0) {
        auto& c = expected[r.key];
        c.applied.emplace_back(shard, r.sequence);
        c.balance += o->amount_cents;
      }
      return true;
    });
    const auto stored = checkpoints.load("order-ledger", shard);
    if (stored.value_or(0) != last) {
      problem("shard " + std::to_string(shard) + ": checkpoint " +
              std::to_string(stored.value_or(0)) + " but the stream holds " + std::to_string(last) +
              " records");
    }
  }
  for (std::uint64_t n = 1; n <= opt.orders; ++n) {
    if (copies[n] != 1) {
      problem("order " + std::to_string(n) + " is in the stream " + std::to_string(copies[n]) +
              " times");
    }
  }

  std::set<position> dead;
  for (const auto& failure : dead_letters.records()) {
    for (const auto& r : failure.records) dead.insert({failure.shard_id, r.sequence});
  }
  if (dead != malformed) {
    problem("dead letters hold " + std::to_string(dead.size()) + " orders, the stream " +
            std::to_string(malformed.size()) + " malformed ones");
  }

  sluice::sqlite::database db(opt.data / "ledger.db", read_only());
  std::map<std::string, std::vector<position>> journal;
  auto& j = db.cached("SELECT customer, shard, seq FROM entries ORDER BY entry_id");
  while (j.step()) {
    journal[std::string(j.column_text(0))].emplace_back(
        static_cast<sluice::shard_id_t>(j.column_int64(1)),
        static_cast<sluice::sequence_number_t>(j.column_int64(2)));
  }
  std::map<std::string, std::int64_t> balances;
  auto& b = db.cached("SELECT customer, balance_cents FROM balances");
  while (b.step()) balances[std::string(b.column_text(0))] = b.column_int64(1);
  for (const auto& [customer, want] : expected) {
    if (journal[customer] != want.applied) {
      problem(customer + ": journal holds " + std::to_string(journal[customer].size()) +
              " entries (out of order, missing or repeated); expected " +
              std::to_string(want.applied.size()));
    }
    if (balances[customer] != want.balance) {
      problem(customer + ": balance " + std::to_string(balances[customer]) + ", expected " +
              std::to_string(want.balance));
    }
  }
  for (const auto& [customer, entries] : journal) {
    if (!expected.contains(customer)) {
      problem(customer + ": in the journal but has no orders to apply");
    }
  }
  std::printf("verify: %s (%zu customers, %zu malformed orders, %zu dead letters)\n",
              problems == 0 ? "OK" : "FAILED", expected.size(), malformed.size(), dead.size());
  return problems;
}

// ---- main ---------------------------------------------------------------------------------------

int run(const options& opt) {
  const auto started = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  if (opt.fresh) fs::remove_all(opt.data);
  fs::create_directories(opt.data);

  // Four files rather than one: SQLite lets one writer at a time into a file, and the producers,
  // the handler and the checkpoint saves would otherwise queue for each other's write lock.
  // The stream's shard count is fixed when its file is created: a key must always map to the
  // same shard, or per-customer order would break.
  sluice::sqlite::stream_options stream_options;
  stream_options.name = "orders";
  stream_options.shards = 4;
  order_stream orders(opt.data / "stream.db", stream_options);
  // Checkpoints may use synchronous=normal: a power loss can only bring one back a little lower,
  // and the orders handed over again are skipped by the idempotent ledger. (A process crash loses
  // nothing either way.)
  sluice::sqlite::open_options relaxed;
  relaxed.synchronous = sluice::sqlite::synchronous_mode::normal;
  sluice::sqlite::checkpoint_store checkpoints(opt.data / "checkpoints.db", relaxed);
  sluice::sqlite::destination<order_record> dead_letters(opt.data / "dead-letters.db",
                                                         "order-ledger");
  ledger book(opt.data / "ledger.db");

  std::uint64_t held = 0, finished_before = 0;
  for (sluice::shard_id_t s = 0; s < orders.shard_count(); ++s) held += orders.last_sequence(s);
  const auto stored = checkpoints.load_all("order-ledger");
  for (const auto& [shard, seq] : stored) finished_before += seq;
  std::vector<std::uint64_t> todo = missing_orders(orders, opt.orders);
  const std::uint64_t to_write = todo.size();
  if (!opt.quiet) {
    if (!stored.empty()) {
      std::printf(
          "resuming: checkpoints found for %zu shards; %s of the %s orders in the stream "
          "are finished%s\n",
          stored.size(), grouped(finished_before).c_str(), grouped(held).c_str(),
          to_write == 0 && finished_before == held ? "; nothing new to do" : "");
    }
    std::printf("order_ledger: orders 1..%s for %s customers in %s (run %lld): %s to write\n",
                grouped(opt.orders).c_str(), grouped(std::uint64_t{opt.customers}).c_str(),
                opt.data.string().c_str(), static_cast<long long>(book.run_id()),
                grouped(to_write).c_str());
  }

  producers writers(orders, std::move(todo), opt.customers, opt.malformed_every, 4);

  // clang-format off
  auto mapping =
      sluice::from(orders, sluice::starting_position::trim_horizon)  // a checkpoint wins over this
      // Zero-amount orders post nothing: drop them before batching. Malformed ones pass, so that
      // the handler can report them and they end up in the dead letters.
      | sluice::filter([](const std::string& payload) {
          const auto o = parse_order(payload);
          return !o || o->amount_cents != 0;
        })
      // Up to batch_size orders per handler call; wait at most 20 ms to fill a batch.
      | sluice::batching(sluice::batch_size(opt.batch_size), sluice::maximum_batching_window(20ms))
      // 4 lanes per shard (by customer hash): up to 16 batches in flight, and still each customer's
      // orders go one batch at a time, in order.
      | sluice::parallelization_factor(4)
      // When the handler throws, the batch is cut in halves until the bad order is alone (bisect);
      // a reported item fails only itself and what follows it. An order that still fails after 3
      // attempts (10 ms, then 20 ms apart) goes to the dead letters, and its lane moves on.
      | sluice::retry(sluice::maximum_retry_attempts(2), sluice::backoff::exponential(10ms))
      | sluice::bisect_batch_on_function_error
      | sluice::report_batch_item_failures
      | sluice::on_failure(dead_letters)  // stored with the orders themselves, not just pointers
      | sluice::invoke([&](const sluice::batch<order_record>& batch) { return book.apply(batch); });
  // clang-format on

  // The mapping's failures as JSON lines, for a log shipper: each failed attempt, each batch
  // sent to the dead letters, a lane blocked on its destination. Nothing is raised (or paid)
  // while everything succeeds.
  std::ofstream events_log(opt.data / "events.jsonl", std::ios::app);
  sluice::json_lines_event_sink events(events_log);

  auto running = sluice::start(std::move(mapping), sluice::checkpoints(checkpoints),
                               sluice::mapping_name("order-ledger"), sluice::events(events));

  // Report once a second until everything written is finished (or Ctrl-C).
  std::signal(SIGINT, [](int) { interrupted = 1; });
  std::signal(SIGTERM, [](int) { interrupted = 1; });
  std::uint64_t last_finished = 0;
  double last_report = 0;
  for (;;) {
    bool caught_up = false;
    if (writers.done()) {
      caught_up = running.wait_until_caught_up(100ms);
    } else {
      std::this_thread::sleep_for(100ms);
    }
    if (interrupted || caught_up) break;
    if (const double now = seconds(); now - last_report >= 1.0 && !opt.quiet) {
      const sluice::metrics_snapshot m = running.metrics();  // cheap: atomics, no locks
      const std::uint64_t f = finished(m.total);
      const auto rate =
          static_cast<std::int64_t>(static_cast<double>(f - last_finished) / (now - last_report));
      std::printf("%5.1f s  written %s  finished %s (%s/s)  iterator age %s ms  dead letters %s\n",
                  now, grouped(writers.written()).c_str(), grouped(f).c_str(),
                  grouped(rate).c_str(), grouped(m.total.iterator_age_ms).c_str(),
                  grouped(m.total.on_failure_destination_delivered_event_count).c_str());
      std::fflush(stdout);
      last_finished = f;
      last_report = now;
    }
  }
  writers.finish(/*early=*/interrupted != 0);
  running.stop();  // lets running batches end and stores the final checkpoints
  if (interrupted) {
    std::printf("interrupted after %.1f s; run again to resume from the checkpoints\n", seconds());
    return 130;
  }

  // The summary: this run (from the mapping's metrics and the handler), then the whole ledger.
  const sluice::metrics_counters m = running.metrics().total;
  const ledger::stats st = book.run_stats();
  const ledger_totals totals = read_totals(opt.data / "ledger.db");
  held = 0;
  for (sluice::shard_id_t s = 0; s < orders.shard_count(); ++s) held += orders.last_sequence(s);
  const double took = seconds();
  std::printf("done in %.1f s: wrote %s orders, finished %s (%s/s)\n", took,
              grouped(to_write).c_str(), grouped(finished(m)).c_str(),
              grouped(static_cast<std::int64_t>(static_cast<double>(finished(m)) / took)).c_str());
  std::printf(
      "  this run  applied %s, filtered out %s (amount 0), dead letters %s\n"
      "            duplicates skipped: %s redelivered after a restart, %s handed again by "
      "retries\n",
      grouped(st.applied).c_str(), grouped(m.filtered_out_event_count).c_str(),
      grouped(m.on_failure_destination_delivered_event_count).c_str(),
      grouped(st.redelivered).c_str(), grouped(st.rehanded).c_str());
  std::printf(
      "  ledger    %s orders in the stream: %s applied to %s customers, %s dead letters\n"
      "            balance total %s cents, checksum %016llx\n"
      "  data      %s/{stream,ledger,checkpoints,dead-letters}.db, events.jsonl\n",
      grouped(held).c_str(), grouped(totals.entries).c_str(), grouped(totals.customers).c_str(),
      grouped(std::uint64_t{dead_letters.count()}).c_str(), grouped(totals.balance_cents).c_str(),
      static_cast<unsigned long long>(totals.checksum), opt.data.string().c_str());
  if (opt.verify) return verify(orders, opt, checkpoints, dead_letters) == 0 ? 0 : 1;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_options(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "order_ledger: %s\n", e.what());
    return 2;
  }
}
