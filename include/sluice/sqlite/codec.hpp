// sluice/sqlite/codec.hpp: how keys and payloads become SQLite values. Strings and byte vectors
// are stored as BLOBs and numbers as INTEGER/REAL, so a stream file stays readable from the
// sqlite3 shell; any other payload type goes through sluice::payload_codec<T>
// (sluice/payload_codec.hpp).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/payload_codec.hpp"
#include "sluice/sqlite/database.hpp"

SLUICE_BEGIN_NAMESPACE
namespace sqlite {

namespace detail {
using sluice::detail::byte_vector;
using sluice::detail::has_payload_codec;

template <class T>
concept builtin_payload =
    std::same_as<T, std::string> || byte_vector<T> || std::is_arithmetic_v<T> || std::is_enum_v<T>;
}  // namespace detail

/// A payload the SQLite stream and destination can store.
template <class T>
concept storable_payload = detail::has_payload_codec<T> || detail::builtin_payload<T>;

/// A partition key they can store: owned strings (TEXT) and integers (INTEGER). A string_view key
/// could not own what it reads back.
template <class K>
concept storable_key = std::same_as<K, std::string> || std::integral<K>;

namespace detail {
template <class T>
inline constexpr bool storable_payload_check = [] {
  static_assert(storable_payload<T>,
                "sluice::sqlite stores payloads that are std::string, std::vector<std::byte>, "
                "std::vector<unsigned char>, std::vector<char>, arithmetic or enum types; for any "
                "other Payload specialize sluice::payload_codec<Payload> with "
                "static std::string encode(const Payload&) and "
                "static Payload decode(std::string_view)");
  return true;
}();

template <class K>
inline constexpr bool storable_key_check = [] {
  static_assert(storable_key<K>,
                "sluice::sqlite stores partition keys of type std::string or an integer type");
  return true;
}();

/// Binds a payload. `scratch` keeps a codec's encoding alive until the statement has run (binds
/// do not copy).
template <class T>
void bind_payload(statement& s, int index, const T& value, std::string& scratch) {
  if constexpr (has_payload_codec<T>) {
    scratch = payload_codec<T>::encode(value);
    s.bind_blob(index, scratch.data(), scratch.size());
  } else if constexpr (std::same_as<T, std::string> || byte_vector<T>) {
    s.bind_blob(index, value.data(), value.size() * sizeof(typename T::value_type));
  } else if constexpr (std::is_floating_point_v<T>) {
    s.bind_double(index, static_cast<double>(value));
  } else {
    // Integers, bool and enums. uint64 above INT64_MAX round-trips through the two's complement
    // cast.
    s.bind_int64(index, static_cast<std::int64_t>(value));
  }
}

template <class T>
T column_payload(const statement& s, int index) {
  if constexpr (has_payload_codec<T>) {
    return payload_codec<T>::decode(s.column_blob(index));
  } else if constexpr (std::same_as<T, std::string>) {
    return std::string(s.column_blob(index));
  } else if constexpr (byte_vector<T>) {
    const std::string_view bytes = s.column_blob(index);
    const auto* first = reinterpret_cast<const typename T::value_type*>(bytes.data());
    return T(first, first + bytes.size());
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(s.column_double(index));
  } else if constexpr (std::same_as<T, bool>) {
    return s.column_int64(index) != 0;
  } else {
    return static_cast<T>(s.column_int64(index));
  }
}

template <class K>
void bind_key(statement& s, int index, const K& key) {
  if constexpr (std::same_as<K, std::string>) {
    s.bind_text(index, key);
  } else {
    s.bind_int64(index, static_cast<std::int64_t>(key));
  }
}

template <class K>
K column_key(const statement& s, int index) {
  if constexpr (std::same_as<K, std::string>) {
    return std::string(s.column_text(index));
  } else if constexpr (std::same_as<K, bool>) {
    return s.column_int64(index) != 0;
  } else {
    return static_cast<K>(s.column_int64(index));
  }
}

/// Nanoseconds since the epoch: how time points are stored (INTEGER, sortable, exact).
inline std::int64_t to_ns(time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline time_point from_ns(std::int64_t ns) noexcept {
  return time_point(std::chrono::duration_cast<duration>(std::chrono::nanoseconds(ns)));
}

/// Sequence numbers are stored as SQLite's signed 64-bit INTEGER.
inline std::int64_t to_db(sequence_number_t seq) noexcept { return static_cast<std::int64_t>(seq); }
inline sequence_number_t from_db(std::int64_t v) noexcept {
  return static_cast<sequence_number_t>(v);
}
}  // namespace detail

}  // namespace sqlite
SLUICE_END_NAMESPACE
