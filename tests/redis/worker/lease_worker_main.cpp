// A worker process for the multi-process scale-out tests (tests/redis/scale_out_test.cpp): a
// sluice::lease_worker over a Redis stream (or a SQLite stream with SQLite leases) that logs every
// record its handler gets. SIGTERM stops it cleanly (final checkpoints, leases released).
//
//   lease_worker_main --id W --log FILE (--redis PORT | --sqlite FILE) [--shards N]
//                     [--lease-ms N] [--renew-ms N] [--p N] [--poison KEY] [--marker FILE]
//                     [--slow-ms N]  (the handler sleeps this long per batch)
//
// Log lines: "R <shard> <seq> <key> <payload> <counter>" per handled record (written before the
// handler returns, so a checkpoint never covers an unlogged record); "LATE_SAVE <shard>
// <counter>" for a fenced checkpoint write that succeeded while the --marker file exists; "HELD
// <n>" whenever the number of held leases changes; "STATS ..." at the end.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "sluice/leases.hpp"
#include "sluice/redis/destination.hpp"
#include "sluice/redis/leases.hpp"
#include "sluice/redis/stream.hpp"
#include "sluice/sluice.hpp"
#include "sluice/sqlite/destination.hpp"
#include "sluice/sqlite/leases.hpp"
#include "sluice/sqlite/stream.hpp"

namespace {

using R = sluice::record<std::int64_t>;

struct args_t {
  std::string id, log, sqlite, poison, marker;
  int redis_port = 0;
  std::uint32_t shards = 16;
  int lease_ms = 2000, renew_ms = 400, p = 1, slow_ms = 0;
};

args_t parse(int argc, char** argv) {
  args_t a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--id")
      a.id = v;
    else if (k == "--log")
      a.log = v;
    else if (k == "--redis")
      a.redis_port = std::stoi(v);
    else if (k == "--sqlite")
      a.sqlite = v;
    else if (k == "--shards")
      a.shards = static_cast<std::uint32_t>(std::stoul(v));
    else if (k == "--lease-ms")
      a.lease_ms = std::stoi(v);
    else if (k == "--renew-ms")
      a.renew_ms = std::stoi(v);
    else if (k == "--p")
      a.p = std::stoi(v);
    else if (k == "--poison")
      a.poison = v;
    else if (k == "--marker")
      a.marker = v;
    else if (k == "--slow-ms")
      a.slow_ms = std::stoi(v);
    else
      throw std::invalid_argument("unknown argument " + k);
  }
  return a;
}

/// Appends whole lines with one write(2) each: a line is in the file when write returns.
class line_log {
 public:
  explicit line_log(const std::string& path)
      : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644)) {
    if (fd_ < 0) throw std::runtime_error("cannot open " + path);
  }
  ~line_log() { ::close(fd_); }
  line_log(const line_log&) = delete;
  line_log& operator=(const line_log&) = delete;
  void write(const std::string& s) const {
    std::size_t done = 0;
    while (done < s.size()) {
      const ssize_t n = ::write(fd_, s.data() + done, s.size() - done);
      if (n <= 0) throw std::runtime_error("log write failed");
      done += static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_;
};

/// Wraps a lease store: reports fenced checkpoint writes that succeed after the marker appeared.
template <class Store>
struct watched_store {
  Store* inner;
  const line_log* log;
  std::string marker;
  std::vector<sluice::lease> leases(std::string_view m, std::uint32_t n) const {
    return inner->leases(m, n);
  }
  bool take(std::string_view m, sluice::shard_id_t s, std::string_view eo, std::uint64_t ec,
            std::string_view o, std::int64_t e) {
    return inner->take(m, s, eo, ec, o, e);
  }
  bool renew(std::string_view m, sluice::shard_id_t s, std::string_view o, std::uint64_t c,
             std::int64_t e) {
    return inner->renew(m, s, o, c, e);
  }
  bool release(std::string_view m, sluice::shard_id_t s, std::string_view o, std::uint64_t c) {
    return inner->release(m, s, o, c);
  }
  bool save_fenced(std::string_view m, sluice::shard_id_t s, std::string_view o, std::uint64_t c,
                   sluice::sequence_number_t seq) {
    // Looked at before the call: a call begun before the process was stopped may return after
    // it was continued, and that write legitimately happened while the lease was still ours.
    const bool late = !marker.empty() && std::filesystem::exists(marker);
    const bool ok = inner->save_fenced(m, s, o, c, seq);
    if (ok && late) log->write("LATE_SAVE " + std::to_string(s) + " " + std::to_string(c) + "\n");
    return ok;
  }
  std::optional<sluice::sequence_number_t> load(std::string_view m, sluice::shard_id_t s) const {
    return inner->load(m, s);
  }
};

template <class Stream, class Store, class Destination>
int run_worker(const args_t& a, Stream& stream, Store& inner, Destination* dlq) {
  line_log log(a.log);
  watched_store<Store> store{&inner, &log, a.marker};
  sluice::lease_options o;
  o.worker_id = a.id;
  o.lease_duration = std::chrono::milliseconds(a.lease_ms);
  o.renew_interval = std::chrono::milliseconds(a.renew_ms);
  auto factory = [&](sluice::shard_view<Stream>& view) {
    const std::uint64_t counter = view.lease_counter();
    auto handler = [&log, &a, counter](const sluice::batch<R>& b) {
      if (a.slow_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(a.slow_ms));
      std::string lines;
      for (const R& r : b) {
        if (!a.poison.empty() && r.key == a.poison) throw std::runtime_error("poison record");
        lines += "R " + std::to_string(b.shard_id()) + " " + std::to_string(r.sequence) + " " +
                 r.key + " " + std::to_string(r.payload) + " " + std::to_string(counter) + "\n";
      }
      log.write(lines);
    };
    return sluice::from(view) | sluice::batching(sluice::batch_size(100)) |
           sluice::parallelization_factor(a.p) |
           sluice::retry(sluice::maximum_retry_attempts(2),
                         sluice::backoff::fixed(std::chrono::milliseconds(5))) |
           sluice::bisect_batch_on_function_error | sluice::on_failure(*dlq) |
           sluice::invoke(handler);
  };
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // every thread started below inherits it
  sluice::lease_worker worker(store, stream, "workers", o, factory,
                              sluice::system_clock::instance(), sluice::workers(2));
  std::atomic<bool> done{false};
  std::thread monitor([&] {
    std::size_t last = ~std::size_t{0};
    while (!done.load()) {
      const std::size_t n = worker.held().size();
      if (n != last) log.write("HELD " + std::to_string(n) + "\n");
      last = n;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  worker.start();
  int sig = 0;
  sigwait(&stop_signals, &sig);
  worker.stop();
  done = true;
  monitor.join();
  const auto st = worker.stats();
  log.write("STATS taken " + std::to_string(st.taken) + " stolen " + std::to_string(st.stolen) +
            " lost " + std::to_string(st.lost) + " released " + std::to_string(st.released) +
            " refused " + std::to_string(st.fenced_refused) + " failed " +
            std::to_string(st.failed) + " store_errors " + std::to_string(st.store_errors) +
            " last_error " + st.last_error + "\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  const args_t a = parse(argc, argv);
  if (a.redis_port != 0) {
    sluice::redis::connection_options c;
    c.port = a.redis_port;
    c.reconnect_attempts = 40;  // a Redis restart takes a moment
    sluice::redis::stream_options so;
    so.name = "work";
    so.shards = a.shards;
    so.connection = c;
    sluice::redis::stream<std::int64_t> stream(so);
    sluice::redis::lease_store leases(c);
    sluice::redis::destination<R> dlq(c, "dead");
    return run_worker(a, stream, leases, &dlq);
  }
  sluice::sqlite::stream_options so;
  so.name = "work";
  so.shards = a.shards;
  so.poll_interval = std::chrono::milliseconds(20);
  sluice::sqlite::stream<std::int64_t> stream(a.sqlite, so);
  sluice::sqlite::lease_store leases(a.sqlite);
  sluice::sqlite::destination<R> dlq(a.sqlite, "dead");
  return run_worker(a, stream, leases, &dlq);
} catch (const std::exception& e) {
  std::fprintf(stderr, "lease_worker_main: %s\n", e.what());
  return 1;
}
