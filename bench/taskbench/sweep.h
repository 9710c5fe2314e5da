/* The sweep shared by tern-taskbench and floor_taskbench: options, calibration, the choice
 * of steps per point, the checks, and the JSON lines. Each program supplies one function
 * that runs a whole graph once (tb_run_fn); everything else is here, so that the two C
 * programs measure the same way (the Dask side, taskbench_dask.py, follows the same rules).
 */
#ifndef TB_SWEEP_H
#define TB_SWEEP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "graph.h"

#define TB_MAX_DURATIONS 32

typedef struct tb_opts {
    const char *system; /* "system" of every line: "tern", "floor" */
    tb_pattern patterns[TB_NPATTERNS];
    int npatterns;
    double durations[TB_MAX_DURATIONS]; /* task durations in µs, swept in this order */
    int ndurations;
    int width;           /* W (default 2) */
    int radix;           /* nearest's k (default 3) */
    int workers;         /* cores the graph runs on: the efficiency's denominator (2) */
    long steps;          /* > 0: this many steps at every point, no adaptation */
    long min_steps;      /* adaptive steps never go below this (10) */
    long max_tasks;      /* ... nor above this many tasks (200,000) */
    double target_s;     /* kernel time per repeat at 100 % efficiency, s (0.3) */
    double max_s;        /* predicted elapsed per repeat at most, s (1.0) */
    int repeats;         /* per point (3) */
    double stop_below;   /* stop a pattern's sweep after a point below this efficiency (0.1) */
    double extend_to;    /* the first point below 50 %: longer durations up to this (1e5) */
    bool sweep;          /* run the sweep (default yes) */
    bool empty;          /* run the empty stencil (default yes) */
    long empty_steps;    /* its steps (1000, so 2 x 1,000 tasks at W = 2) */
    int empty_repeats;   /* its warm repeats (3) */
    double iters_per_us; /* > 0: given; else measured by tb_calibrate at the start */
    bool calibrated;     /* iters_per_us was measured here */
    bool quick;
    const char *extra; /* program-specific JSON fields for every line: ", \"k\": v" or "" */
} tb_opts;

/* Runs graph g for `steps` steps, each task running tb_kernel(iterations), once. Returns 0
 * with the last step's values in last[0..tb_width_at(g, steps - 1)) and the wall time from
 * the first submission to the last value in *elapsed_s; nonzero after reporting a failure
 * on stderr. */
typedef int (*tb_run_fn)(void *ctx, const tb_graph *g, long steps, uint64_t iterations,
                         uint64_t *last, double *elapsed_s);

/* Defaults for `system`. */
void tb_opts_init(tb_opts *o, const char *system);

/* If argv[*i] is a shared option, consumes it (and its value, advancing *i) and returns 1;
 * returns 0 if it is not one, -1 after printing an error for a bad value. */
int tb_opts_parse(tb_opts *o, int argc, char **argv, int *i);

/* The shared options' help text. */
void tb_opts_usage(FILE *f);

/* Applies --quick, sorts nothing (durations run in the order given), and calibrates unless
 * iters_per_us was given. Call once after parsing. */
void tb_opts_finish(tb_opts *o);

/* The empty stencil: W x empty_steps tasks of duration 0, once on whatever state the cluster
 * is in when called (the program calls it first, on a fresh cluster: "fresh_s") and then
 * empty_repeats times more ("warm_s", the line's median). Returns 0, or 1 on failure. */
int tb_run_empty(const tb_opts *o, tb_run_fn run, void *ctx);

/* The sweep: every pattern, every duration (longer ones first if the first is below 50 %;
 * stopping a pattern below stop_below), repeats runs each, checked against
 * tb_graph_reference; one JSON line per point, its figure the efficiency (ideal elapsed /
 * elapsed, see sweep.c). Returns 0, or 1 on a failure or a wrong value. */
int tb_run_sweep(const tb_opts *o, tb_run_fn run, void *ctx);

/* CLOCK_MONOTONIC in seconds. */
double tb_now_s(void);

#endif
