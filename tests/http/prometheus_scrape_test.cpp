// A real Prometheus (Debian package prometheus) scrapes sluice::http::metrics_server every second
// while a mapping runs, and the test reads the series back through Prometheus' HTTP query API:
// they exist, the polled count moves, lag rises while handlers are held and returns to 0. The
// Prometheus server runs on 127.0.0.1 on a free port with its own storage in a temporary
// directory, and is killed at the end. Skipped (with a message) only when no prometheus binary
// is installed; scripts/install-deps installs it.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <optional>
#include <regex>
#include <string>
#include <thread>

#include "sluice/http/metrics_server.hpp"
#include "sluice/sluice.hpp"
#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;

namespace {

class prometheus_server {
 public:
  prometheus_server(const sluice_test::temp_dir& dir, const std::string& binary, int target_port)
      : port_(sluice_test::free_port()) {
    std::ofstream(dir / "prometheus.yml") << "global:\n"
                                             "  scrape_interval: 1s\n"
                                             "  evaluation_interval: 1s\n"
                                             "scrape_configs:\n"
                                             "  - job_name: sluice\n"
                                             "    static_configs:\n"
                                             "      - targets: ['127.0.0.1:"
                                          << target_port << "']\n";
    process_.emplace(
        std::vector<std::string>{binary, "--config.file=" + (dir / "prometheus.yml").string(),
                                 "--storage.tsdb.path=" + (dir / "tsdb").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                 "--log.level=warn"},
        dir / "prometheus.log");
  }

  /// The value of an instant query whose result is one sample, or nullopt (no result yet,
  /// Prometheus not up yet).
  std::optional<double> query(const std::string& promql) {
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(10, 0);
    const auto res =
        client.Get("/api/v1/query", httplib::Params{{"query", promql}}, httplib::Headers{});
    if (!res || res->status != 200) return std::nullopt;
    static const std::regex one_value(
        R"re(^\{"status":"success","data":\{"resultType":"vector","result":\[\{"metric":\{[^}]*\},"value":\[[0-9.]+,"([^"]+)"\]\}\]\})re");
    std::smatch m;
    if (!std::regex_search(res->body, m, one_value)) return std::nullopt;
    return std::stod(m[1]);
  }

  /// Waits (real time, at most 60 s) until the query's value satisfies pred; returns it.
  template <class Pred>
  std::optional<double> wait_for(const std::string& promql, Pred pred) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!process_->running()) {
        ADD_FAILURE() << "prometheus exited:\n" << process_->output();
        return std::nullopt;
      }
      const auto v = query(promql);
      if (v && pred(*v)) return v;
      std::this_thread::sleep_for(200ms);
    }
    ADD_FAILURE() << "timed out waiting for " << promql << "; last value "
                  << (query(promql) ? std::to_string(*query(promql)) : "none")
                  << "\nprometheus output:\n"
                  << process_->output();
    return std::nullopt;
  }

 private:
  int port_;
  std::optional<sluice_test::child_process> process_;
};

TEST(PrometheusScrape, SeriesExistAndMoveInARealPrometheus) {
  const std::string binary = sluice_test::find_program("prometheus");
  if (binary.empty())
    GTEST_SKIP() << "prometheus is not installed (Debian: apt-get install prometheus)";

  sluice::memory_stream<int> stream(2);
  std::atomic<bool> open{false};
  auto running = sluice::start(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
                                   sluice::invoke([&](const sluice::batch<R>&) {
                                     open.wait(false);  // held until the test opens the gate
                                   }),
                               sluice::mapping_name("orders"));
  for (int i = 0; i < 100; ++i) stream.put("customer-" + std::to_string(i % 17), i);

  sluice::http::metrics_server server;
  server.watch(running);
  const int port = server.start();
  sluice_test::temp_dir dir;
  prometheus_server prometheus(dir, binary, port);

  // Scraped: the target is up and the sluice series are there, lag above 0 while held.
  EXPECT_TRUE(prometheus.wait_for(R"(up{job="sluice"})", [](double v) { return v == 1; }));
  const auto held = prometheus.wait_for(R"(sum(sluice_lag_records{mapping="orders"}))",
                                        [](double v) { return v == 100; });
  EXPECT_TRUE(held);
  const auto polled_before = prometheus.wait_for(
      R"(sum(sluice_polled_event_count_total{mapping="orders"}))", [](double v) { return v > 0; });
  ASSERT_TRUE(polled_before);
  EXPECT_TRUE(prometheus.wait_for(R"(process_resident_memory_bytes{job="sluice"})",
                                  [](double v) { return v > 0; }));
  EXPECT_TRUE(prometheus.wait_for(R"(sluice_mapping_failed{mapping="orders"})",
                                  [](double v) { return v == 0; }));

  // Released, then more records: the counter moves to the new total and lag returns to 0.
  open = true;
  open.notify_all();
  for (int i = 0; i < 50; ++i) stream.put("customer-" + std::to_string(i % 17), i);
  ASSERT_TRUE(running.wait_until_caught_up(60s));
  EXPECT_TRUE(prometheus.wait_for(R"(sum(sluice_polled_event_count_total{mapping="orders"}))",
                                  [](double v) { return v == 150; }));
  EXPECT_TRUE(prometheus.wait_for(R"(sum(sluice_succeeded_event_count_total{mapping="orders"}))",
                                  [](double v) { return v == 150; }));
  EXPECT_TRUE(prometheus.wait_for(R"(sum(sluice_lag_records{mapping="orders"}))",
                                  [](double v) { return v == 0; }));
  // rate() over the scraped samples sees the counter move.
  EXPECT_TRUE(
      prometheus.wait_for(R"(sum(increase(sluice_polled_event_count_total{mapping="orders"}[1m])))",
                          [&](double v) { return v > 0; }));
  server.stop();
  running.stop();
}

}  // namespace
