#!/usr/bin/env bash
# Runs the ctest suite of a build directory and ends with one line "N passed, N failed".
#   scripts/run-tests.sh BUILD_DIR [ctest args...]
# Also writes "passed failed" to BUILD_DIR/test-summary for .ci/run (or to $TEST_SUMMARY, with
# the log in $TEST_LOG: scripts/tsan.sh runs a second suite from another build's tests). Exit
# status 0 only if every test passed and at least one ran.
set -uo pipefail
build=${1:?usage: run-tests.sh BUILD_DIR}
shift
log=${TEST_LOG:-$build/test-output.log}
summary=${TEST_SUMMARY:-$build/test-summary}
export TERN_ARRAYS_QUIET=1
ctest --test-dir "$build" -j"$(nproc)" --output-on-failure --timeout 600 "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
if [ -z "$line" ]; then
  total=0; failed=0
else
  failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
fi
# Tests that skipped themselves (exit 77, e.g. network namespaces without root) are listed
# by ctest under "did not run"; they are neither passed nor failed.
skipped=$(grep -cE '^\s+[0-9]+ - .*\(Skipped\)' "$log" || true)
passed=$((total - failed - skipped))
if [ "$skipped" -gt 0 ]; then
  echo "$skipped skipped:"
  grep -E '^\s+[0-9]+ - .*\(Skipped\)' "$log"
fi
echo "$passed $failed" > "$summary"
echo "$passed passed, $failed failed"
if [ "$total" -eq 0 ]; then
  echo "run-tests: no test ran" >&2
  exit 1
fi
exit "$rc"
