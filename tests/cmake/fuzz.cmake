# cmake -DFUZZER=<filter_fuzz> -DWORK=<dir> -DSEEDS=<dir> -DSECONDS=<n> -P fuzz.cmake
# Runs a libFuzzer target for a bounded time: new inputs go to WORK (a build directory), the
# committed seed corpus SEEDS is only read. Fails if the fuzzer reports a finding.
file(MAKE_DIRECTORY ${WORK})
execute_process(COMMAND ${FUZZER} -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048
                        -print_final_stats=1 ${WORK} ${SEEDS}
                RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
string(REGEX MATCH "stat::number_of_executed_units: *[0-9]+" executed "${output}")
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${FUZZER} found a problem (exit ${result}):\n${output}")
endif()
message(STATUS "${FUZZER}: no finding in ${SECONDS} s (${executed})")
