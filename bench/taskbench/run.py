#!/usr/bin/python3
"""Task Bench graphs: floor, tern and Dask in one run, METG(50 %) per system and pattern.

    bench/taskbench/run.sh BUILD_DIR [--quick] [--systems floor,tern,dask] [--patterns LIST]
        [--build-dir [LABEL=]DIR]... [--rounds N] [--cluster local|tcp] [--out-dir DIR]
        [--width W] [--markdown] [--quiet-wait S] [--retries N]

BUILD_DIR gives floor_nng, floor_taskbench and libtb_kernel.so (Dask's kernel). The tern
programs (tern-taskbench, its plugin, libtern and the daemons) come from each --build-dir
(default BUILD_DIR); with several, each is a system of its own, "tern-LABEL", and they run
alternately, --rounds times (a point's efficiency is then the median over the rounds), so an
old and a new build can be compared in one sitting on this noisy machine.

Design notes
- Order: the nng round trip (floor_nng), floor_taskbench, the tern builds, Dask. Every
  program prints JSON lines on stdout (collected here) and progress on stderr (passed on).
- Every child runs in its own session and is killed with its whole process group (by its
  pid) on a timeout, an error or a signal; the hand-started daemons of --cluster tcp also get
  --exit-with-parent, so they die with this process even if it is killed outright. The
  scheduler listens on tcp://127.0.0.1:0 (the bound address comes back in a file), the
  workers pick free ports, and their work directories are temporary.
- METG(50 %): per system and pattern, the points sorted by duration, going down from the
  longest; at the first pair where efficiency drops from >= 50 % to < 50 %, the duration
  where the line between them crosses 50 %, linear in log(duration). All points >= 50 %:
  METG <= the shortest duration ("<="). The longest already < 50 %: METG > it (">").
- Writes OUT/taskbench.jsonl (every line), OUT/taskbench.json (the summary), OUT/taskbench.svg
  (efficiency against task duration, one panel per pattern) and prints the table.
"""
import argparse
import datetime
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PATTERNS = ["stencil", "nocomm", "tree", "nearest", "all_to_all"]
SYSTEMS = ["floor", "tern", "dask"]
LIVE = []  # Popen objects of every child still running


def loadavg():
    """The 1-minute load average: other work on this small machine shows here."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return None


class CpuMeter:
    """CPU time on this machine not spent by this process or its children (the other work
    that shared the cores), and the hypervisor's steal, between start and stop, as shares
    of the cores' wall time."""

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK")
        self.cores = os.cpu_count() or 1
        self.t0, self.stat0, self.mine0 = time.monotonic(), self._stat(), self._mine()

    @staticmethod
    def _stat():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = v
        return user + nice + system + irq + softirq, steal

    @staticmethod
    def _mine():
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def stop(self):
        wall = (time.monotonic() - self.t0) * self.cores
        (b1, s1), (b0, s0) = self._stat(), self.stat0
        busy, steal = (b1 - b0) / self.tick, (s1 - s0) / self.tick
        foreign = max(busy - (self._mine() - self.mine0), 0)
        return {"foreign_cpu_share": round(foreign / wall, 3) if wall > 0 else None,
                "steal_share": round(steal / wall, 3) if wall > 0 else None}


def log(msg):
    print(f"taskbench: {msg}", file=sys.stderr, flush=True)


# ---- children ----

def kill_group(p, grace=5.0):
    """SIGTERM to p's process group (p leads its own session), SIGKILL after `grace` s."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    else:  # the leader is gone; its group may not be
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if p in LIVE:
        LIVE.remove(p)


def cleanup():
    for p in list(LIVE):
        kill_group(p, grace=2.0)


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    LIVE.append(p)
    return p


def run_lines(cmd, timeout, env=None):
    """Runs cmd, stderr passed on; its stdout's JSON lines. Raises on failure or timeout."""
    log(f"$ {' '.join(cmd)}  (load average {loadavg()})")
    p = spawn(cmd, stdout=subprocess.PIPE, env=env, text=True)
    meter = CpuMeter()
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        raise RuntimeError(f"{cmd[0]} took more than {timeout} s: killed")
    kill_group(p)  # its group, should anything of it linger
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited with status {p.returncode}")
    noise = meter.stop()
    log(f"{os.path.basename(cmd[0] if 'python' not in cmd[0] else cmd[1])}: other processes "
        f"took {noise['foreign_cpu_share'] * 100:.1f} % of the cores, steal "
        f"{noise['steal_share'] * 100:.1f} %")
    rows = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            row = json.loads(line)
            row.update(noise)  # the whole program's, on each of its lines
            rows.append(row)
    return rows


NOISY = 0.05  # a program run with more of the cores going to other processes is noisy


def machine_busy(seconds):
    """The share of the cores busy (all processes) over the next `seconds`."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return v[0] + v[1] + v[2] + v[5] + v[6], sum(v)
    b0, t0 = sample()
    time.sleep(seconds)
    b1, t1 = sample()
    return (b1 - b0) / max(t1 - t0, 1)


def wait_quiet(max_s):
    """Waits until the machine was under 3 % busy for 3 s in a row, at most max_s."""
    deadline = time.monotonic() + max_s
    waited = False
    while time.monotonic() < deadline:
        if machine_busy(3) < 0.03:
            if waited:
                log("the machine is quiet: going on")
            return True
        if not waited:
            log(f"the machine is busy: waiting up to {max_s:.0f} s for a quiet spell")
            waited = True
    log("the machine never went quiet: going on")
    return False


def run_quietly(attempt, a, what):
    """attempt() runs one program and returns its lines. With --quiet-wait, waits for a quiet
    machine first; with --retries N, runs it again (up to N times) while other processes took
    more than NOISY of the cores, keeping the cleanest run's lines."""
    best = None
    for k in range(a.retries + 1):
        if a.quiet_wait > 0:
            wait_quiet(a.quiet_wait)
        rows = attempt()
        share = max([r.get("foreign_cpu_share") or 0 for r in rows] or [0])
        for r in rows:
            r["attempt"] = k + 1
        if best is None or share < best[0]:
            best = (share, rows)
        if share <= NOISY:
            break
        log(f"{what}: other processes took {share * 100:.1f} % of the cores: " +
            ("once more" if k < a.retries else "keeping the cleanest run"))
    return best[1]


class TcpCluster:
    """tern-scheduler + 2 tern-worker --nthreads 1 from one build, on loopback, port 0."""

    def __init__(self, build, workers=2):
        self.dir = tempfile.mkdtemp(prefix="tern-taskbench-")
        self.procs = []
        addr_file = os.path.join(self.dir, "address")
        self.log = open(os.path.join(self.dir, "log"), "w")
        quiet = dict(stdout=subprocess.DEVNULL, stderr=self.log)
        self.procs.append(spawn([os.path.join(build, "bin", "tern-scheduler"), "--listen",
                                 "tcp://127.0.0.1:0", "--address-file", addr_file, "--http",
                                 "none", "--quiet", "--exit-with-parent"], **quiet))
        deadline = time.monotonic() + 10
        while not (os.path.exists(addr_file) and os.path.getsize(addr_file) > 0):
            if time.monotonic() > deadline or self.procs[0].poll() is not None:
                self.close()
                raise RuntimeError("tern-scheduler did not write its address")
            time.sleep(0.02)
        with open(addr_file) as f:
            self.address = f.read().strip()
        for k in range(workers):
            self.procs.append(spawn([os.path.join(build, "bin", "tern-worker"), "--scheduler",
                                     self.address, "--nthreads", "1", "--name", f"tb-w{k}",
                                     "--quiet", "--exit-with-parent"], **quiet))

    def close(self):
        for p in reversed(self.procs):
            kill_group(p)
        self.log.close()
        subprocess.run(["rm", "-rf", self.dir], check=False)


# ---- summary ----

def metg(points):
    """points: [(task_us, efficiency)]. (METG in us or None, bound "=", "<=" or ">")."""
    pts = sorted(points, key=lambda p: -p[0])
    if not pts:
        return None, None
    if pts[0][1] < 0.5:
        return pts[0][0], ">"
    for (d_hi, e_hi), (d_lo, e_lo) in zip(pts, pts[1:]):
        if e_hi >= 0.5 > e_lo:
            f = (0.5 - e_lo) / (e_hi - e_lo)
            return math.exp(math.log(d_lo) + f * (math.log(d_hi) - math.log(d_lo))), "="
    return pts[-1][0], "<="


def bounded_ratio(num, num_bound, den, den_bound):
    """num / den where either may be a bound ("=", "<=" or ">"): (ratio, "=", ">" or "<"),
    or (None, None) when the bounds leave the ratio open."""
    if not num or not den:
        return None, None
    r = num / den
    if num_bound == "=" and den_bound == "=":
        return r, "="
    if num_bound in ("=", ">") and den_bound in ("=", "<="):
        return r, ">"
    if num_bound in ("=", "<=") and den_bound in ("=", ">"):
        return r, "<"
    return None, None


def fmt_us(v, bound):
    if v is None:
        return "-"
    s = f"{v:,.0f}" if v >= 100 else f"{v:.1f}"
    return {"=": "", "<=": "<= ", ">": "> "}[bound] + s


def summarise(rows, rtt_us):
    curves = {}  # (system, pattern) -> {task_us: [efficiency medians]}
    empty = {}  # system -> {"fresh_s": [...], "warm_s": [...], "steps"}
    for r in rows:
        if r.get("bench") == "taskbench":
            curves.setdefault((r["system"], r["pattern"]), {}).setdefault(
                r["task_us"], []).append(r["median"])
        elif r.get("bench") == "taskbench_empty":
            e = empty.setdefault(r["system"], {"fresh_s": [], "warm_s": [], "steps": r["steps"],
                                               "tasks": r["tasks"]})
            e["fresh_s"].append(r["fresh_s"])
            e["warm_s"].append(r["warm_s"])
    systems = []
    for r in rows:
        if r.get("bench", "").startswith("taskbench") and r["system"] not in systems:
            systems.append(r["system"])
    out = {"systems": systems, "patterns": {}, "empty": {}, "rtt_us": rtt_us}
    for (system, pattern), by_d in curves.items():
        pts = [(d, statistics.median(v)) for d, v in by_d.items()]
        m, bound = metg(pts)
        eff_1ms = statistics.median(by_d[1000.0]) if 1000.0 in by_d else None
        out["patterns"].setdefault(pattern, {})[system] = {
            "metg_us": m, "metg_bound": bound, "efficiency_1ms": eff_1ms,
            "points": sorted(pts, key=lambda p: -p[0])}
    for system, e in empty.items():
        out["empty"][system] = {"fresh_s": statistics.median(e["fresh_s"]),
                                "warm_s": statistics.median(e["warm_s"]),
                                "steps": e["steps"], "tasks": e["tasks"]}
    ratios = {}
    terns = [s for s in systems if s.startswith("tern")]
    for t in terns:
        st = out["patterns"].get("stencil", {}).get(t)
        if st and rtt_us:
            ratios[f"{t} stencil METG / nng RTT"] = bounded_ratio(
                st["metg_us"], st["metg_bound"], rtt_us, "=")
        if "dask" in systems:
            for pat, by_sys in out["patterns"].items():
                if t in by_sys and "dask" in by_sys:
                    d, n = by_sys["dask"], by_sys[t]
                    ratios[f"dask / {t} METG, {pat}"] = bounded_ratio(
                        d["metg_us"], d["metg_bound"], n["metg_us"], n["metg_bound"])
        if t in out["empty"] and rtt_us:
            e = out["empty"][t]
            for k in ("warm_s", "fresh_s"):
                ratios[f"{t} empty stencil {k[:-2]} / ({e['steps']} x RTT)"] = \
                    (e[k] / (e["steps"] * rtt_us * 1e-6), "=")
    out["ratios"] = {k: {"value": v, "bound": b} for k, (v, b) in ratios.items()}
    return out


def table(summary, markdown=False):
    systems = summary["systems"]
    head = ["pattern"] + [f"{s}: METG us (eff. at 1 ms)" for s in systems]
    body = []
    for pat in PATTERNS:
        if pat not in summary["patterns"]:
            continue
        row = [pat]
        for s in systems:
            c = summary["patterns"][pat].get(s)
            if not c:
                row.append("-")
                continue
            e = c["efficiency_1ms"]
            eff = f"{e * 100:.0f} %" if e is not None else "< 10 % above"
            row.append(f"{fmt_us(c['metg_us'], c['metg_bound'])} ({eff})")
        body.append(row)
    if summary["empty"]:
        steps = next(iter(summary["empty"].values()))["tasks"]
        row = [f"empty stencil, {steps} tasks: fresh / warm s"]
        for s in systems:
            e = summary["empty"].get(s)
            row.append(f"{e['fresh_s']:.3f} / {e['warm_s']:.3f}" if e else "-")
        body.append(row)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(r[k]) for r in [head] + body) for k in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head] + body)


# ---- the plot ----

COLOURS = {"floor": "#555555", "tern": "#1f77b4", "dask": "#ff7f0e"}
EXTRA_COLOURS = ["#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def colour(system, systems):
    if system in COLOURS:
        return COLOURS[system]
    others = [s for s in systems if s not in COLOURS]
    return EXTRA_COLOURS[others.index(system) % len(EXTRA_COLOURS)]


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg(summary, title, subtitle):
    pats = [p for p in PATTERNS if p in summary["patterns"]]
    systems = summary["systems"]
    cols, pw, ph = 3, 330, 250  # panels per row, panel size
    ml, mr, mt, mb = 48, 12, 28, 36  # margins inside a panel
    rows = (len(pats) + 1 + cols - 1) // cols  # one more cell for the legend
    W, H = cols * pw, 50 + rows * ph
    all_d = [d for p in pats for c in summary["patterns"][p].values() for d, _ in c["points"]]
    dmin, dmax = (min(all_d), max(all_d)) if all_d else (10, 10000)
    lo, hi = math.log10(max(dmin, 1e-3)) - 0.1, math.log10(max(dmax, 1e-3)) + 0.1
    emax = max([1.0] + [e for p in pats for c in summary["patterns"][p].values()
                        for _, e in c["points"]])
    ytop = math.ceil(emax * 10) / 10
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="10" y="20" font-size="15" font-weight="bold">{esc(title)}</text>',
         f'<text x="10" y="38" fill="#444">{esc(subtitle)}</text>']
    ticks = [d for d in (1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000)
             if lo <= math.log10(d) <= hi]
    for k, pat in enumerate(pats):
        x0, y0 = (k % cols) * pw, 50 + (k // cols) * ph
        iw, ih = pw - ml - mr, ph - mt - mb

        def X(d):
            return x0 + ml + (math.log10(d) - lo) / (hi - lo) * iw

        def Y(e):
            return y0 + mt + ih - min(max(e, 0), ytop) / ytop * ih

        o.append(f'<text x="{x0 + ml}" y="{y0 + 16}" font-size="13" font-weight="bold">'
                 f'{esc(pat)}</text>')
        o.append(f'<rect x="{x0 + ml}" y="{y0 + mt}" width="{iw}" height="{ih}" fill="none" '
                 f'stroke="#999"/>')
        for e in [v / 4 for v in range(0, int(ytop * 4) + 1)]:
            o.append(f'<line x1="{x0 + ml}" x2="{x0 + ml + iw}" y1="{Y(e):.1f}" y2="{Y(e):.1f}" '
                     f'stroke="#eee"/>')
            o.append(f'<text x="{x0 + ml - 4}" y="{Y(e) + 4:.1f}" text-anchor="end">'
                     f'{e * 100:.0f}%</text>')
        for d in ticks:
            o.append(f'<line x1="{X(d):.1f}" x2="{X(d):.1f}" y1="{y0 + mt}" y2="{y0 + mt + ih}" '
                     f'stroke="#eee"/>')
            o.append(f'<text x="{X(d):.1f}" y="{y0 + mt + ih + 14}" text-anchor="middle">'
                     f'{d:g}</text>')
        o.append(f'<text x="{x0 + ml + iw / 2}" y="{y0 + mt + ih + 28}" text-anchor="middle" '
                 f'fill="#444">task duration (us, log)</text>')
        o.append(f'<line x1="{x0 + ml}" x2="{x0 + ml + iw}" y1="{Y(0.5):.1f}" y2="{Y(0.5):.1f}" '
                 f'stroke="#000" stroke-dasharray="4,3"/>')
        for s in systems:
            c = summary["patterns"][pat].get(s)
            if not c or not c["points"]:
                continue
            col = colour(s, systems)
            pts = sorted(c["points"])
            path = " ".join(f"{X(d):.1f},{Y(e):.1f}" for d, e in pts)
            o.append(f'<polyline points="{path}" fill="none" stroke="{col}" stroke-width="2"/>')
            for d, e in pts:
                o.append(f'<circle cx="{X(d):.1f}" cy="{Y(e):.1f}" r="2.5" fill="{col}"/>')
            if c["metg_bound"] == "=":
                xm = X(c["metg_us"])
                o.append(f'<line x1="{xm:.1f}" x2="{xm:.1f}" y1="{Y(0.5) - 6:.1f}" '
                         f'y2="{Y(0.5) + 6:.1f}" stroke="{col}" stroke-width="2"/>')
    # legend in the next cell
    k = len(pats)
    x0, y0 = (k % cols) * pw + ml, 50 + (k // cols) * ph + mt
    o.append(f'<text x="{x0}" y="{y0 + 4}" font-weight="bold">systems</text>')
    for n, s in enumerate(systems):
        y = y0 + 22 + n * 18
        o.append(f'<line x1="{x0}" x2="{x0 + 24}" y1="{y - 4}" y2="{y - 4}" '
                 f'stroke="{colour(s, systems)}" stroke-width="3"/>')
        o.append(f'<text x="{x0 + 30}" y="{y}">{esc(s)}</text>')
    y = y0 + 30 + len(systems) * 18
    for line in ["dashed: 50 % efficiency; tick: METG(50 %)",
                 "efficiency = ideal elapsed / elapsed",
                 "= W x S x duration / (elapsed x 2 cores)",
                 "  for every pattern at W = 2"]:
        o.append(f'<text x="{x0}" y="{y}" fill="#444">{esc(line)}</text>')
        y += 16
    o.append("</svg>")
    return "\n".join(o) + "\n"


# ---- main ----

def build_commit(build):
    """The commit (and +dirty) of the source tree a CMake build dir was configured from."""
    try:
        src = None
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_HOME_DIRECTORY:INTERNAL="):
                    src = line.split("=", 1)[1].strip()
        if not src:
            return None
        rev = subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", src, "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else None
    except (OSError, subprocess.SubprocessError):
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("build", help="build dir with floor_nng, floor_taskbench, libtb_kernel.so")
    p.add_argument("--quick", action="store_true", help="smoke run: under a minute")
    p.add_argument("--systems", default="floor,tern,dask")
    p.add_argument("--patterns", default=",".join(PATTERNS))
    p.add_argument("--build-dir", action="append", default=[], metavar="[LABEL=]DIR",
                   help="a build whose tern-taskbench runs (repeatable; default BUILD)")
    p.add_argument("--rounds", type=int, default=1, help="alternate the tern builds N times")
    p.add_argument("--cluster", choices=["local", "tcp"], default="local",
                   help="local: local://2; tcp: scheduler + 2 workers started here")
    p.add_argument("--width", type=int, default=2)
    p.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--quiet-wait", type=float, default=0, metavar="S",
                   help="before each program, wait up to S s for a quiet machine")
    p.add_argument("--retries", type=int, default=0, metavar="N",
                   help="run a program again, up to N times, while other processes took "
                        "more than 5 %% of the cores; keep the cleanest run")
    a = p.parse_args()
    systems = a.systems.split(",")
    for s in systems:
        if s not in SYSTEMS:
            p.error(f"unknown system {s!r}: one of {', '.join(SYSTEMS)}")
    for pat in a.patterns.split(","):
        if pat not in PATTERNS:
            p.error(f"unknown pattern {pat!r}: one of {', '.join(PATTERNS)}")
    build = os.path.abspath(a.build)
    terns = []
    for spec in a.build_dir or [build]:
        label, _, d = spec.rpartition("=")
        terns.append((label, os.path.abspath(d)))
    if len(terns) > 1 and not all(label for label, _ in terns):
        p.error("with several --build-dir, give each a LABEL=DIR")
    names = {}
    for label, d in terns:
        names[d if not label else label] = "tern" if len(terns) == 1 and not label \
            else f"tern-{label}"
    need = [os.path.join(build, "bin", "floor_nng")]
    if "floor" in systems:
        need += [os.path.join(build, "bin", "floor_taskbench")]
    if "dask" in systems:
        need += [os.path.join(build, "lib", "libtb_kernel.so")]
    if "tern" in systems:
        for _, d in terns:
            need += [os.path.join(d, "bin", x) for x in ("tern-taskbench", "tern-scheduler",
                                                        "tern-worker")]
            need += [os.path.join(d, "lib", "tern", "plugins", "taskbench.so")]
    missing = [x for x in need if not os.path.exists(x)]
    if missing:
        p.error("missing (build the tree, one that has bench/taskbench): " + ", ".join(missing))
    common = ["--patterns", a.patterns, "--width", str(a.width)] + (["--quick"] if a.quick
                                                                     else [])
    t_start = time.monotonic()
    run_meter = CpuMeter()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    env = dict(os.environ, TERN_ARRAYS_QUIET="1")
    rows, meta = [], {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "host_cores": os.cpu_count(), "quick": a.quick,
        "cluster": a.cluster, "width": a.width, "builds": {}, "loadavg_start": loadavg()}
    try:
        nng = run_quietly(lambda: run_lines(
            [os.path.join(build, "bin", "floor_nng")] +
            (["--quick"] if a.quick else ["--repeat", "5", "--roundtrips", "1000", "--messages",
                                          "1"]), 120, env), a, "floor_nng")
        lat = [r for r in nng if r.get("bench") == "latency"]
        rtt_us = lat[0]["median"] if lat else None
        rows += lat
        log(f"nng req/rep round trip: {rtt_us} us")
        if "floor" in systems:
            rows += run_quietly(lambda: run_lines(
                [os.path.join(build, "bin", "floor_taskbench")] + common, 600, env), a, "floor")
        if "tern" in systems:
            for r in range(a.rounds):
                for label, d in terns:
                    name = names[label or d]
                    meta["builds"][name] = {"dir": d, "commit": build_commit(d)}
                    def attempt(d=d, name=name):
                        cmd = [os.path.join(d, "bin", "tern-taskbench"), "--system", name]
                        cluster = None
                        try:
                            if a.cluster == "tcp":
                                cluster = TcpCluster(d)
                                cmd += ["--address", cluster.address, "--wait-workers", "2"]
                            return run_lines(cmd + common, 900, env)
                        finally:
                            if cluster:
                                cluster.close()
                    got = run_quietly(attempt, a, name)
                    for row in got:
                        row["round"] = r
                    rows += got
        if "dask" in systems:
            rows += run_quietly(lambda: run_lines(
                ["/usr/bin/python3", os.path.join(HERE, "taskbench_dask.py"), "--lib",
                 os.path.join(build, "lib", "libtb_kernel.so")] + common, 900, env), a, "dask")
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}): stopping every child")
        cleanup()
        return 130
    except Exception as e:
        log(f"failed: {e}")
        cleanup()
        return 1
    finally:
        cleanup()
    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)
    meta.update(run_meter.stop())
    meta["source_commit"] = build_commit(build)
    summary = summarise(rows, rtt_us)
    summary["meta"] = meta
    summary["table_markdown"] = table(summary, markdown=True)
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "taskbench.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(a.out_dir, "taskbench.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    commits = ", ".join(f"{k} {v['commit']}" for k, v in meta["builds"].items() if v["commit"])
    title = f"Task Bench graphs, width {a.width}, 2 cores: efficiency against task duration"
    sub = (f"{meta['started']}  nng RTT {rtt_us:.0f} us" if rtt_us else meta["started"]) + \
        (f"  {commits}" if commits else "") + ("  (--quick)" if a.quick else "")
    with open(os.path.join(a.out_dir, "taskbench.svg"), "w") as f:
        f.write(svg(summary, title, sub))
    print(table(summary, markdown=a.markdown))
    print()
    if rtt_us:
        print(f"nng req/rep round trip (floor_nng, tcp loopback): {rtt_us:.1f} us")
    for k, r in summary["ratios"].items():
        v, bound = r["value"], r["bound"]
        print(f"{k}: " + ("open (both are bounds)" if v is None else
                          ("" if bound == "=" else bound + " ") + f"{v:.2f}"))
    print(f"other processes took {meta['foreign_cpu_share'] * 100:.1f} % of the cores during "
          f"the run (steal {meta['steal_share'] * 100:.1f} %; 1-minute load average "
          f"{meta['loadavg_start']} before it)")
    if meta["foreign_cpu_share"] > 0.05 or meta["steal_share"] > 0.05:
        print("WARNING: other work shared the 2 cores: the figures are not clean")
    print(f"run took {meta['elapsed_s']} s; lines in {a.out_dir}/taskbench.jsonl, summary "
          f"taskbench.json, plot taskbench.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
