// expect: sluice::filter: the predicate cannot be called with the record type that reaches it
// The predicate takes an unrelated type: neither sluice::record<int> nor its int payload.
#include <sluice/mapping.hpp>

#include <vector>

struct order {
  int id;
};

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m =
      sluice::from(records) | sluice::filter([](const order& o) { return o.id > 0; });
}
