// sluice::memory_queue on its own (S-9.1..S-9.7): ids, sending, validation, receipts, FIFO
// groups, deduplication, visibility changes, redrive, stats.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "sluice/sources/memory_queue.hpp"

using namespace std::chrono_literals;
using queue = sluice::memory_queue<sluice::manual_clock>;
using sluice::queue_message;
using sluice::send_options;

namespace {

sluice::queue_options fifo_options(bool content_based = true) {
  sluice::queue_options o;
  o.fifo = true;
  o.content_based_deduplication = content_based;
  return o;
}

std::vector<std::string> bodies(const std::vector<queue_message>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m.body());
  return out;
}

TEST(MemoryQueue, MessageIdsAreUuidShapedAndUnique) {
  sluice::manual_clock clock;
  queue q({}, clock);
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = q.send("x");
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[8], '-');
    EXPECT_EQ(id[14], '4');
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(MemoryQueue, ReceiveSetsVisibilityCountAndTimestamps) {
  sluice::manual_clock clock;
  queue q({}, clock);
  const auto sent = clock.now();
  q.send("a", [] {
    send_options o;
    o.attributes["kind"] = "job";
    return o;
  }());
  clock.advance(5s);
  std::vector<queue_message> got;
  ASSERT_EQ(q.receive(got, 10), 1u);
  EXPECT_EQ(got[0].sent_timestamp, sent);
  EXPECT_EQ(got[0].first_receive_timestamp, clock.now());
  EXPECT_EQ(got[0].approximate_receive_count, 1u);
  EXPECT_EQ(got[0].attributes.at("kind"), "job");
  std::vector<queue_message> again;
  EXPECT_EQ(q.receive(again, 10), 0u) << "invisible during the visibility timeout";
  EXPECT_EQ(q.stats().in_flight, 1u);
  clock.advance(30s);
  ASSERT_EQ(q.receive(again, 10), 1u);
  EXPECT_EQ(again[0].approximate_receive_count, 2u);
  EXPECT_EQ(again[0].first_receive_timestamp, got[0].first_receive_timestamp);
  // The first receipt is stale: deleting with it does nothing.
  EXPECT_FALSE(q.delete_message(got[0].receipt));
  EXPECT_TRUE(q.delete_message(again[0].receipt));
  EXPECT_TRUE(q.empty());
}

TEST(MemoryQueue, ChangeMessageVisibilityReturnsAMessageEarly) {
  sluice::manual_clock clock;
  queue q({}, clock);
  q.send("a");
  std::vector<queue_message> got;
  q.receive(got, 1);
  EXPECT_TRUE(q.change_message_visibility(got[0].receipt, 0s));
  std::vector<queue_message> again;
  EXPECT_EQ(q.receive(again, 1), 1u);
}

TEST(MemoryQueue, ByteBudgetTakesALargerFirstMessageAlone) {
  sluice::manual_clock clock;
  queue q({}, clock);
  q.send(std::string(100, 'a'));
  q.send("b");
  std::vector<queue_message> got;
  EXPECT_EQ(q.receive(got, 10, 50), 1u);
  EXPECT_EQ(q.receive(got, 10, 0), 0u) << "a non-empty batch takes nothing over its budget";
  std::vector<queue_message> next;
  EXPECT_EQ(q.receive(next, 10, 50), 1u);
}

TEST(MemoryQueue, SendValidation) {
  sluice::manual_clock clock;
  queue q({}, clock);
  EXPECT_THROW(q.send(""), sluice::configuration_error);
  EXPECT_THROW(q.send("x", send_options::delayed(901s)), sluice::configuration_error);
  EXPECT_THROW(q.send("x", send_options::in_group("g")), sluice::configuration_error);
  std::vector<sluice::send_entry> eleven(11, sluice::send_entry{"x", {}});
  EXPECT_THROW(q.send_batch(eleven), sluice::configuration_error);
  EXPECT_TRUE(q.empty()) << "nothing of a rejected batch is sent";

  queue f(fifo_options(false), clock);
  EXPECT_THROW(f.send("x"), sluice::configuration_error);                               // no group
  EXPECT_THROW(f.send("x", send_options::in_group("g")), sluice::configuration_error);  // no dedup
  send_options delayed = send_options::in_group("g", "d");
  delayed.delay = 1s;
  EXPECT_THROW(f.send("x", delayed), sluice::configuration_error);
  try {
    sluice::queue_options o;
    o.visibility_timeout = 13h;
    queue bad(o, clock);
    ADD_FAILURE();
  } catch (const sluice::configuration_error& e) {
    EXPECT_NE(std::string(e.what()).find("visibility_timeout"), std::string::npos);
  }
}

TEST(MemoryQueue, SendBatchKeepsOrder) {
  sluice::manual_clock clock;
  queue q({}, clock);
  auto ids = q.send_batch({{"a", {}}, {"b", {}}, {"c", {}}});
  ASSERT_EQ(ids.size(), 3u);
  std::vector<queue_message> got;
  q.receive(got, 10);
  EXPECT_EQ(bodies(got), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(got[1].message_id, ids[1]);
}

// Q-09 (S-9.3): content-based deduplication over 5 minutes.
TEST(MemoryQueue, Q09_deduplication_window) {
  sluice::manual_clock clock;
  queue q(fifo_options(), clock);
  const std::string a = q.send("x", send_options::in_group("g"));
  clock.advance(100s);
  EXPECT_EQ(q.send("x", send_options::in_group("g")), a);
  clock.advance(200s);  // 300 s after the first: the window is over
  const std::string b = q.send("x", send_options::in_group("g"));
  EXPECT_NE(b, a);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.stats().deduplicated, 1u);
  // An explicit id deduplicates whatever the body.
  const std::string c = q.send("y", send_options::in_group("g", "id-1"));
  EXPECT_EQ(q.send("z", send_options::in_group("h", "id-1")), c);
  EXPECT_EQ(q.size(), 3u);
}

// S-9.7: a group with a message in flight is passed over; other groups proceed.
TEST(MemoryQueue, FifoPassesOverAGroupInFlight) {
  sluice::manual_clock clock;
  queue q(fifo_options(), clock);
  for (const char* m : {"A1", "A2", "B1", "A3"})
    q.send(m, send_options::in_group(std::string(1, m[0])));
  std::vector<queue_message> first;
  ASSERT_EQ(q.receive(first, 1), 1u);
  EXPECT_EQ(first[0].body(), "A1");
  std::vector<queue_message> second;
  q.receive(second, 10);
  EXPECT_EQ(bodies(second), (std::vector<std::string>{"B1"})) << "never A2 while A1 is in flight";
  q.delete_message(first[0].receipt);
  q.delete_message(second[0].receipt);
  std::vector<queue_message> third;
  q.receive(third, 10);
  EXPECT_EQ(bodies(third), (std::vector<std::string>{"A2", "A3"}));
  // A2 returns (not deleted): A3 waits behind it even though A3 was received.
  q.delete_message(third[1].receipt);
  clock.advance(30s);
  std::vector<queue_message> fourth;
  q.receive(fourth, 10);
  EXPECT_EQ(bodies(fourth), (std::vector<std::string>{"A2"}));
}

TEST(MemoryQueue, RedrivePolicyValidationAndRedriveToAGivenQueue) {
  sluice::manual_clock clock;
  queue q({}, clock);
  queue dlq({}, clock);
  queue f(fifo_options(), clock);
  EXPECT_THROW(q.set_redrive_policy(f, 3), sluice::configuration_error);
  EXPECT_THROW(q.set_redrive_policy(dlq, 0), sluice::configuration_error);
  EXPECT_THROW(q.set_redrive_policy(q, 3), sluice::configuration_error);
  q.set_redrive_policy(dlq, 1);
  EXPECT_THROW(dlq.set_redrive_policy(q, 1), sluice::configuration_error);
  queue third({}, clock);
  dlq.set_redrive_policy(third, 1);
  EXPECT_THROW(third.set_redrive_policy(q, 1), sluice::configuration_error) << "a longer cycle";
  q.send("poison");
  std::vector<queue_message> got;
  q.receive(got, 1);
  clock.advance(30s);
  std::vector<queue_message> none;
  EXPECT_EQ(q.receive(none, 1), 0u);
  EXPECT_EQ(dlq.size(), 1u);
  queue other({}, clock);
  EXPECT_EQ(dlq.redrive(&other), 1u);
  EXPECT_EQ(other.size(), 1u);
  EXPECT_TRUE(q.empty());
}

TEST(MemoryQueue, RetentionDeletesInFlightMessagesToo) {
  sluice::manual_clock clock;
  sluice::queue_options o;
  o.message_retention_period = 60s;
  o.visibility_timeout = 120s;
  queue q(o, clock);
  q.send("a");
  std::vector<queue_message> got;
  q.receive(got, 1);
  clock.advance(60s);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.stats().expired, 1u);
  EXPECT_FALSE(q.delete_message(got[0].receipt));
}

TEST(MemoryQueue, FifoDeadLetterTimestampResetsStandardKeeps) {
  sluice::manual_clock clock;
  for (bool fifo : {false, true}) {
    sluice::queue_options o = fifo ? fifo_options() : sluice::queue_options{};
    queue q(o, clock);
    queue dlq(o, clock);
    q.set_redrive_policy(dlq, 1);
    const auto sent = clock.now();
    q.send("a", fifo ? send_options::in_group("g") : send_options{});
    std::vector<queue_message> got;
    q.receive(got, 1);
    clock.advance(30s);
    q.receive(got, 1);
    auto letters = dlq.peek_all();
    ASSERT_EQ(letters.size(), 1u);
    EXPECT_EQ(letters[0].sent_timestamp, fifo ? clock.now() : sent);
  }
}

}  // namespace
