// sluice/sources/memory_queue.hpp: an in-memory queue in the manner of Amazon SQS, standard or
// FIFO (S-9): send with attributes and delay, FIFO groups and 5-minute deduplication, retention,
// visibility timeout and receive counts, a redrive policy to a dead-letter queue and redrive
// back. Safe from many producer and consumer threads (one mutex); time comes from the injected
// clock. A mapping reads it with sluice::from(queue) (sluice/detail/queue/runtime.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/clock.hpp"
#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/queue.hpp"
#include "sluice/source.hpp"

SLUICE_BEGIN_NAMESPACE

namespace detail {
/// Process-wide message ids: a random 64-bit seed per process, then a counter through
/// splitmix64, formatted as a UUID (S-9.1).
inline std::string next_message_id() {
  static const std::uint64_t seed = [] {
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) ^ rd();
  }();
  static std::atomic<std::uint64_t> counter{0};
  std::uint64_t s = seed + 0x9E3779B97F4A7C15ULL * (counter.fetch_add(1) + 1);
  auto mix = [](std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  const std::uint64_t a = mix(s);
  const std::uint64_t b = mix(s ^ 0xD1B54A32D192ED03ULL);
  return make_message_id(a, b);
}

constexpr auto deduplication_interval = std::chrono::minutes(5);
}  // namespace detail

template <clock_type Clock = system_clock>
class memory_queue {
 public:
  using is_queue_source = void;
  using record_type = queue_message;

  memory_queue() requires std::same_as<Clock, system_clock>
      : memory_queue(queue_options{}, system_clock::instance()) {}
  explicit memory_queue(queue_options options) requires std::same_as<Clock, system_clock>
      : memory_queue(std::move(options), system_clock::instance()) {}
  memory_queue(queue_options options, Clock& clock) : options_(std::move(options)), clock_(&clock) {
    detail::validate(options_);
  }
  memory_queue(const memory_queue&) = delete;
  memory_queue& operator=(const memory_queue&) = delete;
  ~memory_queue() = default;

  bool fifo() const noexcept { return options_.fifo; }
  std::string_view name() const noexcept { return options_.name; }
  const queue_options& options() const noexcept { return options_; }

  /// Whether following redrive policies from this queue reaches `q` (a cycle would deadlock
  /// moves and send messages round for ever).
  bool leads_to(const memory_queue* q) {
    for (memory_queue* at = this; at != nullptr; at = at->dead_letter_queue())
      if (at == q) return true;
    return false;
  }

  /// S-9.6: a message received max_receive_count times is moved to `dead_letter_queue` at its
  /// next receive. The dead-letter queue must be of the same kind and outlive this queue's use.
  void set_redrive_policy(memory_queue& dead_letter_queue, std::int64_t max_receive_count) {
    detail::require_in_range<std::int64_t>("redrive_policy.max_receive_count", max_receive_count, 1,
                                           1000, "1..1000");
    if (dead_letter_queue.fifo() != fifo())
      detail::reject("redrive_policy.dead_letter_queue", dead_letter_queue.name(),
                     fifo() ? "a FIFO queue (the source is FIFO)"
                            : "a standard queue (the source is standard)");
    if (&dead_letter_queue == this || dead_letter_queue.leads_to(this))
      detail::reject("redrive_policy.dead_letter_queue", dead_letter_queue.name(),
                     "another queue, whose redrive policies do not lead back to this one");
    std::lock_guard lock(mutex_);
    dlq_ = &dead_letter_queue;
    max_receive_count_ = static_cast<std::uint32_t>(max_receive_count);
  }

  /// The dead-letter queue of the redrive policy, or null.
  memory_queue* dead_letter_queue() {
    std::lock_guard lock(mutex_);
    return dlq_;
  }

  /// Sends one message (S-9.2, S-9.3); returns its message id (on a FIFO queue, a duplicate
  /// within 5 minutes returns the first message's id and is not enqueued).
  std::string send(std::string body, send_options options = {}) {
    detail::validate_send(options_, body, options);
    std::string id;
    {
      std::lock_guard lock(mutex_);
      id = enqueue_locked(std::move(body), std::move(options), clock_->now());
    }
    notify();
    return id;
  }

  /// Sends 1..10 messages; each is checked before any is sent. Returns their ids in order.
  std::vector<std::string> send_batch(std::vector<send_entry> entries) {
    detail::validate_batch_count(entries.size());
    for (const auto& e : entries) detail::validate_send(options_, e.body, e.options);
    std::vector<std::string> ids;
    ids.reserve(entries.size());
    {
      std::lock_guard lock(mutex_);
      const time_point now = clock_->now();
      for (auto& e : entries)
        ids.push_back(enqueue_locked(std::move(e.body), std::move(e.options), now));
    }
    notify();
    return ids;
  }

  /// Receives up to max_messages visible messages (S-9.5, S-9.7) whose bodies sum to at most
  /// max_bytes, appending them to out (when out is empty, its first message may be larger). Each
  /// becomes invisible for `visibility_timeout` (default: the queue's) and its receive count goes
  /// up. Messages at their redrive limit move to the dead-letter queue instead.
  std::size_t receive(std::vector<queue_message>& out, std::size_t max_messages,
                      std::size_t max_bytes = static_cast<std::size_t>(-1),
                      std::optional<duration> visibility_timeout = std::nullopt) {
    std::vector<entry> to_dlq;
    const bool out_was_empty = out.empty();  // only a batch's first message may exceed max_bytes
    std::size_t taken = 0;
    {
      std::lock_guard lock(mutex_);
      const time_point now = clock_->now();
      expire_and_promote_locked(now);
      const duration vt = visibility_timeout.value_or(options_.visibility_timeout);
      std::size_t bytes = 0;
      std::vector<const std::string*> groups_taken;  // FIFO: groups this receive may go on with
      for (auto it = ready_.begin(); it != ready_.end() && taken < max_messages;) {
        const sequence_number_t seq = *it;
        auto found = messages_.find(seq);
        entry& e = found->second;
        if (options_.fifo) {
          const auto g = groups_.find(e.group);
          const bool busy = g != groups_.end() && g->second.in_flight > 0;
          const bool ours = std::find_if(groups_taken.begin(), groups_taken.end(), [&](auto* p) {
                              return *p == e.group;
                            }) != groups_taken.end();
          if (busy && !ours) {
            ++it;
            continue;
          }
        }
        if (dlq_ != nullptr && e.receive_count >= max_receive_count_) {
          it = ready_.erase(it);
          if (options_.fifo) forget_group_message_locked(e.group);
          erase_expiry_locked(seq, e);
          to_dlq.push_back(std::move(e));
          messages_.erase(found);
          ++moved_;
          continue;
        }
        if ((taken > 0 || !out_was_empty) && bytes + e.body.size() > max_bytes) break;
        bytes += e.body.size();
        it = ready_.erase(it);
        ++e.receive_count;
        ++e.receive;
        if (e.receive_count == 1) e.first_receive = now;
        e.in_flight = true;
        e.visible_at = now + vt;
        timed_.emplace(e.visible_at, seq);
        ++in_flight_;
        if (options_.fifo) {
          auto& g = groups_[e.group];
          if (g.in_flight++ == 0) groups_taken.push_back(&groups_.find(e.group)->first);
        }
        out.push_back(to_message(seq, e));
        ++taken;
      }
      // Still under this queue's lock, so the message is never in neither queue (a waiter that
      // sees this queue empty finds it in the dead-letter queue).
      if (!to_dlq.empty()) dlq_->accept_dead_letters(std::move(to_dlq), this);
    }
    return taken;
  }

  /// Deletes the messages whose receipts are still their latest receive (S-9.5).
  /// Returns how many were deleted.
  std::size_t delete_messages(const std::vector<receipt_handle>& receipts) {
    std::size_t deleted = 0;
    bool group_freed = false;
    {
      std::lock_guard lock(mutex_);
      for (const receipt_handle& r : receipts) {
        auto it = messages_.find(r.sequence);
        // SQS: the latest receipt deletes, also after the visibility timeout passed (as long as
        // no later receive replaced it).
        if (it == messages_.end() || it->second.receive == 0 || it->second.receive != r.receive)
          continue;
        if (it->second.in_flight) {
          --in_flight_;
          if (options_.fifo && --groups_.find(it->second.group)->second.in_flight == 0)
            group_freed = true;
        } else {
          ready_.erase(it->first);
        }
        if (options_.fifo) forget_group_message_locked(it->second.group);
        erase_expiry_locked(it->first, it->second);
        messages_.erase(it);  // its timed_ entry goes stale and is skipped
        ++deleted;
      }
    }
    if (group_freed) notify();
    return deleted;
  }
  bool delete_message(const receipt_handle& r) { return delete_messages({r}) == 1; }

  /// ChangeMessageVisibility: the message (still under this receipt, in flight) becomes visible
  /// `timeout` from now (0: at once). Returns whether the receipt was current.
  bool change_message_visibility(const receipt_handle& r, duration timeout) {
    bool changed = false;
    {
      std::lock_guard lock(mutex_);
      auto it = messages_.find(r.sequence);
      if (it != messages_.end() && it->second.in_flight && it->second.receive == r.receive) {
        it->second.visible_at = clock_->now() + std::max(timeout, duration::zero());
        timed_.emplace(it->second.visible_at, r.sequence);
        changed = true;
      }
    }
    if (changed && timeout <= duration::zero()) notify();
    return changed;
  }

  /// S-9.6: moves this (dead-letter) queue's messages back to the queue each came from, or to
  /// `to` when given; visible at once, receive count 0, same message id. Returns how many moved.
  std::size_t redrive(memory_queue* to = nullptr) {
    std::vector<std::pair<memory_queue*, entry>> moving;
    {
      std::lock_guard lock(mutex_);
      expire_and_promote_locked(clock_->now());
      for (auto it = messages_.begin(); it != messages_.end();) {
        memory_queue* target = to != nullptr ? to : it->second.source;
        if (target == nullptr || it->second.in_flight) {
          ++it;
          continue;
        }
        ready_.erase(it->first);
        if (options_.fifo) forget_group_message_locked(it->second.group);
        erase_expiry_locked(it->first, it->second);
        moving.emplace_back(target, std::move(it->second));
        it = messages_.erase(it);
      }
    }
    for (auto& [target, e] : moving) target->accept_redriven(std::move(e));
    return moving.size();
  }

  /// When the next delayed or in-flight message becomes visible (far_future if none).
  time_point next_visible_time() {
    std::lock_guard lock(mutex_);
    expire_and_promote_locked(clock_->now());
    while (!timed_.empty() && stale_locked(*timed_.begin())) timed_.erase(timed_.begin());
    time_point next = timed_.empty() ? far_future : timed_.begin()->first;
    if (!expiry_.empty()) next = std::min(next, expiry_.begin()->first);
    return next;
  }

  /// Whether the queue holds no message (visible, delayed or in flight), after retention.
  bool empty() {
    std::lock_guard lock(mutex_);
    expire_and_promote_locked(clock_->now());
    return messages_.empty();
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    expire_and_promote_locked(clock_->now());
    return messages_.size();
  }

  queue_stats stats() {
    std::lock_guard lock(mutex_);
    expire_and_promote_locked(clock_->now());
    queue_stats s;
    s.in_flight = in_flight_;
    s.visible = ready_.size();
    s.delayed = messages_.size() - in_flight_ - ready_.size();
    s.expired = expired_;
    s.moved_to_dead_letter_queue = moved_;
    s.deduplicated = deduplicated_;
    return s;
  }

  /// Every message held, visible or not, in queue order, without receiving it (for tests and
  /// tools; SQS has no such call).
  std::vector<queue_message> peek_all() {
    std::lock_guard lock(mutex_);
    expire_and_promote_locked(clock_->now());
    std::vector<queue_message> out;
    for (const auto& [seq, e] : messages_) out.push_back(to_message(seq, e));
    return out;
  }

  void subscribe(data_listener* l) {
    std::lock_guard lock(listeners_mutex_);
    listeners_.push_back(l);
  }
  void unsubscribe(data_listener* l) {
    std::lock_guard lock(listeners_mutex_);
    std::erase(listeners_, l);
  }

 private:
  struct entry {
    std::string id;
    std::string body;
    std::map<std::string, std::string> attributes;
    std::string group;
    std::string dedup;
    time_point sent{};
    time_point first_receive{};
    time_point visible_at{};
    std::uint32_t receive_count = 0;
    std::uint64_t receive = 0;
    bool in_flight = false;
    memory_queue* source = nullptr;  // a dead letter: the queue it came from
  };
  struct group_state {
    std::size_t in_flight = 0;
    std::size_t messages = 0;
  };

  static queue_message to_message(sequence_number_t seq, const entry& e) {
    queue_message m;
    m.message_id = e.id;
    m.receipt = {seq, e.receive};
    m.payload = e.body;
    m.attributes = e.attributes;
    m.sent_timestamp = e.sent;
    m.first_receive_timestamp = e.first_receive;
    m.approximate_receive_count = e.receive_count;
    m.message_group_id = e.group;
    m.message_deduplication_id = e.dedup;
    m.sequence = seq;
    return m;
  }

  std::string enqueue_locked(std::string&& body, send_options&& o, time_point now) {
    std::string dedup_key;
    if (options_.fifo) {
      while (!dedup_order_.empty() &&
             dedup_order_.front().first + detail::deduplication_interval <= now) {
        auto f = dedup_.find(dedup_order_.front().second);
        if (f != dedup_.end() && f->second.first == dedup_order_.front().first) dedup_.erase(f);
        dedup_order_.pop_front();
      }
      dedup_key = o.deduplication_id.empty() ? "body:" + body : "id:" + o.deduplication_id;
      if (auto f = dedup_.find(dedup_key); f != dedup_.end()) {
        ++deduplicated_;
        return f->second.second;
      }
    }
    entry e;
    e.id = detail::next_message_id();
    e.body = std::move(body);
    e.attributes = std::move(o.attributes);
    e.group = std::move(o.message_group_id);
    e.dedup = o.deduplication_id.empty() && options_.fifo ? content_dedup_id(e.body)
                                                          : std::move(o.deduplication_id);
    e.sent = now;
    const duration delay = o.delay.value_or(options_.delay);
    if (options_.fifo) {
      dedup_.emplace(dedup_key, std::make_pair(now, e.id));
      dedup_order_.emplace_back(now, dedup_key);
    }
    std::string id = e.id;
    insert_locked(std::move(e), now + delay, now);
    return id;
  }

  /// Puts e at the end of the queue, visible from `visible_at`.
  void insert_locked(entry e, time_point visible_at, time_point now) {
    const sequence_number_t seq = ++last_sequence_;
    e.in_flight = false;
    e.visible_at = visible_at;
    expiry_.emplace(e.sent + options_.message_retention_period, seq);
    if (options_.fifo) ++groups_[e.group].messages;
    if (visible_at <= now)
      ready_.insert(seq);
    else
      timed_.emplace(visible_at, seq);
    messages_.emplace(seq, std::move(e));
  }

  static std::string content_dedup_id(const std::string& body) {
    // FNV-1a 64, twice with different offsets: a label, not the key (the key is the body).
    std::uint64_t h1 = 0xcbf29ce484222325ULL, h2 = 0x84222325cbf29ce4ULL;
    for (unsigned char c : body) {
      h1 = (h1 ^ c) * 0x100000001b3ULL;
      h2 = (h2 ^ c) * 0x100000001b3ULL;
    }
    return detail::make_message_id(h1, h2);
  }

  void accept_dead_letters(std::vector<entry> letters, memory_queue* source) {
    {
      std::lock_guard lock(mutex_);
      const time_point now = clock_->now();
      for (auto& e : letters) {
        e.receive_count = 0;
        e.receive = 0;
        e.first_receive = {};
        e.source = source;
        if (options_.fifo) e.sent = now;  // SQS: a FIFO dead letter's enqueue time resets
        insert_locked(std::move(e), now, now);
      }
    }
    notify();
  }

  void accept_redriven(entry e) {
    {
      std::lock_guard lock(mutex_);
      const time_point now = clock_->now();
      e.receive_count = 0;
      e.receive = 0;
      e.first_receive = {};
      e.source = nullptr;
      insert_locked(std::move(e), now, now);
    }
    notify();
  }

  bool stale_locked(const std::pair<const time_point, sequence_number_t>& t) const {
    auto it = messages_.find(t.second);
    return it == messages_.end() || it->second.visible_at != t.first;
  }

  void erase_expiry_locked(sequence_number_t seq, const entry& e) {
    auto [lo, hi] = expiry_.equal_range(e.sent + options_.message_retention_period);
    for (auto it = lo; it != hi; ++it)
      if (it->second == seq) {
        expiry_.erase(it);
        return;
      }
  }

  void forget_group_message_locked(const std::string& group) {
    auto g = groups_.find(group);
    if (g != groups_.end() && --g->second.messages == 0 && g->second.in_flight == 0)
      groups_.erase(g);
  }

  /// S-9.4 retention, then S-9.5: delayed and returned messages whose time has come are visible.
  void expire_and_promote_locked(time_point now) {
    while (!expiry_.empty() && expiry_.begin()->first <= now) {
      const sequence_number_t seq = expiry_.begin()->second;
      expiry_.erase(expiry_.begin());
      auto it = messages_.find(seq);
      if (it == messages_.end()) continue;
      if (it->second.in_flight) {
        --in_flight_;
        if (options_.fifo) --groups_[it->second.group].in_flight;
      }
      if (options_.fifo) forget_group_message_locked(it->second.group);
      ready_.erase(seq);
      messages_.erase(it);
      ++expired_;
    }
    while (!timed_.empty() && timed_.begin()->first <= now) {
      const auto t = *timed_.begin();
      timed_.erase(timed_.begin());
      if (stale_locked(t)) continue;
      entry& e = messages_.find(t.second)->second;
      if (e.in_flight) {
        e.in_flight = false;
        --in_flight_;
        if (options_.fifo) --groups_[e.group].in_flight;
      }
      ready_.insert(t.second);
    }
  }

  void notify() {
    std::lock_guard lock(listeners_mutex_);
    for (auto* l : listeners_) l->on_data(0);
  }

  queue_options options_;
  Clock* clock_;
  std::mutex mutex_;
  std::map<sequence_number_t, entry> messages_;
  std::set<sequence_number_t> ready_;                    // visible, in queue order
  std::multimap<time_point, sequence_number_t> timed_;   // delayed or in flight (may be stale)
  std::multimap<time_point, sequence_number_t> expiry_;  // retention deadlines
  std::unordered_map<std::string, group_state> groups_;  // FIFO
  std::unordered_map<std::string, std::pair<time_point, std::string>> dedup_;  // key -> (t, id)
  std::deque<std::pair<time_point, std::string>> dedup_order_;
  sequence_number_t last_sequence_ = 0;
  std::size_t in_flight_ = 0;
  std::uint64_t expired_ = 0, moved_ = 0, deduplicated_ = 0;
  memory_queue* dlq_ = nullptr;
  std::uint32_t max_receive_count_ = 0;
  std::mutex listeners_mutex_;
  std::vector<data_listener*> listeners_;
};

SLUICE_END_NAMESPACE

#include "sluice/detail/queue/runtime.hpp"  // NOLINT(misc-header-include-cycle): run/start for queues
