// Tests for sluice/hash.hpp: the partition-key hash is the documented recipe (S-1.2), stable
// across runs and platforms, and shard_for / lane_for spread keys evenly and independently
// (S-3.1).
#include "sluice/hash.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

// ---- an independent reference implementation of the documented recipe --------------------------
// key_hash(key) = fmix64(FNV-1a-64(bytes)); bytes = the characters of a string key, or the 8
// little-endian bytes of an integer key.

constexpr std::uint64_t ref_fmix64(std::uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

constexpr std::uint64_t ref_fnv1a64(const unsigned char* bytes, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis
  for (std::size_t i = 0; i < n; ++i) {
    h ^= bytes[i];
    h *= 0x100000001b3ull;  // FNV-1a 64 prime
  }
  return h;
}

std::uint64_t ref_hash_string(std::string_view s) {
  std::vector<unsigned char> bytes(s.begin(), s.end());
  return ref_fmix64(ref_fnv1a64(bytes.data(), bytes.size()));
}

std::uint64_t ref_hash_integer(std::uint64_t v) {
  std::array<unsigned char, 8> le{};
  for (std::size_t i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(v >> (8 * i));
  return ref_fmix64(ref_fnv1a64(le.data(), le.size()));
}

std::vector<std::string> numbered_keys(std::size_t n) {
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < n; ++i) keys.push_back("key-" + std::to_string(i));
  return keys;
}

}  // namespace

TEST(KeyHash, StringKeysFollowTheDocumentedRecipe) {
  for (std::string_view key : {"", "a", "order-42", "device/7", "customer#00017", "ünïcødé",
                               "a much longer partition key that spans many FNV rounds"}) {
    EXPECT_EQ(sluice::key_hash(key), ref_hash_string(key)) << "key \"" << key << "\"";
  }
}

TEST(KeyHash, IntegerKeysHashTheirEightLittleEndianBytes) {
  for (std::uint64_t key :
       {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{42}, std::uint64_t{0x0102030405060708ull},
        std::numeric_limits<std::uint64_t>::max()}) {
    EXPECT_EQ(sluice::key_hash(key), ref_hash_integer(key)) << "key " << key;
  }
  // Narrower and signed integers are widened to 64 bits first (two's complement for negatives).
  EXPECT_EQ(sluice::key_hash(std::int32_t{42}), ref_hash_integer(42));
  EXPECT_EQ(sluice::key_hash(std::uint16_t{42}), ref_hash_integer(42));
  EXPECT_EQ(sluice::key_hash(std::int64_t{-1}), ref_hash_integer(~std::uint64_t{0}));
  EXPECT_EQ(sluice::key_hash(-1), ref_hash_integer(~std::uint64_t{0}));
}

TEST(KeyHash, PinnedValuesOfTheRecipeNeverChange) {
  // Computed once with python3 from the recipe in sluice/hash.hpp. If one of these changes,
  // every existing stream's key-to-shard assignment changes: that is a breaking change.
  EXPECT_EQ(sluice::key_hash(std::string_view("order-42")), 0x8e47543c313c6386ull);
  EXPECT_EQ(sluice::key_hash(std::string_view("")), 0xefd01f60ba992926ull);
  EXPECT_EQ(sluice::key_hash(std::uint64_t{42}), 0xa6245a5dcf278758ull);
}

TEST(KeyHash, IsUsableAtCompileTime) {
  static_assert(sluice::key_hash(std::string_view("order-42")) == 0x8e47543c313c6386ull);
  static_assert(sluice::key_hash(std::uint64_t{42}) == 0xa6245a5dcf278758ull);
  SUCCEED();
}

TEST(KeyHash, StringLikeKeyTypesAgree) {
  const std::string owned = "order-42";
  const char* c_string = "order-42";
  const std::uint64_t expected = sluice::key_hash(std::string_view("order-42"));
  EXPECT_EQ(sluice::key_hash(owned), expected);
  EXPECT_EQ(sluice::key_hash(c_string), expected);
  EXPECT_EQ(sluice::key_hash("order-42"), expected);  // a char array: no terminating NUL hashed
}

TEST(KeyHash, DistinctKeysGetDistinctHashes) {
  const auto keys = numbered_keys(10'000);
  std::set<std::uint64_t> hashes;
  for (const auto& k : keys) hashes.insert(sluice::key_hash(k));
  EXPECT_EQ(hashes.size(), keys.size());
}

TEST(ShardFor, ScalesTheLow32BitsIntoRange) {
  const std::vector<std::uint64_t> hashes = {0,
                                             1,
                                             0xffffffffull,
                                             0xffffffff00000000ull,
                                             0x8000000080000000ull,
                                             std::numeric_limits<std::uint64_t>::max(),
                                             sluice::key_hash(std::string_view("order-42"))};
  for (std::uint32_t shards : {1u, 2u, 3u, 16u, 1000u, 1u << 20}) {
    for (std::uint64_t h : hashes) {
      EXPECT_LT(sluice::shard_for(h, shards), shards) << "hash " << h << ", shards " << shards;
      EXPECT_EQ(sluice::shard_for(h, shards), ((h & 0xffffffffull) * shards) >> 32);
    }
  }
  EXPECT_EQ(sluice::shard_for(0xffffffffull, 16), 15u);         // top of the low half: last shard
  EXPECT_EQ(sluice::shard_for(0xffffffff00000000ull, 16), 0u);  // high half is ignored
  EXPECT_EQ(sluice::shard_for(sluice::key_hash(std::string_view("order-42")), 16), 3u);
}

TEST(LaneFor, ScalesTheHigh32BitsIntoRange) {
  const std::vector<std::uint64_t> hashes = {0,
                                             1,
                                             0xffffffffull,
                                             0xffffffff00000000ull,
                                             std::numeric_limits<std::uint64_t>::max(),
                                             sluice::key_hash(std::string_view("device/7"))};
  for (std::uint32_t lanes : {1u, 2u, 4u, 10u, 1024u}) {
    for (std::uint64_t h : hashes) {
      EXPECT_LT(sluice::lane_for(h, lanes), lanes) << "hash " << h << ", lanes " << lanes;
      EXPECT_EQ(sluice::lane_for(h, lanes), ((h >> 32) * lanes) >> 32);
    }
  }
  EXPECT_EQ(sluice::lane_for(0xffffffffull, 4), 0u);  // low half is ignored
  EXPECT_EQ(sluice::lane_for(0xffffffff00000000ull, 4), 3u);
  EXPECT_EQ(sluice::lane_for(sluice::key_hash(std::string_view("device/7")), 4), 2u);
}

TEST(ShardFor, SpreadsThousandKeysEvenlyOverSixteenShards) {
  constexpr std::uint32_t shards = 16;
  std::array<std::size_t, shards> count{};
  for (const auto& k : numbered_keys(1000)) ++count[sluice::shard_for(sluice::key_hash(k), shards)];
  const double average = 1000.0 / shards;
  for (std::uint32_t s = 0; s < shards; ++s) {
    EXPECT_GT(count[s], 0u) << "shard " << s << " got no key";
    EXPECT_LE(static_cast<double>(count[s]), 2 * average) << "shard " << s << " is overloaded";
  }
}

TEST(LaneFor, EveryLaneOfEveryShardGetsKeysWhenShardsAndLanesAreEqual) {
  // Shard and lane come from different halves of the hash; if both used the same bits with
  // N = P, every key of shard s would land in lane s and the other lanes would stay idle.
  constexpr std::uint32_t n = 4;
  constexpr std::uint32_t p = 4;
  std::array<std::array<std::size_t, p>, n> count{};
  for (const auto& k : numbered_keys(1000)) {
    const std::uint64_t h = sluice::key_hash(k);
    ++count[sluice::shard_for(h, n)][sluice::lane_for(h, p)];
  }
  for (std::uint32_t s = 0; s < n; ++s) {
    for (std::uint32_t l = 0; l < p; ++l) {
      EXPECT_GT(count[s][l], 0u) << "shard " << s << " lane " << l << " got no key";
    }
  }
}

TEST(LaneFor, SpreadsIntegerKeysOverLanes) {
  constexpr std::uint32_t p = 8;
  std::array<std::size_t, p> count{};
  for (std::uint64_t k = 0; k < 800; ++k) ++count[sluice::lane_for(sluice::key_hash(k), p)];
  for (std::uint32_t l = 0; l < p; ++l) {
    EXPECT_GT(count[l], 0u) << "lane " << l;
    EXPECT_LE(count[l], 200u) << "lane " << l;  // at most 2x the average of 100
  }
}
