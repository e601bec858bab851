// expect: sluice::sqlite stores payloads that are std::string, std::vector<std::byte>
#include <sluice/sqlite/destination.hpp>

struct order {
  int id;
};

void build() { (void)sizeof(sluice::sqlite::destination<sluice::record<order>>); }
