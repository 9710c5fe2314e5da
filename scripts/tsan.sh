#!/usr/bin/env bash
# The suite under ThreadSanitizer (make tsan). Ends with one line "N passed, N failed".
#   scripts/tsan.sh BUILD_DIR TSAN_BUILD_DIR
#
# Criterion cannot run under TSan: its BoxFort arena is mapped with MAP_FIXED at a random
# address that TSan's mmap interceptor refuses ("Could not initialize inheritable arena",
# Snaipe/Criterion#274). So, in two parts:
#  1. every test of TSAN_BUILD_DIR that is not a Criterion binary (label "criterion"): the shell
#     tests (security with the hostile run, TLS, CLI, dashboard, bench, docs, install) and the
#     tree_reduce demo, all running TSan-built daemons, CLI, client library and test clients;
#  2. the Criterion tests that start daemons (label "daemons": the integration suite, the
#     token variant, the flood test) from BUILD_DIR, uninstrumented, with every daemon they
#     start taken from TSAN_BUILD_DIR: the harness's $TERN_TEST_BIN_DIR and local://'s
#     $TERN_BIN_DIR point there. Their client side is not instrumented (part 1 covers the client
#     library), their daemons are.
# Every TSan process writes its reports to a file under TSAN_BUILD_DIR/tsan-reports (TSAN_OPTIONS
# log_path) and suppressions come from tests/tsan.supp. Any report file fails the run, printed.
# Reports are written when a race is detected, so a daemon stopped by a signal loses none.
set -uo pipefail
build=$(cd "${1:?usage: tsan.sh BUILD_DIR TSAN_BUILD_DIR}" && pwd)
tsan=$(cd "${2:?usage: tsan.sh BUILD_DIR TSAN_BUILD_DIR}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
here=$(dirname "$0")
reports=$tsan/tsan-reports
rm -rf "$reports"
mkdir -p "$reports"
# handle_segv=0: tests/integration's faultplug:segfault crashes workers on purpose and expects
# them killed by SIGSEGV; TSan's handler would print a SEGV report and exit 66 instead. A real
# crash still fails the test that sees it, without TSan's stack trace.
export TSAN_OPTIONS="suppressions=$root/tests/tsan.supp:log_path=$reports/tsan:second_deadlock_stack=1:handle_segv=0${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

echo "== tsan part 1: the tests of $tsan that are not Criterion binaries (all TSan-built)"
TEST_LOG=$tsan/test-output-part1.log TEST_SUMMARY=$tsan/test-summary-part1 \
  "$here/run-tests.sh" "$tsan" -LE criterion
rc1=$?
# Part 2 means nothing if the daemons it points at are not instrumented. (grep without -q:
# with pipefail, grep -q quitting early would fail nm with SIGPIPE.)
for d in tern-scheduler tern-worker; do
  nm "$tsan/bin/$d" 2>/dev/null | grep __tsan_init >/dev/null ||
    { echo "tsan: $tsan/bin/$d is not built with ThreadSanitizer" >&2; exit 1; }
done
echo "== tsan part 2: the Criterion tests that start daemons, from $build, with the daemons of $tsan"
TEST_LOG=$tsan/test-output-part2.log TEST_SUMMARY=$tsan/test-summary-part2 \
  TERN_TEST_BIN_DIR=$tsan/bin TERN_BIN_DIR=$tsan/bin \
  "$here/run-tests.sh" "$build" -L daemons
rc2=$?
read -r p1 f1 < "$tsan/test-summary-part1" || { p1=0; f1=1; }
read -r p2 f2 < "$tsan/test-summary-part2" || { p2=0; f2=1; }
# Any TSan report is a failure, counted once per report file.
nreports=0
for f in "$reports"/tsan.*; do
  [ -e "$f" ] || continue
  nreports=$((nreports + 1))
  echo "==== ThreadSanitizer report: $f" >&2
  cat "$f" >&2
done
echo "$((p1 + p2)) $((f1 + f2 + nreports))" > "$tsan/test-summary"
echo "tsan: part 1 $p1 passed, $f1 failed; part 2 $p2 passed, $f2 failed; $nreports TSan report files"
echo "$((p1 + p2)) passed, $((f1 + f2 + nreports)) failed"
[ "$rc1" = 0 ] && [ "$rc2" = 0 ] && [ "$nreports" = 0 ]
