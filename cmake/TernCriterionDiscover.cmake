# Run by tern_add_criterion_test after each build: turns `BIN --list` into add_test() lines.
# Criterion 2.4 prints "suite: N tests" then one "├── name" / "└── name" line per test.
execute_process(COMMAND ${BIN} --list OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${BIN} --list failed (${rc}): ${err}")
endif()
string(REPLACE "\n" ";" lines "${out}")
# Every test is labelled "criterion"; those that start tern daemons (DAEMONS) also "daemons":
# make tsan runs those from the normal build against TSan-built daemons (scripts/tsan.sh).
if(DAEMONS)
  set(labels "criterion;daemons")
else()
  set(labels "criterion")
endif()
set(content "")
set(suite "")
foreach(line IN LISTS lines)
  if(line MATCHES "^([A-Za-z0-9_]+): [0-9]+ tests?$")
    set(suite ${CMAKE_MATCH_1})
  elseif(line MATCHES "── ([A-Za-z0-9_]+)$")
    set(name ${CMAKE_MATCH_1})
    string(APPEND content
      "add_test(\"${PREFIX}.${suite}.${name}\" \"${BIN}\" --filter \"${suite}/${name}\" --jobs 1)\n"
      "set_tests_properties(\"${PREFIX}.${suite}.${name}\" PROPERTIES TIMEOUT ${TIMEOUT} LABELS \"${labels}\")\n")
  endif()
endforeach()
if(content STREQUAL "")
  message(FATAL_ERROR "${BIN} --list listed no tests")
endif()
file(WRITE ${OUT} "${content}")
