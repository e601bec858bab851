// examples/windows.cpp: a tumbling-window aggregate (docs/windows.md). Page views arrive over
// five minutes on two shards; a one-minute window counts views per page in its state (text,
// "page=count;..."), and each window's final invocation publishes the counts. The run is on a
// manual clock in auto-advance mode, so the windows' idle times pass in virtual time.
//
// The example checks itself: every view is counted exactly once, in the window of its arrival
// time, and every window with views gets exactly one final invocation. Exit status 0 when so.
#include <sluice/sluice.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>

using namespace std::chrono_literals;

namespace {

using counts = std::map<std::string, long>;

counts parse(const std::string& state) {
  counts c;
  std::istringstream in(state);
  std::string item;
  while (std::getline(in, item, ';')) {
    const auto eq = item.find('=');
    c[item.substr(0, eq)] = std::stol(item.substr(eq + 1));
  }
  return c;
}

std::string format(const counts& c) {
  std::string out;
  for (const auto& [page, n] : c) out += page + "=" + std::to_string(n) + ";";
  return out;
}

}  // namespace

int main() {
  const sluice::time_point t0 = sluice::time_point{} + 1000h;  // a whole minute
  sluice::manual_clock clock(t0, sluice::manual_clock::auto_advance);
  sluice::memory_stream<std::string, std::string, sluice::manual_clock> views(2, clock);

  // Five minutes of views, one every 1.5 s, over four pages; the key is the visitor.
  const char* pages[] = {"/", "/pricing", "/docs", "/blog"};
  std::map<std::pair<long, std::string>, long> expected;  // (minute, page) -> views
  for (int i = 0; i < 200; ++i) {
    const std::string page = pages[(i * 7) % 4];
    views.put("visitor-" + std::to_string(i % 13), page);
    ++expected[{(clock.now() - t0) / 1min, page}];
    clock.advance(1500ms);
  }

  std::map<std::pair<long, std::string>, long> published;
  int finals = 0, duplicates = 0;
  std::map<std::pair<sluice::shard_id_t, long>, int> finals_per_window;
  auto m = sluice::from(views) | sluice::batching(sluice::batch_size(16)) |
           sluice::tumbling_window(60) |
           sluice::invoke([&](const sluice::batch<sluice::record<std::string>>& b,
                              const sluice::window_context& w) -> sluice::window_response {
             const long minute = (w.start - t0) / 1min;
             counts c = parse(w.state);
             if (w.is_final) {  // publish: the window is over
               ++finals;
               if (++finals_per_window[{w.shard_id, minute}] > 1) ++duplicates;
               for (const auto& [page, n] : c) published[{minute, page}] += n;
               std::printf("shard %u minute %ld: %s\n", w.shard_id, minute, w.state.c_str());
               return w.state;
             }
             for (const auto& r : b) ++c[r.payload];
             return format(c);
           });
  const auto metrics = sluice::run(std::move(m), sluice::with_clock(clock));

  const bool ok =
      published == expected && duplicates == 0 && metrics.total.succeeded_event_count == 200;
  std::printf("%d final invocations, %zu (minute, page) counts, %s\n", finals, published.size(),
              ok ? "all views counted once" : "MISMATCH");
  return ok ? 0 : 1;
}
