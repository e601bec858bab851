// sluice/queue.hpp: what a queue source is (S-9). A queue is not a stream: it has no shards and
// no checkpoints; a mapping receives messages (they become invisible for the visibility timeout),
// deletes those it handled and lets the others return. This header holds the vocabulary every
// queue shares: the message, the options, the send parameters, the handler's report and the
// concept the queue runtime (sluice/detail/queue/runtime.hpp) is written against. Queues:
// sluice::memory_queue (sluice/sources/memory_queue.hpp), sluice::sqlite::queue.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/source.hpp"

SLUICE_BEGIN_NAMESPACE

/// Identifies one receive of one message (S-9.5): deleting with it works only while it is the
/// message's latest receive and the message is in flight.
struct receipt_handle {
  sequence_number_t sequence = 0;  // the message's number in its queue
  std::uint64_t receive = 0;       // which receive of it
  friend bool operator==(const receipt_handle&, const receipt_handle&) = default;
};

/// A received message (S-9.1). It is a stream record too (key: the group id, sequence: its
/// number in the queue, arrival: the sent timestamp, payload: the body), so it travels in a
/// sluice::batch and filters read it like any record.
struct queue_message {
  std::string message_id;  // 36 characters, UUID form
  receipt_handle receipt;
  std::string payload;  // the body
  std::map<std::string, std::string> attributes;
  time_point sent_timestamp{};
  time_point first_receive_timestamp{};
  std::uint32_t approximate_receive_count = 0;
  std::string message_group_id;          // FIFO only
  std::string message_deduplication_id;  // FIFO only
  sequence_number_t sequence = 0;

  const std::string& body() const noexcept { return payload; }
  /// filter_criteria address the body as `body`, as Lambda's SQS event filtering (S-9.10).
  using filter_addresses_body = void;
  const std::string& partition_key() const noexcept { return message_group_id; }
  sequence_number_t sequence_number() const noexcept { return sequence; }
  time_point arrival_time() const noexcept { return sent_timestamp; }
};

/// A queue's settings (SQS's queue attributes), checked when the queue is made.
struct queue_options {
  std::string name = "queue";
  bool fifo = false;
  /// FIFO: derive the deduplication id from the body when a send gives none (S-9.3).
  bool content_based_deduplication = false;
  duration visibility_timeout = std::chrono::seconds(30);          // 0..12 h
  duration message_retention_period = std::chrono::hours(24 * 4);  // 60 s..14 days
  duration delay = duration::zero();                               // 0..900 s
  std::size_t maximum_message_bytes = 262'144;                     // 1..1,048,576
};

/// Per-message parameters of send (S-9.2, S-9.3).
struct send_options {
  std::map<std::string, std::string> attributes;
  std::optional<duration> delay;  // standard queues only: 0..900 s (default: the queue's)
  std::string message_group_id;   // FIFO: required, 1..128 characters
  std::string deduplication_id;   // FIFO: required unless content-based deduplication

  /// FIFO: a message of group `group` (deduplication id: `deduplication` or, when empty, the
  /// queue's content-based deduplication).
  static send_options in_group(std::string group, std::string deduplication = {}) {
    send_options o;
    o.message_group_id = std::move(group);
    o.deduplication_id = std::move(deduplication);
    return o;
  }
  /// Standard queues: a message invisible for `d` after it is sent.
  template <class Rep, class Period>
  static send_options delayed(std::chrono::duration<Rep, Period> d) {
    send_options o;
    o.delay = std::chrono::duration_cast<duration>(d);
    return o;
  }
};

/// One entry of send_batch.
struct send_entry {
  std::string body;
  send_options options;
};

/// What a queue holds right now (SQS's approximate counts), plus what left it other than by
/// deletion.
struct queue_stats {
  std::size_t visible = 0;                       // ApproximateNumberOfMessages
  std::size_t in_flight = 0;                     // ApproximateNumberOfMessagesNotVisible
  std::size_t delayed = 0;                       // ApproximateNumberOfMessagesDelayed
  std::uint64_t expired = 0;                     // deleted by retention (S-9.4)
  std::uint64_t moved_to_dead_letter_queue = 0;  // by the redrive policy (S-9.6)
  std::uint64_t deduplicated = 0;                // sends not enqueued (S-9.3)
};

/// The handler's partial batch response on a queue (S-9.11): the message ids of the messages
/// that failed. Honoured with report_batch_item_failures; an empty report is full success; an
/// empty id or one not in the batch fails the whole batch.
struct queue_item_failures {
  std::vector<std::string> item_identifiers;

  queue_item_failures() = default;
  queue_item_failures(std::initializer_list<std::string> ids) : item_identifiers(ids) {}

  void add(std::string_view message_id) { item_identifiers.emplace_back(message_id); }
  bool empty() const noexcept { return item_identifiers.empty(); }
};

namespace detail {
inline void validate(const queue_options& o) {
  using std::chrono::duration_cast;
  using seconds = std::chrono::duration<double>;
  if (o.name.empty()) reject("queue_options.name", "\"\"", "a non-empty name");
  if (o.visibility_timeout < duration::zero() || o.visibility_timeout > std::chrono::hours(12))
    reject("queue_options.visibility_timeout (s)",
           duration_cast<seconds>(o.visibility_timeout).count(), "0..43200 s");
  if (o.message_retention_period < std::chrono::seconds(60) ||
      o.message_retention_period > std::chrono::hours(24 * 14))
    reject("queue_options.message_retention_period (s)",
           duration_cast<seconds>(o.message_retention_period).count(), "60..1209600 s");
  if (o.delay < duration::zero() || o.delay > std::chrono::seconds(900))
    reject("queue_options.delay (s)", duration_cast<seconds>(o.delay).count(), "0..900 s");
  require_in_range<std::size_t>("queue_options.maximum_message_bytes", o.maximum_message_bytes, 1,
                                1'048'576, "1..1048576");
  if (o.content_based_deduplication && !o.fifo)
    reject("queue_options.content_based_deduplication", "true", "FIFO queues only");
}

/// Checks one send against the queue's options (S-9.2, S-9.3).
inline void validate_send(const queue_options& q, std::string_view body, const send_options& s) {
  using seconds = std::chrono::duration<double>;
  require_in_range<std::size_t>(
      "message body (bytes)", body.size(), 1, q.maximum_message_bytes,
      "1..maximum_message_bytes (" + std::to_string(q.maximum_message_bytes) + ")");
  if (q.fifo) {
    require_in_range<std::size_t>("send_options.message_group_id (characters)",
                                  s.message_group_id.size(), 1, 128, "1..128 on a FIFO queue");
    if (s.delay)
      reject("send_options.delay (s)", std::chrono::duration_cast<seconds>(*s.delay).count(),
             "none on a FIFO queue (use queue_options.delay)");
    if (s.deduplication_id.empty() && !q.content_based_deduplication)
      reject("send_options.deduplication_id", "\"\"",
             "1..128 characters, or a queue with content_based_deduplication");
    require_in_range<std::size_t>("send_options.deduplication_id (characters)",
                                  s.deduplication_id.size(), 0, 128, "0..128");
  } else {
    if (!s.message_group_id.empty())
      reject("send_options.message_group_id", s.message_group_id, "none on a standard queue");
    if (!s.deduplication_id.empty())
      reject("send_options.deduplication_id", s.deduplication_id, "none on a standard queue");
    if (s.delay && (*s.delay < duration::zero() || *s.delay > std::chrono::seconds(900)))
      reject("send_options.delay (s)", std::chrono::duration_cast<seconds>(*s.delay).count(),
             "0..900 s");
  }
}

inline void validate_batch_count(std::size_t n) {
  require_in_range<std::size_t>("send_batch entries", n, 1, 10, "1..10");
}

/// Message ids: UUID form (8-4-4-4-12 hex digits, version 4, variant 1), unique in the process.
inline std::string make_message_id(std::uint64_t a, std::uint64_t b) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string id(36, '-');
  std::size_t pos = 0;
  auto put = [&](std::uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i) id[pos++] = hex[(v >> (4 * i)) & 0xF];
  };
  put(a >> 32, 8);
  ++pos;
  put(a >> 16, 4);
  ++pos;
  put(0x4000 | (a & 0x0FFF), 4);
  ++pos;
  put(0x8000 | (b >> 52 & 0x3FFF), 4);
  ++pos;
  put(b, 12);
  return id;
}
}  // namespace detail

/// A queue a mapping can read (S-9): receive(out, max, max_bytes) appends up to max visible
/// messages (whose bodies fit max_bytes, a larger first one alone) and makes them in flight;
/// delete_messages(receipts) deletes those still in flight under those receipts;
/// next_visible_time() is when a delayed or in-flight message becomes visible (far_future if
/// none); empty() whether the queue holds no message; subscribe/unsubscribe a data_listener told
/// of sends (and of FIFO groups that got free).
template <class Q>
concept queue_source = requires(Q& q, const Q& cq, std::vector<queue_message>& out, std::size_t n,
                                const std::vector<receipt_handle>& receipts,
                                data_listener* listener) {
  typename Q::is_queue_source;
  { q.receive(out, n, n) } -> std::convertible_to<std::size_t>;
  { q.delete_messages(receipts) } -> std::convertible_to<std::size_t>;
  { q.next_visible_time() } -> std::same_as<time_point>;
  { q.empty() } -> std::convertible_to<bool>;
  { cq.fifo() } -> std::convertible_to<bool>;
  { cq.name() } -> std::convertible_to<std::string_view>;
  q.subscribe(listener);
  q.unsubscribe(listener);
};

namespace detail {
template <class T>
inline constexpr bool is_queue_source_v = queue_source<T>;
template <class T>
inline constexpr bool is_queue_report_type =
    std::is_same_v<T, queue_item_failures> || std::is_same_v<T, std::optional<queue_item_failures>>;
}  // namespace detail

SLUICE_END_NAMESPACE
