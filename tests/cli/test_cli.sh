#!/usr/bin/env bash
# The tern CLI end to end: a real tern-scheduler and tern-worker on loopback (port 0), driven
# only through build/bin/tern (plus tests/cli_hold_key, a client that keeps one key alive for
# who-has).
#   test_cli.sh BUILD_DIR
set -euo pipefail
build=$1
tern=$build/bin/tern
plugins=$build/lib/tern/plugins
work=$(mktemp -d /tmp/tern-cli-XXXXXX)
pids=()
stop_daemons() { # kill what we started; fail if anything is still alive after 5 s
  local p alive=0
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 100); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.05
  done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$alive" = 1 ]; then
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    echo "FAIL: scheduler or worker still running 5 s after SIGTERM" >&2
    return 1
  fi
}
cleanup() {
  local rc=$?
  stop_daemons || rc=1
  if [ "$rc" != 0 ]; then
    echo "--- scheduler log" >&2; cat "$work/scheduler.log" >&2 || true
    echo "--- worker log" >&2; cat "$work/worker.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect STATUS CMD...: runs CMD (30 s at most), output in $work/out and $work/err
expect() {
  local want=$1 rc=0
  shift
  timeout 30 "$@" >"$work/out" 2>"$work/err" || rc=$?
  if [ "$rc" != "$want" ]; then
    echo "--- stdout"; cat "$work/out"; echo "--- stderr"; cat "$work/err"
    fail "exit status $rc, want $want: $*"
  fi
}
# same STRING CMD...: CMD succeeds and prints exactly STRING
same() {
  local want=$1
  shift
  expect 0 "$@"
  [ "$(cat "$work/out")" = "$want" ] || fail "$*: printed '$(cat "$work/out")', want '$want'"
}

"$build/bin/tern-scheduler" --listen tcp://127.0.0.1:0 --address-file "$work/addr" \
  --http none --exit-with-parent 2>"$work/scheduler.log" &
pids+=($!)
for _ in $(seq 200); do [ -s "$work/addr" ] && break; sleep 0.05; done
addr=$(cat "$work/addr")
case "$addr" in tcp://127.0.0.1:[0-9]*) ;; *) fail "bad bound address '$addr'" ;; esac
"$build/bin/tern-worker" --scheduler "$addr" --name cli-w1 --exit-with-parent \
  2>"$work/worker.log" &
pids+=($!)
export TERN_SCHEDULER=$addr
for _ in $(seq 200); do
  "$tern" status --json 2>/dev/null | grep -q '"cli-w1"' && break
  sleep 0.05
done

# Usage errors: exit 2, a message, nothing sent.
expect 2 "$tern"
expect 2 "$tern" frobnicate
grep -q 'unknown command' "$work/err" || fail "no message for an unknown command"
expect 2 "$tern" --bogus status
expect 2 "$tern" call
expect 2 "$tern" call inc 41
grep -q 'PLUGIN:SYMBOL' "$work/err" || fail "no message for a task name without a plugin"
expect 2 "$tern" call testplug:inc '{oops'
grep -q 'argument 1 is not JSON' "$work/err" || fail "no message for bad JSON"
expect 2 "$tern" call testplug:echo hello
grep -q 'JSON quotes' "$work/err" || fail "no hint for unquoted text"
expect 2 "$tern" call arrays:sum '{"f64": [1, 2, 3], "shape": [2, 2]}'
grep -q 'shape' "$work/err" || fail "no message for a bad shape"
expect 2 "$tern" status --bogus
expect 2 "$tern" who-has
expect 0 "$tern" --help
grep -q 'usage: tern' "$work/out" || fail "--help prints no usage"

# No scheduler there: exit 1 with the reason.
expect 1 "$tern" --scheduler tcp://127.0.0.1:1 status
grep -q 'connection refused' "$work/err" || fail "no reason for a refused connection"

# upload
expect 0 "$tern" upload "$plugins/testplug.so"
cat "$work/out"
grep -Eq '^id +[0-9a-f]{64}$' "$work/out" || fail "upload printed no id"
grep -Eq '^name +testplug$' "$work/out" || fail "upload printed no name"
grep -Eq '^version +1\.0\.0$' "$work/out" || fail "upload printed no version"
grep -Eq '^tasks +5$' "$work/out" || fail "upload printed no task count"
expect 1 "$tern" upload "$plugins/wrong_abi.so"
grep -q 'ABI' "$work/err" || fail "no reason for a refused plugin"

# call: results as JSON
same 42 "$tern" call testplug:inc 41
same 42 env -u TERN_SCHEDULER "$tern" --scheduler "$addr" call testplug:inc 41
same -4 "$tern" call testplug:inc -5
same 6.5 "$tern" call arrays:sum '{"f64":[1,2,3.5]}'
same '{"f64": [4, 6]}' "$tern" call arrays:add '{"f64":[1,2]}' '{"f64":[3,4]}'
same '{"f64": [2, 4, 6, 8], "shape": [2, 2]}' \
  "$tern" call arrays:add '{"f64":[1,2,3,4],"shape":[2,2]}' '{"f64":[1,2,3,4],"shape":[2,2]}'
same '{"i64": [1, -2], "shape": [1, 2]}' "$tern" call testplug:echo '{"i64":[1,-2],"shape":[1,2]}'
same '{"f64": [10, 20, 1e+20]}' "$tern" call arrays:add '{"f64":[5,10,1e20]}' '{"f64":[5,10,0]}'
same 10.0 "$tern" call testplug:echo 10.0
same 2.0 "$tern" call testplug:echo 2.0
same 0.1 "$tern" call testplug:echo 0.1
same '"héllo \"x\"\n"' "$tern" call testplug:echo '"h\u00e9llo \"x\"\n"'
same '{"a": [1, 2.5, null, true, "s"]}' "$tern" call testplug:echo '{"a":[1,2.5,null,true,"s"]}'
same '{"bytes": "00ff"}' "$tern" call testplug:echo '{"bytes":"00FF"}'
same '{"map": {"ref": "x"}}' "$tern" call testplug:echo '{"map":{"ref":"x"}}'
same '{"f64": ["NaN", "-Infinity", 1]}' "$tern" call testplug:echo '{"f64":["NaN","-Infinity",1]}'

# A failing task: exit 1, message, task and key on stderr.
expect 1 "$tern" call testplug:fail
cat "$work/err"
grep -q 'failing on purpose' "$work/err" || fail "no task message"
grep -q 'task: *testplug:fail' "$work/err" || fail "no task name"
grep -Eq 'key: *fail-[0-9a-f]{32}' "$work/err" || fail "no key"
[ ! -s "$work/out" ] || fail "a failed call printed a result"
# A dependency that does not exist.
expect 1 "$tern" call testplug:inc '{"ref": "no-such-key"}'
grep -q 'does not have' "$work/err" || fail "no message for a missing dependency"
# A plugin nobody uploaded.
expect 1 "$tern" call nosuch:task
grep -q 'nosuch' "$work/err" || fail "no message for an unknown plugin"

# status
expect 0 "$tern" status
cat "$work/out"
grep -Eq '^workers +1$' "$work/out" || fail "status does not show 1 worker"
grep -Eq '^cli-w1 +tcp://127\.0\.0\.1:[0-9]+ +1 ' "$work/out" || fail "status lacks the worker row"
expect 0 "$tern" status --json
python3 -m json.tool "$work/out" >/dev/null || fail "status --json is not JSON"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert len(s["workers"]) == 1 and s["workers"][0]["name"] == "cli-w1", s' \
  "$work/out" || fail "status --json does not list the worker"

# progress: `call --progress` draws plain lines on a non-terminal stderr; `status --watch`
# repeats the table with a bar per task symbol.
expect 0 "$tern" call --progress testplug:inc 99
[ "$(cat "$work/out")" = 100 ] || fail "call --progress printed '$(cat "$work/out")'"
grep -q '^progress 1/1 (100%), .* took ' "$work/err" || fail "call --progress drew no progress"
# on a terminal (script(1) gives it one): a bar redrawn in place with \r
script -qec "$tern call --progress testplug:inc 7" /dev/null >"$work/tty" 2>&1 ||
  fail "call --progress on a terminal failed: $(cat "$work/tty")"
grep -q $'\r\\[#\\{30\\}\\] 1/1 100%' "$work/tty" || fail "no terminal progress bar: $(od -c "$work/tty" | head)"
grep -q '^8' <(tr -d '\r' <"$work/tty" | tail -n 1) || fail "call --progress on a terminal printed no result"
expect 0 "$tern" status --watch --count 2 --interval 0.1
[ "$(grep -c '^workers ' "$work/out")" = 2 ] || fail "status --watch --count 2 did not print twice"
grep -Eq '^testplug:inc +\[#+\] [0-9]+/[0-9]+ done$' "$work/out" || fail "status shows no progress per task"
expect 2 "$tern" status --watch --interval 0

# who-has: a key held by another client, and one nobody has.
coproc HOLD { "$build/tests/cli_hold_key" "$addr"; }
pids+=("$HOLD_PID")
read -r -t 30 key <&"${HOLD[0]}" || fail "hold_key printed no key"
same "{\"$key\": [\"cli-w1\"]}" "$tern" who-has "$key"
same '{"no-such-key": []}' "$tern" who-has no-such-key
eval "exec ${HOLD[1]}>&-"
wait "$HOLD_PID" || fail "hold_key failed"
same '{"no-such-key": []}' "$tern" who-has no-such-key

# local://N: a throwaway cluster for one command.
same 6.0 env -u TERN_SCHEDULER "$tern" --scheduler local://1 call arrays:sum '{"f64":[1,2,3]}'

stop_daemons
pids=()
echo "cli: ok"
