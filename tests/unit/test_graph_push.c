/* The graph engine's early placement with pushes (runtime/scheduler/early.h): a task whose
 * missing dependencies all run is placed early, and each producer on another worker is told to
 * push its result there. Each test drives the engine with the events a cluster would send
 * (done, added, push_failed, erred, a worker lost) and checks the effects it records; every
 * event is followed by graph_validate. */
/* the harness is shared: not all its helpers are used here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "graph_harness.h"
#pragma GCC diagnostic pop

#include "runtime/scheduler/early.h"

static graph g;
static fx_log L;
static client A;

static void setup(void)
{
    cr_assert_eq(graph_init(&g, &recording, &L), 0);
    memset(&A, 0, sizeof(A));
}

static void teardown(void)
{
    free_graph_and_workers(&g, &L);
}

TestSuite(push, .init = setup, .fini = teardown);

/* ---- events, each followed by the checks ------------------------------------------------ */

static void after(void)
{
    graph_flush(&g);
    check_graph(&g);
}

static void done(worker *w, const char *key, int64_t nbytes)
{
    graph_done(&g, w, key, nbytes, NULL, 0, 10);
    after();
}

static void added(worker *w, const char *key)
{
    graph_added(&g, w, key, 8);
    after();
}

static void push_failed(worker *from, const char *key, worker *to)
{
    graph_push_failed(&g, from, key, to);
    after();
}

static void erred(worker *w, const char *key)
{
    graph_erred(&g, w, key, TERN_ETASK, "boom", -1);
    after();
}

static void lose(worker *w)
{
    graph_worker_lost(&g, w, "test");
    graph_flush(&g);
    free_worker(w);
    check_graph(&g);
}

static worker *join(const char *name, int nthreads)
{
    worker *w = mk_worker(&g, name, nthreads);
    check_graph(&g);
    return w;
}

static void release(const char *key)
{
    graph_release(&g, &A, key);
    after();
}

/* Submits key = p:f(deps...) for A, restricted to the worker named `on` (NULL: anywhere); in a
 * map of gsize tasks at gindex when gsize > 1. */
static task *submit_at(const char *key, const char **deps, size_t ndeps, const char *on,
                       uint32_t gindex, uint32_t gsize)
{
    static const uint8_t args[] = { 0x80 }; /* [] */
    graph_spec s = { .key = key,
                     .fn = "p:f",
                     .plugin_id = "pid",
                     .args = args,
                     .args_len = sizeof(args),
                     .deps = deps,
                     .ndeps = ndeps,
                     .gindex = gindex,
                     .gsize = gsize,
                     .restrict_to = on ? &on : NULL,
                     .nrestrict = on ? 1 : 0 };
    task *t = graph_submit(&g, &A, &s);
    cr_assert_not_null(t);
    after();
    return t;
}

/* key = p:f(dep) on the worker named on (NULL: anywhere). */
static task *submit_on(const char *key, const char *dep, const char *on)
{
    return submit_at(key, dep ? &dep : NULL, dep ? 1 : 0, on, 0, 0);
}

/* p:f (the symbol of every task here) gives one result of nbytes: known small or large. */
static void one_result(worker *w, int64_t nbytes)
{
    submit_on("sym", NULL, w->name);
    done(w, "sym", nbytes);
    release("sym");
    cr_assert_null(graph_task(&g, "sym"));
    fx_clear(&L);
}

/* ---- reading the effects ------------------------------------------------------------------ */

static size_t count_fx(int kind, const char *key, const worker *w, const worker *to)
{
    size_t n = 0;
    for (size_t i = 0; i < L.n; i++) {
        const fx_rec *r = &L.r[i];
        n += r->kind == kind && !strcmp(r->key, key) && (!w || r->w == w) && (!to || r->to == to);
    }
    return n;
}

static size_t pushes(const char *key, const worker *from, const worker *to)
{
    return count_fx(FX_PUSH, key, from, to);
}

static bool freed_on(const char *key, const worker *w)
{
    return count_fx(FX_FREE, key, w, NULL) > 0;
}

static bool cancelled_on(const char *key, const worker *w)
{
    return count_fx(FX_CANCEL, key, w, NULL) > 0;
}

static bool holds(const task *t, const worker *w)
{
    return terni_ptrs_has(&t->who, (void *)w);
}

static bool push_to(const task *t, const worker *w)
{
    return t->push && terni_ptrs_has(&t->push->to, (void *)w);
}

static bool push_got(const task *t, const worker *w)
{
    return t->push && terni_ptrs_has(&t->push->got, (void *)w);
}

/* t runs early on w; its last compute event recorded (if not cleared since) says so. */
static void assert_early_on(const task *t, const worker *w)
{
    cr_assert_eq(t->state, T_PROCESSING, "%s is %s", t->key, graph_state_names[t->state]);
    cr_assert(t->early, "%s is not early", t->key);
    cr_assert_eq(t->on, w, "%s runs on %s, not %s", t->key, t->on->name, w->name);
    fx_rec *c = fx_find(&L, FX_COMPUTE, t->key);
    cr_assert(!c || (c->w == w && c->early && c->attempt == t->attempt), "%s's compute", t->key);
}

static size_t ndeferred(void)
{
    size_t n = 0;
    TERNI_LIST_EACH (&g.deferred, it)
        n++;
    return n;
}

/* ---- a stencil on two workers ------------------------------------------------------------- */

#define WIDTH 8
#define STEPS 4 /* step 0: the map of roots; steps 1..3 each placed early */

static void cell(char *buf, size_t len, int s, int i)
{
    snprintf(buf, len, "x%d.%d", s, i);
}

/* Each cell of step s+1 depends on its neighbours and itself at step s. Submitted all at once,
 * as a client does: every task of steps 1.. is placed early; each of their dependencies that
 * runs on the other worker is pushed there once; the steps are spread over both workers. */
Test(push, stencil_on_two_workers_pushes_each_cross_worker_edge_once)
{
    worker *w[2] = { join("w1", 1), join("w2", 1) };
    one_result(w[0], 8);
    char key[32], dk[3][32];
    task *x[STEPS][WIDTH];
    for (int i = 0; i < WIDTH; i++) {
        cell(key, sizeof(key), 0, i);
        x[0][i] = submit_at(key, NULL, 0, NULL, (uint32_t)i, WIDTH);
    }
    size_t edges = 0;
    for (int s = 1; s < STEPS; s++)
        for (int i = 0; i < WIDTH; i++) {
            const char *deps[3];
            size_t n = 0;
            for (int j = i - 1; j <= i + 1; j++)
                if (j >= 0 && j < WIDTH) {
                    cell(dk[n], sizeof(dk[n]), s - 1, j);
                    deps[n] = dk[n];
                    n++;
                }
            cell(key, sizeof(key), s, i);
            x[s][i] = submit_at(key, deps, n, NULL, 0, 0);
            edges += n;
        }
    /* where each runs */
    for (int i = 0; i < WIDTH; i++)
        cr_assert(x[0][i]->state == T_PROCESSING && !x[0][i]->early);
    size_t cross = 0;
    for (int s = 1; s < STEPS; s++) {
        size_t on[2] = { 0, 0 };
        for (int i = 0; i < WIDTH; i++) {
            task *t = x[s][i];
            assert_early_on(t, t->on);
            on[t->on == w[1]]++;
            /* one push for each dependency running on the other worker, none for the others */
            for (size_t k = 0; k < t->ndeps; k++) {
                task *d = t->deps[k];
                cr_assert_eq(d->state, T_PROCESSING);
                if (d->on == t->on) {
                    cr_assert_eq(pushes(d->key, NULL, t->on), 0, "%s -> %s: same worker", d->key,
                                 t->key);
                } else {
                    cr_assert_eq(pushes(d->key, d->on, t->on), 1, "%s -> %s on %s", d->key, t->key,
                                 t->on->name);
                    cr_assert(push_to(d, t->on));
                }
            }
        }
        cr_assert(on[0] >= WIDTH / 4 && on[1] >= WIDTH / 4,
                  "step %d: %zu tasks on w1, %zu on w2: piled on one", s, on[0], on[1]);
    }
    /* every push is one of those edges, once per (key, target) */
    for (size_t i = 0; i < L.n; i++) {
        fx_rec *r = &L.r[i];
        if (r->kind != FX_PUSH)
            continue;
        task *d = graph_task(&g, r->key);
        cr_assert(d && d->on == r->w && r->to != r->w, "push of %s", r->key);
        cr_assert_eq(pushes(r->key, r->w, r->to), 1, "%s pushed twice to %s", r->key, r->to->name);
        bool needed = false;
        for (size_t k = 0; k < d->dependents.n; k++)
            needed |= DEPENDENT(d, k)->on == r->to;
        cr_assert(needed, "%s pushed to %s, where nothing needs it", r->key, r->to->name);
        cross++;
    }
    cr_assert_eq(cross, L.counts[FX_PUSH]);
    cr_assert_gt(cross, 0);
    cr_assert_leq(4 * cross, edges, "%zu of %zu edges cross workers: no locality", cross, edges);
    cr_assert_eq(g.nearly, (size_t)(STEPS - 1) * WIDTH);

    /* run it, step by step: each result, then its pushes land (reported "added") */
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < WIDTH; i++) {
            task *t = x[s][i];
            worker *on = t->on;
            cr_assert_eq(t->state, T_PROCESSING);
            done(on, t->key, 8);
            cr_assert(t->state == T_MEMORY && holds(t, on));
        }
        for (size_t i = 0; i < L.n; i++) {
            fx_rec r = L.r[i];
            task *d = graph_task(&g, r.key);
            if (r.kind == FX_PUSH && d && d->state == T_MEMORY && !holds(d, r.to))
                added(r.to, r.key);
        }
    }
    /* every result is held where it ran and where it was pushed; nothing awaited any more */
    for (size_t i = 0; i < L.n; i++) {
        fx_rec *r = &L.r[i];
        if (r->kind == FX_PUSH) {
            task *d = graph_task(&g, r->key);
            cr_assert(holds(d, r->to) && holds(d, r->w), "%s", r->key);
        }
    }
    for (int s = 0; s < STEPS; s++)
        for (int i = 0; i < WIDTH; i++)
            cr_assert_null(x[s][i]->push);
    cr_assert_eq(g.nearly, 0);
    cr_assert_eq(L.counts[FX_FREE], 0);
    /* the client leaves: every copy is freed, on both workers */
    graph_client_gone(&g, &A);
    after();
    cr_assert_eq(terni_keytab_count(&g.tasks), 0);
    cr_assert_eq(w[0]->nkeys + w[1]->nkeys, 0);
    for (size_t i = 0; i < L.n; i++) {
        fx_rec *r = &L.r[i];
        if (r->kind == FX_PUSH)
            cr_assert(freed_on(r->key, r->w) && freed_on(r->key, r->to), "%s", r->key);
    }
}

/* Two consumers on one worker of one producer elsewhere: one push. */
Test(push, one_push_per_key_and_target)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1);
    one_result(w1, 8);
    task *a = submit_on("a", NULL, "w1");
    task *b = submit_on("b", "a", "w2");
    task *c = submit_on("c", "a", "w2");
    task *e = submit_on("e", "a", "w1");
    assert_early_on(b, w2);
    assert_early_on(c, w2);
    assert_early_on(e, w1);
    cr_assert_eq(L.counts[FX_PUSH], 1);
    cr_assert_eq(pushes("a", w1, w2), 1);
    cr_assert(push_to(a, w2) && a->push->from == w1);
}

/* ---- "added" before and after the producer's "done" ------------------------------------- */

/* The push overtakes the producer's "done": confirmed, not counted (a still runs), then counted
 * when "done" arrives, and freed with a on both workers. */
Test(push, added_before_done_is_counted_when_done_arrives)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1);
    one_result(w1, 8);
    task *a = submit_on("a", NULL, "w1");
    task *b = submit_on("b", "a", "w2");
    assert_early_on(b, w2);
    cr_assert_eq(pushes("a", w1, w2), 1);
    added(w2, "a");
    cr_assert_eq(a->state, T_PROCESSING);
    cr_assert(push_got(a, w2), "confirmed");
    cr_assert_eq(a->who.n, 0);
    cr_assert_eq(w2->nkeys, 0, "not counted before a is done");
    cr_assert_eq(L.counts[FX_FREE], 0, "kept");
    done(w1, "a", 8);
    cr_assert_eq(a->state, T_MEMORY);
    cr_assert(holds(a, w1) && holds(a, w2), "both holders counted");
    cr_assert_eq(w2->nkeys, 1);
    cr_assert_null(a->push, "nothing awaited any more");
    assert_early_on(b, w2); /* runs on: not placed again */
    cr_assert_eq(fx_count(&L, FX_COMPUTE, "b"), 1);
    done(w2, "b", 8);
    release("a"); /* kept as b's lineage, its data freed */
    cr_assert_eq(a->state, T_RELEASED);
    cr_assert(freed_on("a", w1) && freed_on("a", w2), "freed on both holders");
    release("b");
    cr_assert_null(graph_task(&g, "a"));
    cr_assert_eq(w1->nkeys + w2->nkeys, 0);
}

/* The push lands after "done": a normal further copy, counted, and freed with a. */
Test(push, added_after_done_is_a_further_copy)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1);
    one_result(w1, 8);
    task *a = submit_on("a", NULL, "w1");
    task *b = submit_on("b", "a", "w2");
    done(w1, "a", 8);
    cr_assert(a->state == T_MEMORY && holds(a, w1) && !holds(a, w2));
    cr_assert(push_to(a, w2), "still awaited");
    assert_early_on(b, w2);
    added(w2, "a");
    cr_assert(holds(a, w2));
    cr_assert_null(a->push);
    done(w2, "b", 8);
    graph_client_gone(&g, &A);
    after();
    cr_assert(freed_on("a", w1) && freed_on("a", w2));
}

/* The consumer is cancelled while the push is on its way: the copy that lands is still a copy of
 * a key in memory, so it is counted (and freed with it). */
Test(push, added_for_a_cancelled_consumer_is_counted_while_the_key_is_kept)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1);
    one_result(w1, 8);
    task *a = submit_on("a", NULL, "w1");
    submit_on("b", "a", "w2");
    done(w1, "a", 8);
    graph_cancel(&g, &A, "b");
    after();
    cr_assert_null(graph_task(&g, "b"));
    cr_assert(cancelled_on("b", w2));
    added(w2, "a");
    cr_assert(holds(a, w2));
    cr_assert(!freed_on("a", w2));
    release("a");
    cr_assert(freed_on("a", w1) && freed_on("a", w2));
    cr_assert_eq(w1->nkeys + w2->nkeys, 0);
}

/* The push lands after its key was released and forgotten: freed. */
Test(push, added_after_release_is_freed)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1);
    one_result(w1, 8);
    submit_on("a", NULL, "w1");
    submit_on("b", "a", "w2");
    done(w1, "a", 8);
    graph_cancel(&g, &A, "b");
    after();
    release("a");
    cr_assert_null(graph_task(&g, "a"));
    cr_assert(freed_on("a", w1));
    cr_assert(!freed_on("a", w2), "w2 does not hold it yet");
    added(w2, "a");
    cr_assert(freed_on("a", w2), "the late copy is dropped");
    cr_assert_eq(w1->nkeys + w2->nkeys, 0);
}

/* A late copy of a key kept only as lineage (released): freed. */
Test(push, added_while_released_is_freed)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1);
    one_result(w1, 8);
    task *a = submit_on("a", NULL, "w1");
    task *b = submit_on("b", "a", "w2");
    done(w1, "a", 8);
    push_failed(w1, "a", w2); /* placed again: b fetches a from w1 */
    cr_assert(b->state == T_PROCESSING && !b->early && b->on == w2);
    done(w2, "b", 8);
    release("a"); /* b's record keeps a's */
    cr_assert_eq(a->state, T_RELEASED);
    cr_assert(freed_on("a", w1));
    added(w2, "a"); /* a retried put of the push that was reported failed */
    cr_assert(freed_on("a", w2));
    cr_assert_eq(a->state, T_RELEASED);
    cr_assert_eq(w2->nkeys, 1, "b only");
}

/* ---- a push that fails ------------------------------------------------------------------- */

/* After its producer's "done": only the consumer waiting on that worker is placed again (not
 * early: its input is in memory, fetched from its holder), and runs. */
Test(push, push_failed_requeues_only_the_consumer_waiting_there)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1), *w3 = join("w3", 1);
    one_result(w1, 8);
    task *a = submit_on("a", NULL, "w1");
    task *b = submit_on("b", "a", "w2");
    task *c = submit_on("c", "a", "w3");
    task *e = submit_on("e", "a", "w1");
    assert_early_on(b, w2);
    assert_early_on(c, w3);
    assert_early_on(e, w1);
    cr_assert(pushes("a", w1, w2) == 1 && pushes("a", w1, w3) == 1);
    int64_t brun = b->attempt, crun = c->attempt, erun = e->attempt;
    done(w1, "a", 8);
    fx_clear(&L);
    push_failed(w1, "a", w2);
    cr_assert(cancelled_on("b", w2));
    cr_assert_eq(b->state, T_PROCESSING);
    cr_assert(!b->early && b->on == w2 && b->attempt != brun, "placed again, normally");
    fx_rec *cb = fx_find(&L, FX_COMPUTE, "b");
    cr_assert(cb && cb->w == w2 && !cb->early);
    cr_assert(graph_present(a) && holds(a, w1), "to fetch from w1");
    cr_assert(!push_to(a, w2));
    /* the others wait on */
    assert_early_on(c, w3);
    cr_assert(c->attempt == crun && e->attempt == erun && e->early);
    cr_assert(!cancelled_on("c", w3) && !cancelled_on("e", w1));
    cr_assert(push_to(a, w3));
    cr_assert_eq(L.counts[FX_PUSH], 0, "not asked again");
    done(w2, "b", 8);
    cr_assert_eq(b->state, T_MEMORY);
    added(w3, "a");
    done(w3, "c", 8);
    done(w1, "e", 8);
    cr_assert(c->state == T_MEMORY && e->state == T_MEMORY);
    cr_assert_eq(g.nearly, 0);
}

/* Before its producer's "done": the consumer goes back to waiting, and is placed (not early)
 * when the producer finishes. */
Test(push, push_failed_before_done_makes_the_consumer_wait)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1);
    one_result(w1, 8);
    task *a = submit_on("a", NULL, "w1");
    task *b = submit_on("b", "a", "w2");
    assert_early_on(b, w2);
    fx_clear(&L);
    push_failed(w1, "a", w2);
    cr_assert(cancelled_on("b", w2));
    cr_assert(!push_to(a, w2));
    cr_assert_eq(b->state, T_WAITING);
    cr_assert_eq(b->nwaiting, 1);
    cr_assert_eq(g.nearly, 0);
    done(w1, "a", 8);
    cr_assert(b->state == T_PROCESSING && b->on == w2 && !b->early);
    cr_assert_eq(L.counts[FX_PUSH], 0);
    done(w2, "b", 8);
    cr_assert_eq(b->state, T_MEMORY);
}

/* Reports that change nothing: the target holds it already, or is gone (NULL), or the key is
 * unknown, or nothing was pushed. */
Test(push, push_failed_that_changes_nothing)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1);
    one_result(w1, 8);
    task *a = submit_on("a", NULL, "w1");
    task *b = submit_on("b", "a", "w2");
    done(w1, "a", 8);
    added(w2, "a");
    fx_clear(&L);
    push_failed(w1, "a", w2); /* a duplicate put failed; the first landed */
    push_failed(w1, "a", NULL);
    push_failed(w1, "nope", w2);
    push_failed(w1, "b", w1);
    assert_early_on(b, w2);
    cr_assert_eq(L.n, 0, "no effect");
    cr_assert(holds(a, w2));
}

/* ---- the producer's worker is lost -------------------------------------------------------- */

/* After "done", with one push confirmed and one not: the consumer whose push never comes is
 * placed again (fetching from the confirmed copy); the other runs on. */
Test(push, producer_lost_after_done_requeues_the_consumer_still_waiting)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1), *w3 = join("w3", 1);
    one_result(w1, 8);
    task *a = submit_on("a", NULL, NULL);
    cr_assert_eq(a->on, w1);
    task *b = submit_on("b", "a", "w2");
    task *c = submit_on("c", "a", "w3");
    int64_t brun = b->attempt, crun = c->attempt;
    added(w2, "a");
    done(w1, "a", 8);
    cr_assert(holds(a, w1) && holds(a, w2) && push_to(a, w3));
    fx_clear(&L);
    lose(w1);
    cr_assert_eq(a->state, T_MEMORY, "a copy is left on w2: not lost");
    cr_assert(holds(a, w2));
    cr_assert_null(fx_find(&L, FX_RECOMPUTING, "a"));
    cr_assert(!freed_on("a", w2));
    cr_assert_null(a->push);
    cr_assert(cancelled_on("c", w3));
    cr_assert(c->state == T_PROCESSING && c->on == w3 && !c->early && c->attempt != crun);
    assert_early_on(b, w2);
    cr_assert_eq(b->attempt, brun);
    cr_assert(!cancelled_on("b", w2));
    done(w2, "b", 8);
    done(w3, "c", 8);
    cr_assert(b->state == T_MEMORY && c->state == T_MEMORY);
}

/* Before "done" (the producer is requeued): every early dependent, on any worker, goes back to
 * waiting and is cancelled there; the copy confirmed ahead of "done" is freed; once the
 * producer runs again, they are placed early again, with pushes from its new worker. */
Test(push, producer_lost_before_done_requeues_all_early_dependents)
{
    worker *w1 = join("w1", 1);
    one_result(w1, 8);
    task *a = submit_on("a", NULL, NULL);
    int64_t arun = a->attempt;
    worker *w2 = join("w2", 1), *w3 = join("w3", 1);
    task *b = submit_on("b", "a", "w2");
    task *c = submit_on("c", "a", "w3");
    task *e = submit_on("e", "a", "w1");
    assert_early_on(b, w2);
    assert_early_on(c, w3);
    assert_early_on(e, w1);
    int64_t brun = b->attempt, crun = c->attempt;
    added(w2, "a");
    cr_assert(push_got(a, w2));
    fx_clear(&L);
    lose(w1);
    cr_assert(freed_on("a", w2), "the confirmed copy of the lost run is dropped");
    cr_assert(cancelled_on("b", w2) && cancelled_on("c", w3));
    cr_assert_eq(a->state, T_PROCESSING);
    cr_assert(a->on == w2 || a->on == w3);
    cr_assert_neq(a->attempt, arun);
    worker *other = a->on == w2 ? w3 : w2;
    task *mine = a->on == w2 ? b : c, *theirs = a->on == w2 ? c : b;
    assert_early_on(mine, a->on);
    assert_early_on(theirs, other);
    cr_assert(b->attempt != brun && c->attempt != crun);
    cr_assert_eq(L.counts[FX_PUSH], 1);
    cr_assert_eq(pushes("a", a->on, other), 1);
    cr_assert(a->push && a->push->from == a->on && !push_got(a, w2));
    cr_assert_eq(e->state, T_WAITING, "e was placed on w1 only: it waits for a w1");
    done(a->on, "a", 8);
    added(other, "a");
    done(w2, "b", 8);
    done(w3, "c", 8);
    cr_assert(b->state == T_MEMORY && c->state == T_MEMORY);
}

/* The consumer's worker is lost: the push to it is no longer awaited, nor the copy confirmed
 * there counted; the consumer is placed again elsewhere. */
Test(push, consumer_lost_forgets_the_push_to_it)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1);
    one_result(w1, 8);
    char r[32];
    for (int i = 0; i < 10; i++) { /* w1's queue: b is better off elsewhere */
        snprintf(r, sizeof(r), "r%d", i);
        submit_on(r, NULL, "w1");
    }
    task *a = submit_on("a", NULL, "w1");
    task *b = submit_on("b", "a", NULL);
    assert_early_on(b, w2);
    cr_assert_eq(pushes("a", w1, w2), 1);
    worker *w3 = join("w3", 1);
    added(w2, "a");
    cr_assert(push_got(a, w2));
    lose(w2);
    cr_assert(!push_to(a, w2) && !push_got(a, w2));
    cr_assert(b->state == T_WAITING ||
                  (b->state == T_PROCESSING && b->early && b->on == w3 && push_to(a, w3)),
              "b is %s", graph_state_names[b->state]);
    done(w1, "a", 8);
    cr_assert(holds(a, w1) && a->who.n == 1, "the lost worker's copy is not counted");
    cr_assert_eq(b->state, T_PROCESSING);
    cr_assert(b->on == w1 || b->on == w3);
}

/* ---- errors -------------------------------------------------------------------------------- */

/* The producer errs: its early dependents on other workers err too, are cancelled there, and
 * a copy confirmed for them is freed. */
Test(push, erred_producer_errs_and_cancels_its_early_dependents_elsewhere)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1), *w3 = join("w3", 1);
    one_result(w1, 8);
    task *a = submit_on("a", NULL, "w1");
    task *b = submit_on("b", "a", "w2");
    task *c = submit_on("c", "a", "w3");
    task *d = submit_on("d", "b", "w2"); /* early after b, on b's worker */
    assert_early_on(b, w2);
    assert_early_on(c, w3);
    assert_early_on(d, w2);
    added(w3, "a");
    fx_clear(&L);
    erred(w1, "a");
    cr_assert_eq(a->state, T_ERRED);
    for (const char *const *k = (const char *const[]){ "b", "c", "d", NULL }; *k; k++) {
        task *t = graph_task(&g, *k);
        cr_assert_eq(t->state, T_ERRED, "%s", *k);
        fx_rec *e = fx_find(&L, FX_ERRED, *k);
        cr_assert(e && !strcmp(e->root, "a") && e->code == TERN_ETASK, "%s", *k);
    }
    cr_assert(cancelled_on("b", w2) && cancelled_on("c", w3) && cancelled_on("d", w2));
    cr_assert(freed_on("a", w3), "the confirmed copy is dropped");
    cr_assert_null(a->push);
    cr_assert_eq(g.nearly, 0);
    cr_assert_eq(w1->nprocessing + w2->nprocessing + w3->nprocessing, 0);
}

/* ---- the budget and large results ---------------------------------------------------------- */

/* One worker with one thread: at most EARLY_PER_THREAD tasks early; the rest wait in the
 * deferred list, first come first placed, once a quarter of the budget is free again (and new
 * candidates queue behind them meanwhile); one whose input is done is placed at once. */
Test(push, budget_defers_early_placement_beyond_the_threads)
{
    enum { BUDGET = EARLY_PER_THREAD, REFILL = BUDGET / 4, N = BUDGET + 8 };
    worker *w = join("w1", 1);
    one_result(w, 8);
    char a[32], b[32];
    for (int i = 0; i < N + 1; i++) {
        snprintf(a, sizeof(a), "a%d", i);
        submit_on(a, NULL, NULL);
    }
    for (int i = 0; i < N; i++) {
        snprintf(a, sizeof(a), "a%d", i);
        snprintf(b, sizeof(b), "b%d", i);
        task *t = submit_on(b, a, NULL);
        cr_assert_eq(t->state, i < BUDGET ? T_PROCESSING : T_WAITING, "%s", b);
        cr_assert_eq(t->deferred, i >= BUDGET, "%s", b);
    }
    cr_assert_eq(g.nearly, BUDGET);
    cr_assert_eq(ndeferred(), N - BUDGET);
    task *first = TERNI_CONTAINER_OF(terni_list_first(&g.deferred), task, in_deferred);
    snprintf(b, sizeof(b), "b%d", BUDGET);
    cr_assert_str_eq(first->key, b);
    done(w, "a0", 8);
    done(w, "b0", 8);
    cr_assert_eq(g.nearly, BUDGET - 1);
    cr_assert_eq(ndeferred(), N - BUDGET, "not refilled before a quarter is free");
    /* a new candidate queues behind those deferred before it, though the budget has room */
    snprintf(a, sizeof(a), "a%d", N);
    task *late = submit_on("late", a, NULL);
    cr_assert(late->deferred);
    cr_assert_eq(ndeferred(), N - BUDGET + 1);
    /* the input of the last deferred one finishes: placed (not early) at once, out of the list */
    snprintf(a, sizeof(a), "a%d", N - 1);
    snprintf(b, sizeof(b), "b%d", N - 1);
    done(w, a, 8);
    task *last = graph_task(&g, b);
    cr_assert(last->state == T_PROCESSING && !last->early && !last->deferred);
    cr_assert_eq(ndeferred(), N - BUDGET);
    /* one is cancelled by its client: out of the list too */
    snprintf(b, sizeof(b), "b%d", BUDGET + 1);
    graph_cancel(&g, &A, b);
    after();
    cr_assert_null(graph_task(&g, b));
    cr_assert_eq(ndeferred(), N - BUDGET - 1);
    /* early ones finish: once a quarter of the budget is free, the rest is placed early, in
     * order, up to the budget */
    for (int i = 1; i < REFILL; i++) {
        snprintf(a, sizeof(a), "a%d", i);
        snprintf(b, sizeof(b), "b%d", i);
        done(w, a, 8);
        done(w, b, 8);
        cr_assert_eq(ndeferred(), i + 1 < REFILL ? N - BUDGET - 1 : 0, "after %s", b);
    }
    cr_assert_eq(g.nearly, BUDGET - REFILL + (N - BUDGET - 1));
    for (int i = BUDGET; i < N - 1; i++) {
        snprintf(b, sizeof(b), "b%d", i);
        task *t = graph_task(&g, b);
        cr_assert(i == BUDGET + 1 ? !t : t->state == T_PROCESSING && t->early, "%s", b);
    }
    assert_early_on(late, w);
}

/* A second worker raises the budget: the deferred ones are placed early at the next event. */
Test(push, budget_grows_with_the_threads_of_the_workers)
{
    enum { BUDGET = EARLY_PER_THREAD, N = BUDGET + 100 };
    worker *w1 = join("w1", 1);
    one_result(w1, 8);
    char a[32], b[32];
    for (int i = 0; i < N; i++) {
        snprintf(a, sizeof(a), "a%d", i);
        submit_on(a, NULL, "w1");
        snprintf(b, sizeof(b), "b%d", i);
        submit_on(b, a, "w1");
    }
    cr_assert_eq(g.nearly, BUDGET);
    cr_assert_eq(ndeferred(), N - BUDGET);
    join("w2", 1);
    snprintf(a, sizeof(a), "a%d", N - 1);
    done(w1, a, 8); /* any event: its dependent is placed, the deferred ones early */
    cr_assert_eq(ndeferred(), 0);
    cr_assert_eq(g.nearly, N - 1);
}

/* A symbol known to give large results: its dependents wait for its real size (placed knowing
 * it; they may take it), nothing is pushed. */
Test(push, a_symbol_known_large_is_not_placed_early)
{
    worker *w1 = join("w1", 1), *w2 = join("w2", 1);
    one_result(w1, 1 << 20);
    task *a = submit_on("a", NULL, "w1");
    task *b = submit_on("b", "a", "w2");
    task *c = submit_on("c", "a", NULL);
    cr_assert(b->state == T_WAITING && c->state == T_WAITING);
    cr_assert(!b->deferred && !c->deferred);
    cr_assert_eq(g.nearly, 0);
    cr_assert_eq(L.counts[FX_PUSH], 0);
    cr_assert_null(a->push);
    done(w1, "a", 1 << 20);
    cr_assert(b->state == T_PROCESSING && !b->early && b->on == w2);
    cr_assert(c->state == T_PROCESSING && !c->early);
    cr_assert_eq(L.counts[FX_PUSH], 0);
}
