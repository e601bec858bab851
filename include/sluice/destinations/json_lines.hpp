// sluice/destinations/json_lines.hpp: an on-failure destination (S-5.7, S-5.8) that appends one
// JSON object per discarded batch to a file, one per line, shaped like Lambda's Kinesis on-failure
// record plus the records themselves. deliver() returns only once the line is fsync'ed, so the
// caller may move the checkpoint past the batch as soon as it returns.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <ranges>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "sluice/config.hpp"
#include "sluice/detail/io/durable_append_file.hpp"
#include "sluice/detail/io/json_text.hpp"
#include "sluice/failure.hpp"
#include "sluice/hash.hpp"
#include "sluice/record.hpp"

SLUICE_BEGIN_NAMESPACE

struct json_lines_options {
  /// Written as requestContext.functionArn, where AWS names the function: name the consumer.
  std::string function_arn = "sluice";
  /// The mode the file is created with (exactly: the umask does not apply). An existing file
  /// keeps its mode. Dead letters hold payloads, so only the owner may read them by default.
  std::filesystem::perms file_mode =
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;
};

namespace detail {
template <class R>
concept has_payload_member = requires(const R& r) {
  r.payload;
};

/// What a serializer is given: the payload of a record that has one (sluice::record), otherwise
/// the whole record.
template <class R>
struct serializer_argument {
  using type = R;
};
template <has_payload_member R>
struct serializer_argument<R> {
  using type = std::remove_cvref_t<decltype(std::declval<const R&>().payload)>;
};

template <class R>
const auto& serializer_argument_of(const R& r) noexcept {
  if constexpr (has_payload_member<R>) {
    return r.payload;
  } else {
    return r;
  }
}

template <class C>
concept byte_like = std::same_as<C, char> || std::same_as<C, unsigned char> ||
    std::same_as<C, signed char> || std::same_as<C, char8_t> || std::same_as<C, std::byte>;

/// std::string, std::string_view, std::vector<char | unsigned char | std::byte>, and alike.
template <class P>
concept byte_sequence =
    std::ranges::contiguous_range<const P> && std::ranges::sized_range<const P> &&
    byte_like<std::remove_cv_t<std::ranges::range_value_t<const P>>>;

template <class P>
concept renders_natively = byte_sequence<P> || std::is_arithmetic_v<P>;

template <class R>
concept payload_renders_natively =
    has_payload_member<R> && renders_natively<typename serializer_argument<R>::type>;

template <byte_sequence P>
std::string_view bytes_of(const P& p) noexcept {
  return {reinterpret_cast<const char*>(std::ranges::data(p)), std::ranges::size(p)};
}

template <class K>
void append_partition_key(std::string& out, const K& key) {
  if constexpr (std::integral<K>) {
    append_quoted_number(out, key);  // Kinesis keys are strings: 42 is written "42"
  } else {
    static_assert(std::convertible_to<const K&, std::string_view>,
                  "sluice::json_lines_destination: a partition key must be string-like or an "
                  "integer to be written as partitionKey");
    if constexpr (std::convertible_to<const K&, std::string_view>)
      append_json_string(out, std::string_view(key));
  }
}

/// A UUID-shaped id (version 8, "custom", RFC 9562) from two stable hashes of `identity`.
inline std::string uuid_from(std::string_view identity) {
  std::uint64_t high = key_hash(identity);
  std::uint64_t low = key_hash(std::string("sluice/request-id/").append(identity));
  high = (high & ~0xF000ull) | 0x8000ull;      // version nibble: 8
  low = (low & ~(3ull << 62)) | (2ull << 62);  // variant bits: 10
  char text[40];
  std::snprintf(text, sizeof text, "%08llx-%04llx-%04llx-%04llx-%012llx",
                static_cast<unsigned long long>(high >> 32),
                static_cast<unsigned long long>((high >> 16) & 0xFFFF),
                static_cast<unsigned long long>(high & 0xFFFF),
                static_cast<unsigned long long>(low >> 48),
                static_cast<unsigned long long>(low & 0xFFFFFFFFFFFFull));
  return text;
}
}  // namespace detail

/// Appends one line of JSON per on-failure record to a file (created with
/// json_lines_options::file_mode, 0600 by default, if missing; an existing file keeps its mode).
/// Thread-safe. One object per file: the constructor locks the file (flock) and throws if another
/// writer holds it. The file always holds whole lines: a line torn by a crash in the middle of a
/// write is cut off when the file is opened again (its delivery never returned, so the mapping
/// delivers that batch again).
///
/// "data" is the payload as text when it is well-formed UTF-8 without control characters other
/// than tab, LF and CR, else base64 ("dataEncoding" says which). Payloads that are strings,
/// byte vectors or numbers are rendered as they are; any other payload (and any record without a
/// `payload` member) needs a serializer, whose string output follows the same text/base64 rule.
///
/// requestId is derived from the stream, shard, start and end sequence, discard timestamp and
/// condition (see request_id()): unique per discarded batch (a 128-bit non-cryptographic hash),
/// and predictable in tests. A batch discarded again after a restart (S-3.4) gets a new id, as
/// its timestamp differs: readers that must drop such duplicates key on shardId + sequenceNumber.
template <stream_record R>
class json_lines_destination {
 public:
  using record_type = R;
  /// Payload -> text for sluice::record-like types (a `payload` member), record -> text otherwise.
  using serializer_type =
      std::function<std::string(const typename detail::serializer_argument<R>::type&)>;

  /// Opens (or creates) `path` for appending. Throws std::system_error naming the path and the
  /// cause when the file cannot be opened or created, is not a regular file (a FIFO is refused
  /// at once) or is locked by another writer; sluice::configuration_error for a bad file_mode.
  explicit json_lines_destination(std::filesystem::path path, json_lines_options options = {})
      : options_(std::move(options)),
        file_(std::move(path),
              detail::checked_file_mode("json_lines_options::file_mode", options_.file_mode)) {
    static_assert(detail::has_payload_member<R>,
                  "sluice::json_lines_destination<R>: R has no `payload` member, so there is no "
                  "payload to write as \"data\"; pass a serializer (const R& -> std::string) to "
                  "the constructor");
    static_assert(!detail::has_payload_member<R> || detail::payload_renders_natively<R>,
                  "sluice::json_lines_destination<R>: the payload is neither a string, a byte "
                  "vector nor a number; pass a serializer (const Payload& -> std::string) to the "
                  "constructor");
  }

  /// As above, writing "data" from `serializer`'s output: any callable taking the payload (or
  /// the record, see serializer_type) and returning std::string. It also runs for payloads that
  /// render natively; an empty std::function falls back to native rendering where there is one.
  template <class S>
  requires(!std::same_as<std::remove_cvref_t<S>, json_lines_options>)
      json_lines_destination(std::filesystem::path path, S&& serializer,
                             json_lines_options options = {})
      : options_(std::move(options)),
        serializer_(require_serializer(std::forward<S>(serializer))),
        file_(std::move(path),
              detail::checked_file_mode("json_lines_options::file_mode", options_.file_mode)) {}

  json_lines_destination(const json_lines_destination&) = delete;
  json_lines_destination& operator=(const json_lines_destination&) = delete;

  /// Writes `rec` as one line and fsyncs it. Throws std::system_error (naming the path and the
  /// operation) if it cannot; the file then holds no part of that line, and the call may be
  /// retried. Exceptions from the serializer propagate.
  void deliver(const on_failure_record<R>& rec) {
    const std::string line = to_json_line(rec);  // rendered outside the lock: the slow part
    std::lock_guard lock(mutex_);
    file_.append(line);
  }

  /// The line deliver() writes for `rec`, including the trailing '\n'.
  std::string to_json_line(const on_failure_record<R>& rec) const {
    std::string out;
    out.reserve(640 + rec.records.size() * 160);
    out += R"({"requestContext":{"requestId":)";
    detail::append_json_string(out, request_id(rec));
    out += R"(,"functionArn":)";
    detail::append_json_string(out, options_.function_arn);
    out += R"(,"condition":)";
    detail::append_json_string(out, to_string(rec.condition));
    out += R"(,"approximateInvokeCount":)";
    detail::append_number(out, rec.approximate_invoke_count);
    out += '}';
    // As AWS writes it (S-5.7): no responseContext when no invocation was made or the batch
    // expired (RecordAgeExceeded); the invocation itself succeeded (200); functionError is
    // "Unhandled" when the handler raised, null when it returned a report.
    if (has_response_context(rec)) {
      out += R"(,"responseContext":{"statusCode":200,"executedVersion":"$LATEST",)"
             R"("functionError":)";
      if (const auto function_error = aws_function_error(rec)) {
        detail::append_json_string(out, *function_error);
      } else {
        out += "null";
      }
      out += '}';
    }
    out += R"(,"version":"1.0","timestamp":)";
    detail::append_quoted_time(out, rec.timestamp);
    append_batch_info(out, rec);
    // sluice's own details of the last attempt, in fields AWS does not write.
    if (rec.error_type) {
      out += R"(,"sluiceErrorType":)";
      detail::append_json_string(out, *rec.error_type);
    }
    if (rec.error_message) {
      out += R"(,"sluiceErrorMessage":)";
      detail::append_json_string(out, *rec.error_message);
    }
    out += R"(,"records":[)";
    for (std::size_t i = 0; i < rec.records.size(); ++i) {
      if (i != 0) out += ',';
      const bool failed = i < rec.reported_failed.size() && rec.reported_failed[i];
      append_record(out, rec.records[i], failed);
    }
    out += "]}\n";
    return out;
  }

  /// The requestId written for `rec`: a UUID-shaped hash of stream name, shard, start and end
  /// sequence, discard timestamp (ns) and condition. Deterministic, so tests can predict it.
  static std::string request_id(const on_failure_record<R>& rec) {
    std::string identity;
    for (const std::uint64_t part :
         {std::uint64_t{rec.shard_id}, rec.start_sequence_number, rec.end_sequence_number,
          static_cast<std::uint64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(rec.timestamp.time_since_epoch())
                  .count()),
          static_cast<std::uint64_t>(rec.condition)}) {
      detail::append_number(identity, part);
      identity += '\0';  // no decimal number contains it, so the fields cannot run together
    }
    identity += rec.stream_name;  // last: it may contain any byte
    return detail::uuid_from(identity);
  }

  const std::filesystem::path& path() const noexcept { return file_.path(); }

 private:
  template <class S>
  static serializer_type require_serializer(S&& serializer) {
    static_assert(std::is_convertible_v<S&&, serializer_type>,
                  "sluice::json_lines_destination<R>: the serializer must be callable as "
                  "serializer(const Payload&) when R has a `payload` member, else as "
                  "serializer(const R&), and return std::string");
    if constexpr (std::is_convertible_v<S&&, serializer_type>) {
      serializer_type converted(std::forward<S>(serializer));
      if (!converted && !detail::payload_renders_natively<R>) {
        throw std::invalid_argument(
            "sluice::json_lines_destination: the serializer is empty and the payload cannot be "
            "written without one");
      }
      return converted;
    } else {
      return {};
    }
  }

  void append_batch_info(std::string& out, const on_failure_record<R>& rec) const {
    char shard[32];
    std::snprintf(shard, sizeof shard, "shardId-%012u", static_cast<unsigned>(rec.shard_id));
    out += R"(,"KinesisBatchInfo":{"shardId":)";
    detail::append_json_string(out, shard);
    out += R"(,"startSequenceNumber":)";
    detail::append_quoted_number(out, rec.start_sequence_number);
    out += R"(,"endSequenceNumber":)";
    detail::append_quoted_number(out, rec.end_sequence_number);
    out += R"(,"approximateArrivalOfFirstRecord":)";
    detail::append_quoted_time(out, rec.approximate_arrival_of_first_record);
    out += R"(,"approximateArrivalOfLastRecord":)";
    detail::append_quoted_time(out, rec.approximate_arrival_of_last_record);
    out += R"(,"batchSize":)";
    detail::append_number(out, rec.batch_size);
    out += R"(,"streamArn":)";
    detail::append_json_string(out, rec.stream_name);
    out += '}';
  }

  void append_record(std::string& out, const R& r, bool reported_failed) const {
    out += R"({"partitionKey":)";
    const auto& key = sluice::partition_key(r);
    detail::append_partition_key<std::remove_cvref_t<decltype(key)>>(out, key);
    out += R"(,"sequenceNumber":)";
    detail::append_quoted_number(out, sluice::sequence_number(r));
    out += R"(,"approximateArrivalTimestamp":)";
    detail::append_quoted_time(out, sluice::arrival_time(r));
    out += ',';
    append_payload(out, r);
    out += reported_failed ? R"(,"reportedFailed":true})" : R"(,"reportedFailed":false})";
  }

  void append_payload(std::string& out, const R& r) const {
    if (serializer_) {
      detail::append_data(out, serializer_(detail::serializer_argument_of(r)));
    } else if constexpr (detail::payload_renders_natively<R>) {
      if constexpr (detail::byte_sequence<typename detail::serializer_argument<R>::type>) {
        detail::append_data(out, detail::bytes_of(r.payload));
      } else {
        std::string number;
        detail::append_number(number, r.payload);
        detail::append_data(out, number);
      }
    }  // else unreachable: the constructors require a serializer
  }

  json_lines_options options_;
  serializer_type serializer_;
  // Several lanes may discard batches at once. Appends must not overlap: a failed append is cut
  // back to the size it saw before writing, which would cut off another thread's fsync'ed line.
  std::mutex mutex_;
  detail::durable_append_file file_;
};

SLUICE_END_NAMESPACE
