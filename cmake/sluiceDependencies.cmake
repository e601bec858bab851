# Finds the dependency that ships no CMake package: moodycamel::ConcurrentQueue (Debian puts it in
# /usr/include/concurrentqueue/; code includes <concurrentqueue/concurrentqueue.h>). Used by the
# top-level CMakeLists.txt and, installed next to it, by sluiceConfig.cmake.
if(NOT TARGET sluice::concurrentqueue)
  find_path(SLUICE_CONCURRENTQUEUE_INCLUDE_DIR concurrentqueue/concurrentqueue.h
            DOC "Directory that contains concurrentqueue/concurrentqueue.h")
  if(NOT SLUICE_CONCURRENTQUEUE_INCLUDE_DIR)
    message(FATAL_ERROR "sluice needs moodycamel::ConcurrentQueue: install libconcurrentqueue-dev "
                        "or set SLUICE_CONCURRENTQUEUE_INCLUDE_DIR")
  endif()
  # An IMPORTED target's include directories are SYSTEM for its users, so moodycamel's warnings
  # (GCC 12's false -Wstringop-overflow) stay out of -Werror builds.
  add_library(sluice::concurrentqueue INTERFACE IMPORTED GLOBAL)
  set_target_properties(sluice::concurrentqueue PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${SLUICE_CONCURRENTQUEUE_INCLUDE_DIR}")
endif()
