// expect: sluice::transform: the function cannot be called with the record type that reaches it
// The function takes an unrelated type: neither sluice::record<int> nor its int payload.
#include <sluice/mapping.hpp>

#include <string>
#include <vector>

void build() {
  std::vector<sluice::record<int>> records;
  [[maybe_unused]] auto m =
      sluice::from(records) | sluice::transform([](const std::string& s) { return s.size(); });
}
