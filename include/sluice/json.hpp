// sluice/json.hpp: JSON text payloads for sluice::filter_criteria, read with simdjson (Debian
// libsimdjson-dev; link the optional target sluice::json). Payloads that are std::string,
// std::string_view, or a contiguous range of char, unsigned char or std::byte are parsed as JSON;
// arrays are flattened (an array matches if any element matches). A payload that is not JSON
// fails every pattern that addresses `data` (S-6.3), whichever fields the patterns address.
// How: simdjson's stage 1 (the SIMD kernel simdjson picks for this CPU at run time) indexes the
// payload and checks UTF-8, that strings are closed and hold no control character; then one walk
// over its structural indexes checks the rest (the grammar, every number and literal, string
// escapes when the payload has a backslash) and collects the values of the addressed fields, so
// each token is visited once. A payload that walk rejects (or that nests deeper than 1,024) is
// read again by the exact reader it replaced: an On-Demand walk that extracts, then a walk that
// checks every value; its answer is final. A std::string whose capacity leaves simdjson's padding
// is read where it lies, other payloads from a padded copy.
#pragma once

#include <simdjson.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/io/json_text.hpp"
#include "sluice/filter_criteria.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail::filter {

template <class T>
concept json_text = std::is_convertible_v<const T&, std::string_view> ||
    (std::ranges::contiguous_range<const T>&& std::ranges::sized_range<const T> &&
     (std::is_same_v<std::ranges::range_value_t<T>, char> ||
      std::is_same_v<std::ranges::range_value_t<T>, unsigned char> ||
      std::is_same_v<std::ranges::range_value_t<T>, std::byte>));

template <class T>
std::string_view json_view(const T& v) {
  if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return std::string_view(v);
  } else {
    // NOLINTNEXTLINE(bugprone-casting-through-void): bytes viewed as characters
    return {reinterpret_cast<const char*>(std::ranges::data(v)), std::ranges::size(v)};
  }
}

/// Whether text is a JSON number (simdjson's raw token is not checked when not converted).
inline bool is_json_number(std::string_view t) {
  std::size_t i = 0;
  auto digit = [&](std::size_t k) { return k < t.size() && t[k] >= '0' && t[k] <= '9'; };
  if (i < t.size() && t[i] == '-') ++i;
  if (!digit(i)) return false;
  if (t[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  if (i < t.size() && t[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == t.size();
}

inline std::string_view trim_token(std::string_view t) {
  while (!t.empty() &&
         (t.back() == ' ' || t.back() == '\n' || t.back() == '\r' || t.back() == '\t'))
    t.remove_suffix(1);
  return t;
}

inline std::string_view trim_front(std::string_view t) {
  while (!t.empty() &&
         (t.front() == ' ' || t.front() == '\n' || t.front() == '\r' || t.front() == '\t'))
    t.remove_prefix(1);
  return t;
}

/// Checks the escapes of a string simdjson's stage 1 found (it checked the quotes and UTF-8):
/// p points after the opening quote. Returns false on an invalid escape.
inline bool check_escapes(const char* p) {
  for (;; ++p) {
    if (*p == '"') return true;
    if (*p != '\\') continue;
    ++p;
    switch (*p) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        break;
      case 'u': {
        // As simdjson's unescaping: a high surrogate needs a low one after it, a low one alone
        // is an error.
        auto code = [](const char* h) {
          int v = 0;
          for (int k = 0; k < 4; ++k) {
            const int d = hex_digit(h[k]);
            if (d < 0) return -1;
            v = v * 16 + d;
          }
          return v;
        };
        const int cp = code(p + 1);
        if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return false;
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (p[1] != '\\' || p[2] != 'u') return false;
          const int low = code(p + 3);
          if (low < 0xDC00 || low > 0xDFFF) return false;
          p += 6;
        }
        break;
      }
      default:
        return false;
    }
  }
}

/// A string value no pattern addresses: checked without unescaping it.
inline bool check_string_token(std::string_view token) {
  if (token.size() < 2 || token.front() != '"') return false;
  if (std::memchr(token.data(), '\\', token.size()) == nullptr) return true;
  return check_escapes(token.data() + 1);
}

/// Whether the walk consumed the whole document. simdjson 3.0's document has no public
/// at_end(); current_location() answers OUT_OF_BOUNDS exactly there (and a location, not that
/// error, when the document is in an error state).
inline bool at_end(simdjson::ondemand::document& doc) noexcept {
  return doc.current_location().error() == simdjson::OUT_OF_BOUNDS;
}

/// One walk over a document. With a reader (the extracting walk), it collects the values of the
/// addressed fields and skips the others unchecked; without one (the checking walk), it visits
/// and checks every value.
class json_walker {
 public:
  explicit json_walker(field_reader* r) : r_(r) {}

  /// A value (not the document) at node; npos32: a value no pattern addresses.
  bool value(simdjson::ondemand::value v, std::uint32_t node) {
    const bool extracting = r_ != nullptr;
    if (extracting && node == npos32) return true;  // skipped by the parent's iteration
    simdjson::ondemand::json_type type{};
    if (v.type().get(type) != simdjson::SUCCESS) return false;
    const bool addressed = extracting && r_->addressed(node);
    switch (type) {
      case simdjson::ondemand::json_type::object: {
        const bool nested = extracting && r_->has_children(node);
        if (extracting && !nested) return true;  // an object is not a leaf
        simdjson::ondemand::object o;
        if (v.get_object().get(o) != simdjson::SUCCESS) return false;
        return object(o, nested ? node : npos32);
      }
      case simdjson::ondemand::json_type::array: {
        simdjson::ondemand::array a;
        if (v.get_array().get(a) != simdjson::SUCCESS) return false;
        for (auto element : a) {
          simdjson::ondemand::value e;
          if (element.get(e) != simdjson::SUCCESS || !value(e, node)) return false;
        }
        return true;
      }
      case simdjson::ondemand::json_type::string: {
        if (!addressed) {
          if (extracting) return true;
          // Checked without unescaping, then consumed (a value left unconsumed is skipped by
          // the parent's iteration, which checks less).
          simdjson::ondemand::raw_json_string raw;
          return check_string_token(v.raw_json_token()) &&
                 v.get_raw_json_string().get(raw) == simdjson::SUCCESS;
        }
        std::string_view s;
        if (v.get_string().get(s) != simdjson::SUCCESS) return false;
        r_->add(node, leaf_kind::string, s);
        return true;
      }
      case simdjson::ondemand::json_type::number: {
        if (extracting && !addressed) return true;
        std::string_view t = trim_token(v.raw_json_token());
        if (!is_json_number(t)) return false;
        if (addressed) r_->add(node, leaf_kind::number, t);
        return true;
      }
      case simdjson::ondemand::json_type::boolean: {
        if (extracting && !addressed) return true;
        bool b = false;
        if (v.get_bool().get(b) != simdjson::SUCCESS) return false;
        if (addressed) r_->add(node, b ? leaf_kind::boolean_true : leaf_kind::boolean_false, {});
        return true;
      }
      case simdjson::ondemand::json_type::null: {
        if (extracting && !addressed) return true;
        bool is_null = false;
        if (v.is_null().get(is_null) != simdjson::SUCCESS || !is_null) return false;
        if (addressed) r_->add(node, leaf_kind::null, {});
        return true;
      }
    }
    return false;
  }

  /// node npos32: no field of this object is addressed.
  bool object(simdjson::ondemand::object& o, std::uint32_t node) {
    for (auto field : o) {
      if (field.error() != simdjson::SUCCESS) return false;
      std::uint32_t next = npos32;
      if (node != npos32) {
        // Most keys have no escape: compared in place, without simdjson copying them out.
        const char* raw = field.key().raw();
        const char* end = raw;
        while (*end != '"' && *end != '\\') ++end;
        std::string_view key(raw, static_cast<std::size_t>(end - raw));
        if (*end == '\\' && field.unescaped_key().get(key) != simdjson::SUCCESS) return false;
        next = r_->child(node, key);
      } else if (r_ == nullptr && !check_escapes(field.key().raw())) {
        return false;
      }
      if (next == npos32 && r_ != nullptr) continue;  // On-Demand skips the value
      if (!value(field.value(), next)) return false;
    }
    return true;
  }

  /// text: the document's text, to check that nothing follows a root scalar.
  bool document(simdjson::ondemand::document& doc, std::string_view text) {
    simdjson::ondemand::json_type type{};
    if (doc.type().get(type) != simdjson::SUCCESS) return false;
    const std::uint32_t node = field_reader::root();
    switch (type) {
      case simdjson::ondemand::json_type::object: {
        simdjson::ondemand::object o;
        if (doc.get_object().get(o) != simdjson::SUCCESS) return false;
        if (!object(o, r_ != nullptr && r_->has_children(node) ? node : npos32)) return false;
        break;
      }
      case simdjson::ondemand::json_type::array: {
        simdjson::ondemand::array a;
        if (doc.get_array().get(a) != simdjson::SUCCESS) return false;
        for (auto element : a) {
          simdjson::ondemand::value e;
          if (element.get(e) != simdjson::SUCCESS) return false;
          if (!value(e, r_ != nullptr ? node : npos32)) return false;
        }
        break;
      }
      case simdjson::ondemand::json_type::string: {
        // A root scalar is the document's one token: nothing may follow it.
        std::string_view token, s;
        if (doc.raw_json_token().get(token) != simdjson::SUCCESS) return false;
        if (trim_token(token) != trim_token(trim_front(text))) return false;
        if (doc.get_string().get(s) != simdjson::SUCCESS) return false;
        if (r_ != nullptr) r_->add(node, leaf_kind::string, s);
        return true;
      }
      case simdjson::ondemand::json_type::number: {
        std::string_view t;
        if (doc.raw_json_token().get(t) != simdjson::SUCCESS) return false;
        t = trim_token(t);
        if (t != trim_token(trim_front(text)) || !is_json_number(t)) return false;
        if (r_ != nullptr) r_->add(node, leaf_kind::number, t);
        return true;
      }
      case simdjson::ondemand::json_type::boolean: {
        bool b = false;
        if (doc.get_bool().get(b) != simdjson::SUCCESS) return false;
        if (r_ != nullptr)
          r_->add(node, b ? leaf_kind::boolean_true : leaf_kind::boolean_false, {});
        return true;
      }
      case simdjson::ondemand::json_type::null: {
        bool is_null = false;
        if (doc.is_null().get(is_null) != simdjson::SUCCESS || !is_null) return false;
        if (r_ != nullptr) r_->add(node, leaf_kind::null, {});
        return true;
      }
    }
    // The root object or array was iterated to its end: nothing may follow it.
    return at_end(doc);
  }

 private:
  field_reader* r_;
};

/// A JSON string's text (between its quotes) unescaped, for a string whose escapes were checked
/// (each is well-formed and a high surrogate has its low one).
inline void unescape_valid(std::string_view raw, std::string& out) {
  out.clear();
  auto hex4 = [&](std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k)
      v = v * 16 + static_cast<std::uint32_t>(hex_digit(raw[at + k]));
    return v;
  };
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\') {
      out += raw[i];
      continue;
    }
    const char e = raw[++i];
    if (e != 'u') {
      out += static_cast<char>(json_unescaped(e));
      continue;
    }
    std::uint32_t cp = hex4(i + 1);
    i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {  // then "\\uDC00".."\\uDFFF"
      cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4(i + 3) - 0xDC00);
      i += 6;
    }
    append_utf8(out, cp);
  }
}

/// A value the structural walk found at an addressed field, added to the reader once the whole
/// payload turned out to be JSON.
struct found_value {
  std::uint32_t node;
  leaf_kind kind;
  std::string_view text;
};

/// One walk over stage 1's structural indexes (the position of every bracket, comma, colon and
/// value token) that both checks the payload and collects the values of the addressed fields.
/// Stage 1 checked UTF-8, that every string is closed and has no unescaped control character;
/// this walk checks the rest of JSON: the grammar over the tokens, each number and literal, and
/// each string's escapes (only when the payload has a backslash). Each token is visited once:
/// a value no pattern addresses is checked without being collected.
class structural_walker {
 public:
  structural_walker(const char* text, const std::uint32_t* indexes, std::uint32_t count,
                    bool escapes, field_reader& r, std::vector<found_value>& found,
                    std::string& unescaped) noexcept
      : text_(text),
        at_(indexes),
        end_(indexes + count),
        escapes_(escapes),
        r_(r),
        found_(found),
        unescaped_(unescaped) {}

  /// Whether the payload is one JSON value (then found_ holds the addressed values).
  bool document() { return value<true>(field_reader::root()) && at_ == end_; }

  /// Deeper nesting is not JSON for the filter (read_json); the walk recurses at most this deep.
  static constexpr int max_depth = 1024;

 private:
  const char* text_;
  const std::uint32_t* at_;   // the next structural index
  const std::uint32_t* end_;  // *end_ is the text's length (stage 1's sentinel)
  bool escapes_;              // the payload has a backslash
  int depth_ = 0;
  field_reader& r_;
  std::vector<found_value>& found_;
  std::string& unescaped_;

  /// The token that starts at `from`, up to the next structural index, without trailing space.
  std::string_view token(std::uint32_t from) const noexcept {
    return trim_token(std::string_view(text_ + from, *at_ - from));
  }
  /// The characters of the string whose opening quote is at `from` (the token just passed):
  /// stage 1 closed it, and only white space lies between its closing quote and the next index.
  std::string_view string_text(std::uint32_t from) const noexcept {
    const char* close = text_ + *at_;
    while (*--close != '"') {
    }
    return {text_ + from + 1, static_cast<std::size_t>(close - text_ - from - 1)};
  }

  /// Collect: node is a field some pattern addresses (or has fields under it that one does);
  /// otherwise the value is only checked. `at_` is at the value's token.
  template <bool Collect>
  bool value(std::uint32_t node) {
    if (at_ == end_) return false;
    const std::uint32_t from = *at_++;
    const char c = text_[from];
    if (c == '"') {  // stage 1 closed it and checked its characters; the escapes are left
      if (escapes_ && !check_escapes(text_ + from + 1)) return false;
      if (Collect && r_.addressed(node)) {
        std::string_view chars = string_text(from);
        if (escapes_ && std::memchr(chars.data(), '\\', chars.size()) != nullptr) {
          unescape_valid(chars, unescaped_);
          chars = r_.keep(unescaped_);
        }
        found_.push_back({node, leaf_kind::string, chars});
      }
      return true;
    }
    if (c == '{') return object<Collect>(node);
    if (c == '[') return array<Collect>(node);
    const std::string_view t = token(from);
    leaf_kind kind = leaf_kind::number;
    if (c == 't') {
      if (t != "true") return false;
      kind = leaf_kind::boolean_true;
    } else if (c == 'f') {
      if (t != "false") return false;
      kind = leaf_kind::boolean_false;
    } else if (c == 'n') {
      if (t != "null") return false;
      kind = leaf_kind::null;
    } else if (!is_json_number(t)) {
      return false;
    }
    if (Collect && r_.addressed(node))
      found_.push_back({node, kind, kind == leaf_kind::number ? t : std::string_view{}});
    return true;
  }

  template <bool Collect>
  bool array(std::uint32_t node) {  // after its '['
    if (at_ != end_ && text_[*at_] == ']') {
      ++at_;
      return true;
    }
    if (++depth_ > max_depth) return false;
    for (;;) {
      if (!value<Collect>(node) || at_ == end_) return false;  // elements: flattened
      const char c = text_[*at_++];
      if (c == ']') break;
      if (c != ',') return false;
    }
    --depth_;
    return true;
  }

  template <bool Collect>
  bool object(std::uint32_t node) {  // after its '{'
    if (at_ != end_ && text_[*at_] == '}') {
      ++at_;
      return true;
    }
    if (++depth_ > max_depth) return false;
    // An object is not a leaf: at a node without fields under it, its fields are only checked.
    if (Collect && !r_.has_children(node)) return object_fields<false>(node);
    return object_fields<Collect>(node);
  }

  template <bool Collect>
  bool object_fields(std::uint32_t node) {
    for (;;) {
      if (at_ == end_) return false;
      const std::uint32_t from = *at_++;  // the key; then its colon
      if (text_[from] != '"' || at_ == end_ || text_[*at_] != ':') return false;
      if (escapes_ && !check_escapes(text_ + from + 1)) return false;
      std::uint32_t next = npos32;
      if (Collect) {
        std::string_view key = string_text(from);  // most keys: compared where they lie
        if (escapes_ && std::memchr(key.data(), '\\', key.size()) != nullptr) {
          unescape_valid(key, unescaped_);
          key = unescaped_;  // used before the next unescaping
        }
        next = r_.child(node, key);
      }
      ++at_;
      if (!(next == npos32 ? value<false>(npos32) : value<true>(next)) || at_ == end_) return false;
      const char c = text_[*at_++];
      if (c == '}') break;
      if (c != ',') return false;
    }
    --depth_;
    return true;
  }
};

/// Whether brackets nest deeper than `limit` anywhere in the payload (over stage 1's indexes).
inline bool nesting_exceeds(const char* text, const std::uint32_t* at, std::uint32_t count,
                            int limit) noexcept {
  int depth = 0;
  for (const std::uint32_t* end = at + count; at != end; ++at) {
    const char c = text[*at];
    if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

/// The per-thread parsers and buffers (reused: no allocation per payload once they have grown).
struct json_state {
  // Only its stage 1 runs, through simdjson 3's public dom::parser::implementation member
  // (the dom_parser_implementation: stage1(), structural_indexes, n_structural_indexes).
  simdjson::dom::parser dom;
  std::string padded;     // a padded copy of the payload
  std::string unescaped;  // a key or string with escapes, unescaped
  std::vector<found_value> found;
  simdjson::ondemand::parser ondemand;  // the reader for what the structural walk rejects
  simdjson::ondemand::document doc;
};

inline json_state& thread_json_state() {
  thread_local json_state state;
  return state;
}

/// The payload, padded as simdjson needs (SIMDJSON_PADDING readable bytes after it).
inline const char* padded_copy(json_state& st, std::string_view text) {
  if (st.padded.size() < text.size() + simdjson::SIMDJSON_PADDING)
    st.padded.resize(text.size() + simdjson::SIMDJSON_PADDING);
  if (!text.empty()) std::memcpy(st.padded.data(), text.data(), text.size());  // data() may be null
  std::memset(st.padded.data() + text.size(), 0, simdjson::SIMDJSON_PADDING);
  return st.padded.data();
}

/// The exact reader for payloads the structural walk rejects: the On-Demand extracting walk, then
/// the checking walk over the same document, rewound (the strings the first extracted stay valid:
/// the second unescapes nothing). Also what the fast reader is tested against.
inline bool read_json_on_demand(json_state& st, const char* padded, std::string_view text,
                                field_reader& r) {
  if (st.ondemand.iterate(padded, text.size(), text.size() + simdjson::SIMDJSON_PADDING)
          .get(st.doc) != simdjson::SUCCESS)
    return false;
  if (!json_walker(&r).document(st.doc, text)) return false;
  st.doc.rewind();
  return json_walker(nullptr).document(st.doc, text);
}

/// Reads text's addressed fields into r; false: text is not JSON. `allocated`: the bytes readable
/// from text.data() (a std::string's capacity); with SIMDJSON_PADDING of them after the text,
/// simdjson reads the text where it lies, else a padded copy.
inline bool read_json(std::string_view text, std::size_t allocated, field_reader& r) {
  json_state& st = thread_json_state();
  const char* padded =
      allocated >= text.size() + simdjson::SIMDJSON_PADDING ? text.data() : padded_copy(st, text);
  if (st.dom.capacity() < text.size() &&
      st.dom.allocate(std::max(text.size(), 2 * st.dom.capacity())) != simdjson::SUCCESS)
    return read_json_on_demand(st, padded, text, r);
  auto& stage1 = *st.dom.implementation;
  if (stage1.stage1(reinterpret_cast<const std::uint8_t*>(padded), text.size(),
                    simdjson::stage1_mode::regular) != simdjson::SUCCESS)
    return false;  // not UTF-8, an unclosed string, a control character in one, or empty
  st.found.clear();
  const bool escapes = std::memchr(padded, '\\', text.size()) != nullptr;
  if (!structural_walker(padded, stage1.structural_indexes.get(), stage1.n_structural_indexes,
                         escapes, r, st.found, st.unescaped)
           .document()) {
    // Nesting deeper than the limit is not JSON for the filter (RFC 8259 section 9 lets a parser
    // limit it). simdjson's On-Demand reader must not see it (it asserts in debug builds): its
    // max_depth (1,024) counts the document and the innermost value too, so 1,022 brackets.
    if (nesting_exceeds(padded, stage1.structural_indexes.get(), stage1.n_structural_indexes,
                        structural_walker::max_depth - 2))
      return false;
    return read_json_on_demand(st, padded, text, r);  // the exact answer
  }
  for (const found_value& v : st.found) r.add(v.node, v.kind, v.text);
  return true;
}

}  // namespace detail::filter

/// JSON text payloads: read() extracts the addressed fields and answers whether the payload as
/// a whole is JSON (false: every pattern that addresses data fails, S-6.3).
template <detail::filter::json_text T>
struct filter_fields<T> {
  static bool read(const T& payload, detail::filter::field_reader& r) {
    const std::string_view text = detail::filter::json_view(payload);
    if constexpr (std::is_same_v<T, std::string>) {
      return detail::filter::read_json(text, payload.capacity(), r);  // padded as it is?
    } else {
      return detail::filter::read_json(text, text.size(), r);
    }
  }
};

SLUICE_END_NAMESPACE
