// expect: sluice::rate_limit takes records_per_second\(rate\[, burst\]\) and/or
// invocations_per_second A bare number: records or invocations per second?
#include <sluice/limits.hpp>

void build() { [[maybe_unused]] auto r = sluice::rate_limit(100); }
