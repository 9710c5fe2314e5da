/* A model-based randomized test of the graph engine (issue 17, part 3).
 *
 * A simulated world drives the engine (runtime/scheduler/graph.h) with random events: clients
 * submit tasks (0-3 dependencies among the keys the graph has; sometimes a pure key again),
 * release, cancel and scatter data; workers join, leave and die; each simulated worker keeps
 * the compute events it was sent (key, run, early, what it took) and a store of the keys it
 * holds, and completes or fails them (with retries, lost fetches, crashes blamed on a task);
 * completions that lost a race with a cancel arrive late (stale). After every event the test
 * runs graph_flush, graph_validate, and its own checks of the engine against the world:
 *  - every copy the graph believes a worker holds (t->who) is in that worker's store;
 *  - every task the graph believes is processing on a worker is queued there with that run;
 *  - the clients the graph believes want a key are exactly those whose futures are open;
 *  - every effect to a client is for a future it holds; an error names a root cause (a task
 *    reported erred, blamed, cancelled, refused, or scattered data that was lost) that it
 *    derives from, with that root's code; a stale failure report changes nothing.
 * At the end everything is drained (completions only, every worker slot connected) and every
 * key a client still wants must be in memory (the client told so) or erred with its root
 * cause; then every client leaves and the graph must forget everything.
 *
 * Seeds: TERN_GRAPH_SEED=n replays (run_a uses n, run_b n+1, run_c n+2; each failure message
 * gives its own seed); default from the clock. TERN_GRAPH_STEPS overrides the step count,
 * TERN_GRAPH_TRACE=1 prints every event and effect to stderr, TERN_GRAPH_VERBOSE=1 a summary
 * of what each run did. Engine bugs the model found are the bug_... tests at the end, each the
 * smallest sequence that showed it, kept as regression tests now that they are fixed. */
/* the harness is shared: not all its helpers are used here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "graph_harness.h"
#pragma GCC diagnostic pop

#include "runtime/scheduler/placement.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

/* ---- configuration ------------------------------------------------------------------- */

#define NSLOTS   4 /* workers at once, named w0..w3 (a worker that left may join again) */
#define MAXCLI   3
#define STEPS    100000
#define WINDOW   300 /* dependencies are drawn among the newest keys */
#define TRACE_N  80  /* events and effects kept for a failure message */
#define SMALL_NB 8
#define LARGE_NB (1 << 20) /* >= PLACEMENT_TAKE_MIN_BYTES: may be taken */

/* Event weights (per mille) of one run. */
typedef struct weights {
    int submit, resubmit, done, fail, blame, join, leave, die, release, cancel, scatter, place,
        stale;
    int retry_pct;        /* submissions with retries */
    int allowed_failures; /* 0: random 1..3 */
} weights;

/* ---- a small PRNG (splitmix64) ------------------------------------------------------- */

static uint64_t rng;

static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t below(uint32_t n)
{
    return n ? (uint32_t)(rnd() % n) : 0;
}

static bool chance(unsigned pct)
{
    return below(100) < pct;
}

/* ---- the model ----------------------------------------------------------------------- */

static const char *const fns[] = { "p:small", "p:big", "p:mixed" }; /* results by symbol */

typedef struct mkey {
    char name[16]; /* "k<id>" */
    bool scatter;
    uint8_t fn, ndeps;
    int8_t slot; /* restricted to worker w<slot>, or -1 */
    uint32_t deps[4];
    int retries, priority;
    uint32_t gindex, gsize;
    int64_t nbytes; /* its result's size: one key, one value */
    uint32_t roots; /* bit code: it was a root cause with that code */
    uint32_t seen;  /* walk stamp */
} mkey;

enum { L_NONE, L_FINISHED, L_ERRED, L_RECOMPUTING };
static const char *const last_names[] = { "nothing", "finished", "erred", "recomputing" };

/* A client's future of a key. */
typedef struct cstate {
    bool wanted;    /* held: submitted or scattered, not released */
    bool cancelled; /* its future erred with TERN_ECANCELED (graph_cancel): no more effects */
    uint8_t last;   /* the last finished/erred/recomputing effect */
    uint8_t code;
    uint32_t root; /* erred: the root cause's key id */
    uint32_t pos;  /* index + 1 in the client's list of wanted keys */
} cstate;

/* A compute event a simulated worker received. */
typedef struct entry {
    uint32_t key;
    uint64_t seq; /* the task record's creation number: one incarnation of the key */
    int64_t attempt;
    bool early, ghost; /* ghost: finished before a cancel arrived; its report is in flight */
    uint8_t ndeps, ntaken, nafter;
    uint32_t deps[4], taken[4], after[4];
} entry;

typedef struct simw {
    worker *w; /* NULL: no worker in this slot */
    entry *q;
    size_t nq, capq;
    uint8_t *store; /* by key id */
    size_t capstore;
} simw;

typedef struct counters {
    size_t events, done, failed, stale_done, stale_failed, takes, early, ghosts, fetched, lost,
        joins, cancels, finished, erred, recomputing, blamed, max_tasks, max_queue;
} counters;

typedef struct model {
    graph g;
    uint64_t seed;
    size_t step;
    weights wt;
    mkey *keys;
    uint32_t nkeys, capkeys;
    int nclients;
    client cl[MAXCLI];
    cstate *cs[MAXCLI]; /* by key id */
    uint32_t *wl[MAXCLI];
    size_t nwl[MAXCLI], capwl[MAXCLI];
    simw ws[NSLOTS];
    uint32_t *pend; /* scattered keys whose data the client has not put on a worker yet */
    size_t npend, cappend;
    client *cancelling; /* during graph_cancel */
    worker *losing;     /* during graph_worker_lost */
    size_t nfx;         /* effects so far */
    uint32_t stamp;
    task **stack;
    size_t capstack;
    char trace[TRACE_N][200];
    size_t ntrace;
    bool verbose;
    counters n;
} model;

static model M;

/* ---- failures and the trace ---------------------------------------------------------- */

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
    char *line = M.trace[M.ntrace++ % TRACE_N];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(M.trace[0]), fmt, ap);
    va_end(ap);
    if (M.verbose)
        fprintf(stderr, "%zu: %s\n", M.step, line);
}

static void model_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void model_fail(const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    fprintf(stderr, "graph model: seed %" PRIu64 ", step %zu: %s\nthe last events and effects:\n",
            M.seed, M.step, what);
    for (size_t i = M.ntrace > TRACE_N ? M.ntrace - TRACE_N : 0; i < M.ntrace; i++)
        fprintf(stderr, "  %s\n", M.trace[i % TRACE_N]);
    cr_assert_fail("seed %" PRIu64 " (replay: TERN_GRAPH_SEED=%" PRIu64
                   " build/tests/test_graph_model), step %zu: %s",
                   M.seed, M.seed, M.step, what);
}

#define MCHECK(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            model_fail(__VA_ARGS__);                                                               \
    } while (0)

/* ---- keys, stores, futures ----------------------------------------------------------- */

static uint32_t kid(const char *key)
{
    char *end;
    unsigned long k = key && key[0] == 'k' ? strtoul(key + 1, &end, 10) : ULONG_MAX;
    MCHECK(k < M.nkeys, "an effect names key %s, which the model never made", key ? key : "?");
    return (uint32_t)k;
}

static const char *kname(uint32_t k)
{
    return M.keys[k].name;
}

static uint32_t new_key(bool scatter)
{
    if (M.nkeys == M.capkeys) {
        size_t cap = M.capkeys ? 2 * M.capkeys : 1024;
        M.keys = realloc(M.keys, cap * sizeof(*M.keys));
        cr_assert_not_null(M.keys);
        for (int c = 0; c < MAXCLI; c++) {
            M.cs[c] = realloc(M.cs[c], cap * sizeof(*M.cs[c]));
            cr_assert_not_null(M.cs[c]);
            memset(M.cs[c] + M.capkeys, 0, (cap - M.capkeys) * sizeof(*M.cs[c]));
        }
        M.capkeys = (uint32_t)cap;
    }
    uint32_t k = M.nkeys++;
    mkey *m = &M.keys[k];
    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "k%u", k);
    m->scatter = scatter;
    m->slot = -1;
    return k;
}

static bool held(const simw *s, uint32_t k)
{
    return k < s->capstore && s->store[k];
}

static void hold(simw *s, uint32_t k)
{
    if (k >= s->capstore) {
        size_t cap = M.capkeys > k ? M.capkeys : k + 1;
        s->store = realloc(s->store, cap);
        cr_assert_not_null(s->store);
        memset(s->store + s->capstore, 0, cap - s->capstore);
        s->capstore = cap;
    }
    s->store[k] = 1;
}

static void unhold(simw *s, uint32_t k)
{
    if (k < s->capstore)
        s->store[k] = 0;
}

static void want(int c, uint32_t k)
{
    cstate *x = &M.cs[c][k];
    x->cancelled = false;
    x->last = L_NONE;
    if (x->wanted)
        return;
    x->wanted = true;
    if (M.nwl[c] == M.capwl[c]) {
        M.capwl[c] = M.capwl[c] ? 2 * M.capwl[c] : 256;
        M.wl[c] = realloc(M.wl[c], M.capwl[c] * sizeof(*M.wl[c]));
        cr_assert_not_null(M.wl[c]);
    }
    M.wl[c][M.nwl[c]++] = k;
    x->pos = (uint32_t)M.nwl[c];
}

static void unwant(int c, uint32_t k)
{
    cstate *x = &M.cs[c][k];
    if (!x->wanted)
        return;
    uint32_t moved = M.wl[c][--M.nwl[c]];
    M.wl[c][x->pos - 1] = moved;
    M.cs[c][moved].pos = x->pos;
    x->pos = 0;
    x->wanted = x->cancelled = false;
    x->last = L_NONE;
}

static int alive(void)
{
    int n = 0;
    for (int i = 0; i < NSLOTS; i++)
        n += M.ws[i].w != NULL;
    return n;
}

static simw *random_alive(void)
{
    int n = alive();
    if (!n)
        return NULL;
    int pick = (int)below((uint32_t)n);
    for (int i = 0; i < NSLOTS; i++)
        if (M.ws[i].w && pick-- == 0)
            return &M.ws[i];
    return NULL;
}

static void push_entry(simw *s, entry e)
{
    if (s->nq == s->capq) {
        s->capq = s->capq ? 2 * s->capq : 16;
        s->q = realloc(s->q, s->capq * sizeof(*s->q));
        cr_assert_not_null(s->q);
    }
    s->q[s->nq++] = e;
}

static entry take_entry(simw *s, size_t i)
{
    entry e = s->q[i];
    s->q[i] = s->q[--s->nq];
    return e;
}

static bool has_id(const uint32_t *a, size_t n, uint32_t k)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] == k)
            return true;
    return false;
}

/* The task an entry runs, if the graph has it processing on s with that run; else NULL. */
static task *current_task(const simw *s, const entry *e)
{
    task *t = graph_task(&M.g, kname(e->key));
    return t && t->seq == e->seq && t->state == T_PROCESSING && t->on == s->w &&
                   t->attempt == e->attempt
               ? t
               : NULL;
}

/* Whether s can run e now: each dependency was taken by it, is held here, or (not one it
 * was placed "after", which must finish here) can be fetched from a holder. */
static bool completable(const simw *s, const entry *e)
{
    for (size_t i = 0; i < e->ndeps; i++) {
        uint32_t d = e->deps[i];
        if (has_id(e->taken, e->ntaken, d) || held(s, d))
            continue;
        if (e->early && has_id(e->after, e->nafter, d))
            return false;
        task *dt = graph_task(&M.g, kname(d));
        if (!dt || !graph_present(dt))
            return false;
    }
    return true;
}

/* Whether key k's task derives from root r (r itself, or a dependency, transitively). */
static bool derives_from(uint32_t k, uint32_t r)
{
    task *t = graph_task(&M.g, kname(k));
    if (!t)
        return false;
    if (k == r)
        return true;
    M.stamp++;
    size_t n = 0;
    M.keys[k].seen = M.stamp;
    for (;;) {
        for (size_t i = 0; i < t->ndeps; i++) {
            uint32_t d = kid(t->deps[i]->key);
            if (d == r)
                return true;
            if (M.keys[d].seen == M.stamp)
                continue;
            M.keys[d].seen = M.stamp;
            if (n == M.capstack) {
                M.capstack = M.capstack ? 2 * M.capstack : 256;
                M.stack = realloc(M.stack, M.capstack * sizeof(*M.stack));
                cr_assert_not_null(M.stack);
            }
            M.stack[n++] = t->deps[i];
        }
        if (!n)
            return false;
        t = M.stack[--n];
    }
}

/* ---- the effects: the world's side ----------------------------------------------------- */

static simw *sim_of(worker *w, const char *what, const char *key)
{
    MCHECK(w, "%s of %s to no worker", what, key);
    if (w->gone) {
        MCHECK(w == M.losing && strcmp(what, "compute"),
               "%s of %s to worker %s, which left (the caller frees it)", what, key, w->name);
        return NULL;
    }
    simw *s = w->peer;
    MCHECK(s && s->w == w, "%s of %s to worker %s, unknown to the world", what, key, w->name);
    return s;
}

static bool fx_compute(void *ctx, worker *w, const task *t, bool early)
{
    M.nfx++;
    trace("    compute %s on %s run %" PRId64 "%s", t->key, w ? w->name : "?", t->attempt,
          early ? " early" : "");
    simw *s = sim_of(w, "compute", t->key);
    MCHECK(!M.cancelling, "graph_cancel placed %s", t->key);
    entry e = { .key = kid(t->key), .seq = t->seq, .attempt = t->attempt, .early = early };
    MCHECK(t->ndeps <= 4, "%s has %u dependencies", t->key, t->ndeps);
    for (size_t i = 0; i < t->ndeps; i++) {
        const task *d = t->deps[i];
        uint32_t dk = kid(d->key);
        e.deps[e.ndeps++] = dk;
        if (early) {
            if (!graph_present(d))
                e.after[e.nafter++] = dk;
        } else if (placement_may_take(d, w)) {
            /* the compute event names d in "take": it moves from the store into the job */
            MCHECK(held(s, dk), "%s takes %s on %s, which does not hold it", t->key, d->key,
                   w->name);
            unhold(s, dk);
            e.taken[e.ntaken++] = dk;
            M.n.takes++;
            trace("      takes %s", d->key);
        }
    }
    M.n.early += early;
    push_entry(s, e);
    return true;
}

static void fx_free_key(void *ctx, worker *w, const char *key)
{
    M.nfx++;
    trace("    free %s on %s", key, w ? w->name : "?");
    uint32_t k = kid(key);
    if (M.keys[k].scatter) /* its data is gone: a later need of it errs (TERN_ELOST) */
        M.keys[k].roots |= 1u << TERN_ELOST;
    simw *s = sim_of(w, "free", key);
    if (!s)
        return;
    if (held(s, k)) {
        unhold(s, k);
        return;
    }
    for (size_t i = 0; i < s->nq; i++) /* as the worker does: not held, so drop it if queued */
        if (s->q[i].key == k && !s->q[i].ghost) {
            take_entry(s, i);
            return;
        }
}

static void fx_cancel(void *ctx, worker *w, const char *key)
{
    M.nfx++;
    trace("    cancel %s on %s", key, w ? w->name : "?");
    simw *s = sim_of(w, "cancel", key);
    if (!s)
        return;
    uint32_t k = kid(key);
    for (size_t i = 0; i < s->nq;) {
        entry *e = &s->q[i];
        if (e->key != k || e->ghost) {
            i++;
        } else if (chance(25) && completable(s, e)) {
            /* it finished before the cancel arrived: its report is on its way */
            e->ghost = true;
            M.n.ghosts++;
            i++;
        } else {
            take_entry(s, i);
        }
    }
}

static cstate *future_of(client *c, const char *key, const char *what, int *ci)
{
    ptrdiff_t i = c - M.cl;
    MCHECK(i >= 0 && i < M.nclients, "%s of %s to an unknown client", what, key);
    uint32_t k = kid(key);
    cstate *x = &M.cs[i][k];
    MCHECK(x->wanted, "%s of %s to client %d, which holds no future of it", what, key, (int)i);
    MCHECK(!x->cancelled, "%s of %s to client %d, which cancelled it", what, key, (int)i);
    if (ci)
        *ci = (int)i;
    return x;
}

static void fx_finished(void *ctx, client *c, const task *t)
{
    M.nfx++;
    M.n.finished++;
    trace("    finished %s to c%d", t->key, (int)(c - M.cl));
    MCHECK(!M.cancelling, "graph_cancel finished %s", t->key);
    cstate *x = future_of(c, t->key, "finished", NULL);
    MCHECK(t->state == T_MEMORY && t->who.n, "finished %s, which is %s with %u holders", t->key,
           graph_state_names[t->state], t->who.n);
    x->last = L_FINISHED;
}

static void fx_erred(void *ctx, client *c, const char *key, const task_error *e)
{
    M.nfx++;
    M.n.erred++;
    trace("    erred %s to c%d: code %d root %s (%.80s)", key, (int)(c - M.cl), e->code, e->key,
          e->msg);
    int ci;
    cstate *x = future_of(c, key, "erred", &ci);
    uint32_t k = kid(key), r = kid(e->key);
    MCHECK(e->code > 0 && e->code < 32 && (M.keys[r].roots & (1u << e->code)),
           "%s erred naming %s (code %d), which was never a root cause with that code", key, e->key,
           e->code);
    MCHECK(derives_from(k, r), "%s erred naming %s, which it does not derive from", key, e->key);
    if (M.cancelling) {
        MCHECK(c == M.cancelling && e->code == TERN_ECANCELED,
               "graph_cancel by c%d erred %s to c%d with code %d", (int)(M.cancelling - M.cl), key,
               ci, e->code);
        x->cancelled = true;
    } else {
        task *t = graph_task(&M.g, key);
        MCHECK(t && t->state == T_ERRED && graph_error_of(t) == e,
               "erred %s to c%d, which is not erred with that error", key, ci);
    }
    x->last = L_ERRED;
    x->code = (uint8_t)e->code;
    x->root = r;
}

static void fx_recomputing(void *ctx, client *c, const task *t)
{
    M.nfx++;
    M.n.recomputing++;
    trace("    recomputing %s to c%d", t->key, (int)(c - M.cl));
    cstate *x = future_of(c, t->key, "recomputing", NULL);
    MCHECK(x->last == L_FINISHED, "recomputing %s to a client last told %s", t->key,
           last_names[x->last]);
    x->last = L_RECOMPUTING;
}

static const graph_effects world = { fx_compute,  fx_free_key, fx_cancel,
                                     fx_finished, fx_erred,    fx_recomputing };

/* ---- the checks after each event ------------------------------------------------------- */

static void check_model(void)
{
    char msg[512];
    MCHECK(graph_validate(&M.g, msg, sizeof(msg)), "invariant: %s", msg);
    TERNI_KEYTAB_EACH (&M.g.tasks, it) {
        task *t = it->value;
        uint32_t k = kid(t->key);
        for (size_t i = 0; i < t->who.n; i++) {
            worker *w = WHO_AT(t, i);
            simw *s = w->peer;
            MCHECK(s && s->w == w, "%s is held by %s, unknown to the world", t->key, w->name);
            MCHECK(held(s, k), "the graph says %s holds %s; its store does not", w->name, t->key);
        }
        for (size_t i = 0; i < t->wanters.n; i++) {
            ptrdiff_t c = WANTER(t, i) - M.cl;
            MCHECK(c >= 0 && c < M.nclients, "%s is wanted by an unknown client", t->key);
            MCHECK(M.cs[c][k].wanted && !M.cs[c][k].cancelled,
                   "%s is wanted by c%d, which released or cancelled its future", t->key, (int)c);
        }
    }
    for (int c = 0; c < M.nclients; c++)
        for (size_t i = 0; i < M.nwl[c]; i++) {
            uint32_t k = M.wl[c][i];
            if (M.cs[c][k].cancelled)
                continue;
            task *t = graph_task(&M.g, kname(k));
            MCHECK(t && terni_ptrs_has(&t->wanters, &M.cl[c]),
                   "c%d holds a future of %s, which the graph %s", c, kname(k),
                   t ? "does not list it as wanting" : "forgot");
        }
    for (int i = 0; i < NSLOTS; i++) {
        simw *s = &M.ws[i];
        if (!s->w)
            continue;
        size_t cur = 0;
        for (size_t j = 0; j < s->nq; j++) {
            task *t = s->q[j].ghost ? NULL : current_task(s, &s->q[j]);
            if (t) {
                cur++;
                MCHECK(t->early == s->q[j].early, "%s on %s: early %d, its compute said %d", t->key,
                       s->w->name, t->early, s->q[j].early);
            }
        }
        if (cur == s->w->nprocessing)
            continue;
        TERNI_KEYTAB_EACH (&M.g.tasks, it) {
            task *t = it->value;
            bool queued = false;
            for (size_t j = 0; t->on == s->w && j < s->nq; j++)
                queued |= !s->q[j].ghost && current_task(s, &s->q[j]) == t;
            MCHECK(t->on != s->w || queued,
                   "the graph says %s runs on %s (run %" PRId64
                   "); that worker has no such compute",
                   t->key, s->w->name, t->attempt);
        }
        model_fail("%s: %zu computes queued, the graph counts %zu processing", s->w->name, cur,
                   s->w->nprocessing);
    }
}

static void after_event(void)
{
    M.n.events++;
    graph_flush(&M.g);
    check_model();
}

/* ---- events ------------------------------------------------------------------------------ */

static bool submit_key(int c, uint32_t k)
{
    mkey *m = &M.keys[k];
    const char *deps[4], *restrict_to[1];
    char buf[160] = "";
    size_t len = 0;
    for (size_t i = 0; i < m->ndeps; i++) {
        deps[i] = kname(m->deps[i]);
        task *d = graph_task(&M.g, deps[i]);
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, " %s:%s", deps[i],
                                d ? graph_state_names[d->state] : "-");
    }
    char slot[8];
    snprintf(slot, sizeof(slot), "w%d", m->slot);
    restrict_to[0] = slot;
    static const uint8_t args[] = { 0x80 };
    graph_spec s = { .key = m->name,
                     .fn = fns[m->fn],
                     .plugin_id = "pid",
                     .args = args,
                     .args_len = sizeof(args),
                     .deps = deps,
                     .ndeps = m->ndeps,
                     .priority = m->priority,
                     .retries = m->retries,
                     .gindex = m->gindex,
                     .gsize = m->gsize,
                     .restrict_to = m->slot >= 0 ? restrict_to : NULL,
                     .nrestrict = m->slot >= 0 };
    /* A key the graph does not have, one of whose dependencies it forgot: refused. */
    if (!graph_task(&M.g, m->name))
        for (size_t i = 0; i < m->ndeps; i++)
            if (!graph_task(&M.g, deps[i]))
                m->roots |= 1u << TERN_ENOTFOUND;
    want(c, k);
    trace("c%d submits %s = %s(%s) retries %d%s%s", c, m->name, fns[m->fn], buf, m->retries,
          m->slot >= 0 ? " on " : "", m->slot >= 0 ? slot : "");
    MCHECK(graph_submit(&M.g, &M.cl[c], &s), "graph_submit(%s) failed", m->name);
    after_event();
    return true;
}

static void release(int c, uint32_t k)
{
    trace("c%d releases %s", c, kname(k));
    if (M.keys[k].scatter) /* its data may go (or never come): a later need of it errs */
        M.keys[k].roots |= 1u << TERN_ELOST;
    unwant(c, k);
    graph_release(&M.g, &M.cl[c], kname(k));
    after_event();
}

/* A random key among the newest whose task the graph has, or UINT32_MAX. */
static uint32_t random_graph_key(void)
{
    for (int tries = 0; tries < 8 && M.nkeys; tries++) {
        uint32_t from = M.nkeys > WINDOW ? M.nkeys - WINDOW : 0;
        uint32_t k = from + below(M.nkeys - from);
        if (graph_task(&M.g, kname(k)))
            return k;
    }
    return UINT32_MAX;
}

static bool ev_submit(void)
{
    int c = (int)below((uint32_t)M.nclients);
    uint32_t k = new_key(false);
    mkey *m = &M.keys[k];
    m->fn = (uint8_t)below(3);
    m->nbytes = m->fn == 0 ? SMALL_NB : m->fn == 1 ? LARGE_NB : chance(50) ? SMALL_NB : LARGE_NB;
    uint32_t want_deps = below(4);
    for (uint32_t i = 0; i < want_deps; i++) {
        uint32_t d = i && chance(5) ? m->deps[i - 1]               /* a duplicate */
                     : chance(40)   ? k - 1 - below(k < 4 ? k : 4) /* likely still running */
                                    : random_graph_key();
        if (d != UINT32_MAX && (d >= k || !graph_task(&M.g, kname(d))))
            d = random_graph_key();
        if (d != UINT32_MAX)
            m->deps[m->ndeps++] = d;
    }
    m->retries = chance((unsigned)M.wt.retry_pct) ? 1 + (int)below(2) : 0;
    m->priority = (int)below(3);
    if (!m->ndeps && chance(20)) {
        m->gsize = 2 + below(4);
        m->gindex = below(m->gsize);
    }
    if (chance(4))
        m->slot = (int8_t)below(NSLOTS);
    if (!submit_key(c, k)) {
        M.nkeys--; /* not made after all */
        return false;
    }
    /* a client that passed a future as an argument often drops it (take needs that) */
    if (m->ndeps && chance(40)) {
        uint32_t d = m->deps[below(m->ndeps)];
        if (M.cs[c][d].wanted)
            release(c, d);
    }
    return true;
}

/* A pure key again (same call, same key): its old task, or a new one from its lineage. */
static bool ev_resubmit(void)
{
    for (int tries = 0; tries < 8 && M.nkeys; tries++) {
        uint32_t k =
            chance(70) && M.nkeys > WINDOW ? M.nkeys - WINDOW + below(WINDOW) : below(M.nkeys);
        if (M.keys[k].scatter)
            continue;
        return submit_key((int)below((uint32_t)M.nclients), k);
    }
    return false;
}

static void place_scattered(uint32_t k)
{
    simw *s = random_alive();
    MCHECK(s, "no worker to put %s on", kname(k));
    trace("%s holds scattered %s", s->w->name, kname(k));
    hold(s, k);
    graph_added(&M.g, s->w, kname(k), M.keys[k].nbytes);
    after_event();
}

static bool ev_scatter(void)
{
    int c = (int)below((uint32_t)M.nclients);
    uint32_t k = UINT32_MAX;
    if (chance(20)) /* scattered data of another client, scattered again */
        for (int tries = 0; tries < 8 && k == UINT32_MAX; tries++) {
            uint32_t j = random_graph_key();
            if (j != UINT32_MAX && M.keys[j].scatter)
                k = j;
        }
    bool fresh = k == UINT32_MAX;
    if (fresh) {
        k = new_key(true);
        M.keys[k].nbytes = chance(50) ? SMALL_NB : LARGE_NB;
    }
    want(c, k);
    trace("c%d scatters %s", c, kname(k));
    task *before = fresh ? NULL : graph_task(&M.g, kname(k));
    int was = before ? before->state : T_WAITING;
    MCHECK(graph_scatter(&M.g, &M.cl[c], kname(k)), "graph_scatter(%s) failed", kname(k));
    after_event();
    /* Scattered again: the data is there already, or on its way; but a released or lost key
     * made to wait for it again must get it (the client puts it, as tern_scatter does). */
    bool reset = !fresh && was != T_WAITING && graph_task(&M.g, kname(k))->state == T_WAITING;
    if (!fresh && !reset && chance(50))
        return true;
    if (alive() && chance(70)) {
        place_scattered(k);
    } else {
        if (M.npend == M.cappend) {
            M.cappend = M.cappend ? 2 * M.cappend : 64;
            M.pend = realloc(M.pend, M.cappend * sizeof(*M.pend));
            cr_assert_not_null(M.pend);
        }
        M.pend[M.npend++] = k;
    }
    return true;
}

static bool ev_place(void)
{
    if (!M.npend || !alive())
        return false;
    size_t i = below((uint32_t)M.npend);
    uint32_t k = M.pend[i];
    M.pend[i] = M.pend[--M.npend];
    place_scattered(k);
    return true;
}

/* A random entry of a random worker that is (not) a ghost, or false. */
static bool random_entry(bool ghost, simw **sp, size_t *ip)
{
    int start = (int)below(NSLOTS);
    for (int n = 0; n < NSLOTS; n++) {
        simw *s = &M.ws[(start + n) % NSLOTS];
        if (!s->w || !s->nq)
            continue;
        size_t off = below((uint32_t)s->nq);
        for (size_t j = 0; j < s->nq; j++) {
            size_t i = (off + j) % s->nq;
            if (s->q[i].ghost == ghost) {
                *sp = s;
                *ip = i;
                return true;
            }
        }
    }
    return false;
}

/* s runs entry i to its end: it fetches what it lacks (keeping some copies, reported with
 * graph_added) and reports its result. */
static void complete(simw *s, size_t i)
{
    entry e = s->q[i];
    worker *w = s->w;
    for (size_t d = 0; !e.early && d < e.ndeps; d++) {
        uint32_t dk = e.deps[d];
        if (has_id(e.taken, e.ntaken, dk) || held(s, dk) || !chance(30))
            continue;
        M.n.fetched++;
        trace("%s keeps a fetched copy of %s", w->name, kname(dk));
        hold(s, dk);
        graph_added(&M.g, w, kname(dk), M.keys[dk].nbytes);
        after_event();
    }
    /* the run ends: still queued (a report in between may have cancelled it)? */
    for (i = 0; i < s->nq; i++)
        if (s->q[i].key == e.key && s->q[i].seq == e.seq && s->q[i].attempt == e.attempt &&
            s->q[i].ghost == e.ghost)
            break;
    if (i == s->nq)
        return; /* its result is dropped, unreported */
    take_entry(s, i);
    static const uint8_t inl[12] = { 0x4b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
    int64_t nbytes = M.keys[e.key].nbytes;
    size_t inl_len = nbytes <= SMALL_NB && chance(50) ? 1 + below(sizeof(inl)) : 0;
    bool stale = e.ghost || !current_task(s, &e);
    M.n.done++;
    M.n.stale_done += stale;
    trace("%s done %s run %" PRId64 "%s, %" PRId64 " bytes%s", w->name, kname(e.key), e.attempt,
          stale ? " (stale)" : "", nbytes, inl_len ? " inline" : "");
    hold(s, e.key);
    graph_done(&M.g, w, kname(e.key), nbytes, inl_len ? inl : NULL, inl_len, 1 + below(2000));
    after_event();
}

static bool ev_done(void)
{
    simw *s;
    size_t i;
    if (!random_entry(false, &s, &i))
        return false;
    for (size_t j = 0; j < s->nq; j++) {
        size_t k = (i + j) % s->nq;
        if (!s->q[k].ghost && completable(s, &s->q[k])) {
            complete(s, k);
            return true;
        }
    }
    return false;
}

/* s reports entry i failed (code; run as received, or unknown); a stale report must change
 * nothing. */
static void report_failure(simw *s, size_t i, int code, bool unknown_run)
{
    entry e = take_entry(s, i);
    task *t = e.ghost ? NULL : current_task(s, &e);
    int64_t run = unknown_run && t ? -1 : e.attempt;
    if (t)
        M.keys[e.key].roots |= 1u << code;
    M.n.failed += t != NULL;
    M.n.stale_failed += t == NULL;
    trace("%s erred %s run %" PRId64 " code %d%s", s->w->name, kname(e.key), run, code,
          t ? "" : " (stale)");
    size_t nfx = M.nfx, nstate[T_NSTATES];
    memcpy(nstate, M.g.nstate, sizeof(nstate));
    char msg[64];
    snprintf(msg, sizeof(msg), "injected failure of %s", kname(e.key));
    graph_erred(&M.g, s->w, kname(e.key), code, msg, run);
    MCHECK(t || (M.nfx == nfx && !memcmp(nstate, M.g.nstate, sizeof(nstate))),
           "a stale failure report of %s (run %" PRId64 ") on %s was not ignored", kname(e.key),
           e.attempt, s->w->name);
    after_event();
}

static bool ev_fail(void)
{
    simw *s;
    size_t i;
    if (!random_entry(false, &s, &i))
        return false;
    /* a dependency it could not fetch, or its own failure */
    int code = !completable(s, &s->q[i]) || chance(20) ? TERN_ELOST : TERN_ETASK;
    report_failure(s, i, code, chance(5));
    return true;
}

/* A report that lost a race with a cancel arrives. */
static bool ev_stale(void)
{
    simw *s;
    size_t i;
    if (!random_entry(true, &s, &i))
        return false;
    if (chance(70))
        complete(s, i);
    else
        report_failure(s, i, TERN_ETASK, false);
    return true;
}

static void blame(simw *s, size_t i)
{
    uint32_t k = s->q[i].key;
    M.keys[k].roots |= 1u << TERN_EKILLED;
    M.n.blamed++;
    trace("%s's executor died running %s", s->w->name, kname(k));
    graph_blame(&M.g, s->w, kname(k), "was killed by signal 9");
    after_event();
}

static bool ev_blame(void)
{
    simw *s;
    size_t i;
    if (!random_entry(false, &s, &i))
        return false;
    blame(s, i);
    return true;
}

static void join(int slot)
{
    simw *s = &M.ws[slot];
    worker *w = calloc(1, sizeof(*w));
    cr_assert_not_null(w);
    char name[8];
    snprintf(name, sizeof(name), "w%d", slot);
    w->name = strdup(name);
    w->address = strdup(name);
    w->nthreads = 1 + (int)below(2);
    w->peer = s;
    s->w = w;
    s->nq = 0;
    M.n.joins++;
    trace("%s joins", name);
    graph_worker_add(&M.g, w);
    graph_place_unassigned(&M.g);
    after_event();
}

static bool ev_join(void)
{
    int n = NSLOTS - alive();
    if (!n)
        return false;
    int pick = (int)below((uint32_t)n);
    for (int i = 0; i < NSLOTS; i++)
        if (!M.ws[i].w && pick-- == 0)
            join(i);
    return true;
}

static bool ev_lose(bool death)
{
    if (alive() <= 1 && !chance(10)) /* rarely no worker at all */
        return false;
    simw *s = random_alive();
    if (!s)
        return false;
    worker *w = s->w;
    /* a crash is blamed on what its executors were running */
    for (int b = 0; death && b < w->nthreads && s->nq; b++) {
        size_t i = below((uint32_t)s->nq);
        if (!s->q[i].ghost)
            blame(s, i);
    }
    TERNI_KEYTAB_EACH (&M.g.tasks, it) { /* scattered data it held may be lost */
        task *t = it->value;
        if (!t->plugin_id && terni_ptrs_has(&t->who, w))
            M.keys[kid(t->key)].roots |= 1u << TERN_ELOST;
    }
    M.n.lost++;
    trace("%s %s", w->name, death ? "dies" : "leaves");
    M.losing = w;
    graph_worker_lost(&M.g, w, death ? "its process died (signal 9)" : "it left (shutdown)");
    M.losing = NULL;
    s->w = NULL;
    s->nq = 0;
    if (s->store)
        memset(s->store, 0, s->capstore);
    graph_flush(&M.g);
    free_worker(w);
    M.n.events++;
    check_model();
    return true;
}

static bool ev_release(void)
{
    int c = (int)below((uint32_t)M.nclients);
    if (!M.nwl[c])
        return false;
    release(c, M.wl[c][below((uint32_t)M.nwl[c])]);
    return true;
}

static bool ev_cancel(void)
{
    int c = (int)below((uint32_t)M.nclients);
    if (!M.nwl[c])
        return false;
    uint32_t k = M.wl[c][below((uint32_t)M.nwl[c])];
    if (M.cs[c][k].cancelled)
        return false;
    task *t = graph_task(&M.g, kname(k));
    bool unfinished = t && !graph_finished(t);
    M.keys[k].roots |= 1u << TERN_ECANCELED;
    if (M.keys[k].scatter)
        M.keys[k].roots |= 1u << TERN_ELOST;
    M.n.cancels++;
    trace("c%d cancels %s", c, kname(k));
    M.cancelling = &M.cl[c];
    graph_cancel(&M.g, &M.cl[c], kname(k));
    M.cancelling = NULL;
    MCHECK(!unfinished || M.cs[c][k].cancelled, "c%d cancelled %s; its future did not err", c,
           kname(k));
    after_event();
    return true;
}

static void step(void)
{
    const weights *wt = &M.wt;
    size_t held_futures = 0;
    for (int c = 0; c < M.nclients; c++)
        held_futures += M.nwl[c];
    for (int i = 0; i < NSLOTS; i++)
        if (M.ws[i].nq > M.n.max_queue)
            M.n.max_queue = M.ws[i].nq;
    size_t ntasks = terni_keytab_count(&M.g.tasks);
    if (ntasks > M.n.max_tasks)
        M.n.max_tasks = ntasks;
    if ((held_futures > 60 || ntasks > 300) && chance(30) &&
        ev_release()) /* keep the graph a few hundred */
        return;
    /* A client's job ends now and then: it drops every future, so that the lineage its
     * futures keep (every ancestor, however old) does not grow for ever. */
    if (below(400) == 0 || (ntasks > 500 && chance(5))) {
        int c = (int)below((uint32_t)M.nclients);
        while (M.nwl[c])
            release(c, M.wl[c][below((uint32_t)M.nwl[c])]);
        return;
    }
    for (;;) {
        int r = (int)below(1000);
        bool ok;
        if ((r -= wt->submit) < 0)
            ok = ev_submit();
        else if ((r -= wt->resubmit) < 0)
            ok = ev_resubmit();
        else if ((r -= wt->done) < 0)
            ok = ev_done();
        else if ((r -= wt->fail) < 0)
            ok = ev_fail();
        else if ((r -= wt->blame) < 0)
            ok = ev_blame();
        else if ((r -= wt->join) < 0)
            ok = ev_join();
        else if ((r -= wt->leave) < 0)
            ok = ev_lose(false);
        else if ((r -= wt->die) < 0)
            ok = ev_lose(true);
        else if ((r -= wt->release) < 0)
            ok = ev_release();
        else if ((r -= wt->cancel) < 0)
            ok = ev_cancel();
        else if ((r -= wt->scatter) < 0)
            ok = ev_scatter();
        else if ((r -= wt->place) < 0)
            ok = ev_place();
        else if ((r -= wt->stale) < 0)
            ok = ev_stale();
        else
            ok = ev_done();
        if (ok)
            return;
    }
}

/* ---- the end: drain, then check every future ---------------------------------------------- */

static void drain(void)
{
    trace("drain");
    for (int i = 0; i < NSLOTS; i++)
        if (!M.ws[i].w)
            join(i);
    for (size_t it = 0;; it++, M.step++) {
        MCHECK(it < 10000000, "the drain does not end");
        if (M.npend) {
            uint32_t k = M.pend[--M.npend];
            place_scattered(k);
            continue;
        }
        simw *s;
        size_t i;
        if (random_entry(true, &s, &i)) { /* late reports, all completions */
            complete(s, i);
            continue;
        }
        bool any = false, progress = false;
        for (int n = 0; n < NSLOTS && !progress; n++) {
            s = &M.ws[n];
            for (i = 0; i < s->nq; i++) {
                any = true;
                if (completable(s, &s->q[i])) {
                    complete(s, i);
                    progress = true;
                    break;
                }
            }
        }
        if (progress)
            continue;
        if (!any)
            break;
        /* Nothing can run. A compute the graph has moved on from fails to fetch (stale); one
         * the graph waits for is stuck for ever. */
        for (int n = 0; n < NSLOTS && !progress; n++) {
            s = &M.ws[n];
            for (i = 0; i < s->nq && !progress; i++) {
                task *t = current_task(s, &s->q[i]);
                if (!t) {
                    report_failure(s, i, TERN_ELOST, false);
                    progress = true;
                    continue;
                }
                char lacks[128] = "";
                size_t len = 0;
                for (size_t d = 0; d < s->q[i].ndeps; d++) {
                    task *dt = graph_task(&M.g, kname(s->q[i].deps[d]));
                    len += (size_t)snprintf(lacks + len, sizeof(lacks) - len, " %s (%s)",
                                            kname(s->q[i].deps[d]),
                                            dt ? graph_state_names[dt->state] : "forgotten");
                }
                model_fail("stuck: %s runs on %s (run %" PRId64 "%s) but can never start; its "
                           "dependencies:%s",
                           t->key, s->w->name, t->attempt, t->early ? ", early" : "", lacks);
            }
        }
    }
}

static void final_check(void)
{
    TERNI_KEYTAB_EACH (&M.g.tasks, it) {
        task *t = it->value;
        MCHECK(graph_finished(t), "after the drain %s is still %s", t->key,
               graph_state_names[t->state]);
    }
    for (int c = 0; c < M.nclients; c++)
        for (size_t i = 0; i < M.nwl[c]; i++) {
            uint32_t k = M.wl[c][i];
            cstate *x = &M.cs[c][k];
            if (x->cancelled) {
                MCHECK(x->last == L_ERRED && x->code == TERN_ECANCELED,
                       "c%d cancelled %s but was last told %s", c, kname(k), last_names[x->last]);
                continue;
            }
            task *t = graph_task(&M.g, kname(k));
            MCHECK(t, "c%d wants %s, which the graph forgot", c, kname(k));
            if (t->state == T_MEMORY) {
                MCHECK(x->last == L_FINISHED, "c%d wants %s, in memory, but was last told %s", c,
                       kname(k), last_names[x->last]);
            } else if (t->state == T_ERRED) {
                const task_error *e = graph_error_of(t);
                uint32_t r = kid(e->key);
                MCHECK(x->last == L_ERRED && x->root == r && x->code == e->code,
                       "c%d wants %s, erred (code %d, root %s), but was last told %s", c, kname(k),
                       e->code, e->key, last_names[x->last]);
                MCHECK((M.keys[r].roots & (1u << e->code)) && derives_from(k, r),
                       "%s erred naming %s (code %d), not a root cause of it", kname(k), e->key,
                       e->code);
            } else {
                model_fail("c%d wants %s, which is %s after the drain", c, kname(k),
                           graph_state_names[t->state]);
            }
        }
    /* Every client leaves: the graph forgets everything, and frees it on the workers. */
    for (int c = 0; c < M.nclients; c++) {
        trace("c%d leaves", c);
        while (M.nwl[c])
            unwant(c, M.wl[c][0]);
        graph_client_gone(&M.g, &M.cl[c]);
        after_event();
    }
    MCHECK(terni_keytab_count(&M.g.tasks) == 0, "%zu tasks kept after every client left",
           terni_keytab_count(&M.g.tasks));
}

static void model_free(void)
{
    graph_free(&M.g);
    for (int i = 0; i < NSLOTS; i++) {
        if (M.ws[i].w)
            free_worker(M.ws[i].w);
        free(M.ws[i].q);
        free(M.ws[i].store);
    }
    for (int c = 0; c < MAXCLI; c++) {
        free(M.cs[c]);
        free(M.wl[c]);
    }
    free(M.keys);
    free(M.pend);
    free(M.stack);
    memset(&M, 0, sizeof(M));
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 0) : dflt;
}

static void run(int index, const weights *wt)
{
    uint64_t base = env_u64("TERN_GRAPH_SEED", (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16));
    memset(&M, 0, sizeof(M));
    M.seed = base + (uint64_t)index;
    rng = M.seed;
    M.wt = *wt;
    M.verbose = env_u64("TERN_GRAPH_TRACE", 0) != 0;
    cr_assert_eq(graph_init(&M.g, &world, NULL), 0);
    M.g.allowed_failures = wt->allowed_failures ? wt->allowed_failures : 1 + (int)below(3);
    M.nclients = 2 + (int)below(2);
    for (int i = 0, n = 1 + (int)below(NSLOTS); i < n; i++)
        join(i);
    size_t steps = env_u64("TERN_GRAPH_STEPS", STEPS);
    for (M.step = 0; M.step < steps; M.step++)
        step();
    drain();
    final_check();
    if (env_u64("TERN_GRAPH_VERBOSE", 0) || M.verbose)
        fprintf(stderr,
                "graph model seed %" PRIu64 ": %zu events, %u keys; %zu done (%zu stale), %zu "
                "failed (%zu stale), %zu takes, %zu early, %zu ghosts, %zu fetched copies, "
                "%zu blamed, %zu joins, %zu losses, %zu cancels; effects: %zu finished, %zu "
                "erred, %zu recomputing; at most %zu tasks, %zu queued\n",
                M.seed, M.n.events, M.nkeys, M.n.done, M.n.stale_done, M.n.failed, M.n.stale_failed,
                M.n.takes, M.n.early, M.n.ghosts, M.n.fetched, M.n.blamed, M.n.joins, M.n.lost,
                M.n.cancels, M.n.finished, M.n.erred, M.n.recomputing, M.n.max_tasks,
                M.n.max_queue);
    /* the paths the model is for were taken */
    if (steps >= STEPS) {
        MCHECK(M.n.takes && M.n.early && M.n.ghosts && M.n.stale_done && M.n.recomputing &&
                   M.n.fetched && M.n.lost,
               "a path was never taken: %zu takes, %zu early, %zu ghosts, %zu stale dones, "
               "%zu recomputing, %zu fetched, %zu losses",
               M.n.takes, M.n.early, M.n.ghosts, M.n.stale_done, M.n.recomputing, M.n.fetched,
               M.n.lost);
    }
    model_free();
}

TestSuite(graph_model);

/* The mix of a busy cluster: mostly submissions and completions. */
Test(graph_model, run_a, .timeout = 600)
{
    weights wt = { .submit = 200,
                   .resubmit = 40,
                   .done = 330,
                   .fail = 30,
                   .blame = 8,
                   .join = 12,
                   .leave = 6,
                   .die = 6,
                   .release = 170,
                   .cancel = 25,
                   .scatter = 40,
                   .place = 30,
                   .stale = 40,
                   .retry_pct = 15 };
    run(0, &wt);
}

/* Workers come and go all the time. */
Test(graph_model, run_b, .timeout = 600)
{
    weights wt = { .submit = 200,
                   .resubmit = 40,
                   .done = 300,
                   .fail = 20,
                   .blame = 5,
                   .join = 40,
                   .leave = 20,
                   .die = 20,
                   .release = 170,
                   .cancel = 20,
                   .scatter = 40,
                   .place = 30,
                   .stale = 40,
                   .retry_pct = 15 };
    run(1, &wt);
}

/* Failures, retries, crashes and cancels. */
Test(graph_model, run_c, .timeout = 600)
{
    weights wt = { .submit = 200,
                   .resubmit = 60,
                   .done = 280,
                   .fail = 60,
                   .blame = 25,
                   .join = 12,
                   .leave = 6,
                   .die = 10,
                   .release = 160,
                   .cancel = 60,
                   .scatter = 30,
                   .place = 30,
                   .stale = 40,
                   .retry_pct = 40,
                   .allowed_failures = 1 };
    run(2, &wt);
}

/* ---- engine bugs the model found: each the smallest sequence that shows it --------------- */

static graph bg;
static fx_log bl;
static client bA;

static void bug_setup(void)
{
    cr_assert_eq(graph_init(&bg, &recording, &bl), 0);
    memset(&bA, 0, sizeof(bA));
}

static void bug_teardown(void)
{
    free_graph_and_workers(&bg, &bl);
}

/* Fixed in 1b3f306; kept as a regression test. Found by seed 1360461200 (run_c) at step 873. b took
 * x (x RELEASED, its data moved into b's run); a new task y = f(x) makes x again from its lineage
 * while b still runs: b is then processing with a dependency that is processing, which
 * graph_validate rejects ("b is processing but its dependency x is processing"). The same happens
 * when x is reached by any lineage recompute (a resubmitted released key depending on x; a lost key
 * depending on x when a worker leaves). */
Test(graph_model, bug_recomputing_a_taken_dependency, .init = bug_setup, .fini = bug_teardown)
{
    worker *w = mk_worker(&bg, "w1", 1);
    submit1(&bg, &bA, "x", NULL);
    submit1(&bg, &bA, "b", "x");
    graph_release(&bg, &bA, "x"); /* only b needs x: b may take it */
    graph_flush(&bg);
    graph_done(&bg, w, "x", 1 << 20, NULL, 0, 10);
    graph_flush(&bg);
    check_graph(&bg);
    cr_assert_eq(graph_task(&bg, "x")->state, T_RELEASED, "taken by b");
    submit1(&bg, &bA, "y", "x"); /* x is made again for y */
    char msg[512];
    bool ok = graph_validate(&bg, msg, sizeof(msg));
    cr_assert(ok, "invariant: %s", msg);
}

/* Fixed in 1b3f306; kept as a regression test. Found by seed 1000 (run_a) at step 36143. Runs are
 * numbered per task record, from 1: when a key is forgotten and submitted again, its new record's
 * run 1 goes to the same worker as the old record's run 1, and the old run's failure report, in
 * flight when it was cancelled, is taken for the new run's: the new task errs with an error it
 * never had. (Its stale done is taken too, harmless while results are deterministic.) Run numbers
 * unique per graph (not per record) would tell them apart. */
Test(graph_model, bug_stale_report_of_an_earlier_incarnation, .init = bug_setup,
     .fini = bug_teardown)
{
    worker *w = mk_worker(&bg, "w1", 1);
    int64_t old = submit1(&bg, &bA, "a", NULL)->attempt; /* run 1 on w1 */
    graph_release(&bg, &bA, "a"); /* forgotten: cancelled on w1, which had just failed it */
    graph_flush(&bg);
    cr_assert_null(graph_task(&bg, "a"));
    task *t = submit1(&bg, &bA, "a", NULL); /* a new record, on w1 again */
    cr_assert_eq(t->on, w);
    graph_erred(&bg, w, "a", TERN_ETASK, "the old run failed", old); /* the old run's report */
    graph_flush(&bg);
    check_graph(&bg);
    cr_assert_eq(t->state, T_PROCESSING, "a stale report erred the new run: %s",
                 graph_state_names[t->state]);
}

/* Found by seed 1000 (run_a, 20000 steps), in the drain. Scattered data whose future was
 * released is kept as lineage (RELEASED) while a task that used it is kept; when a client
 * scatters the same key again, graph_scatter adds it as a wanter but leaves the record
 * RELEASED, so graph_added frees the data the client put on a worker, and the client's
 * future never finishes (nor errs). */
Test(graph_model, bug_scattering_released_data_again, .init = bug_setup, .fini = bug_teardown)
{
    worker *w = mk_worker(&bg, "w1", 1);
    graph_scatter(&bg, &bA, "s");
    graph_added(&bg, w, "s", 8);
    graph_flush(&bg);
    submit1(&bg, &bA, "b", "s");
    graph_done(&bg, w, "b", 8, NULL, 0, 10);
    graph_flush(&bg);
    graph_release(&bg, &bA, "s"); /* b's record keeps s's: RELEASED, its data freed */
    graph_flush(&bg);
    check_graph(&bg);
    cr_assert_eq(graph_task(&bg, "s")->state, T_RELEASED);
    fx_clear(&bl);
    graph_scatter(&bg, &bA, "s"); /* the same data again */
    graph_added(&bg, w, "s", 8);
    graph_flush(&bg);
    check_graph(&bg);
    cr_assert_null(fx_find(&bl, FX_FREE, "s"), "the data scattered again was freed");
    cr_assert_eq(graph_task(&bg, "s")->state, T_MEMORY, "s is %s",
                 graph_state_names[graph_task(&bg, "s")->state]);
    cr_assert_not_null(fx_find(&bl, FX_FINISHED, "s"), "the client's future never finishes");
}

/* Submits key = fn(dep) for c with retries. */
static task *submit_fn(graph *g, client *c, const char *key, const char *fn, const char *dep,
                       int retries)
{
    static const uint8_t args[] = { 0x80 };
    graph_spec s = { .key = key,
                     .fn = fn,
                     .plugin_id = "pid",
                     .args = args,
                     .args_len = sizeof(args),
                     .deps = &dep,
                     .ndeps = 1,
                     .retries = retries };
    task *t = graph_submit(g, c, &s);
    graph_flush(g);
    return t;
}

/* Found by seed 3002 (run_c) at step 19919. t took x (x RELEASED); x is made again for y and
 * errs; t runs on (it has x's data), but when t fails with retries left (or its worker
 * leaves) it goes back to waiting on the erred x, for ever, instead of erring with x's
 * error: "t is waiting but its dependency x is erred". */
Test(graph_model, bug_requeued_taker_keeps_an_erred_dependency, .init = bug_setup,
     .fini = bug_teardown)
{
    worker *w = mk_worker(&bg, "w1", 1);
    submit1(&bg, &bA, "x", NULL);
    task *t = submit_fn(&bg, &bA, "t", "p:f", "x", 1);
    graph_release(&bg, &bA, "x");
    graph_flush(&bg);
    graph_done(&bg, w, "x", 1 << 20, NULL, 0, 10); /* t takes x */
    graph_flush(&bg);
    cr_assert(t->took);
    task *x = graph_task(&bg, "x");
    submit1(&bg, &bA, "y", "x"); /* x is made again */
    cr_assert_eq(x->state, T_PROCESSING);
    graph_erred(&bg, w, "x", TERN_ETASK, "x failed", x->attempt);
    graph_flush(&bg);
    check_graph(&bg);
    graph_erred(&bg, w, "t", TERN_ETASK, "t failed once", t->attempt); /* t retries */
    graph_flush(&bg);
    check_graph(&bg);
    cr_assert_eq(t->state, T_ERRED, "t is %s", graph_state_names[t->state]);
}

/* Found by seed 3001 (run_b) at step 20136. When a worker leaves, the tasks elsewhere that
 * need a key whose only copy it held are requeued (step 3 of graph_worker_lost) only if that
 * key is still "in memory with no holder" when their turn comes; a task requeued before them
 * (in creation order) whose requeue makes its taken dependency again makes that lost key
 * again too, and the later task stays processing, placed normally, with a dependency that is
 * not in memory ("b is processing but its dependency l is processing"). */
Test(graph_model, bug_worker_lost_leaves_a_task_needing_a_lost_key, .init = bug_setup,
     .fini = bug_teardown)
{
    worker *w1 = mk_worker(&bg, "w1", 1);
    submit1(&bg, &bA, "l", NULL);
    graph_done(&bg, w1, "l", 8, NULL, 0, 10);
    graph_flush(&bg);
    submit_fn(&bg, &bA, "x", "p:x", "l", 0); /* a symbol with no result yet: not early */
    task *t = submit1(&bg, &bA, "t", "x");   /* made before b: requeued first */
    graph_release(&bg, &bA, "x");
    graph_flush(&bg);
    graph_done(&bg, w1, "x", 1 << 20, NULL, 0, 10); /* t takes x on w1 */
    graph_flush(&bg);
    cr_assert(t->took && t->on == w1);
    worker *w2 = mk_worker(&bg, "w2", 1);
    task *b = submit1(&bg, &bA, "b", "l"); /* on w2, to fetch l from w1 */
    cr_assert_eq(b->on, w2);
    check_graph(&bg);
    graph_worker_lost(&bg, w1, "test"); /* t's requeue makes x, so l, again before b's turn */
    graph_flush(&bg);
    free_worker(w1);
    check_graph(&bg);
}
