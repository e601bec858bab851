// expect: sluice::sqlite stores partition keys of type std::string or an integer type
// A string_view key could not own what it reads back.
#include <sluice/sqlite/stream.hpp>

#include <string>
#include <string_view>

void build() { (void)sizeof(sluice::sqlite::stream<std::string, std::string_view>); }
