// S-9.10 and trace Q-15 (docs/semantics.md): filter_criteria on a queue address the message body
// as `body`, as Lambda's SQS event filtering does. A pattern {"body": {...}} tests a JSON body's
// fields and never matches a body that is not JSON; {"body": [...]} tests a plain-string body as
// one string and never matches a JSON body; a message no pattern keeps is deleted, never handed
// over, counted as filtered out. Patterns that address `data` or a stream metadata field on a
// queue, or `body` on a stream, are rejected when the mapping is built. Each case runs with
// sluice::run and with sluice::start.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <sluice/json.hpp>
#include <sluice/sluice.hpp>
#include <sluice/sources/memory_queue.hpp>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using sluice::queue_message;
using queue = sluice::memory_queue<sluice::manual_clock>;
using qbatch = sluice::batch<queue_message>;

enum class mode { run, start };

struct filter_case {
  const char* name;
  std::vector<std::string> patterns;
  std::vector<std::string> bodies;  // sent in this order
  std::vector<std::string> kept;    // the bodies the handler gets, in order
};

// The rules, one case each (Lambda's "Filtering events from an Amazon SQS event source": the
// body's format and the pattern's format for body must agree, or the message is dropped).
const std::vector<filter_case> cases = {
    {"json pattern, json body",
     {R"({"body": {"RequestCode": ["BBBB"]}})"},
     {R"({"RequestCode": "AAAA"})", R"({"RequestCode": "BBBB"})"},
     {R"({"RequestCode": "BBBB"})"}},
    {"json pattern, plain body: dropped",
     {R"({"body": {"RequestCode": ["BBBB"]}})"},
     {"RequestCode BBBB", R"({"RequestCode": "BBBB", "n": 1})"},
     {R"({"RequestCode": "BBBB", "n": 1})"}},
    {"plain pattern, plain body",
     {R"({"body": [{"prefix": "Result: "}]})"},
     {"Result: ok", "Other: ok", "Result: 2"},
     {"Result: ok", "Result: 2"}},
    {"plain pattern, json body: dropped",
     {R"({"body": [{"prefix": "{"}]})"},
     {R"({"a": 1})", "{not json"},
     {"{not json"}},
    {"exact plain string", {R"({"body": ["ping"]})"}, {"ping", "pong", R"("ping")"}, {"ping"}},
    {"exists false needs a json body",
     {R"({"body": {"x": [{"exists": false}]}})"},
     {"hello", R"({"y": 1})", R"({"x": 1})"},
     {R"({"y": 1})"}},
    {"numeric on a json body",
     {R"({"body": {"RecordNumber": [{"numeric": [">", 9999]}]}})"},
     {R"({"RecordNumber": 10000})", R"({"RecordNumber": 5})", "10000"},
     {R"({"RecordNumber": 10000})"}},
    {"$or of a plain and a json branch",
     {R"({"$or": [{"body": ["ping"]}, {"body": {"kind": ["ping"]}}]})"},
     {"ping", R"({"kind": "ping"})", "pong", R"({"kind": "pong"})"},
     {"ping", R"({"kind": "ping"})"}},
    {"two patterns, each with its own form",
     {R"({"body": [{"suffix": "!"}]})", R"({"body": {"level": ["high"]}})"},
     {"stop!", R"({"level": "high"})", R"({"level": "low"})", "go"},
     {"stop!", R"({"level": "high"})"}},
};

class QueueBodyFilter : public ::testing::TestWithParam<mode> {
 protected:
  sluice::manual_clock clock{sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance};

  template <class Mapping>
  sluice::metrics_snapshot drive(Mapping&& m) {
    if (GetParam() == mode::run) return sluice::run(std::move(m), sluice::with_clock(clock));
    auto running = sluice::start(std::move(m), sluice::with_clock(clock), sluice::workers(1));
    EXPECT_TRUE(running.wait_until_caught_up(60s));
    auto snapshot = running.metrics();
    running.stop();
    return snapshot;
  }
};

TEST_P(QueueBodyFilter, Q15_body_addressing_table) {
  for (const filter_case& c : cases) {
    SCOPED_TRACE(c.name);
    queue q({}, clock);
    for (const auto& b : c.bodies) q.send(b);
    std::mutex mutex;
    std::vector<std::string> got;
    auto s = drive(sluice::from(q) | sluice::filter_criteria(c.patterns) |
                   sluice::batching(sluice::batch_size(10)) | sluice::invoke([&](const qbatch& b) {
                     std::lock_guard lock(mutex);
                     for (const auto& m : b) got.push_back(m.body());
                   }));
    EXPECT_EQ(got, c.kept);
    EXPECT_EQ(s.total.filtered_out_event_count, c.bodies.size() - c.kept.size());
    EXPECT_TRUE(q.empty()) << "unmatched messages are deleted, matched ones handled";
  }
}

// Compile-time patterns follow the same rules.
TEST_P(QueueBodyFilter, CompileTimePatternsAddressTheBody) {
  queue q({}, clock);
  q.send(R"({"status": "paid"})");
  q.send(R"({"status": "open"})");
  q.send("paid");
  std::vector<std::string> got;
  std::mutex mutex;
  auto s = drive(sluice::from(q) | sluice::filter_criteria<R"({"body": {"status": ["paid"]}})">() |
                 sluice::invoke([&](const qbatch& b) {
                   std::lock_guard lock(mutex);
                   for (const auto& m : b) got.push_back(m.body());
                 }));
  EXPECT_EQ(got, std::vector<std::string>{R"({"status": "paid"})"});
  EXPECT_EQ(s.total.filtered_out_event_count, 2u);
}

// `data` and the stream metadata fields do not exist on a queue message: Lambda would never
// match such a pattern and every message would be deleted, so the mapping is not built.
TEST_P(QueueBodyFilter, DataOrMetadataOnAQueueIsRejectedWhenBuilt) {
  const std::vector<std::pair<std::string, std::string>> rejected = {
      {R"({"data": {"status": ["paid"]}})", "`data`"},
      {R"({"partitionKey": ["g1"]})", "metadata"},
      {R"({"body": ["x"], "sequenceNumber": ["1"]})", "metadata"},
  };
  for (const auto& [pattern, named] : rejected) {
    SCOPED_TRACE(pattern);
    queue q({}, clock);
    q.send("x");
    int calls = 0;
    try {
      drive(sluice::from(q) | sluice::filter_criteria(pattern) |
            sluice::invoke([&](const qbatch&) { ++calls; }));
      ADD_FAILURE() << "built a queue mapping whose filter addresses " << named;
    } catch (const sluice::configuration_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("filter_criteria"), std::string::npos) << what;
      EXPECT_NE(what.find(named), std::string::npos) << what;
      EXPECT_NE(what.find("`body`"), std::string::npos) << what;
    }
    EXPECT_EQ(calls, 0);
    EXPECT_FALSE(q.empty()) << "nothing was received or deleted";
  }
  queue q({}, clock);
  EXPECT_THROW(drive(sluice::from(q) | sluice::filter_criteria<R"({"data": {"a": [1]}})">() |
                     sluice::invoke([](const qbatch&) {})),
               sluice::configuration_error);
}

// `body` is a queue message's: on a stream the mapping is not built.
TEST_P(QueueBodyFilter, BodyOnAStreamIsRejectedWhenBuilt) {
  using R = sluice::record<std::string>;
  std::vector<R> records{R{"k", 1, sluice::time_point{}, R"({"a": 1})"}};
  auto m = sluice::from(records) | sluice::filter_criteria(R"({"body": {"a": [1]}})") |
           sluice::invoke([](const sluice::batch<R>&) {});
  try {
    if (GetParam() == mode::run) {
      sluice::run(std::move(m));
    } else {
      auto running = sluice::start(std::move(m), sluice::workers(1));
      running.stop();
    }
    ADD_FAILURE() << "built a stream mapping whose filter addresses body";
  } catch (const sluice::configuration_error& e) {
    EXPECT_NE(std::string(e.what()).find("`body`"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, QueueBodyFilter, ::testing::Values(mode::run, mode::start),
                         [](const auto& info) {
                           return info.param == mode::run ? std::string("run")
                                                          : std::string("start");
                         });

}  // namespace
