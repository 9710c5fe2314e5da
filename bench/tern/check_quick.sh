#!/usr/bin/env bash
# ctest bench.tern_quick: `tern-bench all --quick` exits 0 and prints one JSON object per line,
# one for every benchmark, each with the fields bench/compare.py reads.
#   check_quick.sh PATH/TO/tern-bench
set -euo pipefail
bench=${1:?usage: check_quick.sh TERN_BENCH}
out=$(mktemp /tmp/tern-bench-quick-XXXXXX)
trap 'rm -f "$out"' EXIT
export TERN_ARRAYS_QUIET=1
"$bench" all --quick > "$out"
cat "$out"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
want = ["latency", "throughput_20k", "throughput_100k", "chain", "tree", "startup",
        "transfer", "scale"]
seen, rows = [], {}
with open(sys.argv[1]) as f:
    for n, line in enumerate(f, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            sys.exit(f"line {n} is not JSON: {e}: {line!r}")
        if not isinstance(row, dict):
            sys.exit(f"line {n} is not a JSON object: {line!r}")
        for k, t in [("bench", str), ("system", str), ("unit", str), ("median", (int, float)),
                     ("min", (int, float)), ("max", (int, float)), ("repeats", int)]:
            if not isinstance(row.get(k), t) or isinstance(row.get(k), bool):
                sys.exit(f"line {n}: field {k!r} missing or of the wrong type: {line!r}")
        if row["system"] != "tern" or not row["min"] <= row["median"] <= row["max"]:
            sys.exit(f"line {n}: bad values: {line!r}")
        seen.append(row["bench"])
        rows[row["bench"]] = row
missing = [b for b in want if b not in seen]
if missing or len(seen) != len(want):
    sys.exit(f"benchmarks missing: {missing}; got {seen}")
for b, field in [("latency", "p99"), ("startup", "connect_ms"), ("transfer", "moved_ms"),
                 ("scale", "bytes_per_task")]:
    if field not in rows[b]:
        sys.exit(f"{b} has no {field!r}")
print(f"ok: {len(seen)} benchmarks")
PY
