// expect: sluice::maximum_payload_bytes_c<N>: N must be in 1\.\.2\^40
#include <sluice/stages.hpp>

void build() { [[maybe_unused]] auto b = sluice::maximum_payload_bytes_c<0>(); }
