// sluice/sources/range_source.hpp: any range-v3 or standard range as a one-shard source
// (sluice::from). Elements that are stream records keep their metadata; other elements become
// sluice::record<Element, std::uint64_t> with key 0, sequence = position + 1 and the time at
// which from() was called as arrival time.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <string_view>
#include <type_traits>
#include <utility>

#include "sluice/config.hpp"
#include "sluice/record.hpp"
#include "sluice/source.hpp"

SLUICE_BEGIN_NAMESPACE

template <std::ranges::input_range Range>
class range_source {
  using element = std::remove_cvref_t<std::ranges::range_reference_t<Range>>;
  static constexpr bool wraps = !stream_record<element>;

 public:
  using record_type = std::conditional_t<wraps, record<element, std::uint64_t>, element>;

  explicit range_source(Range range)
      : range_(std::move(range)),
        it_(std::ranges::begin(range_)),
        created_(std::chrono::system_clock::now()) {}

  range_source(range_source&& other) noexcept
      : range_(std::move(other.range_)),
        it_(std::ranges::begin(range_)),
        created_(other.created_) {}
  /// A copy reads the same range from its start (composing a mapping in steps copies it).
  range_source(const range_source& other) requires std::copy_constructible<Range>
      : range_(other.range_),
        it_(std::ranges::begin(range_)),
        created_(other.created_),
        last_sequence_(other.last_sequence_) {}
  range_source& operator=(const range_source&) = delete;

  std::uint32_t shard_count() const noexcept { return 1; }
  std::string_view name() const noexcept { return "range"; }

  template <class Visit>
  std::size_t read(shard_id_t, sequence_number_t after, std::size_t max, Visit&& visit) {
    // The cursor lives in locals for the loop: the per-record path is the hot path of run().
    auto it = it_;
    const auto end = std::ranges::end(range_);
    sequence_number_t last = last_;
    if (after < last) {  // reading again from further back (a retry-bypass catch-up)
      it = std::ranges::begin(range_);
      last = 0;
    }
    for (; it != end && next_sequence(*it, last) <= after; ++it) last = next_sequence(*it, last);
    std::size_t consumed = 0;
    if constexpr (std::ranges::contiguous_range<Range> && std::ranges::sized_range<Range> &&
                  !wraps) {
      // A pointer loop with one bound: the hot path of run() over a vector.
      const element* p = std::to_address(it);
      const element* stop = p + std::min<std::size_t>(max, static_cast<std::size_t>(end - it));
      const element* q = p;
      for (; q != stop; ++q) {
        if (!visit(*q)) break;
      }
      consumed = static_cast<std::size_t>(q - p);
      if (consumed > 0) last = sluice::sequence_number(q[-1]);
      it += static_cast<std::ptrdiff_t>(consumed);
    } else {
      for (; consumed < max && it != end; ++it, ++consumed) {
        if constexpr (wraps) {
          const record_type r{0, last + 1, created_, *it};
          if (!visit(std::as_const(r))) break;
          ++last;
        } else {
          const element& r = *it;
          if (!visit(r)) break;
          last = sluice::sequence_number(r);
        }
      }
    }
    it_ = it;
    last_ = last;
    return consumed;
  }

  /// For contiguous ranges of records: calls on_span(first, last) with the records after
  /// `after` (at most max); on_span returns how many it consumed. Returns that count.
  template <class OnSpan>
  requires(std::ranges::contiguous_range<Range>&& std::ranges::sized_range<Range> &&
           !wraps) std::size_t
      read_spans(shard_id_t, sequence_number_t after, std::size_t max, OnSpan&& on_span) {
    auto it = it_;
    const auto end = std::ranges::end(range_);
    sequence_number_t last = last_;
    if (after < last) {
      it = std::ranges::begin(range_);
      last = 0;
    }
    for (; it != end && sluice::sequence_number(*it) <= after; ++it)
      last = sluice::sequence_number(*it);
    const element* p = std::to_address(it);
    const std::size_t n = std::min<std::size_t>(max, static_cast<std::size_t>(end - it));
    const std::size_t consumed = n == 0 ? 0 : static_cast<std::size_t>(on_span(p, p + n));
    if (consumed > 0) last = sluice::sequence_number(p[consumed - 1]);
    it_ = it + static_cast<std::ptrdiff_t>(consumed);
    last_ = last;
    return consumed;
  }

  sequence_number_t resolve(shard_id_t, starting_position pos) {
    if (pos.where == starting_position::kind::trim_horizon) return 0;
    if (pos.where == starting_position::kind::latest) return last_sequence(0);
    sequence_number_t after = 0;  // at_timestamp: everything before the first record at or after t
    for (auto&& e : range_) {
      const time_point arrival = [&] {
        if constexpr (wraps)
          return created_;
        else
          return sluice::arrival_time(e);
      }();
      if (arrival >= pos.timestamp) break;
      if constexpr (wraps)
        ++after;
      else
        after = sluice::sequence_number(e);
    }
    return after;
  }

  sequence_number_t last_sequence(shard_id_t) const {
    if (!last_sequence_) {
      sequence_number_t last = 0;
      for (auto&& e : const_cast<Range&>(range_)) {
        if constexpr (wraps)
          ++last;
        else
          last = sluice::sequence_number(e);
      }
      last_sequence_ = last;
    }
    return *last_sequence_;
  }

  void subscribe(data_listener*) noexcept {}
  void unsubscribe(data_listener*) noexcept {}

 private:
  template <class E>
  static sequence_number_t next_sequence(const E& e, sequence_number_t last) noexcept {
    if constexpr (wraps)
      return last + 1;
    else
      return sluice::sequence_number(e);
  }

  Range range_;
  std::ranges::iterator_t<Range> it_;
  sequence_number_t last_ = 0;  // sequence number of the last element passed
  time_point created_;
  mutable std::optional<sequence_number_t> last_sequence_;
};

SLUICE_END_NAMESPACE
