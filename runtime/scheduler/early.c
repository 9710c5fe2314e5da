/* Early placement and pushes (early.h).
 *
 * Design notes
 *  - A task is a candidate when it is WAITING for some dependencies and every one it lacks is
 *    PROCESSING, of a symbol known to give small results (placement_early_target: a large
 *    result is placed for by its real size once done, fetched lent through a memfd on one
 *    host or taken in place, and a symbol never seen yet may give one). Candidates are found
 *    when they are submitted (W_RECOUNT), when a dependency is placed (early_dependents) and
 *    when one finishes (tr_in_memory): each pushes a W_EARLY item, so nothing walks the
 *    graph. On a fresh cluster the first finished task of a symbol makes its dependents
 *    candidates.
 *  - The budget is counted in g->nearly (tr_assign and unassign keep it). Deferred candidates
 *    are a FIFO (an intrusive list, so that a forgotten task leaves it in O(1)); tr_drain pumps
 *    it whenever its worklist is empty and a quarter of the budget is free, up to the whole
 *    budget (so compute events go out in batches, not one per finished task), and each entry
 *    is checked again when it comes out.
 *  - Pushes: for each dependency the task lacks that runs on another worker, that worker is
 *    asked once (t->push->to dedups) to push its result to the task's worker. If the push can
 *    never come (its pusher left, or reported that it failed), the tasks waiting for it are
 *    requeued (graph_worker_lost, graph_push_failed); if the producer's run no longer counts,
 *    its early dependents are requeued with it (do_requeue) or err with it (do_err).
 */
#include "runtime/scheduler/early.h"

#include "runtime/scheduler/placement.h"
#include "runtime/scheduler/transitions.h"

#include <stdlib.h>

static size_t budget(const graph *g)
{
    return EARLY_PER_THREAD * (size_t)(g->nthreads > 0 ? g->nthreads : 1);
}

/* A task that waits for some dependencies, none of which runs on a worker that left: between a
 * worker's loss and the requeue of what ran there (graph_worker_lost's step 3), its tasks are
 * still PROCESSING there, and the deferred list may be pumped meanwhile. */
static bool candidate(const task *t)
{
    if (t->state != T_WAITING || !t->nwaiting || !t->plugin_id || !t->args)
        return false;
    for (size_t i = 0; i < t->ndeps; i++)
        if (t->deps[i]->state == T_PROCESSING && t->deps[i]->on && t->deps[i]->on->gone)
            return false;
    return true;
}

static void defer(graph *g, task *t)
{
    if (t->deferred)
        return;
    t->deferred = true;
    terni_list_push_back(&g->deferred, &t->in_deferred);
}

void early_undefer(task *t)
{
    if (!t->deferred)
        return;
    t->deferred = false;
    terni_list_remove(&t->in_deferred);
}

/* ---- pushes ------------------------------------------------------------------------------ */

/* Asks d's worker to push d to `to`, once. False when out of memory (no push will come). */
static bool push_request(graph *g, task *d, worker *to)
{
    if (d->push && d->push->from != d->on)
        push_drop(g, d); /* left from an earlier run */
    if (!d->push) {
        if (!(d->push = calloc(1, sizeof(*d->push))))
            return false;
        d->push->from = d->on;
    }
    if (terni_ptrs_has(&d->push->to, to))
        return true;
    if (!terni_ptrs_push(&d->push->to, to))
        return false;
    g->npushes++;
    g->fx->push(g->ctx, d->on, d, to);
    return true;
}

static void push_free(task *t)
{
    terni_ptrs_free(&t->push->to);
    terni_ptrs_free(&t->push->got);
    free(t->push);
    t->push = NULL;
}

bool push_confirm(task *t, worker *w)
{
    if (!t->push || !terni_ptrs_has(&t->push->to, w))
        return false;
    return terni_ptrs_has(&t->push->got, w) || terni_ptrs_push(&t->push->got, w);
}

void push_landed(graph *g, task *t)
{
    (void)g;
    push_state *p = t->push;
    if (!p)
        return;
    for (size_t i = 0; i < p->got.n; i++) {
        worker *w = terni_ptrs_items(&p->got)[i];
        terni_ptrs_remove(&p->to, w);
        if (!w->gone && !terni_ptrs_has(&t->who, w) && terni_ptrs_push(&t->who, w)) {
            w->nkeys++;
            w->nbytes += t->nbytes;
        }
    }
    p->got.n = 0;
    if (!p->to.n)
        push_free(t);
}

void push_settled(task *t, worker *w)
{
    if (!t->push)
        return;
    terni_ptrs_remove(&t->push->to, w);
    if (!t->push->to.n && !t->push->got.n)
        push_free(t);
}

void push_drop(graph *g, task *t)
{
    if (!t->push)
        return;
    for (size_t i = 0; i < t->push->got.n; i++) {
        worker *w = terni_ptrs_items(&t->push->got)[i];
        if (!w->gone)
            g->fx->free_key(g->ctx, w, t->key);
    }
    push_free(t);
}

void push_forget_worker(task *t, worker *w)
{
    if (!t->push)
        return;
    terni_ptrs_remove(&t->push->to, w);
    terni_ptrs_remove(&t->push->got, w);
    if (t->push->from == w)
        t->push->from = NULL; /* the pushes still awaited never come (push_awaited_from) */
}

bool push_awaited_from(const task *t, const worker *w)
{
    if (t->state != T_PROCESSING || !t->early || !t->on)
        return false;
    for (size_t i = 0; i < t->ndeps; i++) {
        const task *d = t->deps[i];
        const push_state *p = d->push;
        if (p && (p->from == w || !p->from) && d->state == T_MEMORY &&
            terni_ptrs_has(&p->to, t->on) && !terni_ptrs_has(&d->who, t->on))
            return true;
    }
    return false;
}

/* ---- placing early ----------------------------------------------------------------------- */

/* Places t early on w, asking for the pushes it needs. False if the compute event could not
 * be sent (t stays waiting). */
static bool place_early(graph *g, task *t, worker *w)
{
    int64_t previous = t->attempt;
    t->attempt = ++g->run_seq;
    if (!g->fx->compute(g->ctx, w, t, true)) {
        t->attempt = previous;
        return false;
    }
    early_undefer(t);
    t->took = false;
    tr_assign(g, t, w, true);
    for (size_t i = 0; i < t->ndeps; i++) {
        task *d = t->deps[i];
        if (!graph_present(d) && d->on != w && !push_request(g, d, w)) {
            /* out of memory: nothing would come; it goes back to waiting (placed again
             * when it lacks nothing) */
            tr_push(g, t, W_READY, false, NULL);
            tr_push(g, t, W_REQUEUE, true, NULL);
            return true;
        }
    }
    early_dependents(g, t);
    return true;
}

void early_consider(graph *g, task *t)
{
    if (!candidate(t))
        return;
    worker *w = placement_early_target(g, t);
    if (!w)
        return;
    if (g->nearly >= budget(g) || !terni_list_empty(&g->deferred))
        defer(g, t); /* behind those deferred before it, placed in the next batch */
    else
        place_early(g, t, w);
}

bool early_pump(graph *g)
{
    bool placed = false;
    terni_list *l;
    size_t b = budget(g);
    /* Refilled a quarter of the budget at a time, not one task per finished one: a worker
     * then gets its compute events in batches, one poll reply for several (hysteresis). */
    if (g->nearly + b / 4 > b)
        return false;
    while (g->nearly < b && (l = terni_list_first(&g->deferred))) {
        task *t = TERNI_CONTAINER_OF(l, task, in_deferred);
        early_undefer(t);
        worker *w = candidate(t) ? placement_early_target(g, t) : NULL;
        if (w && place_early(g, t, w))
            placed = true;
    }
    return placed;
}

void early_dependents(graph *g, task *t)
{
    for (size_t i = 0; i < t->dependents.n; i++) {
        task *d = DEPENDENT(t, i);
        if (candidate(d))
            tr_push(g, d, W_EARLY, false, NULL);
    }
}
