/* Placement (placement.h): pure functions of the graph's state. */
#include "runtime/scheduler/placement.h"

#include <string.h>

bool placement_allowed(const task *t, const worker *w)
{
    if (w->gone)
        return false;
    if (!t->restrict_to)
        return true;
    for (char **r = t->restrict_to; *r; r++)
        if (!strcmp(*r, w->name))
            return true;
    return false;
}

/* Co-assignment of map siblings: contiguous blocks, dealt round the workers in join order,
 * which is the table's iteration order (uthash keeps insertion order; workers are only
 * appended). A block is each worker's share of the map, at most PLACEMENT_MAP_BLOCK. */
static worker *map_block_worker(const graph *g, const task *t)
{
    size_t nworkers = HASH_COUNT(g->workers);
    size_t share = (t->gsize + nworkers - 1) / nworkers;
    size_t block = share < PLACEMENT_MAP_BLOCK ? share : PLACEMENT_MAP_BLOCK;
    size_t want = (t->gindex / block) % nworkers, i = 0;
    worker *w, *tmp;
    HASH_ITER(hh, g->workers, w, tmp)
    {
        if (i++ == want)
            return w->gone ? NULL : w;
    }
    return NULL;
}

/* The allowed worker of least cost(g, t, w); ties to the least loaded. NULL if none. */
static worker *cheapest(const graph *g, const task *t,
                        double (*cost_of)(const graph *, const task *, const worker *))
{
    worker *w, *tmp, *best = NULL;
    double best_cost = 0;
    HASH_ITER(hh, g->workers, w, tmp)
    {
        if (!placement_allowed(t, w))
            continue;
        double cost = cost_of(g, t, w);
        if (!best || cost < best_cost - 1e-12 ||
            (cost <= best_cost + 1e-12 && w->nprocessing < best->nprocessing)) {
            best = w;
            best_cost = cost;
        }
    }
    return best;
}

/* A ready task on w: the queue there, and for each dependency w lacks a fetch's latency and
 * its bytes over bandwidth. */
static double ready_cost(const graph *g, const task *t, const worker *w)
{
    double missing = 0;
    size_t fetches = 0;
    for (size_t i = 0; i < t->ndeps; i++)
        if (!terni_ptrs_has(&t->deps[i]->who, w)) {
            missing += (double)t->deps[i]->nbytes;
            fetches++;
        }
    return (double)w->nprocessing / (w->nthreads > 0 ? w->nthreads : 1) * g->task_time +
           (double)fetches * PLACEMENT_PUSH_LATENCY + missing / PLACEMENT_BANDWIDTH;
}

static double early_cost(const graph *g, const task *t, const worker *w);

worker *placement_choose(const graph *g, const task *t)
{
    if (HASH_COUNT(g->workers) == 0)
        return NULL;
    if (t->ndeps == 0 && t->gsize > 1 && !t->restrict_to) {
        worker *w = map_block_worker(g, t);
        if (w)
            return w;
    }
    return cheapest(g, t, ready_cost);
}

bool placement_may_take(const task *d, const worker *w)
{
    return d->state == T_MEMORY && d->wanters.n == 0 && d->nneeders == 1 && d->who.n == 1 &&
           terni_ptrs_items(&d->who)[0] == w && d->plugin_id && d->args && d->inl_len == 0 &&
           d->nbytes >= PLACEMENT_TAKE_MIN_BYTES;
}

/* Whether d's symbol has finished before and given mostly small results. Otherwise d's
 * dependents are placed once it is done, knowing its real size: a large result then goes by
 * the data plane's fetch (lent through a memfd on one host) or is taken to compute in place. */
static bool small_results(const task *d)
{
    return d->sym && d->sym->done > 0 && 2 * d->sym->large < d->sym->done;
}

/* Early placement's estimate for t on w: the queue there, plus a push's latency for each
 * dependency that must come from elsewhere, plus the known bytes of those over bandwidth. */
static double early_cost(const graph *g, const task *t, const worker *w)
{
    double bytes = 0;
    size_t remote = 0;
    for (size_t i = 0; i < t->ndeps; i++) {
        const task *d = t->deps[i];
        if (graph_present(d)) {
            if (!terni_ptrs_has(&d->who, w)) {
                remote++;
                bytes += (double)d->nbytes;
            }
        } else if (d->on != w) {
            remote++;
        }
    }
    /* An input from elsewhere costs a push, and a task moved off its inputs' worker is worth
     * it only when that queue is longer by two tasks per input or more: early tasks queue
     * behind the chains they continue, so a queue a task or so longer is the pipeline itself
     * (independent chains would otherwise hop between workers as their queues fluctuate). */
    return (double)w->nprocessing / (w->nthreads > 0 ? w->nthreads : 1) * g->task_time +
           (double)remote * (PLACEMENT_PUSH_LATENCY + 2 * g->task_time) +
           bytes / PLACEMENT_BANDWIDTH;
}

worker *placement_early_target(const graph *g, const task *t)
{
    size_t missing = 0;
    for (size_t i = 0; i < t->ndeps; i++) {
        const task *d = t->deps[i];
        if (graph_present(d))
            continue;
        if (d->state != T_PROCESSING || !d->on || !small_results(d))
            return NULL;
        missing++;
    }
    if (!missing)
        return NULL;
    return cheapest(g, t, early_cost);
}

worker *placement_scatter_target(const graph *g)
{
    worker *w, *tmp, *best = NULL;
    HASH_ITER(hh, g->workers, w, tmp)
    {
        if (!best || w->nbytes < best->nbytes)
            best = w;
    }
    return best;
}
