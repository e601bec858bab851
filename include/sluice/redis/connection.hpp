// sluice/redis/connection.hpp: one blocking connection to a Redis server (hiredis), used by the
// Redis stream, checkpoint store, destination and lease store. TCP or a unix socket; connect and
// command timeouts; AUTH with a password or an ACL user; after an I/O error (a restart, a dropped
// connection) it reconnects with exponential back-off and sends the command again. Every error
// names the server, the command and Redis's reply.
#pragma once

#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <csignal>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"

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

  /// "127.0.0.1:6379" or "unix:/path/to/socket": how errors name the server.
  std::string server() const {
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
    connect();
  }
  /// Connects on first use instead (connection_pool: the first command's error names it).
  struct deferred_t {};
  static constexpr deferred_t deferred{};
  connection(connection_options options, deferred_t) : options_(validated(std::move(options))) {
    ignore_sigpipe_once();
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
        throw error(error::kind::reply_error, options_.server(), describe(commands[i]),
                    std::string(text(replies[i].get())));
    }
    return replies;
  }

  /// As pipeline(), but error replies are returned, not thrown.
  std::vector<reply> pipeline_unchecked(const std::vector<std::vector<std::string>>& commands) {
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
      throw error(error::kind::reply_error, options_.server(),
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
      for (std::size_t j = 0; j < again.size(); ++j) replies[again[j]] = std::move(second[j]);
    }
    for (std::size_t i = 0; i < replies.size(); ++i) {
      if (replies[i].is_error())
        throw error(error::kind::reply_error, options_.server(),
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

  /// Closes the connection; the next command reconnects.
  void disconnect() noexcept { drop(); }

  /// For a subscriber thread: (re)connects, sends SUBSCRIBE `channel` and reads its
  /// confirmation; then next_message() blocks (no timeout) for the next published message.
  void subscribe(const std::string& channel) {
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
    if (o.unix_socket.empty()) {
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
    redisContext* c = options_.unix_socket.empty()
                          ? redisConnectWithTimeout(options_.host.c_str(), options_.port, tv)
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
    reply r = std::move(pipeline_unchecked({cmd}).front());
    if (r.is_error() || r->type != REDIS_REPLY_STRING)
      throw error(error::kind::reply_error, options_.server(), "SCRIPT LOAD " + std::string(s.name),
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

  void drop() noexcept {
    std::lock_guard lock(fd_mutex_);
    ctx_.reset();
  }

  struct free_context {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
  };
  connection_options options_;
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
