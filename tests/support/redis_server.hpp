// tests/support/redis_server.hpp: a private redis-server for one test: its own temporary
// directory, 127.0.0.1 on a free port (and a unix socket in that directory), no RDB snapshots
// (--save ''), AOF only when asked. Killed (SIGKILL: nothing is saved on the way out) when
// destroyed; restart() starts it again on the same port and directory (with AOF, on its data).
#pragma once

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/redis/connection.hpp"
#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

namespace sluice_test {

struct redis_server_options {
  bool aof = false;                     // appendonly yes, appendfsync always
  std::string requirepass;              // AUTH <password> for the default user
  std::vector<std::string> acl_users;   // "<name> on ><pass> ~* +@all" rules, each via --user
  std::vector<std::string> extra_args;  // more command-line options (redis_cluster: cluster mode)

  static redis_server_options with_aof() {
    redis_server_options o;
    o.aof = true;
    return o;
  }
  static redis_server_options with_password(std::string p) {
    redis_server_options o;
    o.requirepass = std::move(p);
    return o;
  }
  static redis_server_options with_users(std::vector<std::string> users) {
    redis_server_options o;
    o.acl_users = std::move(users);
    return o;
  }
};

class redis_server {
 public:
  explicit redis_server(redis_server_options options = {})
      : options_(std::move(options)), port_(free_port()) {
    start();
  }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;
  ~redis_server() { kill_now(); }

  int port() const noexcept { return port_; }
  std::filesystem::path socket() const { return dir_ / "redis.sock"; }
  const std::filesystem::path& dir() const noexcept { return dir_.path(); }
  pid_t pid() const noexcept { return pid_; }

  /// Options to connect over TCP (with the server's password, if any).
  sluice::redis::connection_options tcp() const {
    sluice::redis::connection_options o;
    o.port = port_;
    o.password = options_.requirepass;
    return o;
  }
  sluice::redis::connection_options unix_socket() const {
    sluice::redis::connection_options o = tcp();
    o.unix_socket = socket().string();
    return o;
  }

  /// SIGKILL: an abrupt crash; with AOF fsync always, every acknowledged write is on disk.
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  void restart() {
    kill_now();
    start();
  }

 private:
  void start() {
    std::vector<std::string> args{find_program("redis-server"),
                                  "--port",
                                  std::to_string(port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--unixsocket",
                                  socket().string(),
                                  "--unixsocketperm",
                                  "700",
                                  "--dir",
                                  dir_.path().string(),
                                  "--save",
                                  "",
                                  "--daemonize",
                                  "no",
                                  "--protected-mode",
                                  "no",
                                  "--loglevel",
                                  "warning",
                                  "--appendonly",
                                  options_.aof ? "yes" : "no"};
    if (options_.aof) {
      args.insert(args.end(), {"--appendfsync", "always"});
    }
    if (!options_.requirepass.empty())
      args.insert(args.end(), {"--requirepass", options_.requirepass});
    args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
    for (const std::string& u : options_.acl_users) {  // one argument per word of the rule
      args.push_back("--user");
      std::size_t from = 0;
      while (from < u.size()) {
        const std::size_t to = std::min(u.find(' ', from), u.size());
        if (to > from) args.push_back(u.substr(from, to - from));
        from = to + 1;
      }
    }
    if (args[0].empty()) throw std::runtime_error("redis-server not found (scripts/install-deps)");
    pid_ = spawn(args, dir_ / "redis.log", dir_ / "redis.err");
    // Ready when it answers PING (an AOF restart may take a moment to load).
    sluice::redis::connection_options o = tcp();
    o.reconnect_attempts = 0;
    o.user.clear();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (true) {
      try {
        sluice::redis::connection c(o);
        auto r = c.command({"PING"});
        if (!r.is_error()) return;
      } catch (const sluice::redis::error& e) {
        if (e.reply().find("NOAUTH") != std::string::npos ||
            e.reply().find("LOADING") == std::string::npos) {
          // refused connection while starting: retry; an auth reply means it is up
          if (e.what_kind() == sluice::redis::error::kind::reply_error &&
              e.reply().find("LOADING") == std::string::npos)
            return;
        }
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis-server exited: " + read_file(dir_ / "redis.log") +
                                 read_file(dir_ / "redis.err"));
      }
      if (std::chrono::steady_clock::now() > until)
        throw std::runtime_error("redis-server did not answer PING within 30 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  redis_server_options options_;
  temp_dir dir_;
  int port_;
  pid_t pid_ = -1;
};

}  // namespace sluice_test
