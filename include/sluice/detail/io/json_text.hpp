// sluice/detail/io/json_text.hpp: the few JSON-writing pieces the on-failure file needs: strict
// UTF-8 decoding, the "is this payload readable text?" test (else base64), string escaping that
// always yields valid JSON, ISO-8601 UTC timestamps with milliseconds and locale-free numbers.
#pragma once

#include <charconv>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "sluice/config.hpp"
#include "sluice/detail/io/base64.hpp"

SLUICE_BEGIN_NAMESPACE

namespace detail {

/// Length (1..4) of the well-formed UTF-8 sequence that starts `s`, or 0 when it is ill-formed:
/// truncated, overlong, a surrogate or above U+10FFFF (Unicode table 3-7). `s` is not empty.
inline std::size_t utf8_sequence(std::string_view s, char32_t& cp) noexcept {
  const auto lead = static_cast<unsigned char>(s[0]);
  std::size_t length = 0;
  char32_t smallest = 0;
  if (lead < 0x80) {
    cp = lead;
    return 1;
  } else if (lead >= 0xC0 && lead < 0xE0) {
    length = 2, smallest = 0x80, cp = lead & 0x1Fu;
  } else if (lead >= 0xE0 && lead < 0xF0) {
    length = 3, smallest = 0x800, cp = lead & 0x0Fu;
  } else if (lead >= 0xF0 && lead < 0xF8) {
    length = 4, smallest = 0x10000, cp = lead & 0x07u;
  } else {
    return 0;
  }
  if (s.size() < length) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    const auto next = static_cast<unsigned char>(s[i]);
    if ((next & 0xC0u) != 0x80u) return 0;
    cp = cp << 6 | (next & 0x3Fu);
  }
  if (cp < smallest || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return length;
}

/// Unicode's control characters (category Cc): C0, DEL and C1.
constexpr bool is_control(char32_t cp) noexcept { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

/// True when the bytes can be shown as text: well-formed UTF-8 whose only control characters are
/// tab, line feed and carriage return. Anything else is written as base64 so that no byte is
/// lost or altered on its way through the file.
inline bool is_plain_text(std::string_view s) noexcept {
  while (!s.empty()) {
    char32_t cp = 0;
    const std::size_t length = utf8_sequence(s, cp);
    if (length == 0) return false;
    if (is_control(cp) && cp != U'\t' && cp != U'\n' && cp != U'\r') return false;
    s.remove_prefix(length);
  }
  return true;
}

/// Appends `s` as a quoted JSON string. Control characters are escaped (\n, \r, \t or \u00XX)
/// so a record always stays on one line; ill-formed UTF-8 becomes U+FFFD, because JSON text must
/// be UTF-8 (RFC 8259). Payloads never take the lossy path: they are tested with is_plain_text
/// first. Partition keys, error messages and names may.
/// The character a two-character JSON escape stands for, given the character after the
/// backslash (one of: quote, backslash, slash, b f n r t), or -1 (u escapes and invalid ones are
/// the reader's).
constexpr int json_unescaped(char e) noexcept {
  switch (e) {
    case '"':
    case '\\':
    case '/':
      return e;
    case 'b':
      return '\b';
    case 'f':
      return '\f';
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    default:
      return -1;
  }
}

/// Appends code point `cp` as UTF-8 (for "\\u" escapes read from JSON text).
constexpr void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

inline void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  while (!s.empty()) {
    char32_t cp = 0;
    const std::size_t length = utf8_sequence(s, cp);
    if (length == 0) {
      out += "\\ufffd";
      s.remove_prefix(1);
      continue;
    }
    switch (cp) {
      case U'"':
        out += "\\\"";
        break;
      case U'\\':
        out += "\\\\";
        break;
      case U'\n':
        out += "\\n";
        break;
      case U'\r':
        out += "\\r";
        break;
      case U'\t':
        out += "\\t";
        break;
      default:
        if (is_control(cp)) {
          out += "\\u00";
          out += hex[cp >> 4];
          out += hex[cp & 0xF];
        } else {
          out.append(s.data(), length);
        }
    }
    s.remove_prefix(length);
  }
  out += '"';
}

/// Appends `t` as ISO-8601 UTC with milliseconds, Lambda's format: 2019-11-14T00:38:06.021Z.
inline void append_iso8601(std::string& out, time_point t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day date{day};
  const hh_mm_ss time{ms - day};
  char text[64];
  const int n = std::snprintf(
      text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(date.year()),
      static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
      static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
      static_cast<int>(time.seconds().count()), static_cast<int>(time.subseconds().count()));
  out.append(text, static_cast<std::size_t>(n));
}

/// Appends a number as plain decimal text (std::to_chars: no locale, shortest round-trip form for
/// floating point). Character types count as numbers here; bool is written true/false.
template <class T>
requires std::is_arithmetic_v<T>
void append_number(std::string& out, T value) {
  if constexpr (std::same_as<T, bool>) {
    out += value ? "true" : "false";
  } else {
    char text[64];
    std::to_chars_result result{};
    if constexpr (std::is_integral_v<T>) {
      using wide = std::conditional_t<std::is_signed_v<T>, long long, unsigned long long>;
      result = std::to_chars(text, text + sizeof text, static_cast<wide>(value));
    } else {
      result = std::to_chars(text, text + sizeof text, value);
    }
    out.append(text, result.ptr);
  }
}

/// "data" and "dataEncoding": readable text as a JSON string, any other bytes as base64.
inline void append_data(std::string& out, std::string_view bytes) {
  const bool text = is_plain_text(bytes);
  out += R"("data":)";
  if (text) {
    append_json_string(out, bytes);
  } else {
    out += '"';
    append_base64(out, bytes);
    out += '"';
  }
  out += text ? R"(,"dataEncoding":"text")" : R"(,"dataEncoding":"base64")";
}

template <class T>
void append_quoted_number(std::string& out, T value) {
  out += '"';
  append_number(out, value);
  out += '"';
}

inline void append_quoted_time(std::string& out, time_point t) {
  out += '"';
  append_iso8601(out, t);
  out += '"';
}

}  // namespace detail

SLUICE_END_NAMESPACE
