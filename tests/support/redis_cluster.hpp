// tests/support/redis_cluster.hpp: a private Redis Cluster of N masters (no replicas) for one
// test: N redis_servers in cluster mode on 127.0.0.1 (random client and bus ports, each with its
// own temporary directory and nodes.conf, --save ''), the 16384 slots split into N even ranges
// (CLUSTER ADDSLOTSRANGE), a distinct config epoch each, and CLUSTER MEET. The constructor returns
// once every node reports cluster_state:ok and the same slot owners (polled, bounded by 30 s).
// Killed with the servers when destroyed.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/redis/connection.hpp"
#include "sluice/redis/key_slot.hpp"
#include "support/child_process.hpp"
#include "support/redis_server.hpp"

namespace sluice_test {

class redis_cluster {
 public:
  explicit redis_cluster(std::size_t masters = 3) {
    for (std::size_t i = 0; i < masters; ++i) start_node();
    const std::uint32_t per = sluice::redis::cluster_slots / static_cast<std::uint32_t>(masters);
    for (std::size_t i = 0; i < masters; ++i) {
      auto c = direct(i);
      const std::uint32_t from = static_cast<std::uint32_t>(i) * per;
      const std::uint32_t to = i + 1 == masters ? sluice::redis::cluster_slots - 1 : from + per - 1;
      c.command({"CLUSTER", "SET-CONFIG-EPOCH", std::to_string(i + 1)});
      c.command({"CLUSTER", "ADDSLOTSRANGE", std::to_string(from), std::to_string(to)});
      ranges_.push_back({from, to});
    }
    {
      auto first = direct(0);
      for (std::size_t i = 1; i < masters; ++i)
        first.command({"CLUSTER", "MEET", "127.0.0.1", std::to_string(nodes_[i]->port()),
                       std::to_string(bus_ports_[i])});
    }
    wait_until_stable();
  }

  /// Adds a replica of master `of` (CLUSTER MEET, CLUSTER REPLICATE) and waits until its link to
  /// the master is up and every node knows it; returns its index.
  std::size_t add_replica(std::size_t of) {
    const std::size_t r = start_node();
    const std::string master_id = id(of);
    direct(r).command({"CLUSTER", "MEET", "127.0.0.1", std::to_string(nodes_[0]->port()),
                       std::to_string(bus_ports_[0])});
    poll("the replica to learn its master", [&] {
      auto c = direct(r);
      return std::string(sluice::redis::text(c.command({"CLUSTER", "NODES"}).get()))
                 .find(master_id) != std::string::npos;
    });
    direct(r).command({"CLUSTER", "REPLICATE", master_id});
    poll("the replica's link", [&] {
      auto c = direct(r);
      return std::string(sluice::redis::text(c.command({"INFO", "replication"}).get()))
                 .find("master_link_status:up") != std::string::npos;
    });
    wait_until_stable();
    return r;
  }

  std::size_t size() const noexcept { return nodes_.size(); }
  redis_server& node(std::size_t i) { return *nodes_.at(i); }
  /// "127.0.0.1:<port>" of node i, as CLUSTER SLOTS names it.
  std::string name(std::size_t i) const {
    return "127.0.0.1:" + std::to_string(nodes_.at(i)->port());
  }
  /// A single-server connection to node i (no routing: sees redirections as errors).
  sluice::redis::connection direct(std::size_t i) const {
    sluice::redis::connection_options o;
    o.port = nodes_.at(i)->port();
    return sluice::redis::connection(o);
  }
  /// Options of a cluster connection seeded with node 0 only (the rest comes from CLUSTER SLOTS).
  sluice::redis::connection_options options() const {
    return sluice::redis::connection_options::cluster({name(0)});
  }
  /// The node that owned `slot` when the cluster was made.
  std::size_t initial_owner(std::uint32_t slot) const {
    for (std::size_t i = 0; i < ranges_.size(); ++i) {
      if (slot >= ranges_[i].first && slot <= ranges_[i].second) return i;
    }
    return 0;
  }
  /// The node id (CLUSTER MYID) of node i.
  std::string id(std::size_t i) const {
    auto c = direct(i);
    return std::string(sluice::redis::text(c.command({"CLUSTER", "MYID"}).get()));
  }
  /// The node (index) holding `key` now, asked of every node directly (EXISTS): -1 if none.
  int holder(const std::string& key) const {
    int found = -1;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      auto c = direct(i);
      const auto r = c.pipeline_unchecked({{"EXISTS", key}});
      if (!r.front().is_error() && r.front()->integer == 1) {
        if (found >= 0) return -2;  // on two nodes: never expected
        found = static_cast<int>(i);
      }
    }
    return found;
  }

  /// Polls until every node says cluster_state:ok, knows every node, and reports the same owner
  /// for the first slot of each range (bounded: throws after 30 s).
  void wait_until_stable() const {
    poll("cluster_state:ok", [this] { return stable(); });
  }

  /// Polls `done` every 20 ms until it holds; throws after 30 s.
  template <class Done>
  static void poll(const std::string& what, Done done) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!done()) {
      if (std::chrono::steady_clock::now() > until)
        throw std::runtime_error("redis cluster: no " + what + " within 30 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

 private:
  std::size_t start_node() {
    bus_ports_.push_back(free_port());
    redis_server_options o;
    o.extra_args = {"--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    std::to_string(bus_ports_.back()),
                    "--cluster-node-timeout",
                    "5000",
                    "--repl-diskless-sync-delay",
                    "0"};  // a replica syncs at once
    nodes_.push_back(std::make_unique<redis_server>(std::move(o)));
    return nodes_.size() - 1;
  }

  bool stable() const {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      auto c = direct(i);
      const std::string info(sluice::redis::text(c.command({"CLUSTER", "INFO"}).get()));
      if (info.find("cluster_state:ok") == std::string::npos ||
          info.find("cluster_known_nodes:" + std::to_string(nodes_.size())) == std::string::npos)
        return false;
      const auto slots = c.command({"CLUSTER", "SLOTS"});
      std::size_t ranges_seen = 0;
      for (std::size_t e = 0; e < slots->elements; ++e) {
        const redisReply* range = slots->element[e];
        const auto from = static_cast<std::uint32_t>(range->element[0]->integer);
        const auto port = static_cast<int>(range->element[2]->element[1]->integer);
        for (std::size_t k = 0; k < ranges_.size(); ++k) {
          if (ranges_[k].first == from && nodes_[k]->port() == port) ++ranges_seen;
        }
      }
      if (ranges_seen != ranges_.size()) return false;
    }
    return true;
  }

  std::vector<std::unique_ptr<redis_server>> nodes_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> ranges_;
  std::vector<int> bus_ports_;
};

/// One 3-master cluster for every test of a process that asks for it (started on first use,
/// stopped at exit); tests that share it keep apart by key names or prefixes.
inline redis_cluster& shared_redis_cluster() {
  static redis_cluster cluster(3);
  return cluster;
}

}  // namespace sluice_test
