// sluice/batch.hpp: what the handler receives and what it may return (S-4.1). A batch is a
// contiguous, read-only range of records of one shard, in sequence order, plus its metadata.
// Retries, bisect halves and partial-failure remainders are sub-spans of the same storage.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/record.hpp"

SLUICE_BEGIN_NAMESPACE

template <class R>
class batch {
 public:
  using value_type = R;
  using iterator = typename std::span<const R>::iterator;

  batch(std::span<const R> records, shard_id_t shard) noexcept : records_(records), shard_(shard) {}

  iterator begin() const noexcept { return records_.begin(); }
  iterator end() const noexcept { return records_.end(); }
  std::size_t size() const noexcept { return records_.size(); }
  bool empty() const noexcept { return records_.empty(); }
  const R& operator[](std::size_t i) const noexcept { return records_[i]; }
  std::span<const R> records() const noexcept { return records_; }

  shard_id_t shard_id() const noexcept { return shard_; }
  sequence_number_t first_sequence() const noexcept {
    return sluice::sequence_number(records_.front());
  }
  sequence_number_t last_sequence() const noexcept {
    return sluice::sequence_number(records_.back());
  }
  time_point first_arrival() const noexcept { return sluice::arrival_time(records_.front()); }
  time_point last_arrival() const noexcept { return sluice::arrival_time(records_.back()); }
  /// Sum of the records' payload sizes (what maximum_payload_bytes limits).
  std::size_t size_bytes() const noexcept {
    std::size_t total = 0;
    for (const R& r : records_) total += sluice::payload_size_bytes(r);
    return total;
  }

 private:
  std::span<const R> records_;
  shard_id_t shard_;
};

/// A partial batch response (S-4.3): the sequence numbers of the records that failed. Honoured
/// only when the mapping has report_batch_item_failures; an empty report is full success. An
/// identifier that is not in the batch, or 0 (the "empty identifier": no record has sequence 0),
/// fails the whole attempt.
struct batch_item_failures {
  std::vector<sequence_number_t> item_identifiers;

  batch_item_failures() = default;
  batch_item_failures(std::initializer_list<sequence_number_t> ids) : item_identifiers(ids) {}

  void add(sequence_number_t id) { item_identifiers.push_back(id); }
  bool empty() const noexcept { return item_identifiers.empty(); }
};

/// Throw this from a handler to say "the downstream is saturated, try later" (S-4.4): the batch
/// is retried after back-off without consuming a retry attempt and is never bisected.
class throttled : public std::runtime_error {
 public:
  throttled() : std::runtime_error("throttled") {}
  explicit throttled(const std::string& what) : std::runtime_error(what) {}
};

SLUICE_END_NAMESPACE
