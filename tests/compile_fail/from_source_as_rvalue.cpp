// expect: sluice::from: pass the source as an lvalue; the mapping refers to it
// A temporary stream would be gone before the mapping reads it.
#include <sluice/mapping.hpp>
#include <sluice/sources/memory_stream.hpp>

void build() { [[maybe_unused]] auto m = sluice::from(sluice::memory_stream<int>(1)); }
