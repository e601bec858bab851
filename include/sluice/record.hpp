// sluice/record.hpp: what a record is (S-1.1). A record has a partition key, a sequence number,
// an approximate arrival time and a payload with a size in bytes. Users either use the
// ready-made sluice::record<Payload>, or adapt their own type through member functions or by
// specializing sluice::record_traits; the library reads records only through the function
// objects below.
#pragma once

#include <concepts>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE

/// The ready-made record: key, sequence number, arrival time and payload.
/// Key may be any string-like type or an unsigned/signed integer (hashed by sluice::key_hash).
template <class Payload, class Key = std::string>
struct record {
  using payload_type = Payload;
  using key_type = Key;

  Key key{};
  sequence_number_t sequence{};
  time_point arrival{};
  Payload payload{};

  const Key& partition_key() const noexcept { return key; }
  sequence_number_t sequence_number() const noexcept { return sequence; }
  time_point arrival_time() const noexcept { return arrival; }

  friend bool operator==(const record&, const record&) = default;
};

namespace detail {
template <class T>
concept has_record_members = requires(const T& r) {
  r.partition_key();
  { r.sequence_number() } -> std::convertible_to<sequence_number_t>;
  { r.arrival_time() } -> std::convertible_to<time_point>;
};

template <class T>
concept has_size_member = requires(const T& p) {
  { p.size() } -> std::convertible_to<std::size_t>;
};

template <class Payload>
concept sized_container = has_size_member<Payload> && requires {
  typename Payload::value_type;
};
}  // namespace detail

/// Payload size in bytes (S-1.1, S-2.1's payload cap). Containers (size() and value_type)
/// report size() x sizeof(value_type); other payloads report sizeof (the specialization below).
/// Specialize for other payloads.
template <class Payload>
struct payload_traits {
  static std::size_t size_bytes(const Payload& p) noexcept {
    return static_cast<std::size_t>(p.size()) * sizeof(typename Payload::value_type);
  }
};

/// Fixed-size payloads (no size() and value_type): every payload of the type has the same size,
/// which lets the batcher skip per-record byte counting. A user specialization of
/// payload_traits without constant_size is always counted.
template <class Payload>
requires(!detail::sized_container<Payload>) struct payload_traits<Payload> {
  static constexpr std::size_t constant_size = sizeof(Payload);
  static std::size_t size_bytes(const Payload&) noexcept { return sizeof(Payload); }
};

/// Adapter for a user record type. The primary template reads the member functions
/// partition_key(), sequence_number(), arrival_time() and, optionally, payload_size_bytes();
/// specialize it to adapt a type you cannot change.
template <class T>
struct record_traits {};

namespace detail {
/// Gives record_traits a constant_payload_size when the record's payload has one.
template <class T>
struct constant_payload_size_of {};
template <class T>
requires requires(const T& r) {
  payload_traits<std::remove_cvref_t<decltype(r.payload)>>::constant_size;
} &&(!requires(const T& r) { r.payload_size_bytes(); }) struct constant_payload_size_of<T> {
  static constexpr std::size_t constant_payload_size = payload_traits<
      std::remove_cvref_t<decltype(std::declval<const T&>().payload)>>::constant_size;
};
}  // namespace detail

template <detail::has_record_members T>
struct record_traits<T> : detail::constant_payload_size_of<T> {
  static decltype(auto) partition_key(const T& r) noexcept(noexcept(r.partition_key())) {
    return r.partition_key();
  }
  static sequence_number_t sequence_number(const T& r) noexcept { return r.sequence_number(); }
  static time_point arrival_time(const T& r) noexcept { return r.arrival_time(); }
  static std::size_t payload_size_bytes(const T& r) noexcept {
    if constexpr (requires { r.payload_size_bytes(); }) {
      return r.payload_size_bytes();
    } else if constexpr (requires { r.payload; }) {
      return payload_traits<std::remove_cvref_t<decltype(r.payload)>>::size_bytes(r.payload);
    } else {
      return sizeof(T);
    }
  }
};

/// A type sluice can treat as a stream record (read through record_traits<T>).
template <class T>
concept stream_record = requires(const T& r) {
  record_traits<T>::partition_key(r);
  { record_traits<T>::sequence_number(r) } -> std::convertible_to<sequence_number_t>;
  { record_traits<T>::arrival_time(r) } -> std::convertible_to<time_point>;
  { record_traits<T>::payload_size_bytes(r) } -> std::convertible_to<std::size_t>;
};

namespace detail {
struct partition_key_fn {
  template <stream_record R>
  decltype(auto) operator()(const R& r) const noexcept {
    return record_traits<R>::partition_key(r);
  }
};
struct sequence_number_fn {
  template <stream_record R>
  sequence_number_t operator()(const R& r) const noexcept {
    return record_traits<R>::sequence_number(r);
  }
};
struct arrival_time_fn {
  template <stream_record R>
  time_point operator()(const R& r) const noexcept {
    return record_traits<R>::arrival_time(r);
  }
};
struct payload_size_bytes_fn {
  template <stream_record R>
  std::size_t operator()(const R& r) const noexcept {
    return record_traits<R>::payload_size_bytes(r);
  }
};
}  // namespace detail

inline constexpr detail::partition_key_fn partition_key{};
inline constexpr detail::sequence_number_fn sequence_number{};
inline constexpr detail::arrival_time_fn arrival_time{};
inline constexpr detail::payload_size_bytes_fn payload_size_bytes{};

SLUICE_END_NAMESPACE
