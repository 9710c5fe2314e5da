/* The graph engine (runtime/scheduler/graph.h) without sockets: each transition as a table of
 * events and the effects they must record, and deep graphs that a recursive engine could not
 * survive (run with the default 8 MiB stack, in the sanitizer build too). */
#include "graph_harness.h"

#include "runtime/scheduler/early.h"

static graph g;
static fx_log L;
static client A, B;

static void setup(void)
{
    cr_assert_eq(graph_init(&g, &recording, &L), 0);
    memset(&A, 0, sizeof(A));
    memset(&B, 0, sizeof(B));
}

static void teardown(void)
{
    free_graph_and_workers(&g, &L);
}

TestSuite(graph, .init = setup, .fini = teardown);

static void done(worker *w, const char *key, int64_t nbytes)
{
    graph_done(&g, w, key, nbytes, NULL, 0, 10);
    graph_flush(&g);
    check_graph(&g);
}

Test(graph, ready_task_is_placed_and_finishes)
{
    worker *w = mk_worker(&g, "w1", 1);
    task *t = submit1(&g, &A, "a", NULL);
    check_graph(&g);
    cr_assert_eq(t->state, T_PROCESSING);
    fx_rec *c = fx_find(&L, FX_COMPUTE, "a");
    cr_assert(c && c->w == w && !c->early && c->attempt == 1);
    cr_assert_eq(A.npending, 1);
    done(w, "a", 8);
    cr_assert_eq(t->state, T_MEMORY);
    cr_assert_not_null(fx_find(&L, FX_FINISHED, "a"));
    cr_assert_eq(A.npending, 0);
    cr_assert_eq(w->nkeys, 1);
}

Test(graph, no_worker_then_a_worker_joins)
{
    task *t = submit1(&g, &A, "a", NULL);
    cr_assert_eq(t->state, T_NO_WORKER);
    check_graph(&g);
    mk_worker(&g, "w1", 1);
    cr_assert_eq(t->state, T_PROCESSING);
    check_graph(&g);
}

/* p:f (the symbol of every task of these tests) gives one result of nbytes. */
static void one_result(worker *w, int64_t nbytes)
{
    submit1(&g, &A, "sym", NULL);
    graph_done(&g, w, "sym", nbytes, NULL, 0, 10);
    graph_release(&g, &A, "sym");
    graph_flush(&g);
    check_graph(&g);
    cr_assert_null(graph_task(&g, "sym"));
}

/* p:f is known to give large results: dependents of a running p:f task wait for its real size
 * (placed knowing it, and may take it) instead of being placed early. */
static void large_symbol(worker *w)
{
    one_result(w, 1 << 20);
}

/* p:f is known to give small results: dependents of a running p:f task are placed early. */
static void small_symbol(worker *w)
{
    one_result(w, 8);
}

Test(graph, dependent_waits_then_runs)
{
    worker *w = mk_worker(&g, "w1", 1);
    large_symbol(w);
    fx_clear(&L);
    submit1(&g, &A, "a", NULL);
    task *b = submit1(&g, &A, "b", "a");
    check_graph(&g);
    /* a's symbol gives large results: no early placement, b waits (not deferred) */
    cr_assert_eq(b->state, T_WAITING);
    cr_assert_eq(b->nwaiting, 1);
    cr_assert(!b->deferred);
    cr_assert_eq(g.nearly, 0);
    cr_assert_null(fx_find(&L, FX_COMPUTE, "b"));
    done(w, "a", 8);
    cr_assert_eq(b->state, T_PROCESSING);
    fx_rec *c = fx_find(&L, FX_COMPUTE, "b");
    cr_assert(c && c->w == w && !c->early);
    cr_assert(!b->early);
    cr_assert_eq(L.counts[FX_PUSH], 0);
}

Test(graph, dependent_of_a_running_task_is_placed_early_where_it_runs)
{
    worker *w = mk_worker(&g, "w1", 1);
    small_symbol(w);
    task *a = submit1(&g, &A, "a", NULL);
    task *b = submit1(&g, &A, "b", "a");
    check_graph(&g);
    /* a's symbol gives small results: b goes to a's worker at once, to start after a there */
    cr_assert_eq(b->state, T_PROCESSING);
    cr_assert(b->early && b->on == w);
    fx_rec *c = fx_find(&L, FX_COMPUTE, "b");
    cr_assert(c && c->w == w && c->early);
    cr_assert_eq(g.nearly, 1);
    cr_assert_eq(L.counts[FX_PUSH], 0, "a runs where b waits: nothing to push");
    cr_assert_null(a->push);
    done(w, "a", 8);
    cr_assert_eq(a->state, T_MEMORY);
    cr_assert_eq(b->state, T_PROCESSING, "b runs on, not placed again");
    cr_assert_eq(fx_count(&L, FX_COMPUTE, "b"), 1);
    done(w, "b", 8);
    cr_assert_eq(b->state, T_MEMORY);
    cr_assert_eq(g.nearly, 0);
}

Test(graph, early_placement_after_small_results)
{
    worker *w = mk_worker(&g, "w1", 1);
    submit1(&g, &A, "x", NULL);
    done(w, "x", 8); /* p:f has now given a small result */
    submit1(&g, &A, "a", NULL);
    task *b = submit1(&g, &A, "b", "a");
    check_graph(&g);
    cr_assert_eq(b->state, T_PROCESSING);
    cr_assert(b->early);
    cr_assert(fx_find(&L, FX_COMPUTE, "b")->early);
    /* a fails: b is cancelled on its worker and errs naming a */
    graph_erred(&g, w, "a", TERN_ETASK, "boom", -1);
    graph_flush(&g);
    check_graph(&g);
    cr_assert_eq(b->state, T_ERRED);
    cr_assert_not_null(fx_find(&L, FX_CANCEL, "b"));
    fx_rec *e = fx_find(&L, FX_ERRED, "b");
    cr_assert(e && !strcmp(e->root, "a"));
}

Test(graph, error_names_the_root_once_whatever_the_depth)
{
    worker *w = mk_worker(&g, "w1", 1);
    char key[32], prev[32];
    submit1(&g, &A, "k0", NULL);
    for (int i = 1; i < 50; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(prev, sizeof(prev), "k%d", i - 1);
        submit1(&g, &A, key, prev);
    }
    char msg[1000];
    memset(msg, 'm', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    graph_erred(&g, w, "k0", TERN_ETASK, msg, -1);
    graph_flush(&g);
    check_graph(&g);
    fx_rec *e = fx_find(&L, FX_ERRED, "k49");
    cr_assert_not_null(e);
    cr_assert_str_eq(e->root, "k0");
    cr_assert_eq(e->code, TERN_ETASK);
    cr_assert(strstr(e->msg, msg), "the root's own message is cut: %.80s...", e->msg);
    cr_assert_null(strstr(e->msg, "dependency"), "the message is the root's own");
    cr_assert_eq(graph_task(&g, "k49")->err, graph_task(&g, "k1")->err, "one shared record");
}

Test(graph, release_forgets_and_frees_on_the_worker)
{
    worker *w = mk_worker(&g, "w1", 1);
    submit1(&g, &A, "a", NULL);
    done(w, "a", 8);
    graph_release(&g, &A, "a");
    graph_flush(&g);
    check_graph(&g);
    cr_assert_null(graph_task(&g, "a"));
    cr_assert_not_null(fx_find(&L, FX_FREE, "a"));
    cr_assert_eq(w->nkeys, 0);
}

Test(graph, released_lineage_is_kept_and_recomputed_when_submitted_again)
{
    worker *w = mk_worker(&g, "w1", 1);
    submit1(&g, &A, "a", NULL);
    submit1(&g, &A, "b", "a");
    done(w, "a", 8);
    done(w, "b", 8);
    graph_release(&g, &A, "a");
    graph_flush(&g);
    check_graph(&g);
    cr_assert_eq(graph_task(&g, "a")->state, T_RELEASED, "kept as b's lineage");
    fx_clear(&L);
    submit1(&g, &A, "a", NULL);
    check_graph(&g);
    cr_assert_eq(graph_task(&g, "a")->state, T_PROCESSING);
    cr_assert_not_null(fx_find(&L, FX_COMPUTE, "a"));
}

Test(graph, resubmitting_an_erred_key_after_its_release_runs_it_again)
{
    worker *w = mk_worker(&g, "w1", 1);
    submit1(&g, &A, "a", NULL);
    graph_erred(&g, w, "a", TERN_ETASK, "flaky", -1);
    graph_flush(&g);
    /* release and submit again in one batch (before the flush) */
    graph_release(&g, &A, "a");
    fx_clear(&L);
    task *t = submit1(&g, &A, "a", NULL);
    check_graph(&g);
    cr_assert_eq(t->state, T_PROCESSING, "the old error came back: %s",
                 graph_state_names[t->state]);
    cr_assert_null(fx_find(&L, FX_ERRED, "a"));
    done(w, "a", 8);
    cr_assert_not_null(fx_find(&L, FX_FINISHED, "a"));
}

Test(graph, resubmitting_an_erred_key_kept_as_lineage_runs_it_again)
{
    worker *w = mk_worker(&g, "w1", 1);
    submit1(&g, &A, "a", NULL);
    submit1(&g, &A, "b", "a");
    graph_erred(&g, w, "a", TERN_ETASK, "flaky", -1);
    graph_flush(&g);
    graph_release(&g, &A, "a"); /* b's record keeps a's */
    graph_flush(&g);
    check_graph(&g);
    cr_assert_eq(graph_task(&g, "a")->state, T_ERRED);
    task *t = submit1(&g, &A, "a", NULL);
    check_graph(&g);
    cr_assert_eq(t->state, T_PROCESSING);
}

Test(graph, an_erred_key_someone_holds_stays_erred)
{
    worker *w = mk_worker(&g, "w1", 1);
    submit1(&g, &A, "a", NULL);
    graph_erred(&g, w, "a", TERN_ETASK, "bad", -1);
    graph_flush(&g);
    fx_clear(&L);
    task *t = submit1(&g, &B, "a", NULL);
    check_graph(&g);
    cr_assert_eq(t->state, T_ERRED);
    fx_rec *e = fx_find(&L, FX_ERRED, "a");
    cr_assert(e && e->c == &B);
}

Test(graph, cancel_by_one_client_leaves_another_clients_task)
{
    worker *w = mk_worker(&g, "w1", 1);
    task *t = submit1(&g, &A, "a", NULL);
    submit1(&g, &B, "a", NULL);
    graph_cancel(&g, &A, "a");
    graph_flush(&g);
    check_graph(&g);
    cr_assert_eq(t->state, T_PROCESSING, "B still wants it");
    cr_assert_eq(fx_count(&L, FX_CANCEL, "a"), 0);
    fx_rec *e = fx_find(&L, FX_ERRED, "a");
    cr_assert(e && e->c == &A && e->code == TERN_ECANCELED);
    done(w, "a", 8);
    fx_rec *f = fx_find(&L, FX_FINISHED, "a");
    cr_assert(f && f->c == &B);
}

Test(graph, cancel_stops_a_task_no_one_else_wants_and_its_dependents)
{
    worker *w = mk_worker(&g, "w1", 1);
    submit1(&g, &A, "slow", NULL);
    submit1(&g, &A, "dep", "slow");
    submit1(&g, &A, "dep2", "dep");
    submit1(&g, &B, "other", "dep"); /* B's dependent keeps dep needed */
    graph_cancel(&g, &A, "dep");
    graph_flush(&g);
    check_graph(&g);
    fx_rec *e = fx_find(&L, FX_ERRED, "dep2");
    cr_assert(e && e->c == &A && e->code == TERN_ECANCELED && !strcmp(e->root, "dep"));
    cr_assert_null(graph_task(&g, "dep2"), "no one wants dep2: forgotten");
    cr_assert_not_null(graph_task(&g, "dep"), "B's task needs dep");
    graph_cancel(&g, &B, "other");
    graph_flush(&g);
    check_graph(&g);
    cr_assert_null(graph_task(&g, "dep"));
    cr_assert_eq(graph_task(&g, "slow")->state, T_PROCESSING, "A still wants slow");
    (void)w;
}

Test(graph, worker_loss_requeues_and_recomputes)
{
    worker *w1 = mk_worker(&g, "w1", 1);
    submit1(&g, &A, "a", NULL);
    done(w1, "a", 8);
    worker *w2 = mk_worker(&g, "w2", 1);
    task *b = submit1(&g, &A, "b", "a");
    cr_assert_eq(b->on, w1, "placed where its data is");
    cr_assert(!b->early);
    int64_t first = b->attempt;
    fx_clear(&L);
    graph_worker_lost(&g, w1, "test");
    graph_flush(&g);
    free_worker(w1);
    check_graph(&g);
    task *a = graph_task(&g, "a");
    cr_assert_eq(a->state, T_PROCESSING);
    cr_assert_eq(a->on, w2);
    cr_assert_not_null(fx_find(&L, FX_RECOMPUTING, "a"));
    /* b lacks a again, which runs on w2: b is placed early there, after it (a new run) */
    cr_assert_eq(b->state, T_PROCESSING);
    cr_assert(b->early && b->on == w2);
    fx_rec *c = fx_find(&L, FX_COMPUTE, "b");
    cr_assert(c && c->w == w2 && c->early && c->attempt == b->attempt && b->attempt != first);
    cr_assert_eq(L.counts[FX_PUSH], 0, "a runs where b waits");
    cr_assert_eq(L.counts[FX_CANCEL], 0, "nothing to cancel on a worker that left");
    done(w2, "a", 8);
    cr_assert_eq(a->state, T_MEMORY);
    cr_assert_eq(b->state, T_PROCESSING);
    cr_assert_eq(fx_count(&L, FX_COMPUTE, "b"), 1, "not placed again");
    done(w2, "b", 8);
    cr_assert_eq(b->state, T_MEMORY);
}

Test(graph, scattered_data_lost_errs_its_dependents)
{
    worker *w = mk_worker(&g, "w1", 1);
    graph_scatter(&g, &A, "s");
    graph_added(&g, w, "s", 8);
    graph_flush(&g);
    check_graph(&g);
    submit1(&g, &A, "b", "s");
    graph_worker_lost(&g, w, "test");
    graph_flush(&g);
    free_worker(w);
    check_graph(&g);
    fx_rec *e = fx_find(&L, FX_ERRED, "b");
    cr_assert(e && e->code == TERN_ELOST && !strcmp(e->root, "s"));
}

Test(graph, take_releases_the_dependency_and_a_retry_recomputes_it)
{
    worker *w = mk_worker(&g, "w1", 1);
    large_symbol(w); /* else b is placed early, after x, and cannot take it */
    submit1(&g, &A, "x", NULL);
    graph_release(&g, &A, "x"); /* not wanted: only b needs it */
    task *b = submit1(&g, &A, "b", "x");
    cr_assert_eq(b->state, T_WAITING);
    graph_done(&g, w, "x", 1 << 20, NULL, 0, 10);
    graph_flush(&g);
    check_graph(&g);
    cr_assert_eq(graph_task(&g, "x")->state, T_RELEASED, "taken by b");
    cr_assert_eq(b->state, T_PROCESSING);
    cr_assert(b->took && !b->early);
    cr_assert_eq(w->nkeys, 0, "x moved into b's run");
    b->retries = 1;
    graph_erred(&g, w, "b", TERN_ETASK, "again", -1);
    graph_flush(&g);
    check_graph(&g);
    cr_assert_eq(graph_task(&g, "x")->state, T_PROCESSING, "made again for the retry");
    cr_assert_eq(b->state, T_WAITING);
}

Test(graph, blame_errs_after_allowed_failures)
{
    worker *w = mk_worker(&g, "w1", 1);
    task *t = submit1(&g, &A, "a", NULL);
    for (int i = 0; i < g.allowed_failures; i++)
        graph_blame(&g, w, "a", "was killed by signal 9");
    graph_flush(&g);
    check_graph(&g);
    cr_assert_eq(t->state, T_ERRED);
    fx_rec *e = fx_find(&L, FX_ERRED, "a");
    cr_assert(e && e->code == TERN_EKILLED && strstr(e->msg, "signal 9"));
}

Test(graph, stale_reports_are_ignored)
{
    worker *w = mk_worker(&g, "w1", 1);
    task *t = submit1(&g, &A, "a", NULL);
    graph_erred(&g, w, "a", TERN_ETASK, "old", 0); /* run 0: not the current attempt */
    graph_done(&g, w, "unknown", 8, NULL, 0, 1);
    graph_flush(&g);
    check_graph(&g);
    cr_assert_eq(t->state, T_PROCESSING);
    cr_assert_not_null(fx_find(&L, FX_FREE, "unknown"));
}

/* ---- deep graphs: O(1) C stack ------------------------------------------------------- */

#define DEEP 1000000

static void chain(client *c, size_t n)
{
    char key[32], prev[32];
    submit1(&g, c, "c0", NULL);
    for (size_t i = 1; i < n; i++) {
        snprintf(key, sizeof(key), "c%zu", i);
        snprintf(prev, sizeof(prev), "c%zu", i - 1);
        submit1(&g, c, key, prev);
    }
}

Test(graph, a_million_task_chain_whose_root_errs, .timeout = 300)
{
    L.quiet = true;
    worker *w = mk_worker(&g, "w1", 1);
    chain(&A, DEEP);
    check_graph(&g);
    graph_erred(&g, w, "c0", TERN_ETASK, "root cause", -1);
    graph_flush(&g);
    check_graph(&g);
    cr_assert_eq(L.counts[FX_ERRED], DEEP);
    cr_assert_eq(g.nstate[T_ERRED], DEEP);
    const task_error *e = graph_error_of(graph_task(&g, "c999999"));
    cr_assert_str_eq(e->key, "c0");
    cr_assert(strstr(e->msg, "root cause"));
}

static size_t ndeferred(void)
{
    size_t n = 0;
    TERNI_LIST_EACH (&g.deferred, it)
        n++;
    return n;
}

/* The early placement budget of one worker with one thread; the deferred list is pumped when a
 * quarter of it is free, up to all of it (early.c). */
#define BUDGET EARLY_PER_THREAD
#define REFILL (BUDGET / 4)

Test(graph, cancelling_a_root_with_a_million_waiting_dependents, .timeout = 300)
{
    L.quiet = true;
    small_symbol(mk_worker(&g, "w1", 1));
    submit1(&g, &A, "root", NULL);
    char key[32], prev[32] = "root";
    for (size_t i = 0; i < DEEP; i++) {
        snprintf(key, sizeof(key), "d%zu", i);
        submit1(&g, &A, key, prev);
        memcpy(prev, key, sizeof(key));
    }
    check_graph(&g);
    /* the budget's first tasks are placed early (each after the one before, all on w1); the
     * next, whose dependency runs, waits for the budget; the rest wait for their dependencies */
    cr_assert_eq(g.nearly, BUDGET);
    cr_assert_eq(g.nstate[T_PROCESSING], BUDGET + 1);
    cr_assert_eq(g.nstate[T_WAITING], DEEP - BUDGET);
    cr_assert_eq(ndeferred(), 1);
    snprintf(key, sizeof(key), "d%d", BUDGET - 1);
    cr_assert(graph_task(&g, key)->early);
    snprintf(key, sizeof(key), "d%d", BUDGET);
    cr_assert(graph_task(&g, key)->deferred);
    cr_assert_eq(L.counts[FX_PUSH], 0, "one worker: nothing to push");
    graph_cancel(&g, &A, "root");
    graph_flush(&g);
    check_graph(&g);
    cr_assert_eq(L.counts[FX_ERRED], DEEP + 1);
    cr_assert_eq(terni_keytab_count(&g.tasks), 0, "no one wants any of them: forgotten");
    cr_assert_eq(L.counts[FX_CANCEL], BUDGET + 1,
                 "the root, running, and the tasks placed early after it are stopped on w1");
    cr_assert_eq(A.npending, 0);
    cr_assert_eq(g.nearly, 0);
    cr_assert_eq(ndeferred(), 0);
}

/* Ten thousand running roots with a hundred dependents each: all but the budget's million
 * dependents wait in the deferred list, in submission order; those of a root are placed (not
 * early) when it finishes, and leave the list. */
Test(graph, a_million_dependents_of_running_tasks_are_deferred_then_placed, .timeout = 300)
{
    enum { ROOTS = 10000, FAN = DEEP / ROOTS };
    L.quiet = true;
    worker *w = mk_worker(&g, "w1", 1);
    small_symbol(w);
    memset(L.counts, 0, sizeof(L.counts));
    char key[32], root[32];
    for (size_t r = 0; r < ROOTS; r++) {
        snprintf(root, sizeof(root), "r%zu", r);
        submit1(&g, &A, root, NULL);
    }
    for (size_t r = 0; r < ROOTS; r++)
        for (size_t i = 0; i < FAN; i++) {
            snprintf(root, sizeof(root), "r%zu", r);
            snprintf(key, sizeof(key), "d%zu.%zu", r, i);
            submit1(&g, &A, key, root);
        }
    check_graph(&g);
    cr_assert_eq(g.nearly, BUDGET);
    cr_assert_eq(ndeferred(), DEEP - BUDGET);
    task *first = TERNI_CONTAINER_OF(terni_list_first(&g.deferred), task, in_deferred);
    snprintf(key, sizeof(key), "d%d.%d", BUDGET / FAN, BUDGET % FAN);
    cr_assert_str_eq(first->key, key, "first come, first placed");
    cr_assert_eq(L.counts[FX_COMPUTE], ROOTS + BUDGET);
    for (size_t r = ROOTS; r-- > 0;) { /* the last first: the list's tail goes first */
        snprintf(root, sizeof(root), "r%zu", r);
        graph_done(&g, w, root, 8, NULL, 0, 1);
        graph_flush(&g);
        cr_assert_eq(g.nearly, BUDGET, "those placed early run on");
        if (r % 1000 == 0)
            cr_assert_eq(ndeferred(), r * FAN > BUDGET ? r * FAN - BUDGET : 0);
    }
    check_graph(&g);
    cr_assert_eq(g.nstate[T_PROCESSING], DEEP);
    cr_assert_eq(L.counts[FX_COMPUTE], ROOTS + DEEP, "each placed once");
    cr_assert_eq(w->nprocessing, DEEP);
}

/* A million-task chain on one worker with one thread runs to its end: the budget's tasks run
 * early ahead of the one running, and as they finish the deferred list is pumped (a quarter of
 * the budget at a time), so that every task is placed before its dependency finishes. */
Test(graph, a_million_task_chain_runs_through_the_early_window, .timeout = 300)
{
    L.quiet = true;
    worker *w = mk_worker(&g, "w1", 1);
    small_symbol(w);
    memset(L.counts, 0, sizeof(L.counts));
    chain(&A, DEEP);
    check_graph(&g);
    cr_assert_eq(g.nearly, BUDGET);
    cr_assert_eq(ndeferred(), 1);
    char key[32];
    size_t refills = 0, before = g.nearly;
    for (size_t i = 0; i < DEEP; i++) {
        snprintf(key, sizeof(key), "c%zu", i);
        task *t = graph_task(&g, key);
        cr_assert_eq(t->state, T_PROCESSING, "%s", key);
        cr_assert(i == 0 || t->early, "%s was placed after its dependency finished", key);
        graph_done(&g, w, key, 8, NULL, 0, 1);
        graph_flush(&g);
        cr_assert_eq(t->state, T_MEMORY, "%s", key);
        if (i + BUDGET < DEEP) { /* the window stays between three quarters and all of it */
            cr_assert(g.nearly >= BUDGET - REFILL && g.nearly <= BUDGET, "%zu early", g.nearly);
            cr_assert_leq(ndeferred(), 1);
            refills += g.nearly > before;
        }
        before = g.nearly;
        if (i % 250000 == 0)
            check_graph(&g);
    }
    cr_assert_geq(refills, (DEEP - BUDGET) / REFILL - 1, "refilled a quarter at a time");
    cr_assert_leq(refills, (DEEP - BUDGET) / REFILL + 1);
    check_graph(&g);
    cr_assert_eq(g.nstate[T_MEMORY], DEEP);
    cr_assert_eq(g.nearly, 0);
    cr_assert_eq(ndeferred(), 0);
    cr_assert_eq(L.counts[FX_COMPUTE], DEEP, "each placed once");
    cr_assert_eq(L.counts[FX_FINISHED], DEEP);
}

Test(graph, recomputing_a_100k_deep_lineage_after_its_only_holder_dies, .timeout = 300)
{
    L.quiet = true;
    enum { N = 100000 };
    worker *w1 = mk_worker(&g, "w1", 1);
    char key[32];
    chain(&A, N);
    for (size_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "c%zu", i);
        graph_done(&g, w1, key, 8, NULL, 0, 1);
        if (i + 1 < N)
            graph_release(&g, &A, key); /* only the last is wanted: the rest is lineage */
        graph_flush(&g);
    }
    check_graph(&g);
    cr_assert_eq(g.nstate[T_RELEASED], N - 1);
    worker *w2 = mk_worker(&g, "w2", 1);
    memset(L.counts, 0, sizeof(L.counts));
    graph_worker_lost(&g, w1, "test");
    graph_flush(&g);
    free_worker(w1);
    check_graph(&g);
    cr_assert_eq(graph_task(&g, "c0")->state, T_PROCESSING, "the root runs again");
    cr_assert_eq(g.nstate[T_WAITING] + g.nstate[T_PROCESSING], N, "the whole lineage again");
    cr_assert_leq(g.nearly, BUDGET);
    for (size_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "c%zu", i);
        cr_assert_eq(graph_task(&g, key)->state, T_PROCESSING, "%s", key);
        graph_done(&g, w2, key, 8, NULL, 0, 1);
        graph_flush(&g);
        if (i == N / 2) { /* p:f gives small results: the chain runs ahead early */
            cr_assert(g.nearly >= BUDGET - REFILL && g.nearly <= BUDGET);
            check_graph(&g);
        }
    }
    check_graph(&g);
    cr_assert_eq(graph_task(&g, "c99999")->state, T_MEMORY);
    cr_assert_eq(L.counts[FX_RECOMPUTING], 1);
    cr_assert_eq(L.counts[FX_FINISHED], 1, "the wanted key finished again");
    cr_assert_eq(L.counts[FX_COMPUTE], N, "each placed once");
    cr_assert_eq(L.counts[FX_PUSH], 0, "one worker: nothing to push");
    cr_assert_eq(g.nearly, 0);
    cr_assert_eq(ndeferred(), 0);
}
