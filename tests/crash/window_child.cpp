// The child of window_crash_test.cpp: a tumbling-window mapping over a SQLite stream and the
// SQLite checkpoint store, in three phases, each a process of its own:
//   window_child <dir> produce   records 1-4 in window 0, record 5 in window 1 (arrival times
//                                 on a manual clock, stamped by the stream)
//   window_child <dir> die       sluice::start: [1] and [2] succeed; the handler of [3] waits
//                                 until the store holds the window's state, prints "ready" to
//                                 the journal and hangs: the test kills the process (SIGKILL)
//   window_child <dir> resume    sluice::run to the end (idle final in virtual time)
// Every handler call appends one line to <dir>/journal: "[3]<3>" (records, state given),
// "final w0<10>" (a window's final invocation and its state).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "sluice/sluice.hpp"
#include "sluice/sqlite/checkpoint_store.hpp"
#include "sluice/sqlite/stream.hpp"

namespace {

using namespace std::chrono_literals;
using clock_t_ = sluice::manual_clock;
using stream_t = sluice::sqlite::stream<int, std::string, clock_t_>;
using R = stream_t::record_type;
const sluice::time_point t0 = sluice::time_point{} + 1000h;  // window 0 starts here (W = 60 s)

void journal(const std::filesystem::path& dir, const std::string& line) {
  const int fd = ::open((dir / "journal").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  const std::string text = line + "\n";
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    std::perror("journal");
    std::_Exit(3);
  }
  ::close(fd);
}

auto mapping(stream_t& stream, const std::filesystem::path& dir, bool die_at_3) {
  return sluice::from(stream) | sluice::batching(sluice::batch_size(1)) |
         sluice::tumbling_window(60) |
         sluice::invoke(
             [dir, die_at_3](const sluice::batch<R>& b,
                             const sluice::window_context& w) -> sluice::window_response {
               const std::string state = "<" + w.state + ">";
               if (w.is_final) {
                 journal(dir, "final w" + std::to_string((w.start - t0) / 60s) + state);
                 return w.state;
               }
               journal(dir, "[" + std::to_string(b.first_sequence()) + "]" + state);
               if (die_at_3 && b.first_sequence() == 3) {
                 // Mid-window: wait until the reader has stored [1]-[2]'s state, then hang.
                 sluice::sqlite::checkpoint_store peek(dir / "app.db");
                 for (int i = 0; i < 3000; ++i) {
                   const auto kept = peek.load_window("windows", 0);
                   if (kept && kept->state == "3") break;
                   std::this_thread::sleep_for(10ms);
                 }
                 journal(dir, "ready");
                 while (true) std::this_thread::sleep_for(1s);
               }
               long sum = w.state.empty() ? 0 : std::stol(w.state);
               for (const R& r : b) sum += r.payload;
               return std::to_string(sum);
             });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: window_child <dir> produce|die|resume\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const std::string phase = argv[2];
  sluice::sqlite::stream_options options;
  options.name = "events";
  if (phase == "produce") {
    clock_t_ clock(t0);
    stream_t stream(dir / "app.db", options, clock);
    for (int i = 1; i <= 4; ++i) stream.put("k", i);
    clock.advance(60s);
    stream.put("k", 5);
    return 0;
  }
  sluice::sqlite::checkpoint_store store(dir / "app.db");
  if (phase == "die") {
    clock_t_ clock(t0 + 61s);  // manual: nothing moves it, no idle final
    stream_t stream(dir / "app.db", options, clock);
    auto running =
        sluice::start(mapping(stream, dir, true), sluice::with_clock(clock),
                      sluice::checkpoints(store), sluice::mapping_name("windows"),
                      sluice::workers(1), sluice::execution(sluice::execution_mode::handoff));
    while (true) std::this_thread::sleep_for(1s);  // killed by the test
  }
  if (phase == "resume") {
    clock_t_ clock(t0 + 61s, clock_t_::auto_advance);
    stream_t stream(dir / "app.db", options, clock);
    sluice::run(mapping(stream, dir, false), sluice::with_clock(clock), sluice::checkpoints(store),
                sluice::mapping_name("windows"));
    return 0;
  }
  return 2;
}
