// expect: sluice::batching takes batch_size\(n\), maximum_batching_window\(d\),
// maximum_payload_bytes\(n\) A bare number: which parameter is it? The error used to name
// detail::apply.
#include <sluice/stages.hpp>

void build() { [[maybe_unused]] auto b = sluice::batching(100); }
