// expect: sluice::from: the argument is neither a sluice::source nor an input range
#include <sluice/mapping.hpp>

void build() { [[maybe_unused]] auto m = sluice::from(42); }
