// expect: sluice::retry takes maximum_retry_attempts\(n\), maximum_record_age\(d\), infinite_age,
// backoff A bare number: retry attempts or age? The error used to name detail::apply.
#include <sluice/stages.hpp>

void build() { [[maybe_unused]] auto r = sluice::retry(3); }
