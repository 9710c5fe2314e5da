/* Task Bench graph patterns: which tasks a step has and which tasks of the step before each
 * one depends on. Shared by tern-taskbench and floor_taskbench; the Dask side has the same
 * definitions in Python and checks its results against tb_graph_reference_flat (exported
 * from libtb_kernel.so). The patterns are defined in bench/README.md ("Task Bench graphs").
 */
#ifndef TB_GRAPH_H
#define TB_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "kernel.h"

typedef enum tb_pattern {
    TB_STENCIL = 0, /* (s,i) <- (s-1, i-1..i+1), within [0, width) */
    TB_NOCOMM,      /* (s,i) <- (s-1, i) */
    TB_TREE,        /* fan-out 1 -> 2 -> 4 .. width, then fan-in back to 1, repeated */
    TB_NEAREST,     /* (s,i) <- the radix nearest points of step s-1, within [0, width) */
    TB_ALL_TO_ALL,  /* (s,i) <- every (s-1, j) */
    TB_NPATTERNS
} tb_pattern;

typedef struct tb_graph {
    tb_pattern pattern;
    int width; /* W >= 1: tasks in a full step */
    int radix; /* TB_NEAREST: k >= 1 points (default 3) */
} tb_graph;

/* "stencil", "nocomm", "tree", "nearest", "all_to_all". */
const char *tb_pattern_name(tb_pattern p);
/* 0 and *out set, or -1 for an unknown name. */
int tb_pattern_parse(const char *name, tb_pattern *out);

/* Tasks in step s (s >= 0): the width, except for the tree. */
int tb_width_at(const tb_graph *g, long s);

/* The dependencies of task (s, i): writes the indices j of step s-1, ascending and distinct,
 * into out[0..n) and returns n (0 for s == 0). out must have room for g->width entries. */
int tb_deps(const tb_graph *g, long s, int i, int *out);

/* Tasks in steps [0, steps). */
long tb_tasks(const tb_graph *g, long steps);

/* Sum over steps [0, steps) of ceil(tasks in the step / workers): the least number of task
 * durations any schedule needs, step after step. tb_tasks / (workers * this) is the best
 * efficiency the pattern allows (1 except for the tree). */
long tb_slots(const tb_graph *g, long steps, int workers);

/* The values of the last step's tasks, computed here in sequence: task (s, i) is
 * tb_mix(s, i, values of its dependencies in order, k) where k = tb_kernel(iterations) is
 * passed in. last must have room for g->width values; returns the last step's width. */
int tb_graph_reference(const tb_graph *g, long steps, uint64_t k, uint64_t *last);

/* tb_graph_reference with plain arguments, for ctypes (the Dask side). -1 on a bad pattern
 * or width, or out of memory. */
TB_EXPORT int tb_graph_reference_flat(int pattern, int width, int radix, long steps, uint64_t k,
                                      uint64_t *last);

#endif
