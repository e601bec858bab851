// sluice/http/metrics_server.hpp (target sluice::http, needs cpp-httplib): an HTTP server for
// operations. GET /metrics serves the watched mappings' metrics in the Prometheus text exposition
// format (sluice/exporters/prometheus.hpp: the S-8 metrics per mapping and shard, lag, blocked
// lanes, the last destination error) plus sluice_mapping_failed per mapping and the process_*
// series; GET /healthz answers 200 "ok", or 503 with the reasons when a watched mapping has
// failed or a lane has been blocked longer than blocked_unhealthy_after.
//
// It listens on 127.0.0.1 unless told otherwise (metrics_server::config::address): exposing it
// beyond the machine is an explicit choice.
#pragma once

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/pipeline/lane_job.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/exporters/process.hpp"
#include "sluice/exporters/prometheus.hpp"
#include "sluice/metrics.hpp"
#include "sluice/start.hpp"

SLUICE_BEGIN_NAMESPACE
namespace http {

/// The answer of /healthz.
struct health {
  bool healthy = true;
  std::string text;  // "ok\n", or one line per problem
};

class metrics_server {
 public:
  struct config {
    /// The address to listen on. The default is loopback only; "0.0.0.0" exposes the endpoint.
    std::string address = "127.0.0.1";
    /// The port; 0 picks a free one (port() tells which).
    int port = 0;
    /// /healthz turns unhealthy when a lane has been blocked (its on-failure deliveries failing)
    /// for longer than this. At least 1 ms.
    std::chrono::milliseconds blocked_unhealthy_after = std::chrono::minutes(5);
    /// The clock blocked times are compared with: the watched mappings' clock (default: wall
    /// clock, sluice::system_clock's).
    std::function<time_point()> now = [] { return time_point(std::chrono::system_clock::now()); };
  };

  metrics_server() : metrics_server(config{}) {}
  explicit metrics_server(config c) : config_(std::move(c)) {
    detail::require_in_range<long long>("metrics_server::config::port", config_.port, 0, 65535,
                                        "0..65535 (0: a free port)");
    if (config_.blocked_unhealthy_after < std::chrono::milliseconds(1))
      detail::reject("metrics_server::config::blocked_unhealthy_after",
                     std::to_string(config_.blocked_unhealthy_after.count()) + "ms",
                     "at least 1ms");
    if (config_.address.empty())
      detail::reject("metrics_server::config::address", "\"\"",
                     "an IP address or host name, e.g. 127.0.0.1");
    if (!config_.now) detail::reject("metrics_server::config::now", "empty", "a clock function");
  }
  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;
  ~metrics_server() { stop(); }

  /// Serves a started mapping's metrics and health. The mapping must outlive the server (or
  /// the server be stopped first).
  void watch(const running_mapping& m) {
    watch([&m] { return m.metrics(); }, [&m] { return m.failure(); });
  }
  /// Serves any mapping's metrics: a snapshot function and, optionally, the failure that stopped
  /// it (both called on the server's threads: they must be thread-safe).
  void watch(std::function<metrics_snapshot()> metrics,
             std::function<std::exception_ptr()> failure = {}) {
    std::lock_guard lock(mutex_);
    watched_.push_back({std::move(metrics), std::move(failure)});
  }

  /// Binds and starts serving on a thread of its own; returns the port. Throws
  /// std::runtime_error naming the address and port when it cannot listen there.
  int start() {
    if (thread_.joinable()) return port_;
    server_ = std::make_unique<httplib::Server>();
    // SO_REUSEADDR (a restarted program gets its port back at once), not cpp-httplib's default
    // SO_REUSEPORT, which would let a second server bind the same port and share its requests.
    server_->set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(render_metrics(), "text/plain; version=0.0.4; charset=utf-8");
    });
    server_->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      const health h = check_health();
      res.status = h.healthy ? 200 : 503;
      res.set_content(h.text, "text/plain; charset=utf-8");
    });
    if (config_.port == 0) {
      port_ = server_->bind_to_any_port(config_.address);
    } else {
      port_ = server_->bind_to_port(config_.address, config_.port) ? config_.port : -1;
    }
    if (port_ < 0) {
      server_.reset();
      throw std::runtime_error("sluice::http::metrics_server: cannot listen on " + config_.address +
                               ":" + std::to_string(config_.port));
    }
    listening_done_ = false;
    thread_ = std::thread([this] {
      server_->listen_after_bind();
      listening_done_ = true;
    });
    // The socket listens already (requests queue); stop() only takes effect once the accept
    // loop runs, so wait for it.
    while (!server_->is_running() && !listening_done_) std::this_thread::yield();
    return port_;
  }

  /// The port it listens on (after start()).
  int port() const noexcept { return port_; }

  /// Stops serving and joins its thread. Idempotent.
  void stop() {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }

  /// The body of /metrics.
  std::string render_metrics() const {
    std::vector<metrics_snapshot> snapshots;
    std::vector<bool> failed;
    for (const watched& w : copy()) {
      snapshots.push_back(w.metrics());
      failed.push_back(w.failure && w.failure() != nullptr);
    }
    std::string out = to_prometheus(snapshots);
    out.append(
        "# HELP sluice_mapping_failed 1 when an error stopped the mapping (see its failure()).\n"
        "# TYPE sluice_mapping_failed gauge\n");
    for (std::size_t i = 0; i < snapshots.size(); ++i) {
      out.append("sluice_mapping_failed{mapping=\"");
      detail::append_label_value(out, snapshots[i].mapping_name);
      out.append("\"} ").append(failed[i] ? "1" : "0").append("\n");
    }
    append_process_metrics(out, read_process_stats());
    return out;
  }

  /// What /healthz answers.
  health check_health() const {
    health h{true, {}};
    const time_point now = config_.now();
    for (const watched& w : copy()) {
      const metrics_snapshot m = w.metrics();
      if (w.failure) {
        if (const std::exception_ptr e = w.failure()) {
          h.healthy = false;  // the message names what failed (stage_error: shard, sequence, key)
          h.text += "mapping " + m.mapping_name + " failed: " + detail::describe(e).message + "\n";
        }
      }
      for (const shard_metrics& s : m.shards) {
        if (s.counters.blocked_lanes == 0) continue;
        const auto blocked =
            std::chrono::duration_cast<std::chrono::milliseconds>(now - s.counters.blocked_since);
        if (blocked <= config_.blocked_unhealthy_after) continue;
        h.healthy = false;
        h.text += "mapping " + m.mapping_name + " shard " + std::to_string(s.shard_id) + ": " +
                  std::to_string(s.counters.blocked_lanes) + " lane(s) blocked for " +
                  std::to_string(blocked.count()) + " ms (limit " +
                  std::to_string(config_.blocked_unhealthy_after.count()) +
                  " ms); last destination error: " + s.counters.last_destination_error + "\n";
      }
    }
    if (h.healthy) h.text = "ok\n";
    return h;
  }

 private:
  struct watched {
    std::function<metrics_snapshot()> metrics;
    std::function<std::exception_ptr()> failure;
  };
  std::vector<watched> copy() const {
    std::lock_guard lock(mutex_);
    return watched_;
  }

  config config_;
  mutable std::mutex mutex_;
  std::vector<watched> watched_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> listening_done_{false};
  int port_ = -1;
};

}  // namespace http
SLUICE_END_NAMESPACE
