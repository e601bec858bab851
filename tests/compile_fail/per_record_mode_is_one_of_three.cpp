// expect: mode must be sluice::continue_on_failure, sluice::stop_on_first_failure or
#include <sluice/handlers/per_record.hpp>

#include <string>

void build() {
  auto handler = sluice::per_record([](const sluice::record<std::string>&) {}, true);
  (void)handler;
}
