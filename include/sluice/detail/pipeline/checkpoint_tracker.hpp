// sluice/detail/pipeline/checkpoint_tracker.hpp: the checkpoint of a shard (S-3.3): the highest
// sequence number S such that every record of the shard with sequence <= S is finished. It is
// derived, never stored per record: from the reader's position and, per lane, the batch being
// filled, a bypassed range, and each closed batch's oldest unfinished record.
#pragma once

#include <algorithm>
#include <atomic>

#include "sluice/config.hpp"
#include "sluice/detail/pipeline/lane.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail {

/// Every record of the shard <= the result is finished. `position` is the last sequence number
/// the reader consumed; `lanes` its lanes (pointers). Called by the shard's reader: the fill
/// state is its own, and the run side publishes `unfinished` with release stores (lane.hpp).
template <class Lanes>
sequence_number_t finished_through(sequence_number_t position, Lanes& lanes) {
  sequence_number_t cp = position;
  for (auto& l : lanes) {
    if (l->fill_n() > 0) cp = std::min(cp, l->fill_front - 1);
    if (l->bypassed_from != 0) cp = std::min(cp, l->bypassed_from - 1);
    // A batch leaves [head, closed) only when all of it is finished, so every unfinished record
    // is in one of these slots.
    l->for_each_closed([&cp](auto& b) {
      const sequence_number_t f = b.unfinished.load(std::memory_order_acquire);
      if (f != none_in_flight) cp = std::min(cp, f - 1);
    });
  }
  return cp;
}

}  // namespace detail
SLUICE_END_NAMESPACE
