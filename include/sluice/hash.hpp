// sluice/hash.hpp: the stable partition-key hash that fixes a record's shard and lane
// (S-1.2, S-3.1). It never uses std::hash: the same key gives the same shard and lane on every
// run, platform and process.
//
// key_hash(key)   = fmix64(FNV-1a-64(bytes))  where bytes are the key's characters for
//                   string-like keys, and the 8 little-endian bytes of the value for integers.
// shard_for(h, N) = ((h & 0xffffffff) * N) >> 32      (low 32 bits, scaled to [0, N))
// lane_for(h, P)  = ((h >> 32) * P) >> 32              (high 32 bits, scaled to [0, P))
// Shard and lane use different halves of the hash so that P lanes of one shard all get keys.
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE

namespace detail {
inline constexpr std::uint64_t fnv_offset = 14695981039346656037ull;
inline constexpr std::uint64_t fnv_prime = 1099511628211ull;

constexpr std::uint64_t fmix64(std::uint64_t k) noexcept {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

constexpr std::uint64_t fnv1a(std::string_view bytes) noexcept {
  std::uint64_t h = fnv_offset;
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= fnv_prime;
  }
  return h;
}

constexpr std::uint64_t fnv1a_u64(std::uint64_t v) noexcept {
  std::uint64_t h = fnv_offset;
  for (int i = 0; i < 8; ++i) {
    h ^= (v >> (8 * i)) & 0xffu;
    h *= fnv_prime;
  }
  return h;
}

struct key_hash_fn {
  template <class K>
  requires std::convertible_to<const K&, std::string_view>
  constexpr std::uint64_t operator()(const K& key) const noexcept {
    return fmix64(fnv1a(std::string_view(key)));
  }
  template <std::integral K>
  constexpr std::uint64_t operator()(K key) const noexcept {
    return fmix64(fnv1a_u64(static_cast<std::uint64_t>(key)));
  }
};
}  // namespace detail

/// The stable 64-bit hash of a partition key (see the header comment for the exact recipe).
inline constexpr detail::key_hash_fn key_hash{};

template <class K>
concept partition_key_type = requires(const K& k) {
  { key_hash(k) } -> std::same_as<std::uint64_t>;
};

/// Shard of a key hash in a stream of `shards` shards.
constexpr shard_id_t shard_for(std::uint64_t hash, std::uint32_t shards) noexcept {
  return static_cast<shard_id_t>(((hash & 0xffffffffull) * shards) >> 32);
}

/// Lane of a key hash within its shard, for parallelization factor `lanes`.
constexpr std::uint32_t lane_for(std::uint64_t hash, std::uint32_t lanes) noexcept {
  return static_cast<std::uint32_t>(((hash >> 32) * lanes) >> 32);
}

SLUICE_END_NAMESPACE
