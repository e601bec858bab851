// Window traces W-1..W-10 (docs/semantics.md, "Tumbling windows"): exact sequences of window
// invocations (S-7). Each runs with sluice::run on the calling thread and with sluice::start
// (adaptive, inline and handoff), on a manual clock in auto-advance mode, so idle times and
// back-offs play out in virtual time and every trace is deterministic (the harness of
// failure_traces_test.cpp).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <vector>

#include "sluice/sluice.hpp"
#include "support/trace.hpp"

using namespace std::chrono_literals;
using R = sluice::record<int>;
using sluice_test::eventually;

// The stream and checkpoint store the traces run on: a memory_stream and a
// memory_checkpoint_store, unless the file that includes this one chose others
// (tests/redis/traces/redis_window_traces_test.cpp: a Redis stream and the Redis checkpoint
// store, whose window state is what W-10 resumes from).
#ifndef SLUICE_TRACE_STREAM
#define SLUICE_TRACE_STREAM(clock) \
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream { 1, clock }
#endif
#ifndef SLUICE_TRACE_CHECKPOINTS
#define SLUICE_TRACE_CHECKPOINTS sluice::memory_checkpoint_store store
#endif

namespace {

enum class mode { run, start, start_inline, start_handoff };

sluice::execution_mode execution_of(mode m) {
  switch (m) {
    case mode::start_inline:
      return sluice::execution_mode::inline_only;
    case mode::start_handoff:
      return sluice::execution_mode::handoff;
    default:
      return sluice::execution_mode::adaptive;
  }
}

/// What a window handler saw: "w0:[1-2]<>" is window 0 (counted in W from t0) with records 1-2
/// and the state it was given; "w0:final<3>" its final invocation, "w0:final!<..>" one that
/// ends the window early.
class window_trace {
 public:
  window_trace(sluice::time_point t0, sluice::duration w) : t0_(t0), w_(w) {}

  void note(const sluice::batch<R>& b, const sluice::window_context& w, sluice::time_point at) {
    std::string s = "w" + std::to_string((w.start - t0_) / w_) + ":";
    if (w.is_final) {
      s += w.terminated_early ? "final!" : "final";
      EXPECT_TRUE(b.empty());
    } else {
      s += "[" + std::to_string(b.first_sequence());
      if (b.size() > 1) s += "-" + std::to_string(b.last_sequence());
      s += "]";
    }
    s += "<" + w.state + ">";
    EXPECT_EQ(w.end - w.start, w_);
    EXPECT_EQ(w.shard_id, 0u);
    std::lock_guard lock(mutex_);
    calls_.push_back(std::move(s));
    times_.push_back(at);
  }
  std::string str() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& c : calls_) out += (out.empty() ? "" : " ") + c;
    return out;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return calls_.size();
  }
  std::vector<sluice::time_point> times() const {
    std::lock_guard lock(mutex_);
    return times_;
  }

 private:
  sluice::time_point t0_;
  sluice::duration w_;
  mutable std::mutex mutex_;
  std::vector<std::string> calls_;
  std::vector<sluice::time_point> times_;
};

long state_value(const std::string& s) { return s.empty() ? 0 : std::stol(s); }

class WindowTraces : public ::testing::TestWithParam<mode> {
 protected:
  sluice::manual_clock clock{sluice::time_point{} + 1000h, sluice::manual_clock::auto_advance};
  SLUICE_TRACE_STREAM(clock);
  SLUICE_TRACE_CHECKPOINTS;
  sluice::memory_destination<R> dlq;
  sluice::time_point t0 = clock.now();  // a multiple of 60 s: window 0 starts here
  window_trace calls{t0, 60s};

  /// Records from..to, arriving now.
  void put(int from, int to) {
    for (int i = from; i <= to; ++i) stream.put("k", i);
  }

  /// Runs the mapping to the end: run returns after the last window's final invocation; a
  /// started mapping is caught up before it (the final comes after the idle time), so the
  /// test waits for `calls_expected` invocations.
  template <class Mapping>
  sluice::metrics_snapshot drive(Mapping&& m, std::size_t calls_expected) {
    if (GetParam() == mode::run)
      return sluice::run(std::move(m), sluice::with_clock(clock), sluice::checkpoints(store));
    auto running =
        sluice::start(std::move(m), sluice::with_clock(clock), sluice::checkpoints(store),
                      sluice::workers(1), sluice::execution(execution_of(GetParam())));
    EXPECT_TRUE(running.wait_until_caught_up(60s)) << "trace so far: " << calls.str();
    EXPECT_TRUE(eventually([&] { return calls.size() >= calls_expected; }))
        << "trace so far: " << calls.str();
    auto snapshot = running.metrics();
    running.stop();
    return snapshot;
  }

  sluice::sequence_number_t checkpoint() const { return store.load("sluice", 0).value_or(0); }

  /// A window handler that sums payloads into its state (decimal text).
  auto summing() {
    return [this](const sluice::batch<R>& b,
                  const sluice::window_context& w) -> sluice::window_response {
      calls.note(b, w, clock.now());
      long sum = state_value(w.state);
      for (const R& r : b) sum += r.payload;
      return std::to_string(sum);
    };
  }
};

}  // namespace

// W-1 window boundaries (S-7.1): windows are aligned to multiples of W by arrival time; a batch
// never spans two windows, even when it has room.
TEST_P(WindowTraces, W01_BatchesCloseAtWindowBoundaries) {
  put(1, 3);           // t0: window 0
  clock.advance(59s);  // t0 + 59 s: still window 0
  put(4, 5);
  clock.advance(1s);  // t0 + 60 s: window 1
  put(6, 6);
  clock.advance(65s);  // t0 + 125 s: window 2
  put(7, 7);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
            sluice::tumbling_window(60) | sluice::invoke(summing()),
        6);
  EXPECT_EQ(calls.str(), "w0:[1-5]<> w0:final<15> w1:[6]<> w1:final<6> w2:[7]<> w2:final<7>");
  EXPECT_EQ(checkpoint(), 7u);
  EXPECT_FALSE(store.load_window("sluice", 0)) << "state is dropped after the final invocation";
}

// W-2 final invocation on a later record (S-7.2): the window's final invocation (no records,
// is_final) comes before the first invocation of the next window, and carries the state.
TEST_P(WindowTraces, W02_FinalInvocationWhenALaterWindowsRecordArrives) {
  put(1, 4);
  clock.advance(60s);
  put(5, 5);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(2)) |
            sluice::tumbling_window(60) | sluice::invoke(summing()),
        5);
  EXPECT_EQ(calls.str(), "w0:[1-2]<> w0:[3-4]<3> w0:final<10> w1:[5]<> w1:final<5>");
}

// W-3 state carried across invocations (S-7.1): each invocation gets the state the previous
// invocation of the same window returned; a new window starts empty.
TEST_P(WindowTraces, W03_StateIsCarriedAcrossInvocationsOfAWindow) {
  put(1, 5);
  clock.advance(60s);
  put(6, 7);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(2)) |
            sluice::tumbling_window(60) | sluice::invoke(summing()),
        6);
  EXPECT_EQ(calls.str(), "w0:[1-2]<> w0:[3-4]<3> w0:[5]<10> w0:final<15> w1:[6-7]<> w1:final<13>");
}

// W-4 final on idle timeout (S-7.2): with no later record, the final invocation comes when no
// record has come for the idle time (default 2 min) and the window is over: at
// max(window end, last record taken + idle time), on the clock.
TEST_P(WindowTraces, W04_FinalInvocationAfterTheIdleTime) {
  clock.advance(10s);  // t0 + 10 s
  put(1, 2);
  drive(sluice::from(stream) | sluice::tumbling_window(60) | sluice::invoke(summing()), 2);
  EXPECT_EQ(calls.str(), "w0:[1-2]<> w0:final<3>");
  const auto times = calls.times();
  ASSERT_EQ(times.size(), 2u);
  EXPECT_EQ(times[1] - t0, 130s) << "10 s (last record taken) + 120 s idle";
}

// W-4b a shorter idle time still waits for the window's end.
TEST_P(WindowTraces, W04b_IdleFinalNeverBeforeTheWindowEnds) {
  clock.advance(10s);
  put(1, 2);
  drive(sluice::from(stream) | sluice::tumbling_window(60, sluice::window_idle_timeout(5s)) |
            sluice::invoke(summing()),
        2);
  EXPECT_EQ(calls.str(), "w0:[1-2]<> w0:final<3>");
  ASSERT_EQ(calls.times().size(), 2u);
  EXPECT_EQ(calls.times()[1] - t0, 60s);
}

// W-5 state cap (S-7.2): a state over the cap ends the window early: a final invocation marked
// terminated_early gets that state, and the next invocation continues the same window (same
// bounds) with a fresh state.
TEST_P(WindowTraces, W05_StateOverTheCapEndsTheWindowEarly) {
  put(1, 8);
  auto listing = [this](const sluice::batch<R>& b,
                        const sluice::window_context& w) -> sluice::window_response {
    calls.note(b, w, clock.now());
    std::string s = w.state;
    for (const R& r : b) s += std::to_string(r.payload) + ",";
    return s;
  };
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(2)) |
            sluice::tumbling_window(60, sluice::maximum_state_bytes(8)) | sluice::invoke(listing),
        6);
  EXPECT_EQ(calls.str(),
            "w0:[1-2]<> w0:[3-4]<1,2,> w0:[5-6]<1,2,3,4,> w0:final!<1,2,3,4,5,6,> "
            "w0:[7-8]<> w0:final<7,8,>");
}

// W-6 a response without state is a failed invocation (S-7.1): retried with the previous state.
TEST_P(WindowTraces, W06_MissingStateIsAFailedInvocation) {
  put(1, 2);
  std::atomic<int> n{0};
  auto snapshot =
      drive(sluice::from(stream) | sluice::tumbling_window(60) |
                sluice::invoke([&](const sluice::batch<R>& b, const sluice::window_context& w) {
                  calls.note(b, w, clock.now());
                  if (++n == 1) return sluice::window_response{};  // no state
                  return sluice::window_response{
                      std::to_string(state_value(w.state) + (w.is_final ? 0 : 3))};
                }),
            3);
  EXPECT_EQ(calls.str(), "w0:[1-2]<> w0:[1-2]<> w0:final<3>");
  EXPECT_EQ(snapshot.total.function_errors, 1u);
  EXPECT_EQ(checkpoint(), 2u);
}

// W-7 a failed final invocation blocks the lane (S-7.2): the next window's records wait until it
// succeeds; it is retried after back-off like any batch.
TEST_P(WindowTraces, W07_FailedFinalInvocationBlocksTheLaneUntilItSucceeds) {
  put(1, 2);
  clock.advance(60s);
  put(3, 3);
  std::atomic<int> finals{0};
  auto snapshot =
      drive(sluice::from(stream) | sluice::tumbling_window(60) |
                sluice::invoke([&](const sluice::batch<R>& b,
                                   const sluice::window_context& w) -> sluice::window_response {
                  calls.note(b, w, clock.now());
                  if (w.is_final && w.start == t0 && ++finals <= 2)
                    throw std::runtime_error("final failed");
                  long sum = state_value(w.state);
                  for (const R& r : b) sum += r.payload;
                  return std::to_string(sum);
                }),
            6);
  EXPECT_EQ(calls.str(), "w0:[1-2]<> w0:final<3> w0:final<3> w0:final<3> w1:[3]<> w1:final<3>");
  EXPECT_EQ(snapshot.total.function_errors, 2u);
  EXPECT_EQ(snapshot.total.retries, 2u);
}

// W-8 a final invocation whose retries are exhausted goes to the on-failure destination as a
// record with no records and the window's sequence range (S-5.5); the lane goes on.
TEST_P(WindowTraces, W08_FinalInvocationRetriesExhaustedGoToTheDestination) {
  put(1, 2);
  clock.advance(60s);
  put(3, 3);
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(10)) |
            sluice::tumbling_window(60) | sluice::retry(sluice::maximum_retry_attempts(1)) |
            sluice::on_failure(dlq) |
            sluice::invoke([&](const sluice::batch<R>& b,
                               const sluice::window_context& w) -> sluice::window_response {
              calls.note(b, w, clock.now());
              if (w.is_final && w.start == t0) throw std::runtime_error("final failed");
              long sum = state_value(w.state);
              for (const R& r : b) sum += r.payload;
              return std::to_string(sum);
            }),
        5);
  EXPECT_EQ(calls.str(), "w0:[1-2]<> w0:final<3> w0:final<3> w1:[3]<> w1:final<3>");
  const auto dead = dlq.records();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].condition, sluice::failure_condition::retry_attempts_exhausted);
  EXPECT_EQ(dead[0].batch_size, 0u);
  EXPECT_TRUE(dead[0].records.empty());
  EXPECT_EQ(dead[0].start_sequence_number, 1u);
  EXPECT_EQ(dead[0].end_sequence_number, 2u);
  EXPECT_EQ(dead[0].approximate_invoke_count, 2u);
  EXPECT_EQ(dead[0].error_message, "final failed");
}

// W-9 batch item failures inside a window (S-4.3, S-7.1): the state returned with a report
// covers the records before the lowest failed one; the retry of the rest gets that state.
TEST_P(WindowTraces, W09_BatchItemFailuresInsideAWindow) {
  put(1, 4);
  std::atomic<int> n{0};
  drive(sluice::from(stream) | sluice::batching(sluice::batch_size(4)) |
            sluice::tumbling_window(60) | sluice::report_batch_item_failures |
            sluice::invoke([&](const sluice::batch<R>& b,
                               const sluice::window_context& w) -> sluice::window_response {
              calls.note(b, w, clock.now());
              long sum = state_value(w.state);
              if (!w.is_final && ++n == 1) {  // record 3 fails: the state covers 1 and 2
                return {std::to_string(sum + 1 + 2), sluice::batch_item_failures{3}};
              }
              for (const R& r : b) sum += r.payload;
              return std::to_string(sum);
            }),
        3);
  EXPECT_EQ(calls.str(), "w0:[1-4]<> w0:[3-4]<3> w0:final<10>");
  EXPECT_EQ(checkpoint(), 4u);
}

// W-10 restart resumes the window (S-7, S-3.4): the open window's state is stored with the
// checkpoint; a new mapping over the same store continues it and makes its final invocation
// once, with the state carried.
TEST_P(WindowTraces, W10_RestartResumesTheWindowFromTheStoredState) {
  put(1, 4);
  clock.advance(60s);
  put(5, 5);
  // First life: [1-2] succeeds; [3-4] keeps failing until the mapping is stopped.
  std::stop_source stop;
  std::atomic<bool> failing{false};
  auto first_life = [&](const sluice::batch<R>& b,
                        const sluice::window_context& w) -> sluice::window_response {
    calls.note(b, w, clock.now());
    if (b.first_sequence() == 3) {
      failing = true;
      stop.request_stop();
      throw std::runtime_error("dies here");
    }
    long sum = state_value(w.state);
    for (const R& r : b) sum += r.payload;
    return std::to_string(sum);
  };
  auto mapping = [&](auto handler) {
    return sluice::from(stream) | sluice::batching(sluice::batch_size(2)) |
           sluice::tumbling_window(60) | sluice::invoke(std::move(handler));
  };
  if (GetParam() == mode::run) {
    sluice::run(mapping(first_life), sluice::with_clock(clock), sluice::checkpoints(store),
                sluice::stop_when(stop.get_token()));
  } else {
    auto running =
        sluice::start(mapping(first_life), sluice::with_clock(clock), sluice::checkpoints(store),
                      sluice::workers(1), sluice::execution(execution_of(GetParam())));
    ASSERT_TRUE(eventually([&] { return failing.load(); }));
    running.stop();
  }
  EXPECT_EQ(calls.str().substr(0, 22), "w0:[1-2]<> w0:[3-4]<3>");  // then its retries, if any
  EXPECT_EQ(checkpoint(), 2u);
  const auto kept = store.load_window("sluice", 0);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->start, t0);
  EXPECT_EQ(kept->end, t0 + 60s);
  EXPECT_EQ(kept->state, "3");

  window_trace resumed{t0, 60s};
  auto second_life = [&](const sluice::batch<R>& b,
                         const sluice::window_context& w) -> sluice::window_response {
    resumed.note(b, w, clock.now());
    long sum = state_value(w.state);
    for (const R& r : b) sum += r.payload;
    return std::to_string(sum);
  };
  if (GetParam() == mode::run) {
    sluice::run(mapping(second_life), sluice::with_clock(clock), sluice::checkpoints(store));
  } else {
    auto running =
        sluice::start(mapping(second_life), sluice::with_clock(clock), sluice::checkpoints(store),
                      sluice::workers(1), sluice::execution(execution_of(GetParam())));
    ASSERT_TRUE(running.wait_until_caught_up(60s));
    ASSERT_TRUE(eventually([&] { return resumed.size() >= 4; })) << resumed.str();
    running.stop();
  }
  EXPECT_EQ(resumed.str(), "w0:[3-4]<3> w0:final<10> w1:[5]<> w1:final<5>");
  EXPECT_EQ(checkpoint(), 5u);
  EXPECT_FALSE(store.load_window("sluice", 0));
}

INSTANTIATE_TEST_SUITE_P(Modes, WindowTraces,
                         ::testing::Values(mode::run, mode::start, mode::start_inline,
                                           mode::start_handoff),
                         [](const auto& info) {
                           switch (info.param) {
                             case mode::run:
                               return std::string("run");
                             case mode::start:
                               return std::string("start");
                             case mode::start_inline:
                               return std::string("start_inline");
                             default:
                               return std::string("start_handoff");
                           }
                         });

// Configuration (S-7): rejected when the mapping is built, naming parameter, value and range.
TEST(WindowConfig, InvalidValuesAreRejectedWithParameterValueAndRange) {
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const sluice::configuration_error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(message([] { (void)sluice::tumbling_window(0); }),
            "sluice: tumbling_window (s) = 0 is out of range; allowed: 1..900 s (Lambda's range; "
            "pass a std::chrono duration for any other positive length)");
  EXPECT_NE(message([] { (void)sluice::tumbling_window(901); }).find("= 901 is out of range"),
            std::string::npos);
  EXPECT_EQ(message([] { (void)sluice::tumbling_window(std::chrono::hours(2)); }), "(accepted)");
  EXPECT_EQ(message([] { (void)sluice::tumbling_window(250ms); }), "(accepted)");
  EXPECT_NE(
      message([] { (void)sluice::tumbling_window(-1s); }).find("tumbling_window (ms) = -1000"),
      std::string::npos);
  EXPECT_NE(message([] {
              (void)sluice::tumbling_window(60, sluice::window_idle_timeout(0s));
            }).find("window_idle_timeout (ms) = 0 is out of range; allowed: > 0 ms"),
            std::string::npos);
  EXPECT_NE(message([] {
              (void)sluice::tumbling_window(60, sluice::maximum_state_bytes(0));
            }).find("maximum_state_bytes = 0 is out of range; allowed: 1..2^30 bytes"),
            std::string::npos);
  // Windows are per shard: more than one lane is rejected when the mapping is built.
  sluice::manual_clock clock;
  sluice::memory_stream<int, std::string, sluice::manual_clock> stream{1, clock};
  EXPECT_EQ(message([&] {
              sluice::run(
                  sluice::from(stream) | sluice::parallelization_factor(2) |
                      sluice::tumbling_window(60) |
                      sluice::invoke([](const sluice::batch<R>&, const sluice::window_context&) {
                        return sluice::window_response{std::string()};
                      }),
                  sluice::with_clock(clock));
            }),
            "sluice: parallelization_factor = 2 is out of range; allowed: 1 with "
            "sluice::tumbling_window (a window and its state are a shard's, as in Lambda)");
  (void)sluice::tumbling_window_c<900>();
}
