// sluice/failure.hpp: the on-failure record (S-5.7) and what an on-failure destination is.
// One on_failure_record describes one discarded batch: why, after how many attempts, the last
// error, the batch's coordinates in the stream and (beyond Lambda) the records themselves.
#pragma once

#include <concepts>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/record.hpp"

SLUICE_BEGIN_NAMESPACE

/// Why records went to the on-failure destination. The first two are Lambda's; stage_failed is
/// sluice's (beyond Lambda): a filter or transform threw on the record and the mapping was told
/// to send such records on (on_stage_error(stage_error_policy::to_destination)).
enum class failure_condition { retry_attempts_exhausted, record_age_exceeded, stage_failed };

/// The condition's spelling ("RetryAttemptsExhausted", "RecordAgeExceeded", "StageFailed").
constexpr std::string_view to_string(failure_condition c) noexcept {
  switch (c) {
    case failure_condition::retry_attempts_exhausted:
      return "RetryAttemptsExhausted";
    case failure_condition::record_age_exceeded:
      return "RecordAgeExceeded";
    default:
      return "StageFailed";
  }
}

/// How the last attempt of a discarded batch ended (S-5.7). AWS's responseContext depends on it:
/// none (no invocation was made): no responseContext; raised (the handler threw):
/// functionError "Unhandled"; returned_report (the handler returned normally, reporting item
/// failures or a malformed report): functionError null.
enum class attempt_outcome { none, raised, returned_report };

/// sluice's spelling of an attempt_outcome ("none", "raised", "returned_report").
constexpr std::string_view to_string(attempt_outcome o) noexcept {
  return o == attempt_outcome::raised            ? "raised"
         : o == attempt_outcome::returned_report ? "returned_report"
                                                 : "none";
}

template <class R>
struct on_failure_record {
  failure_condition condition{};
  /// Attempts of this batch, as AWS reports it: at least 1, also when discarded before any
  /// invocation (S-5.7).
  std::uint32_t approximate_invoke_count = 1;
  /// How the last attempt ended; none when no invocation was made.
  attempt_outcome last_attempt = attempt_outcome::none;
  /// sluice's details of the last attempt's error (not AWS fields): the demangled C++ exception
  /// type ("std::runtime_error", "sluice::throttled") or "sluice::batch_item_failures" /
  /// "sluice::invalid_batch_item_failures" for a returned report, and its message. Absent when no
  /// invocation was made. Destinations write them as sluiceErrorType / sluiceErrorMessage.
  std::optional<std::string> error_type;
  std::optional<std::string> error_message;
  std::string stream_name;
  shard_id_t shard_id = 0;
  sequence_number_t start_sequence_number = 0;
  sequence_number_t end_sequence_number = 0;
  time_point approximate_arrival_of_first_record{};
  time_point approximate_arrival_of_last_record{};
  std::size_t batch_size = 0;
  /// When the batch was discarded.
  time_point timestamp{};
  /// beyond Lambda: the records themselves, and per record whether the handler reported it
  /// failed in the last attempt.
  std::vector<R> records;
  std::vector<bool> reported_failed;
};

/// Whether AWS writes a responseContext for `rec`: only when an invocation was made and the
/// batch was not discarded by age (a RecordAgeExceeded record never has one, S-5.7).
template <class R>
constexpr bool has_response_context(const on_failure_record<R>& rec) noexcept {
  return rec.condition != failure_condition::record_age_exceeded &&
         rec.last_attempt != attempt_outcome::none;
}

/// responseContext.functionError as AWS writes it: "Unhandled" when the handler raised, null
/// (nullopt) when it returned normally. Meaningful only when has_response_context(rec).
template <class R>
constexpr std::optional<std::string_view> aws_function_error(
    const on_failure_record<R>& rec) noexcept {
  if (rec.last_attempt == attempt_outcome::raised) return std::string_view("Unhandled");
  return std::nullopt;
}

/// A destination is anything that accepts an on_failure_record: a callable, or an object with
/// deliver(). Delivery that throws is retried with back-off and blocks the lane (S-5.8).
// clang-format 14 mangles a concept whose first clause is a template-id.
// clang-format off
template <class D, class R>
concept on_failure_destination =
    std::invocable<D&, const on_failure_record<R>&> ||
    requires(D& d, const on_failure_record<R>& rec) { d.deliver(rec); };
// clang-format on

namespace detail {
template <class R, class D>
void deliver_to(D& destination, const on_failure_record<R>& rec) {
  if constexpr (requires { destination.deliver(rec); }) {
    destination.deliver(rec);
  } else {
    destination(rec);
  }
}
}  // namespace detail

/// An in-memory destination: keeps every on-failure record. Thread-safe.
template <class R>
class memory_destination {
 public:
  void deliver(const on_failure_record<R>& rec) {
    std::lock_guard lock(mutex_);
    records_.push_back(rec);
  }
  std::vector<on_failure_record<R>> records() const {
    std::lock_guard lock(mutex_);
    return records_;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return records_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<on_failure_record<R>> records_;
};

SLUICE_END_NAMESPACE
