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
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
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
inline bool same_text(std::string_view a, std::string_view b) noexcept {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  if (n == 0) return true;
  if (a.front() != b.front() || a.back() != b.back()) return false;
  if (n > 16) return std::memcmp(a.data(), b.data(), n) == 0;
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

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
using field_map =
    std::unordered_map<std::string, std::vector<std::uint32_t>, string_hash, std::equal_to<>>;

/// Values -> the fields they satisfy: a short list is scanned (cheaper than hashing a few
/// keys), a long one hashed; finish() picks once all patterns are added.
class value_index {
 public:
  std::vector<std::uint32_t>& operator[](std::string_view key) {
    for (auto& [k, v] : list_)
      if (k == key) return v;
    return list_.emplace_back(std::string(key), std::vector<std::uint32_t>{}).second;
  }
  void finish() {
    if (list_.size() > 8)
      for (const auto& [k, v] : list_) map_.emplace(k, v);
  }
  bool empty() const noexcept { return list_.empty(); }
  const std::vector<std::uint32_t>* find(std::string_view key) const {
    if (map_.empty()) {
      for (const auto& [k, v] : list_)
        if (same_text(k, key)) return &v;
      return nullptr;
    }
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }

 private:
  std::vector<std::pair<std::string, std::vector<std::uint32_t>>> list_;
  field_map map_;
};

constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
inline std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}
inline bool iequals_prefix(std::string_view s, std::string_view lower_prefix) {
  if (s.size() < lower_prefix.size()) return false;
  for (std::size_t i = 0; i < lower_prefix.size(); ++i)
    if (ascii_lower(s[i]) != lower_prefix[i]) return false;
  return true;
}
inline bool iequals_suffix(std::string_view s, std::string_view lower_suffix) {
  if (s.size() < lower_suffix.size()) return false;
  return iequals_prefix(s.substr(s.size() - lower_suffix.size()), lower_suffix);
}

/// A wildcard split at its unescaped '*': s must be parts[0] * parts[1] * ... * parts[n].
struct wildcard_parts {
  std::vector<std::string> parts;

  static wildcard_parts of(std::string_view w) {
    wildcard_parts p;
    p.parts.emplace_back();
    for (std::size_t i = 0; i < w.size(); ++i) {
      if (w[i] == '\\' && i + 1 < w.size()) {
        p.parts.back() += w[++i];
      } else if (w[i] == '*') {
        p.parts.emplace_back();
      } else {
        p.parts.back() += w[i];
      }
    }
    return p;
  }
  bool matches(std::string_view s) const {
    if (parts.size() == 1) return s == parts[0];
    const std::string& first = parts.front();
    const std::string& last = parts.back();
    if (s.size() < first.size() + last.size()) return false;
    if (s.substr(0, first.size()) != first) return false;
    if (s.substr(s.size() - last.size()) != last) return false;
    std::size_t at = first.size();
    const std::size_t end = s.size() - last.size();
    for (std::size_t k = 1; k + 1 < parts.size(); ++k) {
      if (parts[k].empty()) continue;
      std::size_t found = s.substr(0, end).find(parts[k], at);
      if (found == std::string_view::npos) return false;
      at = found + parts[k].size();
    }
    return true;
  }
};

inline bool parse_double(std::string_view text, double& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end;
}

/// A test that is not hashed: checked against each value of its path.
struct listed_test {
  op kind = op::prefix;
  std::vector<std::string> values;  // lowercased for the *_ignore_case kinds
  std::vector<bool> numbers;        // anything_but
  std::vector<wildcard_parts> wildcards;
  double lower = 0, upper = 0;
  bool has_lower = false, has_upper = false, lower_inclusive = false, upper_inclusive = false;
  cidr_block block;
  std::uint32_t field = 0;   // the pattern field it satisfies (a listed test is never shared)
  std::uint32_t before = 0;  // that pattern's fields on earlier paths

  bool matches(const leaf& v, bool numeric_ok, double number) const {
    const bool is_string = v.kind == leaf_kind::string;
    switch (kind) {
      case op::prefix:
        return is_string && v.text.starts_with(values[0]);
      case op::suffix:
        return is_string && v.text.ends_with(values[0]);
      case op::prefix_ignore_case:
        return is_string && iequals_prefix(v.text, values[0]);
      case op::suffix_ignore_case:
        return is_string && iequals_suffix(v.text, values[0]);
      case op::wildcard:
        return is_string && wildcards[0].matches(v.text);
      case op::anything_but: {
        if (v.kind != leaf_kind::string && v.kind != leaf_kind::number) return true;
        const bool is_number = v.kind == leaf_kind::number;
        for (std::size_t i = 0; i < values.size(); ++i)
          if (numbers[i] == is_number && values[i] == v.text) return false;
        return true;
      }
      case op::anything_but_prefix:
        if (!is_string) return false;
        for (const auto& p : values)
          if (v.text.starts_with(p)) return false;
        return true;
      case op::anything_but_suffix:
        if (!is_string) return false;
        for (const auto& p : values)
          if (v.text.ends_with(p)) return false;
        return true;
      case op::anything_but_ignore_case:
        if (!is_string) return false;
        for (const auto& p : values)
          if (v.text.size() == p.size() && iequals_prefix(v.text, p)) return false;
        return true;
      case op::anything_but_wildcard:
        if (!is_string) return false;
        for (const auto& w : wildcards)
          if (w.matches(v.text)) return false;
        return true;
      case op::numeric:
        if (!numeric_ok) return false;
        if (has_lower && (lower_inclusive ? number < lower : number <= lower)) return false;
        if (has_upper && (upper_inclusive ? number > upper : number >= upper)) return false;
        return true;
      case op::cidr: {
        if (!is_string) return false;
        ip_address a;
        if (!parse_ip(v.text, a) || a.v6 != block.address.v6) return false;
        unsigned bits = block.bits;
        for (unsigned i = 0; bits > 0; ++i) {
          unsigned take = bits >= 8 ? 8 : bits;
          auto mask = static_cast<std::uint8_t>(0xFF << (8 - take));
          if ((a.bytes[i] & mask) != (block.address.bytes[i] & mask)) return false;
          bits -= take;
        }
        return true;
      }
      default:
        return false;
    }
  }
};

struct path_tests {
  value_index strings, numbers, ignore_case;
  std::vector<std::uint32_t> on_true, on_false, on_null, exists_true, exists_false;
  std::vector<listed_test> listed;
  std::vector<std::uint32_t> ungated;  // listed tests of first fields
  bool has_gated = false;
  bool wants_number = false;  // a numeric test: convert number values
  bool is_data = false;
  bool is_root = false;  // the payload itself: {"data": [...]} or a queue's {"body": [...]}
};

struct trie_node {
  std::vector<std::pair<std::string, std::uint32_t>> children;
  std::uint32_t path = npos32;
};

/// Per-thread working memory of one evaluation (shared by all matchers on the thread).
struct scratch {
  std::vector<std::vector<leaf>> values;  // per path
  std::vector<std::uint32_t> field_epoch, pattern_epoch, pattern_count;
  std::vector<std::uint32_t> touched;  // patterns with a satisfied field in this evaluation
  std::uint32_t epoch = 0;
  std::string lower;
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

enum class metadata : std::uint8_t { partition_key, sequence_number, arrival_timestamp };

/// All patterns of one filter_criteria, compiled.
class compiled_criteria {
 public:
  compiled_criteria(const std::vector<std::string_view>& patterns, const filter_limits& limits) {
    nodes_.emplace_back();  // the root: `data` itself
    if (patterns.size() > limits.max_patterns)
      throw_error(limits.max_patterns, 0, pattern_rule::too_many_patterns, "",
                  "at most " + std::to_string(limits.max_patterns) + " patterns");
    if (patterns.empty())
      throw configuration_error("sluice: filter_criteria needs at least one pattern");
    for (std::size_t i = 0; i < patterns.size(); ++i) {
      std::string_view text = patterns[i];
      if (text.size() > limits.max_pattern_chars)
        throw_error(i, limits.max_pattern_chars, pattern_rule::pattern_too_long, text,
                    "at most " + std::to_string(limits.max_pattern_chars) + " characters");
      parse_result r = parse_pattern(text);
      if (!r.ok()) throw_error(i, r.position, r.rule, text, "");
      for (auto& branch : expand(r.tree)) add_pattern(branch);
    }
    gated_.resize(pattern_fields_.size());
    for (auto& t : paths_) {
      t.strings.finish();
      t.numbers.finish();
      t.ignore_case.finish();
    }
  }

  std::uint32_t path_count() const noexcept { return static_cast<std::uint32_t>(paths_.size()); }
  bool addresses_data() const noexcept { return addresses_data_; }
  /// Which top-level keys the patterns use (each source allows some: addressing.hpp).
  bool uses_data_key() const noexcept { return uses_data_key_; }
  bool uses_body_key() const noexcept { return uses_body_key_; }
  bool uses_metadata() const noexcept {
    for (auto p : metadata_paths_)
      if (p != npos32) return true;
    return false;
  }
  /// A pattern tests the payload itself as one value (a queue's plain-string body).
  bool addresses_root() const noexcept { return path_of(root()) != npos32; }
  /// The node of `data` itself (the payload's root value).
  static constexpr std::uint32_t root() noexcept { return 0; }
  std::uint32_t child(std::uint32_t node, std::string_view key) const noexcept {
    for (const auto& [k, n] : nodes_[node].children)
      if (same_text(k, key)) return n;
    return npos32;
  }
  bool has_children(std::uint32_t node) const noexcept { return !nodes_[node].children.empty(); }
  std::uint32_t path_of(std::uint32_t node) const noexcept { return nodes_[node].path; }
  std::uint32_t metadata_path(metadata m) const noexcept {
    return metadata_paths_[static_cast<std::size_t>(m)];
  }
  /// The path of a dotted field name under data ("customer.country"), or npos32.
  std::uint32_t data_path(std::string_view dotted) const noexcept {
    std::uint32_t node = root();
    while (!dotted.empty()) {
      std::size_t dot = dotted.find('.');
      node = child(node, dotted.substr(0, dot));
      if (node == npos32) return npos32;
      dotted = dot == std::string_view::npos ? std::string_view{} : dotted.substr(dot + 1);
    }
    return path_of(node);
  }

  /// Starts an evaluation in s (a scratch_lease's): clears it for this matcher.
  scratch& begin(scratch& s) const {
    if (s.values.size() < paths_.size()) s.values.resize(paths_.size());
    for (std::size_t p = 0; p < paths_.size(); ++p) s.values[p].clear();
    if (s.field_epoch.size() < field_pattern_.size()) s.field_epoch.resize(field_pattern_.size());
    if (s.pattern_epoch.size() < pattern_fields_.size()) {
      s.pattern_epoch.resize(pattern_fields_.size());
      s.pattern_count.resize(pattern_fields_.size());
    }
    restart(s);
    s.kept_used = 0;
    return s;
  }

  /// Forgets the marks of an evaluation, keeping the collected values (to evaluate again).
  static void restart(scratch& s) {
    s.touched.clear();
    if (++s.epoch == 0) {  // wrapped: forget every mark
      std::fill(s.field_epoch.begin(), s.field_epoch.end(), 0);
      std::fill(s.pattern_epoch.begin(), s.pattern_epoch.end(), 0);
      s.epoch = 1;
    }
  }

  /// After the values are collected: whether some pattern matches. data_ok = false (the
  /// payload is not valid JSON) fails every pattern that addresses data.
  bool evaluate(scratch& s, bool data_ok) const { return evaluate(s, data_ok, data_ok); }
  /// As above, with the payload's own value (root) and its fields (nested) told apart: a queue's
  /// body is a JSON document (nested_ok, not root_ok) or a plain string (root_ok only).
  bool evaluate(scratch& s, bool nested_ok, bool root_ok) const {
    bool matched = false;
    const bool data_ok = nested_ok;
    for (std::uint32_t p = 0; p < paths_.size() && !matched; ++p) {
      const path_tests& t = paths_[p];
      if (t.is_data && !(t.is_root ? root_ok : nested_ok)) continue;
      const auto& vals = s.values[p];
      if (vals.empty()) {
        for (auto f : t.exists_false) matched |= mark(s, f, data_ok, root_ok);
        continue;
      }
      for (auto f : t.exists_true) matched |= mark(s, f, data_ok, root_ok);
      for (const leaf& v : vals) {
        const std::vector<std::uint32_t>* hit = nullptr;
        switch (v.kind) {
          case leaf_kind::string:
            if (!t.strings.empty()) hit = t.strings.find(v.text);
            break;
          case leaf_kind::number:
            if (!t.numbers.empty()) hit = t.numbers.find(v.text);
            break;
          case leaf_kind::boolean_true:
            hit = &t.on_true;
            break;
          case leaf_kind::boolean_false:
            hit = &t.on_false;
            break;
          case leaf_kind::null:
            hit = &t.on_null;
            break;
        }
        if (hit != nullptr)
          for (auto f : *hit) matched |= mark(s, f, data_ok, root_ok);
        if (v.kind == leaf_kind::string && !t.ignore_case.empty()) {
          s.lower.assign(v.text);
          for (char& c : s.lower) c = ascii_lower(c);
          if (const auto* fields = t.ignore_case.find(s.lower); fields != nullptr)
            for (auto f : *fields) matched |= mark(s, f, data_ok, root_ok);
        }
        if (t.listed.empty()) continue;
        double number = 0;
        const bool numeric_ok =
            t.wants_number && v.kind == leaf_kind::number && parse_double(v.text, number);
        auto run = [&](const listed_test& test) {
          if (test.matches(v, numeric_ok, number)) matched |= mark(s, test.field, data_ok, root_ok);
        };
        // A test of a pattern's first field (in path order) always runs; a later field's only
        // when its pattern has all its fields on earlier paths satisfied, so only patterns
        // touched so far are looked at.
        for (auto i : t.ungated) run(t.listed[i]);
        if (!t.has_gated) continue;
        for (std::size_t k = 0; k < s.touched.size(); ++k) {
          const std::uint32_t q = s.touched[k];
          for (const auto& [path, i] : gated_[q])
            if (path == p && count(s, q) >= t.listed[i].before) run(t.listed[i]);
        }
      }
    }
    return matched;
  }

 private:
  std::vector<trie_node> nodes_;
  std::vector<path_tests> paths_;
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

  std::uint32_t path_for(const std::vector<std::string>& path) {
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
    std::uint32_t node = root();
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
      paths_.back().is_root = node == root();
    }
    return nodes_[node].path;
  }

  void add_pattern(const std::vector<field_test>& fields) {
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

  void add_test(std::uint32_t path, const value_test& v, std::uint32_t field) {
    path_tests& t = paths_[path];
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
    listed_test l;
    l.kind = v.kind;
    l.field = field;
    l.before = field_before_[field];
    l.numbers = v.numbers;
    const bool lower = v.kind == op::prefix_ignore_case || v.kind == op::suffix_ignore_case ||
                       v.kind == op::anything_but_ignore_case;
    for (const auto& s : v.values) l.values.push_back(lower ? lowered(s) : s);
    if (v.kind == op::wildcard || v.kind == op::anything_but_wildcard)
      for (const auto& s : v.values) l.wildcards.push_back(wildcard_parts::of(s));
    if (v.kind == op::cidr) parse_cidr(v.values[0], l.block);
    if (v.kind == op::numeric) {
      t.wants_number = true;
      l.has_lower = !v.lower.empty();
      l.has_upper = !v.upper.empty();
      if (l.has_lower) parse_double(v.lower, l.lower);
      if (l.has_upper) parse_double(v.upper, l.upper);
      l.lower_inclusive = v.lower_inclusive;
      l.upper_inclusive = v.upper_inclusive;
    }
    const auto index = static_cast<std::uint32_t>(t.listed.size());
    if (l.before == 0) {
      t.ungated.push_back(index);
    } else {
      t.has_gated = true;
      const std::uint32_t pattern = field_pattern_[field];
      if (gated_.size() <= pattern) gated_.resize(pattern + 1);
      gated_[pattern].emplace_back(path, index);
    }
    t.listed.push_back(std::move(l));
  }

  std::uint32_t count(const scratch& s, std::uint32_t pattern) const noexcept {
    return s.pattern_epoch[pattern] == s.epoch ? s.pattern_count[pattern] : 0;
  }
  /// Marks a field satisfied; returns whether that completed its pattern.
  bool mark(scratch& s, std::uint32_t field, bool data_ok, bool root_ok) const noexcept {
    if (s.field_epoch[field] == s.epoch) return false;
    s.field_epoch[field] = s.epoch;
    const std::uint32_t p = field_pattern_[field];
    if (!data_ok && pattern_data_[p]) return false;
    if (!root_ok && pattern_root_[p]) return false;
    if (s.pattern_epoch[p] != s.epoch) {
      s.pattern_epoch[p] = s.epoch;
      s.pattern_count[p] = 0;
      s.touched.push_back(p);
    }
    return ++s.pattern_count[p] == pattern_fields_[p];
  }
};

}  // namespace detail::filter
SLUICE_END_NAMESPACE
