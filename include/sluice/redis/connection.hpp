// sluice/redis/connection.hpp: one blocking connection to a Redis server (hiredis), used by the
// Redis stream, checkpoint store, destination and lease store. TCP or a unix socket; connect and
// command timeouts; AUTH with a password or an ACL user; after an I/O error (a restart, a dropped
// connection) it reconnects with exponential back-off and sends the command again. Every error
// names the server, the command and Redis's reply.
//
// Redis Cluster: with connection_options::cluster_nodes set (seed nodes), the same connection
// talks to a cluster. It builds a slot map with CLUSTER SLOTS, sends each command to the master of
// its key's slot (sluice/redis/key_slot.hpp), splits a pipeline into one pipeline per node (each
// command's reply is returned in the caller's order), follows MOVED (updating the slot map) and
// ASK (ASKING then the command on the target, the map unchanged), retries TRYAGAIN and
// CLUSTERDOWN with back-off, and after a node's I/O error refreshes the map from any reachable
// node and sends again. Lua scripts are loaded on every master.
#pragma once

#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <csignal>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/redis/key_slot.hpp"

SLUICE_BEGIN_NAMESPACE
namespace redis {

struct connection_options {
  std::string host = "127.0.0.1";
  int port = 6379;
  /// When set, the connection uses this unix socket instead of host and port.
  std::string unix_socket;
  std::chrono::milliseconds connect_timeout{2000};
  /// How long a command may wait for its reply (blocking reads add their own block time).
  std::chrono::milliseconds command_timeout{5000};
  /// AUTH: with `user` empty, AUTH <password> (requirepass or the default user); else
  /// AUTH <user> <password> (an ACL user, Redis 6+). Nothing is sent when both are empty.
  std::string user;
  std::string password;
  /// After an I/O error: reconnect and resend, waiting reconnect_initial, then twice as long each
  /// time up to reconnect_max, at most reconnect_attempts times before the error is thrown.
  std::chrono::milliseconds reconnect_initial{20};
  std::chrono::milliseconds reconnect_max{1000};
  std::uint32_t reconnect_attempts = 12;
  /// Redis Cluster: when not empty, the connection talks to a cluster whose seed nodes these are
  /// ("host:port"; any one reachable node is enough, it gives the slot map). host, port and
  /// unix_socket are then not used; user, password, timeouts and reconnect apply to every node.
  /// After an I/O error, a TRYAGAIN or a CLUSTERDOWN the command is sent again after the same
  /// back-off as a reconnect, at most reconnect_attempts times.
  std::vector<std::string> cluster_nodes;
  /// Cluster: MOVED and ASK redirections followed for one command before it fails.
  std::uint32_t max_redirects = 16;

  /// Options for a cluster with these seed nodes ("host:port").
  static connection_options cluster(std::vector<std::string> seeds) {
    connection_options o;
    o.cluster_nodes = std::move(seeds);
    return o;
  }
  bool is_cluster() const noexcept { return !cluster_nodes.empty(); }

  /// "127.0.0.1:6379", "unix:/path/to/socket" or "cluster 127.0.0.1:7000,127.0.0.1:7001": how
  /// errors name the server (errors of a cluster command name the node that replied).
  std::string server() const {
    if (is_cluster()) {
      std::string out = "cluster ";
      for (std::size_t i = 0; i < cluster_nodes.size(); ++i)
        out += (i == 0 ? "" : ",") + cluster_nodes[i];
      return out;
    }
    return unix_socket.empty() ? host + ":" + std::to_string(port) : "unix:" + unix_socket;
  }
};

/// A command failed: Redis replied with an error (reply_error) or the connection failed
/// (io_error) and reconnecting did not help.
class error : public std::runtime_error {
 public:
  enum class kind { reply_error, io_error };
  error(kind k, std::string server, std::string command, std::string reply)
      : std::runtime_error("sluice::redis: " + server + ": " + command + ": " + reply),
        kind_(k),
        server_(std::move(server)),
        command_(std::move(command)),
        reply_(std::move(reply)) {}
  kind what_kind() const noexcept { return kind_; }
  const std::string& server() const noexcept { return server_; }
  const std::string& command() const noexcept { return command_; }
  /// Redis's error reply ("ERR ...", "WRONGPASS ..."), or the I/O error's text.
  const std::string& reply() const noexcept { return reply_; }

 private:
  kind kind_;
  std::string server_;
  std::string command_;
  std::string reply_;
};

/// An owned reply.
class reply {
 public:
  reply() = default;
  explicit reply(redisReply* r) noexcept : r_(r) {}
  const redisReply* get() const noexcept { return r_.get(); }
  const redisReply* operator->() const noexcept { return r_.get(); }
  bool is_error() const noexcept { return r_ && r_->type == REDIS_REPLY_ERROR; }
  bool is_nil() const noexcept { return !r_ || r_->type == REDIS_REPLY_NIL; }

 private:
  struct free_reply {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
  };
  std::unique_ptr<redisReply, free_reply> r_;
};

/// The text of a string, status or error reply (empty for others).
inline std::string_view text(const redisReply* r) noexcept {
  if (r == nullptr || r->str == nullptr) return {};
  return {r->str, r->len};
}

/// A Lua script run with EVALSHA (loaded with SCRIPT LOAD on first use and again after NOSCRIPT,
/// say after a restart). `name` names it in errors.
struct script {
  std::string_view name;
  std::string_view source;
};

/// hiredis writes with write(2): a write to a connection the server (or interrupt()) closed
/// raises SIGPIPE, which by default ends the process. The first connection sets SIGPIPE to
/// ignored when it still has its default action (a program that installed a handler keeps it);
/// the write then fails with EPIPE, an I/O error that reconnects.
inline void ignore_sigpipe_once() {
  static const bool done = [] {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      sigemptyset(&ignore.sa_mask);
      sigaction(SIGPIPE, &ignore, nullptr);
    }
    return true;
  }();
  (void)done;
}

class connection {
 public:
  explicit connection(connection_options options) : options_(validated(std::move(options))) {
    ignore_sigpipe_once();
    if (options_.is_cluster()) {
      router_ = std::make_unique<cluster_router>(options_);
      router_->ensure_map();
    } else {
      connect();
    }
  }
  /// Connects on first use instead (connection_pool: the first command's error names it).
  struct deferred_t {};
  static constexpr deferred_t deferred{};
  connection(connection_options options, deferred_t) : options_(validated(std::move(options))) {
    ignore_sigpipe_once();
    if (options_.is_cluster()) router_ = std::make_unique<cluster_router>(options_);
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  const connection_options& options() const noexcept { return options_; }

  /// Sends a command, returns its reply; throws error on an error reply or a lost connection
  /// that reconnecting did not restore.
  reply command(const std::vector<std::string>& args) {
    std::vector<std::vector<std::string>> one{args};
    std::vector<reply> r = pipeline(one);
    return std::move(r.front());
  }
  reply command(std::initializer_list<std::string_view> args) {
    return command(std::vector<std::string>(args.begin(), args.end()));
  }

  /// Sends every command before reading any reply (one round trip). Error replies are thrown as
  /// for command(), after all replies were read.
  std::vector<reply> pipeline(const std::vector<std::vector<std::string>>& commands) {
    std::vector<reply> replies = pipeline_unchecked(commands);
    for (std::size_t i = 0; i < replies.size(); ++i) {
      if (replies[i].is_error())
        throw error(error::kind::reply_error, server_of(reply_servers_, i), describe(commands[i]),
                    std::string(text(replies[i].get())));
    }
    return replies;
  }

  /// As pipeline(), but error replies are returned, not thrown.
  std::vector<reply> pipeline_unchecked(const std::vector<std::vector<std::string>>& commands) {
    if (router_) return router_->run(commands, reply_servers_);
    std::chrono::milliseconds wait = options_.reconnect_initial;
    for (std::uint32_t attempt = 0;; ++attempt) {
      std::string io_error;
      if (ctx_ == nullptr) {
        io_error = try_connect();
      }
      if (io_error.empty()) {
        std::vector<reply> replies;
        io_error = send(commands, replies);
        if (io_error.empty()) return replies;
      }
      if (attempt >= options_.reconnect_attempts) {
        throw error(error::kind::io_error, options_.server(),
                    commands.empty() ? std::string("(none)") : describe(commands.front()),
                    io_error);
      }
      std::this_thread::sleep_for(wait);
      wait = std::min(wait * 2, options_.reconnect_max);
    }
  }

  /// EVALSHA of `s` with `keys` and `args`; loads the script when the server does not know it.
  reply eval(const script& s, const std::vector<std::string>& keys,
             const std::vector<std::string>& args) {
    std::vector<std::string> cmd = evalsha_command(s, keys, args);
    reply r = std::move(pipeline_unchecked({cmd}).front());
    if (r.is_error() && text(r.get()).starts_with("NOSCRIPT")) {
      load(s, true);
      cmd[1] = shas_[s.source.data()];
      r = std::move(pipeline_unchecked({cmd}).front());
    }
    if (r.is_error())
      throw error(error::kind::reply_error, server_of(reply_servers_, 0),
                  "script " + std::string(s.name) + describe_keys(keys),
                  std::string(text(r.get())));
    return r;
  }

  /// Runs `s` once per (keys, args) call in one pipeline; returns the replies in order and throws
  /// the first error reply. Calls refused with NOSCRIPT (the server lost its scripts: a restart)
  /// are sent again, in order, after the script is loaded.
  struct call {
    std::vector<std::string> keys;
    std::vector<std::string> args;
  };
  std::vector<reply> eval_pipeline(const script& s, const std::vector<call>& calls) {
    std::vector<std::vector<std::string>> cmds;
    cmds.reserve(calls.size());
    for (const call& c : calls) cmds.push_back(evalsha_command(s, c.keys, c.args));
    std::vector<reply> replies = pipeline_unchecked(cmds);
    std::vector<std::string> servers = reply_servers_;
    std::vector<std::size_t> again;
    for (std::size_t i = 0; i < replies.size(); ++i) {
      if (replies[i].is_error() && text(replies[i].get()).starts_with("NOSCRIPT"))
        again.push_back(i);
    }
    if (!again.empty()) {
      const std::string sha = load(s, true);
      std::vector<std::vector<std::string>> retry;
      for (std::size_t i : again) {
        cmds[i][1] = sha;
        retry.push_back(cmds[i]);
      }
      std::vector<reply> second = pipeline_unchecked(retry);
      for (std::size_t j = 0; j < again.size(); ++j) {
        replies[again[j]] = std::move(second[j]);
        if (again[j] < servers.size() && j < reply_servers_.size())
          servers[again[j]] = reply_servers_[j];
      }
    }
    for (std::size_t i = 0; i < replies.size(); ++i) {
      if (replies[i].is_error())
        throw error(error::kind::reply_error, server_of(servers, i),
                    "script " + std::string(s.name) + describe_keys(calls[i].keys),
                    std::string(text(replies[i].get())));
    }
    return replies;
  }

  /// The EVALSHA command for `s` (for pipelines); loads the script first if needed.
  std::vector<std::string> evalsha_command(const script& s, const std::vector<std::string>& keys,
                                           const std::vector<std::string>& args) {
    std::vector<std::string> cmd{"EVALSHA", load(s, false), std::to_string(keys.size())};
    cmd.insert(cmd.end(), keys.begin(), keys.end());
    cmd.insert(cmd.end(), args.begin(), args.end());
    return cmd;
  }

  /// Closes the connection (in a cluster: to every node); the next command reconnects.
  void disconnect() noexcept {
    drop();
    if (router_) router_->disconnect();
  }

  /// Cluster: the master ("host:port") that the slot map sends `key` to now (building the map if
  /// there is none yet); a single server: options().server().
  std::string node_of(std::string_view key) {
    if (!router_) return options_.server();
    router_->ensure_map();
    return router_->node_for_slot(key_slot(key));
  }
  /// Cluster: rebuilds the slot map from CLUSTER SLOTS now (it is otherwise built on first use
  /// and then kept up to date by MOVED replies and node failures).
  void refresh_slots() {
    if (router_) router_->refresh_or_throw();
  }
  /// Cluster: MOVED and ASK replies followed so far by this connection (tests, metrics).
  std::uint64_t redirections() const noexcept { return router_ ? router_->redirections() : 0; }

  /// For a subscriber thread: (re)connects, sends SUBSCRIBE `channel` and reads its
  /// confirmation; then next_message() blocks (no timeout) for the next published message.
  /// In a cluster the subscription is on one master (PUBLISH reaches every node), another one
  /// after each failed subscribe.
  void subscribe(const std::string& channel) {
    if (ctx_ == nullptr && router_) {
      router_->ensure_map();
      const std::string node = router_->node_by_rotation(subscribe_rotation_++);
      split_host_port(node, endpoint_host_, endpoint_port_);
    }
    if (ctx_ == nullptr) {
      if (std::string why = try_connect(); !why.empty())
        throw error(error::kind::io_error, options_.server(), "SUBSCRIBE " + channel, why);
    }
    std::vector<reply> r;
    if (std::string why = send({{"SUBSCRIBE", channel}}, r); !why.empty())
      throw error(error::kind::io_error, options_.server(), "SUBSCRIBE " + channel, why);
    if (r.front().is_error())
      throw error(error::kind::reply_error, options_.server(), "SUBSCRIBE " + channel,
                  std::string(text(r.front().get())));
    redisSetTimeout(ctx_.get(), timeval{});  // wait for messages as long as it takes
  }
  reply next_message() {
    void* r = nullptr;
    if (ctx_ == nullptr || redisGetReply(ctx_.get(), &r) != REDIS_OK || r == nullptr) {
      std::string why = ctx_ != nullptr && ctx_->errstr[0] != '\0' ? ctx_->errstr : "no reply";
      drop();
      throw error(error::kind::io_error, options_.server(), "(subscribed)", why);
    }
    return reply(static_cast<redisReply*>(r));
  }
  /// From another thread: makes a blocked next_message() (or command) fail at once.
  /// Sticky: a connection made afterwards is shut down at once too (the caller is stopping).
  void interrupt() noexcept {
    std::lock_guard lock(fd_mutex_);
    interrupted_ = true;
    if (ctx_ != nullptr) ::shutdown(ctx_->fd, SHUT_RDWR);
  }

 private:
  static connection_options validated(connection_options o) {
    if (o.is_cluster()) {
      if (!o.unix_socket.empty())
        sluice::detail::reject("connection_options::unix_socket", o.unix_socket,
                               "no unix socket with cluster_nodes (cluster nodes are TCP)");
      for (const std::string& node : o.cluster_nodes) {
        std::string host;
        int port = 0;
        if (!split_host_port(node, host, port))
          sluice::detail::reject("connection_options::cluster_nodes", node,
                                 "\"host:port\" with a port in 1..65535");
      }
      sluice::detail::require_in_range<std::uint32_t>("connection_options::max_redirects",
                                                      o.max_redirects, 1, 1000, "1..1000");
    } else if (o.unix_socket.empty()) {
      if (o.host.empty()) sluice::detail::reject("connection_options::host", "\"\"", "a host");
      sluice::detail::require_in_range<int>("connection_options::port", o.port, 1, 65535,
                                            "1..65535");
    }
    if (o.connect_timeout <= std::chrono::milliseconds::zero())
      sluice::detail::reject("connection_options::connect_timeout (ms)", o.connect_timeout.count(),
                             "> 0");
    if (o.command_timeout <= std::chrono::milliseconds::zero())
      sluice::detail::reject("connection_options::command_timeout (ms)", o.command_timeout.count(),
                             "> 0");
    if (o.reconnect_initial <= std::chrono::milliseconds::zero() ||
        o.reconnect_max < o.reconnect_initial)
      sluice::detail::reject("connection_options::reconnect_initial/reconnect_max (ms)",
                             std::to_string(o.reconnect_initial.count()) + "/" +
                                 std::to_string(o.reconnect_max.count()),
                             "0 < reconnect_initial <= reconnect_max");
    if (!o.user.empty() && o.password.empty())
      sluice::detail::reject("connection_options::password", "\"\"",
                             "a password when connection_options::user is set");
    return o;
  }

  static timeval to_timeval(std::chrono::milliseconds ms) noexcept {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms.count() % 1000) * 1000);
    return tv;
  }

  /// Connects (and authenticates); an AUTH refusal is thrown (retrying cannot help), an I/O
  /// failure is returned as text.
  std::string try_connect() {
    const timeval tv = to_timeval(options_.connect_timeout);
    const bool tcp = options_.unix_socket.empty();
    const std::string& host = router_ ? endpoint_host_ : options_.host;
    const int port = router_ ? endpoint_port_ : options_.port;
    redisContext* c = tcp ? redisConnectWithTimeout(host.c_str(), port, tv)
                          : redisConnectUnixWithTimeout(options_.unix_socket.c_str(), tv);
    if (c == nullptr) return "cannot allocate a hiredis context";
    {
      std::lock_guard lock(fd_mutex_);
      ctx_.reset(c);
      if (interrupted_ && c->err == 0) ::shutdown(c->fd, SHUT_RDWR);
    }
    if (c->err != 0) {
      std::string why = c->errstr;
      drop();
      return "connect: " + why;
    }
    redisSetTimeout(c, to_timeval(options_.command_timeout));
    if (options_.unix_socket.empty()) redisEnableKeepAlive(c);
    shas_.clear();  // a new server (or a restarted one) may not know our scripts
    if (!options_.password.empty()) {
      std::vector<std::string> auth{"AUTH"};
      if (!options_.user.empty()) auth.push_back(options_.user);
      auth.push_back(options_.password);
      std::vector<reply> r;
      if (std::string io = send({auth}, r); !io.empty()) return io;
      if (r.front().is_error()) {
        std::string why(text(r.front().get()));
        drop();
        throw error(error::kind::reply_error, options_.server(),
                    options_.user.empty() ? "AUTH" : "AUTH " + options_.user, why);
      }
    }
    return {};
  }

  void connect() {
    std::chrono::milliseconds wait = options_.reconnect_initial;
    for (std::uint32_t attempt = 0;; ++attempt) {
      std::string why = try_connect();
      if (why.empty()) return;
      if (attempt >= options_.reconnect_attempts)
        throw error(error::kind::io_error, options_.server(), "connect", why);
      std::this_thread::sleep_for(wait);
      wait = std::min(wait * 2, options_.reconnect_max);
    }
  }

  /// Writes the commands and reads their replies; on an I/O error drops the context and returns
  /// its text.
  std::string send(const std::vector<std::vector<std::string>>& commands,
                   std::vector<reply>& replies) {
    redisContext* c = ctx_.get();
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& cmd : commands) {
      argv.clear();
      lens.clear();
      for (const std::string& a : cmd) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
    }
    replies.clear();
    replies.reserve(commands.size());
    for (std::size_t i = 0; i < commands.size(); ++i) {
      void* r = nullptr;
      if (redisGetReply(c, &r) != REDIS_OK || r == nullptr) {
        std::string why = c->errstr[0] != '\0' ? c->errstr : "no reply";
        drop();
        replies.clear();
        return why;
      }
      replies.emplace_back(static_cast<redisReply*>(r));
    }
    return {};
  }

  std::string load(const script& s, bool again) {
    auto it = shas_.find(s.source.data());
    if (it != shas_.end() && !again) return it->second;
    std::vector<std::string> cmd{"SCRIPT", "LOAD", std::string(s.source)};
    std::string server = options_.server();
    reply r =
        router_ ? router_->broadcast(cmd, server) : std::move(pipeline_unchecked({cmd}).front());
    if (r.is_error() || r->type != REDIS_REPLY_STRING)
      throw error(error::kind::reply_error, server, "SCRIPT LOAD " + std::string(s.name),
                  std::string(text(r.get())));
    return shas_[s.source.data()] = std::string(text(r.get()));
  }

  /// The command as errors show it: its name and first key (never the values, which may be
  /// large or private).
  static std::string describe(const std::vector<std::string>& cmd) {
    if (cmd.empty()) return "(none)";
    std::string out = cmd[0];
    if (cmd.size() > 1 && cmd[0] != "AUTH" && cmd[0] != "EVALSHA")
      out += " " + cmd[1].substr(0, 80);
    if (cmd[0] == "EVALSHA" && cmd.size() > 3) out += " (script) " + cmd[3];
    return out;
  }
  static std::string describe_keys(const std::vector<std::string>& keys) {
    return keys.empty() ? std::string() : " " + keys.front();
  }
  std::string server_of(const std::vector<std::string>& servers, std::size_t i) const {
    return i < servers.size() && !servers[i].empty() ? servers[i] : options_.server();
  }

  /// "host:port" (the port after the last ':', so "::1:7000" works) into its parts.
  static bool split_host_port(std::string_view node, std::string& host, int& port) {
    const std::size_t colon = node.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    const std::string_view p = node.substr(colon + 1);
    int value = 0;
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (ec != std::errc{} || end != p.data() + p.size() || value < 1 || value > 65535) return false;
    host = std::string(node.substr(0, colon));
    port = value;
    return true;
  }

  void drop() noexcept {
    std::lock_guard lock(fd_mutex_);
    ctx_.reset();
  }

  struct free_context {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
  };
  /// Cluster mode: the slot map and one connection per node (each a single-server connection
  /// that fails at once on an I/O error: the router decides whether to retry, and where).
  class cluster_router {
   public:
    explicit cluster_router(const connection_options& owner) : options_(&owner) { slots_.fill(-1); }

    /// Sends the commands, each to its slot's node (one pipeline per node, in the caller's order
    /// within a node), follows redirections, and returns the replies in the caller's order;
    /// `servers` gets the node that gave each reply.
    std::vector<reply> run(const std::vector<std::vector<std::string>>& commands,
                           std::vector<std::string>& servers) {
      const std::size_t n = commands.size();
      std::vector<reply> out(n);
      servers.assign(n, std::string());
      for (const auto& cmd : commands) {
        if (!cmd.empty() && (upper(cmd[0]) == "MULTI" || upper(cmd[0]) == "WATCH"))
          throw error(error::kind::reply_error, options_->server(), describe(cmd),
                      "transactions are not routed in cluster mode (use a Lua script on keys of "
                      "one slot)");
      }
      ensure_map();
      std::vector<int> ask(n, -1);  // the node an ASK sent command i to (for one attempt)
      std::vector<std::uint32_t> redirects(n, 0);
      std::vector<std::size_t> pending(n);
      for (std::size_t i = 0; i < n; ++i) pending[i] = i;
      std::chrono::milliseconds wait = options_->reconnect_initial;
      std::uint32_t attempts = 0;
      while (!pending.empty()) {
        std::map<int, std::vector<std::size_t>> groups;
        for (std::size_t i : pending)
          groups[ask[i] >= 0 ? ask[i] : node_for(commands[i])].push_back(i);
        std::vector<std::size_t> again;
        bool back_off = false;
        bool refresh = false;
        error::kind failure_kind = error::kind::io_error;
        std::string failure_server, failure_command, failure_reply;
        for (auto& [nd, members] : groups) {
          std::vector<std::vector<std::string>> batch;
          std::vector<std::size_t> at;
          for (std::size_t i : members) {
            if (ask[i] >= 0) batch.push_back({"ASKING"});
            at.push_back(batch.size());
            batch.push_back(commands[i]);
          }
          std::vector<reply> replies;
          try {
            replies = node_connection(nd).pipeline_unchecked(batch);
          } catch (const error& e) {
            if (e.what_kind() != error::kind::io_error) throw;
            again.insert(again.end(), members.begin(), members.end());
            back_off = refresh = true;
            failure_kind = error::kind::io_error;
            failure_server = nodes_[static_cast<std::size_t>(nd)].name;
            failure_command = e.command();
            failure_reply = e.reply();
            continue;
          }
          for (std::size_t k = 0; k < members.size(); ++k) {
            const std::size_t i = members[k];
            reply& r = replies[at[k]];
            ask[i] = -1;
            const std::string_view t = r.is_error() ? text(r.get()) : std::string_view();
            const bool moved = t.starts_with("MOVED ");
            if (moved || t.starts_with("ASK ")) {
              if (++redirects[i] > options_->max_redirects)
                throw error(error::kind::reply_error, nodes_[static_cast<std::size_t>(nd)].name,
                            describe(commands[i]),
                            "more than " + std::to_string(options_->max_redirects) +
                                " cluster redirections; the last: " + std::string(t));
              ++redirections_;
              std::uint32_t slot = 0;
              std::string target;
              if (!parse_redirect(t, slot, target))
                throw error(error::kind::reply_error, nodes_[static_cast<std::size_t>(nd)].name,
                            describe(commands[i]), "unreadable redirection: " + std::string(t));
              const int to = node_index(target);
              if (moved)
                slots_[slot] = to;  // the slot's new owner: later commands go there directly
              else
                ask[i] = to;  // this command only, after ASKING; the map is unchanged
              again.push_back(i);
              continue;
            }
            if (t.starts_with("TRYAGAIN") || t.starts_with("CLUSTERDOWN")) {
              // A slot in migration with some of the keys moved, or a cluster failing over.
              again.push_back(i);
              back_off = true;
              refresh = refresh || t.starts_with("CLUSTERDOWN");
              failure_kind = error::kind::reply_error;
              failure_server = nodes_[static_cast<std::size_t>(nd)].name;
              failure_command = describe(commands[i]);
              failure_reply = std::string(t);
              continue;
            }
            out[i] = std::move(r);
            servers[i] = nodes_[static_cast<std::size_t>(nd)].name;
          }
        }
        if (again.empty()) break;
        std::sort(again.begin(), again.end());  // the caller's order again, for every node
        pending = std::move(again);
        if (back_off) {
          if (attempts++ >= options_->reconnect_attempts)
            throw error(failure_kind, failure_server, failure_command, failure_reply);
          std::this_thread::sleep_for(wait);
          wait = std::min(wait * 2, options_->reconnect_max);
        }
        if (refresh) refresh_map();  // best effort: a failed node may have a successor
      }
      return out;
    }

    /// Sends `cmd` to every known master (SCRIPT LOAD); returns the first reply and names its
    /// node in `server`. Nodes that cannot be reached are skipped (they will answer NOSCRIPT
    /// later, and the script is loaded again); fails when none answers.
    reply broadcast(const std::vector<std::string>& cmd, std::string& server) {
      ensure_map();
      reply first;
      bool answered = false;
      std::string why;
      for (std::size_t nd = 0; nd < nodes_.size(); ++nd) {
        if (!owns_slots(static_cast<int>(nd))) continue;
        try {
          reply r =
              std::move(node_connection(static_cast<int>(nd)).pipeline_unchecked({cmd}).front());
          if (r.is_error()) {
            server = nodes_[nd].name;
            return r;
          }
          if (!answered) {
            first = std::move(r);
            server = nodes_[nd].name;
            answered = true;
          }
        } catch (const error& e) {
          if (e.what_kind() != error::kind::io_error) throw;
          why = nodes_[nd].name + ": " + e.reply();
        }
      }
      if (!answered)
        throw error(error::kind::io_error, options_->server(), describe(cmd),
                    "no node answered; the last: " + why);
      return first;
    }

    /// Builds the slot map when there is none, retrying with back-off like a reconnect.
    void ensure_map() {
      if (mapped_) return;
      std::chrono::milliseconds wait = options_->reconnect_initial;
      for (std::uint32_t attempt = 0;; ++attempt) {
        const std::string why = refresh_map();
        if (mapped_) return;
        if (attempt >= options_->reconnect_attempts)
          throw error(error::kind::io_error, options_->server(), "CLUSTER SLOTS", why);
        std::this_thread::sleep_for(wait);
        wait = std::min(wait * 2, options_->reconnect_max);
      }
    }
    void refresh_or_throw() {
      const std::string why = refresh_map();
      if (!why.empty())
        throw error(error::kind::io_error, options_->server(), "CLUSTER SLOTS", why);
    }

    /// Asks the known nodes, then the seeds, for CLUSTER SLOTS; the first full answer replaces
    /// the map. Returns why none did ("" on success). A node without cluster support is a
    /// configuration error and is thrown.
    std::string refresh_map() {
      std::vector<std::string> candidates;
      for (const node& nd : nodes_) candidates.push_back(nd.name);
      for (const std::string& seed : options_->cluster_nodes) {
        if (std::find(candidates.begin(), candidates.end(), seed) == candidates.end())
          candidates.push_back(seed);
      }
      std::string why = "no node to ask";
      for (const std::string& name : candidates) {
        const int nd = node_index(name);
        reply r;
        try {
          r = std::move(node_connection(nd).pipeline_unchecked({{"CLUSTER", "SLOTS"}}).front());
        } catch (const error& e) {
          if (e.what_kind() != error::kind::io_error) throw;
          why = name + ": " + e.reply();
          continue;
        }
        if (r.is_error()) {
          const std::string_view t = text(r.get());
          if (t.find("cluster support disabled") != std::string_view::npos)  // not a cluster
            throw error(error::kind::reply_error, name, "CLUSTER SLOTS", std::string(t));
          why = name + ": " + std::string(t);  // LOADING after a restart...: ask another node
          continue;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
          why = name + ": no slots are assigned yet";
          continue;
        }
        std::array<int, cluster_slots> fresh{};
        fresh.fill(-1);
        const std::string& asked_host = nodes_[static_cast<std::size_t>(nd)].host;
        for (std::size_t e = 0; e < r->elements; ++e) {
          const redisReply* range = r->element[e];
          if (range->type != REDIS_REPLY_ARRAY || range->elements < 3) continue;
          const redisReply* master = range->element[2];
          if (master->type != REDIS_REPLY_ARRAY || master->elements < 2) continue;
          std::string host(text(master->element[0]));
          if (host.empty() || host == "?") host = asked_host;  // "the node you asked"
          const int owner = node_index(host + ":" + std::to_string(master->element[1]->integer));
          const auto from = std::clamp<long long>(range->element[0]->integer, 0, cluster_slots - 1);
          const auto to = std::clamp<long long>(range->element[1]->integer, 0, cluster_slots - 1);
          for (long long slot = from; slot <= to; ++slot)
            fresh[static_cast<std::size_t>(slot)] = owner;
        }
        slots_ = fresh;
        mapped_ = true;
        return {};
      }
      return why;
    }

    std::string node_for_slot(std::uint32_t slot) const {
      const int nd = slots_[slot];
      return nd < 0 ? std::string() : nodes_[static_cast<std::size_t>(nd)].name;
    }
    /// A master picked round-robin (the subscription's node).
    std::string node_by_rotation(std::size_t turn) const {
      std::vector<std::size_t> masters;
      for (std::size_t nd = 0; nd < nodes_.size(); ++nd) {
        if (owns_slots(static_cast<int>(nd))) masters.push_back(nd);
      }
      if (masters.empty()) return options_->cluster_nodes[turn % options_->cluster_nodes.size()];
      return nodes_[masters[turn % masters.size()]].name;
    }
    std::uint64_t redirections() const noexcept { return redirections_; }
    void disconnect() noexcept {
      for (node& nd : nodes_) {
        if (nd.conn) nd.conn->disconnect();
      }
    }

   private:
    struct node {
      std::string name;  // host:port
      std::string host;
      int port = 0;
      std::unique_ptr<connection> conn;
    };

    static std::string upper(std::string_view s) {
      std::string out(s);
      for (char& ch : out) {
        if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
      }
      return out;
    }

    /// The key a command is routed by; empty for commands without one (they go to any node).
    static std::optional<std::string_view> key_of(const std::vector<std::string>& cmd) {
      if (cmd.size() < 2) return std::nullopt;
      const std::string name = upper(cmd[0]);
      if (name == "EVAL" || name == "EVALSHA" || name == "EVAL_RO" || name == "EVALSHA_RO" ||
          name == "FCALL" || name == "FCALL_RO") {
        if (cmd.size() > 3 && cmd[2] != "0") return cmd[3];
        return std::nullopt;
      }
      if (name == "XREAD" || name == "XREADGROUP") {
        for (std::size_t i = 1; i + 1 < cmd.size(); ++i) {
          if (upper(cmd[i]) == "STREAMS") return cmd[i + 1];
        }
        return std::nullopt;
      }
      static constexpr std::array<std::string_view, 22> keyless{
          "PING",   "ECHO",   "AUTH",     "HELLO",     "SCRIPT",   "INFO",    "CLUSTER", "PUBLISH",
          "CONFIG", "DBSIZE", "FLUSHALL", "FLUSHDB",   "TIME",     "COMMAND", "CLIENT",  "ASKING",
          "WAIT",   "KEYS",   "SCAN",     "RANDOMKEY", "FUNCTION", "READONLY"};
      if (std::find(keyless.begin(), keyless.end(), name) != keyless.end()) return std::nullopt;
      return cmd[1];
    }

    int node_for(const std::vector<std::string>& cmd) {
      const auto key = key_of(cmd);
      int nd = key ? slots_[key_slot(*key)] : -1;
      if (nd < 0) {  // keyless, or a slot nobody serves yet: any master (it redirects if needed)
        for (std::size_t i = 0; i < nodes_.size() && nd < 0; ++i) {
          if (owns_slots(static_cast<int>(i))) nd = static_cast<int>(i);
        }
      }
      return nd < 0 ? node_index(options_->cluster_nodes.front()) : nd;
    }

    bool owns_slots(int nd) const {
      return std::find(slots_.begin(), slots_.end(), nd) != slots_.end();
    }

    /// "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>".
    static bool parse_redirect(std::string_view t, std::uint32_t& slot, std::string& target) {
      const std::size_t a = t.find(' ');
      const std::size_t b = a == std::string_view::npos ? a : t.find(' ', a + 1);
      if (b == std::string_view::npos) return false;
      const std::string_view number = t.substr(a + 1, b - a - 1);
      const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), slot);
      if (ec != std::errc{} || end != number.data() + number.size() || slot >= cluster_slots)
        return false;
      target = std::string(t.substr(b + 1));
      std::string host;
      int port = 0;
      return split_host_port(target, host, port);
    }

    /// The index of a node by "host:port", added when new.
    int node_index(const std::string& name) {
      for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i].name == name) return static_cast<int>(i);
      }
      node nd;
      nd.name = name;
      split_host_port(name, nd.host, nd.port);
      nodes_.push_back(std::move(nd));
      return static_cast<int>(nodes_.size() - 1);
    }

    connection& node_connection(int index) {
      node& nd = nodes_[static_cast<std::size_t>(index)];
      if (!nd.conn) {
        connection_options o = *options_;
        o.cluster_nodes.clear();
        o.unix_socket.clear();
        o.host = nd.host;
        o.port = nd.port;
        o.reconnect_attempts = 0;  // fail at once: run() retries, maybe on another node
        nd.conn = std::make_unique<connection>(std::move(o), connection::deferred);
      }
      return *nd.conn;
    }

    const connection_options* options_;  // the owner's
    std::vector<node> nodes_;
    std::array<int, cluster_slots> slots_{};  // node index per slot, -1: unknown
    bool mapped_ = false;
    std::uint64_t redirections_ = 0;
  };

  connection_options options_;
  std::unique_ptr<cluster_router> router_;  // cluster mode only
  std::vector<std::string> reply_servers_;  // cluster: the node of each reply of the last call
  std::string endpoint_host_;               // cluster: the node of the subscription (ctx_)
  int endpoint_port_ = 0;
  std::size_t subscribe_rotation_ = 0;
  std::mutex fd_mutex_;  // interrupt() against the owner replacing the context
  bool interrupted_ = false;
  std::unique_ptr<redisContext, free_context> ctx_;
  std::map<const char*, std::string> shas_;  // by script text address: one per script object
};

/// Connections shared by threads: acquire() lends one (made on demand), returning it when the
/// lease ends. A connection whose command threw is still returned (it reconnects on next use).
class connection_pool {
 public:
  explicit connection_pool(connection_options options) : options_(std::move(options)) {}

  class lease {
   public:
    lease(connection_pool* pool, std::unique_ptr<connection> c) : pool_(pool), c_(std::move(c)) {}
    lease(lease&&) noexcept = default;
    lease& operator=(lease&&) = delete;
    lease(const lease&) = delete;
    ~lease() {
      if (c_) pool_->give_back(std::move(c_));
    }
    connection& operator*() const noexcept { return *c_; }
    connection* operator->() const noexcept { return c_.get(); }

   private:
    connection_pool* pool_;
    std::unique_ptr<connection> c_;
  };

  lease acquire() {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        std::unique_ptr<connection> c = std::move(idle_.back());
        idle_.pop_back();
        return {this, std::move(c)};
      }
    }
    return {this, std::make_unique<connection>(options_, connection::deferred)};
  }
  const connection_options& options() const noexcept { return options_; }

 private:
  void give_back(std::unique_ptr<connection> c) {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(c));
  }
  connection_options options_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<connection>> idle_;
};

}  // namespace redis
SLUICE_END_NAMESPACE
