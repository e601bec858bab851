// sluice/redis/leases.hpp: the lease store of sluice::lease_worker (sluice/leases.hpp) in Redis.
// A shard's lease lives in the same hash as its checkpoint (sluice/redis/checkpoint_store.hpp):
//   <prefix>:{<mapping>:<shard>}:checkpoint   fields seq, owner, counter, expires (ns)
// Each operation is one Lua script on that one key, so it is atomic, and in Redis Cluster the
// lease and the checkpoint it fences are always in the same slot. save_fenced moves the checkpoint
// (and, for a windowed mapping, the shard's open window with it) only if owner and counter are
// still the writer's: a zombie's write is refused.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/leases.hpp"
#include "sluice/redis/checkpoint_store.hpp"
#include "sluice/redis/codec.hpp"
#include "sluice/redis/connection.hpp"

SLUICE_BEGIN_NAMESPACE
namespace redis {

namespace detail {
// Every script: KEYS[1] the (mapping, shard) hash; ARGV[1] owner, ARGV[2] counter expected.
inline constexpr script take_script{"lease_take", R"lua(
local v = redis.call('HMGET', KEYS[1], 'owner', 'counter')
if (v[1] or '') ~= ARGV[1] or (v[2] or '0') ~= ARGV[2] then return 0 end
redis.call('HINCRBY', KEYS[1], 'counter', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'expires', ARGV[4])
return 1
)lua"};
inline constexpr script renew_script{"lease_renew", R"lua(
local v = redis.call('HMGET', KEYS[1], 'owner', 'counter')
if (v[1] or '') ~= ARGV[1] or (v[2] or '0') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'expires', ARGV[3])
return 1
)lua"};
inline constexpr script release_script{"lease_release", R"lua(
local v = redis.call('HMGET', KEYS[1], 'owner', 'counter')
if (v[1] or '') ~= ARGV[1] or (v[2] or '0') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'owner', '', 'expires', '0')
return 1
)lua"};
inline constexpr script save_fenced_script{"checkpoint_fenced", R"lua(
local function gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local v = redis.call('HMGET', KEYS[1], 'owner', 'counter', 'seq')
if (v[1] or '') ~= ARGV[1] or (v[2] or '0') ~= ARGV[2] then return 0 end
if (not v[3]) or gt(ARGV[3], v[3]) then redis.call('HSET', KEYS[1], 'seq', ARGV[3]) end
return 1
)lua"};
// save_fenced_script plus the open window (ARGV[4] '1': ARGV[5..8] start, end, state, early;
// '0': none, deleted), as save_window_script (checkpoint_store.hpp) writes it: the checkpoint
// and the window move together, and only for the lease's holder with its counter.
inline constexpr script save_fenced_window_script{"checkpoint_window_fenced", R"lua(
local function gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local v = redis.call('HMGET', KEYS[1], 'owner', 'counter', 'seq')
if (v[1] or '') ~= ARGV[1] or (v[2] or '0') ~= ARGV[2] then return 0 end
if (not v[3]) or gt(ARGV[3], v[3]) then redis.call('HSET', KEYS[1], 'seq', ARGV[3]) end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'window_start', ARGV[5], 'window_end', ARGV[6],
             'window_state', ARGV[7], 'window_early', ARGV[8])
else
  redis.call('HDEL', KEYS[1], 'window_start', 'window_end', 'window_state', 'window_early')
end
return 1
)lua"};
}  // namespace detail

/// Models sluice::lease_store. Thread-safe.
class lease_store {
 public:
  explicit lease_store(connection_options options, std::string prefix = "sluice")
      : pool_(std::move(options)), prefix_(std::move(prefix)) {}

  std::vector<lease> leases(std::string_view mapping, std::uint32_t shards) const {
    std::vector<std::vector<std::string>> cmds;
    cmds.reserve(shards);
    for (shard_id_t s = 0; s < shards; ++s)
      cmds.push_back({"HMGET", key(mapping, s), "owner", "counter", "expires"});
    std::vector<reply> replies;
    {
      auto c = pool_.acquire();
      replies = c->pipeline(cmds);
    }
    std::vector<lease> out;
    out.reserve(shards);
    for (shard_id_t s = 0; s < shards; ++s) {
      const redisReply* r = replies[s].get();
      lease l;
      l.shard = s;
      l.owner = std::string(text(r->element[0]));
      if (r->element[1]->type == REDIS_REPLY_STRING)
        l.counter = detail::parse_number<std::uint64_t>(text(r->element[1]));
      if (r->element[2]->type == REDIS_REPLY_STRING)
        l.expires_ns = detail::parse_number<std::int64_t>(text(r->element[2]));
      out.push_back(std::move(l));
    }
    return out;
  }

  bool take(std::string_view mapping, shard_id_t shard, std::string_view expected_owner,
            std::uint64_t expected_counter, std::string_view owner, std::int64_t expires_ns) {
    return run(detail::take_script, mapping, shard,
               {std::string(expected_owner), std::to_string(expected_counter), std::string(owner),
                std::to_string(expires_ns)});
  }
  bool renew(std::string_view mapping, shard_id_t shard, std::string_view owner,
             std::uint64_t counter, std::int64_t expires_ns) {
    return run(detail::renew_script, mapping, shard,
               {std::string(owner), std::to_string(counter), std::to_string(expires_ns)});
  }
  bool release(std::string_view mapping, shard_id_t shard, std::string_view owner,
               std::uint64_t counter) {
    return run(detail::release_script, mapping, shard,
               {std::string(owner), std::to_string(counter)});
  }
  bool save_fenced(std::string_view mapping, shard_id_t shard, std::string_view owner,
                   std::uint64_t counter, sequence_number_t seq) {
    return run(detail::save_fenced_script, mapping, shard,
               {std::string(owner), std::to_string(counter), std::to_string(seq)});
  }
  /// The checkpoint and the shard's open window (null: none), fenced together: both or neither.
  bool save_fenced(std::string_view mapping, shard_id_t shard, std::string_view owner,
                   std::uint64_t counter, sequence_number_t seq, const window_checkpoint* window) {
    std::vector<std::string> args{std::string(owner), std::to_string(counter), std::to_string(seq)};
    detail::append_window_args(args, window);
    return run(detail::save_fenced_window_script, mapping, shard, args);
  }
  std::optional<window_checkpoint> load_window(std::string_view mapping, shard_id_t shard) const {
    auto c = pool_.acquire();
    return detail::load_window(*c, key(mapping, shard));
  }
  std::optional<sequence_number_t> load(std::string_view mapping, shard_id_t shard) const {
    auto c = pool_.acquire();
    const reply r = c->command({"HGET", key(mapping, shard), "seq"});
    if (r.is_nil()) return std::nullopt;
    return detail::parse_number<sequence_number_t>(text(r.get()));
  }

 private:
  std::string key(std::string_view mapping, shard_id_t shard) const {
    return detail::checkpoint_key(prefix_, mapping, shard);
  }
  bool run(const script& s, std::string_view mapping, shard_id_t shard,
           const std::vector<std::string>& args) {
    auto c = pool_.acquire();
    return c->eval(s, {key(mapping, shard)}, args)->integer == 1;
  }

  mutable connection_pool pool_;
  std::string prefix_;
};

static_assert(sluice::window_lease_store<lease_store>);

}  // namespace redis
SLUICE_END_NAMESPACE
