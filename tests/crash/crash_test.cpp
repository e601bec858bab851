// Crash-safety test of the order ledger example (examples/order_ledger.cpp, built here as
// crash_order_ledger): runs it as a child process, kills it with SIGKILL at random moments,
// restarts it, and checks what the durable state says after every kill and at the end.
//
//   crash_test <order_ledger binary>
//   env SLUICE_CRASH_SOAK=N    kill N times (default 20)        SLUICE_CRASH_SEED=S  replay a run
//       SLUICE_CRASH_ORDERS=N  orders in all (default 20,000)   SLUICE_CRASH_KEEP=1  keep the data
//
// Each round raises the child's --orders target, so that children have orders to write and to
// apply when they are killed: kills land while producing, applying, dead-lettering, checkpointing,
// starting up or shutting down. Checked:
//   - a child that is not killed exits with status 0;
//   - stored checkpoints never move backwards (sampled before every kill and after it);
//   - a stored checkpoint never passes an unfinished record: every record at or below it is
//     applied (in the journal), filtered out (amount 0) or in the dead letters (S-3.3);
//   - duplicates come only from the at-least-once window: every order a run was handed although
//     an earlier run had applied it lies above the checkpoint the run started from (S-3.4), and
//     per restart there are at most shards x P x batches_per_lane x batch_size of them (what the
//     mapping holds between source and handler), except for shards where a lane was retrying a bad
//     order at the kill: there the other lanes legitimately run ahead (failure isolation, S-3.3);
//   - at the end (the child runs once more, with --verify): every order 1..N is in the stream
//     exactly once (the producer is crash-safe), every record is finished, none lost; per
//     customer the journal of first applications is in stream order; no order applied twice.
// Prints the duplicates it saw and "N passed, M failed"; exit status 0 when nothing failed.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/sqlite/database.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// The child's configuration. Shards (4) and parallelization factor (4) are fixed in the example.
constexpr std::uint32_t shards = 4;
constexpr std::uint64_t lanes_per_shard = 4;
constexpr std::uint64_t batch_size = 50;
constexpr std::uint64_t customers = 500;
constexpr std::uint64_t malformed_every = 997;
constexpr std::uint64_t in_flight_bound =
    shards * lanes_per_shard * sluice::batches_per_lane * batch_size;
// A child that neither checkpoints nor exits for this long is hung (the whole job takes ~1 s).
constexpr auto child_limit = std::chrono::seconds(120);

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  std::uint64_t n = 0;
  const auto [end, error] = std::from_chars(v, v + std::string_view(v).size(), n);
  if (error != std::errc{} || *end != '\0') {
    std::cerr << "crash_test: " << name << "=" << v << " is not a number\n";
    std::exit(2);
  }
  return n;
}

// ---- results ------------------------------------------------------------------------------------

struct tally {
  std::map<std::string, std::pair<int, int>> checks;  // name -> (passed, failed)
  int failures_printed = 0;

  void check(const std::string& name, bool ok, const std::string& detail = {}) {
    auto& [passed, failed] = checks[name];
    if (ok) {
      ++passed;
      return;
    }
    ++failed;
    if (++failures_printed <= 30) std::cout << "FAILED: " << name << ": " << detail << std::endl;
  }
  int failed() const {
    int n = 0;
    for (const auto& [name, counts] : checks) n += counts.second;
    return n;
  }
  int passed() const {
    int n = 0;
    for (const auto& [name, counts] : checks) n += counts.first;
    return n;
  }
};

// ---- the child process --------------------------------------------------------------------------

pid_t spawn(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(2);
  }
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

/// Waits for the child until `deadline`; returns its wait status, or nothing if it still runs.
std::optional<int> wait_until(pid_t pid, steady::time_point deadline) {
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (steady::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(1ms);
  }
}

// ---- reading the child's files ------------------------------------------------------------------

enum class kind { valid, zero, malformed };

struct stream_record {
  std::uint64_t seq = 0;
  std::string customer;
  std::uint64_t order_no = 0;
  kind what = kind::valid;
};

struct entry {
  std::int64_t id;
  std::string customer;
  std::uint32_t shard;
  std::uint64_t seq;
};

struct redelivery {
  std::int64_t run;
  std::uint32_t shard;
  std::uint64_t seq;
};

using position = std::pair<std::uint32_t, std::uint64_t>;
using checkpoint_set = std::array<std::uint64_t, shards>;

/// Opens an existing file of the child's (never creates one). Reading is safe while the child
/// runs: WAL readers do not block the writer.
std::optional<sluice::sqlite::database> open_existing(const fs::path& file) {
  if (!fs::exists(file)) return std::nullopt;
  sluice::sqlite::open_options o;
  o.create = false;
  try {
    return sluice::sqlite::database(file, o);
  } catch (const sluice::sqlite::database_error&) {
    return std::nullopt;  // killed while the file was being created: not a database yet
  }
}

bool has_table(sluice::sqlite::database& db, std::string_view table) {
  auto& s = db.cached("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1");
  auto guard = s.scoped();
  s.bind_text(1, table);
  return s.step();
}

checkpoint_set read_checkpoints(const fs::path& dir) {
  checkpoint_set cp{};
  auto db = open_existing(dir / "checkpoints.db");
  if (!db || !has_table(*db, "sluice_checkpoints")) return cp;
  auto& s = db->cached("SELECT shard, seq FROM sluice_checkpoints WHERE mapping = 'order-ledger'");
  while (s.step())
    cp.at(static_cast<std::size_t>(s.column_int64(0))) =
        static_cast<std::uint64_t>(s.column_int64(1));
  return cp;
}

struct state {
  std::array<std::vector<stream_record>, shards> stream;  // by shard, in sequence order
  checkpoint_set checkpoints{};
  std::vector<entry> journal;                   // by entry id
  std::map<position, std::int64_t> applied_by;  // (shard, seq) -> run that applied it
  std::multiset<position> dead;
  std::vector<redelivery> redeliveries;
  std::int64_t last_run = 0;
};

kind classify(std::string_view payload, std::uint64_t& order_no) {
  const auto comma = payload.find(',');
  const std::string_view number = payload.substr(0, comma);
  std::from_chars(number.data(), number.data() + number.size(), order_no);
  if (comma == std::string_view::npos) return kind::malformed;
  const std::string_view amount = payload.substr(comma + 1);
  std::int64_t cents = 0;
  const auto [end, error] = std::from_chars(amount.data(), amount.data() + amount.size(), cents);
  if (error != std::errc{} || end != amount.data() + amount.size()) return kind::malformed;
  return cents == 0 ? kind::zero : kind::valid;
}

state read_state(const fs::path& dir) {
  state st;
  st.checkpoints = read_checkpoints(dir);
  if (auto db = open_existing(dir / "stream.db"); db && has_table(*db, "sluice_records")) {
    auto& s = db->cached(
        "SELECT r.shard, r.seq, r.partition_key, r.payload FROM sluice_records r "
        "JOIN sluice_streams s USING(stream_id) WHERE s.name = 'orders' ORDER BY r.shard, r.seq");
    while (s.step()) {
      stream_record r;
      r.seq = static_cast<std::uint64_t>(s.column_int64(1));
      r.customer = std::string(s.column_text(2));
      r.what = classify(s.column_blob(3), r.order_no);
      st.stream.at(static_cast<std::size_t>(s.column_int64(0))).push_back(std::move(r));
    }
  }
  if (auto db = open_existing(dir / "ledger.db"); db && has_table(*db, "redeliveries")) {
    auto& e =
        db->cached("SELECT entry_id, customer, shard, seq, run FROM entries ORDER BY entry_id");
    while (e.step()) {
      const entry x{e.column_int64(0), std::string(e.column_text(1)),
                    static_cast<std::uint32_t>(e.column_int64(2)),
                    static_cast<std::uint64_t>(e.column_int64(3))};
      st.applied_by[{x.shard, x.seq}] = e.column_int64(4);
      st.journal.push_back(x);
    }
    auto& r = db->cached("SELECT run, shard, seq FROM redeliveries");
    while (r.step()) {
      st.redeliveries.push_back({r.column_int64(0), static_cast<std::uint32_t>(r.column_int64(1)),
                                 static_cast<std::uint64_t>(r.column_int64(2))});
    }
    auto& runs = db->cached("SELECT coalesce(max(run), 0) FROM runs");
    if (runs.step()) st.last_run = runs.column_int64(0);
  }
  if (auto db = open_existing(dir / "dead-letters.db");
      db && has_table(*db, "sluice_failure_records")) {
    auto& d = db->cached(
        "SELECT f.shard, r.seq FROM sluice_failure_records r JOIN sluice_failures f "
        "USING(failure_id) WHERE f.destination = 'order-ledger'");
    while (d.step()) {
      st.dead.insert({static_cast<std::uint32_t>(d.column_int64(0)),
                      static_cast<std::uint64_t>(d.column_int64(1))});
    }
  }
  return st;
}

std::string shard_list(const checkpoint_set& cp) {
  std::ostringstream out;
  for (std::size_t i = 0; i < cp.size(); ++i) out << (i ? "," : "") << cp[i];
  return out.str();
}

// ---- the checks ---------------------------------------------------------------------------------

/// S-3.3: every record at or below the stored checkpoint is finished.
void check_checkpoint_covers_only_finished(tally& t, const state& st, const std::string& when) {
  for (std::uint32_t shard = 0; shard < shards; ++shard) {
    std::string problem;
    for (const stream_record& r : st.stream[shard]) {
      if (r.seq > st.checkpoints[shard]) break;
      const position p{shard, r.seq};
      const bool ok = r.what == kind::zero || (r.what == kind::malformed && st.dead.contains(p)) ||
                      (r.what == kind::valid && st.applied_by.contains(p));
      if (!ok) {
        problem = "shard " + std::to_string(shard) + " checkpoint " +
                  std::to_string(st.checkpoints[shard]) + " passes unfinished record " +
                  std::to_string(r.seq) + " (order " + std::to_string(r.order_no) + ")";
        break;
      }
    }
    t.check("checkpoint never passes an unfinished record", problem.empty(), when + ": " + problem);
  }
}

void check_monotonic(tally& t, const checkpoint_set& earlier, const checkpoint_set& later,
                     const std::string& when) {
  bool ok = true;
  for (std::size_t i = 0; i < shards; ++i) ok &= later[i] >= earlier[i];
  t.check("stored checkpoints never move backwards", ok,
          when + ": " + shard_list(earlier) + " then " + shard_list(later));
}

struct duplicate_stats {
  std::uint64_t total = 0, max_per_restart = 0, restarts_with_duplicates = 0;
  std::uint64_t isolated_restarts = 0, max_isolated = 0;  // a lane was retrying at the kill
};

/// The duplicates of run `run`, which started from checkpoints `start`.
void check_redeliveries(tally& t, const state& st, std::int64_t run, const checkpoint_set& start,
                        duplicate_stats& d) {
  std::array<std::uint64_t, shards> per_shard{};
  std::string below;
  for (const redelivery& r : st.redeliveries) {
    if (r.run != run) continue;
    ++per_shard.at(r.shard);
    if (r.seq <= start[r.shard] && below.empty()) {
      below = "run " + std::to_string(run) + " was handed shard " + std::to_string(r.shard) +
              " seq " + std::to_string(r.seq) + " again, at or below its starting checkpoint " +
              std::to_string(start[r.shard]);
    }
  }
  t.check("duplicates only above the starting checkpoint", below.empty(), below);

  // A shard where a bad order lay in the window (above the checkpoint, below what earlier runs
  // applied) had a lane in retry: its other lanes may run ahead of the checkpoint (S-3.3).
  std::uint64_t bounded = 0, isolated = 0, total = 0;
  for (std::uint32_t shard = 0; shard < shards; ++shard) {
    std::uint64_t applied_max = 0;
    for (const auto& [p, by] : st.applied_by) {
      if (p.first == shard && by < run) applied_max = std::max(applied_max, p.second);
    }
    bool retrying = false;
    for (const stream_record& r : st.stream[shard]) {
      retrying |= r.what == kind::malformed && r.seq > start[shard] && r.seq < applied_max;
    }
    (retrying ? isolated : bounded) += per_shard[shard];
    total += per_shard[shard];
  }
  d.total += total;
  d.max_per_restart = std::max(d.max_per_restart, total);
  if (total > 0) ++d.restarts_with_duplicates;
  if (isolated > 0) {
    ++d.isolated_restarts;
    d.max_isolated = std::max(d.max_isolated, isolated);
  }
  t.check("duplicates per restart within shards x P x batches_per_lane x batch_size",
          bounded <= in_flight_bound,
          "run " + std::to_string(run) + ": " + std::to_string(bounded) + " duplicates > " +
              std::to_string(in_flight_bound));
}

void check_final(tally& t, const state& st, std::uint64_t orders) {
  // The producer: each order exactly once.
  std::vector<int> copies(orders + 1, 0);
  for (const auto& shard : st.stream) {
    for (const stream_record& r : shard) {
      if (r.order_no >= 1 && r.order_no <= orders) ++copies[r.order_no];
    }
  }
  std::uint64_t wrong = 0;
  for (std::uint64_t n = 1; n <= orders; ++n) wrong += copies[n] != 1;
  t.check("every order is in the stream exactly once", wrong == 0,
          std::to_string(wrong) + " orders missing or written twice");

  // Every record finished, none lost; nothing applied that should not be.
  std::uint64_t lost = 0, wrongly_applied = 0;
  std::set<position> dead_distinct(st.dead.begin(), st.dead.end());
  for (std::uint32_t shard = 0; shard < shards; ++shard) {
    const std::uint64_t last = st.stream[shard].empty() ? 0 : st.stream[shard].back().seq;
    t.check("final checkpoints cover the stream", st.checkpoints[shard] == last,
            "shard " + std::to_string(shard) + " checkpoint " +
                std::to_string(st.checkpoints[shard]) + ", last record " + std::to_string(last));
    for (const stream_record& r : st.stream[shard]) {
      const position p{shard, r.seq};
      const bool applied = st.applied_by.contains(p), dead = dead_distinct.contains(p);
      if (r.what == kind::valid) {
        lost += !applied;
        wrongly_applied += dead;
      } else {
        wrongly_applied += applied || (r.what == kind::zero && dead);
        lost += r.what == kind::malformed && !dead;
      }
    }
  }
  t.check("every record finished (applied, filtered or dead letter), none lost", lost == 0,
          std::to_string(lost) + " records lost");
  t.check("nothing applied or dead-lettered that should not be", wrongly_applied == 0,
          std::to_string(wrongly_applied) + " records");

  // Per customer, first applications in stream order; no order applied twice.
  std::map<std::string, std::uint64_t> last_seq;
  std::uint64_t out_of_order = 0;
  for (const entry& e : st.journal) {
    auto [it, fresh] = last_seq.try_emplace(e.customer, e.seq);
    if (!fresh) {
      out_of_order += e.seq <= it->second;
      it->second = e.seq;
    }
  }
  t.check("journal of first applications increasing per customer", out_of_order == 0,
          std::to_string(out_of_order) + " entries out of order or repeated");
  t.check("no order applied twice", st.applied_by.size() == st.journal.size(),
          std::to_string(st.journal.size() - st.applied_by.size()) + " repeated entries");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: crash_test <order_ledger binary>\n";
    return 2;
  }
  const std::string child = fs::absolute(argv[1]).string();
  const std::uint64_t kills_wanted = env_number("SLUICE_CRASH_SOAK", 20);
  const std::uint64_t orders = env_number("SLUICE_CRASH_ORDERS", 20'000);
  const std::uint64_t seed = env_number("SLUICE_CRASH_SEED", std::random_device{}());
  std::mt19937_64 rng(seed);

  std::string pattern = (fs::temp_directory_path() / "sluice-crash-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    return 2;
  }
  const fs::path dir = pattern, data = dir / "data", log = dir / "child.log";
  std::cout << "crash_test: seed " << seed << ", " << kills_wanted << " kills, " << orders
            << " orders, data in " << data << std::endl;

  auto args = [&](std::uint64_t target, bool verify) {
    std::vector<std::string> a{child,
                               "--data",
                               data.string(),
                               "--orders",
                               std::to_string(target),
                               "--customers",
                               std::to_string(customers),
                               "--batch-size",
                               std::to_string(batch_size),
                               "--malformed-every",
                               std::to_string(malformed_every),
                               "--quiet"};
    if (verify) a.push_back("--verify");
    return a;
  };
  auto show_log = [&] {
    std::ifstream in(log);
    std::cout << "---- child log (" << log.string() << ") ----\n"
              << in.rdbuf() << "----" << std::endl;
  };

  tally t;
  duplicate_stats dups;
  checkpoint_set previous{};
  std::int64_t last_run = 0;
  std::uint64_t kills = 0, clean_exits = 0, round = 0;
  // The kill comes uniformly within [1 ms, horizon]; the horizon follows how long unkilled
  // children take, so that kills keep landing inside the work.
  double horizon_ms = 1500;
  const auto test_started = steady::now();

  while (kills < kills_wanted) {
    // About half the children are killed, so the target grows by orders / (2 x kills) a round.
    const std::uint64_t step = std::max<std::uint64_t>(1, orders / (2 * kills_wanted));
    const std::uint64_t target = std::min(orders, (round + 1) * step);
    ++round;
    const checkpoint_set start = previous;
    const auto launched = steady::now();
    const pid_t pid = spawn(args(target, false), log);
    // Half the kills come at a random moment after the launch (startup, producing, applying,
    // shutting down); the others shortly after this child's first checkpoint, when it is
    // applying orders and has records in flight past its stored checkpoint.
    std::optional<int> status;
    if (std::bernoulli_distribution(0.5)(rng)) {
      const auto delay = std::chrono::microseconds(std::uniform_int_distribution<std::int64_t>(
          1000, static_cast<std::int64_t>(horizon_ms * 1000))(rng));
      status = wait_until(pid, launched + delay);
    } else {
      const auto extra =
          std::chrono::microseconds(std::uniform_int_distribution<std::int64_t>(0, 20'000)(rng));
      while (!(status = wait_until(pid, steady::now() + 2ms)) && read_checkpoints(data) == start &&
             steady::now() - launched < child_limit) {
      }
      if (!status) status = wait_until(pid, steady::now() + extra);
    }
    const std::string when = "round " + std::to_string(round);
    t.check(
        "a child never hangs", status || steady::now() - launched < child_limit,
        when + ": no checkpoint and no exit after " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(child_limit).count()) +
            " s");
    checkpoint_set before = previous;
    if (!status) {
      before = read_checkpoints(data);  // sampled while the child runs
      check_monotonic(t, previous, before, when + " (before the kill)");
      kill(pid, SIGKILL);
      int ignored = 0;
      waitpid(pid, &ignored, 0);
      ++kills;
    } else {
      const bool ok = WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
      t.check("a child that is not killed exits with status 0", ok,
              when + ": status " + std::to_string(*status));
      if (!ok) show_log();
      ++clean_exits;
      const double took =
          std::chrono::duration<double, std::milli>(steady::now() - launched).count();
      horizon_ms = std::max(50.0, 0.7 * horizon_ms + 0.3 * took * 1.2);
    }
    const state st = read_state(data);
    check_monotonic(t, before, st.checkpoints,
                    when + (status ? " (clean exit)" : " (after the kill)"));
    check_checkpoint_covers_only_finished(t, st, when);
    previous = st.checkpoints;
    // The run this child recorded (none if it was killed before it got that far).
    for (std::int64_t run = last_run + 1; run <= st.last_run; ++run)
      check_redeliveries(t, st, run, start, dups);
    last_run = std::max(last_run, st.last_run);
  }

  // One last run, not killed, with the example's own --verify.
  const checkpoint_set start = previous;
  const pid_t pid = spawn(args(orders, true), log);
  const std::optional<int> status = wait_until(pid, steady::now() + child_limit);
  if (!status) kill(pid, SIGKILL);
  const bool ok = status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
  t.check("the last run finishes and its --verify passes", ok,
          status ? "status " + std::to_string(*status) : std::string("timed out"));
  if (!ok) show_log();
  const state st = read_state(data);
  check_monotonic(t, previous, st.checkpoints, "last run");
  for (std::int64_t run = last_run + 1; run <= st.last_run; ++run)
    check_redeliveries(t, st, run, start, dups);
  check_final(t, st, orders);

  const std::uint64_t dead_duplicates =
      st.dead.size() - std::set<position>(st.dead.begin(), st.dead.end()).size();
  std::cout << "crash_test: " << kills << " kills, " << clean_exits << " clean exits, "
            << st.last_run << " runs recorded, " << round + 1 << " children in "
            << std::chrono::duration<double>(steady::now() - test_started).count() << " s\n"
            << "  duplicates (orders handed again after a restart, skipped by the ledger): "
            << dups.total << " in all, " << dups.restarts_with_duplicates
            << " restarts had some, at most " << dups.max_per_restart << " per restart (bound "
            << in_flight_bound << ")\n"
            << "  restarts after a kill during a retry (other lanes ran ahead, S-3.3): "
            << dups.isolated_restarts << ", at most " << dups.max_isolated << " duplicates there\n"
            << "  dead letters delivered twice (killed between delivery and checkpoint): "
            << dead_duplicates << " of " << st.dead.size() << "\n";
  for (const auto& [name, counts] : t.checks) {
    std::cout << "  " << (counts.second == 0 ? "ok    " : "FAILED") << " " << name << " ("
              << counts.first << " passed, " << counts.second << " failed)\n";
  }
  std::cout << t.passed() << " passed, " << t.failed() << " failed" << std::endl;

  if (t.failed() == 0 && env_number("SLUICE_CRASH_KEEP", 0) == 0) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  } else {
    std::cout << "data kept in " << dir << std::endl;
  }
  return t.failed() == 0 ? 0 : 1;
}
