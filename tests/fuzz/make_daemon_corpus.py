#!/usr/bin/env python3
"""Writes the seed corpora for fuzz_scheduler and fuzz_worker: realistic conversations in the
harnesses' record format (control byte, 16-bit little-endian length, message).

    python3 tests/fuzz/make_daemon_corpus.py [CORPUS_DIR]   (default: tests/fuzz/corpus)

Writes CORPUS_DIR/scheduler/* and CORPUS_DIR/worker/*. Standard library only.
"""
import hashlib
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_corpus import KeyRef, enc  # noqa: E402


def rec(ctl, msg):
    b = enc(msg) if not isinstance(msg, bytes) else msg
    return bytes([ctl]) + struct.pack("<H", len(b)) + b


def lost(pipe):
    return bytes([0x80 | (pipe - 1)]) + b"\0\0"


PLUG = b"TPLG-fuzz"
PID = hashlib.sha256(PLUG).hexdigest()


def op(opname, **kw):
    d = {"op": opname}
    d.update(kw)
    return d


def task(key, args, deps=(), **kw):
    t = {"key": key, "fn": "fz:inc", "plugin": PID, "args": enc(args), "deps": list(deps)}
    t.update(kw)
    return t


def hello_worker(name, pipe):
    return rec(pipe - 1, [op("hello", wire=1, role="worker", name=name,
                             address="tcp://127.0.0.1:1", nthreads=2, memory=1 << 30)])


def hello_client(pipe):
    return rec(pipe - 1, [op("hello", wire=1, role="client")])


def scheduler_corpus():
    c = {}
    c["hello"] = hello_client(1) + hello_worker("w1", 2) + rec(0, [op("poll")]) + rec(1, [op("poll")])
    base = hello_client(1) + hello_worker("w1", 2) + hello_worker("w2", 3) + \
        rec(0, [op("upload", bytes=PLUG)])
    c["submit_done"] = base + rec(0, [op("submit", tasks=[
        task("x", [1]), task("y", [KeyRef("x")], ["x"], priority=3, retries=2)])]) + \
        rec(1, [op("done", key="x", nbytes=2, duration_us=10, value=enc(2))]) + \
        rec(2, [op("added", key="x", nbytes=2)]) + \
        rec(1, [op("done", key="y", nbytes=2, duration_us=10, value=enc(3))]) + \
        rec(0, [op("who_has", keys=["x", "y"]), op("status")]) + \
        rec(0, [op("release", keys=["x", "y"])])
    c["erred_lost"] = base + rec(0, [op("submit", tasks=[task("a", [1], workers=["w2"]),
                                                          task("b", [KeyRef("a")], ["a"])])]) + \
        rec(2, [op("erred", key="a", code=18, message="boom")]) + lost(3) + \
        rec(0, [op("cancel", keys=["b"])]) + lost(1)
    c["scatter"] = base + rec(0, [op("scatter", key="scatter-1")]) + \
        rec(1, [op("added", key="scatter-1", nbytes=8)]) + rec(0, [op("plugins")]) + \
        rec(1, [op("plugin_failed", id=PID, message="no")])
    c["group_map"] = base + rec(0, [op("submit", tasks=[
        task("m-%d" % i, [i], group=1, gindex=i, gsize=20) for i in range(20)])]) + \
        rec(0, [op("submit", tasks=[task("n-%d" % i, [i]) for i in range(20)])]) + \
        rec(0, [op("submit", tasks=[task("o-%d" % i, [i]) for i in range(20)])]) + lost(2)
    c["crash_heartbeat"] = hello_client(1) + rec(1, [op("hello", wire=1, role="worker", name="w9",
                                                        address="tcp://127.0.0.1:1",
                                                        crashed={"why": "was killed",
                                                                 "keys": ["x"]})]) + \
        rec(0, [op("upload", bytes=PLUG)]) + rec(0, [op("submit", tasks=[task("x", [1])])]) + \
        rec(1, [op("heartbeat")]) + rec(1, [op("done", key="x", run=1, nbytes=2, value=enc(2))]) + \
        rec(1, [op("erred", key="x", run=0, code=18, message="late")]) + lost(2)
    # regression: a task released with its lineage kept (RELEASED), then status (op_status
    # overflowed its per-state counts; the long fuzz run of that code did not reach it)
    c["released_status"] = base + rec(0, [op("submit", tasks=[
        task("x", [1]), task("y", [KeyRef("x")], ["x"])])]) + \
        rec(1, [op("done", key="x", nbytes=2, duration_us=10, value=enc(2))]) + \
        rec(1, [op("done", key="y", nbytes=2, duration_us=10, value=enc(3))]) + \
        rec(0, [op("release", keys=["x"])]) + rec(0, [op("status")])
    c["malformed"] = rec(0, b"\x9f") + rec(0, [op("status")]) + hello_client(1) + \
        rec(0, [op("poll"), op("poll")]) + rec(0, [op("hello", wire=2)]) + \
        rec(0, {"op": "submit"}) + rec(0, [op("submit", tasks=[{"key": "k"}])])
    return c


def worker_corpus():
    c = {}
    ev = [op("compute", key="x", fn="fz:inc", plugin=PID, args=enc([1]),
             deps={"d": ["tcp://127.0.0.1:1"]}, priority=1),
          op("compute", key="y", fn="fz:inc", plugin=PID, args=enc([2]), deps={}, priority=0)]
    c["events"] = rec(0x80, ev) + rec(0x80, [op("cancel", keys=["x"]), op("free", keys=["y"])])
    c["data"] = rec(0, op("put", key="k", value=[1, 2.5, "s"])) + \
        rec(0, op("get", keys=["k", "nope"])) + rec(0, op("nonsense")) + rec(0, b"\xff")
    c["gate"] = rec(0x40, op("auth", wire=1, role="peer", cnonce=bytes(32))) + \
        rec(0x40, op("auth_proof", proof=bytes(32))) + rec(0x40, op("get", keys=["k"])) + \
        rec(0, op("auth", wire=1, role="peer", cnonce=bytes(32)))
    return c


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    for sub, corpus in (("scheduler", scheduler_corpus()), ("worker", worker_corpus())):
        d = os.path.join(out, sub)
        os.makedirs(d, exist_ok=True)
        for name, data in corpus.items():
            with open(os.path.join(d, name + ".bin"), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
