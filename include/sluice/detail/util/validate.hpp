// sluice/detail/util/validate.hpp: the one place that turns an out-of-range configuration value
// into the error users see: "sluice: <parameter> = <value> is out of range; allowed: <range>".
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "sluice/config.hpp"
#include "sluice/error.hpp"

SLUICE_BEGIN_NAMESPACE

namespace detail {
template <class V>
[[noreturn]] void reject(std::string_view parameter, const V& value, std::string_view allowed) {
  std::ostringstream out;
  out.precision(15);  // a fractional value is shown as it is, not rounded into the range
  out << "sluice: " << parameter << " = " << value << " is out of range; allowed: " << allowed;
  throw configuration_error(out.str());
}

template <class V>
void require_in_range(std::string_view parameter, const V& value, const V& lo, const V& hi,
                      std::string_view allowed) {
  if (value < lo || value > hi) reject(parameter, value, allowed);
}
}  // namespace detail

SLUICE_END_NAMESPACE
