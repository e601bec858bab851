// sluice/handlers/per_record.hpp: turns a function of one record into a batch handler that answers
// with a partial batch response (S-4.3), as Powertools' batch processor does on Lambda. The failure
// mode decides what happens to the records after a failed one.
//
// Retries and ordering. The engine retries a partial failure from the LOWEST reported sequence L
// (S-5.2): every record from L to the end of the batch is handed over again, including those
// that succeeded after L. Delivery is at least once; fn must tolerate seeing a record twice.
// Per-key order rests on that rule: a failed record is at or after L, so the retry hands it over
// again before any later record of its key.
//   continue_on_failure    every record is processed. A later record of a failed key may be
//                          processed before its predecessor ever succeeds: per-key order is
//                          lost for failed keys. Successes after L are processed again.
//   stop_on_first_failure  nothing after the first failure is processed, so order holds for
//                          every key and no success is repeated, but one poison record holds
//                          back every key of the lane.
//   skip_key_on_failure    later records of a failed key are reported failed without being
//                          processed, so a record is never processed before its predecessor:
//                          per-key order holds. Other keys go on, and their successes after L
//                          WILL be handed over again on the retry.
// When the batch's first record fails, every mode reports it, which the engine treats as a
// function error of the whole batch (bisected if that is on, S-5.3). fn throwing
// sluice::throttled throttles the whole batch (S-4.4): records processed before it in this call
// are handed over again too.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/batch.hpp"
#include "sluice/config.hpp"
#include "sluice/hash.hpp"
#include "sluice/record.hpp"

SLUICE_BEGIN_NAMESPACE

/// Process every record; report each one that fails.
struct continue_on_failure_t {
  explicit continue_on_failure_t() = default;
};
/// Report the first failed record and every record after it; do not process those.
struct stop_on_first_failure_t {
  explicit stop_on_first_failure_t() = default;
};
/// After a record fails, report later records of its partition key without processing them.
struct skip_key_on_failure_t {
  explicit skip_key_on_failure_t() = default;
};
inline constexpr continue_on_failure_t continue_on_failure{};
inline constexpr stop_on_first_failure_t stop_on_first_failure{};
inline constexpr skip_key_on_failure_t skip_key_on_failure{};

template <class M>
concept per_record_mode = std::same_as<M, continue_on_failure_t> ||
    std::same_as<M, stop_on_first_failure_t> || std::same_as<M, skip_key_on_failure_t>;

namespace detail {
/// fn(record) returns void (failure = an exception) or bool (false = failure).
template <class F, class R>
concept record_function = std::invocable<F&, const R&> &&
    (std::is_void_v<std::invoke_result_t<F&, const R&>> ||
     std::same_as<std::remove_cvref_t<std::invoke_result_t<F&, const R&>>, bool>);

/// Runs fn on one record: true when it succeeded. sluice::throttled is not a record's failure
/// but the whole batch's (S-4.4), so it propagates unchanged; any other exception fails the
/// record.
template <class F, class R>
bool process_record(F& fn, const R& r) {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<F&, const R&>>) {
      std::invoke(fn, r);
      return true;
    } else {
      return static_cast<bool>(std::invoke(fn, r));
    }
  } catch (const throttled&) {
    throw;
  } catch (...) {
    return false;
  }
}

template <class K>
std::uint64_t hash_of_key(const K& key) noexcept {
  if constexpr (partition_key_type<K>) {
    return key_hash(key);
  } else {
    return 0;  // a key type sluice cannot hash: every lookup compares keys (correct, slower)
  }
}

/// The partition keys that failed earlier in one batch, kept as (hash, index of the record that
/// failed) so nothing is copied and a lookup touches keys only on a hash match. The first few
/// live inline: the usual case, a handful of poison keys, allocates nothing.
template <class R>
class failed_keys {
 public:
  explicit failed_keys(const batch<R>& b) noexcept : batch_(b) {}

  bool empty() const noexcept { return inline_size_ == 0; }

  bool contains(const R& r) const {
    const auto& key = sluice::partition_key(r);
    const std::uint64_t hash = hash_of_key(key);
    const auto same_key = [&](const entry& e) {
      return e.hash == hash && sluice::partition_key(batch_[e.index]) == key;
    };
    if (std::any_of(inline_.begin(), inline_.begin() + inline_size_, same_key)) return true;
    auto [first, last] =
        std::equal_range(overflow_.begin(), overflow_.end(), entry{hash, 0}, by_hash);
    return std::any_of(first, last, same_key);
  }

  /// Adds the key of batch[index]; the caller has checked that it is not in the set yet.
  void insert(std::size_t index) {
    const entry e{hash_of_key(sluice::partition_key(batch_[index])), index};
    if (inline_size_ < inline_.size()) {
      inline_[inline_size_++] = e;
    } else {  // kept sorted by hash so lookups stay logarithmic when many keys fail
      overflow_.insert(std::upper_bound(overflow_.begin(), overflow_.end(), e, by_hash), e);
    }
  }

 private:
  struct entry {
    std::uint64_t hash;
    std::size_t index;
  };
  static constexpr bool by_hash(const entry& a, const entry& b) noexcept { return a.hash < b.hash; }

  const batch<R>& batch_;
  std::array<entry, 16> inline_{};
  std::size_t inline_size_ = 0;
  std::vector<entry> overflow_;
};
}  // namespace detail

/// The batch handler per_record() returns: callable with any `const sluice::batch<R>&` whose
/// records fn accepts; returns the sequence numbers of the failed records, in batch order.
template <class Fn, per_record_mode Mode>
class per_record_handler {
 public:
  using mode_type = Mode;

  explicit per_record_handler(Fn fn) noexcept(std::is_nothrow_move_constructible_v<Fn>)
      : fn_(std::move(fn)) {}

  template <stream_record R>
  batch_item_failures operator()(const batch<R>& b) {
    return run(fn_, b);
  }
  template <stream_record R>
  batch_item_failures operator()(const batch<R>& b) const {
    return run(fn_, b);
  }

 private:
  template <class F, class R>
  static batch_item_failures run(F& fn, const batch<R>& b) {
    static_assert(detail::record_function<F, R>,
                  "sluice::per_record(fn, mode): fn must be callable as fn(const R&) with one "
                  "record of the batch (through a const handler: not a mutable lambda) and return "
                  "void or bool (false = the record failed)");
    batch_item_failures failures;
    if constexpr (detail::record_function<F, R>) {
      if constexpr (std::same_as<Mode, continue_on_failure_t>) {
        for (const R& r : b) {
          if (!detail::process_record(fn, r)) failures.add(sluice::sequence_number(r));
        }
      } else if constexpr (std::same_as<Mode, stop_on_first_failure_t>) {
        std::size_t i = 0;
        while (i < b.size() && detail::process_record(fn, b[i])) ++i;
        for (; i < b.size(); ++i) failures.add(sluice::sequence_number(b[i]));
      } else {
        using key_type = std::remove_cvref_t<decltype(sluice::partition_key(b[0]))>;
        static_assert(std::equality_comparable<key_type>,
                      "sluice::skip_key_on_failure compares partition keys: the key type needs ==");
        detail::failed_keys<R> failed(b);
        for (std::size_t i = 0; i < b.size(); ++i) {
          if (!failed.empty() && failed.contains(b[i])) {
            failures.add(sluice::sequence_number(b[i]));  // its key failed earlier: keep order
          } else if (!detail::process_record(fn, b[i])) {
            failed.insert(i);
            failures.add(sluice::sequence_number(b[i]));
          }
        }
      }
    }
    return failures;
  }

  Fn fn_;
};

/// Adapts fn(const R&) -> void | bool into a batch handler that reports failed records (see the
/// header comment for what each mode does and what it costs). Use it with
/// report_batch_item_failures on: without it the report is ignored (S-4.2).
template <class Fn, class Mode>
auto per_record(Fn&& fn, Mode) {
  static_assert(per_record_mode<Mode>,
                "sluice::per_record(fn, mode): mode must be sluice::continue_on_failure, "
                "sluice::stop_on_first_failure or sluice::skip_key_on_failure");
  // After the assert, a handler of a valid mode, so that no second error follows the first.
  using mode = std::conditional_t<per_record_mode<Mode>, Mode, continue_on_failure_t>;
  return per_record_handler<std::decay_t<Fn>, mode>(std::forward<Fn>(fn));
}

SLUICE_END_NAMESPACE
