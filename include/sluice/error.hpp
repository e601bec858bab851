// sluice/error.hpp: the errors sluice throws for a misuse that can only be seen at run time.
// configuration_error: a mapping, stream, store or option was given an invalid value; its
// message names the parameter, the value and the allowed range.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE

/// Thrown when a mapping, stream or store is built with an invalid parameter value.
class configuration_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A filter or transform threw on a record (with on_stage_error(stage_error_policy::stop), the
/// default, this stops the mapping). The original exception is nested
/// (std::rethrow_if_nested(e) rethrows it).
class stage_error : public std::runtime_error {
 public:
  stage_error(std::uint32_t shard, std::uint64_t sequence, std::string key, const std::string& what)
      : std::runtime_error(what), shard_(shard), sequence_(sequence), key_(std::move(key)) {}
  std::uint32_t shard() const noexcept { return shard_; }
  std::uint64_t sequence() const noexcept { return sequence_; }
  const std::string& key() const noexcept { return key_; }

 private:
  std::uint32_t shard_;
  std::uint64_t sequence_;
  std::string key_;
};

SLUICE_END_NAMESPACE
