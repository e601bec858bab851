// expect: sluice::maximum_retry_attempts_c<R>: R must be -1 \(infinite\) or 0\.\.10000
#include <sluice/stages.hpp>

void build() { [[maybe_unused]] auto r = sluice::maximum_retry_attempts_c<-2>(); }
