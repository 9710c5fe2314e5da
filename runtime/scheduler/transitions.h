/* The graph engine's transitions (transitions.c), shared by graph.c and validate.c only: the
 * one function that sets a task's state, the worklist, and the steps it runs. Not for the
 * rest of the scheduler, which goes through graph.h. */
#ifndef TERNI_SCHED_TRANSITIONS_H
#define TERNI_SCHED_TRANSITIONS_H

#include "runtime/scheduler/graph.h"

/* Worklist operations (graph_work.op). */
enum {
    W_ERR,       /* err t with err (flag: cancel it on its worker if placed) */
    W_RECOMPUTE, /* make a released (or lost, or unwanted erred) t compute again */
    W_RECOUNT,   /* after its dependencies were recomputed: count what t lacks, place it
                  * (flag: or place it early) */
    W_REQUEUE,   /* a processing t goes back to waiting (flag: cancel it on its worker) */
    W_READY,     /* place t if it waits for nothing */
    W_EARLY,     /* place the waiting t early if it can be (early.h) */
};

/* The only place where a task's state changes. */
void tr_set_state(graph *g, task *t, int state);

/* Queues an operation (err: a counted reference is taken). Runs when tr_drain does. */
void tr_push(graph *g, task *t, int op, bool flag, task_error *err);
/* Runs the worklist until it is empty. Every graph_* entry point ends with it. */
void tr_drain(graph *g);

/* Steps used by graph.c directly (none recurses over the graph). */
void tr_place(graph *g, task *t);
/* t becomes PROCESSING on w (early: placed before its dependencies finished). */
void tr_assign(graph *g, task *t, worker *w, bool early);
void tr_in_memory(graph *g, task *t, worker *w, int64_t nbytes, const void *inl, size_t inl_len);
void tr_maybe_forget(graph *g, task *t);
void tr_forget_queued(graph *g);
void tr_unpend(task *t);
void tr_free_on_workers(graph *g, task *t);
size_t tr_count_missing(const task *t);

/* Errors: a new counted record (NULL when out of memory: graph_error_of stands in). */
task_error *tr_error_new(int code, const char *msg, const char *fn, const char *key);
task_error *tr_error_ref(task_error *e);
void tr_error_unref(task_error *e);

#endif
