/* The Task Bench kernel: a calibrated compute-bound loop, and the value a task returns.
 *
 * kernel.c is compiled once (an object library, -O2) and that one object is linked into
 * libtb_kernel.so (the floor, tern-taskbench and the Dask side through ctypes) and into the
 * tern plugin taskbench.so, so every system runs the same machine code. The functions are
 * exported with default visibility so that ctypes can find them in libtb_kernel.so.
 */
#ifndef TB_KERNEL_H
#define TB_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#define TB_EXPORT __attribute__((visibility("default")))

/* Runs `iterations` rounds of a dependent xorshift chain and returns its final state, which
 * depends on every round, so no compiler can drop or shorten the loop. Pure integer
 * arithmetic: the same value on every machine. About 7 dependent ALU operations a round. */
TB_EXPORT uint64_t tb_kernel(uint64_t iterations);

/* Iterations of tb_kernel per microsecond on this machine now: the upper quartile (3rd
 * fastest) of 11 timings of a fixed run of 2^20 iterations, after a ~20 ms warm-up, so that
 * timings slowed by other processes do not count. Takes ~50 ms. */
TB_EXPORT double tb_calibrate(void);

/* The mean wall time in microseconds of one tb_kernel(iterations), over `reps` calls timed
 * together (reps < 1 counts as 1). The calibration check of each sweep point. */
TB_EXPORT double tb_measure_us(uint64_t iterations, int reps);

/* A task's output: a 64-bit hash of its position (step, index), its inputs in[0..n) in
 * order, and the kernel's result k. */
TB_EXPORT uint64_t tb_mix(int64_t step, int64_t index, const uint64_t *in, size_t n, uint64_t k);

#endif
