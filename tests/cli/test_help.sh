#!/usr/bin/env bash
# Every program the build makes answers --help: exit status 0, a usage text on stdout, within
# 10 s and without starting anything (a sample's default is local://2). Also the daemons'
# shared option: --log-level takes a level and refuses anything else with exit 2.
#   test_help.sh BUILD_DIR
set -euo pipefail
build=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
out=$(mktemp /tmp/tern-help-XXXXXX)
trap 'rm -f "$out" "$out.err"' EXIT
n=0
for exe in "$build"/bin/*; do
  [ -x "$exe" ] && [ -f "$exe" ] || continue
  name=$(basename "$exe")
  rc=0
  timeout 10 "$exe" --help >"$out" 2>"$out.err" || rc=$?
  [ "$rc" = 0 ] || fail "$name --help: exit status $rc: $(cat "$out.err")"
  grep -qi '^usage' "$out" || fail "$name --help prints no usage line on stdout"
  echo "ok   $name --help: $(head -n 1 "$out")"
  n=$((n + 1))
done
[ "$n" -ge 9 ] || fail "only $n programs in $build/bin"
for d in tern-scheduler tern-worker; do
  grep -q -- '--log-level' <(timeout 10 "$build/bin/$d" --help) || fail "$d --help does not mention --log-level"
  rc=0
  timeout 10 "$build/bin/$d" --log-level loud >/dev/null 2>"$out.err" || rc=$?
  [ "$rc" = 2 ] || fail "$d --log-level loud: exit status $rc, want 2"
  grep -q 'must be error, warn, info or debug' "$out.err" || fail "$d: no message for a bad level"
  timeout 10 "$build/bin/$d" --log-level=debug --help >/dev/null || fail "$d --log-level=debug --help"
done
grep -q -- '--http' <(timeout 10 "$build/bin/tern-scheduler" --help) || fail "tern-scheduler --help does not mention --http"
echo "help: $n programs ok"
