# cmake -DBUILD_DIR=... -DTARGET=... -DCONFIG=... -DSOURCE=... -P compile_fail.cmake
# Passes only if building TARGET fails and the output matches SOURCE's "// expect: <regex>".
file(STRINGS ${SOURCE} first_line LIMIT_COUNT 1)
string(REGEX REPLACE "^// expect: " "" expected "${first_line}")
set(config_args "")
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET} ${config_args}
                RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(result EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must fail with an error matching: ${expected}")
elseif(NOT output MATCHES "${expected}")
  message(FATAL_ERROR "${SOURCE} failed to compile, but no message matches: ${expected}\n${output}")
endif()
message(STATUS "${SOURCE} failed to compile as expected (matched: ${expected})")
