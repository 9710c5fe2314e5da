/* The graph engine's state transitions.
 *
 * Design notes
 *  One function sets a state (tr_set_state), and it keeps the per-state counts. Every change
 *  that spreads over the graph (an error reaching every dependent, a lineage computed again,
 *  dependents placed early going back to waiting) is an item on one worklist, a stack that
 *  tr_drain runs until it is empty: no transition calls itself, or another that could call
 *  it back, so a chain of a million tasks costs a million items, not a million C frames.
 *  Items may find their task changed since they were pushed (an error that reached a task
 *  twice, through a diamond); each checks the state it needs first and does nothing
 *  otherwise. Tasks are never freed during a drain: forgetting is queued (tr_maybe_forget)
 *  and done after the event (graph_flush), so a pushed task pointer stays valid.
 *
 *  Order: a stack runs the last pushed first, so a step that must run after others is pushed
 *  before them (W_RECOUNT before the W_RECOMPUTE of each dependency; W_READY before the
 *  W_REQUEUE whose recomputes it must wait for).
 *
 *  Counting invariants (validate.c checks them): d->nneeders = dependents of d in WAITING,
 *  NO_WORKER or PROCESSING; a WAITING task's nwaiting = its dependencies not present;
 *  w->nprocessing, w->nkeys and w->nbytes match the tasks on w and the copies w holds.
 */
#include "runtime/scheduler/transitions.h"

#include "runtime/scheduler/early.h"
#include "runtime/scheduler/placement.h"
#include "sdk/src/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

/* ---- errors ---------------------------------------------------------------------------- */

static task_error oom_error = { 0, TERN_ENOMEM, "out of memory recording the error", "", "" };

task_error *tr_error_new(int code, const char *msg, const char *fn, const char *key)
{
    msg = msg ? msg : tern_strerror(code);
    fn = fn ? fn : "";
    key = key ? key : "";
    size_t lm = strlen(msg) + 1, lt = strlen(fn) + 1, lk = strlen(key) + 1;
    task_error *e = malloc(sizeof(*e) + lm + lt + lk);
    if (!e)
        return NULL;
    char *p = (char *)(e + 1);
    e->refs = 1;
    e->code = code;
    e->msg = memcpy(p, msg, lm);
    e->task = memcpy(p + lm, fn, lt);
    e->key = memcpy(p + lm + lt, key, lk);
    return e;
}

task_error *tr_error_ref(task_error *e)
{
    if (e && e != &oom_error)
        e->refs++;
    return e;
}

void tr_error_unref(task_error *e)
{
    if (e && e != &oom_error && --e->refs == 0)
        free(e);
}

const task_error *graph_error_of(const task *t)
{
    return t->err ? t->err : &oom_error;
}

/* ---- the one state setter, and small steps --------------------------------------------- */

void tr_set_state(graph *g, task *t, int state)
{
    g->nstate[t->state]--;
    g->nstate[state]++;
    t->state = (uint8_t)state;
}

void tr_unpend(task *t)
{
    if (t->submitter && t->submitter->npending)
        t->submitter->npending--;
    t->submitter = NULL;
}

size_t tr_count_missing(const task *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->ndeps; i++)
        n += !graph_present(t->deps[i]);
    return n;
}

/* t stops being PROCESSING on its worker (the caller sets its next state). */
static void unassign(graph *g, task *t)
{
    if (t->on) {
        t->on->nprocessing--;
        t->on = NULL;
    }
    if (t->early && g->nearly)
        g->nearly--;
    t->early = false;
}

void tr_free_on_workers(graph *g, task *t)
{
    push_drop(g, t);
    for (size_t i = 0; i < t->who.n; i++) {
        worker *w = WHO_AT(t, i);
        w->nkeys--;
        w->nbytes -= t->nbytes;
        g->fx->free_key(g->ctx, w, t->key);
    }
    t->who.n = 0;
}

static void inline_clear(task *t)
{
    if (t->inl_len > sizeof(t->inl.small))
        free(t->inl.p);
    t->inl_len = 0;
}

/* Keeps a copy of inl as t's inline result; false if out of memory (t then has none). */
static bool inline_set(task *t, const void *inl, size_t len)
{
    inline_clear(t);
    if (!inl || !len || len > UINT32_MAX)
        return false;
    if (len > sizeof(t->inl.small)) {
        if (!(t->inl.p = malloc(len)))
            return false;
        memcpy(t->inl.p, inl, len);
    } else {
        memcpy(t->inl.small, inl, len);
    }
    t->inl_len = (uint32_t)len;
    return true;
}

/* ---- the worklist ---------------------------------------------------------------------- */

void tr_push(graph *g, task *t, int op, bool flag, task_error *err)
{
    if (g->nwork == g->work_cap) {
        size_t cap = g->work_cap ? g->work_cap * 2 : 256;
        graph_work *grown = realloc(g->work, cap * sizeof(*grown));
        if (!grown) {
            /* Out of memory: the step is lost. Counted so that the log says so once. */
            g->work_oom = true;
            return;
        }
        g->work = grown;
        g->work_cap = cap;
    }
    g->work[g->nwork++] = (graph_work){ t, (uint8_t)op, flag, tr_error_ref(err) };
}

/* ---- forgetting ------------------------------------------------------------------------ */

void tr_maybe_forget(graph *g, task *t)
{
    if (t->wanters.n || t->nneeders || t->forget_queued)
        return;
    t->forget_queued = true;
    t->next_forget = g->forget_head;
    g->forget_head = t;
}

/* A dependent of each of t's deps stops needing them (t finished or was forgotten). */
static void release_deps(graph *g, task *t)
{
    for (size_t i = 0; i < t->ndeps; i++)
        if (t->deps[i]->nneeders)
            t->deps[i]->nneeders--;
    for (size_t i = 0; i < t->ndeps; i++)
        tr_maybe_forget(g, t->deps[i]);
}

/* No one wants t's result any more, but dependents' records need its lineage: free the
 * data (or stop the computation) and keep the record. */
static void release_keep_lineage(graph *g, task *t)
{
    tr_unpend(t);
    early_undefer(t);
    if (t->state == T_PROCESSING && t->on)
        g->fx->cancel(g->ctx, t->on, t->key);
    unassign(g, t);
    if (!graph_finished(t))
        release_deps(g, t);
    tr_free_on_workers(g, t);
    inline_clear(t);
    if (t->state != T_ERRED)
        tr_set_state(g, t, T_RELEASED);
}

void graph_task_free(graph *g, task *t); /* graph.c */

static void forget_now(graph *g, task *t)
{
    if (t->dependents.n) {
        release_keep_lineage(g, t);
        return;
    }
    if (t->state == T_PROCESSING && t->on)
        g->fx->cancel(g->ctx, t->on, t->key);
    unassign(g, t);
    early_undefer(t);
    tr_free_on_workers(g, t);
    tr_unpend(t);
    bool was_finished = graph_finished(t);
    terni_keytab_pop(&g->tasks, t->key);
    for (size_t i = 0; i < t->ndeps; i++)
        terni_ptrs_remove(&t->deps[i]->dependents, t);
    if (!was_finished)
        release_deps(g, t);
    else
        for (size_t i = 0; i < t->ndeps; i++)
            tr_maybe_forget(g, t->deps[i]);
    graph_task_free(g, t);
    g->forgotten++;
}

void tr_forget_queued(graph *g)
{
    while (g->forget_head) {
        task *t = g->forget_head;
        g->forget_head = t->next_forget;
        t->forget_queued = false;
        if (!t->wanters.n && !t->nneeders)
            forget_now(g, t);
    }
}

/* ---- placing --------------------------------------------------------------------------- */

/* After a compute event that named them in "take": the taken deps are released to t, their
 * copy on w counted as gone (w drops it from its store as the event arrives). */
static void take_deps(graph *g, task *t, worker *w)
{
    for (size_t i = 0; i < t->ndeps; i++) {
        task *d = t->deps[i];
        if (placement_may_take(d, w)) {
            t->took = true;
            terni_ptrs_remove(&d->who, w);
            w->nkeys--;
            w->nbytes -= d->nbytes;
            tr_set_state(g, d, T_RELEASED);
        }
    }
}

/* A task was sent to w: count the dependency bytes w lacks as transferred. */
static void count_transfer(graph *g, const task *t, const worker *w)
{
    for (size_t i = 0; i < t->ndeps; i++)
        if (!terni_ptrs_has(&t->deps[i]->who, w))
            g->st.transfer_bytes += t->deps[i]->nbytes;
}

void tr_assign(graph *g, task *t, worker *w, bool early)
{
    tr_set_state(g, t, T_PROCESSING);
    early_undefer(t);
    t->early = early;
    g->nearly += early;
    t->on = w;
    w->nprocessing++;
    count_transfer(g, t, w);
}

void tr_place(graph *g, task *t)
{
    early_undefer(t); /* leaves WAITING, placed or not (NO_WORKER) */
    t->took = false;
    worker *w = placement_choose(g, t);
    if (!w) {
        tr_set_state(g, t, T_NO_WORKER);
        return;
    }
    t->attempt = ++g->run_seq;
    if (!g->fx->compute(g->ctx, w, t, false)) {
        tr_set_state(g, t, T_NO_WORKER);
        return;
    }
    take_deps(g, t, w);
    tr_assign(g, t, w, false);
    early_dependents(g, t);
}

static void ready(graph *g, task *t)
{
    if (t->state == T_WAITING && t->nwaiting == 0)
        tr_place(g, t);
}

void tr_in_memory(graph *g, task *t, worker *w, int64_t nbytes, const void *inl, size_t inl_len)
{
    bool was_memory = t->state == T_MEMORY;
    bool was_needer = !graph_finished(t);
    if (t->state == T_PROCESSING)
        unassign(g, t);
    tr_set_state(g, t, T_MEMORY);
    tr_unpend(t);
    if (!was_memory) { /* a further copy keeps the size its holders were counted with */
        t->nbytes = nbytes;
        if (inl && inl_len)
            inline_set(t, inl, inl_len); /* out of memory: clients fetch it instead */
    }
    if (!terni_ptrs_has(&t->who, w) && terni_ptrs_push(&t->who, w)) {
        w->nkeys++;
        w->nbytes += t->nbytes;
    }
    if (was_memory) {
        push_settled(t, w);
        return;
    }
    push_landed(g, t); /* copies pushed to the workers of its early dependents */
    for (size_t i = 0; i < t->wanters.n; i++)
        g->fx->finished(g->ctx, WANTER(t, i), t);
    for (size_t i = 0; i < t->dependents.n; i++) {
        task *d = DEPENDENT(t, i);
        if (d->state == T_WAITING && d->nwaiting) {
            d->nwaiting--;
            if (d->nwaiting)
                tr_push(g, d, W_EARLY, false, NULL); /* may now be placed early */
            else
                ready(g, d); /* placing changes no other task's state but taken deps' */
        }
    }
    if (was_needer)
        release_deps(g, t);
    tr_maybe_forget(g, t);
}

/* ---- the worklist's steps -------------------------------------------------------------- */

static void do_err(graph *g, task *t, task_error *e, bool cancel_there)
{
    if (graph_finished(t))
        return; /* erred already (reached twice), or done */
    if (t->state == T_PROCESSING && t->on && (cancel_there || t->early))
        g->fx->cancel(g->ctx, t->on, t->key);
    unassign(g, t);
    early_undefer(t);
    push_drop(g, t);
    tr_set_state(g, t, T_ERRED);
    tr_unpend(t);
    tr_error_unref(t->err);
    t->err = tr_error_ref(e);
    const task_error *err = graph_error_of(t);
    for (size_t i = 0; i < t->wanters.n; i++)
        g->fx->erred(g->ctx, WANTER(t, i), t->key, err);
    /* A dependent placed (not early) has what it needs from t already: t can only err now
     * because it was made again after that dependent took it. It runs on; should it run
     * again, it errs then (do_recount). */
    for (size_t i = 0; i < t->dependents.n; i++) {
        task *d = DEPENDENT(t, i);
        if (!graph_finished(d) && !(d->state == T_PROCESSING && !d->early))
            tr_push(g, d, W_ERR, true, e);
    }
    release_deps(g, t);
    tr_maybe_forget(g, t);
}

/* Whether an erred t may run again: it has lineage and no client holds its error. */
static bool may_rerun(const task *t)
{
    return t->state == T_ERRED && t->wanters.n == 0 && t->plugin_id && t->args;
}

static void do_recompute(graph *g, task *t)
{
    bool lost = t->state == T_MEMORY && t->who.n == 0;
    if (t->state != T_RELEASED && !lost && !may_rerun(t))
        return; /* on its way already, present, or erred for someone */
    inline_clear(t);
    push_drop(g, t);
    if (!t->plugin_id) {
        char msg[1400];
        terni_utf8_fmt(msg, sizeof(msg),
                       "scattered data %s was lost (%s) and cannot be recomputed: scatter it again",
                       t->key, g->lost_why ? g->lost_why : "no worker holds it");
        tr_set_state(g, t, T_WAITING); /* unfinished, and it needs nothing: do_err releases
                                          nothing */
        task_error *e = tr_error_new(TERN_ELOST, msg, "", t->key);
        do_err(g, t, e, false);
        tr_error_unref(e);
        return;
    }
    if (t->state == T_ERRED) {
        tr_error_unref(t->err);
        t->err = NULL;
        t->lost_fetches = 0;
    }
    tr_set_state(g, t, T_WAITING);
    g->nrecomputed++;
    for (size_t i = 0; i < t->ndeps; i++)
        t->deps[i]->nneeders++;
    tr_push(g, t, W_RECOUNT, false, NULL);
    for (size_t i = 0; i < t->ndeps; i++)
        tr_push(g, t->deps[i], W_RECOMPUTE, false, NULL);
}

static void do_recount(graph *g, task *t, bool try_early)
{
    if (t->state != T_WAITING)
        return;
    for (size_t i = 0; i < t->ndeps; i++)
        if (t->deps[i]->state == T_ERRED) {
            do_err(g, t, t->deps[i]->err, false);
            return;
        }
    t->nwaiting = (uint32_t)tr_count_missing(t);
    if (t->nwaiting == 0)
        tr_place(g, t);
    else if (try_early)
        early_consider(g, t);
}

static void do_requeue(graph *g, task *t, bool cancel_there)
{
    if (t->state != T_PROCESSING)
        return;
    worker *w = t->on;
    /* Dependents placed early wait for t's result, here or pushed to their workers: not any
     * more. Copies pushed from this run are dropped. */
    for (size_t i = 0; i < t->dependents.n; i++) {
        task *d = DEPENDENT(t, i);
        if (d->state == T_PROCESSING && d->early)
            tr_push(g, d, W_REQUEUE, d->on && !d->on->gone, NULL);
    }
    if (w && cancel_there && !w->gone)
        g->fx->cancel(g->ctx, w, t->key);
    unassign(g, t);
    push_drop(g, t);
    tr_set_state(g, t, T_WAITING);
    t->nwaiting = (uint32_t)tr_count_missing(t);
    /* A dependency t took and that was made again since may have erred meanwhile (do_err left
     * t running then): it errs now that it must run again. */
    for (size_t i = 0; i < t->ndeps; i++)
        if (t->deps[i]->state == T_ERRED) {
            do_err(g, t, t->deps[i]->err, false);
            return;
        }
    /* A dependency t took is gone with that run: make it again. */
    for (size_t i = 0; i < t->ndeps; i++)
        if (t->deps[i]->state == T_RELEASED)
            tr_push(g, t->deps[i], W_RECOMPUTE, false, NULL);
}

static void tr_drain_work(graph *g)
{
    while (g->nwork) {
        graph_work it = g->work[--g->nwork];
        switch (it.op) {
        case W_ERR:
            do_err(g, it.t, it.err, it.flag);
            break;
        case W_RECOMPUTE:
            do_recompute(g, it.t);
            break;
        case W_RECOUNT:
            do_recount(g, it.t, it.flag);
            break;
        case W_REQUEUE:
            do_requeue(g, it.t, it.flag);
            break;
        case W_READY:
            ready(g, it.t);
            break;
        case W_EARLY:
            early_consider(g, it.t);
            break;
        }
        tr_error_unref(it.err);
    }
}

/* The worklist until it is empty, then the deferred early placements the budget allows (which
 * may push items again). */
void tr_drain(graph *g)
{
    do
        tr_drain_work(g);
    while (early_pump(g));
}
