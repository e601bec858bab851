// sluice/sqlite/queue.hpp: a durable queue in a SQLite file, with the semantics of
// sluice::memory_queue (S-9): standard or FIFO, send with attributes and delay, FIFO groups and
// 5-minute deduplication, retention, visibility timeout and receive counts, a redrive policy to a
// dead-letter queue in the same file and redrive back. Every operation is one write transaction,
// so a process killed at any moment loses no message: a message received and not deleted is in
// flight in the file and returns when its visibility timeout passes, and a move to the
// dead-letter queue is one transaction (the message is in exactly one queue).
//
// Several queues may share one file (and the file may hold streams and checkpoints too); several
// processes may use one queue. Sends by this object wake its subscribed pollers at once; sends by
// other processes are seen at the pollers' next receive (a started mapping's waiting poller
// re-checks at the next visibility deadline, or every `poll_interval` while it waits).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/clock.hpp"
#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/queue.hpp"
#include "sluice/source.hpp"
#include "sluice/sources/memory_queue.hpp"
#include "sluice/sqlite/codec.hpp"
#include "sluice/sqlite/database.hpp"

SLUICE_BEGIN_NAMESPACE
namespace sqlite {

inline constexpr int queue_schema_version = 1;

struct queue_file_options {
  /// Without a local send to wake it, a waiting poller checks the file this often (sends by
  /// other processes). Zero: only at visibility deadlines and local sends.
  std::chrono::milliseconds poll_interval{100};
  open_options database{};
};

namespace detail {
// Messages are keyed (queue_id, seq): a receive scans a queue in send order. visible_ns is when
// the message may be received (sent + delay, or receive + visibility timeout); in_flight says it
// was received since it last became visible (so a visible_ns in the future is a visibility
// timeout, not a delay). receive counts receives: a receipt is (seq, receive).
inline const std::string queue_schema = R"sql(
CREATE TABLE sluice_queues(queue_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
  fifo INTEGER NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0,
  expired INTEGER NOT NULL DEFAULT 0, moved INTEGER NOT NULL DEFAULT 0,
  deduplicated INTEGER NOT NULL DEFAULT 0);
CREATE TABLE sluice_queue_messages(queue_id INTEGER NOT NULL, seq INTEGER NOT NULL,
  message_id TEXT NOT NULL, body BLOB NOT NULL, attributes BLOB NOT NULL,
  group_id TEXT NOT NULL, dedup_id TEXT NOT NULL, sent_ns INTEGER NOT NULL,
  first_receive_ns INTEGER NOT NULL DEFAULT 0, visible_ns INTEGER NOT NULL,
  receive_count INTEGER NOT NULL DEFAULT 0, receive INTEGER NOT NULL DEFAULT 0,
  in_flight INTEGER NOT NULL DEFAULT 0, source_queue INTEGER,
  PRIMARY KEY(queue_id, seq)) WITHOUT ROWID;
CREATE INDEX sluice_queue_messages_visible ON sluice_queue_messages(queue_id, visible_ns);
CREATE INDEX sluice_queue_messages_sent ON sluice_queue_messages(queue_id, sent_ns);
CREATE TABLE sluice_queue_dedup(queue_id INTEGER NOT NULL, dedup_key BLOB NOT NULL,
  accepted_ns INTEGER NOT NULL, message_id TEXT NOT NULL,
  PRIMARY KEY(queue_id, dedup_key)) WITHOUT ROWID;
)sql";

/// Attributes as one blob: for each pair, "<key size>:<key><value size>:<value>".
inline std::string encode_attributes(const std::map<std::string, std::string>& a) {
  std::string out;
  for (const auto& [k, v] : a) {
    out += std::to_string(k.size()) + ':' + k;
    out += std::to_string(v.size()) + ':' + v;
  }
  return out;
}
inline std::map<std::string, std::string> decode_attributes(std::string_view s) {
  std::map<std::string, std::string> out;
  auto next = [&s]() {
    const auto colon = s.find(':');
    const std::size_t n = std::stoull(std::string(s.substr(0, colon)));
    std::string v(s.substr(colon + 1, n));
    s.remove_prefix(colon + 1 + n);
    return v;
  };
  while (!s.empty()) {
    std::string k = next();
    out.emplace(std::move(k), next());
  }
  return out;
}
}  // namespace detail

template <clock_type Clock = system_clock>
class queue {
 public:
  using is_queue_source = void;
  using record_type = queue_message;

  queue(const std::filesystem::path& file, queue_options options,
        queue_file_options file_options = {}) requires std::same_as<Clock, system_clock>
      : queue(file, std::move(options), system_clock::instance(), file_options) {}
  queue(const std::filesystem::path& file, queue_options options, Clock& clock,
        queue_file_options file_options = {})
      : options_(std::move(options)),
        file_options_(file_options),
        clock_(&clock),
        db_(file, file_options.database) {
    sluice::detail::validate(options_);
    db_.require_schema("queue", queue_schema_version, detail::queue_schema);
    db_.in_transaction([&] {
      auto& find = db_.cached("SELECT queue_id, fifo FROM sluice_queues WHERE name = ?1");
      auto g = find.scoped();
      find.bind_text(1, options_.name);
      if (find.step()) {
        id_ = find.column_int64(0);
        if ((find.column_int64(1) != 0) != options_.fifo)
          sluice::detail::reject("queue_options.fifo", options_.fifo ? "true" : "false",
                                 "what the queue was created with in this file");
      } else {
        auto& add = db_.cached("INSERT INTO sluice_queues(name, fifo) VALUES(?1, ?2)");
        auto g2 = add.scoped();
        add.bind_text(1, options_.name).bind_int64(2, options_.fifo ? 1 : 0);
        add.step();
        id_ = sqlite3_last_insert_rowid(db_.handle());
      }
    });
  }
  queue(const queue&) = delete;
  queue& operator=(const queue&) = delete;
  ~queue() = default;

  bool fifo() const noexcept { return options_.fifo; }
  std::string_view name() const noexcept { return options_.name; }
  const queue_options& options() const noexcept { return options_; }
  std::string file() const { return detail::file_of(db_.handle()); }

  /// Whether following redrive policies from this queue reaches `q` (a cycle is refused).
  bool leads_to(const queue* q) {
    for (queue* at = this; at != nullptr;) {
      if (at == q) return true;
      std::lock_guard lock(at->mutex_);
      at = at->dlq_;
    }
    return false;
  }

  /// S-9.6; the dead-letter queue must live in the same file (a move is one transaction).
  void set_redrive_policy(queue& dead_letter_queue, std::int64_t max_receive_count) {
    sluice::detail::require_in_range<std::int64_t>("redrive_policy.max_receive_count",
                                                   max_receive_count, 1, 1000, "1..1000");
    if (dead_letter_queue.fifo() != fifo())
      sluice::detail::reject("redrive_policy.dead_letter_queue", dead_letter_queue.name(),
                             fifo() ? "a FIFO queue (the source is FIFO)"
                                    : "a standard queue (the source is standard)");
    if (&dead_letter_queue == this || dead_letter_queue.leads_to(this))
      sluice::detail::reject("redrive_policy.dead_letter_queue", dead_letter_queue.name(),
                             "another queue, whose redrive policies do not lead back to this one");
    if (std::filesystem::path(dead_letter_queue.file()) != std::filesystem::path(file()))
      sluice::detail::reject("redrive_policy.dead_letter_queue", dead_letter_queue.file(),
                             "a queue in the same file (" + file() + ")");
    std::lock_guard lock(mutex_);
    dlq_ = &dead_letter_queue;
    max_receive_count_ = static_cast<std::uint32_t>(max_receive_count);
    std::lock_guard l2(dead_letter_queue.mutex_);
    dead_letter_queue.sources_[id_] = this;
  }

  std::string send(std::string body, send_options options = {}) {
    sluice::detail::validate_send(options_, body, options);
    std::string id;
    {
      std::lock_guard lock(mutex_);
      db_.in_transaction([&] { id = enqueue_locked(body, options, clock_->now()); });
    }
    notify();
    return id;
  }

  std::vector<std::string> send_batch(std::vector<send_entry> entries) {
    sluice::detail::validate_batch_count(entries.size());
    for (const auto& e : entries) sluice::detail::validate_send(options_, e.body, e.options);
    std::vector<std::string> ids;
    {
      std::lock_guard lock(mutex_);
      db_.in_transaction([&] {
        const time_point now = clock_->now();
        for (auto& e : entries) ids.push_back(enqueue_locked(e.body, e.options, now));
      });
    }
    notify();
    return ids;
  }

  /// As memory_queue::receive: one transaction.
  std::size_t receive(std::vector<queue_message>& out, std::size_t max_messages,
                      std::size_t max_bytes = static_cast<std::size_t>(-1),
                      std::optional<duration> visibility_timeout = std::nullopt) {
    const bool out_was_empty = out.empty();
    const std::size_t out_before = out.size();
    std::size_t taken = 0;
    bool moved = false;
    {
      std::lock_guard lock(mutex_);
      try {
        db_.in_transaction([&] {
          const time_point now = clock_->now();
          const std::int64_t now_ns = detail::to_ns(now);
          expire_locked(now_ns);
          const std::int64_t vt_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         visibility_timeout.value_or(options_.visibility_timeout))
                                         .count();
          std::set<std::string> busy;
          if (options_.fifo) {
            auto& b = db_.cached(
                "SELECT DISTINCT group_id FROM sluice_queue_messages WHERE queue_id = ?1 AND "
                "in_flight = 1 AND visible_ns > ?2");
            auto g = b.scoped();
            b.bind_int64(1, id_).bind_int64(2, now_ns);
            while (b.step()) busy.emplace(b.column_text(0));
          }
          std::set<std::string> ours;
          std::vector<std::int64_t> to_dlq;
          std::size_t bytes = 0;
          auto& sel = db_.cached(
              "SELECT seq, message_id, body, attributes, group_id, dedup_id, sent_ns, "
              "first_receive_ns, receive_count, receive FROM sluice_queue_messages "
              "WHERE queue_id = ?1 AND visible_ns <= ?2 ORDER BY seq");
          auto g = sel.scoped();
          sel.bind_int64(1, id_).bind_int64(2, now_ns);
          while (taken < max_messages && sel.step()) {
            std::string group(sel.column_text(4));
            if (options_.fifo && busy.count(group) != 0 && ours.count(group) == 0) continue;
            const std::int64_t seq = sel.column_int64(0);
            const auto count = static_cast<std::uint32_t>(sel.column_int64(8));
            if (dlq_ != nullptr && count >= max_receive_count_) {
              to_dlq.push_back(seq);
              continue;
            }
            const std::string_view body = sel.column_blob(2);
            if ((taken > 0 || !out_was_empty) && bytes + body.size() > max_bytes) break;
            bytes += body.size();
            queue_message m;
            m.sequence = static_cast<sequence_number_t>(seq);
            m.message_id = std::string(sel.column_text(1));
            m.payload = std::string(body);
            m.attributes = detail::decode_attributes(sel.column_blob(3));
            m.message_group_id = group;
            m.message_deduplication_id = std::string(sel.column_text(5));
            m.sent_timestamp = detail::from_ns(sel.column_int64(6));
            const std::int64_t first = sel.column_int64(7);
            m.first_receive_timestamp = first == 0 ? now : detail::from_ns(first);
            m.approximate_receive_count = count + 1;
            m.receipt = {m.sequence, static_cast<std::uint64_t>(sel.column_int64(9)) + 1};
            out.push_back(std::move(m));
            if (options_.fifo) {
              busy.insert(group);
              ours.insert(group);
            }
            ++taken;
          }
          sel.reset();
          auto& upd = db_.cached(
              "UPDATE sluice_queue_messages SET receive_count = receive_count + 1, "
              "receive = receive + 1, in_flight = 1, visible_ns = ?3, first_receive_ns = "
              "CASE WHEN first_receive_ns = 0 THEN ?4 ELSE first_receive_ns END "
              "WHERE queue_id = ?1 AND seq = ?2");
          for (std::size_t i = out_before; i < out.size(); ++i) {
            auto g2 = upd.scoped();
            upd.bind_int64(1, id_)
                .bind_int64(2, static_cast<std::int64_t>(out[i].sequence))
                .bind_int64(3, now_ns + vt_ns)
                .bind_int64(4, now_ns);
            upd.step();
          }
          for (const std::int64_t seq : to_dlq) move_locked(seq, dlq_->id_, now_ns, true);
          moved = !to_dlq.empty();
        });
      } catch (...) {
        out.resize(out_before);
        throw;
      }
    }
    if (moved) dlq_->notify();
    return taken;
  }

  std::size_t delete_messages(const std::vector<receipt_handle>& receipts) {
    std::size_t deleted = 0;
    {
      std::lock_guard lock(mutex_);
      db_.in_transaction([&] {
        auto& del = db_.cached(
            "DELETE FROM sluice_queue_messages WHERE queue_id = ?1 AND seq = ?2 AND "
            "receive = ?3 AND receive > 0");
        for (const receipt_handle& r : receipts) {
          auto g = del.scoped();
          del.bind_int64(1, id_)
              .bind_int64(2, static_cast<std::int64_t>(r.sequence))
              .bind_int64(3, static_cast<std::int64_t>(r.receive));
          del.step();
          deleted += static_cast<std::size_t>(sqlite3_changes(db_.handle()));
        }
      });
    }
    if (options_.fifo && deleted > 0) notify();  // a group may be free
    return deleted;
  }
  bool delete_message(const receipt_handle& r) { return delete_messages({r}) == 1; }

  bool change_message_visibility(const receipt_handle& r, duration timeout) {
    std::int64_t changed = 0;
    {
      std::lock_guard lock(mutex_);
      db_.in_transaction([&] {
        auto& u = db_.cached(
            "UPDATE sluice_queue_messages SET visible_ns = ?4 WHERE queue_id = ?1 AND seq = ?2 "
            "AND receive = ?3 AND in_flight = 1");
        auto g = u.scoped();
        u.bind_int64(1, id_)
            .bind_int64(2, static_cast<std::int64_t>(r.sequence))
            .bind_int64(3, static_cast<std::int64_t>(r.receive))
            .bind_int64(4, detail::to_ns(clock_->now() + std::max(timeout, duration::zero())));
        u.step();
        changed = sqlite3_changes(db_.handle());
      });
    }
    if (changed > 0 && timeout <= duration::zero()) notify();
    return changed > 0;
  }

  /// S-9.6: moves this dead-letter queue's messages back to their source queues (in this file),
  /// or to `to`. Returns how many moved.
  std::size_t redrive(queue* to = nullptr) {
    std::size_t moved = 0;
    std::vector<queue*> wake;
    {
      std::lock_guard lock(mutex_);
      db_.in_transaction([&] {
        const std::int64_t now_ns = detail::to_ns(clock_->now());
        expire_locked(now_ns);
        std::vector<std::pair<std::int64_t, std::int64_t>> rows;  // seq, target
        auto& sel = db_.cached(
            "SELECT seq, source_queue FROM sluice_queue_messages WHERE queue_id = ?1 AND "
            "NOT (in_flight = 1 AND visible_ns > ?2) ORDER BY seq");
        {
          auto g = sel.scoped();
          sel.bind_int64(1, id_).bind_int64(2, now_ns);
          while (sel.step()) {
            const std::int64_t target =
                to != nullptr ? to->id_ : (sel.column_is_null(1) ? -1 : sel.column_int64(1));
            if (target >= 0) rows.emplace_back(sel.column_int64(0), target);
          }
        }
        for (auto [seq, target] : rows) move_locked(seq, target, now_ns, false);
        moved = rows.size();
        if (to != nullptr) {
          wake.push_back(to);
        } else {
          for (auto& [id, q] : sources_) wake.push_back(q);
        }
      });
    }
    for (auto* q : wake) q->notify();
    return moved;
  }

  time_point next_visible_time() {
    std::lock_guard lock(mutex_);
    const std::int64_t now_ns = detail::to_ns(clock_->now());
    auto& s = db_.cached(
        "SELECT (SELECT min(visible_ns) FROM sluice_queue_messages WHERE queue_id = ?1 AND "
        "visible_ns > ?2), (SELECT min(sent_ns) FROM sluice_queue_messages WHERE queue_id = ?1)");
    auto g = s.scoped();
    s.bind_int64(1, id_).bind_int64(2, now_ns);
    time_point next = far_future;
    if (s.step()) {
      if (!s.column_is_null(0)) next = detail::from_ns(s.column_int64(0));
      if (!s.column_is_null(1))
        next = std::min(next, detail::from_ns(s.column_int64(1)) + retention_of_locked());
    }
    if (file_options_.poll_interval.count() > 0)
      next = std::min(next, clock_->now() + file_options_.poll_interval);
    return next;
  }

  bool empty() { return size() == 0; }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    db_.in_transaction([&] { expire_locked(detail::to_ns(clock_->now())); });
    auto& s = db_.cached("SELECT count(*) FROM sluice_queue_messages WHERE queue_id = ?1");
    auto g = s.scoped();
    s.bind_int64(1, id_);
    s.step();
    return static_cast<std::size_t>(s.column_int64(0));
  }

  queue_stats stats() {
    std::lock_guard lock(mutex_);
    const std::int64_t now_ns = detail::to_ns(clock_->now());
    db_.in_transaction([&] { expire_locked(now_ns); });
    queue_stats st;
    auto& s = db_.cached(
        "SELECT coalesce(sum(visible_ns <= ?2), 0), coalesce(sum(in_flight = 1 AND visible_ns > "
        "?2), 0), coalesce(sum(in_flight = 0 AND visible_ns > ?2), 0) FROM "
        "sluice_queue_messages WHERE queue_id = ?1");
    {
      auto g = s.scoped();
      s.bind_int64(1, id_).bind_int64(2, now_ns);
      s.step();
      st.visible = static_cast<std::size_t>(s.column_int64(0));
      st.in_flight = static_cast<std::size_t>(s.column_int64(1));
      st.delayed = static_cast<std::size_t>(s.column_int64(2));
    }
    auto& c =
        db_.cached("SELECT expired, moved, deduplicated FROM sluice_queues WHERE queue_id = ?1");
    auto g = c.scoped();
    c.bind_int64(1, id_);
    c.step();
    st.expired = static_cast<std::uint64_t>(c.column_int64(0));
    st.moved_to_dead_letter_queue = static_cast<std::uint64_t>(c.column_int64(1));
    st.deduplicated = static_cast<std::uint64_t>(c.column_int64(2));
    return st;
  }

  std::vector<queue_message> peek_all() {
    std::lock_guard lock(mutex_);
    db_.in_transaction([&] { expire_locked(detail::to_ns(clock_->now())); });
    std::vector<queue_message> out;
    auto& sel = db_.cached(
        "SELECT seq, message_id, body, group_id, sent_ns, receive_count FROM "
        "sluice_queue_messages WHERE queue_id = ?1 ORDER BY seq");
    auto g = sel.scoped();
    sel.bind_int64(1, id_);
    while (sel.step()) {
      queue_message m;
      m.sequence = static_cast<sequence_number_t>(sel.column_int64(0));
      m.message_id = std::string(sel.column_text(1));
      m.payload = std::string(sel.column_blob(2));
      m.message_group_id = std::string(sel.column_text(3));
      m.sent_timestamp = detail::from_ns(sel.column_int64(4));
      m.approximate_receive_count = static_cast<std::uint32_t>(sel.column_int64(5));
      out.push_back(std::move(m));
    }
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
  duration retention_of_locked() const { return options_.message_retention_period; }

  std::string enqueue_locked(const std::string& body, const send_options& o, time_point now) {
    const std::int64_t now_ns = detail::to_ns(now);
    std::string dedup_key;
    if (options_.fifo) {
      auto& purge =
          db_.cached("DELETE FROM sluice_queue_dedup WHERE queue_id = ?1 AND accepted_ns <= ?2");
      {
        auto g = purge.scoped();
        purge.bind_int64(1, id_).bind_int64(
            2, now_ns - std::chrono::duration_cast<std::chrono::nanoseconds>(
                            sluice::detail::deduplication_interval)
                            .count());
        purge.step();
      }
      dedup_key = o.deduplication_id.empty() ? "body:" + body : "id:" + o.deduplication_id;
      auto& find = db_.cached(
          "SELECT message_id FROM sluice_queue_dedup WHERE queue_id = ?1 AND dedup_key = ?2");
      auto g = find.scoped();
      find.bind_int64(1, id_).bind_blob(2, dedup_key.data(), dedup_key.size());
      if (find.step()) {
        std::string id(find.column_text(0));
        find.reset();
        auto& count = db_.cached(
            "UPDATE sluice_queues SET deduplicated = deduplicated + 1 WHERE queue_id = ?1");
        auto g2 = count.scoped();
        count.bind_int64(1, id_);
        count.step();
        return id;
      }
    }
    std::string id = sluice::detail::next_message_id();
    const std::int64_t seq = bump_locked(id_);
    const std::string attributes = detail::encode_attributes(o.attributes);
    const std::string dedup =
        options_.fifo && o.deduplication_id.empty()
            ? sluice::detail::make_message_id(content_hash(body, 0), content_hash(body, 1))
            : o.deduplication_id;
    const duration delay = o.delay.value_or(options_.delay);
    auto& ins = db_.cached(
        "INSERT INTO sluice_queue_messages(queue_id, seq, message_id, body, attributes, "
        "group_id, dedup_id, sent_ns, visible_ns) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    {
      auto g = ins.scoped();
      ins.bind_int64(1, id_)
          .bind_int64(2, seq)
          .bind_text(3, id)
          .bind_blob(4, body.data(), body.size())
          .bind_blob(5, attributes.data(), attributes.size())
          .bind_text(6, o.message_group_id)
          .bind_text(7, dedup)
          .bind_int64(8, now_ns)
          .bind_int64(9, detail::to_ns(now + delay));
      ins.step();
    }
    if (options_.fifo) {
      auto& d = db_.cached(
          "INSERT INTO sluice_queue_dedup(queue_id, dedup_key, accepted_ns, message_id) "
          "VALUES(?1, ?2, ?3, ?4)");
      auto g = d.scoped();
      d.bind_int64(1, id_).bind_blob(2, dedup_key.data(), dedup_key.size()).bind_int64(3, now_ns);
      d.bind_text(4, id);
      d.step();
    }
    return id;
  }

  static std::uint64_t content_hash(const std::string& body, int which) {
    std::uint64_t h = which == 0 ? 0xcbf29ce484222325ULL : 0x84222325cbf29ce4ULL;
    for (unsigned char c : body) h = (h ^ c) * 0x100000001b3ULL;
    return h;
  }

  std::int64_t bump_locked(std::int64_t queue_id) {
    auto& b = db_.cached(
        "UPDATE sluice_queues SET last_seq = last_seq + 1 WHERE queue_id = ?1 RETURNING last_seq");
    auto g = b.scoped();
    b.bind_int64(1, queue_id);
    b.step();
    return b.column_int64(0);
  }

  /// Moves message seq to queue `target` (same file): a dead letter (to the DLQ: remembers its
  /// source; a FIFO's sent time resets) or a redriven message (back: source cleared).
  void move_locked(std::int64_t seq, std::int64_t target, std::int64_t now_ns, bool dead_letter) {
    const std::int64_t new_seq = bump_locked(target);
    auto& mv = db_.cached(
        "INSERT INTO sluice_queue_messages(queue_id, seq, message_id, body, attributes, group_id, "
        "dedup_id, sent_ns, visible_ns, source_queue) SELECT ?3, ?4, message_id, body, "
        "attributes, group_id, dedup_id, CASE WHEN ?6 THEN ?5 ELSE sent_ns END, ?5, ?7 "
        "FROM sluice_queue_messages WHERE queue_id = ?1 AND seq = ?2");
    {
      auto g = mv.scoped();
      mv.bind_int64(1, id_)
          .bind_int64(2, seq)
          .bind_int64(3, target)
          .bind_int64(4, new_seq)
          .bind_int64(5, now_ns)
          .bind_int64(6, dead_letter && options_.fifo ? 1 : 0);
      if (dead_letter)
        mv.bind_int64(7, id_);
      else
        mv.bind_null(7);
      mv.step();
    }
    auto& del = db_.cached("DELETE FROM sluice_queue_messages WHERE queue_id = ?1 AND seq = ?2");
    {
      auto g = del.scoped();
      del.bind_int64(1, id_).bind_int64(2, seq);
      del.step();
    }
    if (dead_letter) {
      auto& c = db_.cached("UPDATE sluice_queues SET moved = moved + 1 WHERE queue_id = ?1");
      auto g = c.scoped();
      c.bind_int64(1, id_);
      c.step();
    }
  }

  void expire_locked(std::int64_t now_ns) {
    const std::int64_t cutoff =
        now_ns -
        std::chrono::duration_cast<std::chrono::nanoseconds>(retention_of_locked()).count();
    auto& del =
        db_.cached("DELETE FROM sluice_queue_messages WHERE queue_id = ?1 AND sent_ns <= ?2");
    std::int64_t n = 0;
    {
      auto g = del.scoped();
      del.bind_int64(1, id_).bind_int64(2, cutoff);
      del.step();
      n = sqlite3_changes(db_.handle());
    }
    if (n > 0) {
      auto& c = db_.cached("UPDATE sluice_queues SET expired = expired + ?2 WHERE queue_id = ?1");
      auto g = c.scoped();
      c.bind_int64(1, id_).bind_int64(2, n);
      c.step();
    }
  }

  void notify() {
    std::lock_guard lock(listeners_mutex_);
    for (auto* l : listeners_) l->on_data(0);
  }

  queue_options options_;
  queue_file_options file_options_;
  Clock* clock_;
  std::mutex mutex_;
  database db_;
  std::int64_t id_ = 0;
  queue* dlq_ = nullptr;
  std::uint32_t max_receive_count_ = 0;
  std::map<std::int64_t, queue*> sources_;  // queues whose dead-letter queue this is
  std::mutex listeners_mutex_;
  std::vector<data_listener*> listeners_;
};

}  // namespace sqlite
SLUICE_END_NAMESPACE
