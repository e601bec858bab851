// sluice/source.hpp: what a source is. A source owns shards and hands out each shard's records
// in sequence order from a position (S-1.3); it resolves starting positions (S-1.4) and tells a
// listener when new records arrive, so an idle poller can sleep instead of polling.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sluice/config.hpp"
#include "sluice/record.hpp"

SLUICE_BEGIN_NAMESPACE

/// Where a mapping without a stored checkpoint starts reading a shard (S-1.4).
struct starting_position {
  enum class kind { trim_horizon, latest, at_timestamp };
  kind where = kind::trim_horizon;
  time_point timestamp{};

  static const starting_position trim_horizon;
  static const starting_position latest;
  static constexpr starting_position at_timestamp(time_point t) noexcept {
    return {kind::at_timestamp, t};
  }
  friend constexpr bool operator==(const starting_position&, const starting_position&) = default;
};
inline constexpr starting_position starting_position::trim_horizon{kind::trim_horizon, {}};
inline constexpr starting_position starting_position::latest{kind::latest, {}};

/// Told by a source that shard `shard` has new records. Called on the producer's thread, once
/// per put; implementations must be cheap and must not block.
class data_listener {
 public:
  virtual void on_data(shard_id_t shard) noexcept = 0;

 protected:
  ~data_listener() = default;
};

namespace detail {
/// The mapping whose thread is running now (its engine: what it passes to a source's
/// acknowledge()), or null. A bounded source must not make a mapping's own thread wait for that
/// mapping's progress: it could never come.
inline const void*& current_consumer() noexcept {
  static thread_local const void* consumer = nullptr;
  return consumer;
}

struct accept_any_record {
  template <class R>
  bool operator()(const R&) const noexcept {
    return true;
  }
};
}  // namespace detail

/// A source: `record_type`; shard_count(); read(shard, after, max, visit) calls visit(record)
/// for the records with sequence > after, in order, at most max of them, stopping early when
/// visit returns false (that record is not consumed), and returns how many were consumed;
/// resolve(shard, position) gives the sequence number after which reading starts;
/// last_sequence(shard) is the highest sequence number stored so far (0 if none);
/// subscribe/unsubscribe a data_listener; name() identifies the stream in on-failure records.
/// Optionally, serves(shard) -> bool: a source that serves only some shard ids (a leased
/// shard_view, sluice/leases.hpp) has a mapping keep state and lanes for those alone.
template <class S>
concept source = requires(S& s, const S& cs, shard_id_t shard, sequence_number_t after,
                          std::size_t max, detail::accept_any_record visit, starting_position pos,
                          data_listener* listener) {
  typename S::record_type;
  requires stream_record<typename S::record_type>;
  { cs.shard_count() } -> std::convertible_to<std::uint32_t>;
  { s.read(shard, after, max, visit) } -> std::convertible_to<std::size_t>;
  { s.resolve(shard, pos) } -> std::convertible_to<sequence_number_t>;
  { cs.last_sequence(shard) } -> std::convertible_to<sequence_number_t>;
  s.subscribe(listener);
  s.unsubscribe(listener);
  { cs.name() } -> std::convertible_to<std::string_view>;
};

SLUICE_END_NAMESPACE
