// sluice: the operator's command-line tool for sluice's files (docs/operations.md).
//
//   sluice status <file> [--stream NAME] [--json]
//   sluice dead-letters list|count <file> [--destination NAME] [--json]
//   sluice dead-letters show <file> <id> [--json]
//   sluice dead-letters redrive <file> (<id>... | --all) [--destination NAME]
//                               [--stream-file FILE] [--progress]
//   sluice dead-letters purge <file> (<id>... | --all | --redriven) [--destination NAME] --yes
//   sluice checkpoints show <file> [--mapping NAME] [--json]
//   sluice checkpoints reset <file> --mapping NAME --to POSITION [--shard N] [--stream NAME]
//                            [--stream-file FILE] --yes
//
// <file> is a SQLite file of sluice::sqlite (stream, checkpoints, destination tables), or for
// dead-letters list|count|show a JSON-lines file of sluice::json_lines_destination. The tool
// works on the tables themselves (keys and payloads are copied as stored), so it needs no
// knowledge of the program's C++ types.
//
// Exit codes: 0 done; 1 an operation failed (missing file, not a sluice file, schema version,
// SQLite error); 2 wrong usage (unknown command or option, bad value); 3 refused or not found
// (purge without --yes, an id that does not exist, a reset beyond the stream).
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sluice/detail/io/base64.hpp"
#include "sluice/detail/io/json_text.hpp"
#include "sluice/sqlite/checkpoint_store.hpp"
#include "sluice/sqlite/database.hpp"
#include "sluice/sqlite/destination.hpp"
#include "sluice/sqlite/detail/stream_tables.hpp"

namespace {

namespace sq = sluice::sqlite;
using sluice::detail::append_json_string;

constexpr int exit_failed = 1;
constexpr int exit_usage = 2;
constexpr int exit_refused = 3;

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct refused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --- arguments -----------------------------------------------------------------------------------

const char* const top_help = R"(usage: sluice <command> [arguments] [--help]

Inspect and repair the files of sluice mappings (SQLite stream, checkpoints, dead letters).

commands:
  status <file>                       per mapping and shard: checkpoint, last sequence, lag,
                                      age of the oldest unprocessed record, dead letters
  dead-letters list|count <file>      the on-failure records of a SQLite or JSON-lines file
  dead-letters show <file> <id>       one on-failure record with its records
  dead-letters redrive <file> <id>... put the records back into their stream
  dead-letters purge <file> <id>...   delete on-failure records (needs --yes)
  checkpoints show <file>             the stored checkpoints
  checkpoints reset <file> ...        move a stopped mapping's checkpoints

exit codes: 0 done, 1 failed (file, schema, SQLite), 2 wrong usage, 3 refused or not found.
Run sluice <command> --help for a command's options.
)";

const std::map<std::string, std::string, std::less<>> command_help = {
    {"status", R"(usage: sluice status <file> [--stream NAME] [--checkpoints FILE]
                     [--dead-letters FILE] [--json]

For every stream in <file> and every mapping with checkpoints, per shard: the checkpoint
(highest finished sequence), the stream's last sequence, lag (last - checkpoint), the age of the
oldest record not yet behind the checkpoint, and the dead letters of that shard.
  --stream NAME          only this stream
  --checkpoints FILE     the checkpoints' file, when it is not <file>
  --dead-letters FILE    the dead letters' file, when it is not <file>
  --json                 one JSON object: {"file":..., "rows":[{...}, ...]}
)"},
    {"dead-letters list", R"(usage: sluice dead-letters list <file> [--destination NAME] [--json]

Lists the on-failure records (dead letters), oldest first: id, destination, condition, stream,
shard, sequence range, records, error, when discarded, and whether it was redriven. <file> is a
SQLite file or a JSON-lines file (ids are then line numbers).
  --destination NAME  only this destination's records (SQLite files may hold several)
  --json              a JSON array
)"},
    {"dead-letters count", R"(usage: sluice dead-letters count <file> [--destination NAME]

Prints how many on-failure records <file> holds (SQLite or JSON lines).
)"},
    {"dead-letters show", R"(usage: sluice dead-letters show <file> <id> [--json]

Shows one on-failure record with its records: key, sequence number, arrival, payload (as text
when it is readable text, else base64).
)"},
    {"dead-letters redrive",
     R"(usage: sluice dead-letters redrive <file> (<id>... | --all) [--destination NAME]
                               [--stream-file FILE] [--progress]

Puts the records of the chosen dead letters back into their source stream: same keys, same
payloads, same shard, new sequence numbers and arrival time now. Each dead letter is redriven in
one transaction and marked redriven (table sluice_redrives), never deleted; one already redriven
is skipped. A running mapping picks the records up like any new record.
  --all               every dead letter not yet redriven
  --destination NAME  only this destination's records
  --stream-file FILE  the stream's file, when it is not <file>
  --progress          a progress bar on stderr (default when stderr is a terminal)
)"},
    {"dead-letters purge",
     R"(usage: sluice dead-letters purge <file> (<id>... | --all | --redriven) [--destination NAME] --yes

Deletes on-failure records and their records for good. Without --yes it only says what it would
delete and exits with 3.
  --redriven  the dead letters already redriven
)"},
    {"checkpoints show", R"(usage: sluice checkpoints show <file> [--mapping NAME] [--json]

Lists the stored checkpoints: mapping, shard, sequence number.
)"},
    {"checkpoints reset",
     R"(usage: sluice checkpoints reset <file> --mapping NAME --to POSITION [--shard N]
                               [--stream NAME] [--stream-file FILE] --yes

Moves a mapping's checkpoints, backwards or forwards, so that it resumes reading after them.
Stop the mapping first: a running mapping would overwrite them (sluice has no leases yet to
detect one). POSITION:
  trim_horizon         the oldest record the stream still holds
  latest               after the last record: skip everything stored so far
  at_timestamp:T       the first record that arrived at or after T (ISO 8601 UTC such as
                       2026-11-28T08:00:00Z, or Unix milliseconds)
  sequence:N           after sequence number N (N at most the shard's last sequence)
  --shard N            only this shard (default: every shard of the stream)
  --stream NAME        the stream (needed when the file holds several)
  --stream-file FILE   the stream's file, when it is not <file>
  --yes                needed: the mapping will skip or reprocess records
)"},
};

struct args {
  std::vector<std::string> positional;
  std::map<std::string, std::string, std::less<>> options;  // --name value
  std::map<std::string, bool, std::less<>> flags;           // --name
  std::string command;

  bool flag(std::string_view name) const { return flags.count(name) > 0; }
  /// The option's value (owned by this object, so SQLite may bind it without a copy), or null.
  const std::string* option(std::string_view name) const {
    auto it = options.find(name);
    return it == options.end() ? nullptr : &it->second;
  }
};

args parse(const std::string& command, int argc, char** argv, int first,
           std::initializer_list<std::string_view> value_options,
           std::initializer_list<std::string_view> flag_options) {
  args a;
  a.command = command;
  for (int i = first; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      a.positional.push_back(arg);
      continue;
    }
    if (arg == "--help") {
      a.flags["--help"] = true;
      continue;
    }
    if (std::find(value_options.begin(), value_options.end(), arg) != value_options.end()) {
      if (i + 1 >= argc) throw usage_error(arg + " needs a value");
      a.options[arg] = argv[++i];
    } else if (std::find(flag_options.begin(), flag_options.end(), arg) != flag_options.end()) {
      a.flags[arg] = true;
    } else {
      throw usage_error("unknown option " + arg + " for sluice " + command);
    }
  }
  return a;
}

std::uint64_t parse_number(std::string_view what, std::string_view text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty())
    throw usage_error(std::string(what) + " must be a non-negative integer, not \"" +
                      std::string(text) + "\"");
  return v;
}

// --- files ---------------------------------------------------------------------------------------

bool is_json_lines(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return false;
  char c = 0;
  while (in.get(c)) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    return c == '{';
  }
  const auto ext = file.extension();
  return ext == ".jsonl" || ext == ".json" || ext == ".ndjson";  // empty: by its name
}

/// Opens an existing sluice SQLite file (never creates one).
sq::database open_file(const std::string& file) {
  if (!std::filesystem::exists(file)) throw std::runtime_error("'" + file + "': no such file");
  sq::open_options o;
  o.create = false;
  return sq::database(file, o);
}

/// Whether the file has a component's tables at the version this tool reads; a file of another
/// version is an error.
bool has_component(sq::database& db, std::string_view component, int version) {
  const int found = db.schema_version(component);
  if (found == 0) return false;
  // Checkpoints 2 only added sluice_windows: this tool reads and resets version 1 files too.
  if (component == "checkpoints" && found >= 1 && found <= version) return true;
  if (found != version) {
    throw std::runtime_error("'" + db.file() + "' holds schema version " + std::to_string(found) +
                             " of sluice's " + std::string(component) +
                             " tables; this sluice tool reads version " + std::to_string(version));
  }
  return true;
}

void need_component(sq::database& db, std::string_view component, int version,
                    std::string_view what) {
  if (!has_component(db, component, version)) {
    throw std::runtime_error("'" + db.file() + "' has no " + std::string(what) + " (no sluice " +
                             std::string(component) + " tables)");
  }
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string iso_time(std::int64_t ns) {
  std::string out;
  sluice::detail::append_iso8601(out, sq::detail::from_ns(ns));
  return out;
}

std::string duration_text(std::int64_t ms) {
  char text[64];
  if (ms < 1000) {
    std::snprintf(text, sizeof text, "%lldms", static_cast<long long>(ms));
  } else if (ms < 120000) {
    std::snprintf(text, sizeof text, "%.1fs", static_cast<double>(ms) / 1000);
  } else if (ms < 7200000) {
    std::snprintf(text, sizeof text, "%.1fm", static_cast<double>(ms) / 60000);
  } else {
    std::snprintf(text, sizeof text, "%.1fh", static_cast<double>(ms) / 3600000);
  }
  return text;
}

/// A column's value as text for people: numbers as numbers, text and blobs as text when they are
/// readable, else base64 (prefixed "base64:").
std::string value_text(const sq::statement& s, int i) {
  switch (sqlite3_column_type(s.handle(), i)) {
    case SQLITE_NULL:
      return "NULL";
    case SQLITE_INTEGER:
      return std::to_string(s.column_int64(i));
    case SQLITE_FLOAT: {
      std::string out;
      sluice::detail::append_number(out, sqlite3_column_double(s.handle(), i));
      return out;
    }
    default: {
      const std::string_view bytes = s.column_blob(i);
      if (sluice::detail::is_plain_text(bytes)) return std::string(bytes);
      std::string out = "base64:";
      sluice::detail::append_base64(out, bytes);
      return out;
    }
  }
}

/// A column's value as JSON: numbers as numbers, readable text as a string, other bytes as
/// {"base64":"..."}.
void append_value_json(std::string& out, const sq::statement& s, int i) {
  switch (sqlite3_column_type(s.handle(), i)) {
    case SQLITE_NULL:
      out += "null";
      return;
    case SQLITE_INTEGER:
      sluice::detail::append_number(out, s.column_int64(i));
      return;
    case SQLITE_FLOAT:
      sluice::detail::append_number(out, sqlite3_column_double(s.handle(), i));
      return;
    default: {
      const std::string_view bytes = s.column_blob(i);
      if (sluice::detail::is_plain_text(bytes)) {
        append_json_string(out, bytes);
      } else {
        out += R"({"base64":")";
        sluice::detail::append_base64(out, bytes);
        out += "\"}";
      }
    }
  }
}

/// Prints rows as an aligned table.
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  auto line = [&](const std::vector<std::string>& row) {
    std::string out;
    for (std::size_t c = 0; c < row.size(); ++c) {
      out += row[c];
      if (c + 1 < row.size()) out.append(width[c] - row[c].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
}

// --- status --------------------------------------------------------------------------------------

struct stream_info {
  std::int64_t id;
  std::string name;
  std::uint32_t shards;
};

std::vector<stream_info> streams_of(sq::database& db, const std::string* only) {
  std::vector<stream_info> out;
  sq::statement s = db.prepare("SELECT stream_id, name, shards FROM sluice_streams ORDER BY name");
  while (s.step()) {
    stream_info info{s.column_int64(0), std::string(s.column_text(1)),
                     static_cast<std::uint32_t>(s.column_int64(2))};
    if (!only || *only == info.name) out.push_back(info);
  }
  if (only && out.empty()) throw refused("'" + db.file() + "' has no stream named '" + *only + "'");
  return out;
}

std::int64_t last_seq(sq::database& db, std::int64_t stream, std::uint32_t shard) {
  sq::statement s = db.prepare(sq::detail::last_seq_sql);
  s.bind_int64(1, stream).bind_int64(2, shard);
  return s.step() ? s.column_int64(0) : 0;
}

/// With option `name` FILE: checks FILE holds `component` and attaches it as `schema`; returns
/// the table prefix ("<schema>.") or "" when the option is not given.
std::string attach_if_given(sq::database& db, const args& a, std::string_view name,
                            const std::string& schema, std::string_view component, int version,
                            std::string_view what) {
  const std::string* file = a.option(name);
  if (file == nullptr) return "";
  {
    sq::database check = open_file(*file);
    need_component(check, component, version, what);
  }
  sq::statement attach = db.prepare("ATTACH DATABASE ?1 AS " + schema);
  attach.bind_text(1, *file);
  attach.step();
  return schema + ".";
}

int status(const args& a) {
  if (a.positional.size() != 1) throw usage_error("sluice status takes one <file>");
  sq::database db = open_file(a.positional[0]);
  need_component(db, "stream", sq::stream_schema_version, "stream");
  // Checkpoints and dead letters: in the stream's file, or in files of their own (attached).
  const std::string cp = attach_if_given(db, a, "--checkpoints", "cp", "checkpoints",
                                         sq::checkpoint_schema_version, "checkpoints");
  const std::string dl = attach_if_given(db, a, "--dead-letters", "dl", "destination",
                                         sq::destination_schema_version, "dead letters");
  const bool checkpoints =
      !cp.empty() || has_component(db, "checkpoints", sq::checkpoint_schema_version);
  const bool failures =
      !dl.empty() || has_component(db, "destination", sq::destination_schema_version);
  const std::int64_t now = now_ns();

  struct row {
    std::string stream, mapping;
    std::uint32_t shard;
    std::optional<std::int64_t> checkpoint;
    std::int64_t last, lag, age_ms;
    std::optional<std::int64_t> dead;
  };
  std::vector<row> rows;
  for (const stream_info& st : streams_of(db, a.option("--stream"))) {
    std::vector<std::string> mappings;
    if (checkpoints) {
      sq::statement s =
          db.prepare("SELECT DISTINCT mapping FROM " + cp + "sluice_checkpoints ORDER BY 1");
      while (s.step()) mappings.emplace_back(s.column_text(0));
    }
    if (mappings.empty()) mappings.emplace_back();  // the stream alone: no mapping checkpointed
    for (const std::string& mapping : mappings) {
      for (std::uint32_t shard = 0; shard < st.shards; ++shard) {
        row r{st.name, mapping, shard,       std::nullopt, last_seq(db, st.id, shard),
              0,       0,       std::nullopt};
        if (!mapping.empty()) {
          sq::statement s = db.prepare("SELECT seq FROM " + cp +
                                       "sluice_checkpoints WHERE mapping = ?1 AND shard = ?2");
          s.bind_text(1, mapping).bind_int64(2, shard);
          if (s.step()) r.checkpoint = s.column_int64(0);
        }
        const std::int64_t from = r.checkpoint.value_or(0);
        r.lag = std::max<std::int64_t>(0, r.last - from);
        sq::statement oldest = db.prepare(
            "SELECT arrival_ns FROM sluice_records WHERE stream_id = ?1 AND shard = ?2 AND "
            "seq > ?3 ORDER BY seq LIMIT 1");
        oldest.bind_int64(1, st.id).bind_int64(2, shard).bind_int64(3, from);
        if (oldest.step())
          r.age_ms = std::max<std::int64_t>(0, (now - oldest.column_int64(0)) / 1000000);
        if (failures) {
          sq::statement d = db.prepare("SELECT count(*) FROM " + dl +
                                       "sluice_failures WHERE stream_name = ?1 AND shard = ?2");
          d.bind_text(1, st.name).bind_int64(2, shard);
          d.step();
          r.dead = d.column_int64(0);
        }
        rows.push_back(r);
      }
    }
  }
  if (a.flag("--json")) {
    std::string out = R"({"file":)";
    append_json_string(out, a.positional[0]);
    out += R"(,"rows":[)";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const row& r = rows[i];
      if (i) out += ',';
      out += R"({"stream":)";
      append_json_string(out, r.stream);
      out += R"(,"mapping":)";
      if (r.mapping.empty())
        out += "null";
      else
        append_json_string(out, r.mapping);
      out += R"(,"shard":)" + std::to_string(r.shard) + R"(,"checkpoint":)" +
             (r.checkpoint ? std::to_string(*r.checkpoint) : "null") + R"(,"last_sequence":)" +
             std::to_string(r.last) + R"(,"lag":)" + std::to_string(r.lag) +
             R"(,"oldest_unprocessed_age_ms":)" + std::to_string(r.age_ms) + R"(,"dead_letters":)" +
             (r.dead ? std::to_string(*r.dead) : "null") + "}";
    }
    out += "]}\n";
    std::cout << out;
    return 0;
  }
  std::vector<std::vector<std::string>> table;
  for (const row& r : rows) {
    table.push_back({r.stream, r.mapping.empty() ? "-" : r.mapping, std::to_string(r.shard),
                     r.checkpoint ? std::to_string(*r.checkpoint) : "-", std::to_string(r.last),
                     std::to_string(r.lag), r.lag > 0 ? duration_text(r.age_ms) : "-",
                     r.dead ? std::to_string(*r.dead) : "-"});
  }
  print_table({"STREAM", "MAPPING", "SHARD", "CHECKPOINT", "LAST_SEQ", "LAG", "OLDEST_UNPROCESSED",
               "DEAD_LETTERS"},
              table);
  return 0;
}

// --- JSON lines (read side) ----------------------------------------------------------------------

/// A small JSON reader for the on-failure lines sluice writes (objects, arrays, strings, numbers,
/// true, false, null).
struct json {
  std::variant<std::nullptr_t, bool, double, std::string, std::vector<json>,
               std::vector<std::pair<std::string, json>>>
      v;
  const json* get(std::string_view key) const {
    if (const auto* o = std::get_if<std::vector<std::pair<std::string, json>>>(&v)) {
      for (const auto& [k, value] : *o)
        if (k == key) return &value;
    }
    return nullptr;
  }
  std::string str() const {
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    if (const auto* d = std::get_if<double>(&v)) {
      std::string out;
      sluice::detail::append_number(out, *d);
      return out;
    }
    if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
    return "";
  }
};

class json_parser {
 public:
  explicit json_parser(std::string_view text) : t_(text) {}
  json parse() {
    json j = value();
    skip();
    if (i_ != t_.size()) fail("text after the value");
    return j;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("not valid JSON (" + what + " at byte " + std::to_string(i_) + ")");
  }
  void skip() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\r' || t_[i_] == '\n'))
      ++i_;
  }
  bool take(std::string_view word) {
    if (t_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  json value() {
    skip();
    if (i_ >= t_.size()) fail("end of text");
    const char c = t_[i_];
    if (c == '{') {
      ++i_;
      std::vector<std::pair<std::string, json>> o;
      skip();
      if (take("}")) return {std::move(o)};
      while (true) {
        skip();
        if (i_ >= t_.size() || t_[i_] != '"') fail("expected a key");
        std::string key = string();
        skip();
        if (!take(":")) fail("expected ':'");
        o.emplace_back(std::move(key), value());
        skip();
        if (take("}")) return {std::move(o)};
        if (!take(",")) fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++i_;
      std::vector<json> a;
      skip();
      if (take("]")) return {std::move(a)};
      while (true) {
        a.push_back(value());
        skip();
        if (take("]")) return {std::move(a)};
        if (!take(",")) fail("expected ',' or ']'");
      }
    }
    if (c == '"') return {string()};
    if (take("true")) return {true};
    if (take("false")) return {false};
    if (take("null")) return {nullptr};
    double d = 0;
    const auto [end, ec] = std::from_chars(t_.data() + i_, t_.data() + t_.size(), d);
    if (ec != std::errc()) fail("unexpected character");
    i_ = static_cast<std::size_t>(end - t_.data());
    return {d};
  }
  std::string string() {
    ++i_;  // '"'
    std::string out;
    while (i_ < t_.size() && t_[i_] != '"') {
      char c = t_[i_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= t_.size()) fail("unterminated escape");
      c = t_[i_++];
      if (const int plain = sluice::detail::json_unescaped(c); plain >= 0) {
        out += static_cast<char>(plain);
        continue;
      }
      switch (c) {
        case 'u': {
          if (i_ + 4 > t_.size()) fail("short \\u escape");
          unsigned cp = 0;
          std::from_chars(t_.data() + i_, t_.data() + i_ + 4, cp, 16);
          i_ += 4;
          if (cp >= 0xD800 && cp <= 0xDBFF && t_.substr(i_, 2) == "\\u" && i_ + 6 <= t_.size()) {
            unsigned lo = 0;
            std::from_chars(t_.data() + i_ + 2, t_.data() + i_ + 6, lo, 16);
            i_ += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          sluice::detail::append_utf8(out, cp);
          break;
        }
        default:
          out += c;  // an invalid escape, kept as written
      }
    }
    if (!take("\"")) fail("unterminated string");
    return out;
  }

  std::string_view t_;
  std::size_t i_ = 0;
};

/// The lines of a JSON-lines dead-letter file: (line number, parsed object).
std::vector<std::pair<std::size_t, json>> read_json_lines(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("'" + file + "': cannot open");
  std::vector<std::pair<std::size_t, json>> out;
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.emplace_back(n, json_parser(line).parse());
    } catch (const std::exception& e) {
      throw std::runtime_error("'" + file + "' line " + std::to_string(n) + ": " + e.what());
    }
  }
  return out;
}

std::string field(const json& j, std::initializer_list<std::string_view> path) {
  const json* at = &j;
  for (std::string_view key : path) {
    at = at->get(key);
    if (at == nullptr) return "";
  }
  return at->str();
}

int json_lines_dead_letters(const args& a, const std::string& verb) {
  const std::string& file = a.positional[0];
  const auto lines = read_json_lines(file);
  if (verb == "count") {
    std::cout << lines.size() << "\n";
    return 0;
  }
  if (verb == "list") {
    if (a.flag("--json")) {
      std::string out = "[";
      for (std::size_t i = 0; i < lines.size(); ++i) {
        const json& j = lines[i].second;
        if (i) out += ',';
        out += R"({"id":)" + std::to_string(lines[i].first) + R"(,"condition":)";
        append_json_string(out, field(j, {"requestContext", "condition"}));
        out += R"(,"stream":)";
        append_json_string(out, field(j, {"KinesisBatchInfo", "streamArn"}));
        out += R"(,"shard":)";
        append_json_string(out, field(j, {"KinesisBatchInfo", "shardId"}));
        out += R"(,"start_sequence":)" + field(j, {"KinesisBatchInfo", "startSequenceNumber"}) +
               R"(,"end_sequence":)" + field(j, {"KinesisBatchInfo", "endSequenceNumber"}) +
               R"(,"records":)" + field(j, {"KinesisBatchInfo", "batchSize"}) + R"(,"error":)";
        append_json_string(out,
                           field(j, {"sluiceErrorType"}) + ": " + field(j, {"sluiceErrorMessage"}));
        out += R"(,"discarded_at":)";
        append_json_string(out, field(j, {"timestamp"}));
        out += "}";
      }
      std::cout << out << "]\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& [n, j] : lines) {
      rows.push_back({std::to_string(n), field(j, {"requestContext", "condition"}),
                      field(j, {"KinesisBatchInfo", "streamArn"}),
                      field(j, {"KinesisBatchInfo", "shardId"}),
                      field(j, {"KinesisBatchInfo", "startSequenceNumber"}) + "-" +
                          field(j, {"KinesisBatchInfo", "endSequenceNumber"}),
                      field(j, {"KinesisBatchInfo", "batchSize"}),
                      field(j, {"sluiceErrorType"}) + ": " + field(j, {"sluiceErrorMessage"}),
                      field(j, {"timestamp"})});
    }
    print_table(
        {"LINE", "CONDITION", "STREAM", "SHARD", "SEQUENCES", "RECORDS", "ERROR", "DISCARDED_AT"},
        rows);
    return 0;
  }
  // show
  if (a.positional.size() != 2) throw usage_error("sluice dead-letters show takes <file> <id>");
  const std::uint64_t id = parse_number("<id>", a.positional[1]);
  for (const auto& [n, j] : lines) {
    if (n != id) continue;
    std::ifstream in(file, std::ios::binary);
    std::string line;
    for (std::size_t k = 1; k <= n; ++k) std::getline(in, line);
    if (a.flag("--json")) {
      std::cout << line << "\n";
      return 0;
    }
    std::cout << "line " << n << ": " << field(j, {"requestContext", "condition"}) << " after "
              << field(j, {"requestContext", "approximateInvokeCount"}) << " attempt(s), at "
              << field(j, {"timestamp"}) << "\n"
              << "stream " << field(j, {"KinesisBatchInfo", "streamArn"}) << ", "
              << field(j, {"KinesisBatchInfo", "shardId"}) << ", sequences "
              << field(j, {"KinesisBatchInfo", "startSequenceNumber"}) << "-"
              << field(j, {"KinesisBatchInfo", "endSequenceNumber"}) << "\n"
              << "error: " << field(j, {"sluiceErrorType"}) << ": "
              << field(j, {"sluiceErrorMessage"}) << "\n";
    std::vector<std::vector<std::string>> rows;
    if (const json* recs = j.get("records")) {
      if (const auto* list = std::get_if<std::vector<json>>(&recs->v)) {
        for (const json& r : *list) {
          const std::string encoding = field(r, {"dataEncoding"});
          rows.push_back({field(r, {"sequenceNumber"}), field(r, {"partitionKey"}),
                          field(r, {"approximateArrivalTimestamp"}), field(r, {"reportedFailed"}),
                          (encoding == "base64" ? "base64:" : "") + field(r, {"data"})});
        }
      }
    }
    print_table({"SEQ", "KEY", "ARRIVAL", "REPORTED_FAILED", "PAYLOAD"}, rows);
    return 0;
  }
  throw refused("'" + file + "' has no dead letter on line " + std::to_string(id));
}

// --- dead letters (SQLite) -----------------------------------------------------------------------

constexpr int redrive_schema_version = 1;
const std::string redrive_schema = R"sql(
CREATE TABLE sluice_redrives(failure_id INTEGER PRIMARY KEY, redriven_ns INTEGER NOT NULL,
  stream_name TEXT NOT NULL, shard INTEGER NOT NULL, first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL, records INTEGER NOT NULL);
)sql";

struct failure_row {
  std::int64_t id;
  std::string destination, condition, stream;
  std::int64_t shard, start, end, batch_size, timestamp_ns, invoke_count;
  std::string error_type, error_message;
  std::optional<std::string> redriven;  // "shard 1 seq 5-8 at ..." when redriven
};

std::vector<failure_row> failures_of(sq::database& db, const args& a,
                                     const std::vector<std::int64_t>& ids = {}) {
  const bool redrives = has_component(db, "redrive", redrive_schema_version);
  std::string sql =
      "SELECT f.failure_id, f.destination, f.condition, f.stream_name, f.shard, f.start_seq, "
      "f.end_seq, f.batch_size, f.timestamp_ns, f.approximate_invoke_count, "
      "coalesce(f.sluice_error_type, ''), coalesce(f.sluice_error_message, '')";
  sql += redrives ? ", r.redriven_ns, r.first_seq, r.last_seq FROM sluice_failures f LEFT JOIN "
                    "sluice_redrives r ON r.failure_id = f.failure_id"
                  : ", NULL, NULL, NULL FROM sluice_failures f";
  sql += " WHERE (?1 IS NULL OR f.destination = ?1) ORDER BY f.failure_id";
  sq::statement s = db.prepare(sql);
  if (auto d = a.option("--destination")) s.bind_text(1, *d);
  std::vector<failure_row> out;
  while (s.step()) {
    failure_row f{s.column_int64(0),
                  std::string(s.column_text(1)),
                  std::string(s.column_text(2)),
                  std::string(s.column_text(3)),
                  s.column_int64(4),
                  s.column_int64(5),
                  s.column_int64(6),
                  s.column_int64(7),
                  s.column_int64(8),
                  s.column_int64(9),
                  std::string(s.column_text(10)),
                  std::string(s.column_text(11)),
                  std::nullopt};
    if (!s.column_is_null(12)) {
      f.redriven = "seq " + std::to_string(s.column_int64(13)) + "-" +
                   std::to_string(s.column_int64(14)) + " at " + iso_time(s.column_int64(12));
    }
    if (ids.empty() || std::find(ids.begin(), ids.end(), f.id) != ids.end()) out.push_back(f);
  }
  for (std::int64_t id : ids) {
    if (std::none_of(out.begin(), out.end(), [&](const failure_row& f) { return f.id == id; }))
      throw refused("'" + db.file() + "' has no dead letter with id " + std::to_string(id) +
                    (a.option("--destination")
                         ? " in destination '" + *a.option("--destination") + "'"
                         : std::string()));
  }
  return out;
}

std::vector<std::int64_t> ids_of(const args& a, std::size_t first) {
  std::vector<std::int64_t> ids;
  for (std::size_t i = first; i < a.positional.size(); ++i)
    ids.push_back(static_cast<std::int64_t>(parse_number("<id>", a.positional[i])));
  return ids;
}

std::string error_text(const failure_row& f) {
  if (f.error_type.empty() && f.error_message.empty()) return "-";
  return f.error_type + ": " + f.error_message;
}

int list_dead_letters(sq::database& db, const args& a) {
  const auto rows = failures_of(db, a);
  if (a.flag("--json")) {
    std::string out = "[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const failure_row& f = rows[i];
      if (i) out += ',';
      out += R"({"id":)" + std::to_string(f.id) + R"(,"destination":)";
      append_json_string(out, f.destination);
      out += R"(,"condition":)";
      append_json_string(out, f.condition);
      out += R"(,"stream":)";
      append_json_string(out, f.stream);
      out += R"(,"shard":)" + std::to_string(f.shard) + R"(,"start_sequence":)" +
             std::to_string(f.start) + R"(,"end_sequence":)" + std::to_string(f.end) +
             R"(,"records":)" + std::to_string(f.batch_size) + R"(,"attempts":)" +
             std::to_string(f.invoke_count) + R"(,"error_type":)";
      append_json_string(out, f.error_type);
      out += R"(,"error_message":)";
      append_json_string(out, f.error_message);
      out += R"(,"discarded_at":)";
      append_json_string(out, iso_time(f.timestamp_ns));
      out += R"(,"redriven":)";
      if (f.redriven)
        append_json_string(out, *f.redriven);
      else
        out += "null";
      out += "}";
    }
    std::cout << out << "]\n";
    return 0;
  }
  std::vector<std::vector<std::string>> table;
  for (const failure_row& f : rows) {
    table.push_back({std::to_string(f.id), f.destination, f.condition, f.stream,
                     std::to_string(f.shard), std::to_string(f.start) + "-" + std::to_string(f.end),
                     std::to_string(f.batch_size), error_text(f), iso_time(f.timestamp_ns),
                     f.redriven ? *f.redriven : "-"});
  }
  print_table({"ID", "DESTINATION", "CONDITION", "STREAM", "SHARD", "SEQUENCES", "RECORDS", "ERROR",
               "DISCARDED_AT", "REDRIVEN"},
              table);
  return 0;
}

int show_dead_letter(sq::database& db, const args& a) {
  if (a.positional.size() != 2) throw usage_error("sluice dead-letters show takes <file> <id>");
  const auto rows = failures_of(db, a, ids_of(a, 1));
  const failure_row& f = rows.front();
  sq::statement r = db.prepare(
      "SELECT seq, partition_key, arrival_ns, payload, reported_failed FROM "
      "sluice_failure_records WHERE failure_id = ?1 ORDER BY position");
  r.bind_int64(1, f.id);
  if (a.flag("--json")) {
    std::string out = R"({"id":)" + std::to_string(f.id) + R"(,"destination":)";
    append_json_string(out, f.destination);
    out += R"(,"condition":)";
    append_json_string(out, f.condition);
    out += R"(,"stream":)";
    append_json_string(out, f.stream);
    out += R"(,"shard":)" + std::to_string(f.shard) + R"(,"attempts":)" +
           std::to_string(f.invoke_count) + R"(,"error_type":)";
    append_json_string(out, f.error_type);
    out += R"(,"error_message":)";
    append_json_string(out, f.error_message);
    out += R"(,"discarded_at":)";
    append_json_string(out, iso_time(f.timestamp_ns));
    out += R"(,"records":[)";
    for (bool first = true; r.step(); first = false) {
      if (!first) out += ',';
      out += R"({"sequence":)" + std::to_string(r.column_int64(0)) + R"(,"key":)";
      append_value_json(out, r, 1);
      out += R"(,"arrival":)";
      append_json_string(out, iso_time(r.column_int64(2)));
      out += R"(,"payload":)";
      append_value_json(out, r, 3);
      out += R"(,"reported_failed":)";
      out += r.column_is_null(4) ? "null" : r.column_int64(4) != 0 ? "true" : "false";
      out += "}";
    }
    std::cout << out << "]}\n";
    return 0;
  }
  std::cout << "dead letter " << f.id << " (destination " << f.destination << "): " << f.condition
            << " after " << f.invoke_count << " attempt(s), discarded at "
            << iso_time(f.timestamp_ns) << "\n"
            << "stream " << f.stream << ", shard " << f.shard << ", sequences " << f.start << "-"
            << f.end << " (" << f.batch_size << " records)\n"
            << "error: " << error_text(f) << "\n"
            << "redriven: " << (f.redriven ? *f.redriven : "no") << "\n";
  std::vector<std::vector<std::string>> table;
  while (r.step()) {
    table.push_back({std::to_string(r.column_int64(0)), value_text(r, 1),
                     iso_time(r.column_int64(2)),
                     r.column_is_null(4)      ? "-"
                     : r.column_int64(4) != 0 ? "yes"
                                              : "no",
                     value_text(r, 3)});
  }
  print_table({"SEQ", "KEY", "ARRIVAL", "REPORTED_FAILED", "PAYLOAD"}, table);
  return 0;
}

void draw_progress(bool show, std::size_t done, std::size_t total, std::int64_t records) {
  if (!show) return;
  constexpr std::size_t width = 30;
  const std::size_t filled = total == 0 ? width : done * width / total;
  std::fprintf(stderr, "\rredrive [%s%s] %zu/%zu dead letters, %lld records",
               std::string(filled, '#').c_str(), std::string(width - filled, ' ').c_str(), done,
               total, static_cast<long long>(records));
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

/// The stream's tables: in this file (returns ""), or in the file --stream-file names, attached
/// as "stream" (returns "stream."). Fails with a clear error when neither holds a stream.
std::string stream_tables(sq::database& db, const args& a) {
  if (auto stream_file = a.option("--stream-file")) {
    sq::database check = open_file(*stream_file);
    need_component(check, "stream", sq::stream_schema_version, "stream");
    sq::statement attach = db.prepare("ATTACH DATABASE ?1 AS stream");
    attach.bind_text(1, *stream_file);
    attach.step();
    return "stream.";
  }
  need_component(db, "stream", sq::stream_schema_version,
                 "stream (give the stream's file with --stream-file)");
  return "";
}

int redrive(sq::database& db, const args& a) {
  const std::vector<std::int64_t> ids = ids_of(a, 1);
  if (ids.empty() == !a.flag("--all"))
    throw usage_error("sluice dead-letters redrive takes either <id>... or --all");
  std::vector<failure_row> chosen = failures_of(db, a, ids);
  const std::string prefix = stream_tables(db, a);
  db.require_schema("redrive", redrive_schema_version, redrive_schema);
  const bool progress = a.flag("--progress") || isatty(2) != 0;
  std::size_t done = 0, redriven = 0, skipped = 0;
  std::int64_t records = 0;
  std::vector<std::string> report;
  for (const failure_row& f : chosen) {
    if (f.redriven) {
      ++skipped;
      report.push_back("dead letter " + std::to_string(f.id) + ": already redriven (" +
                       *f.redriven + "), skipped");
      draw_progress(progress, ++done, chosen.size(), records);
      continue;
    }
    sq::transaction tx(db);
    sq::statement st =
        db.prepare("SELECT stream_id, shards FROM " + prefix + "sluice_streams WHERE name = ?1");
    st.bind_text(1, f.stream);
    if (!st.step())
      throw std::runtime_error("dead letter " + std::to_string(f.id) + ": stream '" + f.stream +
                               "' is not in the stream file");
    const std::int64_t stream_id = st.column_int64(0);
    if (f.shard >= st.column_int64(1))
      throw std::runtime_error("dead letter " + std::to_string(f.id) + ": stream '" + f.stream +
                               "' has no shard " + std::to_string(f.shard));
    sq::statement recs = db.prepare(
        "SELECT partition_key, payload FROM sluice_failure_records WHERE failure_id = ?1 "
        "ORDER BY position");
    recs.bind_int64(1, f.id);
    // The stream's own statements (stream_tables.hpp): a gap-free counter bump, then the insert.
    std::string bump(sq::detail::bump_sql), insert(sq::detail::insert_sql);
    if (!prefix.empty()) {
      auto qualify = [&](std::string& sql, std::string_view table) {
        for (auto at = sql.find(table); at != std::string::npos;
             at = sql.find(table, at + prefix.size() + table.size()))
          sql.insert(at, prefix);
      };
      qualify(bump, "sluice_shards");
      qualify(insert, "sluice_records");
    }
    sq::statement b = db.prepare(bump), ins = db.prepare(insert);
    const std::int64_t arrival = now_ns();
    std::int64_t first = 0, last = 0, n = 0;
    while (recs.step()) {
      b.bind_int64(1, stream_id).bind_int64(2, f.shard).bind_int64(3, arrival);
      if (!b.step()) throw std::runtime_error("stream '" + f.stream + "': shard row missing");
      last = b.column_int64(0);
      const std::int64_t at = b.column_int64(1);
      b.reset();
      if (first == 0) first = last;
      ins.bind_int64(1, stream_id).bind_int64(2, f.shard).bind_int64(3, last).bind_int64(4, at);
      sqlite3_bind_value(ins.handle(), 5, sqlite3_column_value(recs.handle(), 0));
      sqlite3_bind_value(ins.handle(), 6, sqlite3_column_value(recs.handle(), 1));
      ins.step();
      ins.reset();
      ++n;
    }
    sq::statement mark = db.prepare(
        "INSERT INTO sluice_redrives(failure_id, redriven_ns, stream_name, shard, first_seq, "
        "last_seq, records) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    mark.bind_int64(1, f.id).bind_int64(2, arrival).bind_text(3, f.stream).bind_int64(4, f.shard);
    mark.bind_int64(5, first).bind_int64(6, last).bind_int64(7, n);
    mark.step();
    tx.commit();
    ++redriven;
    records += n;
    report.push_back("dead letter " + std::to_string(f.id) + ": " + std::to_string(n) +
                     " record(s) -> stream " + f.stream + " shard " + std::to_string(f.shard) +
                     " sequences " + std::to_string(first) + "-" + std::to_string(last));
    draw_progress(progress, ++done, chosen.size(), records);
  }
  for (const std::string& line : report) std::cout << line << "\n";
  std::cout << "redrove " << redriven << " dead letter(s), " << records << " record(s); skipped "
            << skipped << "\n";
  return 0;
}

int purge(sq::database& db, const args& a) {
  const std::vector<std::int64_t> ids = ids_of(a, 1);
  const int choices =
      (ids.empty() ? 0 : 1) + (a.flag("--all") ? 1 : 0) + (a.flag("--redriven") ? 1 : 0);
  if (choices != 1)
    throw usage_error("sluice dead-letters purge takes one of <id>..., --all or --redriven");
  std::vector<failure_row> chosen = failures_of(db, a, ids);
  if (a.flag("--redriven")) {
    std::erase_if(chosen, [](const failure_row& f) { return !f.redriven; });
  }
  std::int64_t records = 0;
  for (const failure_row& f : chosen) records += f.batch_size;
  if (!a.flag("--yes")) {
    std::cout << "would delete " << chosen.size() << " dead letter(s) with " << records
              << " record(s); run again with --yes to delete them\n";
    throw refused("not deleted without --yes");
  }
  sq::transaction tx(db);
  const bool redrives = has_component(db, "redrive", redrive_schema_version);
  for (const failure_row& f : chosen) {
    for (const char* sql : {"DELETE FROM sluice_failure_records WHERE failure_id = ?1",
                            "DELETE FROM sluice_failures WHERE failure_id = ?1"}) {
      sq::statement s = db.prepare(sql);
      s.bind_int64(1, f.id);
      s.step();
    }
    if (redrives) {
      sq::statement s = db.prepare("DELETE FROM sluice_redrives WHERE failure_id = ?1");
      s.bind_int64(1, f.id);
      s.step();
    }
  }
  tx.commit();
  std::cout << "deleted " << chosen.size() << " dead letter(s) with " << records << " record(s)\n";
  return 0;
}

int dead_letters(const std::string& verb, const args& a) {
  if (a.positional.empty()) throw usage_error("sluice dead-letters " + verb + " needs a <file>");
  const std::string& file = a.positional[0];
  if (!std::filesystem::exists(file)) throw std::runtime_error("'" + file + "': no such file");
  if (is_json_lines(file)) {
    if (verb == "redrive" || verb == "purge")
      throw usage_error("dead-letters " + verb +
                        " works on SQLite destinations; a JSON-lines file is append-only (read "
                        "it with list/show, move it aside to start a new one)");
    if (verb != "show" && a.positional.size() != 1)
      throw usage_error("sluice dead-letters " + verb + " takes one <file>");
    return json_lines_dead_letters(a, verb);
  }
  sq::database db = open_file(file);
  need_component(db, "destination", sq::destination_schema_version, "dead letters");
  if (verb == "count") {
    if (a.positional.size() != 1) throw usage_error("sluice dead-letters count takes one <file>");
    std::cout << failures_of(db, a).size() << "\n";
    return 0;
  }
  if (verb == "list") {
    if (a.positional.size() != 1) throw usage_error("sluice dead-letters list takes one <file>");
    return list_dead_letters(db, a);
  }
  if (verb == "show") return show_dead_letter(db, a);
  if (verb == "redrive") return redrive(db, a);
  return purge(db, a);
}

// --- checkpoints ---------------------------------------------------------------------------------

int show_checkpoints(const args& a) {
  if (a.positional.size() != 1) throw usage_error("sluice checkpoints show takes one <file>");
  sq::database db = open_file(a.positional[0]);
  need_component(db, "checkpoints", sq::checkpoint_schema_version, "checkpoints");
  sq::statement s = db.prepare(
      "SELECT mapping, shard, seq FROM sluice_checkpoints WHERE ?1 IS NULL OR mapping = ?1 "
      "ORDER BY mapping, shard");
  if (auto m = a.option("--mapping")) s.bind_text(1, *m);
  std::vector<std::vector<std::string>> rows;
  std::string json = "[";
  while (s.step()) {
    rows.push_back({std::string(s.column_text(0)), std::to_string(s.column_int64(1)),
                    std::to_string(s.column_int64(2))});
    if (json.size() > 1) json += ',';
    json += R"({"mapping":)";
    append_json_string(json, s.column_text(0));
    json += R"(,"shard":)" + std::to_string(s.column_int64(1)) + R"(,"sequence":)" +
            std::to_string(s.column_int64(2)) + "}";
  }
  if (a.flag("--json")) {
    std::cout << json << "]\n";
  } else {
    print_table({"MAPPING", "SHARD", "CHECKPOINT"}, rows);
  }
  return 0;
}

/// T as nanoseconds since the epoch: ISO 8601 UTC (2026-11-28T08:00:00Z, optional .fff) or
/// Unix milliseconds.
std::int64_t parse_time(const std::string& t) {
  if (!t.empty() && t.find_first_not_of("0123456789") == std::string::npos)
    return static_cast<std::int64_t>(parse_number("at_timestamp", t)) * 1000000;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, ms = 0;
  char frac[16] = {0};
  const int n =
      std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%15s", &y, &mo, &d, &h, &mi, &s, frac);
  const std::string rest = n == 7 ? frac : "";
  if (n < 6 ||
      (n == 7 && rest != "Z" && !(rest.size() >= 3 && rest[0] == '.' && rest.back() == 'Z')))
    throw usage_error("at_timestamp: \"" + t +
                      "\" is neither ISO 8601 UTC (2026-11-28T08:00:00Z) nor Unix milliseconds");
  if (rest.size() > 2) ms = std::stoi((rest.substr(1, rest.size() - 2) + "000").substr(0, 3));
  using namespace std::chrono;
  const sys_days day = year{y} / month{static_cast<unsigned>(mo)} / static_cast<unsigned>(d);
  const auto tp = day + hours{h} + minutes{mi} + seconds{s} + milliseconds{ms};
  return duration_cast<nanoseconds>(tp.time_since_epoch()).count();
}

int reset_checkpoints(const args& a) {
  if (a.positional.size() != 1) throw usage_error("sluice checkpoints reset takes one <file>");
  const auto mapping = a.option("--mapping");
  const auto to = a.option("--to");
  if (!mapping) throw usage_error("sluice checkpoints reset needs --mapping NAME");
  if (!to) throw usage_error("sluice checkpoints reset needs --to POSITION");
  std::string kind = *to, value;
  if (const auto colon = to->find(':'); colon != std::string::npos) {
    kind = to->substr(0, colon);
    value = to->substr(colon + 1);
  }
  if (!((kind == "trim_horizon" || kind == "latest") && value.empty()) &&
      !((kind == "at_timestamp" || kind == "sequence") && !value.empty()))
    throw usage_error("--to " + *to +
                      ": expected trim_horizon, latest, at_timestamp:T or sequence:N");
  sq::database db = open_file(a.positional[0]);
  need_component(db, "checkpoints", sq::checkpoint_schema_version, "checkpoints");
  const std::string prefix = stream_tables(db, a);
  std::vector<stream_info> streams;
  {
    sq::statement s = db.prepare("SELECT stream_id, name, shards FROM " + prefix +
                                 "sluice_streams ORDER BY name");
    while (s.step()) {
      stream_info info{s.column_int64(0), std::string(s.column_text(1)),
                       static_cast<std::uint32_t>(s.column_int64(2))};
      if (!a.option("--stream") || *a.option("--stream") == info.name) streams.push_back(info);
    }
  }
  if (streams.empty()) throw refused("no such stream in the file");
  if (streams.size() > 1)
    throw usage_error("the file holds several streams; choose one with --stream NAME");
  const stream_info& st = streams.front();
  std::vector<std::uint32_t> shards;
  if (auto shard = a.option("--shard")) {
    const auto n = parse_number("--shard", *shard);
    if (n >= st.shards)
      throw usage_error("--shard " + *shard + ": stream '" + st.name + "' has shards 0.." +
                        std::to_string(st.shards - 1));
    shards.push_back(static_cast<std::uint32_t>(n));
  } else {
    for (std::uint32_t i = 0; i < st.shards; ++i) shards.push_back(i);
  }
  if (!a.flag("--yes")) {
    std::cout << "would move the checkpoints of mapping " << *mapping << " on " << shards.size()
              << " shard(s) of stream " << st.name << " to " << *to
              << "; stop the mapping first, then run again with --yes\n";
    throw refused("not reset without --yes");
  }
  sq::transaction tx(db);
  std::vector<std::vector<std::string>> rows;
  for (std::uint32_t shard : shards) {
    auto scalar = [&](const std::string& sql, std::int64_t arg) -> std::optional<std::int64_t> {
      sq::statement s = db.prepare(sql);
      s.bind_int64(1, st.id).bind_int64(2, shard).bind_int64(3, arg);
      if (!s.step() || s.column_is_null(0)) return std::nullopt;
      return s.column_int64(0);
    };
    const std::int64_t last =
        scalar("SELECT last_seq FROM " + prefix +
                   "sluice_shards WHERE stream_id = ?1 AND shard = ?2 AND ?3 = ?3",
               0)
            .value_or(0);
    std::int64_t target = last;
    if (kind == "trim_horizon") {
      // Before the oldest record still held; with none held, everything is behind us.
      target = scalar("SELECT min(seq) - 1 FROM " + prefix +
                          "sluice_records WHERE stream_id = ?1 AND shard = ?2 AND ?3 = ?3",
                      0)
                   .value_or(last);
    } else if (kind == "at_timestamp") {
      target = scalar("SELECT min(seq) - 1 FROM " + prefix +
                          "sluice_records WHERE stream_id = ?1 AND shard = ?2 AND arrival_ns >= ?3",
                      parse_time(value))
                   .value_or(last);
    } else if (kind == "sequence") {
      target = static_cast<std::int64_t>(parse_number("sequence", value));
      if (target > last)
        throw refused("sequence " + value + " is beyond shard " + std::to_string(shard) +
                      "'s last sequence " + std::to_string(last));
    }
    std::optional<std::int64_t> before;
    {
      sq::statement s =
          db.prepare("SELECT seq FROM sluice_checkpoints WHERE mapping = ?1 AND shard = ?2");
      s.bind_text(1, *mapping).bind_int64(2, shard);
      if (s.step()) before = s.column_int64(0);
    }
    // Not the store's save(): that never moves backwards. This is the explicit rewind.
    sq::statement w = db.prepare(
        "INSERT INTO sluice_checkpoints(mapping, shard, seq) VALUES(?1, ?2, ?3) "
        "ON CONFLICT(mapping, shard) DO UPDATE SET seq = excluded.seq");
    w.bind_text(1, *mapping).bind_int64(2, shard).bind_int64(3, target);
    w.step();
    // A tumbling window's state (S-7) belongs to the old position: the rewind drops it.
    if (db.schema_version("checkpoints") >= 2) {
      sq::statement drop =
          db.prepare("DELETE FROM sluice_windows WHERE mapping = ?1 AND shard = ?2");
      drop.bind_text(1, *mapping).bind_int64(2, shard);
      drop.step();
    }
    rows.push_back({*mapping, std::to_string(shard), before ? std::to_string(*before) : "-",
                    std::to_string(target), std::to_string(last - target)});
  }
  tx.commit();
  print_table({"MAPPING", "SHARD", "WAS", "NOW", "LAG"}, rows);
  return 0;
}

// --- main ----------------------------------------------------------------------------------------

int run(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h") {
    std::cout << top_help;
    return argc < 2 ? exit_usage : 0;
  }
  const std::string command = argv[1];
  if (command == "status") {
    args a =
        parse("status", argc, argv, 2, {"--stream", "--checkpoints", "--dead-letters"}, {"--json"});
    if (a.flag("--help")) return std::cout << command_help.at("status"), 0;
    return status(a);
  }
  if (command == "dead-letters" || command == "checkpoints") {
    if (argc < 3 || std::string_view(argv[2]) == "--help") {
      for (const auto& [name, text] : command_help)
        if (name.rfind(command + " ", 0) == 0) std::cout << text << "\n";
      return argc < 3 ? exit_usage : 0;
    }
    const std::string verb = argv[2];
    const std::string full = command + " " + verb;
    if (command_help.count(full) == 0)
      throw usage_error("unknown command: sluice " + full + " (see sluice " + command + " --help)");
    args a = parse(full, argc, argv, 3,
                   {"--destination", "--stream-file", "--mapping", "--to", "--shard", "--stream"},
                   {"--json", "--all", "--yes", "--redriven", "--progress"});
    if (a.flag("--help")) return std::cout << command_help.at(full), 0;
    if (command == "dead-letters") return dead_letters(verb, a);
    if (verb == "show") return show_checkpoints(a);
    return reset_checkpoints(a);
  }
  throw usage_error("unknown command: " + command + " (see sluice --help)");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const usage_error& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return exit_usage;
  } catch (const refused& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return exit_refused;
  } catch (const std::exception& e) {
    std::cerr << "sluice: error: " << e.what() << "\n";
    return exit_failed;
  }
}
