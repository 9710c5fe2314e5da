#!/usr/bin/env bash
# The dashboard end to end: a real tern-scheduler (--http on a free port) and two workers on
# loopback run a known workload (workload.c: 12 arange + 12 sum + 1 failing sum, held in
# memory); then
#   - /api/status and /metrics must report the workload's numbers,
#   - headless Chromium loads the page, and the numbers its script wrote into the DOM must
#     match (check_dom.py); a screenshot goes to BUILD_DIR/dashboard.png,
#   - an explicit --http address that is taken is an error, a taken default is a warning.
#   test_dashboard.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
here=$src/tests/dashboard
work=$(mktemp -d /tmp/tern-dashboard-XXXXXX)
pids=()
cleanup() {
  local rc=$? p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$rc" != 0 ]; then
    for f in scheduler.log w1.log w2.log workload.err chromium.err; do
      [ -f "$work/$f" ] && { echo "--- $f" >&2; tail -n 30 "$work/$f" >&2; }
    done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || fail "chromium is not installed (scripts/deps.sh installs Debian's chromium)"

# fetch URL: the body on stdout (python3 rather than curl, which the suite does not install)
fetch() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$1"; }

"$build/bin/tern-scheduler" --listen tcp://127.0.0.1:0 --address-file "$work/addr" \
  --http 127.0.0.1:0 --exit-with-parent 2>"$work/scheduler.log" &
pids+=($!)
for _ in $(seq 200); do [ -s "$work/addr" ] && break; sleep 0.05; done
addr=$(cat "$work/addr")
"$build/bin/tern-worker" --scheduler "$addr" --name dash-w1 --nthreads 2 --exit-with-parent \
  2>"$work/w1.log" &
pids+=($!)
"$build/bin/tern-worker" --scheduler "$addr" --name dash-w2 --exit-with-parent \
  2>"$work/w2.log" &
pids+=($!)
for _ in $(seq 200); do
  n=$("$build/bin/tern" --scheduler "$addr" status --json 2>/dev/null | grep -c '"dash-w' || true)
  [ "$n" = 2 ] && break
  sleep 0.05
done
[ "$n" = 2 ] || fail "the workers did not register"
url=$("$build/bin/tern" --scheduler "$addr" status --json |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["dashboard"])')
case "$url" in http://127.0.0.1:[0-9]*/) ;; *) fail "status names no dashboard: '$url'" ;; esac
grep -q "dashboard at $url" "$work/scheduler.log" || fail "the scheduler did not log the dashboard address"
grep -Eq '^ts=[0-9T:.-]+Z level=info proc=tern-scheduler msg="listening on ' "$work/scheduler.log" ||
  fail "the scheduler's log lines are not structured"

# The workload; it holds its futures until we close its stdin.
coproc LOAD { "$build/tests/dashboard_workload" "$addr" 2>"$work/workload.err"; }
pids+=("$LOAD_PID")
read -r -t 60 ready <&"${LOAD[0]}" || fail "the workload did not finish"
[ "$ready" = ready ] || fail "workload said '$ready'"
grep -q '^progress 25/25 (100%), .* 1 failed$' "$work/workload.err" ||
  fail "tern_progress wrote no final plain line: $(cat "$work/workload.err")"

# The page is fed a snapshot at most 250 ms old: wait until it has caught up.
for _ in $(seq 100); do
  fetch "${url}api/status" >"$work/status.json"
  python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); sys.exit(0 if s["tasks_done"] == 24 and s["tasks"]["memory"] == 24 else 1)' "$work/status.json" && break
  sleep 0.1
done
python3 - "$work/status.json" <<'PY' || fail "/api/status does not match the workload"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["tasks_done"] == 24 and s["tasks_erred"] == 1, s
assert {k: v for k, v in s["tasks"].items() if k != "released"} == {"waiting": 0, "no-worker": 0, "processing": 0, "memory": 24, "erred": 1}, s["tasks"]
assert s["tasks"].get("released", 0) == 0, s["tasks"]
assert s["symbols"]["arrays:arange"]["done"] == 12 and s["symbols"]["arrays:sum"]["done"] == 12, s["symbols"]
assert s["symbols"]["arrays:sum"]["failed"] == 1, s["symbols"]
assert len(s["stream"]) == 25 and sum(c["erred"] for c in s["stream"]) == 1, s["stream"]
assert all(c["start_ms"] <= c["stop_ms"] for c in s["stream"])
assert sum(w["keys"] for w in s["workers"]) >= 24, s["workers"]  # copies count per worker
assert sum(w["tasks_done"] for w in s["workers"]) == 24, s["workers"]
assert all(w["rss_bytes"] > 100000 for w in s["workers"]), s["workers"]
assert s["duration_histogram"]["count"] == 24 and sum(s["duration_histogram"]["counts"]) == 24
print("api/status: ok")
PY
fetch "${url}metrics" >"$work/metrics"
for want in 'tern_tasks{state="memory"} 24' 'tern_tasks{state="erred"} 1' \
            'tern_tasks_done_total 24' 'tern_tasks_erred_total 1' \
            'tern_symbol_tasks_done_total{symbol="arrays:arange"} 12' \
            'tern_task_duration_seconds_count 24' 'tern_task_duration_seconds_bucket{le="+Inf"} 24' \
            'tern_worker_threads{worker="dash-w1"} 2' 'tern_worker_threads{worker="dash-w2"} 1' \
            'tern_workers 2' 'tern_workers_lost_total 0' 'tern_recomputed_total 0'; do
  grep -qxF "$want" "$work/metrics" || fail "/metrics lacks the line: $want"
done
grep -Eq '^tern_worker_memory_bytes\{worker="dash-w1"\} [1-9][0-9]*$' "$work/metrics" ||
  fail "/metrics lacks per-worker host memory"
for w in dash-w1 dash-w2; do
  grep -Eq "^tern_worker_rss_bytes\\{worker=\"$w\"\\} [1-9][0-9]{5,}\$" "$work/metrics" ||
    fail "/metrics lacks the resident memory of $w"
done
grep -Eq '^tern_transfer_bytes_total [0-9]+$' "$work/metrics" || fail "/metrics lacks bytes transferred"
echo "metrics: ok"

# The page in a real browser. --virtual-time-budget lets the page's fetch and rendering run
# before the DOM is dumped.
chrome=(timeout 90 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run
        --user-data-dir="$work/chromium" --virtual-time-budget=10000 --window-size=1280,1000)
HOME=$work "${chrome[@]}" --dump-dom "$url" >"$work/dom.html" 2>"$work/chromium.err" ||
  fail "chromium --dump-dom failed"
python3 "$here/check_dom.py" "$work/dom.html" "$work/status.json" || fail "the page does not show the workload's numbers"
rm -f "$build/dashboard.png"
HOME=$work "${chrome[@]}" --screenshot="$build/dashboard.png" "$url" 2>>"$work/chromium.err" ||
  fail "chromium --screenshot failed"
[ -s "$build/dashboard.png" ] || fail "no screenshot"
echo "screenshot: $build/dashboard.png"

eval "exec ${LOAD[1]}>&-"
wait "$LOAD_PID" || fail "the workload failed"

# Port clashes: an explicit --http that is taken is an error with a clear message...
port=${url#http://127.0.0.1:}
port=${port%/}
if timeout 10 "$build/bin/tern-scheduler" --listen tcp://127.0.0.1:0 --http "127.0.0.1:$port" \
     2>"$work/clash.log"; then
  fail "a second scheduler on a taken --http port started"
fi
grep -q "cannot serve the dashboard on --http 127.0.0.1:$port" "$work/clash.log" ||
  fail "no clear message for a taken --http port: $(cat "$work/clash.log")"
# $TERN_HTTP is an explicit choice too
if TERN_HTTP="127.0.0.1:$port" timeout 10 "$build/bin/tern-scheduler" --listen tcp://127.0.0.1:0 \
     2>"$work/clash.log"; then
  fail "a scheduler started with a taken \$TERN_HTTP"
fi
grep -q "cannot serve the dashboard" "$work/clash.log" || fail "no message for a taken \$TERN_HTTP"
# ... and --http none runs without one.
"$build/bin/tern-scheduler" --listen tcp://127.0.0.1:0 --address-file "$work/addr2" --http none \
  --exit-with-parent 2>"$work/none.log" &
pids+=($!)
for _ in $(seq 200); do [ -s "$work/addr2" ] && break; sleep 0.05; done
"$build/bin/tern" --scheduler "$(cat "$work/addr2")" status --json >"$work/none.json"
if grep -q '"dashboard"' "$work/none.json"; then fail "--http none still serves a dashboard"; fi
echo "dashboard: ok"
