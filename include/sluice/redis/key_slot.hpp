// sluice/redis/key_slot.hpp: the Redis Cluster hash slot of a key, as the cluster specification
// defines it: CRC16 (XMODEM: polynomial 0x1021, initial value 0, no reflection) of the key, or of
// its hash tag, modulo 16384. The hash tag is the text between the first '{' and the first '}'
// after it, when that text is not empty; so "{orders:3}:entries" and "{orders:3}:shard" share a
// slot, and every key sluice writes for one shard lands on one node.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE
namespace redis {

/// Slots of a Redis Cluster: keys hash to [0, cluster_slots).
inline constexpr std::uint32_t cluster_slots = 16384;

namespace detail {
inline constexpr std::array<std::uint16_t, 256> crc16_table = [] {
  std::array<std::uint16_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t crc = i << 8;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 0x8000U) != 0 ? (crc << 1) ^ 0x1021U : crc << 1;
    t[i] = static_cast<std::uint16_t>(crc & 0xffffU);
  }
  return t;
}();
}  // namespace detail

/// CRC16-CCITT (XMODEM), the checksum of Redis Cluster key slots: crc16("123456789") == 0x31C3.
constexpr std::uint16_t crc16(std::string_view bytes) noexcept {
  std::uint16_t crc = 0;
  for (const char ch : bytes) {
    const auto b = static_cast<std::uint8_t>(ch);
    crc = static_cast<std::uint16_t>((crc << 8) ^ detail::crc16_table[((crc >> 8) ^ b) & 0xffU]);
  }
  return crc;
}

/// The part of a key that is hashed: its hash tag when it has a non-empty one, else all of it.
constexpr std::string_view hash_tag(std::string_view key) noexcept {
  const std::size_t open = key.find('{');
  if (open == std::string_view::npos) return key;
  const std::size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

/// The cluster slot of a key (CLUSTER KEYSLOT).
constexpr std::uint16_t key_slot(std::string_view key) noexcept {
  return static_cast<std::uint16_t>(crc16(hash_tag(key)) % cluster_slots);
}

}  // namespace redis
SLUICE_END_NAMESPACE
