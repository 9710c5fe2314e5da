/* Early placement and pushes (early.c): a waiting task whose missing dependencies are all
 * running is placed on a worker before they finish, and each worker running one of them is
 * told to push its result there ("push" effect). The consumer starts as soon as the pushed
 * values land, with no scheduler round trip on the dependency edge. Shared by transitions.c,
 * graph.c and validate.c only.
 *
 * Budget: at most EARLY_PER_THREAD tasks per connected executor thread are PROCESSING early at
 * once; a task that could be placed early beyond that waits in g->deferred (first come, first
 * placed) until an early task finishes. The lookahead keeps workers fed while the scheduler
 * is behind, and late binding for the rest (a ready task is placed knowing where its inputs
 * are and how long tasks take).
 *
 * Push bookkeeping (t->push): the worker t runs on (from), the workers asked to receive it
 * (to), and those that confirmed a copy ("added") before t's own "done" arrived (got). A
 * confirmed copy is counted as held (t->who) once t is in memory, so it is freed with t; an
 * unconfirmed one is not counted, and should it land after t was released, its "added" is
 * answered with "free" (graph_added). */
#ifndef TERNI_SCHED_EARLY_H
#define TERNI_SCHED_EARLY_H

#include "runtime/scheduler/graph.h"

#define EARLY_PER_THREAD 256

typedef struct push_state {
    worker *from;
    terni_ptrs to, got;
} push_state;

/* W_EARLY: place the waiting t early if it can be (placement_early_target), now or once the
 * budget allows (deferred); else nothing (it is considered again when one of its
 * dependencies is placed or finishes). */
void early_consider(graph *g, task *t);
/* Places deferred tasks while the budget allows. True if it placed one (the worklist may have
 * items again). */
bool early_pump(graph *g);
/* t was placed (early or not): its waiting dependents are considered (W_EARLY items). */
void early_dependents(graph *g, task *t);
/* t leaves the deferred list (placed, erred, forgotten). */
void early_undefer(task *t);

/* w reports a copy of t (pushed) while t is still PROCESSING: true if w was asked for it (it
 * is then counted when t is in memory), false if not (the caller has it freed). */
bool push_confirm(task *t, worker *w);
/* t is in memory (t->who set): the confirmed copies join t->who; unconfirmed targets are kept
 * (their copies confirm later, or are freed then). */
void push_landed(graph *g, task *t);
/* t's copy on w is counted now (added after t was in memory): no longer awaited. */
void push_settled(task *t, worker *w);
/* t's run no longer counts (requeued, erred, released, forgotten): copies confirmed for it are
 * freed, and no more are awaited. */
void push_drop(graph *g, task *t);
/* w left: it is no longer a target of t. */
void push_forget_worker(task *t, worker *w);
/* Whether t, placed early on its worker, waits for a push from w of a dependency that is in
 * memory but not on t's worker (w left or failed to push: it never comes). */
bool push_awaited_from(const task *t, const worker *w);

#endif
