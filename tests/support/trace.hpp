// tests/support/trace.hpp: records what a handler saw, for exact trace assertions
// ("[1-10] [1-5] ..."), plus small waiting helpers that poll a condition with a timeout.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sluice/sluice.hpp"

namespace sluice_test {

struct invocation {
  sluice::sequence_number_t first;
  sluice::sequence_number_t last;
  std::size_t size;
  sluice::time_point at;
  std::vector<sluice::sequence_number_t> sequences;
};

class trace {
 public:
  template <class R>
  void record(const sluice::batch<R>& b, sluice::time_point at) {
    invocation inv{b.first_sequence(), b.last_sequence(), b.size(), at, {}};
    for (const auto& r : b) inv.sequences.push_back(sluice::sequence_number(r));
    std::lock_guard lock(mutex_);
    calls_.push_back(std::move(inv));
  }
  std::vector<invocation> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return calls_.size();
  }
  /// "[1-10] [1-5] [7]": one bracket per invocation, a single record as [n].
  std::string str() const {
    std::lock_guard lock(mutex_);
    std::ostringstream out;
    for (std::size_t i = 0; i < calls_.size(); ++i) {
      if (i) out << ' ';
      out << '[' << calls_[i].first;
      if (calls_[i].last != calls_[i].first) out << '-' << calls_[i].last;
      out << ']';
    }
    return out.str();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<invocation> calls_;
};

/// Polls `condition` until it holds or `timeout` (real time) passes. A wait, not a timing
/// assertion: the timeout only bounds a hang.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

}  // namespace sluice_test
