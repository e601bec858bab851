// The window conformance traces W-1..W-10 (tests/conformance/window_traces_test.cpp) on Redis: a
// one-shard sluice::redis::stream and a sluice::redis::checkpoint_store, so every window save
// (checkpoint + open window, one script) goes through Redis and W-10's restart resumes the window
// Redis kept. Each test starts its own redis-server. The expected traces are the same text.
// (tests/CMakeLists.txt registers only the trace fixture, with the prefix "redis.".)
#include "sluice/redis/checkpoint_store.hpp"
#include "sluice/redis/stream.hpp"
#include "support/redis_server.hpp"

namespace sluice_test {
inline sluice::redis::stream_options window_trace_stream_options(const redis_server& server) {
  sluice::redis::stream_options o;
  o.name = "window-traces";
  o.shards = 1;
  o.connection = server.tcp();
  return o;
}
}  // namespace sluice_test

#define SLUICE_TRACE_STREAM(clock)                                       \
  sluice_test::redis_server redis_server_;                               \
  sluice::redis::stream<int, std::string, sluice::manual_clock> stream { \
    sluice_test::window_trace_stream_options(redis_server_), clock       \
  }
#define SLUICE_TRACE_CHECKPOINTS \
  sluice::redis::checkpoint_store store { redis_server_.tcp() }

// The included file's fixture lives in an anonymous namespace, which GCC flags in an included file.
#pragma GCC diagnostic ignored "-Wsubobject-linkage"
#include "conformance/window_traces_test.cpp"  // NOLINT(bugprone-suspicious-include)
