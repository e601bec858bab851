// sluice/payload_codec.hpp: how a durable store (sluice::sqlite, sluice::redis) turns a payload
// into bytes and back. Strings, byte vectors and numbers have built-in encodings; any other
// payload type goes through sluice::payload_codec<T>, which the user specializes once for every
// store.
#pragma once

#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE

/// Specialize for a payload type that is not a string, a byte vector or a number:
///
///   template <> struct sluice::payload_codec<order> {
///     static std::string encode(const order& o);      // any bytes
///     static order decode(std::string_view bytes);    // the inverse of encode
///   };
///
/// A specialization also takes precedence over the built-in encodings. The SQLite and Redis
/// stores, streams and destinations all use it.
template <class T>
struct payload_codec {};

namespace detail {
template <class T>
concept has_payload_codec = requires(const T& value, std::string_view bytes) {
  { payload_codec<T>::encode(value) } -> std::convertible_to<std::string>;
  { payload_codec<T>::decode(bytes) } -> std::convertible_to<T>;
};

/// Payloads stored as their bytes.
template <class T>
concept byte_vector = std::same_as<T, std::vector<std::byte>> ||
    std::same_as<T, std::vector<unsigned char>> || std::same_as<T, std::vector<char>>;
}  // namespace detail

SLUICE_END_NAMESPACE
