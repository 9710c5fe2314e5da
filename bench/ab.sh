#!/usr/bin/env bash
# Runs tern-bench from two builds alternately, in one sitting, and prints each round's medians
# and the new/old ratio of their medians: the comparison a change's closing note reports.
#   bench/ab.sh OLD_BUILD NEW_BUILD [ROUNDS] [BENCH...]
# Defaults: 3 rounds of throughput_100k, chain, tree and scale (5 repeats each). Each build
# runs against its own daemons (local://2 finds them beside its libtern).
set -euo pipefail
old=${1:?usage: ab.sh OLD_BUILD NEW_BUILD [ROUNDS] [BENCH...]}
new=${2:?usage: ab.sh OLD_BUILD NEW_BUILD [ROUNDS] [BENCH...]}
rounds=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(throughput_100k chain tree scale)
export TERN_ARRAYS_QUIET=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for b in "${benches[@]}"; do
    for r in $(seq 1 "$rounds"); do
        for side in old new; do
            dir=$old; [ "$side" = new ] && dir=$new
            "$dir/bin/tern-bench" "$b" --repeat 5 | sed "s/^/$side /" >> "$out/$b.jsonl"
        done
    done
done
/usr/bin/python3 - "$out" "${benches[@]}" <<'PY'
import json, sys, statistics, os
out, benches = sys.argv[1], sys.argv[2:]
print(f"{'bench':18} {'unit':10} {'old rounds':32} {'new rounds':32} new/old")
for b in benches:
    rows = {"old": [], "new": []}
    unit = ""
    for line in open(os.path.join(out, b + ".jsonl")):
        side, js = line.split(" ", 1)
        d = json.loads(js)
        rows[side].append(d["median"])
        unit = d.get("unit", "")
    o, n = statistics.median(rows["old"]), statistics.median(rows["new"])
    fmt = lambda xs: " ".join(f"{x:.4g}" for x in xs)
    print(f"{b:18} {unit:10} {fmt(rows['old']):32} {fmt(rows['new']):32} {n / o:.3f}")
PY
