// The stream conformance traces (tests/conformance, as tests/redis/traces/redis_traces_test.cpp
// runs them on one Redis) on a Redis Cluster: every test's one-shard stream lives on a private
// 3-master cluster shared by the tests of this binary (tests/support/redis_cluster.hpp), each
// under a name of its own, so the streams' slots land on all three nodes. The expected traces are
// the memory stream's, unchanged. (tests/CMakeLists.txt registers the whole binary as one test,
// redis_cluster.traces, so the cluster is started once, not once per trace.)
#include <atomic>
#include <string>

#include "sluice/redis/stream.hpp"
#include "support/redis_cluster.hpp"

namespace sluice_test {
inline sluice::redis::stream_options cluster_trace_stream_options() {
  static std::atomic<int> next{0};
  sluice::redis::stream_options o;
  // A prefix of its own too: the stream's default checkpoint store (mapping "sluice", shard 0)
  // would otherwise carry one test's checkpoints into the next.
  const int n = next++;
  o.name = "traces-" + std::to_string(n);  // its hash tag picks the slot: spread over nodes
  o.prefix = "t" + std::to_string(n);
  o.shards = 1;
  o.connection = shared_redis_cluster().options();
  return o;
}
}  // namespace sluice_test

#define SLUICE_TRACE_STREAM(clock)                                       \
  sluice::redis::stream<int, std::string, sluice::manual_clock> stream { \
    sluice_test::cluster_trace_stream_options(), clock                   \
  }

// The included files' fixtures live in anonymous namespaces, which GCC flags in an included file.
#pragma GCC diagnostic ignored "-Wsubobject-linkage"
#include "conformance/engine_traces_test.cpp"   // NOLINT(bugprone-suspicious-include)
#include "conformance/failure_traces_test.cpp"  // NOLINT(bugprone-suspicious-include)
