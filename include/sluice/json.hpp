// sluice/json.hpp: JSON text payloads for sluice::filter_criteria, read with simdjson's On-Demand
// API (Debian libsimdjson-dev; link the optional target sluice::json). Payloads that are
// std::string, std::string_view, or a contiguous range of char, unsigned char or std::byte are
// parsed as JSON; the reader walks the document once and descends only into the fields some
// pattern addresses (arrays are flattened: an array matches if any element matches).
// A payload that is not JSON fails every pattern that addresses `data` (S-6.3). "Not JSON" is
// what simdjson's walk finds: the whole document's structure (brackets, strings, UTF-8) and every
// value under an addressed field are checked; a malformed scalar inside a field no pattern
// addresses (e.g. `{"a": tru, "b": 1}` filtered on b) is skipped, not detected.
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

/// simdjson 3.0's On-Demand document has no public end-of-input test; its iterator has one.
struct document_access : simdjson::ondemand::document {
  static bool at_end(simdjson::ondemand::document& doc) noexcept {
    return (doc.*(&document_access::iter)).at_end();
  }
};

class json_walker {
 public:
  explicit json_walker(field_reader& r) : r_(r) {}

  /// A value (not the document) at node.
  bool value(simdjson::ondemand::value v, std::uint32_t node) {
    simdjson::ondemand::json_type type{};
    if (v.type().get(type) != simdjson::SUCCESS) return false;
    switch (type) {
      case simdjson::ondemand::json_type::object: {
        if (!r_.has_children(node)) return true;  // skipped by the parent's iteration
        simdjson::ondemand::object o;
        if (v.get_object().get(o) != simdjson::SUCCESS) return false;
        return object(o, node);
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
        if (!r_.addressed(node)) return true;
        std::string_view s;
        if (v.get_string().get(s) != simdjson::SUCCESS) return false;
        r_.add(node, leaf_kind::string, s);
        return true;
      }
      case simdjson::ondemand::json_type::number: {
        if (!r_.addressed(node)) return true;
        std::string_view t = trim_token(v.raw_json_token());
        if (!is_json_number(t)) return false;
        r_.add(node, leaf_kind::number, t);
        return true;
      }
      case simdjson::ondemand::json_type::boolean: {
        if (!r_.addressed(node)) return true;
        bool b = false;
        if (v.get_bool().get(b) != simdjson::SUCCESS) return false;
        r_.add(node, b ? leaf_kind::boolean_true : leaf_kind::boolean_false, {});
        return true;
      }
      case simdjson::ondemand::json_type::null: {
        if (!r_.addressed(node)) return true;
        bool is_null = false;
        if (v.is_null().get(is_null) != simdjson::SUCCESS || !is_null) return false;
        r_.add(node, leaf_kind::null, {});
        return true;
      }
    }
    return false;
  }

  bool object(simdjson::ondemand::object& o, std::uint32_t node) {
    for (auto field : o) {
      std::string_view key;
      if (field.error() != simdjson::SUCCESS) return false;
      if (field.unescaped_key().get(key) != simdjson::SUCCESS) return false;
      const std::uint32_t next = r_.child(node, key);
      if (next == npos32) continue;  // On-Demand skips the value
      if (!value(field.value(), next)) return false;
    }
    return true;
  }

  /// text: the document's text, to check that nothing follows a root object or array.
  bool document(simdjson::ondemand::document& doc, std::string_view text) {
    simdjson::ondemand::json_type type{};
    if (doc.type().get(type) != simdjson::SUCCESS) return false;
    const std::uint32_t node = field_reader::root();
    switch (type) {
      case simdjson::ondemand::json_type::object: {
        simdjson::ondemand::object o;
        if (doc.get_object().get(o) != simdjson::SUCCESS || !object(o, node)) return false;
        break;
      }
      case simdjson::ondemand::json_type::array: {
        simdjson::ondemand::array a;
        if (doc.get_array().get(a) != simdjson::SUCCESS) return false;
        for (auto element : a) {
          simdjson::ondemand::value e;
          if (element.get(e) != simdjson::SUCCESS || !value(e, node)) return false;
        }
        break;
      }
      case simdjson::ondemand::json_type::string: {
        // A root scalar is the document's one token: nothing may follow it.
        std::string_view token, s;
        if (doc.raw_json_token().get(token) != simdjson::SUCCESS) return false;
        if (trim_token(token) != trim_token(trim_front(text))) return false;
        if (doc.get_string().get(s) != simdjson::SUCCESS) return false;
        r_.add(node, leaf_kind::string, s);
        return true;
      }
      case simdjson::ondemand::json_type::number: {
        std::string_view t;
        if (doc.raw_json_token().get(t) != simdjson::SUCCESS) return false;
        t = trim_token(t);
        if (t != trim_token(trim_front(text)) || !is_json_number(t)) return false;
        r_.add(node, leaf_kind::number, t);
        return true;
      }
      case simdjson::ondemand::json_type::boolean: {
        bool b = false;
        if (doc.get_bool().get(b) != simdjson::SUCCESS) return false;
        r_.add(node, b ? leaf_kind::boolean_true : leaf_kind::boolean_false, {});
        return true;
      }
      case simdjson::ondemand::json_type::null: {
        bool is_null = false;
        if (doc.is_null().get(is_null) != simdjson::SUCCESS || !is_null) return false;
        r_.add(node, leaf_kind::null, {});
        return true;
      }
    }
    // The root object or array was iterated to its end: nothing may follow it.
    return document_access::at_end(doc);
  }

 private:
  field_reader& r_;
};

/// Parses text with a per-thread parser and a per-thread padded copy of the text.
inline bool read_json(std::string_view text, field_reader& r) {
  thread_local simdjson::ondemand::parser parser;
  thread_local std::string padded;
  if (padded.size() < text.size() + simdjson::SIMDJSON_PADDING)
    padded.resize(text.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(padded.data(), text.data(), text.size());
  std::memset(padded.data() + text.size(), 0, simdjson::SIMDJSON_PADDING);
  simdjson::ondemand::document doc;
  if (parser.iterate(padded.data(), text.size(), padded.size()).get(doc) != simdjson::SUCCESS)
    return false;
  return json_walker(r).document(doc, text);
}

}  // namespace detail::filter

/// JSON text payloads: parsed with simdjson On-Demand.
template <detail::filter::json_text T>
struct filter_fields<T> {
  static bool read(const T& payload, detail::filter::field_reader& r) {
    return detail::filter::read_json(detail::filter::json_view(payload), r);
  }
};

SLUICE_END_NAMESPACE
