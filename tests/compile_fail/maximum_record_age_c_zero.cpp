// expect: sluice::maximum_record_age_c<s>: s must be > 0
#include <sluice/stages.hpp>

void build() { [[maybe_unused]] auto a = sluice::maximum_record_age_c<0>(); }
