// expect: sluice::invoke: the handler cannot be called with const sluice::batch<Record>& for the
// record type that reaches it, nor with one record or its payload A handler taking an unrelated
// type is neither a batch handler nor a per-record sink.
#include <string>
#include <vector>

#include "sluice/sluice.hpp"

int main() {
  std::vector<int> v{1, 2, 3};
  sluice::run(sluice::from(v) | sluice::invoke([](const std::string&) {}));
  return 0;
}
