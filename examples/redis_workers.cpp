// examples/redis_workers.cpp: one mapping scaled out over several worker processes that share a
// Redis stream's shards through leases (docs/scale-out.md).
//
// In three terminals, with a redis-server on 127.0.0.1:6379:
//   redis_workers --port 6379 --worker A          # runs until Ctrl-C
//   redis_workers --port 6379 --worker B          # the shards split between A and B
//   redis_workers --port 6379 --produce 100000    # puts records; watch A and B share them
// Stop A with Ctrl-C: it writes its final checkpoints and releases its leases; B takes the shards
// over at its next renewal. Kill A with kill -9: B takes them over when A's leases expire.
//
// On a Redis Cluster, name a seed node instead of a port (every process the same way):
//   redis_workers --cluster 127.0.0.1:7000 --worker A
//
// redis_workers --demo   (what the test suite runs) starts a private redis-server in a temporary
// directory, runs two workers in this process, puts 20,000 records, checks every record was
// handled, and stops.
#include <sluice/leases.hpp>
#include <sluice/redis/leases.hpp>
#include <sluice/redis/stream.hpp>
#include <sluice/sluice.hpp>

#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using stream_t = sluice::redis::stream<std::string>;
using record_t = stream_t::record_type;
using namespace std::chrono_literals;

constexpr std::uint32_t kShards = 8;

/// Builds the mapping of one shard: sluice::from(view) | ... like any mapping.
struct count_records {
  std::atomic<std::uint64_t>* handled;
  auto operator()(sluice::shard_view<stream_t>& view) const {
    return sluice::from(view) | sluice::batching(sluice::batch_size(100)) |
           sluice::invoke([h = handled](const sluice::batch<record_t>& b) {
             *h += b.size();  // your work here
           });
  }
};

/// One worker: a lease_worker whose per-shard mappings count what they handle.
class worker {
 public:
  worker(stream_t& stream, sluice::redis::lease_store& leases, const std::string& id)
      : lease_worker_(leases, stream, "orders", options(id), count_records{&handled_},
                      sluice::system_clock::instance()) {}
  void start() { lease_worker_.start(); }
  void stop() { lease_worker_.stop(); }
  std::uint64_t handled() const { return handled_.load(); }
  std::size_t shards() const { return lease_worker_.held().size(); }

 private:
  static sluice::lease_options options(const std::string& id) {
    sluice::lease_options o;
    o.worker_id = id;
    o.lease_duration = 10s;
    o.renew_interval = 2s;
    return o;
  }
  std::atomic<std::uint64_t> handled_{0};
  sluice::lease_worker<sluice::redis::lease_store, stream_t, count_records> lease_worker_;
};

/// --cluster: the seed node of a Redis Cluster; empty: the single server on 127.0.0.1:port.
std::string cluster_seed;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

sluice::redis::stream_options stream_options(int port) {
  sluice::redis::stream_options o;
  o.name = "orders";
  o.shards = kShards;
  if (cluster_seed.empty())
    o.connection.port = port;
  else
    o.connection = sluice::redis::connection_options::cluster({cluster_seed});
  return o;
}

std::atomic<bool> interrupted{false};

int run_worker(int port, const std::string& id) {
  stream_t stream(stream_options(port));
  sluice::redis::lease_store leases(stream.options().connection);
  worker w(stream, leases, id);
  std::signal(SIGINT, [](int) { interrupted = true; });
  std::signal(SIGTERM, [](int) { interrupted = true; });
  w.start();
  std::size_t shown = ~std::size_t{0};
  std::uint64_t shown_handled = ~std::uint64_t{0};
  while (!interrupted) {
    if (w.shards() != shown || w.handled() != shown_handled) {
      shown = w.shards();
      shown_handled = w.handled();
      std::printf("worker %s: %zu of %u shards, %llu records handled\n", id.c_str(), shown, kShards,
                  static_cast<unsigned long long>(shown_handled));
      std::fflush(stdout);
    }
    std::this_thread::sleep_for(500ms);
  }
  w.stop();  // final checkpoints, leases released: the other workers take over at once
  std::printf("worker %s: stopped after %llu records\n", id.c_str(),
              static_cast<unsigned long long>(w.handled()));
  return 0;
}

void produce(stream_t& stream, std::size_t n) {
  std::vector<std::pair<std::string, std::string>> chunk;
  for (std::size_t i = 0; i < n; ++i) {
    chunk.emplace_back("customer-" + std::to_string(i % 1000), "order-" + std::to_string(i));
    if (chunk.size() == 1000 || i + 1 == n) {
      stream.put_many(chunk);
      chunk.clear();
    }
  }
}

/// A port on 127.0.0.1 that was free a moment ago.
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("no free port");
  close(fd);
  return ntohs(addr.sin_port);
}

/// A private redis-server for --demo, killed at the end.
struct private_redis {
  std::filesystem::path dir;
  pid_t pid = -1;
  int port = 0;
  private_redis() {
    std::string pattern = (std::filesystem::temp_directory_path() / "redis-demo-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir = pattern;
    port = free_port();
    std::vector<std::string> args{"redis-server", "--port",    std::to_string(port),
                                  "--bind",       "127.0.0.1", "--dir",
                                  dir.string(),   "--save",    "",
                                  "--appendonly", "no",        "--loglevel",
                                  "warning"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid, "redis-server", nullptr, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("cannot start redis-server (apt-get install redis-server)");
    for (int i = 0; i < 500; ++i) {  // wait until it answers
      try {
        sluice::redis::connection_options o;
        o.port = port;
        o.reconnect_attempts = 0;
        sluice::redis::connection c(o);
        c.command({"PING"});
        return;
      } catch (const sluice::redis::error&) {
        std::this_thread::sleep_for(10ms);
      }
    }
    throw std::runtime_error("redis-server did not start");
  }
  ~private_redis() {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    std::filesystem::remove_all(dir);
  }
};

int demo() {
  private_redis redis;
  stream_t stream(stream_options(redis.port));
  sluice::redis::lease_store leases(stream.options().connection);
  worker a(stream, leases, "A"), b(stream, leases, "B");
  a.start();
  b.start();
  produce(stream, 20'000);
  const auto until = std::chrono::steady_clock::now() + 120s;
  while (a.handled() + b.handled() < 20'000 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  std::printf("A handled %llu records on %zu shards, B %llu on %zu shards\n",
              static_cast<unsigned long long>(a.handled()), a.shards(),
              static_cast<unsigned long long>(b.handled()), b.shards());
  a.stop();
  b.stop();
  const bool ok = a.handled() + b.handled() >= 20'000;
  std::printf(ok ? "every record handled\n" : "records missing\n");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) try {
  int port = 6379;
  std::string id;
  std::size_t records = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--demo") return demo();
    if (i + 1 >= argc) break;
    if (a == "--port")
      port = std::atoi(argv[++i]);
    else if (a == "--cluster")
      cluster_seed = argv[++i];
    else if (a == "--worker")
      id = argv[++i];
    else if (a == "--produce")
      records = std::strtoull(argv[++i], nullptr, 10);
  }
  if (records > 0) {
    stream_t stream(stream_options(port));
    produce(stream, records);
    std::printf("put %zu records on %u shards\n", records, kShards);
    return 0;
  }
  if (!id.empty()) return run_worker(port, id);
  std::fprintf(stderr,
               "usage: redis_workers (--port P | --cluster HOST:PORT) (--worker ID | --produce N)"
               " | --demo\n");
  return 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "redis_workers: %s\n", e.what());
  return 1;
}
