# Warnings and sanitizers for sluice's own executables (tests, examples, benchmarks). Never applied
# to the INTERFACE targets, so users of sluice::sluice get neither.
set(_sluice_sanitize_flags "")
if(SLUICE_SANITIZE STREQUAL "address,undefined")
  set(_sluice_sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=all)
elseif(SLUICE_SANITIZE STREQUAL "thread")
  # -Wno-tsan: GCC 12 warns, inside moodycamel's inlined code, that TSan ignores
  # std::atomic_thread_fence; the warning is not suppressible per header.
  set(_sluice_sanitize_flags -fsanitize=thread -Wno-tsan)
elseif(NOT SLUICE_SANITIZE STREQUAL "")
  message(FATAL_ERROR "SLUICE_SANITIZE must be \"\", \"address,undefined\" or \"thread\", "
                      "not \"${SLUICE_SANITIZE}\"")
endif()
if(_sluice_sanitize_flags)
  list(APPEND _sluice_sanitize_flags -fno-omit-frame-pointer)
endif()

function(sluice_target_options target)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)  # -std=c++20, not gnu++20
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic
                         $<$<BOOL:${SLUICE_WERROR}>:-Werror> ${_sluice_sanitize_flags})
  target_link_options(${target} PRIVATE ${_sluice_sanitize_flags})
endfunction()
