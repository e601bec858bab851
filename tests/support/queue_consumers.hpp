// tests/support/queue_consumers.hpp: consumer threads for the queue concurrency tests (memory and
// SQLite queues). Each receives batches of 10, records every body and deletes what it received,
// until finish() was called and the queue is empty.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sluice/queue.hpp"

namespace sluice_test {

template <class Queue>
class queue_consumers {
 public:
  queue_consumers(Queue& q, int n) {
    for (int c = 0; c < n; ++c) threads_.emplace_back([this, &q] { consume(q); });
  }
  queue_consumers(const queue_consumers&) = delete;
  queue_consumers& operator=(const queue_consumers&) = delete;
  ~queue_consumers() { finish(); }

  /// The producers are done: the consumers stop once the queue is empty; waits for them.
  void finish() {
    done_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

  /// After finish(): `expected` messages, each received exactly once and deleted.
  void expect_each_once(std::size_t expected) {
    std::lock_guard lock(mutex_);
    EXPECT_EQ(static_cast<std::size_t>(deleted_.load()), expected);
    const std::set<std::string> unique(seen_.begin(), seen_.end());
    EXPECT_EQ(unique.size(), expected);
    EXPECT_EQ(seen_.size(), unique.size()) << "a message was handed over twice without failing";
  }

 private:
  void consume(Queue& q) {
    std::vector<sluice::queue_message> got;
    std::vector<sluice::receipt_handle> receipts;
    while (!done_.load() || !q.empty()) {
      got.clear();
      receipts.clear();
      if (q.receive(got, 10) == 0) {
        std::this_thread::yield();
        continue;
      }
      for (auto& m : got) receipts.push_back(m.receipt);
      {
        std::lock_guard lock(mutex_);
        for (auto& m : got) seen_.insert(m.body());
      }
      deleted_ += static_cast<int>(q.delete_messages(receipts));
    }
  }

  std::atomic<bool> done_{false};
  std::atomic<int> deleted_{0};
  std::mutex mutex_;
  std::multiset<std::string> seen_;
  std::vector<std::thread> threads_;
};

}  // namespace sluice_test
