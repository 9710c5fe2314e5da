#!/usr/bin/env bash
# ctest bench.taskbench_quick: floor_taskbench and tern-taskbench (local://2) on one small
# stencil (10 steps, 100 us tasks, plus a 2 x 10-task empty stencil) exit 0, and print JSON
# lines in the bench format with the Task Bench fields; the results were checked by the
# programs themselves against the reference computation. A few seconds.
#   check_quick.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: check_quick.sh BUILD_DIR}
out=$(mktemp /tmp/tern-taskbench-quick-XXXXXX)
trap 'rm -f "$out"' EXIT
export TERN_ARRAYS_QUIET=1
args=(--patterns stencil --durations 100 --steps 10 --repeat 1 --empty-steps 10
      --empty-repeats 1 --extend-to 0 --stop-below 0)
timeout 60 "$build/bin/floor_taskbench" "${args[@]}" > "$out"
timeout 60 "$build/bin/tern-taskbench" "${args[@]}" >> "$out"
cat "$out"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
want = {("floor", "taskbench_empty"), ("floor", "taskbench"), ("tern", "taskbench_empty"),
        ("tern", "taskbench")}
got = {(r["system"], r["bench"]) for r in rows}
if got != want or len(rows) != 4:
    sys.exit(f"lines: got {sorted(got)} in {len(rows)} lines, want {sorted(want)}")
for r in rows:
    for k, t in [("median", (int, float)), ("min", (int, float)), ("max", (int, float)),
                 ("repeats", int), ("unit", str), ("pattern", str), ("width", int),
                 ("steps", int), ("task_us", (int, float)), ("iters_per_us", (int, float))]:
        if not isinstance(r.get(k), t):
            sys.exit(f"field {k!r} missing or of the wrong type: {r}")
    if r["bench"] == "taskbench":
        for k in ["kernel_us_measured", "elapsed_s", "efficiency", "utilization"]:
            if not isinstance(r.get(k), (int, float)) or r[k] <= 0:
                sys.exit(f"field {k!r} missing or not positive: {r}")
        if r["steps"] != 10 or r["tasks"] != 20:
            sys.exit(f"want 10 steps, 20 tasks: {r}")
    else:
        if not (r["fresh_s"] > 0 and r["warm_s"] > 0 and r["tasks"] == 20):
            sys.exit(f"bad empty line: {r}")
print("ok: floor and tern, sweep point and empty stencil")
PY
