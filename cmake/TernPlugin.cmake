# tern_add_plugin(<target> <sources...>): a tern plugin shared object, built -fPIC -shared
# against the SDK headers and libtern, with no undefined symbols left (-z defs) and written to
# TERN_PLUGIN_OUTPUT_DIR (or the current library output directory when that is unset).
# Installed as part of the CMake package so out-of-tree plugins use the same helper.
function(tern_add_plugin target)
  add_library(${target} MODULE ${ARGN})
  target_link_libraries(${target} PRIVATE tern::tern)
  set_target_properties(${target} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden)
  if(TERN_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${TERN_PLUGIN_OUTPUT_DIR})
  endif()
  if(NOT TERN_SANITIZE)
    target_link_options(${target} PRIVATE -Wl,-z,defs)
  endif()
endfunction()
