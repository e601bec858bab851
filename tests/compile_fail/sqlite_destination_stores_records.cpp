// expect: sluice::sqlite::destination<R> stores R = sluice::record<Payload, Key>
// A user record type: the destination's tables have sluice::record's columns.
#include <sluice/sqlite/destination.hpp>

struct event {
  int id;
};

void build() { (void)sizeof(sluice::sqlite::destination<event>); }
