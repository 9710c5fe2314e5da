/* A model-based randomized test of the graph engine (issue 17, part 3).
 *
 * A simulated world drives the engine (runtime/scheduler/graph.h) with random events: clients
 * submit tasks (0-3 dependencies among the keys the graph has; sometimes a pure key again),
 * release, cancel and scatter data; workers join, leave and die; each simulated worker keeps
 * the compute events it was sent (key, run, early, what it took) and a store of the keys it
 * holds, and completes or fails them (with retries, lost fetches, crashes blamed on a task);
 * completions that lost a race with a cancel arrive late (stale). Pushes (issue 23) are
 * simulated as the worker's pusher makes them: a "push" effect is kept by the producer's
 * simulated worker until it stores the key (at once if it holds it), then the put is in flight
 * and lands later, as an event of its own: the target stores the key and reports "added" -
 * sometimes before the producer's "done" (the put overtakes it), sometimes twice (a duplicate
 * put: the second is ignored, as the real worker ignores a key it holds, unless the copy was
 * freed in between), sometimes never (the put fails and the producer reports "push_failed",
 * or the target or the producer dies). A task placed early waits for the dependencies it was
 * placed "after" to be in its worker's store (computed there, or pushed); the others it
 * fetches. After every event the test runs graph_flush, graph_validate, and its own checks of
 * the engine against the world:
 *  - every copy the graph believes a worker holds (t->who) is in that worker's store, and so
 *    is every pushed copy confirmed ahead of its producer's "done" (t->push->got); and the store
 *    holds nothing else (a copy the graph does not count must have been freed);
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
 * of what each run did (pushes: asked, landed, landed before the producer's "done", duplicates
 * ignored, failures reported, lost with a dying worker). Engine bugs the model found are the
 * bug_... tests at the end, each the smallest sequence that showed it, kept as regression tests now
 * that they are fixed. */
/* the harness is shared: not all its helpers are used here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "graph_harness.h"
#pragma GCC diagnostic pop

#include "runtime/scheduler/early.h"
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

#define PUSH_FAIL_PCT  6  /* puts that fail (timeout) */
#define PUSH_TWIN_PCT  15 /* puts made twice */
#define PUSH_AHEAD_PCT 35 /* puts that land before their producer's "done" is reported */

/* Event weights (per mille) of one run. */
typedef struct weights {
    int submit, resubmit, done, fail, blame, join, leave, die, release, cancel, scatter, place,
        stale, push, burst;
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
    bool finished;     /* its result is stored here (and its pushes gone); "done" is on its way */
    uint64_t sent;     /* ghost or finished: when its report was sent (they arrive in order) */
    uint8_t ndeps, ntaken, nafter;
    uint32_t deps[4], taken[4], after[4];
} entry;

/* A push: key's value from the producer's store to the target's data server. Kept by the
 * producer (simw.want) until it stores the key, then in flight (model.fly) until it lands. */
typedef struct mpush {
    uint32_t key;
    uint32_t fgen;       /* the producer's incarnation (simw.gen): it reports a failure */
    int8_t fslot, tslot; /* the target is an address: whoever is there when it lands */
} mpush;

typedef struct simw {
    worker *w; /* NULL: no worker in this slot */
    entry *q;
    size_t nq, capq;
    uint8_t *store; /* by key id */
    size_t capstore, nheld;
    mpush *want; /* pushes of keys it does not hold yet */
    size_t nwant, capwant;
    uint32_t gen; /* incarnations of this slot (joins) */
} simw;

typedef struct counters {
    size_t events, done, failed, stale_done, stale_failed, takes, early, ghosts, fetched, lost,
        joins, cancels, finished, erred, recomputing, blamed, max_tasks, max_queue, max_deferred;
    size_t pushes, landed, landed_ahead, twins, dups, push_failed, push_lost, push_freed;
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
    mpush *fly; /* puts in flight */
    size_t nfly, capfly;
    bool draining;  /* no random failures */
    uint64_t nsent; /* reports sent (entry.sent) */
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

static void fly_wanted(simw *s, uint32_t k);

/* s stores k: the pushes it was asked for k go (as the worker's pusher queues them when a key
 * is stored, whatever stored it). */
static void hold(simw *s, uint32_t k)
{
    if (k >= s->capstore) {
        size_t cap = M.capkeys > k ? M.capkeys : k + 1;
        s->store = realloc(s->store, cap);
        cr_assert_not_null(s->store);
        memset(s->store + s->capstore, 0, cap - s->capstore);
        s->capstore = cap;
    }
    s->nheld += !s->store[k];
    s->store[k] = 1;
    fly_wanted(s, k);
}

static void unhold(simw *s, uint32_t k)
{
    if (k < s->capstore && s->store[k]) {
        s->store[k] = 0;
        s->nheld--;
    }
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

/* e's report (a ghost's, or a finished run's) is on its way from now. */
static void sent(entry *e)
{
    e->sent = ++M.nsent;
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
 * was placed "after", which must be computed here or pushed here) can be fetched from a
 * holder. */
static bool completable(const simw *s, const entry *e)
{
    if (e->finished)
        return false;
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

/* Whether e, placed early, still waits for a dependency it was placed "after" (it has not
 * started: it can neither fail nor crash its executor). */
static bool blocked(const simw *s, const entry *e)
{
    for (size_t i = 0; e->early && i < e->nafter; i++)
        if (!held(s, e->after[i]))
            return true;
    return false;
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

/* ---- pushes: the world's side ------------------------------------------------------------ */

static bool push_got(const task *t, const worker *w)
{
    return t->push && terni_ptrs_has(&t->push->got, (void *)w);
}

static void fly_add(mpush p)
{
    if (M.nfly == M.capfly) {
        M.capfly = M.capfly ? 2 * M.capfly : 64;
        M.fly = realloc(M.fly, M.capfly * sizeof(*M.fly));
        cr_assert_not_null(M.fly);
    }
    M.fly[M.nfly++] = p;
}

/* s stores k: the pushes of k it was asked for are put on their way (sometimes twice). */
static void fly_wanted(simw *s, uint32_t k)
{
    for (size_t i = 0; i < s->nwant;) {
        if (s->want[i].key != k) {
            i++;
            continue;
        }
        mpush p = s->want[i];
        s->want[i] = s->want[--s->nwant];
        trace("      %s puts %s to w%d", s->w->name, kname(k), p.tslot);
        fly_add(p);
        if (!M.draining && chance(PUSH_TWIN_PCT)) {
            M.n.twins++;
            fly_add(p);
        }
    }
}

/* s drops the pushes of k it was asked for (k was freed or cancelled there), as the worker's
 * pusher does; a run of k that finished before (its report in flight) put them on their way
 * already. */
static void drop_wanted(simw *s, uint32_t k)
{
    for (size_t i = 0; i < s->nq; i++)
        if (s->q[i].key == k && s->q[i].finished)
            return;
    for (size_t i = 0; i < s->nwant;)
        if (s->want[i].key == k)
            s->want[i] = s->want[--s->nwant];
        else
            i++;
}

static void fx_push(void *ctx, worker *from, const task *t, worker *to)
{
    M.nfx++;
    M.n.pushes++;
    trace("    push %s from %s to %s", t->key, from ? from->name : "?", to ? to->name : "?");
    MCHECK(from && to && !from->gone && !to->gone && from != to, "push of %s from %s to %s", t->key,
           from ? from->name : "?", to ? to->name : "?");
    MCHECK(!M.cancelling, "graph_cancel asked for a push of %s", t->key);
    MCHECK(t->state == T_PROCESSING && t->on == from, "push of %s from %s, where it does not run",
           t->key, from->name);
    simw *s = sim_of(from, "push", t->key), *ts = sim_of(to, "push", t->key);
    uint32_t k = kid(t->key);
    int8_t tslot = (int8_t)(ts - M.ws);
    for (size_t i = 0; i < s->nwant; i++)
        if (s->want[i].key == k && s->want[i].tslot == tslot)
            return; /* asked twice for one address: one push */
    if (s->nwant == s->capwant) {
        s->capwant = s->capwant ? 2 * s->capwant : 16;
        s->want = realloc(s->want, s->capwant * sizeof(*s->want));
        cr_assert_not_null(s->want);
    }
    s->want[s->nwant++] = (mpush){ k, s->gen, (int8_t)(s - M.ws), tslot };
    if (held(s, k)) /* stored already (a run that finished earlier): at once */
        fly_wanted(s, k);
}

static void after_event(void);
static void flush_reports(simw *s);

/* A put in flight arrives at the target's address, or fails (the worker there left, or it did
 * not answer): the producer, if still connected, reports "push_failed" naming the worker at
 * that address now (ops.c finds it by address; NULL if none). A target that holds the key
 * already ignores it; else it stores it and reports "added", which the graph counts, keeps
 * awaiting its producer's "done", or answers with "free". */
static void land(mpush p)
{
    simw *fs = &M.ws[p.fslot], *ts = &M.ws[p.tslot];
    const char *key = kname(p.key);
    worker *at = ts->w;
    if (!at || (!M.draining && chance(PUSH_FAIL_PCT))) {
        if (!fs->w || fs->gen != p.fgen) {
            M.n.push_lost++;
            trace("a put of %s from w%d to w%d is lost with its producer", key, p.fslot, p.tslot);
            return;
        }
        flush_reports(fs);
        at = ts->w;
        M.n.push_failed++;
        trace("w%d could not put %s on w%d%s", p.fslot, key, p.tslot, at ? "" : " (gone)");
        graph_push_failed(&M.g, fs->w, key, at);
        after_event();
        return;
    }
    if (held(ts, p.key)) {
        M.n.dups++;
        trace("%s ignores a put of %s, which it holds", at->name, key);
        return;
    }
    flush_reports(ts);
    task *t = graph_task(&M.g, key);
    bool ahead = t && t->state == T_PROCESSING;
    M.n.landed++;
    M.n.landed_ahead += ahead;
    trace("%s stores %s, put by w%d%s", at->name, key, p.fslot, ahead ? " (before its done)" : "");
    hold(ts, p.key);
    graph_added(&M.g, at, key, M.keys[p.key].nbytes);
    M.n.push_freed += !held(ts, p.key);
    after_event();
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
    drop_wanted(s, k);
    if (held(s, k)) {
        unhold(s, k);
        return;
    }
    for (size_t i = 0; i < s->nq; i++) /* as the worker does: not held, so drop it if queued */
        if (s->q[i].key == k && !s->q[i].ghost && !s->q[i].finished) {
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
        } else if (e->finished) { /* its result is stored, its report on its way: stale now */
            e->ghost = true;      /* (sent already) */
            M.n.ghosts++;
            i++;
        } else if (chance(25) && completable(s, e)) {
            /* it ended before the cancel arrived: its report is on its way; it finished (its
             * result stored) or failed */
            e->ghost = true;
            M.n.ghosts++;
            sent(e);
            if (chance(70)) {
                e->finished = true;
                hold(s, k);
            }
            i++;
        } else {
            take_entry(s, i);
        }
    }
    drop_wanted(s, k);
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

static const graph_effects world = { fx_compute, fx_free_key,    fx_cancel, fx_finished,
                                     fx_erred,   fx_recomputing, fx_push };

/* ---- the checks after each event ------------------------------------------------------- */

/* Copies s holds that the graph neither counts nor awaits, legitimately: results of runs that
 * finished there and whose reports are on their way. */
static size_t reported_later(const simw *s)
{
    size_t n = 0;
    for (size_t j = 0; j < s->nq; j++) {
        const entry *e = &s->q[j];
        bool dup = false;
        for (size_t i = 0; i < j; i++)
            dup |= s->q[i].finished && s->q[i].key == e->key;
        if (!e->finished || dup || !held(s, e->key))
            continue;
        task *t = graph_task(&M.g, kname(e->key));
        n += !t || (!terni_ptrs_has(&t->who, s->w) && !push_got(t, s->w));
    }
    return n;
}

static void check_model(void)
{
    char msg[512];
    MCHECK(graph_validate(&M.g, msg, sizeof(msg)), "invariant: %s", msg);
    size_t counted[NSLOTS] = { 0 };
    TERNI_KEYTAB_EACH (&M.g.tasks, it) {
        task *t = it->value;
        uint32_t k = kid(t->key);
        for (size_t i = 0; i < t->who.n; i++) {
            worker *w = WHO_AT(t, i);
            simw *s = w->peer;
            MCHECK(s && s->w == w, "%s is held by %s, unknown to the world", t->key, w->name);
            MCHECK(held(s, k), "the graph says %s holds %s; its store does not", w->name, t->key);
            counted[s - M.ws]++;
        }
        for (size_t i = 0; t->push && i < t->push->got.n; i++) {
            worker *w = terni_ptrs_items(&t->push->got)[i];
            simw *s = w->peer;
            MCHECK(s && s->w == w, "%s was pushed to %s, unknown to the world", t->key, w->name);
            MCHECK(held(s, k), "the graph says %s confirmed a copy of %s; its store has none",
                   w->name, t->key);
            counted[s - M.ws]++;
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
        if (s->nheld != counted[i] + reported_later(s)) { /* which one? */
            for (uint32_t k = 0; k < s->capstore; k++) {
                task *t = s->store[k] ? graph_task(&M.g, kname(k)) : NULL;
                bool pending = false;
                for (size_t j = 0; j < s->nq; j++)
                    pending |= s->q[j].finished && s->q[j].key == k;
                MCHECK(!s->store[k] || pending ||
                           (t && (terni_ptrs_has(&t->who, s->w) || push_got(t, s->w))),
                       "%s holds %s, which the graph (%s) neither counts nor awaits there: it "
                       "was never freed",
                       s->w->name, kname(k), t ? graph_state_names[t->state] : "forgotten");
            }
            model_fail("%s holds %zu keys; the graph counts %zu", s->w->name, s->nheld, counted[i]);
        }
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

/* A burst, as a map or a loop submits one: 32 to 191 tasks of p:small at once (now and then
 * more than the early placement budget left: the rest is deferred), each depending on a task
 * that runs (a fan-out) or on the one before (a chain, placed early as far as the budget
 * goes). */
static bool ev_burst(void)
{
    int c = (int)below((uint32_t)M.nclients);
    uint32_t root = UINT32_MAX;
    for (int tries = 0; tries < 8 && root == UINT32_MAX; tries++) {
        uint32_t k = random_graph_key();
        task *t = k != UINT32_MAX ? graph_task(&M.g, kname(k)) : NULL;
        if (t && t->state == T_PROCESSING)
            root = k;
    }
    if (root == UINT32_MAX) {
        root = new_key(false);
        M.keys[root].nbytes = SMALL_NB;
        submit_key(c, root);
    }
    bool chain = chance(40);
    uint32_t n = 32 + below(160), prev = root;
    size_t budget = EARLY_PER_THREAD * (size_t)(M.g.nthreads > 0 ? M.g.nthreads : 1);
    if (!chain && chance(3) && M.g.nearly < budget)
        n = (uint32_t)(budget - M.g.nearly) + 1 + below(64);
    trace("c%d submits a %s of %u from %s", c, chain ? "chain" : "fan-out", n, kname(root));
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = new_key(false);
        mkey *m = &M.keys[k];
        m->nbytes = SMALL_NB;
        m->deps[m->ndeps++] = chain ? prev : root;
        submit_key(c, k);
        prev = k;
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
    flush_reports(s);
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

/* Reports from one worker reach the graph in the order it sent them (one connection): before
 * a worker reports anything, what it reported before - a run that finished (its result stored,
 * "done" on its way) or that ended before a cancel arrived (a ghost) - is delivered first. */
static bool pending(const entry *e)
{
    return e->ghost || e->finished;
}

static size_t oldest_pending(const simw *s)
{
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < s->nq; i++)
        if (pending(&s->q[i]) && (best == SIZE_MAX || s->q[i].sent < s->q[best].sent))
            best = i;
    return best;
}

static void deliver(simw *s, size_t i);

static void flush_reports(simw *s)
{
    size_t i;
    while (s->w && (i = oldest_pending(s)) != SIZE_MAX)
        deliver(s, i);
}

/* A random entry of a random worker: one to run (pending false) or one whose report is on its
 * way; false if none. */
static bool random_entry(bool want_pending, simw **sp, size_t *ip)
{
    int start = (int)below(NSLOTS);
    for (int n = 0; n < NSLOTS; n++) {
        simw *s = &M.ws[(start + n) % NSLOTS];
        if (!s->w || !s->nq)
            continue;
        size_t off = below((uint32_t)s->nq);
        for (size_t j = 0; j < s->nq; j++) {
            size_t i = (off + j) % s->nq;
            if (pending(&s->q[i]) == want_pending) {
                *sp = s;
                *ip = i;
                return true;
            }
        }
    }
    return false;
}

/* Where entry e is in s's queue now (reports in between may have removed it), or SIZE_MAX. */
static size_t find_entry(const simw *s, const entry *e)
{
    for (size_t i = 0; i < s->nq; i++)
        if (s->q[i].key == e->key && s->q[i].seq == e->seq && s->q[i].attempt == e->attempt &&
            s->q[i].ghost == e->ghost && s->q[i].finished == e->finished)
            return i;
    return SIZE_MAX;
}

/* The report of the finished entry i reaches the graph. */
static void report(simw *s, size_t i)
{
    entry e = take_entry(s, i);
    worker *w = s->w;
    static const uint8_t inl[12] = { 0x4b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
    int64_t nbytes = M.keys[e.key].nbytes;
    size_t inl_len = nbytes <= SMALL_NB && chance(50) ? 1 + below(sizeof(inl)) : 0;
    bool stale = e.ghost || !current_task(s, &e);
    M.n.done++;
    M.n.stale_done += stale;
    trace("%s done %s run %" PRId64 "%s, %" PRId64 " bytes%s%s", w->name, kname(e.key), e.attempt,
          stale ? " (stale)" : "", nbytes, inl_len ? " inline" : "",
          held(s, e.key) ? "" : " (freed since)");
    /* A known limit, not modelled: graph_done does not compare runs, so the stale report of an
     * earlier run is taken for the current run's (harmless while results are deterministic);
     * should the worker have freed that result since, the graph counts a copy it lacks until
     * the current run stores it again. The model keeps the value for such a report. */
    if (stale && !held(s, e.key))
        hold(s, e.key);
    graph_done(&M.g, w, kname(e.key), nbytes, inl_len ? inl : NULL, inl_len, 1 + below(2000));
    after_event();
}

/* The failure report of entry i (code; its run as received, or unknown) reaches the graph; a
 * stale one must change nothing. */
static void send_failure(simw *s, size_t i, int code, bool unknown_run)
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

static void deliver(simw *s, size_t i)
{
    if (s->q[i].finished)
        report(s, i);
    else /* a ghost that failed */
        send_failure(s, i, TERN_ETASK, false);
}

/* s runs entry i to its end: it fetches what it lacks (keeping some copies, reported with
 * graph_added), stores its result (the pushes it was asked for go) and reports it; sometimes
 * the report is delivered later, so that what happens in between - a put of the result that
 * overtakes it, above all - reaches the graph first. */
static void complete(simw *s, size_t i)
{
    entry e = s->q[i];
    worker *w = s->w;
    for (size_t d = 0; !e.early && d < e.ndeps; d++) {
        uint32_t dk = e.deps[d];
        if (has_id(e.taken, e.ntaken, dk) || held(s, dk) || !chance(30))
            continue;
        flush_reports(s);
        M.n.fetched++;
        trace("%s keeps a fetched copy of %s", w->name, kname(dk));
        hold(s, dk);
        graph_added(&M.g, w, kname(dk), M.keys[dk].nbytes);
        after_event();
    }
    /* the run ends: still queued (a report in between may have cancelled it)? */
    if ((i = find_entry(s, &e)) == SIZE_MAX)
        return; /* its result is dropped, unreported */
    s->q[i].finished = true;
    sent(&s->q[i]);
    hold(s, e.key);
    if (!M.draining && chance(PUSH_AHEAD_PCT)) {
        trace("%s finishes %s run %" PRId64 "; its done is on its way", w->name, kname(e.key),
              e.attempt);
        return;
    }
    flush_reports(s); /* this one last */
}

static bool ev_done(void)
{
    simw *s;
    size_t i;
    if (!random_entry(false, &s, &i))
        return false;
    for (size_t j = 0; j < s->nq; j++) {
        size_t k = (i + j) % s->nq;
        if (completable(s, &s->q[k])) {
            complete(s, k);
            return true;
        }
    }
    return false;
}

/* A report on its way arrives (a worker's oldest): a run that finished, or a ghost's. */
static bool ev_stale(void)
{
    simw *s;
    size_t i;
    if (!random_entry(true, &s, &i))
        return false;
    deliver(s, oldest_pending(s));
    return true;
}

/* Something on its way arrives: a put (it lands or fails), or a report. */
static bool ev_push(void)
{
    if (!M.nfly || chance(30))
        return ev_stale();
    size_t i = below((uint32_t)M.nfly);
    mpush p = M.fly[i];
    M.fly[i] = M.fly[--M.nfly];
    land(p);
    return true;
}

static bool ev_fail(void)
{
    simw *s;
    size_t i;
    if (!random_entry(false, &s, &i))
        return false;
    /* one placed early that still waits for a push has not started: it cannot fail */
    size_t n = 0;
    while (pending(&s->q[i]) || blocked(s, &s->q[i])) {
        if (++n == s->nq)
            return false;
        i = (i + 1) % s->nq;
    }
    /* a dependency it could not fetch, or its own failure */
    int code = !completable(s, &s->q[i]) || chance(20) ? TERN_ELOST : TERN_ETASK;
    bool unknown_run = chance(5);
    entry e = s->q[i];
    flush_reports(s);
    if ((i = find_entry(s, &e)) != SIZE_MAX)
        send_failure(s, i, code, unknown_run);
    return true;
}

static void blame(simw *s, size_t i)
{
    uint32_t k = s->q[i].key;
    flush_reports(s);
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
    s->nwant = 0;
    s->gen++;
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
        if (!pending(&s->q[i]))
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
    s->nwant = 0;
    s->nheld = 0;
    if (s->store)
        memset(s->store, 0, s->capstore);
    for (size_t i = 0; i < M.nfly;) /* its puts on the wire may still arrive */
        if (M.fly[i].fslot == s - M.ws && M.fly[i].fgen == s->gen && chance(50)) {
            M.n.push_lost++;
            trace("a put of %s from %s to w%d is lost with it", kname(M.fly[i].key), w->name,
                  M.fly[i].tslot);
            M.fly[i] = M.fly[--M.nfly];
        } else {
            i++;
        }
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
    size_t ntasks = terni_keytab_count(&M.g.tasks), ndeferred = 0;
    if (ntasks > M.n.max_tasks)
        M.n.max_tasks = ntasks;
    TERNI_LIST_EACH (&M.g.deferred, it)
        ndeferred++;
    if (ndeferred > M.n.max_deferred)
        M.n.max_deferred = ndeferred;
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
        else if ((r -= wt->push) < 0)
            ok = ev_push();
        else if ((r -= wt->burst) < 0)
            ok = ev_burst();
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
    M.draining = true;
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
        if (random_entry(true, &s, &i)) { /* late reports */
            deliver(s, oldest_pending(s));
            continue;
        }
        if (M.nfly) { /* puts land (or fail, if their target left) */
            mpush p = M.fly[--M.nfly];
            land(p);
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
                    send_failure(s, i, TERN_ELOST, false);
                    progress = true;
                    continue;
                }
                char lacks[256] = "";
                size_t len = 0;
                for (size_t d = 0; d < s->q[i].ndeps; d++) {
                    uint32_t dk = s->q[i].deps[d];
                    task *dt = graph_task(&M.g, kname(dk));
                    len +=
                        (size_t)snprintf(lacks + len, sizeof(lacks) - len, " %s (%s%s%s)",
                                         kname(dk), dt ? graph_state_names[dt->state] : "forgotten",
                                         has_id(s->q[i].after, s->q[i].nafter, dk) ? ", after" : "",
                                         held(s, dk) ? ", held here" : "");
                    if (len >= sizeof(lacks))
                        len = sizeof(lacks) - 1;
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
        free(M.ws[i].want);
    }
    free(M.fly);
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
                "erred, %zu recomputing; at most %zu tasks, %zu queued, %zu deferred; pushes: "
                "%zu asked, %zu landed (%zu before done, %zu freed), %zu twins, %zu ignored, "
                "%zu failed, %zu lost\n",
                M.seed, M.n.events, M.nkeys, M.n.done, M.n.stale_done, M.n.failed, M.n.stale_failed,
                M.n.takes, M.n.early, M.n.ghosts, M.n.fetched, M.n.blamed, M.n.joins, M.n.lost,
                M.n.cancels, M.n.finished, M.n.erred, M.n.recomputing, M.n.max_tasks, M.n.max_queue,
                M.n.max_deferred, M.n.pushes, M.n.landed, M.n.landed_ahead, M.n.push_freed,
                M.n.twins, M.n.dups, M.n.push_failed, M.n.push_lost);
    /* the paths the model is for were taken */
    if (steps >= STEPS) {
        MCHECK(M.n.takes && M.n.early && M.n.ghosts && M.n.stale_done && M.n.recomputing &&
                   M.n.fetched && M.n.lost,
               "a path was never taken: %zu takes, %zu early, %zu ghosts, %zu stale dones, "
               "%zu recomputing, %zu fetched, %zu losses",
               M.n.takes, M.n.early, M.n.ghosts, M.n.stale_done, M.n.recomputing, M.n.fetched,
               M.n.lost);
        MCHECK(M.n.pushes && M.n.landed_ahead && M.n.landed > M.n.landed_ahead && M.n.dups &&
                   M.n.push_failed && M.n.push_freed && M.n.max_deferred,
               "a push path was never taken: %zu pushes, %zu landed (%zu before done, %zu "
               "freed), %zu ignored, %zu failed; at most %zu deferred",
               M.n.pushes, M.n.landed, M.n.landed_ahead, M.n.push_freed, M.n.dups, M.n.push_failed,
               M.n.max_deferred);
    }
    model_free();
}

TestSuite(graph_model);

/* The mix of a busy cluster: mostly submissions and completions. */
Test(graph_model, run_a, .timeout = 600)
{
    weights wt = { .submit = 200,
                   .resubmit = 40,
                   .done = 287,
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
                   .push = 40,
                   .burst = 3,
                   .retry_pct = 15 };
    run(0, &wt);
}

/* Workers come and go all the time. */
Test(graph_model, run_b, .timeout = 600)
{
    weights wt = { .submit = 200,
                   .resubmit = 40,
                   .done = 257,
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
                   .push = 40,
                   .burst = 3,
                   .retry_pct = 15 };
    run(1, &wt);
}

/* Failures, retries, crashes and cancels. */
Test(graph_model, run_c, .timeout = 600)
{
    weights wt = { .submit = 200,
                   .resubmit = 60,
                   .done = 237,
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
                   .push = 40,
                   .burst = 3,
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

/* fn has given a large result on w (one task, released): its dependents are not placed early
 * but once it is done, and may take it (the sequences below need a take). */
static void large_symbol(worker *w, const char *fn)
{
    static const uint8_t args[] = { 0x80 };
    graph_spec s = {
        .key = "sym", .fn = fn, .plugin_id = "pid", .args = args, .args_len = sizeof(args)
    };
    graph_submit(&bg, &bA, &s);
    graph_done(&bg, w, "sym", 1 << 20, NULL, 0, 10);
    graph_release(&bg, &bA, "sym");
    graph_flush(&bg);
    cr_assert_null(graph_task(&bg, "sym"));
    fx_clear(&bl);
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
    large_symbol(w, "p:f"); /* b waits for x (not placed early), to take it */
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

/* Submits key = p:f(dep) for c, restricted to the worker named on (NULL: anywhere). */
static task *submit_on(graph *g, client *c, const char *key, const char *dep, const char *on)
{
    static const uint8_t args[] = { 0x80 };
    graph_spec s = { .key = key,
                     .fn = "p:f",
                     .plugin_id = "pid",
                     .args = args,
                     .args_len = sizeof(args),
                     .deps = dep ? &dep : NULL,
                     .ndeps = dep ? 1 : 0,
                     .restrict_to = on ? &on : NULL,
                     .nrestrict = on ? 1 : 0 };
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
    large_symbol(w, "p:f"); /* t waits for x (not placed early), to take it */
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
    large_symbol(w1, "p:x"); /* t waits for x (not placed early), to take it */
    submit1(&bg, &bA, "l", NULL);
    graph_done(&bg, w1, "l", 8, NULL, 0, 10);
    graph_flush(&bg);
    submit_fn(&bg, &bA, "x", "p:x", "l", 0);
    task *t = submit1(&bg, &bA, "t", "x"); /* made before b: requeued first */
    graph_release(&bg, &bA, "x");
    graph_flush(&bg);
    graph_done(&bg, w1, "x", 1 << 20, NULL, 0, 10); /* t takes x on w1 */
    graph_flush(&bg);
    cr_assert(t->took && t->on == w1);
    worker *w2 = mk_worker(&bg, "w2", 1);
    task *b = submit_on(&bg, &bA, "b", "l", "w2"); /* on w2, to fetch l from w1 */
    cr_assert_eq(b->on, w2);
    check_graph(&bg);
    graph_worker_lost(&bg, w1, "test"); /* t's requeue makes x, so l, again before b's turn */
    graph_flush(&bg);
    free_worker(w1);
    check_graph(&bg);
}

/* Found by seed 10 (run_a) at step 681, with bursts. While a worker is being lost, the tasks
 * that ran on it are still PROCESSING there until their turn in step 3 of graph_worker_lost;
 * requeueing others before them frees early placement budget, and the deferred list is pumped:
 * a deferred task whose dependency runs on the worker that left is placed early after it, and
 * that worker is asked to push ("push of x from w2", a worker that left). It is undone when the
 * dependency's turn comes, but the push goes to a worker that left and the placement churns. */
Test(graph_model, bug_early_placement_after_a_task_on_a_worker_that_left, .init = bug_setup,
     .fini = bug_teardown)
{
    char key[32];
    worker *w2 = mk_worker(&bg, "w2", 1);
    submit_on(&bg, &bA, "sym", NULL, NULL); /* p:f gives small results */
    graph_done(&bg, w2, "sym", 8, NULL, 0, 10);
    graph_flush(&bg);
    enum { B = EARLY_PER_THREAD };
    submit_on(&bg, &bA, "y", NULL, "w2");
    for (int i = 0; i < 2 * B; i++) { /* early on w2, made before x: requeued before it */
        snprintf(key, sizeof(key), "c%d", i);
        submit_on(&bg, &bA, key, "y", "w2");
    }
    task *x = submit_on(&bg, &bA, "x", NULL, NULL);
    cr_assert_eq(x->on, w2);
    worker *w1 = mk_worker(&bg, "w1", 4); /* the budget: 5 threads; 4 once w2 left */
    submit_on(&bg, &bA, "a", NULL, "w1");
    for (int i = 0; i < 3 * B; i++) {
        snprintf(key, sizeof(key), "b%d", i);
        submit_on(&bg, &bA, key, "a", "w1");
    }
    cr_assert_eq(bg.nearly, 5 * B);
    task *e = submit_on(&bg, &bA, "e", "x", "w1");
    cr_assert(e->deferred);
    check_graph(&bg);
    fx_clear(&bl);
    graph_worker_lost(&bg, w2, "test");
    graph_flush(&bg);
    free_worker(w2);
    check_graph(&bg);
    for (size_t i = 0; i < bl.n; i++)
        cr_assert(bl.r[i].kind != FX_PUSH || bl.r[i].w != w2,
                  "%s was to be pushed from the worker that left", bl.r[i].key);
    cr_assert_eq(x->on, w1, "x runs again, on w1");
    cr_assert(e->state == T_PROCESSING && e->early && e->on == w1, "e is placed early after x");
    cr_assert_eq(fx_count(&bl, FX_COMPUTE, "e"), 1, "once");
}

/* Found by seed 5 (run_a, with bursts) at step 43679. A deferred task leaves the deferred list
 * when it is placed (tr_assign), erred, released or forgotten; but one whose dependencies
 * finish while it is deferred, and which no worker may run then (its worker left), goes from
 * WAITING to NO_WORKER still in the list: "t is deferred but no-worker". */
Test(graph_model, bug_deferred_task_without_a_worker, .init = bug_setup, .fini = bug_teardown)
{
    char key[32];
    worker *w1 = mk_worker(&bg, "w1", 1);
    worker *w2 = mk_worker(&bg, "w2", 1);   /* the budget: 2 threads */
    submit_on(&bg, &bA, "sym", NULL, "w1"); /* p:f gives small results */
    graph_done(&bg, w1, "sym", 8, NULL, 0, 10);
    graph_flush(&bg);
    submit_on(&bg, &bA, "a", NULL, "w1");
    for (int i = 0; i < 2 * EARLY_PER_THREAD; i++) {
        snprintf(key, sizeof(key), "b%d", i);
        submit_on(&bg, &bA, key, "a", "w1");
    }
    submit_on(&bg, &bA, "x", NULL, "w1");
    task *t = submit_on(&bg, &bA, "t", "x", "w2");
    cr_assert(t->deferred);
    graph_worker_lost(&bg, w2, "test");
    graph_flush(&bg);
    free_worker(w2);
    check_graph(&bg);
    graph_done(&bg, w1, "x", 8, NULL, 0, 10); /* t is ready; no worker may run it */
    graph_flush(&bg);
    check_graph(&bg);
    cr_assert_eq(t->state, T_NO_WORKER);
    cr_assert(!t->deferred);
}
