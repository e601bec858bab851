// sluice/filter_criteria.hpp: Lambda's FilterCriteria (S-6.2, S-6.3) as a filter stage.
//   sluice::filter_criteria(R"({"data": {"status": ["paid"]}})", ...)   run-time patterns,
//       checked when the mapping is built (sluice::filter_pattern_error: pattern, position, rule)
//   sluice::filter_criteria<R"({"data": {"status": ["paid"]}})">()      compile-time patterns: an
//       invalid one does not compile, and the error names the pattern, the character and the rule
// Both give a sluice::filter stage (fused into the per-record path; dropped records are counted
// in FilteredOutEventCount). Patterns address the payload under `data` and the metadata fields
// partitionKey, sequenceNumber and approximateArrivalTimestamp; a queue message's body is `body`
// and nothing else (S-9.10, as Lambda's SQS event filtering). The payload's fields come from
// sluice::filter_fields<Payload>: for JSON text (std::string, std::string_view, std::vector of
// char) include <sluice/json.hpp> and link sluice::json (simdjson); for your own type, specialize
// filter_fields with a `fields` list (see docs/filtering.md).
#pragma once

#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/filter/matcher.hpp"
#include "sluice/detail/filter/pattern.hpp"
#include "sluice/error.hpp"
#include "sluice/mapping.hpp"
#include "sluice/record.hpp"
#include "sluice/stages.hpp"

SLUICE_BEGIN_NAMESPACE

/// How filter patterns see a payload (or record) type T. Specialize it with
///   static constexpr auto fields = std::make_tuple(sluice::field("status", &T::status), ...);
/// where each field is a member pointer or a function of const T&; a field's name is its path
/// under `data` ("customer.country"). A value may be a string, a number, a bool, nullptr, an
/// std::optional (empty: the field is absent) or a range of those (an array). <sluice/json.hpp>
/// specializes it for JSON text.
template <class T>
struct filter_fields {};

/// One field of a filter_fields list.
template <class Get>
struct field_def {
  std::string_view name;
  Get get;
};
template <class Get>
constexpr field_def<Get> field(std::string_view name, Get get) {
  return {name, get};
}

namespace detail::filter {

/// What a payload reader fills: the leaf values of the paths the patterns address.
class field_reader {
 public:
  field_reader(const matcher_view& c, scratch& s) noexcept : c_(c), s_(s) {}
  field_reader(const compiled_criteria& c, scratch& s) noexcept : c_(c.view()), s_(s) {}

  /// The node of `data` (the payload's root value).
  static constexpr std::uint32_t root() noexcept { return matcher_view::root(); }
  /// The node under `node` for `key`, or npos32 when no pattern addresses it.
  std::uint32_t child(std::uint32_t node, std::string_view key) const noexcept {
    return c_.child(node, key);
  }
  bool has_children(std::uint32_t node) const noexcept { return c_.has_children(node); }
  /// Whether a pattern tests the values at `node` (otherwise add() ignores them).
  bool addressed(std::uint32_t node) const noexcept { return c_.path_of(node) != npos32; }
  void add(std::uint32_t node, leaf_kind kind, std::string_view text) {
    const std::uint32_t p = c_.path_of(node);
    if (p != npos32) s_.values[p].push_back(leaf{kind, text});
  }
  /// The path of a dotted field name under data, for readers that know fields by name.
  std::uint32_t path(std::string_view dotted) const noexcept { return c_.data_path(dotted); }
  void add_to_path(std::uint32_t p, leaf_kind kind, std::string_view text) {
    if (p != npos32) s_.values[p].push_back(leaf{kind, text});
  }
  /// Copies text into storage that lives until the evaluation ends.
  std::string_view keep(std::string_view text) { return s_.keep(text); }

 private:
  const matcher_view& c_;
  scratch& s_;
};

template <class T>
concept has_reader = requires(const T& v, field_reader& r) {
  { filter_fields<T>::read(v, r) } -> std::convertible_to<bool>;
};
template <class T>
concept has_field_list = requires {
  filter_fields<T>::fields;
};
template <class T>
concept exposes_fields = has_reader<T> || has_field_list<T>;

template <class T>
inline constexpr bool is_optional = false;
template <class T>
inline constexpr bool is_optional<std::optional<T>> = true;

/// Adds one C++ value (see filter_fields) at path p. Keep: v is a temporary (a getter returned
/// it by value), so its text is copied into the evaluation's storage.
template <bool Keep, class V>
void add_value(field_reader& r, std::uint32_t p, const V& v) {
  using plain = std::remove_cvref_t<V>;
  if constexpr (std::is_same_v<plain, bool>) {
    r.add_to_path(p, v ? leaf_kind::boolean_true : leaf_kind::boolean_false, {});
  } else if constexpr (std::is_same_v<plain, std::nullptr_t>) {
    r.add_to_path(p, leaf_kind::null, {});
  } else if constexpr (std::is_arithmetic_v<plain>) {
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    r.add_to_path(p, leaf_kind::number,
                  r.keep(std::string_view(buf, static_cast<std::size_t>(res.ptr - buf))));
  } else if constexpr (std::is_convertible_v<const plain&, std::string_view>) {
    const std::string_view text(v);
    r.add_to_path(p, leaf_kind::string, Keep ? r.keep(text) : text);
  } else if constexpr (is_optional<plain>) {
    if (v) add_value<Keep>(r, p, *v);
  } else if constexpr (std::ranges::input_range<const plain>) {
    for (const auto& e : v) add_value<Keep>(r, p, e);
  } else {
    static_assert(std::is_arithmetic_v<plain>,
                  "sluice::filter_fields: a field's value must be a string, a number, a bool, "
                  "nullptr, an std::optional or a range of those");
  }
}

template <class T>
bool read_fields(const T& v, field_reader& r) {
  if constexpr (has_reader<T>) {
    return filter_fields<T>::read(v, r);
  } else {
    std::apply(
        [&](const auto&... f) {
          (
              [&] {
                const std::uint32_t p = r.path(f.name);
                if (p == npos32) return;
                using result = decltype(std::invoke(f.get, v));
                add_value<!std::is_lvalue_reference_v<result>>(r, p, std::invoke(f.get, v));
              }(),
              ...);
        },
        filter_fields<T>::fields);
    return true;
  }
}

template <class K>
void add_key(field_reader& r, std::uint32_t p, const K& key) {
  if constexpr (std::is_convertible_v<const K&, std::string_view>) {
    r.add_to_path(p, leaf_kind::string, std::string_view(key));
  } else {
    char buf[32];
    auto res = std::to_chars(buf, buf + sizeof buf, key);
    r.add_to_path(p, leaf_kind::string,
                  r.keep(std::string_view(buf, static_cast<std::size_t>(res.ptr - buf))));
  }
}

/// The fields' source of a record: the record type itself, or its payload.
template <class R>
decltype(auto) data_of(const R& r) {
  if constexpr (exposes_fields<R>)
    return (r);
  else
    return (r.payload);
}
template <class R>
concept filterable_record = stream_record<R> &&(exposes_fields<R> || requires(const R& r) {
  requires exposes_fields<std::remove_cvref_t<decltype(r.payload)>>;
});

/// Records whose patterns address their payload as `body`, as Lambda's SQS event filtering
/// does (S-9.10): a record type that declares `using filter_addresses_body = void;`, as
/// sluice::queue_message does. Its body is a JSON document or a plain string, and a pattern's
/// form must agree: {"body": {...}} matches only a JSON body, {"body": [...]} only a
/// plain-string one; no metadata field is addressed.
template <class R>
concept body_addressed = requires {
  typename R::filter_addresses_body;
};

/// S-9.10: evaluates c on a queue message.
template <class R>
bool matches_body(const matcher_view& c, const R& rec) {
  using body_t = std::remove_cvref_t<decltype(rec.body())>;
  const body_t& body = rec.body();
  const scratch_lease lease;
  scratch& s = lease.get();
  c.begin(s);
  s.kept_used = 0;
  field_reader reader(c, s);
  const bool json = read_fields<body_t>(body, reader);
  if (json) return c.evaluate(s, true, false);  // a JSON body: the object patterns only
  if (!c.addresses_root()) return false;
  c.begin(s);  // a plain-string body: forget what a partial read collected, test it whole
  s.kept_used = 0;
  reader.add(matcher_view::root(), leaf_kind::string, std::string_view(body));
  return c.evaluate(s, false, true);
}

/// Rejects, when the mapping is built, patterns that address what the source's records do not
/// have: `body` on a stream, `data` or a metadata field on a queue (S-9.10).
inline void check_addressing(const matcher_view& c, bool queue) {
  if (queue && (c.uses_data_key() || c.uses_metadata()))
    throw configuration_error(
        "sluice: filter_criteria on a queue source addresses " +
        std::string(c.uses_data_key() ? "`data`" : "a stream metadata field") +
        "; a queue message is filtered on `body` only (its body: {\"body\": {...}} for a JSON "
        "body, {\"body\": [...]} for a plain string), as Lambda's SQS event filtering, which "
        "would never match this pattern");
  if (!queue && c.uses_body_key())
    throw configuration_error(
        "sluice: filter_criteria addresses `body`, which only a queue message has; a stream "
        "record's payload is `data`");
}

/// Evaluates c on one record.
template <class R>
bool matches(const matcher_view& c, const R& rec) {
  if constexpr (body_addressed<R>) return matches_body(c, rec);
  const scratch_lease lease;
  scratch& s = lease.get();
  c.begin(s);
  s.kept_used = 0;
  field_reader reader(c, s);
  if (auto p = c.metadata_path(metadata::partition_key); p != npos32)
    add_key(reader, p, sluice::partition_key(rec));
  if (auto p = c.metadata_path(metadata::sequence_number); p != npos32) {
    char buf[24];
    auto res = std::to_chars(buf, buf + sizeof buf, sluice::sequence_number(rec));
    reader.add_to_path(p, leaf_kind::string,
                       reader.keep(std::string_view(buf, static_cast<std::size_t>(res.ptr - buf))));
  }
  if (auto p = c.metadata_path(metadata::arrival_timestamp); p != npos32) {
    // Seconds since the Unix epoch with milliseconds, as Kinesis writes it (1545084650.987).
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        sluice::arrival_time(rec).time_since_epoch())
                        .count();
    std::string text = std::to_string(ms / 1000) + '.';
    const auto frac = static_cast<int>((ms % 1000 + 1000) % 1000);
    text += static_cast<char>('0' + frac / 100);
    text += static_cast<char>('0' + frac / 10 % 10);
    text += static_cast<char>('0' + frac % 10);
    reader.add_to_path(p, leaf_kind::number, reader.keep(text));
  }
  if (!c.addresses_data()) return c.evaluate(s, true);
  using data_t = std::remove_cvref_t<decltype(data_of(rec))>;
  // read() answers for the whole payload (S-6.3): false fails every pattern that addresses data.
  return c.evaluate(s, read_fields<data_t>(data_of(rec), reader));
}

}  // namespace detail::filter

/// The predicate of a run-time filter_criteria stage (shares its compiled patterns on copy).
class criteria_matcher {
 public:
  explicit criteria_matcher(std::shared_ptr<const detail::filter::compiled_criteria> c)
      : c_(std::move(c)) {}
  template <detail::filter::filterable_record R>
  bool operator()(const R& r) const {
    return detail::filter::matches(c_->view(), r);
  }
  /// When the mapping is built: throws if the patterns address what the source lacks.
  void check_addressing(bool queue) const { detail::filter::check_addressing(c_->view(), queue); }

 private:
  std::shared_ptr<const detail::filter::compiled_criteria> c_;
};

/// Run-time patterns, Lambda's limits or yours: filter_criteria(filter_limits{...}, p1, p2).
/// Throws sluice::filter_pattern_error (a configuration_error) for an invalid pattern.
template <class P0, class... P>
requires(std::is_convertible_v<const P0&, std::string_view> || std::is_same_v<P0, filter_limits>) &&
    (std::is_convertible_v<const P&, std::string_view> &&
     ...) filter_stage<criteria_matcher> filter_criteria(const P0& first, const P&... rest) {
  std::vector<std::string_view> texts;
  filter_limits limits;
  if constexpr (std::is_same_v<P0, filter_limits>)
    limits = first;
  else
    texts.emplace_back(first);
  (texts.emplace_back(rest), ...);
  return {
      criteria_matcher(std::make_shared<const detail::filter::compiled_criteria>(texts, limits))};
}

/// Run-time patterns from a list (Lambda's FilterCriteria.Filters).
inline filter_stage<criteria_matcher> filter_criteria(const std::vector<std::string>& patterns,
                                                      filter_limits limits = {}) {
  std::vector<std::string_view> texts(patterns.begin(), patterns.end());
  return {
      criteria_matcher(std::make_shared<const detail::filter::compiled_criteria>(texts, limits))};
}
inline filter_stage<criteria_matcher> filter_criteria(filter_limits limits,
                                                      const std::vector<std::string>& patterns) {
  return filter_criteria(patterns, limits);
}

// ---- compile-time patterns --------------------------------------------------------------------

/// A string literal as a template argument.
template <std::size_t N>
struct fixed_string {
  char chars[N]{};
  constexpr fixed_string() = default;
  constexpr fixed_string(const char (&s)[N]) {  // NOLINT(google-explicit-constructor)
    for (std::size_t i = 0; i < N; ++i) chars[i] = s[i];
  }
  constexpr std::string_view view() const { return {chars, N - 1}; }
};

/// The names a compile-time pattern error shows: pattern_index<0>, at_character<14>.
template <std::size_t I>
struct pattern_index {};
template <std::size_t C>
struct at_character {};
/// Never defined: naming it is the compile-time error for an invalid pattern.
template <class Pattern, class Character, pattern_rule Rule>
struct invalid_filter_pattern;

namespace detail::filter {
struct static_error {
  std::size_t pattern = 0;
  std::size_t position = 0;
  pattern_rule rule = pattern_rule::none;
};
/// The check of compile-time patterns and, when they are valid, the sizes of their matcher's
/// tables: each pattern is parsed once for both.
struct static_check {
  static_error error;
  table_sizes sizes;
};
constexpr static_check check_patterns(std::span<const std::string_view> texts) {
  const filter_limits limits;
  if (texts.size() > limits.max_patterns)
    return {{limits.max_patterns, 0, pattern_rule::too_many_patterns}, {}};
  matcher_compiler c;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (texts[i].size() > limits.max_pattern_chars)
      return {{i, limits.max_pattern_chars, pattern_rule::pattern_too_long}, {}};
    const parse_result r = parse_pattern(texts[i]);
    if (!r.ok()) return {{i, r.position, r.rule}, {}};
    c.add(r);
  }
  return {{}, sizes_of(c.finish())};
}

/// The matcher of a compile-time filter_criteria, compiled at compile time into a constexpr
/// variable that the matching code reads (the same code as for run-time patterns). The compiler
/// runs twice in constant evaluation: once (with the check) for the tables' sizes, once to fill
/// tables of those sizes. `tables` is only instantiated for valid patterns.
template <fixed_string... P>
struct static_criteria {
  static constexpr std::string_view texts[] = {P.view()...};
  static constexpr static_check check = check_patterns(texts);
  static constexpr table_sizes sizes = check.sizes;
  static constexpr frozen_tables<sizes> tables = freeze<sizes>(compile_patterns(texts));
  static constexpr matcher_view view = view_of(tables);
};

/// The first error of compile-time patterns (rule none when they are valid).
template <fixed_string... P>
constexpr static_error first_error() {
  return static_criteria<P...>::check.error;
}
}  // namespace detail::filter

/// The predicate of a compile-time filter_criteria stage: no state; the patterns are types.
template <fixed_string... P>
struct static_criteria_matcher {
  template <detail::filter::filterable_record R>
  bool operator()(const R& r) const {
    return detail::filter::matches(detail::filter::static_criteria<P...>::view, r);
  }
  void check_addressing(bool queue) const {
    detail::filter::check_addressing(detail::filter::static_criteria<P...>::view, queue);
  }
};

/// Compile-time patterns: filter_criteria<R"({"data": {"status": ["paid"]}})">(). An invalid
/// pattern fails to compile; the error names invalid_filter_pattern<pattern_index<I>,
/// at_character<C>, pattern_rule::...>.
template <fixed_string P0, fixed_string... P>
auto filter_criteria() {
  constexpr detail::filter::static_error e = detail::filter::first_error<P0, P...>();
  // Valid: the matcher is compiled (static_criteria::tables) when the stage's type is used.
  if constexpr (e.rule != pattern_rule::none) {
    static_cast<void>(
        sizeof(invalid_filter_pattern<pattern_index<e.pattern>, at_character<e.position>, e.rule>));
    return detail::failed_mapping{};
  } else {
    return filter_stage<static_criteria_matcher<P0, P...>>{};
  }
}

SLUICE_END_NAMESPACE
