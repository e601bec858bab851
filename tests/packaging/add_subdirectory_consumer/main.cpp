// Smallest complete use of sluice: a range source, a handler, run to the end.
#include <sluice/sluice.hpp>

#include <vector>

int main() {
  std::vector<sluice::record<int>> v{{"a", 1, {}, 5}, {"b", 2, {}, 7}};
  int sum = 0;
  sluice::run(sluice::from(v) | sluice::invoke([&](const sluice::batch<sluice::record<int>>& b) {
                for (auto& r : b) sum += r.payload;
              }));
  return sum == 12 ? 0 : 1;
}
