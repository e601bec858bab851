// The conformance traces that involve a stream (tests/conformance: C-01, C-02, C-04..C-11, C-14,
// C-15, C-16..C-18 and the starting positions), run unchanged on a sluice::redis::stream: each
// test starts its own redis-server, and the fixture's stream is a one-shard Redis stream instead
// of a memory_stream. Redis numbers a shard's records 1, 2, 3, ... as the memory stream does, so
// the expected traces are the same text. (tests/CMakeLists.txt registers only the fixtures that
// use the fixture's stream, with the prefix "redis.".)
#include "sluice/redis/stream.hpp"
#include "support/redis_server.hpp"

namespace sluice_test {
inline sluice::redis::stream_options trace_stream_options(const redis_server& server) {
  sluice::redis::stream_options o;
  o.name = "traces";
  o.shards = 1;
  o.connection = server.tcp();
  return o;
}
}  // namespace sluice_test

#define SLUICE_TRACE_STREAM(clock)                                       \
  sluice_test::redis_server redis_server_;                               \
  sluice::redis::stream<int, std::string, sluice::manual_clock> stream { \
    sluice_test::trace_stream_options(redis_server_), clock              \
  }

// The included files' fixtures live in anonymous namespaces, which GCC flags in an included file.
#pragma GCC diagnostic ignored "-Wsubobject-linkage"
#include "conformance/engine_traces_test.cpp"   // NOLINT(bugprone-suspicious-include)
#include "conformance/failure_traces_test.cpp"  // NOLINT(bugprone-suspicious-include)
