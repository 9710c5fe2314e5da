/* The scheduler core on a real cluster (tern-scheduler and tern-worker processes on loopback):
 * long chains whose root fails, is cancelled or is recomputed, which a scheduler whose
 * transitions recurse over the graph does not survive; an error that names its root cause
 * once, at any depth; cancel as one client's "I no longer want it"; an erred pure key that
 * runs again when submitted again after its release. The daemons come from test_bin(), so
 * TERN_TEST_BIN_DIR can point this suite at an older build to see it fail there.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <tern/tern.h>

#include "../unit/leakcheck.h"

#include "harness.h"

#define CHAIN 10000
/* Recompute recursed with a smaller frame than erring: a deeper lineage (a shorter one
 * against sanitized daemons, which validate the graph as they go and run 10x slower). */
#define LINEAGE_MAX 60000

static char addr[256];
static pid_t nanny0;

/* A scheduler and `n` workers w0.. (nanny0: w0's nanny pid); C connected, plugins uploaded. */
static void start(int n)
{
    make_tmpdir();
    start_scheduler("tcp://127.0.0.1:0", NULL, addr, sizeof(addr));
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%d", i);
        pid_t p = start_worker_with(addr, name, NULL);
        if (i == 0)
            nanny0 = p;
    }
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(addr, &o, &C));
    wait_workers(n);
    upload(C, PLUGIN("testplug"));
    upload(C, PLUGIN("clusterplug"));
}

/* fs[0] = root; fs[i] = testplug:inc(fs[i-1]). */
static void chain_on(tern_future *root, tern_future **fs, size_t n)
{
    fs[0] = root;
    for (size_t i = 1; i < n; i++)
        fs[i] = submit("testplug:inc", tern_list_of(tern_future_ref(fs[i - 1])), NULL);
}

static void release_all(tern_future **fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tern_future_release(fs[i]);
}

/* The scheduler still serves: a fresh task runs. */
static void still_serving(void)
{
    tern_future *f = submit("testplug:inc", tern_list_of(tern_int(41)), NULL);
    cr_assert_eq(int_of(f), 42, "the scheduler no longer serves");
    tern_future_release(f);
}

static size_t count(const char *s, const char *sub)
{
    size_t n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub))
        n++;
    return n;
}

LTest(core, a_10000_task_chain_whose_root_fails, .init = make_tmpdir, .fini = cleanup_procs,
      .timeout = 180)
{
    start(1);
    static tern_future *fs[CHAIN];
    chain_on(submit("clusterplug:sleep_ms", tern_list_of(tern_int(1000), tern_bool(true)), NULL),
             fs, CHAIN);
    tern_future *last = fs[CHAIN - 1];
    tern_value *v = NULL;
    ERR(TERN_ETASK, tern_result(last, T, &v));
    int code;
    const char *msg, *task, *key;
    OK(tern_future_error(last, &code, &msg, &task, &key));
    cr_assert_str_eq(key, tern_future_key(fs[0]), "the root cause is not named");
    cr_assert_str_eq(task, "clusterplug:sleep_ms");
    cr_assert(strstr(msg, "sleep_ms: failing after 1000 ms, as asked"),
              "the root's own message is missing: %s", msg);
    cr_assert_eq(count(msg, "failed:"), 1, "the root is named more than once: %s", msg);
    OK(tern_future_error(fs[CHAIN / 2], &code, &msg, &task, &key));
    cr_assert_str_eq(key, tern_future_key(fs[0]));
    still_serving();
    cr_assert_eq(state_count("erred"), CHAIN);
    release_all(fs, CHAIN);
    down_procs();
}

LTest(core, cancelling_the_root_of_a_10000_task_chain, .init = make_tmpdir, .fini = cleanup_procs,
      .timeout = 180)
{
    start(1);
    static tern_future *fs[CHAIN];
    chain_on(submit("clusterplug:sleep_ms", tern_list_of(tern_int(3000)), NULL), fs, CHAIN);
    OK(tern_cancel(&fs[0], 1));
    tern_value *v = NULL;
    ERR(TERN_ECANCELED, tern_result(fs[CHAIN - 1], T, &v));
    cr_assert_eq(tern_future_status(fs[CHAIN - 1]), TERN_CANCELLED);
    int code;
    const char *msg, *task, *key;
    OK(tern_future_error(fs[CHAIN - 1], &code, &msg, &task, &key));
    cr_assert_str_eq(key, tern_future_key(fs[0]));
    still_serving();
    release_all(fs, CHAIN);
    down_procs();
}

LTest(core, recomputing_a_deep_lineage_after_its_only_holder_dies, .init = make_tmpdir,
      .fini = cleanup_procs, .timeout = 180)
{
    start(1);
    static tern_future *fs[LINEAGE_MAX];
    const int64_t LINEAGE = sanitized_daemons() ? 10000 : LINEAGE_MAX;
    chain_on(submit("testplug:inc", tern_list_of(tern_int(0)), NULL), fs, (size_t)LINEAGE);
    tern_value *v = NULL;
    OK(tern_result(fs[LINEAGE - 1], 3 * T, &v)); /* link by link: slow under sanitizers */
    tern_value_unref(v);
    release_all(fs, (size_t)LINEAGE - 1); /* only the last is wanted: the rest is lineage */
    start_worker_with(addr, "w1", NULL);
    wait_workers(2);
    pid_t exec = child_of(nanny0);
    kill9(nanny0);
    if (exec > 0)
        kill(exec, SIGKILL);
    wait_workers(1);
    /* its only copy was on w0: recomputed, link by link, on w1 */
    v = NULL;
    int64_t got = -1;
    double until = now_ms() + 3 * T;
    while (now_ms() < until) { /* a fetch from the dead holder fails until "recomputing" */
        tern_value_unref(v);
        v = NULL;
        int rc = tern_result(fs[LINEAGE - 1], 3 * T, &v);
        if (rc == TERN_OK && tern_value_get_int(v, &got) == TERN_OK)
            break;
        nap_ms(50);
    }
    tern_value_unref(v);
    cr_assert_eq(got, LINEAGE, "the lineage was not recomputed");
    still_serving();
    tern_future_release(fs[LINEAGE - 1]);
    down_procs();
}

LTest(core, cancel_by_one_client_leaves_another_clients_task, .init = make_tmpdir,
      .fini = cleanup_procs)
{
    start(1);
    tern_client *c2 = NULL;
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(addr, &o, &c2));
    tern_future *mine = submit("clusterplug:sleep_ms", tern_list_of(tern_int(500)), NULL);
    tern_future *theirs = NULL;
    OK(tern_submit(c2, "clusterplug:sleep_ms", tern_list_of(tern_int(500)), NULL, &theirs));
    cr_assert_str_eq(tern_future_key(mine), tern_future_key(theirs), "a pure task: one key");
    OK(tern_cancel(&mine, 1));
    tern_value *v = NULL;
    ERR(TERN_ECANCELED, tern_result(mine, T, &v));
    OK(tern_result(theirs, T, &v));
    int64_t ms = 0;
    cr_assert(tern_value_get_int(v, &ms) == TERN_OK && ms == 500,
              "the other client's task was cancelled too");
    tern_value_unref(v);
    tern_future_release(theirs);
    cr_assert(close_bounded(c2));
    tern_future_release(mine);
    down_procs();
}

LTest(core, an_erred_pure_key_runs_again_when_submitted_again, .init = make_tmpdir,
      .fini = cleanup_procs)
{
    start(1);
    /* fails on its first run only (the file counts the runs) */
    tern_value *args = tern_list_of(tern_int(1), tern_text(scratch("runs")));
    tern_value *again = tern_value_ref(args);
    tern_future *f = submit("clusterplug:sleep_ms", args, NULL);
    tern_future *dep = submit("testplug:inc", tern_list_of(tern_future_ref(f)), NULL);
    tern_value *v = NULL;
    ERR(TERN_ETASK, tern_result(f, T, &v));
    ERR(TERN_ETASK, tern_result(dep, T, &v));
    /* released and submitted again in one go (one batch) */
    tern_future_release(f);
    tern_future *f2 = submit("clusterplug:sleep_ms", again, NULL);
    OK(tern_result(f2, T, &v));
    tern_value_unref(v);
    cr_assert_eq(file_size(scratch("runs")), 2, "it did not run again");
    tern_future_release(f2);
    /* later, while dep3's record keeps it as lineage */
    tern_future *f3 = submit("clusterplug:sleep_ms",
                             tern_list_of(tern_int(2), tern_text(scratch("runs3"))), NULL);
    tern_future *dep3 = submit("testplug:inc", tern_list_of(tern_future_ref(f3)), NULL);
    ERR(TERN_ETASK, tern_result(dep3, T, &v));
    tern_future_release(f3);
    nap_ms(100);
    f3 = submit("clusterplug:sleep_ms", tern_list_of(tern_int(2), tern_text(scratch("runs3"))),
                NULL);
    cr_assert_eq(int_of(f3), 2, "the old error came back");
    cr_assert_eq(file_size(scratch("runs3")), 2);
    tern_future_release(f3);
    tern_future_release(dep3);
    tern_future_release(dep);
    down_procs();
}
