// sluice/redis/checkpoint_store.hpp: per-shard checkpoints (S-3.3, S-3.4) in Redis, so a mapping
// restarted on any machine resumes at checkpoint + 1. One hash per (mapping, shard):
//   <prefix>:{<mapping>:<shard>}:checkpoint   field seq; the shard's open tumbling window (S-7)
//                                            in fields window_start, window_end (ns),
//                                            window_state (bytes) and window_early ("1"/"0");
//                                            the shard's lease (sluice/redis/leases.hpp) keeps
//                                            owner, counter and expires in the same hash, so a
//                                            save, with or without its window, fenced or not, is
//                                            one script on one key (one cluster slot).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/checkpoint.hpp"
#include "sluice/config.hpp"
#include "sluice/redis/codec.hpp"
#include "sluice/redis/connection.hpp"

SLUICE_BEGIN_NAMESPACE
namespace redis {

namespace detail {
/// The key of a (mapping, shard): its hash tag puts it in the shard's own cluster slot.
inline std::string checkpoint_key(std::string_view prefix, std::string_view mapping,
                                  shard_id_t shard) {
  std::string key(prefix);
  key += ":{";
  key += mapping;
  key += ':';
  key += std::to_string(shard);
  key += "}:checkpoint";
  return key;
}

// KEYS[1] checkpoint hash; ARGV[1] seq. Stores max(stored, seq); returns the stored value.
inline constexpr script save_max_script{"save_checkpoint", R"lua(
local function gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local cur = redis.call('HGET', KEYS[1], 'seq')
if (not cur) or gt(ARGV[1], cur) then
  redis.call('HSET', KEYS[1], 'seq', ARGV[1])
  return ARGV[1]
end
return cur
)lua"};

// KEYS[1] checkpoint hash; ARGV[1] seq; ARGV[2] '1': ARGV[3..6] are the open window's start, end,
// state and early flag, '0': no open window (its fields are deleted). Stores max(stored, seq)
// and the window in one step.
inline constexpr script save_window_script{"save_checkpoint_window", R"lua(
local function gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local cur = redis.call('HGET', KEYS[1], 'seq')
if (not cur) or gt(ARGV[1], cur) then redis.call('HSET', KEYS[1], 'seq', ARGV[1]) end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'window_start', ARGV[3], 'window_end', ARGV[4],
             'window_state', ARGV[5], 'window_early', ARGV[6])
else
  redis.call('HDEL', KEYS[1], 'window_start', 'window_end', 'window_state', 'window_early')
end
return 1
)lua"};

/// The script arguments after the sequence number that describe `window` (null: none).
inline void append_window_args(std::vector<std::string>& args, const window_checkpoint* window) {
  if (window == nullptr) {
    args.emplace_back("0");
    return;
  }
  args.emplace_back("1");
  args.push_back(std::to_string(to_ns(window->start)));
  args.push_back(std::to_string(to_ns(window->end)));
  args.push_back(window->state);
  args.emplace_back(window->terminated_early ? "1" : "0");
}

/// The open window kept in a checkpoint hash, if any.
inline std::optional<window_checkpoint> load_window(connection& c, const std::string& key) {
  const reply r =
      c.command({"HMGET", key, "window_start", "window_end", "window_state", "window_early"});
  if (r->elements != 4 || r->element[0]->type != REDIS_REPLY_STRING) return std::nullopt;
  window_checkpoint w;
  w.start = from_ns(parse_number<std::int64_t>(text(r->element[0])));
  w.end = from_ns(parse_number<std::int64_t>(text(r->element[1])));
  w.state = std::string(text(r->element[2]));
  w.terminated_early = text(r->element[3]) == "1";
  return w;
}
}  // namespace detail

/// Models sluice::checkpoint_store and sluice::window_checkpoint_store (a shard's open tumbling
/// window is saved with its checkpoint by one script). Thread-safe. Monotonic like
/// sluice::sqlite::checkpoint_store: a save lower than the stored checkpoint is ignored (erase()
/// to rewind on purpose).
class checkpoint_store {
 public:
  explicit checkpoint_store(connection_options options, std::string prefix = "sluice")
      : pool_(std::move(options)), prefix_(std::move(prefix)) {}

  std::optional<sequence_number_t> load(std::string_view mapping, shard_id_t shard) const {
    auto c = pool_.acquire();
    const reply r = c->command({"HGET", key(mapping, shard), "seq"});
    if (r.is_nil()) return std::nullopt;
    return detail::parse_number<sequence_number_t>(text(r.get()));
  }

  /// Stores max(stored, seq); acknowledged by Redis when it returns.
  void save(std::string_view mapping, shard_id_t shard, sequence_number_t seq) {
    {
      auto c = pool_.acquire();
      c->eval(detail::save_max_script, {key(mapping, shard)}, {std::to_string(seq)});
    }
    std::lock_guard lock(mutex_);
    ++saves_;
  }

  /// The checkpoint (max(stored, seq)) and the shard's open window (null: none, the stored one
  /// is erased), in one script: both or neither.
  void save(std::string_view mapping, shard_id_t shard, sequence_number_t seq,
            const window_checkpoint* window) {
    std::vector<std::string> args{std::to_string(seq)};
    detail::append_window_args(args, window);
    {
      auto c = pool_.acquire();
      c->eval(detail::save_window_script, {key(mapping, shard)}, args);
    }
    std::lock_guard lock(mutex_);
    ++saves_;
  }

  /// The open window saved with the shard's checkpoint, if any.
  std::optional<window_checkpoint> load_window(std::string_view mapping, shard_id_t shard) const {
    auto c = pool_.acquire();
    return detail::load_window(*c, key(mapping, shard));
  }

  /// Deletes the checkpoints of shards [0, shards) of a mapping (the explicit rewind); returns
  /// how many there were. Their open windows, and the leases kept in the same hashes, go too.
  std::size_t erase(std::string_view mapping, std::uint32_t shards) {
    std::vector<std::vector<std::string>> cmds;
    for (shard_id_t s = 0; s < shards; ++s) cmds.push_back({"DEL", key(mapping, s)});
    auto c = pool_.acquire();
    std::size_t erased = 0;
    for (const reply& r : c->pipeline(cmds)) erased += static_cast<std::size_t>(r->integer);
    return erased;
  }

  std::size_t saves() const {
    std::lock_guard lock(mutex_);
    return saves_;
  }
  const std::string& prefix() const noexcept { return prefix_; }
  const connection_options& connection() const noexcept { return pool_.options(); }

 private:
  std::string key(std::string_view mapping, shard_id_t shard) const {
    return detail::checkpoint_key(prefix_, mapping, shard);
  }

  mutable connection_pool pool_;
  std::string prefix_;
  mutable std::mutex mutex_;
  std::size_t saves_ = 0;
};

static_assert(sluice::window_checkpoint_store<checkpoint_store>);

}  // namespace redis
SLUICE_END_NAMESPACE
