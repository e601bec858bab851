// End-to-end tests of the sluice command-line tool (tools/sluice_cli.cpp): each test writes real
// SQLite files with sluice::sqlite (a stream, checkpoints, dead letters from a mapping whose
// handler rejects poison records), runs the installed-to-be binary on them, and checks its
// output, its exit code and what it did to the files (redriven records processed by the next run,
// checkpoints moved, dead letters purged).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sluice/destinations/json_lines.hpp"
#include "sluice/sluice.hpp"
#include "sluice/sqlite/checkpoint_store.hpp"
#include "sluice/sqlite/destination.hpp"
#include "sluice/sqlite/stream.hpp"
#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

namespace {

using R = sluice::record<std::string>;
using sluice_test::run_result;

class Cli : public ::testing::Test {
 protected:
  sluice_test::temp_dir dir;
  std::string db = (dir / "orders.db").string();

  run_result cli(std::vector<std::string> args) {
    args.insert(args.begin(), SLUICE_CLI);
    return sluice_test::run(args, dir.path());
  }

  sluice::sqlite::stream_options options() {
    sluice::sqlite::stream_options o;
    o.name = "orders";
    o.shards = 2;
    return o;
  }

  /// Writes 20 orders (keys customer-0..3); payloads "bad-*" are poison: the handler throws on
  /// them, so their batches (size 1) go to the dead-letter destination "orders-dlq". Returns the
  /// payloads the handler accepted.
  std::vector<std::string> run_mapping(bool reject_poison, int orders = 20) {
    sluice::sqlite::stream<std::string> stream(db, options());
    for (int i = 0; i < orders; ++i) {
      const std::string payload = (i == 5 || i == 12 ? "bad-" : "order-") + std::to_string(i);
      stream.put("customer-" + std::to_string(i % 4), payload);
    }
    return consume(stream, reject_poison);
  }

  std::vector<std::string> consume(sluice::sqlite::stream<std::string>& stream,
                                   bool reject_poison) {
    sluice::sqlite::destination<R> dead(db, "orders-dlq");
    sluice::manual_clock clock(sluice::time_point{} + std::chrono::hours(24),
                               sluice::manual_clock::auto_advance);
    std::vector<std::string> seen;
    (void)sluice::run(sluice::from(stream) | sluice::batching(sluice::batch_size(1)) |
                          sluice::retry(sluice::maximum_retry_attempts(1)) |
                          sluice::on_failure(dead) | sluice::invoke([&](const sluice::batch<R>& b) {
                            for (const R& r : b) {
                              if (reject_poison && r.payload.rfind("bad-", 0) == 0)
                                throw std::invalid_argument("unparsable order " + r.payload);
                              seen.push_back(r.payload);
                            }
                          }),
                      sluice::mapping_name("ledger"), sluice::with_clock(clock));
    return seen;
  }
};

TEST_F(Cli, StatusShowsCheckpointLagAndDeadLettersPerShard) {
  run_mapping(true);
  {  // five more orders, not consumed: lag
    sluice::sqlite::stream<std::string> stream(db, options());
    for (int i = 0; i < 5; ++i) stream.put("customer-0", "late-" + std::to_string(i));
  }
  const run_result r = cli({"status", db, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  sluice::sqlite::stream<std::string> stream(db, options());
  sluice::sqlite::checkpoint_store store(db);
  const auto shard0 = sluice::shard_for(sluice::key_hash(std::string("customer-0")), 2);
  // What the files say, computed with the library, must be what the tool prints.
  std::string expected = R"({"file":")" + db + R"(","rows":[)";
  for (sluice::shard_id_t shard = 0; shard < 2; ++shard) {
    const auto last = stream.last_sequence(shard);
    const auto cp = store.load("ledger", shard).value();
    EXPECT_EQ(last - cp, shard == shard0 ? 5u : 0u);
    if (shard) expected += ",";
    expected += R"({"stream":"orders","mapping":"ledger","shard":)" + std::to_string(shard) +
                R"(,"checkpoint":)" + std::to_string(cp) + R"(,"last_sequence":)" +
                std::to_string(last) + R"(,"lag":)" + std::to_string(last - cp);
    // Dead letters of this shard: the destination's records with this shard id.
    sluice::sqlite::destination<R> dead(db, "orders-dlq");
    std::size_t n = 0;
    for (const auto& rec : dead.records()) n += rec.shard_id == shard ? 1 : 0;
    const std::string row_tail = R"(,"dead_letters":)" + std::to_string(n) + "}";
    const auto at = r.out.find(R"("shard":)" + std::to_string(shard) + ",");
    ASSERT_NE(at, std::string::npos) << r.out;
    const auto end = r.out.find('}', at);
    EXPECT_EQ(r.out.substr(end - row_tail.size() + 1, row_tail.size()), row_tail) << r.out;
    const auto age_at = r.out.find("\"oldest_unprocessed_age_ms\":", at);
    expected += r.out.substr(age_at - 1, end - age_at + 2);
  }
  expected += "]}\n";
  EXPECT_EQ(r.out, expected);

  const run_result table = cli({"status", db});
  ASSERT_EQ(table.exit_code, 0);
  EXPECT_EQ(table.out.substr(0, table.out.find('\n')),
            "STREAM  MAPPING  SHARD  CHECKPOINT  LAST_SEQ  LAG  OLDEST_UNPROCESSED  DEAD_LETTERS");
}

// As examples/order_ledger.cpp keeps them: stream, checkpoints and dead letters in three files.
TEST_F(Cli, StatusReadsCheckpointsAndDeadLettersFromTheirOwnFiles) {
  const std::string cp = (dir / "cp.db").string(), dl = (dir / "dl.db").string();
  {
    sluice::sqlite::stream<std::string> stream(db, options());
    for (int i = 0; i < 6; ++i) stream.put("customer-1", "order-" + std::to_string(i));
    sluice::sqlite::checkpoint_store store(cp);
    const auto shard = sluice::shard_for(sluice::key_hash(std::string("customer-1")), 2);
    store.save("ledger", shard, 4);
    sluice::sqlite::destination<R> dead(dl, "dlq");
    sluice::on_failure_record<R> rec;
    rec.stream_name = "orders";
    rec.shard_id = shard;
    rec.start_sequence_number = rec.end_sequence_number = 3;
    rec.batch_size = 1;
    dead.deliver(rec);
  }
  const run_result r = cli({"status", db, "--checkpoints", cp, "--dead-letters", dl, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto shard = sluice::shard_for(sluice::key_hash(std::string("customer-1")), 2);
  EXPECT_NE(r.out.find(R"({"stream":"orders","mapping":"ledger","shard":)" + std::to_string(shard) +
                       R"(,"checkpoint":4,"last_sequence":6,"lag":2,)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(R"("dead_letters":1})"), std::string::npos) << r.out;
  // The other shard has no checkpoint: its lag is everything it holds (none).
  EXPECT_NE(r.out.find(R"("shard":)" + std::to_string(1 - shard) +
                       R"(,"checkpoint":null,"last_sequence":0,"lag":0,)"),
            std::string::npos)
      << r.out;
  const run_result wrong = cli({"status", db, "--checkpoints", dl});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_EQ(wrong.err,
            "sluice: error: '" + dl + "' has no checkpoints (no sluice checkpoints tables)\n");
}

TEST_F(Cli, DeadLettersListShowCount) {
  run_mapping(true);
  run_result r = cli({"dead-letters", "count", db});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2\n");
  r = cli({"dead-letters", "list", db, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(R"({"id":1,"destination":"orders-dlq","condition":"RetryAttemptsExhausted",)"
                       R"("stream":"orders",)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(R"("records":1,"attempts":2,"error_type":"std::invalid_argument",)"
                       R"("error_message":"unparsable order bad-5")"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(R"("error_message":"unparsable order bad-12")"), std::string::npos);
  EXPECT_NE(r.out.find(R"("redriven":null)"), std::string::npos);

  r = cli({"dead-letters", "show", db, "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("dead letter 2 (destination orders-dlq): RetryAttemptsExhausted after 2 "
                       "attempt(s)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("error: std::invalid_argument: unparsable order bad-12\n"),
            std::string::npos);
  EXPECT_NE(r.out.find("customer-0"), std::string::npos);  // key 12 % 4
  EXPECT_NE(r.out.find("bad-12\n"), std::string::npos);    // the payload, as text

  r = cli({"dead-letters", "show", db, "2", "--json"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find(R"("key":"customer-0")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("payload":"bad-12","reported_failed":false})"), std::string::npos);

  r = cli({"dead-letters", "show", db, "9"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "sluice: '" + db + "' has no dead letter with id 9\n");
}

TEST_F(Cli, RedriveFeedsTheRecordsBackAndTheNextRunProcessesThem) {
  EXPECT_EQ(run_mapping(true).size(), 18u);
  const run_result r = cli({"dead-letters", "redrive", db, "--all", "--progress"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // 20 records over 2 shards: each redriven record gets the next sequence of its shard.
  sluice::sqlite::stream<std::string> stream(db, options());
  const auto shard_of = [](int i) {
    return sluice::shard_for(sluice::key_hash("customer-" + std::to_string(i % 4)), 2);
  };
  EXPECT_NE(r.out.find("dead letter 1: 1 record(s) -> stream orders shard " +
                       std::to_string(shard_of(5)) + " sequences "),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("redrove 2 dead letter(s), 2 record(s); skipped 0\n"), std::string::npos);
  EXPECT_NE(r.err.find("] 2/2 dead letters, 2 records\n"), std::string::npos) << r.err;

  // The redriven entries are marked, not deleted; a second redrive skips them.
  run_result again = cli({"dead-letters", "redrive", db, "1"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("dead letter 1: already redriven"), std::string::npos);
  EXPECT_EQ(cli({"dead-letters", "count", db}).out, "2\n");
  EXPECT_NE(cli({"dead-letters", "list", db}).out.find(" at "), std::string::npos);

  // The fixed handler (no longer rejecting) resumes from its checkpoints: only the two
  // redriven records are new, with their original keys and payloads.
  const auto seen = consume(stream, false);
  EXPECT_EQ(seen, (std::vector<std::string>{shard_of(5) == 0 ? "bad-5" : "bad-12",
                                            shard_of(5) == 0 ? "bad-12" : "bad-5"}));
  sluice::sqlite::destination<R> dead(db, "orders-dlq");
  EXPECT_EQ(dead.count(), 2u);
}

TEST_F(Cli, RedriveIntoAStreamInAnotherFile) {
  const std::string dl = (dir / "dl.db").string();
  const auto shard = sluice::shard_for(sluice::key_hash(std::string("customer-9")), 2);
  {
    sluice::sqlite::stream<std::string> stream(db, options());
    stream.put("customer-9", "first");
    sluice::sqlite::destination<R> dead(dl, "dlq");
    sluice::on_failure_record<R> rec;
    rec.stream_name = "orders";
    rec.shard_id = shard;
    rec.start_sequence_number = rec.end_sequence_number = 1;
    rec.batch_size = 1;
    rec.records.push_back(R{"customer-9", 1, sluice::time_point{}, "first"});
    dead.deliver(rec);
  }
  run_result r = cli({"dead-letters", "redrive", dl, "--all"});
  EXPECT_EQ(r.exit_code, 1);  // the stream is not in the dead letters' file
  EXPECT_EQ(r.err, "sluice: error: '" + dl +
                       "' has no stream (give the stream's file with --stream-file) (no sluice "
                       "stream tables)\n");
  r = cli({"dead-letters", "redrive", dl, "--all", "--stream-file", db});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "dead letter 1: 1 record(s) -> stream orders shard " + std::to_string(shard) +
                       " sequences 2-2\nredrove 1 dead letter(s), 1 record(s); skipped 0\n");
  sluice::sqlite::stream<std::string> stream(db, options());
  std::vector<R> read;
  stream.read(shard, 1, 10, [&](const R& rec) {
    read.push_back(rec);
    return true;
  });
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].key, "customer-9");
  EXPECT_EQ(read[0].payload, "first");
  EXPECT_EQ(read[0].sequence, 2u);
}

TEST_F(Cli, PurgeNeedsYesAndDeletes) {
  run_mapping(true);
  run_result r = cli({"dead-letters", "purge", db, "1"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out,
            "would delete 1 dead letter(s) with 1 record(s); run again with --yes to "
            "delete them\n");
  EXPECT_EQ(cli({"dead-letters", "count", db}).out, "2\n");
  r = cli({"dead-letters", "purge", db, "1", "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deleted 1 dead letter(s) with 1 record(s)\n");
  sluice::sqlite::destination<R> dead(db, "orders-dlq");
  ASSERT_EQ(dead.count(), 1u);
  EXPECT_EQ(dead.records()[0].records[0].payload, "bad-12");
}

TEST_F(Cli, CheckpointsShowAndResetMoveWhereTheMappingResumes) {
  run_mapping(false);
  run_result r = cli({"checkpoints", "show", db, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  sluice::sqlite::stream<std::string> stream(db, options());
  const auto last0 = stream.last_sequence(0), last1 = stream.last_sequence(1);
  EXPECT_EQ(r.out, R"([{"mapping":"ledger","shard":0,"sequence":)" + std::to_string(last0) +
                       R"(},{"mapping":"ledger","shard":1,"sequence":)" + std::to_string(last1) +
                       "}]\n");

  r = cli({"checkpoints", "reset", db, "--mapping", "ledger", "--to", "trim_horizon"});
  EXPECT_EQ(r.exit_code, 3);  // no --yes
  r = cli({"checkpoints", "reset", db, "--mapping", "ledger", "--to", "sequence:2", "--shard", "0",
           "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "MAPPING  SHARD  WAS  NOW  LAG\nledger   0      " + std::to_string(last0) +
                       std::string(4 - std::to_string(last0).size() + 1, ' ') + "2    " +
                       std::to_string(last0 - 2) + "\n");
  sluice::sqlite::checkpoint_store store(db);
  EXPECT_EQ(store.load("ledger", 0), 2u);  // moved backwards: the explicit rewind
  // The mapping resumes after sequence 2 of shard 0: it sees shard 0's records 3.. again.
  EXPECT_EQ(consume(stream, false).size(), last0 - 2);

  r = cli({"checkpoints", "reset", db, "--mapping", "ledger", "--to", "trim_horizon", "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(store.load("ledger", 0), 0u);
  EXPECT_EQ(store.load("ledger", 1), 0u);
  r = cli({"checkpoints", "reset", db, "--mapping", "ledger", "--to", "latest", "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(store.load("ledger", 1), last1);
  EXPECT_TRUE(consume(stream, false).empty());
  // at_timestamp: records arrive with the wall clock; one far in the future is after them all.
  r = cli({"checkpoints", "reset", db, "--mapping", "ledger", "--to",
           "at_timestamp:1970-01-01T00:00:00Z", "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(store.load("ledger", 0), 0u);
  r = cli({"checkpoints", "reset", db, "--mapping", "ledger", "--to", "at_timestamp:4102444800000",
           "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(store.load("ledger", 0), last0);

  r = cli({"checkpoints", "reset", db, "--mapping", "ledger", "--to", "sequence:999", "--yes"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("is beyond shard 0's last sequence"), std::string::npos) << r.err;
}

// The tool runs while the program has the file open, as docs/embedded.md opens it: stream,
// checkpoint store and destination on one file in one process. The program's connections must
// keep working (and see the tool's writes) after the tool has opened and closed the file.
TEST_F(Cli, WorksWhileTheProgramHoldsTheFileOpen) {
  sluice::sqlite::stream<std::string> stream(db, options());
  sluice::sqlite::checkpoint_store store(db);
  sluice::sqlite::destination<R> dead(db, "orders-dlq");
  for (int i = 0; i < 10; ++i) stream.put("k" + std::to_string(i), "v" + std::to_string(i));
  store.save("ledger", 0, 1);
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(cli({"status", db}).exit_code, 0);
    ASSERT_EQ(cli({"checkpoints", "reset", db, "--mapping", "ledger", "--to", "latest", "--yes"})
                  .exit_code,
              0);
    EXPECT_EQ(store.load("ledger", 0), stream.last_sequence(0)) << "round " << round;
    stream.put("k0", "more");
    EXPECT_EQ(dead.count(), 0u);
  }
}

TEST_F(Cli, JsonLinesDeadLettersCanBeListedAndShown) {
  const std::string jsonl = (dir / "dead.jsonl").string();
  {
    sluice::json_lines_destination<R> dead(jsonl);
    sluice::on_failure_record<R> rec;
    rec.condition = sluice::failure_condition::retry_attempts_exhausted;
    rec.stream_name = "orders";
    rec.shard_id = 1;
    rec.start_sequence_number = rec.end_sequence_number = 7;
    rec.batch_size = 1;
    rec.error_type = "std::runtime_error";
    rec.error_message = "boom";
    rec.records.push_back(R{"customer-\"1\"", 7, sluice::time_point{}, "payload \xe2\x82\xac"});
    rec.reported_failed.push_back(false);
    dead.deliver(rec);
    dead.deliver(rec);
  }
  EXPECT_EQ(cli({"dead-letters", "count", jsonl}).out, "2\n");
  run_result r = cli({"dead-letters", "list", jsonl});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("RetryAttemptsExhausted  orders  shardId-000000000001  7-7        1        "
                       "std::runtime_error: boom"),
            std::string::npos)
      << r.out;
  r = cli({"dead-letters", "show", jsonl, "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("customer-\"1\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("payload \xe2\x82\xac"), std::string::npos) << r.out;
  r = cli({"dead-letters", "redrive", jsonl, "--all"});
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(Cli, ClearErrorsAndExitCodes) {
  run_result r = cli({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("usage: sluice <command>"), std::string::npos);
  r = cli({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const std::vector<std::string>& cmd : {std::vector<std::string>{"status"},
                                              {"dead-letters", "list"},
                                              {"dead-letters", "show"},
                                              {"dead-letters", "count"},
                                              {"dead-letters", "redrive"},
                                              {"dead-letters", "purge"},
                                              {"checkpoints", "show"},
                                              {"checkpoints", "reset"}}) {
    std::vector<std::string> args = cmd;
    args.push_back("--help");
    r = cli(args);
    EXPECT_EQ(r.exit_code, 0) << cmd.back();
    EXPECT_EQ(r.out.rfind("usage: sluice " + cmd[0], 0), 0u) << r.out;
  }
  r = cli({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "sluice: unknown command: frobnicate (see sluice --help)\n");
  r = cli({"status", db, "--colour"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "sluice: unknown option --colour for sluice status\n");
  r = cli({"status", (dir / "missing.db").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "sluice: error: '" + (dir / "missing.db").string() + "': no such file\n");
  // A SQLite file without sluice's tables, and one of another schema version.
  { sluice::sqlite::checkpoint_store store(db); }
  r = cli({"status", db});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "sluice: error: '" + db + "' has no stream (no sluice stream tables)\n");
  {
    sluice::sqlite::database raw(db);
    raw.exec("UPDATE sluice_meta SET version = 99 WHERE component = 'checkpoints'");
  }
  r = cli({"checkpoints", "show", db});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "sluice: error: '" + db +
                       "' holds schema version 99 of sluice's checkpoints tables; this sluice "
                       "tool reads version 2\n");
  r = cli({"checkpoints", "reset", db, "--mapping", "m", "--to", "yesterday"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "sluice: --to yesterday: expected trim_horizon, latest, at_timestamp:T or "
            "sequence:N\n");
}

}  // namespace
