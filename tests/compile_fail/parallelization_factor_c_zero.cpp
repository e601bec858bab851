// expect: sluice::parallelization_factor_c<P>: P must be in 1\.\.1024
#include <sluice/stages.hpp>

void build() { [[maybe_unused]] auto p = sluice::parallelization_factor_c<0>(); }
