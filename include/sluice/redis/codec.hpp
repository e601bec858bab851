// sluice/redis/codec.hpp: how keys, payloads and sequence numbers become Redis field values and
// entry ids. Strings and byte vectors are stored as their bytes, numbers as decimal text; any
// other payload goes through sluice::payload_codec<T> (sluice/payload_codec.hpp), as for
// sluice::sqlite.
#pragma once

#include <charconv>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/payload_codec.hpp"

SLUICE_BEGIN_NAMESPACE
namespace redis {

template <class T>
concept storable_payload = detail::has_payload_codec<T> || std::same_as<T, std::string> ||
    detail::byte_vector<T> || std::is_arithmetic_v<T>;
template <class K>
concept storable_key = std::same_as<K, std::string> || std::integral<K>;

namespace detail {
using sluice::detail::byte_vector;
using sluice::detail::has_payload_codec;

template <class T>
T parse_number(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size())
    throw std::runtime_error("sluice::redis: \"" + std::string(text.substr(0, 40)) +
                             "\" is not a number of the expected type");
  return value;
}

template <class T>
std::string encode(const T& value) {
  if constexpr (has_payload_codec<T>) {
    return std::string(payload_codec<T>::encode(value));
  } else if constexpr (std::same_as<T, std::string>) {
    return value;
  } else if constexpr (byte_vector<T>) {
    return std::string(reinterpret_cast<const char*>(value.data()), value.size());
  } else if constexpr (std::same_as<T, bool>) {
    return value ? "1" : "0";
  } else {
    char buf[64];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    (void)ec;
    return std::string(buf, end);
  }
}

template <class T>
T decode(std::string_view bytes) {
  if constexpr (has_payload_codec<T>) {
    return payload_codec<T>::decode(bytes);
  } else if constexpr (std::same_as<T, std::string>) {
    return std::string(bytes);
  } else if constexpr (byte_vector<T>) {
    const auto* p = reinterpret_cast<const typename T::value_type*>(bytes.data());
    return T(p, p + bytes.size());
  } else if constexpr (std::same_as<T, bool>) {
    return bytes == "1";
  } else {
    return parse_number<T>(bytes);
  }
}

inline std::int64_t to_ms(time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline std::int64_t to_ns(time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline time_point from_ms(std::int64_t ms) noexcept {
  return time_point(std::chrono::duration_cast<duration>(std::chrono::milliseconds(ms)));
}
inline time_point from_ns(std::int64_t ns) noexcept {
  return time_point(std::chrono::duration_cast<duration>(std::chrono::nanoseconds(ns)));
}

}  // namespace detail
}  // namespace redis
SLUICE_END_NAMESPACE
