#!/usr/bin/env bash
# The Slurm batch script in docs/operations.md runs: extracted from the doc and run on this
# machine as a one-node allocation, with stand-ins for srun and scontrol (srun runs its
# command here; scontrol lists this host), the build's programs instead of /opt/tern, the
# test plugin as "kernels.so" and a job that calls it. The script must start the scheduler
# and the worker, run the job, and stop everything.
#   test_slurm.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d /tmp/tern-slurm-XXXXXX)
job=
cleanup() { # the batch script runs in a process group of its own: stop whatever is left of it
  local rc=$?
  [ -n "$job" ] && kill -KILL -- "-$job" 2>/dev/null || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
mkdir -p "$work/bin" "$work/kernels/build"
cat >"$work/bin/scontrol" <<'SH'
#!/bin/sh
# scontrol show hostnames LIST -> this host
hostname -s
SH
cat >"$work/bin/srun" <<'SH'
#!/bin/sh
# srun [options] command...: run the command here (one node, one task)
while [ $# -gt 0 ]; do
  case "$1" in
    -w) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
exec "$@"
SH
cp "$build/lib/tern/plugins/testplug.so" "$work/kernels/build/kernels.so"
cat >"$work/kernels/build/myjob" <<SH
#!/bin/sh
# the user's program: calls the uploaded plugin on the cluster given as \$1
echo "job result: \$("$build/bin/tern" --scheduler "\$1" call testplug:inc 41)"
SH
chmod +x "$work/bin/"* "$work/kernels/build/myjob"
python3 - "$src/docs/operations.md" "$work/job.sh" "$build/bin" <<'PY'
import re, sys
doc, out, bindir = sys.argv[1:]
text = open(doc, encoding="utf-8").read()
m = re.search(r"```bash\n(#!/bin/bash\n#SBATCH.*?)```", text, re.S)
if not m:
    sys.exit("operations.md: no Slurm batch script")
script = re.sub(r"(?m)^TERN=\S+", "TERN=" + bindir, m.group(1))
open(out, "w").write(script)
PY
grep -q "^TERN=$build/bin" "$work/job.sh" || { echo "FAIL: could not point the script at the build" >&2; exit 1; }
export PATH="$work/bin:$PATH" HOME=$work SLURM_JOB_NODELIST=thishost SLURM_JOB_NUM_NODES=1 \
       SLURM_CPUS_PER_TASK=2 SLURM_JOB_ID=$((RANDOM % 1000)) TERN_ARRAYS_QUIET=1
unset TERN_SCHEDULER
setsid bash "$work/job.sh" >"$work/out" 2>&1 &
job=$!
for _ in $(seq 1200); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
kill -0 "$job" 2>/dev/null && { cat "$work/out" >&2; echo "FAIL: the batch script ran over 120 s" >&2; exit 1; }
wait "$job" || { cat "$work/out" >&2; echo "FAIL: the batch script failed" >&2; exit 1; }
cat "$work/out"
grep -qx 'job result: 42' "$work/out" || { echo "FAIL: the job did not run on the cluster" >&2; exit 1; }
grep -q "worker $(hostname -s) joined (2 threads" "$work/out" || { echo "FAIL: no worker with the allocation's cores" >&2; exit 1; }
for _ in $(seq 50); do kill -0 -- "-$job" 2>/dev/null || break; sleep 0.1; done
if kill -0 -- "-$job" 2>/dev/null; then echo "FAIL: the script left daemons running" >&2; exit 1; fi
echo "slurm: ok"
