// sluice/redis/destination.hpp: a durable on-failure destination (S-5.7, S-5.8) in Redis: a Redis
// stream (a dead-letter stream) with one entry per discarded batch, holding the S-5.7 record and
// its records. An entry is one XADD, so a record is stored whole or not at all; deliver() returns
// once Redis acknowledged it, and the mapping may then advance the checkpoint past its records.
//
// Key: <prefix>:{<name>}:failures. Fields (names as the JSON-lines destination writes them):
//   condition, approximateInvokeCount, lastAttempt, hasResponseContext, functionError (only when
//   AWS writes one), sluiceErrorType, sluiceErrorMessage (when present), streamName, shardId,
//   startSequenceNumber, endSequenceNumber, approximateArrivalOfFirstRecord (ns),
//   approximateArrivalOfLastRecord (ns), batchSize, timestamp (ns), records (count), and per
//   record i: r<i>.key, r<i>.seq, r<i>.arrival (ns), r<i>.payload, r<i>.failed (when reported).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/detail/util/validate.hpp"
#include "sluice/failure.hpp"
#include "sluice/record.hpp"
#include "sluice/redis/codec.hpp"
#include "sluice/redis/connection.hpp"

SLUICE_BEGIN_NAMESPACE
namespace redis {

namespace detail {
template <class R>
struct record_parts {
  static constexpr bool is_record = false;
  using payload_type = std::string;
  using key_type = std::string;
};
template <class Payload, class Key>
struct record_parts<sluice::record<Payload, Key>> {
  static constexpr bool is_record = true;
  using payload_type = Payload;
  using key_type = Key;
};
}  // namespace detail

/// Models sluice::on_failure_destination for R = sluice::record<Payload, Key> with a storable
/// Payload and Key. Thread-safe. A failed delivery throws sluice::redis::error; the mapping
/// retries it (S-5.8).
template <class R>
class destination {
  static_assert(detail::record_parts<R>::is_record,
                "sluice::redis::destination<R> stores R = sluice::record<Payload, Key>");
  using payload_type = typename detail::record_parts<R>::payload_type;
  using key_type = typename detail::record_parts<R>::key_type;
  static_assert(storable_payload<payload_type> && storable_key<key_type>);

 public:
  using record_type = R;

  destination(connection_options options, std::string name = "on-failure",
              const std::string& prefix = "sluice")
      : pool_(std::move(options)), key_(prefix + ":{" + checked(std::move(name)) + "}:failures") {}

  void deliver(const on_failure_record<R>& rec) {
    std::vector<std::string> cmd{"XADD", key_, "*"};
    auto add = [&cmd](std::string field, std::string value) {
      cmd.push_back(std::move(field));
      cmd.push_back(std::move(value));
    };
    add("condition", std::string(to_string(rec.condition)));
    add("approximateInvokeCount", std::to_string(rec.approximate_invoke_count));
    add("lastAttempt", std::string(to_string(rec.last_attempt)));
    add("hasResponseContext", has_response_context(rec) ? "1" : "0");
    if (has_response_context(rec)) {
      if (const auto fe = aws_function_error(rec)) add("functionError", std::string(*fe));
    }
    if (rec.error_type) add("sluiceErrorType", *rec.error_type);
    if (rec.error_message) add("sluiceErrorMessage", *rec.error_message);
    add("streamName", rec.stream_name);
    add("shardId", std::to_string(rec.shard_id));
    add("startSequenceNumber", std::to_string(rec.start_sequence_number));
    add("endSequenceNumber", std::to_string(rec.end_sequence_number));
    add("approximateArrivalOfFirstRecord",
        std::to_string(detail::to_ns(rec.approximate_arrival_of_first_record)));
    add("approximateArrivalOfLastRecord",
        std::to_string(detail::to_ns(rec.approximate_arrival_of_last_record)));
    add("batchSize", std::to_string(rec.batch_size));
    add("timestamp", std::to_string(detail::to_ns(rec.timestamp)));
    add("records", std::to_string(rec.records.size()));
    for (std::size_t i = 0; i < rec.records.size(); ++i) {
      const std::string p = "r" + std::to_string(i) + ".";
      const R& r = rec.records[i];
      add(p + "key", detail::encode(r.key));
      add(p + "seq", std::to_string(r.sequence));
      add(p + "arrival", std::to_string(detail::to_ns(r.arrival)));
      add(p + "payload", detail::encode(r.payload));
      if (i < rec.reported_failed.size()) add(p + "failed", rec.reported_failed[i] ? "1" : "0");
    }
    auto c = pool_.acquire();
    c->command(cmd);
  }

  /// On-failure records stored under this name (all processes, all runs).
  std::size_t count() const {
    auto c = pool_.acquire();
    return static_cast<std::size_t>(c->command({"XLEN", key_})->integer);
  }

  /// Every stored on-failure record, oldest first, with its records.
  std::vector<on_failure_record<R>> records() const {
    reply all;
    {
      auto c = pool_.acquire();
      all = c->command({"XRANGE", key_, "-", "+"});
    }
    std::vector<on_failure_record<R>> out;
    for (std::size_t e = 0; e < all->elements; ++e) {
      const redisReply* f = all->element[e]->element[1];
      auto get = [f](std::string_view name) -> std::optional<std::string_view> {
        for (std::size_t i = 0; i + 1 < f->elements; i += 2) {
          if (text(f->element[i]) == name) return text(f->element[i + 1]);
        }
        return std::nullopt;
      };
      auto num = [&](std::string_view name) {
        return detail::parse_number<std::int64_t>(get(name).value_or("0"));
      };
      on_failure_record<R>& rec = out.emplace_back();
      const std::string_view condition = get("condition").value_or("");
      rec.condition = condition == to_string(failure_condition::record_age_exceeded)
                          ? failure_condition::record_age_exceeded
                      : condition == to_string(failure_condition::stage_failed)
                          ? failure_condition::stage_failed
                          : failure_condition::retry_attempts_exhausted;
      rec.approximate_invoke_count = static_cast<std::uint32_t>(num("approximateInvokeCount"));
      const std::string_view last = get("lastAttempt").value_or("");
      rec.last_attempt = last == to_string(attempt_outcome::raised) ? attempt_outcome::raised
                         : last == to_string(attempt_outcome::returned_report)
                             ? attempt_outcome::returned_report
                             : attempt_outcome::none;
      if (auto t = get("sluiceErrorType")) rec.error_type = std::string(*t);
      if (auto m = get("sluiceErrorMessage")) rec.error_message = std::string(*m);
      rec.stream_name = std::string(get("streamName").value_or(""));
      rec.shard_id = static_cast<shard_id_t>(num("shardId"));
      rec.start_sequence_number =
          detail::parse_number<sequence_number_t>(get("startSequenceNumber").value_or("0"));
      rec.end_sequence_number =
          detail::parse_number<sequence_number_t>(get("endSequenceNumber").value_or("0"));
      rec.approximate_arrival_of_first_record =
          detail::from_ns(num("approximateArrivalOfFirstRecord"));
      rec.approximate_arrival_of_last_record =
          detail::from_ns(num("approximateArrivalOfLastRecord"));
      rec.batch_size = static_cast<std::size_t>(num("batchSize"));
      rec.timestamp = detail::from_ns(num("timestamp"));
      const auto n = static_cast<std::size_t>(num("records"));
      for (std::size_t i = 0; i < n; ++i) {
        const std::string p = "r" + std::to_string(i) + ".";
        rec.records.push_back(
            R{detail::decode<key_type>(get(p + "key").value_or("")),
              detail::parse_number<sequence_number_t>(get(p + "seq").value_or("0")),
              detail::from_ns(detail::parse_number<std::int64_t>(get(p + "arrival").value_or("0"))),
              detail::decode<payload_type>(get(p + "payload").value_or(""))});
        if (auto failed = get(p + "failed")) rec.reported_failed.push_back(*failed == "1");
      }
    }
    return out;
  }

  const std::string& key() const noexcept { return key_; }

 private:
  static std::string checked(std::string name) {
    if (name.empty() || name.find_first_of("{}") != std::string::npos)
      sluice::detail::reject("destination name", name, "a non-empty name without { or }");
    return name;
  }
  mutable connection_pool pool_;
  std::string key_;
};

}  // namespace redis
SLUICE_END_NAMESPACE
