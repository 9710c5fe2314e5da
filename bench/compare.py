#!/usr/bin/python3
"""Turns benchmark JSON lines (tern-bench, bench/dask/bench_dask.py, the floors) into the
comparison table of `make bench` and bench/results/latest.json.

    compare.py RESULTS.jsonl [--json OUT.json] [--markdown]

Each input line: {"bench", "system", "unit", "median", "min", "max", "repeats", ...}.
Ratios compare medians. Dask's figure for a ratio is its better configuration (default or
worker-saturation: inf), so every "x faster than Dask" is against Dask at its best.
Standard library only.
"""
import json
import platform
import subprocess
import sys
import time

HIGHER_IS_BETTER = {"tasks/s", "MB/s"}

# metric -> (tern bench name, human name, [(check name, function(tern, dask, floor) -> (ok, text))])
def _lat(t, d, f):
    ok1 = t["median"] <= 120
    ok2 = d is not None and d["median"] / t["median"] >= 60
    ratio = f"{d['median'] / t['median']:.0f}x" if d else "n/a"
    return [(ok1, f"<= 120 us: {t['median']:.1f} us"), (ok2, f">= 60x Dask: {ratio}")]


def _thr(t, d, f):
    ok1 = t["median"] >= 200000
    ok2 = d is not None and t["median"] / d["median"] >= 75
    ratio = f"{t['median'] / d['median']:.0f}x" if d else "n/a"
    return [(ok1, f">= 200,000 tasks/s: {t['median']:,.0f}"), (ok2, f">= 75x Dask best: {ratio}")]


def _chain(t, d, f):
    return [(t["median"] <= 60, f"<= 60 us per link: {t['median']:.1f} us")]


def _tree(t, d, f):
    out = []
    if f is not None:
        out.append((t["median"] <= 1.5 * f["median"],
                    f"<= 1.5x 2-thread C floor: {t['median'] / f['median']:.2f}x"))
    else:
        out.append((False, "<= 1.5x 2-thread C floor: floor missing"))
    ratio = f"{d['median'] / t['median']:.1f}x" if d else "n/a"
    out.append((d is not None and d["median"] / t["median"] >= 5, f">= 5x faster than Dask: {ratio}"))
    return out


def _startup(t, d, f):
    return [(t["median"] <= 50, f"<= 50 ms: {t['median']:.1f} ms")]


def _transfer(t, d, f):
    if f is None:
        return [(False, ">= 0.8x nng one-way: floor missing")]
    return [(t["median"] >= 0.8 * f["median"],
             f">= 0.8x nng one-way 8 MB: {t['median'] / f['median']:.2f}x")]


def _scale(t, d, f):
    bpt = t.get("bytes_per_task")
    return [(t["median"] <= 5, f"1M tasks <= 5 s: {t['median']:.2f} s"),
            (bpt is not None and bpt <= 500,
             f"scheduler <= 500 B/task: {bpt:.0f} B" if bpt is not None else "B/task missing")]


METRICS = [
    ("latency", "latency (submit+result)", _lat),
    ("throughput_20k", "throughput, 20k no-ops", _thr),
    ("throughput_100k", "throughput, 100k no-ops", _thr),
    ("chain", "chain of 2,000 inc, per link", _chain),
    ("tree", "tree reduction 16 x 1M", _tree),
    ("startup", "startup local://2 + close", _startup),
    ("transfer", "transfer 8 MB between workers", _transfer),
    ("scale", "1M no-op tasks", _scale),
]


def load(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or not line.startswith("{"):
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"compare.py: {path}:{n}: not JSON: {e}")
    return rows


def pick(rows, bench, system, **match):
    found = [r for r in rows if r.get("bench") == bench and r.get("system") == system
             and all(r.get(k) == v for k, v in match.items())]
    return found[-1] if found else None


def best_dask(rows, bench):
    cands = [r for r in rows if r.get("bench") == bench and str(r.get("system", "")).startswith("dask")]
    if not cands:
        return None
    higher = cands[0].get("unit") in HIGHER_IS_BETTER
    return max(cands, key=lambda r: r["median"]) if higher else min(cands, key=lambda r: r["median"])


def floor_for(rows, bench):
    if bench == "tree":
        return pick(rows, "tree", "floor", threads=2)
    if bench == "transfer":
        return pick(rows, "transfer", "floor")
    if bench == "latency":
        return pick(rows, "latency", "floor")
    return None


def fmt(r):
    if r is None:
        return "-"
    v, u = r["median"], r.get("unit", "")
    if u == "tasks/s":
        return f"{v:,.0f} {u}"
    return f"{v:,.1f} {u}" if v < 1000 else f"{v:,.0f} {u}"


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        ncpu = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    except (OSError, ValueError):
        ncpu = 0
    return f"{platform.system()} {platform.release()}, {ncpu} cores, {cpu}"


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    rows = load(args[0])
    out_json = args[args.index("--json") + 1] if "--json" in args else None
    markdown = "--markdown" in args

    table, verdicts = [], []
    for bench, name, check in METRICS:
        t = pick(rows, bench, "tern")
        d = best_dask(rows, bench)
        f = floor_for(rows, bench)
        checks = check(t, d, f) if t is not None else [(False, "tern figure missing")]
        ok = all(c[0] for c in checks)
        ratio = ""
        if t is not None and d is not None:
            if t.get("unit") in HIGHER_IS_BETTER:
                ratio = f"{t['median'] / d['median']:.1f}x"
            else:
                ratio = f"{d['median'] / t['median']:.1f}x"
        table.append((name, fmt(t), fmt(d), fmt(f), ratio, "met" if ok else "MISSED",
                      "; ".join(c[1] for c in checks)))
        verdicts.append({"bench": bench, "tern": t, "dask_best": d, "floor": f,
                         "checks": [{"ok": c[0], "text": c[1]} for c in checks], "met": ok})

    head = ("metric", "tern", "Dask (best)", "floor", "ratio vs Dask", "target", "detail")
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(str(r[i])) for r in table + [head]) for i in range(len(head) - 1)]
        for row in [head] + table:
            print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    if out_json:
        with open(out_json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
                       "results": rows, "targets": verdicts}, f, indent=1)


if __name__ == "__main__":
    main()
