// sluice/redis/stream.hpp: a sharded stream over Redis Streams, shared by every process that
// opens it with the same name. It behaves like sluice::memory_stream and sluice::sqlite::stream:
// the same stable key hash picks a record's shard (sluice/hash.hpp), each shard numbers its
// records 1, 2, 3, ... without gaps, retention trims by age and count, and every starting
// position works, so the same conformance traces hold on all three.
//
// Keys (the hash tag {<name>:<shard>} keeps one shard's keys in one Redis Cluster slot, while
// different shards spread over slots and nodes):
//   <prefix>:{<name>:<shard>}:entries   the shard's Redis stream; fields k (key), p (payload),
//                                       t (arrival, ns since the epoch)
//   <prefix>:{<name>:<shard>}:shard     hash: seq (the last sequence number), arrival (the last)
//   <prefix>:{<name>}:meta              hash: shards (fixed when the stream is first created)
//   <prefix>:{<name>}:puts              pub/sub channel: a put publishes its shard number
//
// Sequence numbers and entry ids: record n of a shard is entry "<n>-0". A put is one Lua script
// (atomic): it takes the next number from the shard hash, stamps the arrival time (the producer's
// clock, never behind the shard's last arrival), adds the entry, trims and publishes. Reading
// after sequence S is XRANGE from "<S+1>-0".
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/clock.hpp"
#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/hash.hpp"
#include "sluice/record.hpp"
#include "sluice/redis/checkpoint_store.hpp"
#include "sluice/redis/codec.hpp"
#include "sluice/redis/connection.hpp"
#include "sluice/source.hpp"
#include "sluice/sources/memory_stream.hpp"

SLUICE_BEGIN_NAMESPACE
namespace redis {

struct stream_options {
  /// Identifies the stream in Redis (with `prefix`) and in on-failure records.
  std::string name = "redis-stream";
  /// Fixed when the stream is first created: opening it with another count is refused, since it
  /// would send a key to another shard and break per-key order.
  std::uint32_t shards = 1;
  /// Records older than this are trimmed (XTRIM MINID) and never read. nullopt = keep forever.
  std::optional<duration> retention_age;
  /// At most this many records are kept per shard (XTRIM MAXLEN, exact); oldest go first.
  std::size_t retention_count = std::numeric_limits<std::size_t>::max();
  /// The first part of every key.
  std::string prefix = "sluice";
  connection_options connection{};
};

namespace detail {
// KEYS[1] the shard's stream, KEYS[2] its hash. ARGV[1] 'put' or 'trim'; ARGV[2] the most
// records kept ('0': no limit); ARGV[3] the retention horizon in ns ('': none). A put also takes
// ARGV[4] now (ns), ARGV[5] key, ARGV[6] payload, ARGV[7] channel ('': none), ARGV[8] shard, and
// returns the new entry's id; a trim returns how many entries went. Numbers stay decimal strings
// (Lua's numbers are doubles): gt() compares them by length, then text.
inline constexpr script shard_script{"shard", R"lua(
local function gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local id = nil
if ARGV[1] == 'put' then
  local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
  local t = ARGV[4]
  local last = redis.call('HGET', KEYS[2], 'arrival')
  if last and gt(last, t) then t = last end
  redis.call('HSET', KEYS[2], 'arrival', t)
  id = string.format('%.0f', seq) .. '-0'
  redis.call('XADD', KEYS[1], id, 'k', ARGV[5], 'p', ARGV[6], 't', t)
end
local trimmed = 0
if ARGV[2] ~= '0' then trimmed = trimmed + redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[2]) end
if ARGV[3] ~= '' then
  local count = 1
  while true do
    local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', count)
    if #head == 0 then break end
    local keep = nil
    for i = 1, #head do
      local f = head[i][2]
      local t = '0'
      for j = 1, #f, 2 do
        if f[j] == 't' then t = f[j + 1] end
      end
      if not gt(ARGV[3], t) then
        keep = head[i][1]
        break
      end
    end
    if keep then
      trimmed = trimmed + redis.call('XTRIM', KEYS[1], 'MINID', keep)
      break
    end
    local n = tonumber(string.match(head[#head][1], '^(%d+)-'))
    trimmed = trimmed + redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f', n + 1) .. '-0')
    count = 64
  end
end
if id then
  if ARGV[7] ~= '' then redis.call('PUBLISH', ARGV[7], ARGV[8]) end
  return id
end
return trimmed
)lua"};

inline std::string_view field(const redisReply* fields, std::string_view name) {
  for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
    if (text(fields->element[i]) == name) return text(fields->element[i + 1]);
  }
  return {};
}
}  // namespace detail

template <class Payload, class Key = std::string, clock_type Clock = system_clock>
class stream {
  static_assert(storable_payload<Payload>,
                "sluice::redis stores payloads that are std::string, byte vectors or numbers; "
                "specialize sluice::payload_codec<T> for other types");
  static_assert(storable_key<Key>, "sluice::redis keys are std::string or integers");

 public:
  using record_type = record<Payload, Key>;
  /// Each shard numbers its records 1, 2, 3, ... without gaps (a gap seen by a reader is
  /// records that retention trimmed before they were read).
  static constexpr bool gap_free_sequences = true;

  explicit stream(stream_options options = {}) requires std::same_as<Clock, system_clock>
      : stream(std::move(options), system_clock::instance()) {}

  stream(stream_options options, Clock& clock)
      : options_(validated(std::move(options))),
        clock_(&clock),
        pool_(options_.connection),
        channel_(options_.prefix + ":{" + options_.name + "}:puts") {
    for (std::uint32_t s = 0; s < options_.shards; ++s) {
      const std::string tag =
          options_.prefix + ":{" + options_.name + ":" + std::to_string(s) + "}";
      keys_.push_back(tag + ":entries");
      shard_keys_.push_back(tag + ":shard");
    }
    register_shards();
  }
  ~stream() { stop_watcher(); }
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;

  /// Appends a record to its key's shard. Stored (with AOF appendfsync always: on disk) when it
  /// returns. A put resent after a lost connection may be stored twice (at least once).
  put_result put(const Key& key, const Payload& payload) {
    const shard_id_t shard = shard_for(key_hash(key), options_.shards);
    reply r;
    {
      auto c = pool_.acquire();
      r = c->eval(detail::shard_script, {keys_[shard], shard_keys_[shard]},
                  put_args(key, payload, true, shard));
    }
    notify(shard);
    return {shard, sequence_of_id(text(r.get()))};
  }

  /// Appends entries (pairs of key and payload, in order) in one pipeline: one round trip. Each
  /// shard's records keep their order; retention trims and the channel is told once per shard.
  template <std::ranges::input_range Entries>
  std::vector<put_result> put_many(Entries&& entries) {
    std::vector<shard_id_t> shards;
    std::vector<connection::call> calls;
    std::vector<std::size_t> last_of_shard(options_.shards, none);
    for (auto&& entry : entries) {
      const auto& [key, payload] = entry;
      const shard_id_t shard = shard_for(key_hash(key), options_.shards);
      last_of_shard[shard] = shards.size();
      shards.push_back(shard);
      calls.push_back({{keys_[shard], shard_keys_[shard]}, put_args(key, payload, false, shard)});
    }
    for (shard_id_t s = 0; s < options_.shards; ++s) {
      if (last_of_shard[s] == none) continue;
      auto& args = calls[last_of_shard[s]].args;
      args[1] = max_len();
      args[2] = horizon_arg();
      args[6] = channel_;
    }
    std::vector<reply> replies;
    {
      auto c = pool_.acquire();
      replies = c->eval_pipeline(detail::shard_script, calls);
    }
    std::vector<put_result> results;
    results.reserve(shards.size());
    for (std::size_t i = 0; i < shards.size(); ++i)
      results.push_back({shards[i], sequence_of_id(text(replies[i].get()))});
    for (shard_id_t s = 0; s < options_.shards; ++s) {
      if (last_of_shard[s] != none) notify(s);
    }
    return results;
  }
  std::vector<put_result> put_many(std::initializer_list<std::pair<Key, Payload>> entries) {
    return put_many(std::views::all(entries));
  }

  /// The checkpoints of mappings over this stream, in the same Redis (same connection options and
  /// prefix; sluice/redis/checkpoint_store.hpp). sluice::run and sluice::start use it when given
  /// no checkpoints(store) option, so a restarted mapping resumes after its last checkpoint.
  redis::checkpoint_store& default_checkpoint_store() {
    std::call_once(checkpoints_opened_, [this] {
      checkpoints_ =
          std::make_unique<redis::checkpoint_store>(options_.connection, options_.prefix);
    });
    return *checkpoints_;
  }

  std::uint32_t shard_count() const noexcept { return options_.shards; }
  std::string_view name() const noexcept { return options_.name; }
  const stream_options& options() const noexcept { return options_; }
  /// The Redis key of a shard's entries.
  const std::string& key_of(shard_id_t shard) const { return keys_.at(shard); }

  template <class Visit>
  std::size_t read(shard_id_t shard, sequence_number_t after, std::size_t max, Visit&& visit) {
    if (max == 0) return 0;
    const std::int64_t horizon = horizon_ns();
    for (int round = 0;; ++round) {
      reply r;
      {
        auto c = pool_.acquire();
        r = c->command({"XRANGE", keys_[shard], std::to_string(after + 1) + "-0", "+", "COUNT",
                        std::to_string(std::min<std::size_t>(max, 1u << 30))});
      }
      std::size_t consumed = 0, expired = 0;
      for (std::size_t i = 0; i < r->elements; ++i) {
        const redisReply* e = r->element[i];
        const redisReply* fields = e->element[1];
        const auto t = detail::parse_number<std::int64_t>(detail::field(fields, "t"));
        if (t < horizon) {  // past the retention age: never read (the reader sees a gap)
          ++expired;
          continue;
        }
        const record_type rec{detail::decode<Key>(detail::field(fields, "k")),
                              sequence_of_id(text(e->element[0])), detail::from_ns(t),
                              detail::decode<Payload>(detail::field(fields, "p"))};
        if (!visit(rec)) break;
        ++consumed;
      }
      // A whole read of expired records: trim them, then read what follows them.
      if (consumed > 0 || expired == 0 || expired < r->elements || round > 0) return consumed;
      trim_shard(shard);
    }
  }

  sequence_number_t resolve(shard_id_t shard, starting_position pos) {
    const sequence_number_t last = last_sequence(shard);
    if (pos.where == starting_position::kind::latest) return last;
    if (options_.retention_age) trim_shard(shard);
    sequence_number_t lo = first_sequence(shard);
    if (lo == no_sequence) return last;
    if (pos.where == starting_position::kind::trim_horizon) return lo - 1;
    // at_timestamp: the first record that arrived at or after it (arrival never decreases in a
    // shard, and the kept records are the consecutive range [first, last]): binary search.
    const std::int64_t at = std::max(horizon_ns(), detail::to_ns(pos.timestamp));
    sequence_number_t hi = last + 1;  // arrival(hi) >= at, by convention for last + 1
    while (lo < hi) {
      const sequence_number_t mid = lo + (hi - lo) / 2;
      if (arrival_ns(shard, mid) >= at)
        hi = mid;
      else
        lo = mid + 1;
    }
    return lo - 1;
  }

  sequence_number_t last_sequence(shard_id_t shard) const {
    auto c = pool_.acquire();
    const reply r = c->command({"HGET", shard_keys_[shard], "seq"});
    return r.is_nil() ? no_sequence : detail::parse_number<sequence_number_t>(text(r.get()));
  }

  /// Records currently retained in a shard.
  std::size_t size(shard_id_t shard) {
    if (options_.retention_age) trim_shard(shard);
    auto c = pool_.acquire();
    return static_cast<std::size_t>(c->command({"XLEN", keys_[shard]})->integer);
  }

  /// Deletes the records that retention no longer keeps; returns how many. Puts trim the shards
  /// they write; call this for streams that get no puts.
  std::size_t trim() {
    std::size_t deleted = 0;
    for (shard_id_t s = 0; s < options_.shards; ++s) deleted += trim_shard(s);
    return deleted;
  }

  /// Deletes every record and the stream's metadata (tests, tear-down).
  void destroy() {
    auto c = pool_.acquire();
    for (shard_id_t s = 0; s < options_.shards; ++s) c->command({"DEL", keys_[s], shard_keys_[s]});
    c->command({"DEL", meta_key()});
  }

  /// Listeners are told of puts by this object at once, and of puts by other processes through
  /// the stream's pub/sub channel, which a watcher thread (one connection, blocked while idle)
  /// follows while any listener is subscribed. After it (re)subscribes it wakes every shard, so a
  /// put announced while it was disconnected is not missed.
  void subscribe(data_listener* listener) {
    std::lock_guard lock(listeners_mutex_);
    listeners_.push_back(listener);
    if (!watcher_.joinable()) {
      watching_ = true;
      watcher_conn_ = std::make_unique<connection>(options_.connection);
      watcher_ = std::thread([this] { watch(); });
    }
  }
  void unsubscribe(data_listener* listener) {
    bool last = false;
    {
      std::lock_guard lock(listeners_mutex_);
      std::erase(listeners_, listener);
      last = listeners_.empty();
    }
    if (last) stop_watcher();
  }

  /// Wakes the listeners of a shard.
  void notify(shard_id_t shard) {
    std::lock_guard lock(listeners_mutex_);
    for (data_listener* l : listeners_) l->on_data(shard);
  }

 private:
  static constexpr std::size_t none = std::numeric_limits<std::size_t>::max();

  static stream_options validated(stream_options o) {
    if (o.name.empty()) sluice::detail::reject("stream_options::name", "\"\"", "a non-empty name");
    if (o.name.find_first_of("{}") != std::string::npos)
      sluice::detail::reject("stream_options::name", o.name, "a name without { or }");
    sluice::detail::require_in_range<std::uint32_t>("shards", o.shards, 1, 1u << 16, "1..65536");
    if (o.retention_count == 0) sluice::detail::reject("retention_count", 0, ">= 1");
    if (o.retention_age && *o.retention_age <= duration::zero())
      sluice::detail::reject("retention_age (ns)", o.retention_age->count(), "> 0");
    return o;
  }

  static sequence_number_t sequence_of_id(std::string_view id) {
    return detail::parse_number<sequence_number_t>(id.substr(0, id.find('-')));
  }

  std::string meta_key() const { return options_.prefix + ":{" + options_.name + "}:meta"; }

  void register_shards() {
    auto c = pool_.acquire();
    c->command({"HSETNX", meta_key(), "shards", std::to_string(options_.shards)});
    const reply r = c->command({"HGET", meta_key(), "shards"});
    if (text(r.get()) != std::to_string(options_.shards)) {
      throw configuration_error(
          "sluice::redis::stream '" + options_.name + "' on " + options_.connection.server() +
          " has " + std::string(text(r.get())) + " shards; it cannot be opened with " +
          std::to_string(options_.shards) + " (a key would change shard and lose its order)");
    }
  }

  std::string max_len() const {
    return options_.retention_count == std::numeric_limits<std::size_t>::max()
               ? std::string("0")
               : std::to_string(options_.retention_count);
  }
  /// Records that arrived before this are past the retention age.
  std::int64_t horizon_ns() const {
    if (!options_.retention_age) return std::numeric_limits<std::int64_t>::min();
    const std::int64_t age =
        std::chrono::duration_cast<std::chrono::nanoseconds>(*options_.retention_age).count();
    const std::int64_t now = detail::to_ns(clock_->now());
    return now < std::numeric_limits<std::int64_t>::min() + age
               ? std::numeric_limits<std::int64_t>::min()
               : now - age;
  }
  std::string horizon_arg() const {
    const std::int64_t h = horizon_ns();
    return h > 0 ? std::to_string(h) : std::string();
  }

  std::vector<std::string> put_args(const Key& key, const Payload& payload, bool last,
                                    shard_id_t shard) const {
    return {"put",
            last ? max_len() : std::string("0"),
            last ? horizon_arg() : std::string(),
            std::to_string(std::max<std::int64_t>(0, detail::to_ns(clock_->now()))),
            detail::encode(key),
            detail::encode(payload),
            last ? channel_ : std::string(),
            std::to_string(shard)};
  }

  std::size_t trim_shard(shard_id_t shard) {
    if (max_len() == "0" && !options_.retention_age) return 0;
    auto c = pool_.acquire();
    const reply r = c->eval(detail::shard_script, {keys_[shard], shard_keys_[shard]},
                            {"trim", max_len(), horizon_arg()});
    return static_cast<std::size_t>(r->integer);
  }

  sequence_number_t first_sequence(shard_id_t shard) {
    auto c = pool_.acquire();
    const reply r = c->command({"XRANGE", keys_[shard], "-", "+", "COUNT", "1"});
    return r->elements == 0 ? no_sequence : sequence_of_id(text(r->element[0]->element[0]));
  }
  std::int64_t arrival_ns(shard_id_t shard, sequence_number_t seq) {
    const std::string id = std::to_string(seq) + "-0";
    auto c = pool_.acquire();
    const reply r = c->command({"XRANGE", keys_[shard], id, id});
    if (r->elements == 0) return std::numeric_limits<std::int64_t>::min();  // trimmed meanwhile
    return detail::parse_number<std::int64_t>(detail::field(r->element[0]->element[1], "t"));
  }

  void watch() {
    std::chrono::milliseconds wait = options_.connection.reconnect_initial;
    while (watching_.load()) {
      try {
        watcher_conn_->subscribe(channel_);
        wait = options_.connection.reconnect_initial;
        for (shard_id_t s = 0; s < options_.shards; ++s) notify(s);
        while (watching_.load()) {
          const reply m = watcher_conn_->next_message();
          if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
              text(m->element[0]) == "message") {
            const auto shard = detail::parse_number<std::uint32_t>(text(m->element[2]));
            if (shard < options_.shards) notify(shard);
          }
        }
      } catch (const std::exception&) {
        if (!watching_.load()) break;
        std::unique_lock lock(watch_mutex_);
        watch_cv_.wait_for(lock, wait, [this] { return !watching_.load(); });
        wait = std::min(wait * 2, options_.connection.reconnect_max);
      }
    }
  }

  void stop_watcher() {
    std::thread t;
    {
      std::lock_guard lock(listeners_mutex_);
      if (!watcher_.joinable()) return;
      t = std::move(watcher_);
    }
    {
      std::lock_guard lock(watch_mutex_);
      watching_ = false;
    }
    watch_cv_.notify_all();
    watcher_conn_->interrupt();
    t.join();
    watcher_conn_.reset();
  }

  stream_options options_;
  Clock* clock_;
  mutable connection_pool pool_;
  std::string channel_;
  std::vector<std::string> keys_;
  std::vector<std::string> shard_keys_;
  std::mutex listeners_mutex_;
  std::vector<data_listener*> listeners_;
  std::atomic<bool> watching_{false};
  std::mutex watch_mutex_;
  std::condition_variable watch_cv_;
  std::once_flag checkpoints_opened_;
  std::unique_ptr<redis::checkpoint_store> checkpoints_;
  std::unique_ptr<connection> watcher_conn_;
  std::thread watcher_;
};

}  // namespace redis
SLUICE_END_NAMESPACE
