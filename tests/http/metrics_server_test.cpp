// Tests of sluice::http::metrics_server (sluice/http/metrics_server.hpp): /metrics serves the
// watched mappings' series (lag, blocked lanes, failure, process metrics) over HTTP, /healthz
// turns unhealthy when a mapping failed or a lane stayed blocked too long, and the configuration
// is checked when the server is made.
#include "sluice/http/metrics_server.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>

#include "sluice/sluice.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;

namespace {

// The value of one series in an exposition, or -1 when absent.
double series_value(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

httplib::Result get(int port, const char* path) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(30, 0);
  return client.Get(path);
}

// Waits (real time, bounded) until pred() holds; the mapping's threads make it true.
template <class Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(MetricsServer, ServesLagAndProcessMetricsOnLoopback) {
  sluice::memory_stream<int> stream(2);
  std::atomic<bool> open{false};
  auto running = sluice::start(sluice::from(stream) | sluice::batching(sluice::batch_size(5)) |
                                   sluice::invoke([&](const sluice::batch<R>&) {
                                     open.wait(false);  // held until the test opens the gate
                                   }),
                               sluice::mapping_name("orders"));
  for (int i = 0; i < 200; ++i) stream.put("customer-" + std::to_string(i % 13), i);
  sluice::http::metrics_server server;
  server.watch(running);
  const int port = server.start();
  ASSERT_GT(port, 0);

  std::string text;
  ASSERT_TRUE(eventually([&] {
    auto res = get(port, "/metrics");
    if (!res || res->status != 200) return false;
    text = res->body;
    return series_value(text, R"(sluice_polled_event_count_total{mapping="orders",shard="0"})") > 0;
  }));
  auto res = get(port, "/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const sluice::metrics_snapshot m = running.metrics();
  text = res->body;
  // Handlers are held: the records read are not behind the checkpoint.
  double lag = 0;
  for (const sluice::shard_metrics& s : m.shards) {
    const std::string labels = R"({mapping="orders",shard=")" + std::to_string(s.shard_id) + "\"}";
    EXPECT_EQ(series_value(text, "sluice_last_sequence_number" + labels),
              static_cast<double>(stream.last_sequence(s.shard_id)));
    lag += series_value(text, "sluice_lag_records" + labels);
    EXPECT_EQ(series_value(text, "sluice_blocked_lanes" + labels), 0);
  }
  EXPECT_EQ(lag, 200);  // nothing finished: every record is lag
  EXPECT_EQ(series_value(text, R"(sluice_mapping_failed{mapping="orders"})"), 0);
  EXPECT_GT(series_value(text, "process_resident_memory_bytes"), 1e6);
  EXPECT_GT(series_value(text, "process_open_fds"), 2);
  EXPECT_GT(series_value(text, "process_start_time_seconds"), 1.6e9);
  EXPECT_GE(series_value(text, "process_cpu_seconds_total"), 0);

  auto health = get(port, "/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok\n");

  open = true;
  open.notify_all();
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  text = get(port, "/metrics")->body;
  for (int shard = 0; shard < 2; ++shard) {
    EXPECT_EQ(series_value(text, R"(sluice_lag_records{mapping="orders",shard=")" +
                                     std::to_string(shard) + "\"}"),
              0);
  }
  server.stop();
  EXPECT_FALSE(get(port, "/metrics"));  // nothing listens any more
  running.stop();
}

TEST(MetricsServer, HealthzFailsWhenALaneStaysBlockedTooLong) {
  sluice::memory_stream<int> stream(1);
  stream.put("k", 1);
  sluice::manual_clock clock;
  auto running = sluice::start(
      sluice::from(stream) | sluice::batching(sluice::batch_size(1)) |
          sluice::retry(sluice::maximum_retry_attempts(0)) |
          sluice::on_failure(
              [](const sluice::on_failure_record<R>&) { throw std::runtime_error("disk full"); }) |
          sluice::invoke([](const sluice::batch<R>&) { throw std::runtime_error("poison"); }),
      sluice::with_clock(clock), sluice::mapping_name("ledger"));
  sluice::http::metrics_server::config config;
  config.blocked_unhealthy_after = 30s;
  config.now = [&] { return clock.now(); };
  sluice::http::metrics_server server(config);
  server.watch(running);
  const int port = server.start();
  ASSERT_TRUE(eventually([&] { return running.metrics().total.blocked_lanes == 1; }));

  auto health = get(port, "/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200) << health->body;  // blocked, but not for long yet
  const std::string text = get(port, "/metrics")->body;
  EXPECT_EQ(series_value(text, R"(sluice_blocked_lanes{mapping="ledger",shard="0"})"), 1);
  EXPECT_NE(text.find(R"(sluice_destination_error_info{mapping="ledger",shard="0",)"
                      R"(error="std::runtime_error: disk full"} 1)"),
            std::string::npos);

  clock.advance(31s);
  health = get(port, "/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_NE(health->body.find("mapping ledger shard 0: 1 lane(s) blocked for 31000 ms (limit "
                              "30000 ms); last destination error: std::runtime_error: disk full"),
            std::string::npos)
      << health->body;
  server.stop();
  running.request_stop();
  running.stop();
}

TEST(MetricsServer, HealthzFailsAndMetricsSayWhenTheMappingFailed) {
  sluice::memory_stream<int> stream(1);
  stream.put("k", 1);
  auto running = sluice::start(sluice::from(stream) | sluice::filter([](int) -> bool {
                                 throw std::logic_error("bad filter");
                               }) | sluice::invoke([](const sluice::batch<R>&) {}),
                               sluice::mapping_name("broken"));
  sluice::http::metrics_server server;
  server.watch(running);
  const int port = server.start();
  ASSERT_TRUE(eventually([&] { return running.failure() != nullptr; }));
  auto health = get(port, "/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(health->body,
            "mapping broken failed: sluice: a filter or transform threw on shard 0, sequence 1, "
            "key \"k\": std::logic_error: bad filter\n");
  EXPECT_EQ(series_value(get(port, "/metrics")->body, R"(sluice_mapping_failed{mapping="broken"})"),
            1);
  server.stop();
  EXPECT_THROW(running.stop(), sluice::stage_error);
}

TEST(MetricsServer, RejectsABadConfigurationNamingIt) {
  sluice::http::metrics_server::config config;
  config.port = 70000;
  try {
    sluice::http::metrics_server server(config);
    FAIL() << "port 70000 accepted";
  } catch (const sluice::configuration_error& e) {
    EXPECT_STREQ(e.what(),
                 "sluice: metrics_server::config::port = 70000 is out of range; allowed: "
                 "0..65535 (0: a free port)");
  }
  config.port = 0;
  config.blocked_unhealthy_after = 0ms;
  EXPECT_THROW(sluice::http::metrics_server{config}, sluice::configuration_error);
}

TEST(MetricsServer, APortInUseIsAClearError) {
  sluice::http::metrics_server first;
  const int port = first.start();
  sluice::http::metrics_server::config config;
  config.port = port;
  sluice::http::metrics_server second(config);
  try {
    second.start();
    FAIL() << "bound a port already in use";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "sluice::http::metrics_server: cannot listen on 127.0.0.1:" + std::to_string(port));
  }
}

}  // namespace
