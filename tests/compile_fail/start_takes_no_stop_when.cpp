// expect: sluice::stop_when is an option of sluice::run only
// stop_when was silently ignored by start(); a started mapping is stopped with stop().
#include <sluice/start.hpp>

#include <stop_token>
#include <utility>
#include <vector>

void go() {
  std::vector<sluice::record<int>> records;
  std::stop_source stop;
  auto m = sluice::from(records) | sluice::invoke([](const sluice::batch<sluice::record<int>>&) {});
  [[maybe_unused]] auto running = sluice::start(std::move(m), sluice::stop_when(stop.get_token()));
}
