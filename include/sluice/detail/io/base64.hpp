// sluice/detail/io/base64.hpp: standard base64 (RFC 4648 section 4, '+' '/' alphabet, '=' padding),
// the encoding Kinesis uses for record data. The on-failure file writes binary payloads with it
// so a line stays valid JSON whatever the bytes are.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE

namespace detail {

inline void append_base64(std::string& out, std::string_view bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out.reserve(out.size() + (bytes.size() + 2) / 3 * 4);
  const auto byte_at = [&](std::size_t i) {
    return static_cast<unsigned>(static_cast<unsigned char>(bytes[i]));
  };
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const unsigned group = byte_at(i) << 16 | byte_at(i + 1) << 8 | byte_at(i + 2);
    out += alphabet[(group >> 18) & 63];
    out += alphabet[(group >> 12) & 63];
    out += alphabet[(group >> 6) & 63];
    out += alphabet[group & 63];
  }
  // One or two trailing bytes: pad the group with zero bits, then with '='.
  if (const std::size_t rest = bytes.size() - i; rest != 0) {
    const unsigned group = byte_at(i) << 16 | (rest == 2 ? byte_at(i + 1) << 8 : 0u);
    out += alphabet[(group >> 18) & 63];
    out += alphabet[(group >> 12) & 63];
    out += rest == 2 ? alphabet[(group >> 6) & 63] : '=';
    out += '=';
  }
}

inline std::string base64_encode(std::string_view bytes) {
  std::string out;
  append_base64(out, bytes);
  return out;
}

}  // namespace detail

SLUICE_END_NAMESPACE
