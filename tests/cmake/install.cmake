# cmake -DBUILD_DIR=... -DCONFIG=... -DPREFIX=... -P install.cmake: a fresh install of the build tree.
file(REMOVE_RECURSE ${PREFIX})
set(config_args "")
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} ${config_args} --prefix ${PREFIX}
                COMMAND_ERROR_IS_FATAL ANY)
