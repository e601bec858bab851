# cmake -DBUILD_DIR=... -DTARGET=... -DCONFIG=... -DSOURCE=... -P compile_fail.cmake
# Passes only if building TARGET fails, its first error matches SOURCE's "// expect: <regex>",
# and the compiler reports exactly one error (a misuse gives one error, not a cascade). A source
# whose second line is "// errors: N (why)" expects N errors instead; keep such exceptions rare.
# Read as text, not as a list: an expected message may contain ';'.
file(READ ${SOURCE} text LIMIT 4000)
string(REGEX MATCH "^// expect: ([^\n]*)" first_line "${text}")
set(expected "${CMAKE_MATCH_1}")
set(expected_errors 1)
if(text MATCHES "^[^\n]*\n// errors: ([0-9]+)")
  set(expected_errors ${CMAKE_MATCH_1})
endif()
set(config_args "")
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET} ${config_args}
                RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(result EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must fail with an error matching: ${expected}")
endif()
string(REGEX MATCHALL ": error: " errors "${output}")
list(LENGTH errors error_count)
if(error_count EQUAL 0)
  message(FATAL_ERROR "${SOURCE} failed to build, but the compiler reported no error:\n${output}")
endif()
string(REGEX MATCH "[^\n]*: error: [^\n]*" first_error "${output}")
if(NOT first_error MATCHES "${expected}")
  message(FATAL_ERROR "${SOURCE}: the first error does not match: ${expected}\n${output}")
endif()
if(NOT error_count EQUAL expected_errors)
  message(FATAL_ERROR "${SOURCE}: ${error_count} errors, expected ${expected_errors}:\n${output}")
endif()
message(STATUS "${SOURCE} failed to compile as expected, with ${error_count} error(s) (matched: ${expected})")
