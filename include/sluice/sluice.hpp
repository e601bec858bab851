// sluice/sluice.hpp: the umbrella header: everything a mapping needs, except the optional
// adapters (sluice/sqlite/..., sluice/json_lines_destination.hpp, sluice/per_record.hpp).
#pragma once

#include "sluice/batch.hpp"
#include "sluice/checkpoint.hpp"
#include "sluice/clock.hpp"
#include "sluice/config.hpp"
#include "sluice/failure.hpp"
#include "sluice/hash.hpp"
#include "sluice/json_lines_destination.hpp"
#include "sluice/mapping.hpp"
#include "sluice/memory_stream.hpp"
#include "sluice/metrics.hpp"
#include "sluice/options.hpp"
#include "sluice/per_record.hpp"
#include "sluice/prometheus.hpp"
#include "sluice/range_source.hpp"
#include "sluice/record.hpp"
#include "sluice/run.hpp"
#include "sluice/runtime.hpp"
#include "sluice/source.hpp"
#include "sluice/stages.hpp"
