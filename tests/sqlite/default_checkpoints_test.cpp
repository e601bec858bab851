// A durable source keeps its own checkpoints: without a checkpoints(store) option, a mapping over
// a sluice::sqlite::stream resolves its checkpoint store to the stream's file (so a restart
// resumes instead of reprocessing everything), while an in-memory source keeps an in-memory store.
#include <gtest/gtest.h>

#include <string>
#include <type_traits>

#include "sluice/sluice.hpp"
#include "sluice/sqlite/checkpoint_store.hpp"
#include "sluice/sqlite/stream.hpp"
#include "support/temp_dir.hpp"

namespace {

using text_stream = sluice::sqlite::stream<std::string>;
using R = sluice::record<std::string>;

auto handler() {
  return sluice::invoke([](const sluice::batch<R>&) {});
}

static_assert(sluice::detail::provides_checkpoint_store<text_stream>);
static_assert(!sluice::detail::provides_checkpoint_store<sluice::memory_stream<std::string>>);

TEST(DefaultCheckpoints, ASqliteStreamMappingUsesTheStreamsOwnStore) {
  sluice_test::temp_dir dir;
  text_stream stream(dir / "orders.db");
  auto m = sluice::from(stream) | handler();
  using options = sluice::detail::resolved_options_for<decltype(m)>;
  static_assert(std::is_same_v<options::store_type, sluice::sqlite::checkpoint_store>);
  options o(m);
  EXPECT_EQ(o.store, &stream.default_checkpoint_store());
  EXPECT_EQ(o.owned_store, nullptr);
  EXPECT_EQ(o.store->file(), stream.default_checkpoint_store().file());
}

TEST(DefaultCheckpoints, TheStreamsCheckpointsLiveInItsFileAndSurviveARestart) {
  sluice_test::temp_dir dir;
  {
    text_stream stream(dir / "orders.db");
    stream.default_checkpoint_store().save("ledger", 0, 42);
  }
  text_stream reopened(dir / "orders.db");
  EXPECT_EQ(reopened.default_checkpoint_store().load("ledger", 0), 42u);
  sluice::sqlite::checkpoint_store same_file(dir / "orders.db");
  EXPECT_EQ(same_file.load("ledger", 0), 42u);
}

TEST(DefaultCheckpoints, AnExplicitCheckpointsOptionWinsAndLeavesTheStreamsStoreUnopened) {
  sluice_test::temp_dir dir;
  text_stream stream(dir / "orders.db");
  sluice::memory_checkpoint_store memory;
  auto m = sluice::from(stream) | handler();
  sluice::detail::resolved_options_for<decltype(m),
                                       sluice::checkpoints_option<sluice::memory_checkpoint_store>>
      o(m, sluice::checkpoints(memory));
  EXPECT_EQ(o.store, &memory);
  sluice::sqlite::database db(dir / "orders.db");
  EXPECT_EQ(db.schema_version("checkpoints"), 0);  // no checkpoint table was created
}

TEST(DefaultCheckpoints, AnInMemorySourceGetsAFreshInMemoryStore) {
  sluice::memory_stream<std::string> stream(1);
  auto m = sluice::from(stream) | handler();
  using options = sluice::detail::resolved_options_for<decltype(m)>;
  static_assert(std::is_same_v<options::store_type, sluice::memory_checkpoint_store>);
  options o(m);
  ASSERT_NE(o.owned_store, nullptr);
  EXPECT_EQ(o.store, o.owned_store.get());
}

// End to end: sluice::run and sluice::start without checkpoints(...) over a SQLite stream resume
// where the last run stopped, instead of reprocessing everything.
TEST(DefaultCheckpoints, RunAndStartResumeWithoutACheckpointsOption) {
  sluice_test::temp_dir dir;
  text_stream stream(dir / "orders.db");
  for (int i = 0; i < 5; ++i) stream.put("k", std::to_string(i));
  std::size_t seen = 0;
  auto count = [&](const sluice::batch<R>& b) { seen += b.size(); };
  sluice::run(sluice::from(stream) | sluice::invoke(count));
  EXPECT_EQ(seen, 5u);
  sluice::run(sluice::from(stream) | sluice::invoke(count));
  EXPECT_EQ(seen, 5u) << "a second run reprocessed records";
  for (int i = 0; i < 3; ++i) stream.put("k", std::to_string(i));
  {
    auto running = sluice::start(sluice::from(stream) | sluice::invoke(count));
    running.wait_until_caught_up();
    running.stop();
  }
  EXPECT_EQ(seen, 8u);
  sluice::run(sluice::from(stream) | sluice::invoke(count));
  EXPECT_EQ(seen, 8u);
}

}  // namespace
