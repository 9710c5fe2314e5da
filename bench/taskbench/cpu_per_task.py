#!/usr/bin/env python3
"""CPU per task of each tern process on a dependent graph (issue 23, part 3).

Runs tern-taskbench's empty stencil (W x N tasks of 0 us, so every sample is runtime overhead)
under `perf record -a` at 1000 Hz and adds up each process's samples (its nng threads
included): at 1000 Hz a sample is a millisecond of CPU. Prints one JSON line per build:
{"build", "tasks", "elapsed_s", "scheduler_us", "workers_us", "client_us", "total_us"}
(microseconds of CPU per task). Alternate two builds to compare them in one sitting:

    bench/taskbench/cpu_per_task.py --taskbench build/bin/tern-taskbench \\
        --plugin build/lib/tern/plugins/taskbench.so OLD/build/bin build/bin --rounds 3

Each build is the bin directory whose tern-scheduler and tern-worker local://2 runs
(TERN_BIN_DIR); the client is the given tern-taskbench. Needs perf and root (or
kernel.perf_event_paranoid <= 0). Other processes on the machine are not counted, but they
slow the ones that are.
"""
import argparse, collections, json, os, subprocess, sys, tempfile


def by_process(data):
    out = subprocess.run(["perf", "script", "-i", data, "-F", "pid,tid,comm"],
                         capture_output=True, text=True, check=True).stdout
    samples, names = collections.Counter(), {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2 or "/" not in parts[-1]:
            continue
        pid, tid = parts[-1].split("/")
        samples[pid] += 1
        if pid == tid:
            names[pid] = " ".join(parts[:-1])
    return samples, names


def run(args, bindir):
    env = dict(os.environ, TERN_BIN_DIR=bindir, TERN_ARRAYS_QUIET="1")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        cmd = ["perf", "record", "-q", "-a", "-F", "1000", "-o", data, "--",
               args.taskbench, "--plugin", args.plugin, "--patterns", "stencil", "--no-sweep",
               "--width", str(args.width), "--empty-steps", str(args.steps),
               "--empty-repeats", "1"]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"cpu_per_task: {' '.join(cmd)} failed:\n{p.stderr}")
        lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        samples, names = by_process(data)
    client_pid = None
    tasks = args.width * args.steps
    cpu = collections.Counter()
    for pid, n in samples.items():
        name = names.get(pid, "?")
        if name.startswith("tern-scheduler"):
            cpu["scheduler"] += n
        elif name in ("exe", "tern-worker") or name.startswith("tern-worker"):
            cpu["workers"] += n
        elif name.startswith("tern-taskbench"):
            cpu["client"] += n
    us = {k: cpu[k] * 1000.0 / tasks for k in ("scheduler", "workers", "client")}
    elapsed = next((l.get("median") for l in lines if l.get("bench") == "taskbench_empty"), None)
    return {"build": bindir, "tasks": tasks, "empty_stencil_s": elapsed,
            "scheduler_us": round(us["scheduler"], 1), "workers_us": round(us["workers"], 1),
            "client_us": round(us["client"], 1), "total_us": round(sum(us.values()), 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bindirs", nargs="+", help="bin directories of the builds to compare")
    ap.add_argument("--taskbench", required=True)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--width", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    for _ in range(args.rounds):
        for b in args.bindirs:
            print(json.dumps(run(args, os.path.abspath(b))), flush=True)


if __name__ == "__main__":
    main()
