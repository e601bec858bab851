// The events hook and the blocked-lane gauge under concurrency (also run under ThreadSanitizer):
// 4 shards x P = 4 lanes fail batches and deliver dead letters through a destination that fails
// now and then, while the JSON-lines sink is written from every worker and another thread scrapes
// the metrics and renders them. At the end the events agree with the metrics: every dead-lettered
// record was announced once, every lane_blocked has its lane_unblocked, no lane is left blocked.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "sluice/events/json_lines.hpp"
#include "sluice/exporters/prometheus.hpp"
#include "sluice/sluice.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;

namespace {

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

struct tally final : sluice::event_sink {
  explicit tally(std::ostream& out) : json(out) {}
  void on_event(const sluice::event& e) noexcept override {
    if (e.kind == sluice::event_kind::dead_letter_delivered) delivered += e.records;
    json.on_event(e);
  }
  std::atomic<std::uint64_t> delivered{0};
  sluice::json_lines_event_sink json;
};

TEST(EventsConcurrency, EventsAgreeWithMetricsAcrossLanes) {
  constexpr int records = 20'000;
  sluice::memory_stream<int> stream(4);
  for (int i = 0; i < records; ++i) stream.put("key-" + std::to_string(i % 997), i);
  std::atomic<std::uint64_t> calls{0};
  auto destination = [&](const sluice::on_failure_record<R>&) {
    if (calls.fetch_add(1) % 3 == 0) throw std::runtime_error("destination hiccup");
  };
  std::ostringstream log;
  tally sink(log);
  auto running = sluice::start(sluice::from(stream) | sluice::batching(sluice::batch_size(50)) |
                                   sluice::parallelization_factor(4) |
                                   sluice::retry(sluice::maximum_retry_attempts(1),
                                                 sluice::backoff::exponential(50us, 2.0, 1ms)) |
                                   sluice::on_failure(destination) |
                                   sluice::invoke([](const sluice::batch<R>& b) {
                                     for (const R& r : b)
                                       if (r.payload % 1000 == 7)
                                         throw std::runtime_error("poison");
                                   }),
                               sluice::events(sink), sluice::workers(4));
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    while (!done) {
      const auto m = running.metrics();
      const std::string text = sluice::to_prometheus(m);
      EXPECT_NE(text.find("sluice_blocked_lanes{"), std::string::npos);
      EXPECT_LE(m.total.blocked_lanes, 16u);
    }
  });
  ASSERT_TRUE(running.wait_until_caught_up(300s));
  done = true;
  scraper.join();
  running.stop();
  const auto m = running.metrics().total;
  EXPECT_EQ(m.blocked_lanes, 0u);
  EXPECT_GT(m.on_failure_destination_delivered_event_count, 0u);
  EXPECT_EQ(sink.delivered.load(), m.on_failure_destination_delivered_event_count);
  const std::string text = log.str();
  EXPECT_EQ(count(text, R"("event":"lane_blocked")"), count(text, R"("event":"lane_unblocked")"));
  EXPECT_GT(count(text, R"("event":"lane_blocked")"), 0u);
  EXPECT_EQ(count(text, R"("event":"batch_failed")"), m.function_errors);
  EXPECT_EQ(count(text, "\n"), count(text, R"({"time":)"));  // whole lines, never interleaved
}

}  // namespace
