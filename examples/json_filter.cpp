// json_filter: Lambda's FilterCriteria on JSON payloads. Order events (JSON text) go into an
// in-memory stream of 2 shards; the mapping keeps paid orders over 100 from France or Germany,
// and every order of a "vip-" customer, with the pattern language Lambda users already write.
// The handler sums what it gets; the program checks the counts against a hand-written filter and
// exits non-zero on a mismatch.
#include <sluice/json.hpp>  // JSON payloads for filter_criteria (link sluice::json)
#include <sluice/sluice.hpp>

#include <iostream>
#include <string>

int main() {
  sluice::memory_stream<std::string> orders(2);  // key: customer, payload: the order as JSON
  const char* statuses[] = {"paid", "open", "refunded"};
  const char* countries[] = {"FR", "DE", "US"};
  long expected = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string customer = (i % 10 == 0 ? "vip-" : "c-") + std::to_string(i % 97);
    const int amount = i % 250;
    const char* status = statuses[i % 3];
    const char* country = countries[i / 3 % 3];
    orders.put(customer, R"({"status": ")" + std::string(status) + R"(", "amount": )" +
                             std::to_string(amount) + R"(, "customer": {"country": ")" + country +
                             R"("}, "items": [{"sku": "A-1"}, {"sku": "B-2"}]})");
    const bool paid_eu = std::string(status) == "paid" && amount > 100 &&
                         (std::string(country) == "FR" || std::string(country) == "DE");
    expected += paid_eu || customer.starts_with("vip-") ? 1 : 0;
  }

  long handed_over = 0;
  // clang-format off
  auto mapping = sluice::from(orders)
               | sluice::filter_criteria<
                     R"({"data": {"status": ["paid"], "amount": [{"numeric": [">", 100]}],
                                  "customer": {"country": ["FR", "DE"]}}})",
                     R"({"partitionKey": [{"prefix": "vip-"}]})">()
               | sluice::batching(sluice::batch_size(100))
               | sluice::invoke([&](const sluice::batch<sluice::record<std::string>>& batch) {
                   handed_over += static_cast<long>(batch.size());
                 });
  // clang-format on
  const auto metrics = sluice::run(std::move(mapping));
  std::cout << handed_over << " orders handed over, " << metrics.total.filtered_out_event_count
            << " filtered out (FilteredOutEventCount)\n";
  if (handed_over != expected ||
      static_cast<long>(metrics.total.filtered_out_event_count) != 3000 - expected) {
    std::cerr << "json_filter: expected " << expected << " orders handed over\n";
    return 1;
  }
}
