// sluice/sluice.hpp: the umbrella header: everything a mapping needs, except the optional
// adapters (sluice/sqlite/...).
#pragma once

#include "sluice/batch.hpp"
#include "sluice/checkpoint.hpp"
#include "sluice/clock.hpp"
#include "sluice/config.hpp"
#include "sluice/destinations/json_lines.hpp"
#include "sluice/error.hpp"
#include "sluice/exporters/prometheus.hpp"
#include "sluice/failure.hpp"
#include "sluice/handlers/per_record.hpp"
#include "sluice/hash.hpp"
#include "sluice/mapping.hpp"
#include "sluice/metrics.hpp"
#include "sluice/options.hpp"
#include "sluice/record.hpp"
#include "sluice/run.hpp"
#include "sluice/source.hpp"
#include "sluice/sources/memory_stream.hpp"
#include "sluice/sources/range_source.hpp"
#include "sluice/stages.hpp"
#include "sluice/start.hpp"
