# tern_add_criterion_test(<target> [DAEMONS] SOURCES <sources...> [LIBS libs...] [TIMEOUT s])
# DAEMONS: the tests start tern daemons (labelled "daemons" for make tsan); all are "criterion".
# Builds a Criterion test binary and registers each of its tests with ctest, one ctest test
# per Criterion test (discovered after the build by running `<binary> --list`, the way
# gtest_discover_tests works). Each runs as `<binary> --filter suite/name`, so ctest -j runs
# them in parallel, times each out separately and counts them one by one.
function(tern_add_criterion_test target)
  cmake_parse_arguments(ARG "DAEMONS" "TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 60)
  endif()
  add_executable(${target} ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE PkgConfig::CRITERION ${ARG_LIBS})
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  set(list_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_tests.cmake)
  set(include_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_include.cmake)
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -D BIN=$<TARGET_FILE:${target}> -D OUT=${list_file}
            -D TIMEOUT=${ARG_TIMEOUT} -D PREFIX=${target} -D DAEMONS=${ARG_DAEMONS}
            -P ${PROJECT_SOURCE_DIR}/cmake/TernCriterionDiscover.cmake
    BYPRODUCTS ${list_file} VERBATIM)
  file(WRITE ${include_file}
       "if(EXISTS \"${list_file}\")\n  include(\"${list_file}\")\nelse()\n"
       "  add_test(${target}_NOT_BUILT ${target}_NOT_BUILT)\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${include_file})
endfunction()
