// The names that the documentation's `// snippet: fragment` blocks use without declaring them:
// an order type, handlers, a checkpoint store, the mapping the guide composes first, and the
// SQLite stream of docs/embedded.md. Fragments are compiled, never run.
#pragma once

#include <chrono>
#include <sluice/sluice.hpp>
#include <string>
#include <utility>
#include <vector>
#ifdef SLUICE_DOCS_WITH_SQLITE
#include <sluice/sqlite/checkpoint_store.hpp>
#include <sluice/sqlite/database.hpp>
#include <sluice/sqlite/destination.hpp>
#include <sluice/sqlite/stream.hpp>
#endif

using namespace std::chrono_literals;

struct order {
  std::string customer;
  long amount = 0;
};
inline bool valid(const order& o) { return !o.customer.empty(); }
struct order_ledger {
  void apply(const order&) {}
};
inline order_ledger ledger;

/// The guide's sink: amounts after its transform, reporting failed records.
inline sluice::batch_item_failures apply_amounts(const sluice::batch<sluice::record<long>>&) {
  return {};
}
inline void handle_orders(const sluice::batch<sluice::record<order>>&) {}
inline sluice::batch_item_failures apply_orders(const sluice::batch<sluice::record<order>>&) {
  return {};
}

inline sluice::memory_checkpoint_store store;
inline sluice::memory_stream<order> doc_orders(4);
/// "the mapping" of the guide's later snippets.
inline auto mapping = sluice::from(doc_orders) | sluice::batching() | sluice::invoke(handle_orders);

#ifdef SLUICE_DOCS_WITH_SQLITE
/// docs/embedded.md's handler and stream (its second snippet puts into the first one's stream).
inline void apply(const sluice::batch<sluice::record<std::string>>&) {}
inline sluice::sqlite::stream<std::string> orders("data/orders.db");
#endif
