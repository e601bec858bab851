// expect: sluice::tumbling_window_c<s>: s must be in 1\.\.900
#include <sluice/window.hpp>

void build() { [[maybe_unused]] auto w = sluice::tumbling_window_c<901>(); }
