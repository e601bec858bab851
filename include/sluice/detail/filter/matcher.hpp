// sluice/detail/filter/matcher.hpp: filter patterns compiled into one matcher (S-6.2).
// Every field any pattern addresses is a path; the paths under `data` form one trie that a
// payload reader walks once, collecting the leaf values the patterns address (arrays flattened).
// Each path has one index of its tests: exact values and equals-ignore-case values are hashed
// (one lookup per event value, whatever the number of patterns), the other operators are kept in
// a list. A test names the pattern fields it satisfies; a pattern matches when all its fields are
// satisfied. Paths are evaluated in one order, and a listed test is only run when one of its
// patterns has all its fields on earlier paths satisfied, so a pattern whose first field failed
// costs nothing more (the idea of Event Ruler's and Quamina's automata: patterns share the work
// of reading the event, and a transition is followed only from a reached state).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/filter/decimal.hpp"
#include "sluice/detail/filter/pattern.hpp"
#include "sluice/error.hpp"

SLUICE_BEGIN_NAMESPACE

/// Limits on run-time patterns; Lambda's by default (5 patterns, 4,096 characters each).
struct filter_limits {
  std::size_t max_patterns = 5;
  std::size_t max_pattern_chars = 4096;
};

/// An invalid filter pattern, found when the mapping is built: which pattern (0-based), where
/// (0-based character offset) and which rule.
class filter_pattern_error : public configuration_error {
 public:
  filter_pattern_error(const std::string& what, std::size_t pattern, std::size_t position,
                       pattern_rule rule)
      : configuration_error(what), pattern_(pattern), position_(position), rule_(rule) {}
  std::size_t pattern_index() const noexcept { return pattern_; }
  std::size_t position() const noexcept { return position_; }
  pattern_rule rule() const noexcept { return rule_; }

 private:
  std::size_t pattern_;
  std::size_t position_;
  pattern_rule rule_;
};

namespace detail::filter {

inline constexpr std::uint32_t npos32 = ~std::uint32_t{0};

/// a == b, rejecting most different keys of equal length by their first and last characters
/// before comparing the rest (JSON keys of one object often share a length: "status", "amount").
constexpr bool same_text(std::string_view a, std::string_view b) noexcept {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  if (n == 0) return true;
  if (a.front() != b.front() || a.back() != b.back()) return false;
  if (n > 16) return a == b;
  for (std::size_t i = 1; i + 1 < n; ++i)  // a short key: no library call
    if (a[i] != b[i]) return false;
  return true;
}

enum class leaf_kind : std::uint8_t { string, number, boolean_true, boolean_false, null };

/// A leaf value of an event: a string (unescaped), a number (its JSON text), true/false/null.
struct leaf {
  leaf_kind kind;
  std::string_view text;
};

constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
constexpr std::string lowered(std::string_view s) {
  std::string out;
  for (char c : s) out += ascii_lower(c);
  return out;
}
constexpr bool iequals_prefix(std::string_view s, std::string_view lower_prefix) {
  if (s.size() < lower_prefix.size()) return false;
  for (std::size_t i = 0; i < lower_prefix.size(); ++i)
    if (ascii_lower(s[i]) != lower_prefix[i]) return false;
  return true;
}
constexpr bool iequals_suffix(std::string_view s, std::string_view lower_suffix) {
  if (s.size() < lower_suffix.size()) return false;
  return iequals_prefix(s.substr(s.size() - lower_suffix.size()), lower_suffix);
}

/// A wildcard split at its unescaped '*': s must be parts[0] * parts[1] * ... * parts[n].
constexpr std::vector<std::string> wildcard_parts(std::string_view w) {
  std::vector<std::string> parts(1);
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (w[i] == '\\' && i + 1 < w.size()) {
      parts.back() += w[++i];
    } else if (w[i] == '*') {
      parts.emplace_back();
    } else {
      parts.back() += w[i];
    }
  }
  return parts;
}

inline bool parse_double(std::string_view text, double& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end;
}

/// An event's number (JSON text) as a double; false when out of range (as std::from_chars,
/// which is what runs outside constant evaluation).
constexpr bool number_value(std::string_view text, double& out) {
  if (!std::is_constant_evaluated()) return parse_double(text, out);
  out = decimal_to_double(text);
  const std::uint64_t magnitude = std::bit_cast<std::uint64_t>(out) << 1;
  if (magnitude == std::uint64_t{0x7FF0000000000000} << 1) return false;  // overflow
  if (magnitude == 0)
    for (char c : text) {
      if (c == 'e' || c == 'E') break;
      if (c >= '1' && c <= '9') return false;  // underflow
    }
  return true;
}

/// FNV-1a: the hash of the value tables (the same at compile time and at run time).
constexpr std::uint32_t text_hash(std::string_view s) noexcept {
  std::uint32_t h = 2166136261u;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h;
}

// ---- the matcher's representation: flat tables -----------------------------------------------
// One representation for run-time and compile-time patterns: tables of literal types that refer
// to each other by index. Run-time patterns keep them in std::vector (matcher_tables);
// compile-time patterns in std::array inside a constexpr variable (frozen_tables). The matching
// code (matcher_view) reads either through pointers.

/// The range [begin, begin + size) of one of the tables.
struct span32 {
  std::uint32_t begin = 0;
  std::uint32_t size = 0;
};

/// A key (a range of chars) and what it maps to: the fields a value satisfies (a range of ids),
/// or a trie node's child ({node, 0}).
struct flat_entry {
  span32 key;
  span32 value;
};

/// Values -> the fields they satisfy. A short list is scanned (cheaper than hashing a few keys),
/// a long one (more than 8) is hashed: `slots` (ids, a power of two) hold entry index + 1, 0 when
/// empty, probed linearly from text_hash(key).
struct flat_index {
  span32 entries;
  span32 slots;
};

struct flat_node {
  span32 children;  // entries
  std::uint32_t path = npos32;
};

/// A test that is not hashed: checked against each value of its path.
struct flat_listed {
  op kind = op::prefix;
  span32 values;     // spans of chars (lowercased for the *_ignore_case kinds)
  span32 numbers;    // ids, anything_but: 1 where the value is a number
  span32 wildcards;  // spans: each a range of spans, the wildcard's parts
  double lower = 0, upper = 0;
  bool has_lower = false, has_upper = false, lower_inclusive = false, upper_inclusive = false;
  cidr_block block;
  std::uint32_t field = 0;   // the pattern field it satisfies (a listed test is never shared)
  std::uint32_t before = 0;  // that pattern's fields on earlier paths
};

/// A path's tests.
struct flat_path {
  flat_index strings, numbers, ignore_case;
  span32 on_true, on_false, on_null, exists_true, exists_false;  // ids: fields
  span32 listed;                                                 // listed tests
  span32 ungated;  // ids: listed tests (index in this path's) of first fields
  bool has_gated = false;
  bool wants_number = false;  // a numeric test: convert number values
  bool is_data = false;
  bool is_root = false;  // the payload itself: {"data": [...]} or a queue's {"body": [...]}
};

enum class metadata : std::uint8_t { partition_key, sequence_number, arrival_timestamp };

struct matcher_header {
  std::array<std::uint32_t, 3> metadata_paths{npos32, npos32, npos32};
  bool addresses_data = false;
  std::uint32_t path_count = 0, field_count = 0, pattern_count = 0;
  span32 field_pattern;   // ids: field -> pattern
  span32 pattern_fields;  // ids: pattern -> number of fields
  span32 pattern_data;    // ids: pattern -> 1 when it addresses data's fields
  span32 pattern_root;    // ids: pattern -> 1 when it tests data (or body) itself
  bool uses_data_key = false, uses_body_key = false;  // which top-level keys address the payload
  span32 gated;  // spans: pattern -> ids of (path, listed index) pairs that wait for earlier fields
};

/// The tables in std::vector (run-time patterns; also the compiler's output).
struct matcher_tables {
  std::vector<char> chars;
  std::vector<std::uint32_t> ids;
  std::vector<span32> spans;
  std::vector<flat_entry> entries;
  std::vector<flat_node> nodes;
  std::vector<flat_path> paths;
  std::vector<flat_listed> listed;
  matcher_header header;
};

/// The sizes of a matcher's tables (a template argument of frozen_tables).
struct table_sizes {
  std::size_t chars = 0, ids = 0, spans = 0, entries = 0, nodes = 0, paths = 0, listed = 0;
};
constexpr table_sizes sizes_of(const matcher_tables& t) {
  return {t.chars.size(), t.ids.size(),   t.spans.size(), t.entries.size(),
          t.nodes.size(), t.paths.size(), t.listed.size()};
}

/// The tables in std::array: a literal type, for a constexpr variable (compile-time patterns).
/// One spare element each, so that no table is empty.
template <table_sizes S>
struct frozen_tables {
  std::array<char, S.chars + 1> chars{};
  std::array<std::uint32_t, S.ids + 1> ids{};
  std::array<span32, S.spans + 1> spans{};
  std::array<flat_entry, S.entries + 1> entries{};
  std::array<flat_node, S.nodes + 1> nodes{};
  std::array<flat_path, S.paths + 1> paths{};
  std::array<flat_listed, S.listed + 1> listed{};
  matcher_header header{};
};
template <table_sizes S>
constexpr frozen_tables<S> freeze(const matcher_tables& t) {
  frozen_tables<S> f;
  std::copy(t.chars.begin(), t.chars.end(), f.chars.begin());
  std::copy(t.ids.begin(), t.ids.end(), f.ids.begin());
  std::copy(t.spans.begin(), t.spans.end(), f.spans.begin());
  std::copy(t.entries.begin(), t.entries.end(), f.entries.begin());
  std::copy(t.nodes.begin(), t.nodes.end(), f.nodes.begin());
  std::copy(t.paths.begin(), t.paths.end(), f.paths.begin());
  std::copy(t.listed.begin(), t.listed.end(), f.listed.begin());
  f.header = t.header;
  return f;
}

/// Working memory of one evaluation: the values collected per path, the marks of satisfied
/// fields and patterns.
struct eval_state {
  std::vector<std::vector<leaf>> values;  // per path
  std::vector<std::uint32_t> field_epoch, pattern_epoch, pattern_count;
  std::vector<std::uint32_t> touched;  // patterns with a satisfied field in this evaluation
  std::uint32_t epoch = 0;
  std::string lower;
};

/// Per-thread working memory of one evaluation (shared by all matchers on the thread).
struct scratch : eval_state {
  std::deque<std::string> kept;  // text made for values (numbers of traits fields)
  std::size_t kept_used = 0;

  std::string_view keep(std::string_view s) {
    if (kept_used == kept.size()) kept.emplace_back();
    std::string& slot = kept[kept_used++];
    slot.assign(s);
    return slot;
  }
};

/// The working memory of the evaluation running on this thread. An evaluation can run inside
/// another (a filter_fields getter that itself applies filter_criteria), so each nesting level
/// has its own; the levels stay allocated for the thread's next evaluations.
class scratch_lease {
 public:
  scratch_lease() {
    const std::size_t d = depth()++;
    s_ = d == 0 ? &outermost() : &nested(d);
  }
  ~scratch_lease() { --depth(); }
  scratch_lease(const scratch_lease&) = delete;
  scratch_lease& operator=(const scratch_lease&) = delete;
  scratch& get() const noexcept { return *s_; }

 private:
  static std::size_t& depth() noexcept {
    thread_local std::size_t d = 0;  // trivial: no initialization check on access
    return d;
  }
  static scratch& outermost() {
    thread_local scratch s;
    return s;
  }
  static scratch& nested(std::size_t d) {
    thread_local std::deque<scratch> levels;  // a deque: a new level moves none in use
    if (d > levels.size()) levels.emplace_back();
    return levels[d - 1];
  }
  scratch* s_;
};

/// A compiled matcher, read through pointers to its tables (vectors or constexpr arrays): the
/// one implementation of matching, usable in constant expressions.
struct matcher_view {
  const char* chars = nullptr;
  const std::uint32_t* ids = nullptr;
  const span32* spans = nullptr;
  const flat_entry* entries = nullptr;
  const flat_node* nodes = nullptr;
  const flat_path* paths = nullptr;
  const flat_listed* listed = nullptr;
  const std::uint32_t* field_pattern = nullptr;
  const std::uint32_t* pattern_fields = nullptr;
  const std::uint32_t* pattern_data = nullptr;
  const std::uint32_t* pattern_root = nullptr;
  matcher_header header;

  constexpr std::string_view text(span32 s) const noexcept { return {chars + s.begin, s.size}; }
  constexpr std::span<const std::uint32_t> list(span32 s) const noexcept {
    return {ids + s.begin, s.size};
  }

  constexpr std::uint32_t path_count() const noexcept { return header.path_count; }
  constexpr bool addresses_data() const noexcept { return header.addresses_data; }
  /// Which top-level keys the patterns use (each source allows some: addressing.hpp).
  constexpr bool uses_data_key() const noexcept { return header.uses_data_key; }
  constexpr bool uses_body_key() const noexcept { return header.uses_body_key; }
  constexpr bool uses_metadata() const noexcept {
    for (auto p : header.metadata_paths)
      if (p != npos32) return true;
    return false;
  }
  /// A pattern tests the payload itself as one value (a queue's plain-string body).
  constexpr bool addresses_root() const noexcept { return path_of(root()) != npos32; }
  /// The node of `data` itself (the payload's root value).
  static constexpr std::uint32_t root() noexcept { return 0; }
  constexpr std::uint32_t child(std::uint32_t node, std::string_view key) const noexcept {
    const span32 c = nodes[node].children;
    for (std::uint32_t i = 0; i < c.size; ++i) {
      const flat_entry& e = entries[c.begin + i];
      if (same_text(text(e.key), key)) return e.value.begin;
    }
    return npos32;
  }
  constexpr bool has_children(std::uint32_t node) const noexcept {
    return nodes[node].children.size != 0;
  }
  constexpr std::uint32_t path_of(std::uint32_t node) const noexcept { return nodes[node].path; }
  constexpr std::uint32_t metadata_path(metadata m) const noexcept {
    return header.metadata_paths[static_cast<std::size_t>(m)];
  }
  /// The path of a dotted field name under data ("customer.country"), or npos32.
  constexpr std::uint32_t data_path(std::string_view dotted) const noexcept {
    std::uint32_t node = root();
    while (!dotted.empty()) {
      std::size_t dot = dotted.find('.');
      node = child(node, dotted.substr(0, dot));
      if (node == npos32) return npos32;
      dotted = dot == std::string_view::npos ? std::string_view{} : dotted.substr(dot + 1);
    }
    return path_of(node);
  }

  /// Starts an evaluation in s: clears it for this matcher.
  constexpr void begin(eval_state& s) const {
    if (s.values.size() < header.path_count) s.values.resize(header.path_count);
    for (std::size_t p = 0; p < header.path_count; ++p) s.values[p].clear();
    if (s.field_epoch.size() < header.field_count) s.field_epoch.resize(header.field_count);
    if (s.pattern_epoch.size() < header.pattern_count) {
      s.pattern_epoch.resize(header.pattern_count);
      s.pattern_count.resize(header.pattern_count);
    }
    restart(s);
  }

  /// Forgets the marks of an evaluation, keeping the collected values (to evaluate again).
  static constexpr void restart(eval_state& s) {
    s.touched.clear();
    if (++s.epoch == 0) {  // wrapped: forget every mark
      std::fill(s.field_epoch.begin(), s.field_epoch.end(), 0);
      std::fill(s.pattern_epoch.begin(), s.pattern_epoch.end(), 0);
      s.epoch = 1;
    }
  }

  /// After the values are collected: whether some pattern matches. data_ok = false (the
  /// payload is not valid JSON) fails every pattern that addresses data.
  constexpr bool evaluate(eval_state& s, bool data_ok) const {
    return evaluate(s, data_ok, data_ok);
  }
  /// As above, with the payload's own value (root) and its fields (nested) told apart: a queue's
  /// body is a JSON document (nested_ok, not root_ok) or a plain string (root_ok only).
  constexpr bool evaluate(eval_state& s, bool nested_ok, bool root_ok) const {
    bool matched = false;
    const bool data_ok = nested_ok;
    for (std::uint32_t p = 0; p < header.path_count && !matched; ++p) {
      const flat_path& t = paths[p];
      if (t.is_data && !(t.is_root ? root_ok : nested_ok)) continue;
      const auto& vals = s.values[p];
      if (vals.empty()) {
        for (auto f : list(t.exists_false)) matched |= mark(s, f, data_ok, root_ok);
        continue;
      }
      for (auto f : list(t.exists_true)) matched |= mark(s, f, data_ok, root_ok);
      for (const leaf& v : vals) {
        std::span<const std::uint32_t> hit;
        switch (v.kind) {
          case leaf_kind::string:
            if (t.strings.entries.size != 0) hit = find(t.strings, v.text);
            break;
          case leaf_kind::number:
            if (t.numbers.entries.size != 0) hit = find(t.numbers, v.text);
            break;
          case leaf_kind::boolean_true:
            hit = list(t.on_true);
            break;
          case leaf_kind::boolean_false:
            hit = list(t.on_false);
            break;
          case leaf_kind::null:
            hit = list(t.on_null);
            break;
        }
        for (auto f : hit) matched |= mark(s, f, data_ok, root_ok);
        if (v.kind == leaf_kind::string && t.ignore_case.entries.size != 0) {
          s.lower.assign(v.text);
          for (char& c : s.lower) c = ascii_lower(c);
          for (auto f : find(t.ignore_case, s.lower)) matched |= mark(s, f, data_ok, root_ok);
        }
        if (t.listed.size == 0) continue;
        double number = 0;
        const bool numeric_ok =
            t.wants_number && v.kind == leaf_kind::number && number_value(v.text, number);
        const flat_listed* tests = listed + t.listed.begin;
        auto run = [&](const flat_listed& test) {
          if (matches(test, v, numeric_ok, number))
            matched |= mark(s, test.field, data_ok, root_ok);
        };
        // A test of a pattern's first field (in path order) always runs; a later field's only
        // when its pattern has all its fields on earlier paths satisfied, so only patterns
        // touched so far are looked at.
        for (auto i : list(t.ungated)) run(tests[i]);
        if (!t.has_gated) continue;
        for (std::size_t k = 0; k < s.touched.size(); ++k) {
          const std::uint32_t q = s.touched[k];
          const auto gates = list(spans[header.gated.begin + q]);
          for (std::size_t j = 0; j + 1 < gates.size(); j += 2)
            if (gates[j] == p && count(s, q) >= tests[gates[j + 1]].before)
              run(tests[gates[j + 1]]);
        }
      }
    }
    return matched;
  }

  /// The fields value `key` satisfies in index x.
  constexpr std::span<const std::uint32_t> find(const flat_index& x,
                                                std::string_view key) const noexcept {
    if (x.slots.size == 0) {
      for (std::uint32_t i = 0; i < x.entries.size; ++i) {
        const flat_entry& e = entries[x.entries.begin + i];
        if (same_text(text(e.key), key)) return list(e.value);
      }
      return {};
    }
    const std::uint32_t mask = x.slots.size - 1;
    for (std::uint32_t h = text_hash(key) & mask;; h = (h + 1) & mask) {
      const std::uint32_t slot = ids[x.slots.begin + h];
      if (slot == 0) return {};
      const flat_entry& e = entries[x.entries.begin + slot - 1];
      if (text(e.key) == key) return list(e.value);
    }
  }

  constexpr bool wildcard_matches(span32 parts_range, std::string_view s) const {
    const span32* parts = spans + parts_range.begin;
    const std::size_t n = parts_range.size;
    if (n == 1) return s == text(parts[0]);
    const std::string_view first = text(parts[0]);
    const std::string_view last = text(parts[n - 1]);
    if (s.size() < first.size() + last.size()) return false;
    if (s.substr(0, first.size()) != first) return false;
    if (s.substr(s.size() - last.size()) != last) return false;
    std::size_t at = first.size();
    const std::size_t end = s.size() - last.size();
    for (std::size_t k = 1; k + 1 < n; ++k) {
      const std::string_view part = text(parts[k]);
      if (part.empty()) continue;
      std::size_t found = s.substr(0, end).find(part, at);
      if (found == std::string_view::npos) return false;
      at = found + part.size();
    }
    return true;
  }

  constexpr bool matches(const flat_listed& test, const leaf& v, bool numeric_ok,
                         double number) const {
    const bool is_string = v.kind == leaf_kind::string;
    const span32* values = spans + test.values.begin;
    const std::size_t n = test.values.size;
    const span32* wildcards = spans + test.wildcards.begin;
    switch (test.kind) {
      case op::prefix:
        return is_string && v.text.starts_with(text(values[0]));
      case op::suffix:
        return is_string && v.text.ends_with(text(values[0]));
      case op::prefix_ignore_case:
        return is_string && iequals_prefix(v.text, text(values[0]));
      case op::suffix_ignore_case:
        return is_string && iequals_suffix(v.text, text(values[0]));
      case op::wildcard:
        return is_string && wildcard_matches(wildcards[0], v.text);
      case op::anything_but: {
        if (v.kind != leaf_kind::string && v.kind != leaf_kind::number) return true;
        const bool is_number = v.kind == leaf_kind::number;
        for (std::size_t i = 0; i < n; ++i)
          if ((ids[test.numbers.begin + i] != 0) == is_number && text(values[i]) == v.text)
            return false;
        return true;
      }
      case op::anything_but_prefix:
        if (!is_string) return false;
        for (std::size_t i = 0; i < n; ++i)
          if (v.text.starts_with(text(values[i]))) return false;
        return true;
      case op::anything_but_suffix:
        if (!is_string) return false;
        for (std::size_t i = 0; i < n; ++i)
          if (v.text.ends_with(text(values[i]))) return false;
        return true;
      case op::anything_but_ignore_case:
        if (!is_string) return false;
        for (std::size_t i = 0; i < n; ++i) {
          const std::string_view p = text(values[i]);
          if (v.text.size() == p.size() && iequals_prefix(v.text, p)) return false;
        }
        return true;
      case op::anything_but_wildcard:
        if (!is_string) return false;
        for (std::size_t i = 0; i < test.wildcards.size; ++i)
          if (wildcard_matches(wildcards[i], v.text)) return false;
        return true;
      case op::numeric:
        if (!numeric_ok) return false;
        if (test.has_lower && (test.lower_inclusive ? number < test.lower : number <= test.lower))
          return false;
        if (test.has_upper && (test.upper_inclusive ? number > test.upper : number >= test.upper))
          return false;
        return true;
      case op::cidr: {
        if (!is_string) return false;
        ip_address a;
        if (!parse_ip(v.text, a) || a.v6 != test.block.address.v6) return false;
        unsigned bits = test.block.bits;
        for (unsigned i = 0; bits > 0; ++i) {
          unsigned take = bits >= 8 ? 8 : bits;
          auto mask = static_cast<std::uint8_t>(0xFF << (8 - take));
          if ((a.bytes[i] & mask) != (test.block.address.bytes[i] & mask)) return false;
          bits -= take;
        }
        return true;
      }
      default:
        return false;
    }
  }

  constexpr std::uint32_t count(const eval_state& s, std::uint32_t pattern) const noexcept {
    return s.pattern_epoch[pattern] == s.epoch ? s.pattern_count[pattern] : 0;
  }
  /// Marks a field satisfied; returns whether that completed its pattern.
  constexpr bool mark(eval_state& s, std::uint32_t field, bool data_ok,
                      bool root_ok) const noexcept {
    if (s.field_epoch[field] == s.epoch) return false;
    s.field_epoch[field] = s.epoch;
    const std::uint32_t p = field_pattern[field];
    if (!data_ok && pattern_data[p] != 0) return false;
    if (!root_ok && pattern_root[p] != 0) return false;
    if (s.pattern_epoch[p] != s.epoch) {
      s.pattern_epoch[p] = s.epoch;
      s.pattern_count[p] = 0;
      s.touched.push_back(p);
    }
    return ++s.pattern_count[p] == pattern_fields[p];
  }
};

/// The view of tables in any contiguous storage (matcher_tables or frozen_tables).
template <class Tables>
constexpr matcher_view view_of(const Tables& t) {
  matcher_view v;
  v.chars = t.chars.data();
  v.ids = t.ids.data();
  v.spans = t.spans.data();
  v.entries = t.entries.data();
  v.nodes = t.nodes.data();
  v.paths = t.paths.data();
  v.listed = t.listed.data();
  v.field_pattern = v.ids + t.header.field_pattern.begin;
  v.pattern_fields = v.ids + t.header.pattern_fields.begin;
  v.pattern_data = v.ids + t.header.pattern_data.begin;
  v.pattern_root = v.ids + t.header.pattern_root.begin;
  v.header = t.header;
  return v;
}

// ---- the compiler: patterns -> tables (constexpr; run at compile time for compile-time
// patterns) ---------------------------------------------------------------------------------

/// The compiler's working form of a path's tests, flattened by matcher_compiler::finish().
struct build_index {
  std::vector<std::pair<std::string, std::vector<std::uint32_t>>> list;
  constexpr std::vector<std::uint32_t>& operator[](std::string_view key) {
    for (auto& [k, v] : list)
      if (k == key) return v;
    list.emplace_back(std::string(key), std::vector<std::uint32_t>{});
    return list.back().second;
  }
};
struct build_listed {
  flat_listed test;  // its ranges are filled by finish()
  std::vector<std::string> values;
  std::vector<bool> numbers;
  std::vector<std::vector<std::string>> wildcards;
};
struct build_path {
  build_index strings, numbers, ignore_case;
  std::vector<std::uint32_t> on_true, on_false, on_null, exists_true, exists_false;
  std::vector<build_listed> listed;
  std::vector<std::uint32_t> ungated;
  bool has_gated = false, wants_number = false, is_data = false, is_root = false;
};
struct build_node {
  std::vector<std::pair<std::string, std::uint32_t>> children;
  std::uint32_t path = npos32;
};

/// Compiles valid patterns (checked by parse_pattern) into tables.
class matcher_compiler {
 public:
  constexpr matcher_compiler() { nodes_.emplace_back(); }  // the root: `data` itself

  constexpr void add(const parse_result& r) {
    for (auto& branch : expand(r.tree)) add_pattern(branch);
  }

  constexpr matcher_tables finish() const {
    matcher_tables t;
    auto size32 = [](std::size_t n) { return static_cast<std::uint32_t>(n); };
    auto put_text = [&](std::string_view s) {
      const span32 r{size32(t.chars.size()), size32(s.size())};
      for (char c : s) t.chars.push_back(c);
      return r;
    };
    auto put_ids = [&](const std::vector<std::uint32_t>& v) {
      const span32 r{size32(t.ids.size()), size32(v.size())};
      for (auto x : v) t.ids.push_back(x);
      return r;
    };
    auto put_index = [&](const build_index& x) {
      flat_index f;
      f.entries.begin = size32(t.entries.size());
      for (const auto& [k, v] : x.list) {
        const span32 key = put_text(k);
        t.entries.push_back(flat_entry{key, put_ids(v)});
      }
      f.entries.size = size32(x.list.size());
      if (x.list.size() > 8) {
        std::uint32_t n = 16;
        while (n < 2 * x.list.size()) n *= 2;
        f.slots = {size32(t.ids.size()), n};
        t.ids.resize(t.ids.size() + n, 0);
        for (std::uint32_t i = 0; i < f.entries.size; ++i) {
          std::uint32_t h = text_hash(x.list[i].first) & (n - 1);
          while (t.ids[f.slots.begin + h] != 0) h = (h + 1) & (n - 1);
          t.ids[f.slots.begin + h] = i + 1;
        }
      }
      return f;
    };
    // The trie.
    t.nodes.resize(nodes_.size());
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      t.nodes[i].path = nodes_[i].path;
      t.nodes[i].children.begin = size32(t.entries.size());
      for (const auto& [k, node] : nodes_[i].children) {
        const span32 key = put_text(k);
        t.entries.push_back(flat_entry{key, span32{node, 0}});
      }
      t.nodes[i].children.size = size32(nodes_[i].children.size());
    }
    // The paths' tests.
    for (const build_path& b : paths_) {
      flat_path p;
      p.strings = put_index(b.strings);
      p.numbers = put_index(b.numbers);
      p.ignore_case = put_index(b.ignore_case);
      p.on_true = put_ids(b.on_true);
      p.on_false = put_ids(b.on_false);
      p.on_null = put_ids(b.on_null);
      p.exists_true = put_ids(b.exists_true);
      p.exists_false = put_ids(b.exists_false);
      p.ungated = put_ids(b.ungated);
      p.has_gated = b.has_gated;
      p.wants_number = b.wants_number;
      p.is_data = b.is_data;
      p.is_root = b.is_root;
      p.listed.begin = size32(t.listed.size());
      for (const build_listed& l : b.listed) {
        flat_listed f = l.test;
        std::vector<span32> texts;
        for (const auto& s : l.values) texts.push_back(put_text(s));
        f.values = {size32(t.spans.size()), size32(texts.size())};
        for (auto s : texts) t.spans.push_back(s);
        std::vector<std::uint32_t> numbers;
        for (bool n : l.numbers) numbers.push_back(n ? 1 : 0);
        f.numbers = put_ids(numbers);
        std::vector<span32> wildcards;
        for (const auto& parts : l.wildcards) {
          texts.clear();
          for (const auto& s : parts) texts.push_back(put_text(s));
          wildcards.push_back({size32(t.spans.size()), size32(texts.size())});
          for (auto s : texts) t.spans.push_back(s);
        }
        f.wildcards = {size32(t.spans.size()), size32(wildcards.size())};
        for (auto s : wildcards) t.spans.push_back(s);
        t.listed.push_back(f);
      }
      p.listed.size = size32(b.listed.size());
      t.paths.push_back(p);
    }
    // The patterns.
    matcher_header& h = t.header;
    h.metadata_paths = metadata_paths_;
    h.addresses_data = addresses_data_;
    h.path_count = size32(paths_.size());
    h.field_count = size32(field_pattern_.size());
    h.pattern_count = size32(pattern_fields_.size());
    h.field_pattern = put_ids(field_pattern_);
    h.pattern_fields = put_ids(pattern_fields_);
    std::vector<std::uint32_t> data, root;
    for (bool d : pattern_data_) data.push_back(d ? 1 : 0);
    h.pattern_data = put_ids(data);
    for (bool r : pattern_root_) root.push_back(r ? 1 : 0);
    h.pattern_root = put_ids(root);
    h.uses_data_key = uses_data_key_;
    h.uses_body_key = uses_body_key_;
    std::vector<span32> gates;
    for (std::size_t q = 0; q < pattern_fields_.size(); ++q) {
      std::vector<std::uint32_t> pairs;
      if (q < gated_.size())
        for (const auto& [path, index] : gated_[q]) {
          pairs.push_back(path);
          pairs.push_back(index);
        }
      gates.push_back(put_ids(pairs));
    }
    h.gated = {size32(t.spans.size()), size32(gates.size())};
    for (auto g : gates) t.spans.push_back(g);
    return t;
  }

 private:
  std::vector<build_node> nodes_;
  std::vector<build_path> paths_;
  std::array<std::uint32_t, 3> metadata_paths_{npos32, npos32, npos32};
  std::vector<std::uint32_t> field_pattern_;   // field -> pattern
  std::vector<std::uint32_t> field_before_;    // field -> its pattern's fields on earlier paths
  std::vector<std::uint32_t> pattern_fields_;  // pattern -> number of fields
  std::vector<bool> pattern_data_;             // pattern addresses data's fields
  std::vector<bool> pattern_root_;             // pattern tests data (or body) itself
  // pattern -> its listed tests that wait for earlier fields: (path, index in that path's list)
  std::vector<std::vector<std::pair<std::uint32_t, std::uint32_t>>> gated_;
  bool addresses_data_ = false;
  bool uses_data_key_ = false;
  bool uses_body_key_ = false;

  constexpr std::uint32_t child(std::uint32_t node, std::string_view key) const {
    for (const auto& [k, n] : nodes_[node].children)
      if (k == key) return n;
    return npos32;
  }

  constexpr std::uint32_t path_for(const std::vector<std::string>& path) {
    const bool body = path[0] == "body";  // a queue's body: the payload, as data is
    if (path[0] != "data" && !body) {
      metadata m = path[0] == "partitionKey"     ? metadata::partition_key
                   : path[0] == "sequenceNumber" ? metadata::sequence_number
                                                 : metadata::arrival_timestamp;
      auto& slot = metadata_paths_[static_cast<std::size_t>(m)];
      if (slot == npos32) {
        slot = static_cast<std::uint32_t>(paths_.size());
        paths_.emplace_back();
      }
      return slot;
    }
    addresses_data_ = true;
    (body ? uses_body_key_ : uses_data_key_) = true;
    std::uint32_t node = 0;
    for (std::size_t i = 1; i < path.size(); ++i) {
      std::uint32_t next = child(node, path[i]);
      if (next == npos32) {
        next = static_cast<std::uint32_t>(nodes_.size());
        nodes_[node].children.emplace_back(path[i], next);
        nodes_.emplace_back();
      }
      node = next;
    }
    if (nodes_[node].path == npos32) {
      nodes_[node].path = static_cast<std::uint32_t>(paths_.size());
      paths_.emplace_back();
      paths_.back().is_data = true;
      paths_.back().is_root = node == 0;  // the root node: data (or body) itself
    }
    return nodes_[node].path;
  }

  constexpr void add_pattern(const std::vector<field_test>& fields) {
    const auto pattern = static_cast<std::uint32_t>(pattern_fields_.size());
    std::vector<std::uint32_t> path_ids;
    bool data = false, whole = false;
    for (const auto& f : fields) {
      path_ids.push_back(path_for(f.path));
      const bool payload = f.path[0] == "data" || f.path[0] == "body";
      data |= payload && f.path.size() > 1;
      whole |= payload && f.path.size() == 1;
    }
    pattern_fields_.push_back(static_cast<std::uint32_t>(fields.size()));
    pattern_data_.push_back(data);
    pattern_root_.push_back(whole);
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const auto field = static_cast<std::uint32_t>(field_pattern_.size());
      field_pattern_.push_back(pattern);
      std::uint32_t before = 0;
      for (auto other : path_ids) before += other < path_ids[i] ? 1 : 0;
      field_before_.push_back(before);
      for (const auto& v : fields[i].tests) add_test(path_ids[i], v, field);
    }
  }

  constexpr void add_test(std::uint32_t path, const value_test& v, std::uint32_t field) {
    build_path& t = paths_[path];
    switch (v.kind) {
      case op::exact_string:
        t.strings[v.values[0]].push_back(field);
        return;
      case op::exact_number:
        t.numbers[v.values[0]].push_back(field);
        return;
      case op::exact_true:
        t.on_true.push_back(field);
        return;
      case op::exact_false:
        t.on_false.push_back(field);
        return;
      case op::exact_null:
        t.on_null.push_back(field);
        return;
      case op::equals_ignore_case:
        t.ignore_case[lowered(v.values[0])].push_back(field);
        return;
      case op::exists_true:
        t.exists_true.push_back(field);
        return;
      case op::exists_false:
        t.exists_false.push_back(field);
        return;
      default:
        break;
    }
    build_listed l;
    l.test.kind = v.kind;
    l.test.field = field;
    l.test.before = field_before_[field];
    l.numbers = v.numbers;
    const bool lower = v.kind == op::prefix_ignore_case || v.kind == op::suffix_ignore_case ||
                       v.kind == op::anything_but_ignore_case;
    for (const auto& s : v.values) {  // not `lower ? lowered(s) : s`: GCC 12 cannot do that in
      if (lower)                      // a constant expression (a short string's copy)
        l.values.push_back(lowered(s));
      else
        l.values.push_back(s);
    }
    if (v.kind == op::wildcard || v.kind == op::anything_but_wildcard)
      for (const auto& s : v.values) l.wildcards.push_back(wildcard_parts(s));
    if (v.kind == op::cidr) parse_cidr(v.values[0], l.test.block);
    if (v.kind == op::numeric) {
      t.wants_number = true;
      l.test.has_lower = !v.lower.empty();
      l.test.has_upper = !v.upper.empty();
      if (l.test.has_lower) l.test.lower = decimal_to_double(v.lower);
      if (l.test.has_upper) l.test.upper = decimal_to_double(v.upper);
      l.test.lower_inclusive = v.lower_inclusive;
      l.test.upper_inclusive = v.upper_inclusive;
    }
    const auto index = static_cast<std::uint32_t>(t.listed.size());
    if (l.test.before == 0) {
      t.ungated.push_back(index);
    } else {
      t.has_gated = true;
      const std::uint32_t pattern = field_pattern_[field];
      if (gated_.size() <= pattern) gated_.resize(pattern + 1);
      gated_[pattern].emplace_back(path, index);
    }
    t.listed.push_back(std::move(l));
  }
};

/// Compiles valid patterns into tables (the compile-time path; run-time patterns go through
/// compiled_criteria, which checks them first).
constexpr matcher_tables compile_patterns(std::span<const std::string_view> patterns) {
  matcher_compiler c;
  for (std::string_view p : patterns) c.add(parse_pattern(p));
  return c.finish();
}

/// All run-time patterns of one filter_criteria, checked and compiled; view() matches.
class compiled_criteria {
 public:
  compiled_criteria(const std::vector<std::string_view>& patterns, const filter_limits& limits) {
    if (patterns.size() > limits.max_patterns)
      throw_error(limits.max_patterns, 0, pattern_rule::too_many_patterns, "",
                  "at most " + std::to_string(limits.max_patterns) + " patterns");
    if (patterns.empty())
      throw configuration_error("sluice: filter_criteria needs at least one pattern");
    matcher_compiler c;
    for (std::size_t i = 0; i < patterns.size(); ++i) {
      std::string_view text = patterns[i];
      if (text.size() > limits.max_pattern_chars)
        throw_error(i, limits.max_pattern_chars, pattern_rule::pattern_too_long, text,
                    "at most " + std::to_string(limits.max_pattern_chars) + " characters");
      parse_result r = parse_pattern(text);
      if (!r.ok()) throw_error(i, r.position, r.rule, text, "");
      c.add(r);
    }
    tables_ = c.finish();
    view_ = view_of(tables_);
  }
  compiled_criteria(const compiled_criteria&) = delete;
  compiled_criteria& operator=(const compiled_criteria&) = delete;
  ~compiled_criteria() = default;

  const matcher_view& view() const noexcept { return view_; }
  std::uint32_t path_count() const noexcept { return view_.path_count(); }
  /// Starts an evaluation in s (a scratch_lease's): clears it for this matcher.
  scratch& begin(scratch& s) const {
    view_.begin(s);
    s.kept_used = 0;
    return s;
  }

 private:
  matcher_tables tables_;
  matcher_view view_;

  [[noreturn]] static void throw_error(std::size_t index, std::size_t position, pattern_rule rule,
                                       std::string_view text, const std::string& allowed) {
    std::ostringstream out;
    out << "sluice: filter_criteria pattern " << index;
    if (rule == pattern_rule::too_many_patterns) {
      out << " is one too many; allowed: " << allowed << " (filter_limits::max_patterns)";
    } else {
      out << " is invalid at character " << position << ": " << rule_text(rule);
      if (!allowed.empty()) out << "; allowed: " << allowed << " (filter_limits)";
      const std::size_t from = position > 20 ? position - 20 : 0;
      out << "; near: " << text.substr(from, 40);
    }
    throw filter_pattern_error(out.str(), index, position, rule);
  }
};

}  // namespace detail::filter
SLUICE_END_NAMESPACE
