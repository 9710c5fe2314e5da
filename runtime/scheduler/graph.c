/* The graph engine's records and entry points (graph.h); the transitions they start are in
 * transitions.c.
 *
 * Design notes
 *  Memory: requests are decoded on nng's threads a batch at a time; keeping a pointer into
 *  one would keep the pages of the whole batch resident. So a task copies what it keeps into
 *  its own allocation: the key, then the arguments' CBOR (task_new); an inline result of up
 *  to 8 bytes lives in the record. Task names and plugin ids are interned (shared, counted).
 *
 *  Resubmission: the same key is one task. A released key computes again from its lineage;
 *  an erred one that no client holds runs again (its lineage's unheld errors with it), so a
 *  client that released an erred future and submits the same call again gets a fresh run,
 *  in the same batch as the release or later.
 *
 *  Cancel: a client's "I no longer want it". Its futures of the key and of the unfinished
 *  tasks depending on it err with TERN_ECANCELED; the tasks themselves stop only when no one
 *  else wants or needs them (they are then forgotten, which cancels them on their workers).
 */
#include "runtime/scheduler/graph.h"

#include "runtime/scheduler/early.h"
#include "runtime/scheduler/placement.h"
#include "runtime/scheduler/transitions.h"
#include "sdk/src/utf8.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

/* A task whose dependency fetches fail this often (holders alive but unreachable) errs. */
#define MAX_LOST_FETCHES 5

const char *const graph_state_names[T_NSTATES] = { "waiting", "no-worker", "processing",
                                                   "memory",  "erred",     "released" };

/* ---- records --------------------------------------------------------------------------- */

struct interned {
    size_t refs;
    UT_hash_handle hh;
    char s[];
};

/* The shared copy of s, counted; NULL if out of memory. */
static const char *intern(graph *g, const char *s)
{
    interned *i;
    size_t len = strlen(s);
    HASH_FIND(hh, g->strings, s, len, i);
    if (!i) {
        if (!(i = malloc(sizeof(*i) + len + 1)))
            return NULL;
        i->refs = 0;
        memcpy(i->s, s, len + 1);
        HASH_ADD(hh, g->strings, s[0], len, i);
    }
    i->refs++;
    return i->s;
}

static void unintern(graph *g, const char *s)
{
    if (!s)
        return;
    interned *i = (interned *)(s - offsetof(interned, s));
    if (--i->refs == 0) {
        HASH_DEL(g->strings, i);
        free(i);
    }
}

/* A WAITING task record with its key and a copy of args stored after it: one allocation,
 * not yet in the table. NULL if out of memory. */
static task *task_new(graph *g, const char *key, const void *args, size_t alen)
{
    size_t len = strlen(key);
    if (!args || alen > UINT32_MAX)
        args = NULL, alen = 0;
    task *t = calloc(1, sizeof(*t) + len + 1 + alen);
    if (!t)
        return NULL;
    t->seq = g->task_seq++;
    t->key = (char *)(t + 1);
    memcpy(t->key, key, len + 1);
    if (args) {
        uint8_t *copy = (uint8_t *)t->key + len + 1;
        memcpy(copy, args, alen);
        t->args = copy;
        t->args_len = (uint32_t)alen;
    }
    t->state = T_WAITING;
    return t;
}

/* Frees a record (not in the table, or being removed from it). */
void graph_task_free(graph *g, task *t)
{
    g->nstate[t->state]--;
    unintern(g, t->fn);
    unintern(g, t->plugin_id);
    if (t->inl_len > sizeof(t->inl.small))
        free(t->inl.p);
    free(t->deps);
    terni_ptrs_free(&t->dependents);
    terni_ptrs_free(&t->wanters);
    terni_ptrs_free(&t->who);
    if (t->restrict_to)
        for (char **r = t->restrict_to; *r; r++)
            free(*r);
    free(t->restrict_to);
    tr_error_unref(t->err);
    early_undefer(t);
    if (t->push) {
        terni_ptrs_free(&t->push->to);
        terni_ptrs_free(&t->push->got);
        free(t->push);
    }
    free(t);
}

/* Puts a new record in the table with its interned names. False when out of memory (t is
 * then freed). */
static bool task_add(graph *g, task *t, const char *fn, const char *plugin_id)
{
    g->nstate[t->state]++;
    if (!(t->fn = intern(g, fn ? fn : "")) ||
        (plugin_id && !(t->plugin_id = intern(g, plugin_id))) ||
        terni_keytab_put(&g->tasks, t->key, t) != 0) {
        graph_task_free(g, t);
        return false;
    }
    t->sym = stats_symbol(&g->st, t->fn);
    return true;
}

task *graph_task(graph *g, const char *key)
{
    return key ? terni_keytab_get(&g->tasks, key) : NULL;
}

int graph_init(graph *g, const graph_effects *fx, void *ctx)
{
    memset(g, 0, sizeof(*g));
    g->fx = fx;
    g->ctx = ctx;
    g->task_time = 1e-4;
    g->allowed_failures = 3;
    terni_list_init(&g->deferred);
    return terni_keytab_init(&g->tasks);
}

void graph_free(graph *g)
{
    TERNI_KEYTAB_EACH (&g->tasks, e)
        graph_task_free(g, e->value);
    terni_keytab_free(&g->tasks);
    interned *i, *tmp;
    HASH_ITER(hh, g->strings, i, tmp)
    {
        HASH_DEL(g->strings, i);
        free(i);
    }
    worker *w, *wtmp;
    HASH_ITER(hh, g->workers, w, wtmp)
    HASH_DEL(g->workers, w);
    for (size_t k = 0; k < g->nwork; k++)
        tr_error_unref(g->work[k].err);
    free(g->work);
    stats_free(&g->st);
    memset(g, 0, sizeof(*g));
}

/* Runs the worklist; t (if not NULL) errs first with a new error (code, msg, root t). */
static void err_and_drain(graph *g, task *t, int code, const char *msg, bool cancel_there)
{
    if (t) {
        task_error *e = tr_error_new(code, msg, t->fn, t->key);
        tr_push(g, t, W_ERR, cancel_there, e);
        tr_error_unref(e);
    }
    tr_drain(g);
}

/* ---- clients --------------------------------------------------------------------------- */

static void add_wanter(task *t, client *c)
{
    if (!terni_ptrs_has(&t->wanters, c))
        terni_ptrs_push(&t->wanters, c);
}

static void notify(graph *g, client *c, const task *t)
{
    if (t->state == T_MEMORY)
        g->fx->finished(g->ctx, c, t);
    else if (t->state == T_ERRED)
        g->fx->erred(g->ctx, c, t->key, graph_error_of(t));
}

/* The same key submitted again. */
static void submit_again(graph *g, client *c, task *t, const graph_spec *spec)
{
    if (t->state == T_RELEASED || (t->state == T_ERRED && !t->wanters.n && spec->code == 0)) {
        tr_push(g, t, W_RECOMPUTE, false, NULL);
        tr_drain(g);
    }
    add_wanter(t, c);
    notify(g, c, t);
}

/* Links t to its dependencies; the message of a failure in msg. */
static int link_deps(graph *g, task *t, const graph_spec *spec, char *msg, size_t msglen)
{
    if (!spec->ndeps)
        return TERN_OK;
    if (!(t->deps = calloc(spec->ndeps, sizeof(task *)))) {
        snprintf(msg, msglen, "out of memory");
        return TERN_ENOMEM;
    }
    for (size_t i = 0; i < spec->ndeps; i++) {
        task *d = graph_task(g, spec->deps[i]);
        if (!d || d == t) {
            snprintf(msg, msglen,
                     "argument %s refers to a key the cluster does not have "
                     "(released, or never submitted)",
                     d == t ? "itself" : "future");
            return TERN_ENOTFOUND;
        }
        bool dup = false;
        for (size_t k = 0; k < t->ndeps; k++)
            dup |= t->deps[k] == d;
        if (dup)
            continue;
        if (!terni_ptrs_push(&d->dependents, t)) {
            snprintf(msg, msglen, "out of memory");
            return TERN_ENOMEM;
        }
        t->deps[t->ndeps++] = d;
        d->nneeders++;
    }
    return TERN_OK;
}

task *graph_submit(graph *g, client *c, const graph_spec *spec)
{
    task *t = graph_task(g, spec->key);
    if (t) {
        submit_again(g, c, t, spec);
        return t;
    }
    t = task_new(g, spec->key, spec->args, spec->args_len);
    if (!t || !task_add(g, t, spec->fn, spec->plugin_id))
        return NULL;
    t->priority = spec->priority;
    t->retries = spec->retries;
    t->gindex = spec->gindex;
    t->gsize = spec->gsize;
    t->timeout_ms = spec->timeout_ms;
    if (spec->nrestrict) {
        t->restrict_to = calloc(spec->nrestrict + 1, sizeof(char *));
        for (size_t i = 0, k = 0; t->restrict_to && i < spec->nrestrict; i++)
            if (spec->restrict_to[i] && (t->restrict_to[k] = strdup(spec->restrict_to[i])))
                k++;
    }
    add_wanter(t, c);
    t->submitter = c;
    c->npending++;

    char msg[512] = "";
    int code = spec->code;
    if (code != TERN_OK)
        terni_utf8_fmt(msg, sizeof(msg), "%s", spec->msg ? spec->msg : tern_strerror(code));
    else if (!spec->fn || !spec->plugin_id || !spec->args) {
        code = TERN_EPROTO;
        terni_utf8_fmt(msg, sizeof(msg), "malformed submission for %s", spec->key);
    }
    if (code == TERN_OK)
        code = link_deps(g, t, spec, msg, sizeof(msg));
    if (code != TERN_OK) {
        err_and_drain(g, t, code, msg, false);
        return t;
    }
    bool lacks_lineage = false;
    for (size_t i = 0; i < t->ndeps; i++)
        if (t->deps[i]->state == T_ERRED) {
            tr_push(g, t, W_ERR, false, t->deps[i]->err);
            tr_drain(g);
            return t;
        } else if (!graph_present(t->deps[i])) {
            lacks_lineage |= t->deps[i]->state == T_RELEASED || t->deps[i]->state == T_MEMORY;
        }
    /* Count what it lacks and place it (or early) once released lineage it refers to is on
     * its way again. */
    tr_push(g, t, W_RECOUNT, true, NULL);
    for (size_t i = 0; lacks_lineage && i < t->ndeps; i++)
        tr_push(g, t->deps[i], W_RECOMPUTE, false, NULL);
    tr_drain(g);
    return t;
}

task *graph_scatter(graph *g, client *c, const char *key)
{
    task *t = graph_task(g, key);
    if (t && !t->plugin_id && (t->state == T_RELEASED || (t->state == T_ERRED && !t->wanters.n))) {
        /* released (kept as lineage), or lost with no one holding its error: the client puts
         * the data again */
        tr_error_unref(t->err);
        t->err = NULL;
        tr_set_state(g, t, T_WAITING);
        t->nwaiting = 1;
    }
    if (t) {
        add_wanter(t, c);
        notify(g, c, t);
        return t;
    }
    t = task_new(g, key, NULL, 0);
    if (!t || !task_add(g, t, "", NULL))
        return NULL;
    t->nwaiting = 1; /* until the worker reports it holds the data */
    add_wanter(t, c);
    return t;
}

void graph_release(graph *g, client *c, const char *key)
{
    task *t = graph_task(g, key);
    if (t && terni_ptrs_remove(&t->wanters, c))
        tr_maybe_forget(g, t);
}

void graph_cancel(graph *g, client *c, const char *key)
{
    task *root = graph_task(g, key);
    if (!root || graph_finished(root))
        return;
    task_error *e = tr_error_new(TERN_ECANCELED, "cancelled", root->fn, root->key);
    terni_ptrs walk = { 0 }, seen = { 0 };
    root->in_walk = true;
    if (!terni_ptrs_push(&walk, root) || !terni_ptrs_push(&seen, root))
        root->in_walk = false;
    while (walk.n) {
        task *t = terni_ptrs_items(&walk)[--walk.n];
        if (terni_ptrs_remove(&t->wanters, c)) {
            g->fx->erred(g->ctx, c, t->key, e ? e : graph_error_of(t));
            if (t->submitter == c)
                tr_unpend(t);
            tr_maybe_forget(g, t);
        }
        for (size_t i = 0; i < t->dependents.n; i++) {
            task *d = DEPENDENT(t, i);
            if (graph_finished(d) || d->in_walk)
                continue;
            if (!terni_ptrs_push(&seen, d) || !terni_ptrs_push(&walk, d))
                break; /* out of memory: the rest of the walk is not cancelled */
            d->in_walk = true;
        }
    }
    for (size_t i = 0; i < seen.n; i++)
        ((task *)terni_ptrs_items(&seen)[i])->in_walk = false;
    terni_ptrs_free(&walk);
    terni_ptrs_free(&seen);
    tr_error_unref(e);
}

void graph_client_gone(graph *g, client *c)
{
    TERNI_KEYTAB_EACH (&g->tasks, e) {
        task *t = e->value;
        if (t->submitter == c)
            t->submitter = NULL;
        if (terni_ptrs_remove(&t->wanters, c))
            tr_maybe_forget(g, t);
    }
}

/* ---- reports from workers -------------------------------------------------------------- */

void graph_done(graph *g, worker *w, const char *key, int64_t nbytes, const void *inl,
                size_t inl_len, int64_t duration_us)
{
    task *t = graph_task(g, key);
    if (!t) { /* forgotten meanwhile: the worker should drop it */
        g->fx->free_key(g->ctx, w, key);
        return;
    }
    if (duration_us >= 0) {
        g->task_time = 0.9 * g->task_time + 0.1 * ((double)duration_us * 1e-6);
        g->ntasks_done++;
    }
    if (t->state != T_PROCESSING && t->state != T_MEMORY) {
        /* erred (cancelled) or requeued meanwhile: the result is not wanted */
        g->fx->free_key(g->ctx, w, key);
        return;
    }
    if (t->state == T_PROCESSING) {
        w->ndone++;
        stats_finished(&g->st, t->sym, t->key, t->fn, w->name, duration_us, nbytes, false);
    }
    tr_in_memory(g, t, w, nbytes, inl, inl_len);
    tr_drain(g);
}

void graph_erred(graph *g, worker *w, const char *key, int code, const char *msg, int64_t run)
{
    task *t = graph_task(g, key);
    if (!t || t->state != T_PROCESSING || t->on != w || (run >= 0 && run != t->attempt))
        return; /* stale: an earlier placement, or no longer wanted */
    /* A dependency could not be fetched: its holder left (it is then being recomputed) or
     * was unreachable. Not the task's fault: wait for the data, or place it again. */
    bool refetch = code == TERN_ELOST && t->ndeps && ++t->lost_fetches < MAX_LOST_FETCHES;
    if (refetch || t->retries > 0) {
        /* placed again, after making again what the failed run took */
        if (!refetch)
            t->retries--;
        tr_push(g, t, W_READY, false, NULL);
        tr_push(g, t, W_REQUEUE, false, NULL);
        tr_drain(g);
        return;
    }
    stats_finished(&g->st, t->sym, t->key, t->fn, w->name, -1, 0, true);
    char full[2048];
    terni_utf8_fmt(full, sizeof(full), "%s (task %s, key %s, on worker %s)",
                   msg ? msg : "task failed", t->fn, t->key, w->name);
    err_and_drain(g, t, code > 0 && code < TERN_ERR_COUNT ? code : TERN_ETASK, full, false);
}

void graph_added(graph *g, worker *w, const char *key, int64_t nbytes)
{
    task *t = graph_task(g, key);
    if (!t) {
        g->fx->free_key(g->ctx, w, key);
        return;
    }
    if (t->state == T_MEMORY || (t->state == T_WAITING && !t->plugin_id))
        tr_in_memory(g, t, w, nbytes, NULL, 0);
    else if (t->state == T_PROCESSING && push_confirm(t, w))
        ; /* pushed ahead of its producer's "done": counted when that arrives */
    else  /* released, erred or made again while it was fetched: not counted, so dropped */
        g->fx->free_key(g->ctx, w, key);
    tr_drain(g);
}

void graph_push_failed(graph *g, worker *from, const char *key, worker *to)
{
    (void)from;
    task *t = graph_task(g, key);
    if (!t || !t->push || !to || terni_ptrs_has(&t->who, to))
        return;
    terni_ptrs_remove(&t->push->to, to);
    /* What waits on `to` for it is placed again (fetching it, or waiting for it again). */
    for (size_t i = 0; i < t->dependents.n; i++) {
        task *d = DEPENDENT(t, i);
        if (d->state == T_PROCESSING && d->early && d->on == to) {
            tr_push(g, d, W_READY, false, NULL);
            tr_push(g, d, W_REQUEUE, true, NULL);
        }
    }
    tr_drain(g);
}

void graph_blame(graph *g, worker *w, const char *key, const char *why)
{
    task *t = graph_task(g, key);
    if (!t || graph_finished(t))
        return;
    t->suspicious++;
    if (t->suspicious < g->allowed_failures)
        return;
    char msg[2048];
    terni_utf8_fmt(msg, sizeof(msg),
                   "task %s (key %s) killed %d workers: it was running each time one died "
                   "(last: worker %s, whose executor %s); it is not run again "
                   "(--allowed-failures %d)",
                   t->fn, t->key, t->suspicious, w->name, why ? why : "crashed",
                   g->allowed_failures);
    err_and_drain(g, t, TERN_EKILLED, msg, true);
}

/* ---- workers --------------------------------------------------------------------------- */

static int by_seq(const void *a, const void *b)
{
    const task *x = *(task *const *)a, *y = *(task *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Calls fn(g, t, arg) for each task for which which(t, arg) holds, in creation order (asked
 * again just before each call: an earlier call may have changed it), draining the worklist
 * after each. The table iterates in hash order; creation order keeps first submitted, first
 * run among equal priorities. Out of memory for the sorted list: in the table's order. fn
 * must not add tasks; none is freed before graph_flush. */
static void each_in_order(graph *g, bool (*which)(const task *, const void *),
                          void (*fn)(graph *, task *, void *), void *arg)
{
    size_t n = 0, k = 0;
    TERNI_KEYTAB_EACH (&g->tasks, e)
        n += which(e->value, arg);
    task **ts = n ? malloc(n * sizeof(*ts)) : NULL;
    if (!ts) {
        TERNI_KEYTAB_EACH (&g->tasks, e)
            if (which(e->value, arg)) {
                fn(g, e->value, arg);
                tr_drain(g);
            }
        return;
    }
    TERNI_KEYTAB_EACH (&g->tasks, e)
        if (k < n && which(e->value, arg))
            ts[k++] = e->value;
    qsort(ts, k, sizeof(*ts), by_seq);
    for (size_t i = 0; i < k; i++)
        if (which(ts[i], arg)) {
            fn(g, ts[i], arg);
            tr_drain(g);
        }
    free(ts);
}

static bool is_unassigned(const task *t, const void *arg)
{
    (void)arg;
    return t->state == T_NO_WORKER;
}

static bool is_ready(const task *t, const void *arg)
{
    (void)arg;
    return t->state == T_WAITING && t->nwaiting == 0 && t->plugin_id;
}

static void place_one(graph *g, task *t, void *arg)
{
    (void)arg;
    tr_place(g, t);
}

void graph_place_unassigned(graph *g)
{
    each_in_order(g, is_unassigned, place_one, NULL);
}

void graph_worker_add(graph *g, worker *w)
{
    w->gone = false;
    w->join_seq = g->worker_seq++;
    g->nthreads += w->nthreads > 0 ? w->nthreads : 1;
    HASH_ADD_KEYPTR(hh, g->workers, w->name, strlen(w->name), w);
}

/* Whether a dependency of t lost its last copy with this worker (flagged in step 1, so that
 * an earlier requeue that already made it again does not hide it). Others it lacks are not
 * lost: a released one it took (its run holds it), or one running on its worker that it was
 * placed early after. */
static bool needs_lost(const task *t, const worker *w)
{
    if (push_awaited_from(t, w)) /* a push from w that never comes */
        return true;
    for (size_t i = 0; i < t->ndeps; i++)
        if (t->deps[i]->lost)
            return true;
    return false;
}

static bool is_processing(const task *t, const void *arg)
{
    (void)arg;
    return t->state == T_PROCESSING;
}

/* Step 3 for one task processing on the lost worker (back to waiting), or elsewhere needing
 * a lost key (it would fail fetching it: cancelled there, back to waiting). */
static void requeue_from(graph *g, task *t, void *arg)
{
    if (t->on == arg)
        tr_push(g, t, W_REQUEUE, false, NULL);
    else if (needs_lost(t, arg))
        tr_push(g, t, W_REQUEUE, true, NULL);
}

void graph_worker_lost(graph *g, worker *w, const char *why)
{
    g->nworkers_lost++;
    char why_lost[600];
    terni_utf8_fmt(why_lost, sizeof(why_lost),
                   "its only copy was on worker %.200s, which left: %.300s", w->name,
                   why ? why : "");
    g->lost_why = why_lost;
    w->gone = true;
    HASH_DEL(g->workers, w);
    g->nthreads -= w->nthreads > 0 ? w->nthreads : 1;
    terni_ptrs lost = { 0 };
    /* 1. Drop the worker from every who; collect keys that lost their last copy. */
    TERNI_KEYTAB_EACH (&g->tasks, e) {
        task *t = e->value;
        push_forget_worker(t, w);
        if (!terni_ptrs_remove(&t->who, w))
            continue;
        w->nkeys--;
        w->nbytes -= t->nbytes;
        if (t->state == T_MEMORY && t->who.n == 0) {
            t->lost = true;
            if (!terni_ptrs_push(&lost, t))
                g->work_oom = true; /* it stays "in memory" with no holder */
        }
    }
    /* 2. Waiting dependents count each lost key as missing again. */
    for (size_t i = 0; i < lost.n; i++) {
        task *l = terni_ptrs_items(&lost)[i];
        for (size_t k = 0; k < l->dependents.n; k++) {
            task *d = DEPENDENT(l, k);
            if (d->state == T_NO_WORKER) { /* it had everything; now it lacks l */
                tr_set_state(g, d, T_WAITING);
                d->nwaiting = 0;
            }
            if (d->state == T_WAITING)
                d->nwaiting++;
        }
    }
    /* 3. Tasks running there go back to waiting; so do tasks elsewhere that need a lost key. */
    each_in_order(g, is_processing, requeue_from, w);
    /* 4. Lost keys: recompute those still wanted or needed; the rest become lineage. */
    for (size_t i = 0; i < lost.n; i++) {
        task *t = terni_ptrs_items(&lost)[i];
        if (t->state != T_MEMORY || t->who.n) /* recomputed with another already */
            continue;
        if (t->wanters.n || t->nneeders) {
            for (size_t k = 0; k < t->wanters.n && t->plugin_id; k++)
                g->fx->recomputing(g->ctx, WANTER(t, k), t);
            tr_push(g, t, W_RECOMPUTE, false, NULL);
            tr_drain(g);
        } else {
            tr_set_state(g, t, T_RELEASED);
            tr_maybe_forget(g, t);
        }
    }
    for (size_t i = 0; i < lost.n; i++)
        ((task *)terni_ptrs_items(&lost)[i])->lost = false;
    terni_ptrs_free(&lost);
    /* 5. Pushes w was to make never come: forgotten (their waiters were requeued in 3). */
    TERNI_KEYTAB_EACH (&g->tasks, e) {
        task *t = e->value;
        if (t->push && !t->push->from)
            push_drop(g, t);
    }
    /* 6. Place everything that is ready again. */
    each_in_order(g, is_ready, place_one, NULL);
    g->lost_why = NULL;
}

void graph_flush(graph *g)
{
    tr_forget_queued(g);
}
