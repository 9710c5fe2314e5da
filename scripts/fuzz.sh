#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build for SECONDS each, starting from the committed
# seed corpus, in a scratch directory (findings are kept there and the script fails).
#   scripts/fuzz.sh FUZZ_BUILD_DIR SECONDS
set -euo pipefail
build=${1:?usage: fuzz.sh BUILD_DIR SECONDS}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
status=0
for target in "$build"/bin/fuzz_*; do
  [ -x "$target" ] || continue
  name=$(basename "$target")
  work=$(mktemp -d "/tmp/tern-$name-XXXXXX")
  mkdir -p "$work/corpus"
  if [ -d "$root/tests/fuzz/corpus/${name#fuzz_}" ]; then
    cp "$root/tests/fuzz/corpus/${name#fuzz_}"/* "$work/corpus/" 2>/dev/null || true
  elif [ -d "$root/tests/fuzz/corpus" ]; then
    find "$root/tests/fuzz/corpus" -maxdepth 1 -type f -exec cp {} "$work/corpus/" \;
  fi
  t=$seconds
  # fuzz_protocol's decoders are also driven by fuzz_scheduler: half the time keeps CI's total
  # within 30 s of what it was.
  [ "$name" = fuzz_protocol ] && t=$(( (seconds + 1) / 2 ))
  echo "fuzz: $name for ${t}s (scratch $work)"
  if (cd "$work" && "$target" -max_total_time="$t" -max_len=65536 -print_final_stats=1 \
        corpus 2>"$work/log"); then
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|cov:' "$work/log" | tail -n 3
    rm -rf "$work"
  else
    tail -n 60 "$work/log"
    echo "fuzz: $name found a problem; reproducer and log kept in $work" >&2
    status=1
  fi
done
exit $status
