/* The graph engine's tests drive it without sockets: these effects record what it would send
 * (compute, free, cancel, push to workers; finished, erred, recomputing to clients), the way
 * HyperQueue's TestComm does. Shared by test_graph.c and test_graph_model.c. */
#ifndef TERN_TEST_GRAPH_HARNESS_H
#define TERN_TEST_GRAPH_HARNESS_H

#include "runtime/scheduler/graph.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

enum { FX_COMPUTE, FX_FREE, FX_CANCEL, FX_FINISHED, FX_ERRED, FX_RECOMPUTING, FX_PUSH };

typedef struct fx_rec {
    int kind;
    worker *w, *to; /* to: a push's target */
    client *c;
    char *key;
    bool early;
    int attempt;
    int code;
    char *root, *msg;
} fx_rec;

typedef struct fx_log {
    fx_rec *r;
    size_t n, cap;
    bool quiet; /* record counts only (deep tests): no strings kept */
    size_t counts[7];
} fx_log;

static void fx_add(fx_log *l, fx_rec r)
{
    l->counts[r.kind]++;
    if (l->quiet)
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->r = realloc(l->r, l->cap * sizeof(*l->r));
        cr_assert_not_null(l->r);
    }
    r.key = strdup(r.key);
    r.root = r.root ? strdup(r.root) : NULL;
    r.msg = r.msg ? strdup(r.msg) : NULL;
    l->r[l->n++] = r;
}

static void fx_clear(fx_log *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->r[i].key);
        free(l->r[i].root);
        free(l->r[i].msg);
    }
    l->n = 0;
    memset(l->counts, 0, sizeof(l->counts));
}

static void fx_free(fx_log *l)
{
    fx_clear(l);
    free(l->r);
    l->r = NULL;
    l->cap = 0;
}

static bool rec_compute(void *ctx, worker *w, const task *t, bool early)
{
    fx_add(ctx,
           (fx_rec){
               .kind = FX_COMPUTE, .w = w, .key = t->key, .early = early, .attempt = t->attempt });
    return true;
}
static void rec_free(void *ctx, worker *w, const char *key)
{
    fx_add(ctx, (fx_rec){ .kind = FX_FREE, .w = w, .key = (char *)key });
}
static void rec_cancel(void *ctx, worker *w, const char *key)
{
    fx_add(ctx, (fx_rec){ .kind = FX_CANCEL, .w = w, .key = (char *)key });
}
static void rec_finished(void *ctx, client *c, const task *t)
{
    fx_add(ctx, (fx_rec){ .kind = FX_FINISHED, .c = c, .key = t->key });
}
static void rec_erred(void *ctx, client *c, const char *key, const task_error *e)
{
    fx_add(ctx, (fx_rec){ .kind = FX_ERRED,
                          .c = c,
                          .key = (char *)key,
                          .code = e->code,
                          .root = (char *)e->key,
                          .msg = (char *)e->msg });
}
static void rec_recomputing(void *ctx, client *c, const task *t)
{
    fx_add(ctx, (fx_rec){ .kind = FX_RECOMPUTING, .c = c, .key = t->key });
}

static void rec_push(void *ctx, worker *from, const task *t, worker *to)
{
    fx_add(ctx, (fx_rec){ .kind = FX_PUSH, .w = from, .to = to, .key = t->key });
}

static const graph_effects recording = { rec_compute, rec_free,        rec_cancel, rec_finished,
                                         rec_erred,   rec_recomputing, rec_push };

/* The last record of kind about key (and c or w when not NULL), or NULL. */
static fx_rec *fx_find(fx_log *l, int kind, const char *key)
{
    for (size_t i = l->n; i-- > 0;)
        if (l->r[i].kind == kind && !strcmp(l->r[i].key, key))
            return &l->r[i];
    return NULL;
}

static size_t fx_count(fx_log *l, int kind, const char *key)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += l->r[i].kind == kind && !strcmp(l->r[i].key, key);
    return n;
}

/* Fails the test with what is wrong when an invariant does not hold. */
static void check_graph(graph *g)
{
    char msg[512];
    bool ok = graph_validate(g, msg, sizeof(msg));
    cr_assert(ok, "invariant: %s", msg);
}

static worker *mk_worker(graph *g, const char *name, int nthreads)
{
    worker *w = calloc(1, sizeof(*w));
    cr_assert_not_null(w);
    w->name = strdup(name);
    w->address = strdup(name);
    w->nthreads = nthreads;
    graph_worker_add(g, w);
    graph_place_unassigned(g);
    return w;
}

static void free_worker(worker *w)
{
    free(w->name);
    free(w->address);
    free(w);
}

/* Frees a test's graph, the workers still in it (the test made them with mk_worker) and its
 * log. */
static void free_graph_and_workers(graph *g, fx_log *l)
{
    worker *ws[64];
    size_t n = 0;
    worker *w, *tmp;
    HASH_ITER(hh, g->workers, w, tmp)
    if (n < 64)
        ws[n++] = w;
    graph_free(g);
    for (size_t i = 0; i < n; i++)
        free_worker(ws[i]);
    fx_free(l);
}

/* Submits key = fn(deps...) for c. */
static task *submit_deps(graph *g, client *c, const char *key, const char **deps, size_t ndeps)
{
    static const uint8_t args[] = { 0x80 }; /* [] */
    graph_spec s = { .key = key,
                     .fn = "p:f",
                     .plugin_id = "pid",
                     .args = args,
                     .args_len = sizeof(args),
                     .deps = deps,
                     .ndeps = ndeps };
    task *t = graph_submit(g, c, &s);
    graph_flush(g);
    return t;
}

static task *submit1(graph *g, client *c, const char *key, const char *dep)
{
    return submit_deps(g, c, key, dep ? &dep : NULL, dep ? 1 : 0);
}

#endif
