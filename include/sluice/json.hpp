// sluice/json.hpp: JSON text payloads for sluice::filter_criteria, read with simdjson's On-Demand
// API (Debian libsimdjson-dev; link the optional target sluice::json). Payloads that are
// std::string, std::string_view, or a contiguous range of char, unsigned char or std::byte are
// parsed as JSON; the reader walks the document once and descends only into the fields some
// pattern addresses (arrays are flattened: an array matches if any element matches).
// A payload that is not JSON fails every pattern that addresses `data` (S-6.3). The extracting
// walk skips what no pattern addresses; when a pattern that addresses data matched, a second,
// checking walk visits every value (simdjson checks the structure and UTF-8; the walk checks
// each string's escapes, number and literal), so whether a payload is JSON never depends on
// which fields the patterns address, and the full check costs only records that pass.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstring>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>

#include "sluice/config.hpp"
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

/// The per-thread parser, a padded copy of the last payload, and its document (kept so that the
/// checking walk can follow the extracting one without parsing again).
struct json_state {
  simdjson::ondemand::parser parser;
  std::string padded;
  simdjson::ondemand::document doc;
  const char* text = nullptr;  // the payload the document was parsed from
  std::size_t size = 0;
  bool parsed = false;
};

inline json_state& thread_json_state() {
  thread_local json_state state;
  return state;
}

inline bool parse_json(json_state& st, std::string_view text) {
  if (st.padded.size() < text.size() + simdjson::SIMDJSON_PADDING)
    st.padded.resize(text.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(st.padded.data(), text.data(), text.size());
  std::memset(st.padded.data() + text.size(), 0, simdjson::SIMDJSON_PADDING);
  st.text = text.data();
  st.size = text.size();
  st.parsed = st.parser.iterate(st.padded.data(), text.size(), st.padded.size()).get(st.doc) ==
              simdjson::SUCCESS;
  return st.parsed;
}

/// The extracting walk over text.
inline bool extract_json(std::string_view text, field_reader& r) {
  json_state& st = thread_json_state();
  return parse_json(st, text) && json_walker(&r).document(st.doc, text);
}

/// The checking walk over text: over the document the extracting walk left, rewound, when it
/// was this text (the strings it extracted stay valid: this walk unescapes nothing).
inline bool check_json(std::string_view text) {
  json_state& st = thread_json_state();
  if (st.parsed && st.text == text.data() && st.size == text.size() &&
      std::memcmp(st.padded.data(), text.data(), text.size()) == 0) {
    st.doc.rewind();
  } else if (!parse_json(st, text)) {
    return false;
  }
  return json_walker(nullptr).document(st.doc, text);
}

}  // namespace detail::filter

/// JSON text payloads: parsed with simdjson On-Demand. read() extracts the addressed fields
/// (false: not JSON); valid() checks the whole payload, and runs only when a pattern that
/// addresses data matched (a payload that is not JSON must fail it, S-6.3).
template <detail::filter::json_text T>
struct filter_fields<T> {
  static bool read(const T& payload, detail::filter::field_reader& r) {
    return detail::filter::extract_json(detail::filter::json_view(payload), r);
  }
  static bool valid(const T& payload) {
    return detail::filter::check_json(detail::filter::json_view(payload));
  }
};

SLUICE_END_NAMESPACE
