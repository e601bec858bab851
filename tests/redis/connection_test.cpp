// Tests of sluice::redis::connection against private redis-server instances: TCP and unix
// socket, AUTH with a password and with an ACL user, errors that name the server, the command
// and Redis's reply, command timeouts, and reconnecting after the server restarts.
#include "sluice/redis/connection.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using sluice::redis::connection;
using sluice::redis::text;

TEST(RedisConnection, TalksOverTcpAndOverAUnixSocket) {
  sluice_test::redis_server server;
  connection tcp(server.tcp());
  tcp.command({"SET", "k", "over tcp"});
  connection local(server.unix_socket());
  EXPECT_EQ(text(local.command({"GET", "k"}).get()), "over tcp");
  EXPECT_EQ(local.options().server(), "unix:" + server.socket().string());
}

TEST(RedisConnection, PipelineSendsEveryCommandAndReturnsRepliesInOrder) {
  sluice_test::redis_server server;
  connection c(server.tcp());
  const auto replies = c.pipeline({{"INCR", "n"}, {"INCR", "n"}, {"GET", "n"}});
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0]->integer, 1);
  EXPECT_EQ(replies[1]->integer, 2);
  EXPECT_EQ(text(replies[2].get()), "2");
}

TEST(RedisConnection, AnErrorReplyNamesServerCommandAndReply) {
  sluice_test::redis_server server;
  connection c(server.tcp());
  c.command({"SET", "word", "abc"});
  try {
    c.command({"INCR", "word"});
    FAIL() << "INCR of a word succeeded";
  } catch (const sluice::redis::error& e) {
    EXPECT_EQ(e.what_kind(), sluice::redis::error::kind::reply_error);
    EXPECT_EQ(e.server(), "127.0.0.1:" + std::to_string(server.port()));
    EXPECT_EQ(e.command(), "INCR word");
    EXPECT_NE(e.reply().find("not an integer"), std::string::npos) << e.reply();
    const std::string what = e.what();
    EXPECT_NE(what.find(e.server()), std::string::npos) << what;
    EXPECT_NE(what.find("INCR word"), std::string::npos) << what;
  }
}

TEST(RedisConnection, PasswordAuthIsSentAndAWrongOneIsRefusedByName) {
  sluice_test::redis_server server(sluice_test::redis_server_options::with_password("s3cret"));
  connection good(server.tcp());
  EXPECT_EQ(text(good.command({"PING"}).get()), "PONG");
  auto wrong = server.tcp();
  wrong.password = "nope";
  try {
    connection bad(wrong);
    FAIL() << "connected with a wrong password";
  } catch (const sluice::redis::error& e) {
    EXPECT_EQ(e.command(), "AUTH");
    EXPECT_NE(e.reply().find("WRONGPASS"), std::string::npos) << e.reply();
    EXPECT_EQ(std::string(e.what()).find("nope"), std::string::npos) << "password in the message";
  }
  auto none = server.tcp();
  none.password.clear();
  connection anonymous(none);
  try {
    anonymous.command({"GET", "k"});
    FAIL() << "unauthenticated GET succeeded";
  } catch (const sluice::redis::error& e) {
    EXPECT_NE(e.reply().find("NOAUTH"), std::string::npos) << e.reply();
  }
}

TEST(RedisConnection, AclUserAuthenticatesWithUserAndPassword) {
  sluice_test::redis_server server(sluice_test::redis_server_options::with_users(
      {"worker on >w0rker ~sluice:* +@all", "default off"}));
  auto o = server.tcp();
  o.user = "worker";
  o.password = "w0rker";
  connection c(o);
  c.command({"SET", "sluice:x", "1"});
  try {
    c.command({"SET", "other", "1"});
    FAIL() << "the ACL let the worker write outside sluice:*";
  } catch (const sluice::redis::error& e) {
    EXPECT_NE(e.reply().find("NOPERM"), std::string::npos) << e.reply();
  }
  o.password = "wrong";
  try {
    connection bad(o);
    FAIL() << "a wrong ACL password was accepted";
  } catch (const sluice::redis::error& e) {
    EXPECT_EQ(e.command(), "AUTH worker");
    EXPECT_NE(e.reply().find("WRONGPASS"), std::string::npos) << e.reply();
  }
}

TEST(RedisConnection, UserWithoutPasswordIsRejectedNamingTheParameter) {
  sluice::redis::connection_options o;
  o.user = "worker";
  EXPECT_THROW(
      {
        try {
          connection c(o);
        } catch (const sluice::configuration_error& e) {
          EXPECT_NE(std::string(e.what()).find("connection_options::password"), std::string::npos);
          throw;
        }
      },
      sluice::configuration_error);
}

TEST(RedisConnection, ACommandTimeoutIsAnIoErrorNamingTheServer) {
  sluice_test::redis_server server;
  auto o = server.tcp();
  o.command_timeout = 200ms;
  o.reconnect_attempts = 0;
  connection c(o);
  try {
    c.command({"BLPOP", "never", "5"});  // blocks longer than the command timeout
    FAIL() << "BLPOP returned";
  } catch (const sluice::redis::error& e) {
    EXPECT_EQ(e.what_kind(), sluice::redis::error::kind::io_error);
    EXPECT_EQ(e.command(), "BLPOP never");
    EXPECT_EQ(e.server(), o.server());
  }
  EXPECT_EQ(text(c.command({"PING"}).get()), "PONG") << "the next command reconnects";
}

TEST(RedisConnection, ReconnectsAfterTheServerRestarts) {
  sluice_test::redis_server server(sluice_test::redis_server_options::with_aof());
  connection c(server.tcp());
  c.command({"SET", "k", "kept"});
  server.restart();  // SIGKILL, then a new server on the same port and AOF file
  EXPECT_EQ(text(c.command({"GET", "k"}).get()), "kept");
}

TEST(RedisConnection, GivesUpAfterItsReconnectAttemptsWithAnIoError) {
  auto server = std::make_unique<sluice_test::redis_server>();
  auto o = server->tcp();
  o.reconnect_attempts = 2;
  o.reconnect_initial = 5ms;
  o.reconnect_max = 10ms;
  connection c(o);
  server.reset();
  try {
    c.command({"PING"});
    FAIL() << "PING to a dead server succeeded";
  } catch (const sluice::redis::error& e) {
    EXPECT_EQ(e.what_kind(), sluice::redis::error::kind::io_error);
    EXPECT_EQ(e.server(), o.server());
  }
}

TEST(RedisConnection, ScriptsAreLoadedOnceAndAgainAfterTheServerForgetsThem) {
  sluice_test::redis_server server;
  connection c(server.tcp());
  static constexpr sluice::redis::script add{"add", "return tonumber(ARGV[1]) + 1"};
  EXPECT_EQ(c.eval(add, {}, {"41"})->integer, 42);
  c.command({"SCRIPT", "FLUSH"});
  EXPECT_EQ(c.eval(add, {}, {"1"})->integer, 2);
}

}  // namespace
