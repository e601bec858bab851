// expect: sluice::batch_size_c<N>: N must be in 1\.\.10000
// A compile-time batch size of 0.
#include <sluice/stages.hpp>

void build() { [[maybe_unused]] auto stage = sluice::batching(sluice::batch_size_c<0>()); }
