// sluice/detail/pipeline/lane.hpp: one lane of a shard (S-3.1) and the protocol by which the
// reader and the threads that run its batches share it. The lane's atomics and their memory
// orders are argued here, once.
//
// A lane is a ring of `slots` batch slots. Slot `closed % slots` is being filled by the reader
// (the only thread that writes records or the fill state). Batches [head, closed) are closed and
// belong to the run side, in order; only batch `head` is in flight (S-3.2). The run side is
// owned by at most one thread at a time: the one that set `busy`.
//
// The protocol, and why it holds:
//  - close(): the reader publishes the slot's oldest unfinished record (release), then bumps
//    `closed` (seq_cst). A thread that later reads `closed` (acquire or stronger) sees the slot's
//    records and the fill count.
//  - try_claim(): called by the reader after a close and by the owner after it releases. It sets
//    `busy` with an exchange and then checks head < closed; if there is nothing to run it clears
//    `busy` and checks again. With seq_cst on busy, head and closed, the two sides form a Dekker
//    pair: a closed batch is never left unowned (whoever bumps `closed` or clears `busy` last
//    sees the other's write), and an owner always has a batch to run.
//  - finish(): the owner bumps `head` (seq_cst): the slot is free for the reader again
//    (can_close() reads head with acquire, so the slot's previous contents are no longer read).
//    Then it either begins the next closed batch itself (run to completion) or releases.
//  - unfinished: the checkpoint tracker (the reader's thread) reads each closed slot's oldest
//    unfinished record with acquire; the owner lowers it (release) as records finish.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <utility>

#include "sluice/config.hpp"
#include "sluice/record.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail {

inline constexpr sequence_number_t none_in_flight = std::numeric_limits<sequence_number_t>::max();

/// A lane of record type R with `Slots` batch slots, carrying the per-lane state `Extra` of the
/// run side (the failure state machine) and a pointer to its shard's state `Shard`.
template <class R, std::uint32_t Slots, class Job, class Shard>
class lane {
 public:
  static constexpr std::uint32_t slots = Slots;

  /// One batch's storage: raw memory for `capacity` records, built in place by the reader; or,
  /// for a view batch, `n` records left where the source keeps them (`view`, kept alive by
  /// `pin` until the slot is reused).
  struct slot {
    R* data = nullptr;
    std::uint32_t n = 0;
    std::atomic<sequence_number_t> unfinished{none_in_flight};  // oldest unfinished record
    const R* view = nullptr;
    std::shared_ptr<const void> pin;
    std::span<const R> records() const noexcept { return {view != nullptr ? view : data, n}; }
    /// Ends the run side's use of the records: destroys built ones, lets go of a view.
    void clear() noexcept {
      if (view != nullptr) {
        view = nullptr;
        pin.reset();
      } else {
        std::destroy_n(data, n);
      }
      n = 0;
    }
  };

  lane(std::uint32_t capacity, std::uint64_t seed, Shard* shard)
      : job(seed), shard(shard), capacity_(capacity) {
    for (slot& s : ring_) s.data = std::allocator<R>().allocate(capacity_);
    start_filling(ring_[0]);
  }
  lane(const lane&) = delete;
  lane& operator=(const lane&) = delete;
  ~lane() {
    fill_->n = fill.n();
    for (slot& s : ring_) {
      s.clear();
      std::allocator<R>().deallocate(s.data, capacity_);
    }
  }

  // ---- the reader's side (one thread) ----

  /// The reader's position in the batch being filled, as pointers: a record's integer fields
  /// stored into the slot cannot alias a pointer, and a reader may copy the cursor into a local
  /// for a whole read (one lane) so that it stays in registers.
  struct cursor {
    R* begin = nullptr;
    R* pos = nullptr;
    R* end = nullptr;
    std::uint32_t n() const noexcept { return static_cast<std::uint32_t>(pos - begin); }
    bool empty() const noexcept { return pos == begin; }
    bool full() const noexcept { return pos == end; }
    /// The last record built.
    R& back() noexcept { return pos[-1]; }
    /// Builds a record in place from a callable's result (a prvalue: no temporary, no copy).
    template <class Make>
    void emplace(Make&& make) {
      ::new (static_cast<void*>(pos)) R(make());
      ++pos;
    }
    /// Removes the last record built (it did not fit under the byte cap).
    void pop_back() noexcept { std::destroy_at(--pos); }
  };
  cursor fill;

  std::uint32_t fill_n() const noexcept { return fill.n(); }
  bool full() const noexcept { return fill.full(); }

  /// Another batch can be closed: the ring has a free slot to fill next.
  bool can_close() const noexcept {
    return closed_.load(std::memory_order_relaxed) - head_.load(std::memory_order_acquire) <
           slots - 1;
  }
  /// Closes the filling batch (requires can_close() and a non-empty batch) and moves to the next
  /// slot, whose old records are destroyed now that the run side is done with them. Returns
  /// whether the caller now owns the run side (then it must run or hand over the lane).
  bool close() {
    slot& done = *fill_;
    done.n = fill.n();
    done.unfinished.store(::sluice::sequence_number(done.data[0]), std::memory_order_release);
    const std::uint64_t c = closed_.fetch_add(1, std::memory_order_seq_cst) + 1;
    start_filling(ring_[c % slots]);
    return try_claim();
  }

  /// Closes an empty batch (requires can_close() and an empty filling batch): a marker that
  /// makes the run side act with no records (a tumbling window's idle final invocation, S-7).
  /// It holds nothing unfinished. Returns what close() returns.
  bool close_marker() {
    fill_->n = 0;
    fill_->unfinished.store(none_in_flight, std::memory_order_release);
    const std::uint64_t c = closed_.fetch_add(1, std::memory_order_seq_cst) + 1;
    start_filling(ring_[c % slots]);
    return try_claim();
  }

  /// Records per batch.
  std::uint32_t capacity() const noexcept { return capacity_; }
  /// Closes a full batch of capacity() records that stay in the source's storage from `first`
  /// on (alive while `pin` is held) instead of being copied into the slot. Requires can_close()
  /// and an empty filling batch. Returns what close() returns.
  bool close_view(const R* first, std::shared_ptr<const void>&& pin) {
    slot& done = *fill_;
    done.view = first;
    done.pin = std::move(pin);
    done.n = capacity_;
    done.unfinished.store(::sluice::sequence_number(first[0]), std::memory_order_release);
    const std::uint64_t c = closed_.fetch_add(1, std::memory_order_seq_cst) + 1;
    start_filling(ring_[c % slots]);
    return try_claim();
  }

  // ---- the run side (the owner) ----

  /// The batch in flight.
  slot& current() noexcept { return ring_[head_.load(std::memory_order_relaxed) % slots]; }
  /// The owner finished batch `head`: returns true if the next closed batch is now current
  /// (the lane stays owned), false if the lane was released.
  bool finish() {
    current().unfinished.store(none_in_flight, std::memory_order_release);
    const std::uint64_t next = head_.load(std::memory_order_relaxed) + 1;
    head_.store(next, std::memory_order_seq_cst);
    if (next < closed_.load(std::memory_order_seq_cst)) return true;
    busy_.store(false, std::memory_order_seq_cst);
    return try_claim();  // a batch closed meanwhile: exactly one side claims it
  }

  // ---- anyone ----

  /// Closed batches not yet finished, the one in flight included.
  std::uint64_t closed_batches() const noexcept {
    return closed_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }
  /// Calls f(slot&) for every closed, unfinished batch (for the checkpoint tracker). A stale
  /// head only adds finished slots, whose `unfinished` is none_in_flight.
  template <class F>
  void for_each_closed(F&& f) {
    const std::uint64_t closed = closed_.load(std::memory_order_relaxed);
    for (std::uint64_t b = head_.load(std::memory_order_acquire); b < closed; ++b)
      f(ring_[b % slots]);
  }

  Job job;
  Shard* shard;
  std::atomic<bool> retrying{false};      // the batch in flight failed and waits to retry
  sequence_number_t bypassed_from = 0;    // reader's: first record skipped while retrying (0: none)
  time_point due{};                       // when a waiting job is to run again
  std::atomic<std::uint64_t> cost_ns{0};  // run time per batch, a moving average (0: not yet)
  // The reader's fill state for the batch being filled:
  std::size_t fill_bytes = 0;
  time_point fill_deadline = far_future;
  sequence_number_t fill_front = 0;

 private:
  void start_filling(slot& next) noexcept {
    next.clear();  // the run side is done with them (can_close())
    fill_ = &next;
    fill = cursor{next.data, next.data, next.data + capacity_};
  }

  /// Takes ownership of the run side if it is free and a closed batch is waiting.
  bool try_claim() {
    while (true) {
      if (busy_.load(std::memory_order_seq_cst) || busy_.exchange(true, std::memory_order_seq_cst))
        return false;
      if (head_.load(std::memory_order_seq_cst) < closed_.load(std::memory_order_seq_cst))
        return true;
      busy_.store(false, std::memory_order_seq_cst);
      if (head_.load(std::memory_order_seq_cst) >= closed_.load(std::memory_order_seq_cst))
        return false;
    }
  }

  std::array<slot, slots> ring_;
  slot* fill_;
  std::uint32_t capacity_;
  std::atomic<std::uint64_t> closed_{0};  // batches closed so far (the reader's counter)
  std::atomic<std::uint64_t> head_{0};    // batches finished so far (the run side's)
  std::atomic<bool> busy_{false};         // a thread owns the run side
};

}  // namespace detail
SLUICE_END_NAMESPACE
