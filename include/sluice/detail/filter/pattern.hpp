// sluice/detail/filter/pattern.hpp: Lambda's filter pattern language (S-6.2, S-6.3), parsed.
// One parser, usable in constant expressions (sluice::filter_criteria<"...">() checks its
// patterns at compile time) and at run time (sluice::filter_criteria("...")): it turns a pattern
// into a tree (fields AND-ed, `$or` branches) and reports the first error with its position and
// rule. expand() turns the tree into the disjunction of conjunctions the matcher compiles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/filter/decimal.hpp"
#include "sluice/detail/io/json_text.hpp"

SLUICE_BEGIN_NAMESPACE

/// Why a pattern was rejected; the names are what compile-time errors show.
enum class pattern_rule : std::uint8_t {
  none,
  not_json,                          // not well-formed JSON (bad token, unclosed string, ...)
  trailing_characters,               // something after the pattern's closing brace
  pattern_must_be_an_object,         // a pattern is a JSON object
  empty_pattern,                     // {} addresses nothing
  unknown_top_level_field,           // only data, partitionKey, sequenceNumber,
                                     // approximateArrivalTimestamp and $or
  metadata_field_is_not_an_object,   // partitionKey etc. take a value list, not an object
  duplicate_field,                   // a field named twice in one object
  field_must_be_an_object_or_array,  // a field's value is an object (nested) or a value list
  empty_value_list,                  // [] matches nothing
  or_must_be_a_list_of_objects,      // "$or": [ {...}, {...} ]
  or_needs_two_branches,             // "$or" with fewer than two branches
  unknown_operator,                  // { "frobnicate": ... }
  operator_object_has_one_key,       // { "prefix": "a", "suffix": "b" }
  prefix_takes_a_string,             // prefix / suffix: a string or {"equals-ignore-case": s}
  equals_ignore_case_takes_a_string,
  wildcard_takes_a_string,
  wildcard_consecutive_stars,  // "a**b"
  wildcard_bad_escape,         // only \* and \\ are escapes in a wildcard
  anything_but_value,          // a string, a number, a non-empty list of strings or of numbers,
                               // or {prefix|suffix|equals-ignore-case|wildcard: ...}
  numeric_syntax,              // ["=", n] or one lower and/or one upper bound
  numeric_range_empty,         // lower bound not below upper bound
  exists_takes_a_boolean,
  cidr_syntax,        // "a.b.c.d/n" (n <= 32) or an IPv6 address "/n" (n <= 128)
  too_deep,           // nesting deeper than 32 levels
  too_many_branches,  // $or expands into more than 1,024 conjunctions
  pattern_too_long,   // longer than the configured limit (default 4,096 characters)
  too_many_patterns,  // more patterns than the configured limit (default 5)
};

namespace detail::filter {

constexpr std::string_view rule_text(pattern_rule r) {
  switch (r) {
    case pattern_rule::none:
      return "no error";
    case pattern_rule::not_json:
      return "not well-formed JSON";
    case pattern_rule::trailing_characters:
      return "characters after the pattern";
    case pattern_rule::pattern_must_be_an_object:
      return "a pattern must be a JSON object";
    case pattern_rule::empty_pattern:
      return "a pattern must address at least one field";
    case pattern_rule::unknown_top_level_field:
      return "a pattern addresses data, body (a queue message), partitionKey, sequenceNumber, "
             "approximateArrivalTimestamp or $or";
    case pattern_rule::metadata_field_is_not_an_object:
      return "a metadata field takes a value list, not an object";
    case pattern_rule::duplicate_field:
      return "a field is named twice in one object";
    case pattern_rule::field_must_be_an_object_or_array:
      return "a field's value must be an object (nested fields) or a value list";
    case pattern_rule::empty_value_list:
      return "a value list must not be empty";
    case pattern_rule::or_must_be_a_list_of_objects:
      return "$or takes a list of objects";
    case pattern_rule::or_needs_two_branches:
      return "$or needs at least two branches";
    case pattern_rule::unknown_operator:
      return "unknown operator (prefix, suffix, equals-ignore-case, wildcard, anything-but, "
             "numeric, exists, cidr)";
    case pattern_rule::operator_object_has_one_key:
      return "an operator object has exactly one key";
    case pattern_rule::prefix_takes_a_string:
      return "prefix and suffix take a string or {\"equals-ignore-case\": string}";
    case pattern_rule::equals_ignore_case_takes_a_string:
      return "equals-ignore-case takes a string";
    case pattern_rule::wildcard_takes_a_string:
      return "wildcard takes a string";
    case pattern_rule::wildcard_consecutive_stars:
      return "a wildcard must not have consecutive '*'";
    case pattern_rule::wildcard_bad_escape:
      return "a wildcard escapes only '*' and '\\' with '\\'";
    case pattern_rule::anything_but_value:
      return "anything-but takes a string, a number, a non-empty list of strings or of numbers, "
             "or {prefix|suffix|equals-ignore-case|wildcard: ...}";
    case pattern_rule::numeric_syntax:
      return "numeric takes [\"=\", n] or a lower bound (>, >=) and/or an upper bound (<, <=)";
    case pattern_rule::numeric_range_empty:
      return "numeric: the lower bound must be below the upper bound";
    case pattern_rule::exists_takes_a_boolean:
      return "exists takes true or false";
    case pattern_rule::cidr_syntax:
      return R"(cidr takes "a.b.c.d/n" (n <= 32) or an IPv6 address "/n" (n <= 128))";
    case pattern_rule::too_deep:
      return "nesting deeper than 32 levels";
    case pattern_rule::too_many_branches:
      return "$or expands into more than 1024 conjunctions";
    case pattern_rule::pattern_too_long:
      return "pattern longer than the limit";
    case pattern_rule::too_many_patterns:
      return "more patterns than the limit";
  }
  return "unknown";
}

inline constexpr std::size_t max_depth = 32;
inline constexpr std::size_t max_branches = 1024;

/// What one entry of a value list tests.
enum class op : std::uint8_t {
  exact_string,
  exact_number,  // by JSON text
  exact_true,
  exact_false,
  exact_null,
  equals_ignore_case,
  prefix,
  prefix_ignore_case,
  suffix,
  suffix_ignore_case,
  wildcard,
  anything_but,  // values: strings and/or numbers (numbers flagged in `numbers`)
  anything_but_prefix,
  anything_but_suffix,
  anything_but_ignore_case,
  anything_but_wildcard,
  numeric,
  exists_true,
  exists_false,
  cidr,
};

struct value_test {
  op kind = op::exact_null;
  std::vector<std::string> values;  // unescaped strings, or numbers' JSON text
  std::vector<bool> numbers;        // anything_but: which values are numbers
  // numeric: bounds as JSON text ("" when absent); flags say inclusive.
  std::string lower, upper;
  bool lower_inclusive = false, upper_inclusive = false, equal = false;
};

/// A field: a path (first segment: data or a metadata name) and its value list (OR-ed).
struct field_test {
  std::vector<std::string> path;
  std::vector<value_test> tests;
};

/// Fields AND-ed, each `$or` a disjunction of conjunctions.
struct conjunction {
  std::vector<field_test> fields;
  std::vector<std::vector<conjunction>> ors;
};

struct parse_result {
  pattern_rule rule = pattern_rule::none;
  std::size_t position = 0;  // 0-based character offset of the error
  conjunction tree;
  constexpr bool ok() const { return rule == pattern_rule::none; }
};

constexpr bool is_metadata_field(std::string_view k) {
  return k == "partitionKey" || k == "sequenceNumber" || k == "approximateArrivalTimestamp";
}

/// Parses one IPv4 or IPv6 CIDR block; returns false when malformed. bytes gets 16 bytes
/// (IPv4: the first 4), bits the prefix length, v6 whether it is IPv6.
constexpr bool parse_ipv4(std::string_view s, std::uint8_t* bytes) {
  std::size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return false;
    unsigned v = 0;
    std::size_t digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + static_cast<unsigned>(s[i++] - '0');
      if (++digits > 3 || v > 255) return false;
    }
    bytes[part] = static_cast<std::uint8_t>(v);
  }
  return i == s.size();
}

constexpr int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr bool parse_ipv6(std::string_view s, std::uint8_t* bytes) {
  std::uint16_t groups[8] = {};
  int count = 0, gap = -1;
  std::size_t i = 0;
  if (s.size() >= 2 && s[0] == ':' && s[1] == ':') {
    gap = 0;
    i = 2;
  } else if (!s.empty() && s[0] == ':') {
    return false;
  }
  while (i < s.size()) {
    if (count == 8) return false;
    // An embedded IPv4 address ends the address.
    std::size_t end = s.find_first_of(':', i);
    std::string_view part = s.substr(i, end == std::string_view::npos ? s.size() - i : end - i);
    if (part.find('.') != std::string_view::npos) {
      if (end != std::string_view::npos || count > 6) return false;
      std::uint8_t v4[4] = {};
      if (!parse_ipv4(part, v4)) return false;
      groups[count++] = static_cast<std::uint16_t>(v4[0] << 8 | v4[1]);
      groups[count++] = static_cast<std::uint16_t>(v4[2] << 8 | v4[3]);
      i = s.size();
      break;
    }
    if (part.empty() || part.size() > 4) return false;
    unsigned v = 0;
    for (char c : part) {
      int d = hex_digit(c);
      if (d < 0) return false;
      v = v * 16 + static_cast<unsigned>(d);
    }
    groups[count++] = static_cast<std::uint16_t>(v);
    if (end == std::string_view::npos) {
      i = s.size();
      break;
    }
    i = end + 1;
    if (i < s.size() && s[i] == ':') {
      if (gap >= 0) return false;
      gap = count;
      ++i;
    } else if (i == s.size()) {
      return false;  // trailing single ':'
    }
  }
  if (gap < 0 && count != 8) return false;
  if (gap >= 0 && count > 7) return false;
  std::uint16_t full[8] = {};
  if (gap < 0) {
    for (int k = 0; k < 8; ++k) full[k] = groups[k];
  } else {
    for (int k = 0; k < gap; ++k) full[k] = groups[k];
    int tail = count - gap;
    for (int k = 0; k < tail; ++k) full[8 - tail + k] = groups[gap + k];
  }
  for (std::size_t k = 0; k < 8; ++k) {
    bytes[2 * k] = static_cast<std::uint8_t>(full[k] >> 8);
    bytes[2 * k + 1] = static_cast<std::uint8_t>(full[k] & 0xff);
  }
  return true;
}

struct ip_address {
  std::uint8_t bytes[16] = {};
  bool v6 = false;
};

/// An address in an event: IPv4 or IPv6, no prefix length.
constexpr bool parse_ip(std::string_view s, ip_address& out) {
  if (s.find(':') != std::string_view::npos) {
    out.v6 = true;
    return parse_ipv6(s, out.bytes);
  }
  out.v6 = false;
  return parse_ipv4(s, out.bytes);
}

struct cidr_block {
  ip_address address;
  unsigned bits = 0;
};

constexpr bool parse_cidr(std::string_view s, cidr_block& out) {
  std::size_t slash = s.find('/');
  if (slash == std::string_view::npos) return false;
  if (!parse_ip(s.substr(0, slash), out.address)) return false;
  std::string_view n = s.substr(slash + 1);
  if (n.empty() || n.size() > 3) return false;
  unsigned bits = 0;
  for (char c : n) {
    if (c < '0' || c > '9') return false;
    bits = bits * 10 + static_cast<unsigned>(c - '0');
  }
  if (bits > (out.address.v6 ? 128u : 32u)) return false;
  out.bits = bits;
  return true;
}

constexpr bool wildcard_ok(std::string_view w, pattern_rule& why) {
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (w[i] == '\\') {
      if (i + 1 >= w.size() || (w[i + 1] != '*' && w[i + 1] != '\\')) {
        why = pattern_rule::wildcard_bad_escape;
        return false;
      }
      ++i;
    } else if (w[i] == '*' && i + 1 < w.size() && w[i + 1] == '*') {
      why = pattern_rule::wildcard_consecutive_stars;
      return false;
    }
  }
  return true;
}

/// A small JSON reader over the pattern text, with the pattern language's rules on top.
class pattern_parser {
 public:
  constexpr explicit pattern_parser(std::string_view text) : t_(text) {}

  constexpr parse_result parse() {
    parse_result r;
    skip_ws();
    if (!at('{')) {
      if (i_ >= t_.size() || !starts_value()) return fail(r, pattern_rule::not_json);
      return fail(r, pattern_rule::pattern_must_be_an_object);
    }
    if (!object(r.tree, /*top=*/true, 0)) {
      r.rule = rule_;
      r.position = pos_;
      return r;
    }
    skip_ws();
    if (i_ != t_.size()) return fail(r, pattern_rule::trailing_characters);
    std::size_t branches = 1;
    if (!count_branches(r.tree, branches)) {
      r.rule = pattern_rule::too_many_branches;
      r.position = 0;
    }
    return r;
  }

 private:
  std::string_view t_;
  std::size_t i_ = 0;
  pattern_rule rule_ = pattern_rule::none;
  std::size_t pos_ = 0;

  constexpr parse_result& fail(parse_result& r, pattern_rule why) {
    r.rule = why;
    r.position = i_;
    return r;
  }
  constexpr bool error(pattern_rule why, std::size_t at) {
    if (rule_ == pattern_rule::none) {
      rule_ = why;
      pos_ = at;
    }
    return false;
  }
  constexpr bool error(pattern_rule why) { return error(why, i_); }

  static constexpr bool count_branches(const conjunction& c, std::size_t& total) {
    for (const auto& alternatives : c.ors) {
      std::size_t sum = 0;
      for (const auto& a : alternatives) {
        std::size_t n = 1;
        if (!count_branches(a, n)) return false;
        sum += n;
        if (sum > max_branches) return false;
      }
      total *= sum;
      if (total > max_branches) return false;
    }
    return true;
  }

  constexpr void skip_ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\n' || t_[i_] == '\r'))
      ++i_;
  }
  constexpr bool at(char c) const { return i_ < t_.size() && t_[i_] == c; }
  constexpr bool starts_value() const {
    char c = t_[i_];
    return c == '{' || c == '[' || c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't' ||
           c == 'f' || c == 'n';
  }
  constexpr bool expect(char c) {
    skip_ws();
    if (!at(c)) return error(pattern_rule::not_json);
    ++i_;
    return true;
  }

  constexpr bool hex4(std::uint32_t& v) {
    if (i_ + 4 > t_.size()) return error(pattern_rule::not_json);
    v = 0;
    for (int k = 0; k < 4; ++k) {
      int d = hex_digit(t_[i_]);
      if (d < 0) return error(pattern_rule::not_json);
      v = v * 16 + static_cast<std::uint32_t>(d);
      ++i_;
    }
    return true;
  }

  /// A JSON string at i_ (after whitespace), unescaped into out.
  constexpr bool string(std::string& out) {
    skip_ws();
    if (!at('"')) return error(pattern_rule::not_json);
    ++i_;
    while (true) {
      if (i_ >= t_.size()) return error(pattern_rule::not_json);
      char c = t_[i_];
      if (c == '"') {
        ++i_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return error(pattern_rule::not_json);
      if (c != '\\') {
        out += c;
        ++i_;
        continue;
      }
      ++i_;
      if (i_ >= t_.size()) return error(pattern_rule::not_json);
      char e = t_[i_++];
      if (const int plain = json_unescaped(e); plain >= 0) {
        out += static_cast<char>(plain);
        continue;
      }
      switch (e) {
        case 'u': {
          std::size_t start = i_ - 2;
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (i_ + 2 > t_.size() || t_[i_] != '\\' || t_[i_ + 1] != 'u')
              return error(pattern_rule::not_json, start);
            i_ += 2;
            std::uint32_t lo = 0;
            if (!hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return error(pattern_rule::not_json, start);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return error(pattern_rule::not_json, start);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          return error(pattern_rule::not_json, i_ - 2);
      }
    }
  }

  /// A JSON number at i_; its text into out.
  constexpr bool number(std::string& out) {
    skip_ws();
    std::size_t start = i_;
    if (at('-')) ++i_;
    if (at('0')) {
      ++i_;
    } else if (i_ < t_.size() && t_[i_] >= '1' && t_[i_] <= '9') {
      while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9') ++i_;
    } else {
      return error(pattern_rule::not_json);
    }
    if (at('.')) {
      ++i_;
      if (!(i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9')) return error(pattern_rule::not_json);
      while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9') ++i_;
    }
    if (at('e') || at('E')) {
      ++i_;
      if (at('+') || at('-')) ++i_;
      if (!(i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9')) return error(pattern_rule::not_json);
      while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9') ++i_;
    }
    // Copied character by character: constructing a std::string from a pointer into a
    // template argument (compile-time patterns) is not a constant expression for GCC 12 when
    // sanitizers are on (its null-pointer check is not folded).
    out.clear();
    for (std::size_t k = start; k < i_; ++k) out += t_[k];
    return true;
  }

  constexpr bool literal(std::string_view word) {
    if (t_.substr(i_, word.size()) != word) return error(pattern_rule::not_json);
    i_ += word.size();
    return true;
  }

  /// Skips any JSON value (to find the end of a malformed operand and report it well).
  constexpr bool skip_value(std::size_t depth) {
    if (depth > max_depth) return error(pattern_rule::too_deep);
    skip_ws();
    if (i_ >= t_.size()) return error(pattern_rule::not_json);
    char c = t_[i_];
    if (c == '"') {
      std::string s;
      return string(s);
    }
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++i_;
      skip_ws();
      if (at(close)) {
        ++i_;
        return true;
      }
      while (true) {
        if (c == '{') {
          std::string k;
          if (!string(k) || !expect(':')) return false;
        }
        if (!skip_value(depth + 1)) return false;
        skip_ws();
        if (at(',')) {
          ++i_;
          continue;
        }
        return expect(close);
      }
    }
    if (c == 't') return literal("true");
    if (c == 'f') return literal("false");
    if (c == 'n') return literal("null");
    std::string n;
    return number(n);
  }

  /// Object members: calls member(key, key_position) with i_ at the value; checks duplicates.
  template <class Member>
  constexpr bool members(Member&& member) {
    if (!expect('{')) return false;
    skip_ws();
    if (at('}')) {
      ++i_;
      return true;
    }
    std::vector<std::string> seen;
    while (true) {
      skip_ws();
      std::size_t key_at = i_;
      std::string key;
      if (!string(key)) return false;
      for (const auto& s : seen)
        if (s == key) return error(pattern_rule::duplicate_field, key_at);
      seen.push_back(key);
      if (!expect(':')) return false;
      skip_ws();
      if (!member(key, key_at)) return false;
      skip_ws();
      if (at(',')) {
        ++i_;
        continue;
      }
      return expect('}');
    }
  }

  /// A pattern object (top: the whole pattern; otherwise nested under path).
  constexpr bool object(conjunction& c, bool top, std::size_t depth,
                        const std::vector<std::string>& path = {}) {
    if (depth > max_depth) return error(pattern_rule::too_deep);
    std::size_t open = i_;
    bool any = false;
    bool ok = members([&](const std::string& key, std::size_t key_at) {
      any = true;
      if (key == "$or") return or_branches(c, top, depth, path);
      // `body`: a queue message's body (S-9.10); which of data and body a source allows is
      // checked when the mapping is built (detail/filter/addressing.hpp).
      if (top && key != "data" && key != "body" && !is_metadata_field(key))
        return error(pattern_rule::unknown_top_level_field, key_at);
      std::vector<std::string> sub = path;
      sub.push_back(key);
      if (at('[')) {
        field_test f;
        f.path = std::move(sub);
        if (!value_list(f)) return false;
        c.fields.push_back(std::move(f));
        return true;
      }
      if (at('{')) {
        if (top && key != "data" && key != "body")
          return error(pattern_rule::metadata_field_is_not_an_object);
        return object(c, false, depth + 1, sub);
      }
      return error(pattern_rule::field_must_be_an_object_or_array);
    });
    if (!ok) return false;
    if (!any) return error(pattern_rule::empty_pattern, open);
    return true;
  }

  constexpr bool or_branches(conjunction& c, bool top, std::size_t depth,
                             const std::vector<std::string>& path) {
    if (!at('[')) return error(pattern_rule::or_must_be_a_list_of_objects);
    std::size_t open = i_;
    ++i_;
    std::vector<conjunction> alternatives;
    skip_ws();
    if (!at(']')) {
      while (true) {
        skip_ws();
        if (!at('{')) return error(pattern_rule::or_must_be_a_list_of_objects);
        conjunction branch;
        if (!object(branch, top, depth + 1, path)) return false;
        alternatives.push_back(std::move(branch));
        skip_ws();
        if (at(',')) {
          ++i_;
          continue;
        }
        if (!expect(']')) return false;
        break;
      }
    } else {
      ++i_;
    }
    if (alternatives.size() < 2) return error(pattern_rule::or_needs_two_branches, open);
    c.ors.push_back(std::move(alternatives));
    return true;
  }

  constexpr bool value_list(field_test& f) {
    std::size_t open = i_;
    ++i_;  // '['
    skip_ws();
    if (at(']')) return error(pattern_rule::empty_value_list, open);
    while (true) {
      skip_ws();
      value_test v;
      if (!value(v)) return false;
      f.tests.push_back(std::move(v));
      skip_ws();
      if (at(',')) {
        ++i_;
        continue;
      }
      return expect(']');
    }
  }

  constexpr bool value(value_test& v) {
    if (i_ >= t_.size()) return error(pattern_rule::not_json);
    char c = t_[i_];
    if (c == '"') {
      v.kind = op::exact_string;
      v.values.emplace_back();
      return string(v.values.back());
    }
    if (c == 't') {
      v.kind = op::exact_true;
      return literal("true");
    }
    if (c == 'f') {
      v.kind = op::exact_false;
      return literal("false");
    }
    if (c == 'n') {
      v.kind = op::exact_null;
      return literal("null");
    }
    if (c == '{') return operator_object(v);
    if (c == '[') return error(pattern_rule::not_json);  // a list inside a value list
    v.kind = op::exact_number;
    v.values.emplace_back();
    return number(v.values.back());
  }

  /// A string operand at i_, or fails with `why` at the operand.
  constexpr bool string_operand(std::string& out, pattern_rule why) {
    skip_ws();
    if (!at('"')) return error(why);
    return string(out);
  }

  constexpr bool operator_object(value_test& v) {
    bool seen = false;
    return members([&](const std::string& key, std::size_t key_at) {
      if (seen) return error(pattern_rule::operator_object_has_one_key, key_at);
      seen = true;
      if (key == "prefix" || key == "suffix") return prefix_suffix(v, key == "prefix");
      if (key == "equals-ignore-case") {
        v.kind = op::equals_ignore_case;
        v.values.emplace_back();
        return string_operand(v.values.back(), pattern_rule::equals_ignore_case_takes_a_string);
      }
      if (key == "wildcard") {
        v.kind = op::wildcard;
        v.values.emplace_back();
        std::size_t at_operand = i_;
        if (!string_operand(v.values.back(), pattern_rule::wildcard_takes_a_string)) return false;
        pattern_rule why = pattern_rule::none;
        if (!wildcard_ok(v.values.back(), why)) return error(why, at_operand);
        return true;
      }
      if (key == "anything-but") return anything_but(v);
      if (key == "numeric") return numeric(v);
      if (key == "exists") {
        if (at('t')) {
          v.kind = op::exists_true;
          return literal("true");
        }
        if (at('f')) {
          v.kind = op::exists_false;
          return literal("false");
        }
        return error(pattern_rule::exists_takes_a_boolean);
      }
      if (key == "cidr") {
        v.kind = op::cidr;
        v.values.emplace_back();
        std::size_t at_operand = i_;
        if (!string_operand(v.values.back(), pattern_rule::cidr_syntax)) return false;
        cidr_block b;
        if (!parse_cidr(v.values.back(), b)) return error(pattern_rule::cidr_syntax, at_operand);
        return true;
      }
      return error(pattern_rule::unknown_operator, key_at);
    });
  }

  constexpr bool prefix_suffix(value_test& v, bool prefix) {
    v.values.emplace_back();
    if (at('"')) {
      v.kind = prefix ? op::prefix : op::suffix;
      return string(v.values.back());
    }
    if (!at('{')) return error(pattern_rule::prefix_takes_a_string);
    bool seen = false;
    return members([&](const std::string& key, std::size_t key_at) {
      if (seen) return error(pattern_rule::operator_object_has_one_key, key_at);
      seen = true;
      if (key != "equals-ignore-case") return error(pattern_rule::prefix_takes_a_string, key_at);
      v.kind = prefix ? op::prefix_ignore_case : op::suffix_ignore_case;
      return string_operand(v.values.back(), pattern_rule::equals_ignore_case_takes_a_string);
    });
  }

  /// One string, or a non-empty list of strings, into v.values.
  constexpr bool strings_operand(value_test& v, pattern_rule why) {
    if (at('"')) {
      v.values.emplace_back();
      return string(v.values.back());
    }
    if (!at('[')) return error(why);
    std::size_t open = i_;
    ++i_;
    skip_ws();
    if (at(']')) return error(why, open);
    while (true) {
      skip_ws();
      if (!at('"')) return error(why);
      v.values.emplace_back();
      if (!string(v.values.back())) return false;
      skip_ws();
      if (at(',')) {
        ++i_;
        continue;
      }
      return expect(']');
    }
  }

  constexpr bool anything_but(value_test& v) {
    v.kind = op::anything_but;
    if (at('"')) {
      v.values.emplace_back();
      v.numbers.push_back(false);
      return string(v.values.back());
    }
    if (at('-') || (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9')) {
      v.values.emplace_back();
      v.numbers.push_back(true);
      return number(v.values.back());
    }
    if (at('[')) {
      std::size_t open = i_;
      ++i_;
      skip_ws();
      if (at(']')) return error(pattern_rule::anything_but_value, open);
      bool strings = at('"');
      while (true) {
        skip_ws();
        if (strings != at('"')) return error(pattern_rule::anything_but_value);
        v.values.emplace_back();
        v.numbers.push_back(!strings);
        if (strings ? !string(v.values.back()) : !number(v.values.back())) return false;
        skip_ws();
        if (at(',')) {
          ++i_;
          continue;
        }
        return expect(']');
      }
    }
    if (!at('{')) return error(pattern_rule::anything_but_value);
    bool seen = false;
    return members([&](const std::string& key, std::size_t key_at) {
      if (seen) return error(pattern_rule::operator_object_has_one_key, key_at);
      seen = true;
      if (key == "prefix" || key == "suffix") {
        v.kind = key == "prefix" ? op::anything_but_prefix : op::anything_but_suffix;
        return strings_operand(v, pattern_rule::prefix_takes_a_string);
      }
      if (key == "equals-ignore-case") {
        v.kind = op::anything_but_ignore_case;
        return strings_operand(v, pattern_rule::equals_ignore_case_takes_a_string);
      }
      if (key == "wildcard") {
        v.kind = op::anything_but_wildcard;
        std::size_t at_operand = i_;
        if (!strings_operand(v, pattern_rule::wildcard_takes_a_string)) return false;
        for (const auto& w : v.values) {
          pattern_rule why = pattern_rule::none;
          if (!wildcard_ok(w, why)) return error(why, at_operand);
        }
        return true;
      }
      return error(pattern_rule::anything_but_value, key_at);
    });
  }

  constexpr bool numeric(value_test& v) {
    v.kind = op::numeric;
    if (!at('[')) return error(pattern_rule::numeric_syntax);
    std::size_t open = i_;
    ++i_;
    int pairs = 0;
    bool has_lower = false, has_upper = false;
    skip_ws();
    if (at(']')) return error(pattern_rule::numeric_syntax, open);
    while (true) {
      skip_ws();
      std::size_t op_at = i_;
      std::string o;
      if (!at('"')) return error(pattern_rule::numeric_syntax);
      if (!string(o)) return false;
      if (!expect(',')) return false;
      skip_ws();
      if (!(at('-') || (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9')))
        return error(pattern_rule::numeric_syntax);
      std::string n;
      if (!number(n)) return false;
      ++pairs;
      if (o == "=") {
        if (pairs != 1) return error(pattern_rule::numeric_syntax, op_at);
        v.equal = true;
        v.lower = v.upper = n;
        v.lower_inclusive = v.upper_inclusive = true;
      } else if (o == ">" || o == ">=") {
        if (has_lower || v.equal) return error(pattern_rule::numeric_syntax, op_at);
        has_lower = true;
        v.lower = n;
        v.lower_inclusive = o == ">=";
      } else if (o == "<" || o == "<=") {
        if (has_upper || v.equal) return error(pattern_rule::numeric_syntax, op_at);
        has_upper = true;
        v.upper = n;
        v.upper_inclusive = o == "<=";
      } else {
        return error(pattern_rule::numeric_syntax, op_at);
      }
      skip_ws();
      if (at(',')) {
        ++i_;
        continue;
      }
      if (!expect(']')) return false;
      break;
    }
    if (has_lower && has_upper && !(decimal_to_double(v.lower) < decimal_to_double(v.upper)))
      return error(pattern_rule::numeric_range_empty, open);
    return true;
  }
};

constexpr parse_result parse_pattern(std::string_view text) { return pattern_parser(text).parse(); }

/// The pattern as a disjunction of conjunctions of fields ($or distributed).
constexpr std::vector<std::vector<field_test>> expand(const conjunction& c) {
  std::vector<std::vector<field_test>> out{c.fields};
  for (const auto& alternatives : c.ors) {
    std::vector<std::vector<field_test>> next;
    for (const auto& partial : out) {
      for (const auto& a : alternatives) {
        for (auto& tail : expand(a)) {
          auto joined = partial;
          for (auto& f : tail) joined.push_back(std::move(f));
          next.push_back(std::move(joined));
        }
      }
    }
    out = std::move(next);
  }
  return out;
}

}  // namespace detail::filter
SLUICE_END_NAMESPACE
