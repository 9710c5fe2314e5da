#!/usr/bin/python3
"""Dask `distributed` side of `make bench`: the tern-bench workloads on Dask.

    /usr/bin/python3 bench/dask/bench_dask.py [--quick] [--repeat N] [--only M[,M...]]
                                              [--configs default,best] [--all-configs]
                                              [--full-size]

Prints one JSON line per (metric, configuration) on stdout, in the shared format:
    {"bench", "system", "unit", "median", "min", "max", "repeats", ...extra fields}
with system "dask-default" (Dask's shipped config) or "dask-best"
(distributed.scheduler.worker-saturation: inf, set with dask.config.set before the cluster
is made). Progress goes to stderr. See bench/README.md for what each workload measures.

Cluster: LocalCluster(n_workers=2, threads_per_worker=1, processes=True), one per
configuration, kept for all its metrics; startup makes its own; scale uses a scheduler in its
own process (see bench_scale).

Which configuration runs what (full run, ~8 minutes on 2 cores):
  * throughput_20k, throughput_100k, tree, scale: both configurations (worker-saturation
    decides how root tasks -- many tasks, few dependencies -- are queued), except that scale
    runs only on dask-best (dask-default does ~600 tasks/s here: see PLAN).
  * latency, chain, transfer, startup: dask-default only. worker-saturation acts only on
    root-ish tasks (Scheduler.is_rootish: a task group larger than 2 x threads with fewer
    than 5 dependencies, and no worker restrictions); a lone task, a chain of dependent
    tasks and tasks with workers=[...] never are, and startup makes no task. --all-configs
    runs them on both.
Where the time budget forced a smaller workload or fewer repeats than the spec, the line
says so: "reduced_from" (spec size) and/or "repeats_requested". --full-size runs the spec
everywhere (5 repeats, full sizes, all metrics on both configurations; ~30+ minutes).

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from this process's environment (and so its
workers') before numpy loads: they slow a current numpy. Every line records which were
removed ("openblas_env_unset") and the OpenBLAS core numpy runs on the workers ("blas_core").
"""
import os
import sys

# Before numpy is imported anywhere (workers are spawned from this environment too).
OPENBLAS_UNSET = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if os.environ.pop(k, None)]

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import operator  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

N_TREE_ARRAYS, N_TREE_LENGTH = 16, 1_000_000
TRANSFER_BYTES = 8_000_000  # 1,000,000 float64
CLUSTER = "LocalCluster(n_workers=2, threads_per_worker=1, processes=True)"

# Spec sizes and, per configuration, the full-run plan: (size, repeats). Sizes are tasks
# (throughput, scale), round trips (latency), links (chain), arrays x length (tree).
# Measured here first (2 vCPUs): dask-default runs no-op maps at ~600 tasks/s (queuing: each
# worker gets ceil(1.1 x 1) = 2 tasks, topped up once per completion round trip), dask-best
# at ~2,000-3,000 tasks/s; latency is ~11 ms per round trip (the client's batched stream
# waits 10 ms between sends); a chain link ~7 ms.
SPEC = {
    "latency": 2000, "throughput_20k": 20_000, "throughput_100k": 100_000, "chain": 2000,
    "tree": (N_TREE_ARRAYS, N_TREE_LENGTH), "startup": None, "transfer": TRANSFER_BYTES,
    "scale": 1_000_000,
}
PLAN = {
    "default": {
        "startup": (None, 5),
        "latency": (400, 5),           # 5 x 400 = 2,000 round trips in all, ~22 s
        "chain": (500, 5),             # ~18 s
        "tree": (SPEC["tree"], 5),
        "transfer": (TRANSFER_BYTES, 5),
        "throughput_20k": (20_000, 3),  # ~30 s a run
        "throughput_100k": (50_000, 1),  # 100k would take ~3 minutes alone
    },
    "best": {
        "tree": (SPEC["tree"], 5),
        "throughput_20k": (20_000, 5),
        "throughput_100k": (100_000, 3),  # ~35-50 s a run
        "scale": (50_000, 1),
    },
}
QUICK = {
    "startup": (None, 1), "latency": (50, 1), "chain": (100, 1), "tree": ((4, 100_000), 1),
    "transfer": (TRANSFER_BYTES, 1), "throughput_20k": (2000, 1), "throughput_100k": (2000, 1),
    "scale": (2000, 1),
}
SATURATION_INSENSITIVE = {"latency", "chain", "transfer", "startup"}
ORDER = ["startup", "latency", "chain", "tree", "transfer", "throughput_20k",
         "throughput_100k", "scale"]
T_START = time.perf_counter()


# ---- task functions (module level: pickled by value from __main__ by cloudpickle) ----

def noop(i):
    return None


def inc(x):
    return x + 1


def make_array(n):
    return np.random.random(n)


def total(x):
    return float(x.sum())


def blas_info():
    """Which BLAS numpy runs here: threadpoolctl if installed, else OpenBLAS via ctypes."""
    try:
        import threadpoolctl
        for lib in threadpoolctl.threadpool_info():
            if lib.get("user_api") == "blas":
                return f"{lib.get('internal_api')} {lib.get('version')} {lib.get('architecture')}"
    except Exception:
        pass
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower()
                            and ".so" in line})
        for path in paths:
            lib = ctypes.CDLL(path)
            if hasattr(lib, "openblas_get_corename"):
                lib.openblas_get_corename.restype = ctypes.c_char_p
                lib.openblas_get_config.restype = ctypes.c_char_p
                core = lib.openblas_get_corename().decode()
                cfg = lib.openblas_get_config().decode().split()
                version = cfg[1] if len(cfg) > 1 else "?"
                return f"openblas {version} {core}"
    except Exception as e:  # pragma: no cover
        return f"unknown ({e})"
    return "not openblas (numpy.show_config() for details)"


# ---- helpers ----

def log(msg):
    print(f"[bench_dask {time.perf_counter() - T_START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def emit(bench, system, unit, values, **extra):
    row = {"bench": bench, "system": system, "unit": unit,
           "median": round(statistics.median(values), 3), "min": round(min(values), 3),
           "max": round(max(values), 3), "repeats": len(values)}
    row.update(extra)
    print(json.dumps(row), flush=True)
    log(f"{system} {bench}: median {row['median']} {unit} ({len(values)} repeats)")


def n_scheduler_tasks(dask_scheduler):
    return len(dask_scheduler.tasks)


def settle(c, timeout=120):
    """Wait until the scheduler has forgotten every task (released futures are gone)."""
    deadline = time.monotonic() + timeout
    while c.run_on_scheduler(n_scheduler_tasks) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("scheduler still holds tasks after %d s" % timeout)
        time.sleep(0.05)


def make_cluster():
    from distributed import LocalCluster
    return LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                        silence_logs=logging.ERROR)


# ---- workloads: each returns (list of per-repeat values, extra fields) ----

def bench_latency(c, ops, repeats):
    for i in range(20):  # warm-up
        c.submit(inc, i, pure=False).result()
    per = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(ops):
            if c.submit(inc, i, pure=False).result() != i + 1:
                raise RuntimeError("latency: wrong result")
        per.append((time.perf_counter() - t0) / ops * 1e6)
    return per, {"ops": ops}


def bench_throughput(c, n, repeats):
    from distributed import wait
    rates = []
    for _ in range(repeats):
        settle(c)
        t0 = time.perf_counter()
        fs = c.map(noop, range(n), pure=False)
        done, not_done = wait(fs, timeout=900)
        dt = time.perf_counter() - t0
        if not_done or any(f.status != "finished" for f in fs):
            raise RuntimeError("throughput: not every task finished")
        rates.append(n / dt)
        del fs, done, not_done
    settle(c)
    return rates, {"tasks": n}


def bench_chain(c, links, repeats):
    per = []
    for _ in range(repeats):
        settle(c)
        t0 = time.perf_counter()
        f = c.submit(inc, 0, pure=False)
        for _ in range(links - 1):
            f = c.submit(inc, f, pure=False)
        r = f.result()
        dt = time.perf_counter() - t0
        if r != links:
            raise RuntimeError(f"chain: got {r}, expected {links}")
        per.append(dt / links * 1e6)
        del f
    settle(c)
    return per, {"links": links}


def bench_tree(c, size, repeats):
    arrays, length = size
    ms = []
    for _ in range(repeats + 1):  # the first run is an untimed warm-up
        settle(c)
        t0 = time.perf_counter()
        xs = c.map(np.random.random, [length] * arrays, pure=False)
        while len(xs) > 1:
            xs = [c.submit(operator.add, xs[i], xs[i + 1]) for i in range(0, len(xs), 2)]
        r = xs[0].result()
        dt = time.perf_counter() - t0
        mean = float(r.mean())
        if r.shape != (length,) or abs(mean - arrays / 2) > 0.05 * arrays / 2:
            raise RuntimeError(f"tree: bad result (shape {r.shape}, mean {mean})")
        ms.append(dt * 1e3)
        del xs, r
    settle(c)
    return ms[1:], {"arrays": arrays, "length": length}


def incoming_log(dask_worker):
    return [{"total": e["total"], "duration": e["duration"]}
            for e in dask_worker.transfer_incoming_log]


def bench_transfer(c, nbytes, repeats, samples=11):
    """Per repeat: `samples` fresh arrays made on worker A; sum() of each on A (the baseline:
    the same task with local data) and then on B (the array moves A -> B first). The move
    takes median(on B) - median(on A); the client's 10 ms batched stream makes single
    samples jumpy, hence the medians."""
    from distributed import wait
    a, b = sorted(c.scheduler_info()["workers"])
    moved, e2e, local, logged = [], [], [], []
    n = nbytes // 8
    for r in range(repeats + 1):  # the first round is an untimed warm-up
        settle(c)
        xs = [c.submit(make_array, n, workers=[a], pure=False) for _ in range(samples)]
        wait(xs)
        loc, rem = [], []
        for x in xs:
            t0 = time.perf_counter()
            c.submit(total, x, workers=[a], pure=False).result()
            loc.append(time.perf_counter() - t0)
        nlog = len(c.run(incoming_log, workers=[b])[b])
        for x in xs:
            t0 = time.perf_counter()
            c.submit(total, x, workers=[b], pure=False).result()
            rem.append(time.perf_counter() - t0)
        entries = c.run(incoming_log, workers=[b])[b][nlog:]
        del xs, x
        if r == 0:
            continue
        base, remote = statistics.median(loc), statistics.median(rem)
        local.append(base * 1e3)
        e2e.append(nbytes / 1e6 / remote)
        if remote > base:
            moved.append(nbytes / 1e6 / (remote - base))
        logged += [e["total"] / 1e6 / e["duration"] for e in entries
                   if e["total"] >= nbytes and e["duration"] > 0]
    settle(c)
    extra = {"bytes": nbytes, "samples_per_repeat": samples,
             "method": "8 MB made on worker A; sum() on worker B minus the same sum() on A "
                       "(medians of the samples), MB = 1e6 bytes",
             "end_to_end_MBps_median": round(statistics.median(e2e), 1),
             "local_task_ms_median": round(statistics.median(local), 3)}
    if logged:
        extra["dask_worker_log_MBps_median"] = round(statistics.median(logged), 1)
    if len(moved) < repeats:
        extra["repeats_dropped"] = repeats - len(moved)  # remote no slower than local: noise
    return moved, extra


def bench_startup(repeats, _c=None):
    from distributed import Client
    total_ms, ready, close = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with make_cluster() as cl, Client(cl) as c:
            c.wait_for_workers(2, timeout=60)
            t1 = time.perf_counter()
        t2 = time.perf_counter()
        total_ms.append((t2 - t0) * 1e3)
        ready.append((t1 - t0) * 1e3)
        close.append((t2 - t1) * 1e3)
    return total_ms, {"ready_ms_median": round(statistics.median(ready), 1),
                      "close_ms_median": round(statistics.median(close), 1)}


def _rss_sampler(proc, stop, peak):
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], proc.memory_info().rss)
        except Exception:
            return
        stop.wait(0.02)


def bench_scale(n, repeats, saturation):
    """n no-op tasks on a scheduler in its own process (dask-scheduler + dask-worker
    --nworkers 2 --nthreads 1, nannies on, like the LocalCluster), so that its RSS is the
    scheduler's alone: RSS with all n futures held and finished minus RSS before the map.
    A fresh cluster per repeat (Python keeps freed memory, which would hide the growth)."""
    import psutil
    from distributed import Client, wait
    env = dict(os.environ)
    if saturation is not None:
        env["DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION"] = "inf"
    secs, bpt, peak_bpt = [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench_dask_") as d:
            sfile = os.path.join(d, "scheduler.json")
            logf = open(os.path.join(d, "cluster.log"), "w+")
            procs = []
            try:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                     "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", sfile],
                    env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True))
                deadline = time.monotonic() + 60
                while not os.path.exists(sfile):
                    if time.monotonic() > deadline or procs[0].poll() is not None:
                        raise RuntimeError("dask-scheduler did not start")
                    time.sleep(0.05)
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "distributed.cli.dask_worker", "--nworkers", "2",
                     "--nthreads", "1", "--no-dashboard", "--scheduler-file", sfile],
                    env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True))
                sched = psutil.Process(procs[0].pid)
                with Client(scheduler_file=sfile) as c:
                    c.wait_for_workers(2, timeout=60)
                    sat = c.run_on_scheduler(lambda dask_scheduler: dask_scheduler.WORKER_SATURATION)
                    if (saturation is not None) != math.isinf(sat):
                        raise RuntimeError(f"scale: scheduler worker-saturation is {sat}")
                    c.submit(inc, 0, pure=False).result()  # warm up the scheduler
                    settle(c)
                    rss0 = sched.memory_info().rss
                    stop, peak = threading.Event(), [rss0]
                    sampler = threading.Thread(target=_rss_sampler, args=(sched, stop, peak))
                    sampler.start()
                    t0 = time.perf_counter()
                    fs = c.map(noop, range(n), pure=False)
                    _, not_done = wait(fs, timeout=900)
                    dt = time.perf_counter() - t0
                    rss1 = sched.memory_info().rss
                    stop.set()
                    sampler.join()
                    if not_done:
                        raise RuntimeError("scale: not every task finished")
                    del fs
                    secs.append(dt)
                    bpt.append((rss1 - rss0) / n)
                    peak_bpt.append((max(peak[0], rss1) - rss0) / n)
                    c.shutdown()
            except Exception:
                logf.seek(0)
                sys.stderr.write(logf.read()[-3000:])
                raise
            finally:
                for p in reversed(procs):
                    try:
                        p.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        os.killpg(p.pid, 15)
                        try:
                            p.wait(timeout=10)
                        except subprocess.TimeoutExpired:
                            os.killpg(p.pid, 9)
                            p.wait()
                logf.close()
    per_task_us = [s / n * 1e6 for s in secs]
    extrapolated = [s / n * SPEC["scale"] for s in secs]
    return extrapolated, {
        "tasks": n, "extrapolated_from": n, "extrapolated_to": SPEC["scale"],
        "per_task_us_median": round(statistics.median(per_task_us), 2),
        "measured_s_median": round(statistics.median(secs), 3),
        "bytes_per_task": round(statistics.median(bpt), 1),
        "peak_bytes_per_task": round(statistics.median(peak_bpt), 1),
        "rss_of": "dask-scheduler process (psutil RSS, all futures held and finished, "
                  "minus before the map)",
        "cluster": "dask-scheduler + dask-worker --nworkers 2 --nthreads 1 (own processes)",
    }


UNITS = {"latency": "us", "throughput_20k": "tasks/s", "throughput_100k": "tasks/s",
         "chain": "us", "tree": "ms", "startup": "ms", "transfer": "MB/s", "scale": "s"}
RUN = {"latency": bench_latency, "throughput_20k": bench_throughput,
       "throughput_100k": bench_throughput, "chain": bench_chain, "tree": bench_tree,
       "transfer": bench_transfer}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat (< 60 s)")
    ap.add_argument("--repeat", type=int, help="repeats for every metric (default: PLAN)")
    ap.add_argument("--only", help="comma-separated metrics (default: all)")
    ap.add_argument("--configs", default="default,best", help="default,best or one of them")
    ap.add_argument("--all-configs", action="store_true",
                    help="also run latency, chain, transfer, startup on dask-best")
    ap.add_argument("--full-size", action="store_true",
                    help="spec sizes, 5 repeats, every metric on both configurations")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else set(ORDER)
    if only - set(ORDER):
        ap.error(f"unknown metric(s): {sorted(only - set(ORDER))}")
    configs = [x for x in args.configs.split(",") if x]
    if set(configs) - {"default", "best"}:
        ap.error("--configs takes default and/or best")
    if args.repeat is not None and args.repeat < 1:
        ap.error("--repeat must be >= 1")

    import dask
    import distributed
    logging.getLogger("distributed").setLevel(logging.ERROR)
    from distributed import Client

    common = {"cluster": CLUSTER, "dask_version": distributed.__version__,
              "numpy_version": np.__version__, "openblas_env_unset": OPENBLAS_UNSET,
              "blas_core": blas_info()}
    if args.quick:
        common["quick"] = True

    def plan_for(cfg, metric):
        """(size, repeats, extra fields) or None to skip."""
        if args.quick:
            size, reps = QUICK[metric]
            if metric == "scale" and cfg != "best":
                return None
            if metric in SATURATION_INSENSITIVE and cfg != "default" and not args.all_configs:
                return None
        elif args.full_size:
            size, reps = SPEC[metric], 5
            if metric == "scale":
                size = 100_000  # 1M Dask tasks do not fit this machine's time budget
        else:
            p = PLAN[cfg].get(metric)
            if p is None and args.all_configs and metric in SATURATION_INSENSITIVE:
                p = PLAN["default"][metric]
            if p is None:
                return None
            size, reps = p
        extra = {}
        if args.repeat is not None:
            reps = args.repeat
        elif not args.quick and reps < 5:
            extra["repeats_requested"] = 5
        if metric != "scale" and size != SPEC[metric] and not args.quick:
            extra["reduced_from"] = SPEC[metric]
        if args.quick and size != SPEC[metric] and metric not in ("transfer", "scale"):
            extra["reduced_from"] = SPEC[metric]
        return size, reps, extra

    for cfg in configs:
        system = f"dask-{cfg}"
        todo = [(m, plan_for(cfg, m)) for m in ORDER if m in only]
        todo = [(m, p) for m, p in todo if p is not None]
        if not todo:
            continue
        saturation = math.inf if cfg == "best" else None
        overrides = {"distributed.scheduler.worker-saturation": saturation} if saturation else {}
        with dask.config.set(overrides):
            cfg_fields = dict(common, worker_saturation=(
                "inf" if saturation else dask.config.get("distributed.scheduler.worker-saturation")))
            log(f"{system}: {', '.join(m for m, _ in todo)}")
            if any(m == "startup" for m, _ in todo):
                size, reps, extra = dict(todo)["startup"]
                vals, more = bench_startup(reps)
                emit("startup", system, "ms", vals, **{**cfg_fields, **extra, **more})
            in_cluster = [(m, p) for m, p in todo if m in RUN]
            if in_cluster:
                with make_cluster() as cl, Client(cl) as c:
                    c.wait_for_workers(2, timeout=60)
                    sat = c.run_on_scheduler(lambda dask_scheduler: dask_scheduler.WORKER_SATURATION)
                    if math.isinf(sat) != (saturation is not None):
                        raise RuntimeError(f"{system}: scheduler worker-saturation is {sat}")
                    cores = sorted(set(c.run(blas_info).values()))
                    cfg_fields["blas_core"] = ", ".join(cores)
                    for m, (size, reps, extra) in in_cluster:
                        vals, more = RUN[m](c, size, reps)
                        if not vals:
                            log(f"{system} {m}: no valid repeat, no line")
                            continue
                        emit(m, system, UNITS[m], vals, **{**cfg_fields, **extra, **more})
            if any(m == "scale" for m, _ in todo):
                size, reps, extra = dict(todo)["scale"]
                vals, more = bench_scale(size, reps, saturation)
                emit("scale", system, "s", vals, **{**cfg_fields, **extra, **more})
    log("done")


if __name__ == "__main__":
    main()
