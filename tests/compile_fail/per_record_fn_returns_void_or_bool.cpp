// expect: sluice::per_record\(fn, mode\): fn must be callable as fn\(const R&\)
// An int result would read as a C status code (0 = success) but convert to false = failure.
#include <sluice/handlers/per_record.hpp>

#include <string>
#include <vector>

void run() {
  using record = sluice::record<std::string>;
  const std::vector<record> records;
  const sluice::batch<record> b(records, 0);
  auto handler = sluice::per_record([](const record&) { return 0; }, sluice::continue_on_failure);
  handler(b);
}
