# tern_add_plugin(<name> [SOURCES] <sources...> [OUTPUT_DIRECTORY <dir>])
#
# Builds a tern plugin: a shared object <name>.so (no "lib" prefix) compiled against the SDK
# headers, linked to libtern, with hidden visibility (only TERN_PLUGIN / TERN_TASK symbols are
# exported) and no undefined symbols left (-z defs), so a missing library is a link error
# here rather than a dlopen error on a worker. The result is written to OUTPUT_DIRECTORY, else
# TERN_PLUGIN_OUTPUT_DIR when set, else the usual library output directory. The target is an
# ordinary CMake target: add libraries with target_link_libraries(<name> PRIVATE ...).
#
#   find_package(tern 0.1 REQUIRED)
#   tern_add_plugin(kernels SOURCES kernels.c util.c)
#   target_link_libraries(kernels PRIVATE m)
#
# Installed as part of the CMake package, so out-of-tree plugins use the same helper as the
# plugins in this tree. The SOURCES keyword is optional (tern_add_plugin(name a.c) works).
function(tern_add_plugin target)
  cmake_parse_arguments(PARSE_ARGV 1 TERN_PLUGIN "" "OUTPUT_DIRECTORY" "SOURCES")
  set(sources ${TERN_PLUGIN_SOURCES} ${TERN_PLUGIN_UNPARSED_ARGUMENTS})
  if(NOT sources)
    message(FATAL_ERROR "tern_add_plugin(${target}): no source files (tern_add_plugin(${target} SOURCES file.c ...))")
  endif()
  add_library(${target} MODULE ${sources})
  target_link_libraries(${target} PRIVATE tern::tern)
  set_target_properties(${target} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden)
  if(TERN_PLUGIN_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${TERN_PLUGIN_OUTPUT_DIRECTORY})
  elseif(TERN_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${TERN_PLUGIN_OUTPUT_DIR})
  endif()
  if(NOT TERN_SANITIZE)
    target_link_options(${target} PRIVATE -Wl,-z,defs)
  endif()
endfunction()
