// sluice/error.hpp: the errors sluice throws for a misuse that can only be seen at run time.
// configuration_error: a mapping, stream, store or option was given an invalid value; its
// message names the parameter, the value and the allowed range.
#pragma once

#include <stdexcept>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE

/// Thrown when a mapping, stream or store is built with an invalid parameter value.
class configuration_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

SLUICE_END_NAMESPACE
