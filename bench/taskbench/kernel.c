/* The Task Bench kernel (see kernel.h).
 *
 * Design notes
 * - The loop is a xorshift64 chain plus the round counter: every round reads the previous
 *   round's state, so it runs at the latency of ~7 dependent integer operations, not at the
 *   machine's throughput, and no vectoriser or strength reduction applies. The result is
 *   returned; callers fold it into the task's output (tb_mix), so a task that skipped or
 *   shortened its loop would produce a wrong value that the drivers' checks catch.
 * - Calibration times a fixed run (2^20 rounds, ~2-3 ms here) eleven times, after a
 *   warm-up that lets the core reach its clock, and takes the upper quartile of the rates
 *   (the 3rd fastest timing): up to 8 timings interrupted by other processes on this shared
 *   2-vCPU VM do not lower it, and a single lucky one does not raise it.
 * - This file is built once, -O2 and nothing machine-specific, and that single object goes
 *   into every system's binary (bench/taskbench/CMakeLists.txt).
 */
#include "kernel.h"

#include <stdlib.h>
#include <time.h>

#define CAL_ROUNDS  (1u << 20)
#define CAL_TIMINGS 11

uint64_t tb_kernel(uint64_t iterations)
{
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (uint64_t r = 0; r < iterations; r++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x += r;
    }
    return x;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Kept so that the calibration's calls cannot be dropped as unused. */
static volatile uint64_t sink;

double tb_calibrate(void)
{
    double t0 = now_us();
    while (now_us() - t0 < 20000)
        sink = tb_kernel(CAL_ROUNDS / 8);
    double rate[CAL_TIMINGS];
    for (int k = 0; k < CAL_TIMINGS; k++) {
        double a = now_us();
        sink = tb_kernel(CAL_ROUNDS);
        double us = now_us() - a;
        rate[k] = (double)CAL_ROUNDS / (us > 0 ? us : 1e-3);
    }
    qsort(rate, CAL_TIMINGS, sizeof(double), cmp_double);
    return rate[CAL_TIMINGS - 1 - CAL_TIMINGS / 4];
}

double tb_measure_us(uint64_t iterations, int reps)
{
    if (reps < 1)
        reps = 1;
    uint64_t acc = 0;
    double t0 = now_us();
    for (int k = 0; k < reps; k++)
        acc ^= tb_kernel(iterations);
    double us = now_us() - t0;
    sink = acc;
    return us / reps;
}

/* splitmix64's finaliser: a bijection that spreads every input bit over the output. */
static uint64_t fmix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

uint64_t tb_mix(int64_t step, int64_t index, const uint64_t *in, size_t n, uint64_t k)
{
    uint64_t h = fmix((uint64_t)step * 0x9e3779b97f4a7c15u + (uint64_t)index);
    for (size_t j = 0; j < n; j++)
        h = fmix(h ^ in[j]) + j;
    return fmix(h ^ k);
}
