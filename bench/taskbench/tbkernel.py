"""The Task Bench kernel for the Dask side, through ctypes from libtb_kernel.so.

libtb_kernel.so holds the one kernel object that tern's plugin and the floor link too
(bench/taskbench/kernel.c), so Dask's tasks run the same machine code. ctypes releases the
GIL around each foreign call (CDLL, not PyDLL); with one thread per worker that changes
nothing for the task itself.

This module is imported by the Dask workers (the task function below is pickled by
reference), so it must be importable there: taskbench_dask.py puts this directory on
PYTHONPATH and the library's path in $TB_KERNEL_LIB before it makes the cluster.
"""
import ctypes
import os

_lib = None


def lib(path=None):
    """The loaded library (loaded once per process): from `path`, else $TB_KERNEL_LIB."""
    global _lib
    if _lib is None:
        L = ctypes.CDLL(path or os.environ["TB_KERNEL_LIB"])
        u64, i64 = ctypes.c_uint64, ctypes.c_int64
        L.tb_kernel.argtypes, L.tb_kernel.restype = [u64], u64
        L.tb_mix.argtypes = [i64, i64, ctypes.POINTER(u64), ctypes.c_size_t, u64]
        L.tb_mix.restype = u64
        L.tb_calibrate.argtypes, L.tb_calibrate.restype = [], ctypes.c_double
        L.tb_measure_us.argtypes, L.tb_measure_us.restype = [u64, ctypes.c_int], ctypes.c_double
        L.tb_graph_reference_flat.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                              ctypes.c_long, u64, ctypes.POINTER(u64)]
        L.tb_graph_reference_flat.restype = ctypes.c_int
        _lib = L
    return _lib


def task(step, index, iterations, *deps):
    """Task (step, index): the kernel, then tb_mix of the position, the inputs and its result
    (an int in [0, 2**64)), exactly as tern's taskbench:task and the floor compute it."""
    L = lib()
    k = L.tb_kernel(iterations)
    inputs = (ctypes.c_uint64 * len(deps))(*deps)
    return L.tb_mix(step, index, inputs, len(deps), k)
