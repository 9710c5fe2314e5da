#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_decode: canonical tern encodings of assorted values.

    python3 tests/fuzz/make_corpus.py [OUT_DIR]     (default: tests/fuzz/corpus)

Standard library only. The encoder below follows tern's mapping (docs/architecture.md,
"CBOR codec"): shortest heads, shortest exact float width, map keys shorter-first then
bytewise, tag 86/79 typed arrays, tag 40 for n-D arrays, tag 0x7465726E key references.
"""
import math
import os
import struct
import sys


class KeyRef:
    def __init__(self, key):
        self.key = key


class Array:
    def __init__(self, kind, shape, data):  # kind: "f64" or "i64"; data row-major
        self.kind, self.shape, self.data = kind, list(shape), list(data)


class Raw:  # pre-encoded bytes, for deliberately non-canonical (but valid) input
    def __init__(self, data):
        self.data = data


def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | ai]) + struct.pack(fmt, n)
    raise ValueError(n)


def enc_float(d):
    if math.isnan(d):
        return b"\xf9\x7e\x00"
    try:
        h = struct.pack(">e", d)
        if struct.unpack(">e", h)[0] == d and math.copysign(1, struct.unpack(">e", h)[0]) == math.copysign(1, d):
            return b"\xf9" + h
    except OverflowError:
        pass
    try:
        f = struct.pack(">f", d)
        if struct.unpack(">f", f)[0] == d:
            return b"\xfa" + f
    except OverflowError:
        pass
    return b"\xfb" + struct.pack(">d", d)


def enc(v):
    if v is None:
        return b"\xf6"
    if v is False:
        return b"\xf4"
    if v is True:
        return b"\xf5"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, float):
        return enc_float(v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        return head(3, len(b)) + b
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(enc(x) for x in v)
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: (len(k.encode()), k.encode()))
        return head(5, len(keys)) + b"".join(enc(k) + enc(v[k]) for k in keys)
    if isinstance(v, KeyRef):
        return head(6, 0x7465726E) + enc(v.key)
    if isinstance(v, Array):
        fmt = "<d" if v.kind == "f64" else "<q"
        payload = b"".join(struct.pack(fmt, x) for x in v.data)
        typed = head(6, 86 if v.kind == "f64" else 79) + head(2, len(payload)) + payload
        if len(v.shape) == 1:
            return typed
        return head(6, 40) + head(4, 2) + enc(v.shape) + typed
    if isinstance(v, Raw):
        return v.data
    raise TypeError(type(v))


def nested(levels, leaf):
    for _ in range(levels):
        leaf = [leaf]
    return leaf


SEEDS = {
    "int-zero": 0,
    "ints": [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
             -1, -24, -25, -256, -257, -(2**32), -(2**63)],
    "floats": [0.0, -0.0, 1.0, 1.5, 1.1, 65504.0, 100000.0, 3.4028234663852886e38, 1.0e300,
               5.960464477539063e-8, 6.103515625e-05, -4.1, math.inf, -math.inf, math.nan,
               5e-324, 2.0**-149],
    "simple": [None, True, False],
    "text": ["", "a", "IETF", "h\u00e9llo \u6c34 \U00010151", "nul\x00inside", "x" * 30],
    "bytes": [b"", b"\x00\xff\x10", bytes(range(40))],
    "keyref": KeyRef("task/7"),
    "map": {"b": [2, 3], "a": 1, "": None, "aa": {"x": True}, "z" * 25: b"\x01"},
    "nested-lists": [1, [2, [3, [4, []]]], [[], [[]]]],
    "f64-array": Array("f64", [4], [1.0, -2.5, math.inf, -0.0]),
    "i64-array": Array("i64", [3], [1, -1, 2**63 - 1]),
    "f64-2x3": Array("f64", [2, 3], [0.5 * i for i in range(6)]),
    "i64-2x0x4": Array("i64", [2, 0, 4], []),
    "f64-8dims": Array("f64", [1] * 8, [42.0]),
    "empty": [[], {}, "", b"", Array("f64", [0], []), Array("i64", [0], [])],
    "task-args": {"fn": "arrays.axpy", "args": [2.0, KeyRef("x"), Array("f64", [3], [1, 2, 3])],
                  "kwargs": {"n": 3, "out": KeyRef("y")}},
    "deep-64": nested(63, [0]),
    # valid but not canonical: keys out of order, long heads, a double that fits a half
    "noncanonical": Raw(bytes.fromhex("a3 6163 1b0000000000000003 6161 fb3ff8000000000000"
                                      " 6162 d828 82 81 1802 d856 5810"
                                      " 000000000000f03f 0000000000000040")),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, value in SEEDS.items():
        with open(os.path.join(out, name + ".cbor"), "wb") as f:
            f.write(enc(value))
    print(f"wrote {len(SEEDS)} seeds to {out}")


if __name__ == "__main__":
    main()
