# What `cmake --install` puts where, beyond the SDK (sdk/CMakeLists.txt installs the headers,
# libtern, tern.pc and the CMake package):
#   bin/                         tern-scheduler, tern-worker, tern, tern-plugin-info
#   <libdir>/tern/plugins/       arrays.so, the built-in plugin the scheduler preloads
# The programs find libtern through an $ORIGIN-relative RUNPATH, so a prefix can be moved.
include(GNUInstallDirs)
set(TERN_INSTALL_PLUGINDIR ${CMAKE_INSTALL_LIBDIR}/tern/plugins)
set(_tern_programs tern-scheduler tern-worker tern-cli tern-plugin-info)
foreach(t IN LISTS _tern_programs)
  set_target_properties(${t} PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
endforeach()
# Where the scheduler looks for arrays.so, relative to its own executable (it also tries the
# build tree's ../lib/tern/plugins).
target_compile_definitions(tern-scheduler PRIVATE
                           TERN_PLUGIN_RELDIR="../${TERN_INSTALL_PLUGINDIR}")
install(TARGETS ${_tern_programs} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS arrays LIBRARY DESTINATION ${TERN_INSTALL_PLUGINDIR})
