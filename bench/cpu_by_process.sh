#!/bin/sh
# cpu_by_process.sh TERN_BENCH SUBCOMMAND [ARGS...]
#
# Runs one tern-bench subcommand under `perf record -a` at 1000 Hz and prints its median and,
# for each process that ran, the samples it got: at 1000 Hz a sample is a millisecond of CPU,
# so the figures are each process's CPU in ms (its nng threads included), plus the idle
# samples perf saw ("swapper"; an idle vCPU is not always sampled, so this undercounts idle).
# The comparisons in docs/performance.md (changes 24 and after) alternate this between two
# builds in separate worktrees:
#
#   for r in 1 2 3; do
#     bench/cpu_by_process.sh /tmp/old/build/bin/tern-bench throughput_100k --repeat 5
#     bench/cpu_by_process.sh build/bin/tern-bench throughput_100k --repeat 5
#   done
#
# Needs perf (Debian's linux-perf) and root or kernel.perf_event_paranoid <= 0.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 TERN_BENCH SUBCOMMAND [ARGS...]" >&2
    exit 2
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
perf record -a -e cpu-clock -F 1000 -o "$dir/perf.data" -- "$@" >"$dir/out" 2>"$dir/err" || {
    cat "$dir/err" >&2
    exit 1
}
python3 - "$dir/out" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith('{'):
        d = json.loads(line)
        print(d['bench'], round(d['median'], 1), d['unit'], end=' ')
EOF
# comm of each process's main thread, and the samples of all its threads
perf script -i "$dir/perf.data" -F pid,tid,comm -G 2>/dev/null |
    awk '{ split($2, a, "/"); if (a[1] == a[2]) name[a[1]] = $1; n[a[1]]++ }
         END { for (p in n) if (n[p] > 100) print p, (p in name ? name[p] : "?"), n[p] }' |
    sort -k3 -rn | awk '{ printf "%s:%d ", $2, $3 } END { print "" }'
