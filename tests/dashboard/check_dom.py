#!/usr/bin/env python3
"""Checks the dashboard DOM that headless Chromium dumped against the known workload
(tests/dashboard/workload.c on two workers).

    check_dom.py DOM.html STATUS.json

STATUS.json is /api/status fetched just before (the cluster is idle by then): per-worker key
counts depend on placement (a worker that fetched a dependency holds a copy too), so those
are compared with it; everything else is compared with the workload itself.

Reads the numbers the page's script wrote into the DOM (ids, data-worker / data-symbol rows
with data-field cells, the task stream rows) and compares them with what the workload must
produce. Prints each check; exit status 1 on the first mismatch."""
import json
import sys
from html.parser import HTMLParser


class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = {}          # id -> text
        self.rows = {}         # ("worker"|"symbol", name) -> {field: text}
        self.stream = []       # [{field: text}]
        self.stack = []        # open elements: (tag, id, field)
        self.row = None
        self.loaded = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body" and a.get("data-loaded") == "1":
            self.loaded = True
        if tag == "tr":
            if "data-worker" in a:
                self.row = self.rows.setdefault(("worker", a["data-worker"]), {})
            elif "data-symbol" in a:
                self.row = self.rows.setdefault(("symbol", a["data-symbol"]), {})
            elif a.get("class") == "completion":
                self.row = {}
                self.stream.append(self.row)
            else:
                self.row = None
        self.stack.append((tag, a.get("id"), a.get("data-field")))

    def handle_endtag(self, tag):
        while self.stack:
            t, _, _ = self.stack.pop()
            if t == tag:
                break
        if tag == "tr":
            self.row = None

    def handle_data(self, data):
        for tag, ident, field in reversed(self.stack):
            if ident:
                self.ids[ident] = self.ids.get(ident, "") + data
                break
            if field and self.row is not None:
                self.row[field] = self.row.get(field, "") + data
                break


def main():
    dom = Dom()
    dom.feed(open(sys.argv[1], encoding="utf-8").read())
    status = json.load(open(sys.argv[2], encoding="utf-8"))
    failures = 0

    def check(what, got, want):
        nonlocal failures
        ok = str(got).strip() == str(want)
        print(("ok   " if ok else "FAIL ") + f"{what}: shows {str(got).strip()!r}, want {want!r}")
        failures += not ok

    check("page script ran", dom.loaded, True)
    want_ids = {"n-workers": 2, "n-threads": 3, "tasks-done": 24, "tasks-erred": 1,
                "keys-in-memory": 24, "state-memory": 24, "state-erred": 1,
                "state-waiting": 0, "state-processing": 0, "state-no-worker": 0,
                "state-released": 0, "workers-lost": 0, "recomputed": 0}
    for ident, want in want_ids.items():
        check("#" + ident, dom.ids.get(ident, "<missing>"), want)

    workers = {k[1]: v for k, v in dom.rows.items() if k[0] == "worker"}
    check("worker rows", sorted(workers), ["dash-w1", "dash-w2"])
    check("threads of dash-w1", workers.get("dash-w1", {}).get("threads"), 2)
    check("threads of dash-w2", workers.get("dash-w2", {}).get("threads"), 1)
    for w in status["workers"]:
        check("keys held by " + w["name"], workers.get(w["name"], {}).get("keys"), w["keys"])
    check("keys held, all workers, at least one copy of each",
          sum(int(w.get("keys", 0)) for w in workers.values()) >= 24, True)
    for name, w in workers.items():
        check("resident memory of " + name + " shown in MiB",
              w.get("rss", "").strip().endswith("MiB"), True)
    check("tasks done, all workers", sum(int(w.get("done", 0)) for w in workers.values()), 24)
    check("running, all workers", sum(int(w.get("processing", 0)) for w in workers.values()), 0)

    symbols = {k[1]: v for k, v in dom.rows.items() if k[0] == "symbol"}
    check("task symbols", sorted(symbols), ["arrays:arange", "arrays:sum"])
    for fn, done, failed, memory in (("arrays:arange", 12, 0, 12), ("arrays:sum", 12, 1, 12)):
        row = symbols.get(fn, {})
        check(fn + " done", row.get("done"), done)
        check(fn + " failed", row.get("failed"), failed)
        check(fn + " pending", row.get("pending"), 0)
        check(fn + " in memory", row.get("memory"), memory)

    check("task stream rows (the last 20 of 25)", len(dom.stream), 20)
    names = {r.get("worker") for r in dom.stream}
    check("stream names only known workers", names <= {"dash-w1", "dash-w2"}, True)
    fns = {r.get("fn") for r in dom.stream}
    # The 5 oldest completions dropped out: at most 2 of them are sums (each follows its
    # arange), so the last 20 hold both symbols whatever the order.
    check("stream shows both symbols", fns >= {"arrays:arange", "arrays:sum"}, True)
    check("stream shows only the workload", fns <= {"arrays:arange", "arrays:sum",
                                                     "arrays:sum (failed)"}, True)
    sys.exit(1 if failures else 0)


main()
