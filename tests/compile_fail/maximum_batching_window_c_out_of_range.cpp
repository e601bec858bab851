// expect: sluice::maximum_batching_window_c<ms>: ms must be in 0\.\.300000
#include <sluice/stages.hpp>

void build() { [[maybe_unused]] auto w = sluice::maximum_batching_window_c<300'001>(); }
