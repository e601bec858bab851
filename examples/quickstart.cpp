// quickstart: the smallest useful mapping. Orders go into an in-memory stream of 2 shards, keyed
// by customer; the mapping drops zero amounts, batches up to 100 orders of one shard, and hands
// each batch to a handler that prints its sum. sluice::run processes what the stream holds, then
// returns.
#include <sluice/sluice.hpp>

#include <iostream>
#include <string>

int main() {
  sluice::memory_stream<int> orders(2);  // payload: amount in cents; key: customer
  for (int i = 0; i < 1000; ++i) orders.put("customer-" + std::to_string(i % 7), i % 5 * 100);

  // One stage per line, as README.md shows it.
  // clang-format off
  auto mapping = sluice::from(orders)
               | sluice::filter([](int amount) { return amount > 0; })
               | sluice::batching(sluice::batch_size(100))
               | sluice::invoke([](const sluice::batch<sluice::record<int>>& batch) {
                   long sum = 0;
                   for (const auto& order : batch) sum += order.payload;
                   std::cout << "shard " << batch.shard_id() << ": " << batch.size()
                             << " orders, " << sum << " cents\n";
                 });
  // clang-format on
  const auto metrics = sluice::run(std::move(mapping));
  std::cout << metrics.total.filtered_out_event_count << " zero-amount orders filtered out\n";
}
