// expect: sluice::skip_key_on_failure compares partition keys: the key type needs ==
// skip_key_on_failure must tell keys apart; this key type has no ==.
#include <sluice/handlers/per_record.hpp>

struct opaque_key {};

void build() {
  using R = sluice::record<int, opaque_key>;
  auto handler = sluice::per_record([](const R&) {}, sluice::skip_key_on_failure);
  [[maybe_unused]] auto failures = handler(sluice::batch<R>({}, 0));
}
