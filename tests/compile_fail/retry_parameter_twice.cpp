// expect: sluice::retry: a parameter is given twice
#include <sluice/stages.hpp>

void build() {
  [[maybe_unused]] auto r =
      sluice::retry(sluice::maximum_retry_attempts(1), sluice::maximum_retry_attempts(2));
}
