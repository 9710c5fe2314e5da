#!/usr/bin/python3
"""Dask `distributed` side of the Task Bench graphs (bench/README.md, "Task Bench graphs").

    /usr/bin/python3 bench/taskbench/taskbench_dask.py --lib BUILD/lib/libtb_kernel.so
        [--quick] [--patterns LIST] [--durations LIST] [--width W] [--radix K] [--steps N]
        [--repeat N] [--target-s X] [--max-s X] [--stop-below E] [--no-sweep] [--no-empty]
        [--empty-steps N] [--empty-repeats N] [--iters-per-us X] [--system NAME]

Design notes
- Cluster: LocalCluster(n_workers=2, threads_per_worker=1, processes=True), Dask's shipped
  configuration (the "dask-default" of bench/dask/bench_dask.py), one cluster for the run.
- A graph is submitted step by step as client.submit(tbkernel.task, s, i, iterations,
  *dependency futures, pure=False); the previous step's list of futures is dropped once the
  next is submitted (the dependents keep the keys alive), and the last step is gathered.
  The clock runs from the first submit to the gathered values, which are checked against
  tb_graph_reference_flat from libtb_kernel.so (the C reference of tern-taskbench and the
  floor, so this file's patterns are checked against graph.c's too).
- The kernel runs through ctypes from libtb_kernel.so, the one object every system links
  (tbkernel.py). Calibration and the per-point check (tb_calibrate, tb_measure_us) are the
  same C functions the C programs call, run in this process.
- Steps per point, efficiency (ideal elapsed / elapsed), the upward extension when the
  first point is below 50 %, the stop rule and the JSON fields follow sweep.c exactly.
  The empty stencil runs once fresh and --empty-repeats (default 1) times warm: a Dask step
  costs several ms here, so 2 x 1,000 tasks take seconds.
- Between runs: wait until the scheduler holds no task (the released futures are gone).
"""
import argparse
import json
import logging
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tbkernel  # noqa: E402

PATTERNS = ["stencil", "nocomm", "tree", "nearest", "all_to_all"]  # graph.h's order
CLUSTER = "LocalCluster(n_workers=2, threads_per_worker=1, processes=True)"
T_START = time.perf_counter()


def log(msg):
    print(f"[taskbench_dask {time.perf_counter() - T_START:6.1f}s] {msg}", file=sys.stderr,
          flush=True)


# ---- the patterns (graph.c) ----

def tree_depth(width):
    d = 1
    while (1 << d) < width:
        d += 1
    return d


def width_at(pattern, width, s):
    if pattern != "tree":
        return width
    d = tree_depth(width)
    level = s % (2 * d)
    if level > d:
        level = 2 * d - level
    return min(width, 1 << level)


def clipped(lo, hi, width):
    return list(range(max(lo, 0), min(hi, width - 1) + 1))


def deps(pattern, width, radix, s, i):
    if s <= 0:
        return []
    if pattern == "stencil":
        return clipped(i - 1, i + 1, width)
    if pattern == "nocomm":
        return [i]
    if pattern == "nearest":
        k = max(radix, 1)
        lo = i - (k - 1) // 2
        return clipped(lo, lo + k - 1, width)
    if pattern == "all_to_all":
        return list(range(width))
    wp, wc = width_at(pattern, width, s - 1), width_at(pattern, width, s)
    if wc > wp:
        return [i // 2]
    if wc < wp:
        return clipped(2 * i, 2 * i + 1, wp)
    return [i]


def n_tasks(pattern, width, steps):
    return sum(width_at(pattern, width, s) for s in range(steps))


def n_slots(pattern, width, steps, workers):
    return sum(-(-width_at(pattern, width, s) // workers) for s in range(steps))


def reference(pattern, width, radix, steps, k):
    import ctypes
    out = (ctypes.c_uint64 * width)()
    n = tbkernel.lib().tb_graph_reference_flat(PATTERNS.index(pattern), width, radix, steps, k,
                                               out)
    if n < 1:
        raise RuntimeError("tb_graph_reference_flat failed")
    return list(out[:n])


# ---- running ----

def n_scheduler_tasks(dask_scheduler):
    return len(dask_scheduler.tasks)


def settle(c, timeout=120):
    deadline = time.monotonic() + timeout
    while c.run_on_scheduler(n_scheduler_tasks) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"scheduler still holds tasks after {timeout} s")
        time.sleep(0.01)


def run_graph(c, a, pattern, steps, iterations, want):
    """One run, checked; its elapsed seconds."""
    settle(c)
    t0 = time.perf_counter()
    prev = []
    for s in range(steps):
        prev = [c.submit(tbkernel.task, s, i, iterations,
                         *[prev[j] for j in deps(pattern, a.width, a.radix, s, i)], pure=False)
                for i in range(width_at(pattern, a.width, s))]
    got = c.gather(prev)
    dt = time.perf_counter() - t0
    if list(got) != want:
        raise RuntimeError(f"{pattern}: last step {got}, want {want} ({steps} steps, "
                           f"{iterations} iterations)")
    return dt


def emit(a, bench, unit, values, **extra):
    import dask
    import distributed
    values = sorted(values)
    row = {"bench": bench, "system": a.system, "unit": unit,
           "median": statistics.median(values), "min": values[0], "max": values[-1],
           "repeats": len(values)}
    row.update(extra)
    row.update({"iters_per_us": a.iters_per_us, "calibration": a.calibration,
                "quick": a.quick, "cluster": CLUSTER, "dask": distributed.__version__,
                "worker_saturation": dask.config.get("distributed.scheduler.worker-saturation")})
    print(json.dumps(row), flush=True)


def run_empty(c, a):
    steps = a.empty_steps
    want = reference("stencil", a.width, a.radix, steps, tbkernel.lib().tb_kernel(0))
    tasks = n_tasks("stencil", a.width, steps)
    log(f"empty stencil, {tasks} tasks")
    fresh = run_graph(c, a, "stencil", steps, 0, want)
    warm = [run_graph(c, a, "stencil", steps, 0, want) for _ in range(a.empty_repeats)] or [fresh]
    med = statistics.median(warm)
    emit(a, "taskbench_empty", "s", warm, pattern="stencil", width=a.width, steps=steps,
         tasks=tasks, task_us=0, workers=a.workers, fresh_s=fresh, warm_s=med,
         per_task_us=med * 1e6 / tasks)
    log(f"empty stencil: fresh {fresh:.3f} s, warm {med:.3f} s")


def choose_steps(a, pattern, task_us, overhead_s):
    if a.steps:
        return a.steps
    ideal_step_s = n_slots(pattern, a.width, 4096, a.workers) / 4096 * task_us * 1e-6
    tasks_per_step = n_tasks(pattern, a.width, 4096) / 4096
    steps = a.target_s / ideal_step_s if ideal_step_s > 0 else a.max_tasks
    if overhead_s is not None and ideal_step_s + overhead_s > 0:
        steps = min(steps, a.max_s / (ideal_step_s + overhead_s))
    steps = min(steps, a.max_tasks / tasks_per_step)
    return max(int(round(steps)), a.min_steps)


def kernel_reps(task_us):
    r = 30000.0 / task_us if task_us > 0 else 1000
    return 3 if r < 3 else 1000 if r > 1000 else int(r)


def run_point(c, a, pattern, task_us, overhead_s):
    """One point: emits its line; returns (median efficiency, overhead per step)."""
    L = tbkernel.lib()
    steps = choose_steps(a, pattern, task_us, overhead_s)
    iterations = int(round(task_us * a.iters_per_us))
    kernel_us = L.tb_measure_us(iterations, kernel_reps(task_us))
    want = reference(pattern, a.width, a.radix, steps, L.tb_kernel(iterations))
    tasks = n_tasks(pattern, a.width, steps)
    slots = n_slots(pattern, a.width, steps, a.workers)
    ideal_s = slots * task_us * 1e-6  # the best schedule's elapsed time
    work_s = tasks * task_us * 1e-6  # kernel time in all
    el = [run_graph(c, a, pattern, steps, iterations, want) for _ in range(a.repeats)]
    eff = [ideal_s / e for e in el]
    el_med, eff_med = statistics.median(el), statistics.median(eff)
    extra = {"pattern": pattern, "width": a.width}
    if pattern == "nearest":
        extra["radix"] = a.radix
    extra.update(steps=steps, tasks=tasks, workers=a.workers, task_us=task_us,
                 iterations=iterations, kernel_us_measured=kernel_us, elapsed_s=el_med,
                 elapsed_min_s=min(el), elapsed_max_s=max(el), efficiency=eff_med,
                 utilization=work_s / (el_med * a.workers),
                 ideal_utilization=work_s / (ideal_s * a.workers))
    emit(a, "taskbench", "efficiency", eff, **extra)
    log(f"{pattern:10} {task_us:8.0f} us x {tasks:6d} tasks: {el_med:.3f} s, "
        f"efficiency {eff_med:.3f}")
    return eff_med, max(el_med - ideal_s, 0) / steps


def next_up(d):
    """The next duration up the 1-3-10 series: 10000 -> 30000 -> 100000."""
    m = d / 10 ** math.floor(math.log10(d))
    return d * 3 if m < 2 else d * 10 / 3


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lib", default=os.environ.get("TB_KERNEL_LIB"),
                   help="libtb_kernel.so (default $TB_KERNEL_LIB)")
    p.add_argument("--system", default="dask")
    p.add_argument("--patterns", default=",".join(PATTERNS))
    p.add_argument("--durations", default=None)
    p.add_argument("--width", type=int, default=2)
    p.add_argument("--radix", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--min-steps", type=int, default=10)
    p.add_argument("--max-tasks", type=int, default=200000)
    p.add_argument("--target-s", type=float, default=None)
    p.add_argument("--max-s", type=float, default=None)
    p.add_argument("--repeat", dest="repeats", type=int, default=None)
    p.add_argument("--stop-below", type=float, default=0.10)
    p.add_argument("--extend-to", type=float, default=None)
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--no-empty", action="store_true")
    p.add_argument("--empty-steps", type=int, default=1000)
    p.add_argument("--empty-repeats", type=int, default=1)
    p.add_argument("--iters-per-us", type=float, default=0)
    p.add_argument("--quick", action="store_true",
                   help="durations 1000,100; 0.05 s per repeat; 1 repeat; --extend-to 10000")
    a = p.parse_args()
    if not a.lib:
        p.error("--lib BUILD/lib/libtb_kernel.so (or $TB_KERNEL_LIB) is required")
    a.lib = os.path.abspath(a.lib)
    pats = a.patterns.split(",")
    for pat in pats:
        if pat not in PATTERNS:
            p.error(f"unknown pattern {pat!r}: one of {', '.join(PATTERNS)}")
    if a.width < 1:
        p.error("--width wants at least 1")
    quick_or = lambda q, full: q if a.quick else full  # noqa: E731
    durations = ([float(x) for x in a.durations.split(",")] if a.durations
                 else quick_or([1000.0, 100.0], [10000.0, 3000.0, 1000.0, 300.0, 100.0, 30.0,
                                                 10.0]))
    a.target_s = a.target_s or quick_or(0.05, 0.3)
    a.max_s = a.max_s or quick_or(0.25, 1.0)
    a.repeats = a.repeats or quick_or(1, 3)
    a.extend_to = a.extend_to if a.extend_to is not None else quick_or(10000.0, 100000.0)

    # The workers inherit these: they import tbkernel and load the same library.
    os.environ["TB_KERNEL_LIB"] = a.lib
    os.environ["PYTHONPATH"] = HERE + (":" + os.environ["PYTHONPATH"]
                                       if os.environ.get("PYTHONPATH") else "")
    L = tbkernel.lib(a.lib)
    if a.iters_per_us > 0:
        a.calibration = "given"
    else:
        a.iters_per_us, a.calibration = L.tb_calibrate(), "measured"
    log(f"kernel: {a.iters_per_us:.1f} iterations/us")

    from distributed import Client, LocalCluster
    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as c:
        c.wait_for_workers(2, timeout=60)
        log(f"cluster up in {time.perf_counter() - t0:.2f} s")
        if not a.no_empty:
            run_empty(c, a)
        if not a.no_sweep:
            for pat in pats:
                first, overhead = run_point(c, a, pat, durations[0], None)
                eff, up_overhead, d = first, overhead, durations[0]
                while eff < 0.5 and d > 0 and next_up(d) <= a.extend_to + 0.5:
                    d = next_up(d)
                    eff, up_overhead = run_point(c, a, pat, d, up_overhead)
                if first < a.stop_below:
                    continue
                for d in durations[1:]:
                    eff, overhead = run_point(c, a, pat, d, overhead)
                    if eff < a.stop_below:
                        break
    return 0


if __name__ == "__main__":
    sys.exit(main())
