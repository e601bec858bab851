// sluice/detail/pipeline/fused_stages.hpp: the per-record stages (filter, transform) of a
// mapping fused into one inlined function, called once per record read. The last transform's
// result is not built here: the caller gets a callable that makes it, and builds it where it is
// stored (a lane's batch slot), so a kept record is constructed once, in place.
#pragma once

#include <boost/hana/at.hpp>
#include <boost/hana/size.hpp>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "sluice/mapping.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail {

template <class Stages>
struct per_record_count;
template <class... S>
struct per_record_count<boost::hana::tuple<S...>> {
  static constexpr std::size_t value = (std::size_t{is_per_record<S>} + ... + 0);
};
/// Index of the last filter or transform (they all come first), or -1 when there is none.
template <class Stages>
constexpr std::size_t last_per_record_stage() {
  constexpr std::size_t n = per_record_count<std::remove_cvref_t<Stages>>::value;
  return n == 0 ? static_cast<std::size_t>(-1) : n - 1;
}

/// Runs stages I.. on r. A filter that drops r returns false; otherwise calls
/// emit(make) where make() returns the record that leaves the last stage (a prvalue), and
/// returns what emit returns.
template <std::size_t I, class Stages, class Rec, class Emit>
[[gnu::always_inline]] inline bool run_per_record(Stages& stages, const Rec& r, Emit& emit) {
  constexpr std::size_t n = decltype(boost::hana::size(stages))::value;
  if constexpr (I == n) {
    return emit([&r]() -> const Rec& { return r; });
  } else {
    auto& stage = stages[boost::hana::size_c<I>];
    using st = std::remove_cvref_t<decltype(stage)>;
    if constexpr (is_filter<st>) {
      if (!static_cast<bool>(call_on_record(stage.pred, r))) return false;
      return run_per_record<I + 1>(stages, r, emit);
    } else if constexpr (is_transform<st>) {
      if constexpr (last_per_record_stage<Stages>() == I) {
        // The last per-record stage: the result is built by the caller, in place.
        return emit([&stage, &r] { return apply_transform(stage.fn, r); });
      } else {
        const auto out = apply_transform(stage.fn, r);
        return run_per_record<I + 1>(stages, out, emit);
      }
    } else {
      return run_per_record<I + 1>(stages, r, emit);
    }
  }
}

}  // namespace detail
SLUICE_END_NAMESPACE
