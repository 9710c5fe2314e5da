/* Placement: which worker a task should run on. Reads the graph, writes nothing. */
#ifndef TERNI_SCHED_PLACEMENT_H
#define TERNI_SCHED_PLACEMENT_H

#include "runtime/scheduler/graph.h"

/* Placement's transfer estimate; small results travel inline (the limit is in the worker). */
#define PLACEMENT_BANDWIDTH 1e9 /* bytes per second assumed between workers */
/* What a dependency fetched or pushed from another worker is assumed to cost beyond its bytes,
 * seconds (a round trip of the data plane): a task stays with its inputs unless its queue there
 * is longer by more than this per input it would get from elsewhere. */
#define PLACEMENT_PUSH_LATENCY 2e-4

/* Root tasks of one map go to the workers in blocks of up to this many: a worker's share of a
 * small map stays together (the seed's tree reduction), while a large map is dealt round, so
 * that every worker gets work from the first slice of its submit op. */
#define PLACEMENT_MAP_BLOCK 1024

/* Smallest result a task may take from its dependency to compute in place. */
#define PLACEMENT_TAKE_MIN_BYTES STATS_LARGE_BYTES

/* Whether t may run on w (w connected, and allowed by t's restrictions). */
bool placement_allowed(const task *t, const worker *w);

/* The worker where the ready task t can start soonest: estimated queue wait (tasks
 * processing per thread x mean task time) plus, for each dependency that worker lacks, a
 * fetch's latency and its bytes over an assumed bandwidth; ties go to the least loaded. Root tasks of a map go in
 * contiguous blocks, dealt round the workers in join order. NULL: no worker may run it. */
worker *placement_choose(const graph *g, const task *t);

/* Whether t, about to run on w, may take d (tern_arg_take): compute into d's memory in place.
 * Only when nothing else can read d again: no client holds a future of it, t is the only
 * unfinished task that needs it, and w holds its only copy. Only for results worth it (large,
 * so not inline either) and with lineage (not scattered data), so that d can be computed
 * again should t have to run again. */
bool placement_may_take(const task *d, const worker *w);

/* Early placement (early.h), for a waiting task whose missing dependencies are all PROCESSING,
 * each of a symbol that has finished before with mostly small results: the worker where it would start soonest,
 * counting the queue there and, for each dependency it would get from elsewhere, a push's
 * latency and the bytes known; ties go to the least loaded. NULL: not a candidate, or no
 * worker may run it. */
worker *placement_early_target(const graph *g, const task *t);

/* Where scattered data goes: the worker holding the fewest bytes; NULL if none. */
worker *placement_scatter_target(const graph *g);

#endif
