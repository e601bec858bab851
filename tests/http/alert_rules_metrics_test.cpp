// The alert rules (docs/alerts/sluice.rules.yml) name only series that sluice::http really
// serves: a metric renamed in the exporter, or misspelt in a rule, fails here. (promtool test
// rules, tests/ops/, checks what the rules do with those series.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <string>

#include "sluice/http/metrics_server.hpp"
#include "sluice/sluice.hpp"

namespace {

TEST(AlertRules, EveryMetricTheyUseIsServed) {
  const auto rules_path =
      std::filesystem::path(__FILE__).parent_path() / "../../docs/alerts/sluice.rules.yml";
  std::ifstream in(rules_path);
  ASSERT_TRUE(in) << rules_path;
  const std::string rules{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};

  sluice::memory_stream<int> stream(1);
  stream.put("k", 1);
  auto running = sluice::start(sluice::from(stream) |
                               sluice::invoke([](const sluice::batch<sluice::record<int>>&) {}));
  ASSERT_TRUE(running.wait_until_caught_up(std::chrono::seconds(60)));
  sluice::http::metrics_server server;
  server.watch(running);
  const std::string served = server.render_metrics();

  std::set<std::string> used;
  const std::regex metric(R"(\bsluice_[a-z_]+)");
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), metric);
       it != std::sregex_iterator(); ++it)
    used.insert(it->str());
  used.erase("sluice_destination_error_info");  // only while deliveries fail; checked below
  EXPECT_GE(used.size(), 8u);
  for (const std::string& name : used) {
    EXPECT_NE(served.find("\n" + name + "{"), std::string::npos)
        << name << " is used by a rule but not served";
  }
  EXPECT_NE(served.find("# TYPE sluice_destination_error_info gauge"), std::string::npos);
  running.stop();
}

}  // namespace
