/* graph_validate: every invariant of the graph engine, checked by walking all of it. The
 * tests call it after every event; debug builds of the scheduler too (ops.c). */
#include "runtime/scheduler/graph.h"

#include "runtime/scheduler/early.h"
#include "runtime/scheduler/transitions.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct check {
    char *msg;
    size_t len;
    bool ok;
} check;

static bool fail(check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(check *c, const char *fmt, ...)
{
    if (c->ok) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->msg, c->len, fmt, ap);
        va_end(ap);
    }
    c->ok = false;
    return false;
}

static bool needer(const task *t)
{
    return t->state == T_WAITING || t->state == T_NO_WORKER || t->state == T_PROCESSING;
}

static bool has_dep(const task *t, const task *d)
{
    for (size_t i = 0; i < t->ndeps; i++)
        if (t->deps[i] == d)
            return true;
    return false;
}

static bool no_dups(const terni_ptrs *a)
{
    void **it = terni_ptrs_items(a);
    for (size_t i = 0; i < a->n; i++)
        for (size_t j = i + 1; j < a->n; j++)
            if (it[i] == it[j])
                return false;
    return true;
}

static bool known_worker(graph *g, const worker *w)
{
    worker *x;
    HASH_FIND_STR(g->workers, w->name, x);
    return x == w && !w->gone;
}

/* The state of each dependency, given t's. */
static void check_deps_state(check *c, const task *t)
{
    for (size_t i = 0; i < t->ndeps; i++) {
        const task *d = t->deps[i];
        bool ok = true;
        if (t->state == T_WAITING)
            ok = d->state != T_ERRED;
        else if (t->state == T_NO_WORKER)
            ok = graph_present(d);
        else if (t->state == T_PROCESSING && t->early)
            ok = graph_present(d) ||
                 (d->state == T_PROCESSING && d->on &&
                  (d->on == t->on || (d->push && terni_ptrs_has(&d->push->to, t->on))));
        else if (t->state == T_PROCESSING) /* present; or taken, then maybe made again */
            ok = graph_present(d) || t->took;
        if (!ok)
            fail(c, "%s is %s%s but its dependency %s is %s", t->key, graph_state_names[t->state],
                 t->early ? " (early)" : "", d->key, graph_state_names[d->state]);
    }
}

static void check_task(check *c, graph *g, const char *key, task *t)
{
    if (t->state >= T_NSTATES) {
        fail(c, "%s has no state (%d)", t->key, t->state);
        return;
    }
    if (strcmp(key, t->key))
        fail(c, "%s is in the table under %s", t->key, key);
    uint32_t needers = 0;
    for (size_t i = 0; i < t->dependents.n; i++) {
        task *d = DEPENDENT(t, i);
        if (!has_dep(d, t))
            fail(c, "%s lists %s as a dependent, which does not depend on it", t->key, d->key);
        needers += needer(d);
    }
    if (needers != t->nneeders)
        fail(c, "%s: %u dependents need it, nneeders says %u", t->key, needers, t->nneeders);
    for (size_t i = 0; i < t->ndeps; i++) {
        task *d = t->deps[i];
        if (graph_task(g, d->key) != d)
            fail(c, "%s depends on %s, which is not in the table", t->key, d->key);
        else if (!terni_ptrs_has(&d->dependents, t))
            fail(c, "%s depends on %s, which does not list it", t->key, d->key);
        for (size_t j = i + 1; j < t->ndeps; j++)
            if (t->deps[j] == d)
                fail(c, "%s lists dependency %s twice", t->key, d->key);
    }
    check_deps_state(c, t);
    if (t->state == T_WAITING) {
        uint32_t want = t->plugin_id ? (uint32_t)tr_count_missing(t) : 1;
        if (t->nwaiting != want)
            fail(c, "%s waits for %u dependencies, nwaiting says %u", t->key, want, t->nwaiting);
    }
    if ((t->state == T_PROCESSING) != (t->on != NULL))
        fail(c, "%s is %s and %s a worker", t->key, graph_state_names[t->state],
             t->on ? "has" : "has no");
    if (t->on && !known_worker(g, t->on))
        fail(c, "%s is processing on a worker that left", t->key);
    if ((t->state == T_MEMORY) != (t->who.n > 0))
        fail(c, "%s is %s with %u holders", t->key, graph_state_names[t->state], t->who.n);
    for (size_t i = 0; i < t->who.n; i++)
        if (!known_worker(g, WHO_AT(t, i)))
            fail(c, "%s is held by a worker that left", t->key);
    if (!no_dups(&t->who) || !no_dups(&t->wanters))
        fail(c, "%s lists a holder or a wanter twice", t->key);
    if (t->submitter && graph_finished(t))
        fail(c, "%s is %s but still counts against its client", t->key,
             graph_state_names[t->state]);
    if (!t->wanters.n && !t->nneeders &&
        (!t->dependents.n || (t->state != T_RELEASED && t->state != T_ERRED)))
        fail(c, "%s (%s) is wanted and needed by no one, yet kept", t->key,
             graph_state_names[t->state]);
    if (t->forget_queued || t->in_walk || t->lost)
        fail(c, "%s is marked between events", t->key);
}

typedef struct wcount {
    size_t nprocessing, nkeys;
    int64_t nbytes;
} wcount;

static int by_ptr(const void *a, const void *b)
{
    const void *x = *(void *const *)a, *y = *(void *const *)b;
    return x < y ? -1 : x > y;
}

/* Each client's npending equals the tasks that name it as submitter. */
static void check_pending(check *c, graph *g)
{
    size_t n = 0, k = 0;
    TERNI_KEYTAB_EACH (&g->tasks, e)
        n += ((task *)e->value)->submitter != NULL;
    client **cs = n ? malloc(n * sizeof(*cs)) : NULL;
    if (!cs)
        return;
    TERNI_KEYTAB_EACH (&g->tasks, e)
        if (((task *)e->value)->submitter && k < n)
            cs[k++] = ((task *)e->value)->submitter;
    qsort(cs, k, sizeof(*cs), by_ptr);
    for (size_t i = 0; i < k;) {
        size_t j = i;
        while (j < k && cs[j] == cs[i])
            j++;
        if (cs[i]->npending != j - i)
            fail(c, "a client has %zu unfinished tasks, npending says %zu", j - i, cs[i]->npending);
        i = j;
    }
    free(cs);
}

bool graph_validate(graph *g, char *msg, size_t msglen)
{
    check c = { msg, msglen, true };
    size_t nstate[T_NSTATES] = { 0 }, ntasks = 0, nearly = 0, ndeferred = 0, nlisted = 0;
    size_t nw = HASH_COUNT(g->workers), i = 0;
    worker **ws = nw ? calloc(nw, sizeof(*ws)) : NULL;
    wcount *wc = nw ? calloc(nw, sizeof(*wc)) : NULL;
    if (nw && (!ws || !wc)) {
        free(ws), free(wc);
        return fail(&c, "out of memory validating");
    }
    worker *w, *wtmp;
    HASH_ITER(hh, g->workers, w, wtmp)
    ws[i++] = w;
    TERNI_KEYTAB_EACH (&g->tasks, e) {
        task *t = e->value;
        check_task(&c, g, e->key, t);
        ntasks++;
        if (t->state < T_NSTATES)
            nstate[t->state]++;
        nearly += t->state == T_PROCESSING && t->early;
        ndeferred += t->deferred;
        if (t->deferred && t->state != T_WAITING)
            fail(&c, "%s is deferred but %s", t->key, graph_state_names[t->state]);
        if (t->early && t->state != T_PROCESSING)
            fail(&c, "%s is marked early but %s", t->key, graph_state_names[t->state]);
        if (t->push && t->state == T_PROCESSING && t->push->from != t->on)
            fail(&c, "%s is pushed from %s but runs on %s", t->key,
                 t->push->from ? t->push->from->name : "nowhere", t->on ? t->on->name : "none");
        for (size_t k = 0; k < nw; k++) {
            wc[k].nprocessing += t->on == ws[k];
            if (terni_ptrs_has(&t->who, ws[k])) {
                wc[k].nkeys++;
                wc[k].nbytes += t->nbytes;
            }
        }
    }
    for (size_t k = 0; k < nw; k++)
        if (wc[k].nprocessing != ws[k]->nprocessing || wc[k].nkeys != ws[k]->nkeys ||
            wc[k].nbytes != ws[k]->nbytes)
            fail(&c, "worker %s: %zu processing, %zu keys, %lld bytes; it counts %zu, %zu, %lld",
                 ws[k]->name, wc[k].nprocessing, wc[k].nkeys, (long long)wc[k].nbytes,
                 ws[k]->nprocessing, ws[k]->nkeys, (long long)ws[k]->nbytes);
    for (int s = 0; s < T_NSTATES; s++)
        if (nstate[s] != g->nstate[s])
            fail(&c, "%zu tasks are %s, the count says %zu", nstate[s], graph_state_names[s],
                 g->nstate[s]);
    TERNI_LIST_EACH (&g->deferred, it)
        nlisted++;
    if (nearly != g->nearly)
        fail(&c, "%zu tasks are processing early, the count says %zu", nearly, g->nearly);
    if (ndeferred != nlisted)
        fail(&c, "%zu tasks are marked deferred, the list holds %zu", ndeferred, nlisted);
    if (ntasks != terni_keytab_count(&g->tasks))
        fail(&c, "the table counts %zu tasks, %zu walked", terni_keytab_count(&g->tasks), ntasks);
    if (g->nwork || g->forget_head)
        fail(&c, "work left between events (%zu items%s)", g->nwork,
             g->forget_head ? ", forgets" : "");
    check_pending(&c, g);
    free(ws);
    free(wc);
    return c.ok;
}
