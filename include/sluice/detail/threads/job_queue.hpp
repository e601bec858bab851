// sluice/detail/threads/job_queue.hpp: the hand-off of closed batches from pollers to workers: one
// moodycamel::ConcurrentQueue of lane pointers (as void*, so every mapping in a program shares
// one instantiation of the queue's code), with producer/consumer tokens and bulk enqueue.
// GCC 12 reports a false -Wstringop-overflow inside the queue's bulk enqueue at -O2, which would
// break users' -Werror builds: push stays out of line, where a scoped pragma can silence it.
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <cstddef>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail {

class job_queue {
 public:
  using producer_token = moodycamel::ProducerToken;
  using consumer_token = moodycamel::ConsumerToken;

  /// Pre-sized for `capacity` jobs (each lane has at most one queued) and `producers` pollers.
  job_queue(std::size_t capacity, std::size_t producers) : queue_(capacity, producers, 0) {}

  producer_token make_producer_token() { return producer_token(queue_); }
  consumer_token make_consumer_token() { return consumer_token(queue_); }

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
  [[gnu::noinline]] void push(producer_token& token, void* const* jobs, std::size_t n) {
    queue_.enqueue_bulk(token, jobs, n);
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  [[gnu::noinline]] bool pop(consumer_token& token, void*& job) {
    return queue_.try_dequeue(token, job);
  }

 private:
  moodycamel::ConcurrentQueue<void*> queue_;
};

}  // namespace detail
SLUICE_END_NAMESPACE
