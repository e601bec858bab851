// expect: sluice::sqlite stores payloads that are std::string, std::vector<std::byte>
// A struct payload needs a payload_codec to be stored.
#include <sluice/sqlite/stream.hpp>

struct order {
  int id;
};

void build() { (void)sizeof(sluice::sqlite::stream<order>); }
