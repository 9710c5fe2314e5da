#!/usr/bin/env bash
# make bench: tern, Dask and the floors in one run on this machine, then the comparison,
# then the Task Bench graphs (bench/taskbench/run.sh: about 3-6 minutes, --quick under one).
#   scripts/bench.sh BUILD_DIR [--quick]
# Writes every JSON line to bench/results/latest.jsonl, the table plus verdicts to
# bench/results/latest.json, and prints the table; the Task Bench run writes
# bench/results/taskbench.{jsonl,json,svg} and prints its own table.
set -euo pipefail
build=${1:?usage: bench.sh BUILD_DIR [--quick]}
quick=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bench/results"
mkdir -p "$out"
lines="$out/latest.jsonl"
: > "$lines"
export TERN_ARRAYS_QUIET=1
echo "bench: floors" >&2
"$build/bin/floor_tree" ${quick:+--quick} >> "$lines"
"$build/bin/floor_nng" ${quick:+--quick} >> "$lines"
echo "bench: tern" >&2
"$build/bin/tern-bench" all ${quick:+--quick} >> "$lines"
echo "bench: dask (default and worker-saturation: inf)" >&2
/usr/bin/python3 "$root/bench/dask/bench_dask.py" ${quick:+--quick} >> "$lines"
/usr/bin/python3 "$root/bench/compare.py" "$lines" --json "$out/latest.json"
echo "bench: Task Bench graphs (floor, tern, dask)" >&2
"$root/bench/taskbench/run.sh" "$build" ${quick:+--quick}
