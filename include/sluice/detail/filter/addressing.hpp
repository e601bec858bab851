// sluice/detail/filter/addressing.hpp: when a mapping is built, its filter_criteria stages are
// checked against its source (S-9.10): a queue message is addressed as `body` (Lambda's SQS
// event filtering), a stream record as `data` and its metadata fields. A pattern that addresses
// what the source's records lack would never match (a queue would delete every message), so it
// is a configuration_error naming the key. Only the filters before the first transform see the
// source's records; a predicate that is not a filter_criteria has nothing to check.
#pragma once

#include <boost/hana/for_each.hpp>
#include <type_traits>

#include "sluice/config.hpp"
#include "sluice/detail/compose/stage_kinds.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail {

template <bool Queue, class Stages>
void check_filter_addressing(const Stages& stages) {
  bool transformed = false;
  boost::hana::for_each(stages, [&](const auto& stage) {
    using st = std::remove_cvref_t<decltype(stage)>;
    if constexpr (is_transform<st>) {
      transformed = true;
    } else if constexpr (is_filter<st>) {
      if constexpr (requires { stage.pred.check_addressing(Queue); }) {
        if (!transformed) stage.pred.check_addressing(Queue);
      }
    }
  });
}

}  // namespace detail
SLUICE_END_NAMESPACE
