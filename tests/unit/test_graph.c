/* The graph engine (runtime/scheduler/graph.h) without sockets: each transition as a table of
 * events and the effects they must record, and deep graphs that a recursive engine could not
 * survive (run with the default 8 MiB stack, in the sanitizer build too). */
#include "graph_harness.h"

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

Test(graph, dependent_waits_then_runs)
{
    worker *w = mk_worker(&g, "w1", 1);
    submit1(&g, &A, "a", NULL);
    task *b = submit1(&g, &A, "b", "a");
    check_graph(&g);
    /* a's symbol has no finished task yet: no early placement */
    cr_assert_eq(b->state, T_WAITING);
    cr_assert_eq(b->nwaiting, 1);
    done(w, "a", 8);
    cr_assert_eq(b->state, T_PROCESSING);
    cr_assert_not_null(fx_find(&L, FX_COMPUTE, "b"));
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
    fx_clear(&L);
    graph_worker_lost(&g, w1, "test");
    graph_flush(&g);
    free_worker(w1);
    check_graph(&g);
    cr_assert_eq(graph_task(&g, "a")->state, T_PROCESSING);
    cr_assert_eq(graph_task(&g, "a")->on, w2);
    cr_assert_not_null(fx_find(&L, FX_RECOMPUTING, "a"));
    cr_assert_eq(b->state, T_WAITING);
    done(w2, "a", 8);
    cr_assert_eq(b->state, T_PROCESSING);
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
    submit1(&g, &A, "x", NULL);
    graph_release(&g, &A, "x"); /* not wanted: only b needs it */
    task *b = submit1(&g, &A, "b", "x");
    graph_done(&g, w, "x", 1 << 20, NULL, 0, 10);
    graph_flush(&g);
    check_graph(&g);
    cr_assert_eq(graph_task(&g, "x")->state, T_RELEASED, "taken by b");
    cr_assert_eq(b->state, T_PROCESSING);
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

Test(graph, cancelling_a_root_with_a_million_waiting_dependents, .timeout = 300)
{
    L.quiet = true;
    mk_worker(&g, "w1", 1);
    submit1(&g, &A, "root", NULL);
    char key[32], prev[32] = "root";
    for (size_t i = 0; i < DEEP; i++) {
        snprintf(key, sizeof(key), "d%zu", i);
        submit1(&g, &A, key, prev);
        memcpy(prev, key, sizeof(key));
    }
    check_graph(&g);
    graph_cancel(&g, &A, "root");
    graph_flush(&g);
    check_graph(&g);
    cr_assert_eq(L.counts[FX_ERRED], DEEP + 1);
    cr_assert_eq(terni_keytab_count(&g.tasks), 0, "no one wants any of them: forgotten");
    cr_assert_eq(L.counts[FX_CANCEL], 1, "the root, running, is stopped on its worker");
    cr_assert_eq(A.npending, 0);
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
    cr_assert_eq(g.nstate[T_WAITING], N - 1);
    for (size_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "c%zu", i);
        cr_assert_eq(graph_task(&g, key)->state, T_PROCESSING, "%s", key);
        graph_done(&g, w2, key, 8, NULL, 0, 1);
        graph_flush(&g);
    }
    check_graph(&g);
    cr_assert_eq(graph_task(&g, "c99999")->state, T_MEMORY);
    cr_assert_eq(L.counts[FX_RECOMPUTING], 1);
    cr_assert_eq(L.counts[FX_FINISHED], 1, "the wanted key finished again");
    cr_assert_eq(L.counts[FX_COMPUTE], N);
}
