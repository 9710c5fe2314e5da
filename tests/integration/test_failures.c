/* Failure tests: real schedulers and workers (with their nannies) on loopback, broken on
 * purpose — tasks that fail, segfault, abort or loop; executors killed with -9 at random
 * moments of a random task graph; scattered data lost with its worker; a worker that goes
 * silent; the scheduler killed mid-run. Every result is checked against a local computation.
 *
 * Every wait is bounded; every process started here is stopped at the end of its test
 * (stop_procs), and the daemons run with --exit-with-parent in case the test process dies.
 * The plugins: faultplug (segfault, abort, spin, mix, flaky) and clusterplug (sleep_ms). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../unit/leakcheck.h"
#include "harness.h"

#define MIX_MOD ((((uint64_t)1) << 61) - 1)

/* What faultplug:mix computes, for checking results locally. */
static int64_t mix_local(int64_t i, const int64_t *deps, size_t ndeps)
{
    uint64_t acc = ((uint64_t)i * 1000003u) % MIX_MOD;
    for (size_t k = 0; k < ndeps; k++)
        acc = (acc + ((uint64_t)(k + 1) * ((uint64_t)deps[k] % MIX_MOD)) % MIX_MOD) % MIX_MOD;
    return (int64_t)acc;
}

static bool contains(const char *haystack, const char *needle)
{
    return haystack && strstr(haystack, needle);
}

/* The error of an erred future, asserting that it erred with `code`. */
static const char *error_of(tern_future *f, int code)
{
    tern_value *v = NULL;
    int rc = tern_result(f, T, &v);
    tern_value_unref(v);
    int got = 0;
    const char *msg = NULL, *task = NULL, *key = NULL;
    cr_assert_eq(tern_future_error(f, &got, &msg, &task, &key), TERN_OK,
                 "%s did not err (tern_result: %s)", tern_future_key(f), tern_strerror_name(rc));
    cr_assert_eq(got, code, "%s erred with %s, not %s: %s", tern_future_key(f),
                 tern_strerror_name(got), tern_strerror_name(code), msg);
    return msg;
}

/* A scheduler with `sched_extra` options and n workers (nannies) named w0..; nannies gets
 * their pids. Connects C. Returns the scheduler's pid. */
static pid_t start_cluster(const char *listen, const char *const *sched_extra, int n,
                           pid_t *nannies, char *addr, size_t addrlen)
{
    pid_t sched = start_scheduler(listen, sched_extra, addr, addrlen);
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof(name), "w%d", i);
        nannies[i] = start_worker_with(addr, name, NULL);
    }
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(addr, &o, &C));
    wait_workers(n);
    upload(C, PLUGIN("faultplug"));
    upload(C, PLUGIN("clusterplug"));
    return sched;
}

/* ---- 1. task errors and retries ------------------------------------------------------ */

LTest(failures, task_errors_reach_dependents_and_retries_rerun, .init = up2, .fini = cleanup)
{
    upload(C, PLUGIN("faultplug"));
    /* Fails twice, then succeeds: retries = 2 is enough. */
    tern_submit_opts r2 = { .retries = 2 }, r1 = { .retries = 1 };
    tern_future *ok =
        submit("faultplug:flaky", tern_list_of(tern_text(scratch("flaky-a")), tern_int(2)), &r2);
    cr_assert_eq(int_of(ok), 3, "ran 3 times: twice failing, once succeeding");
    /* Fails 5 times; retries = 1 gives up after the second run. */
    tern_future *bad =
        submit("faultplug:flaky", tern_list_of(tern_text(scratch("flaky-b")), tern_int(5)), &r1);
    tern_future *dep =
        submit("faultplug:mix", tern_list_of(tern_int(1), tern_int(0), tern_future_ref(bad)), NULL);
    const char *msg = error_of(bad, TERN_ETASK);
    cr_assert(contains(msg, "flaky: failure 2 of 5"), "message: %s", msg);
    cr_assert(contains(msg, "faultplug:flaky") && contains(msg, tern_future_key(bad)) &&
                  contains(msg, "on worker local-"),
              "message names task, key and worker: %s", msg);
    cr_assert_eq(file_size(scratch("flaky-b")), 2, "one run plus one retry");
    const char *dmsg = error_of(dep, TERN_ETASK);
    int code;
    const char *task, *key;
    OK(tern_future_error(dep, &code, &dmsg, &task, &key));
    cr_assert_str_eq(task, "faultplug:flaky");
    cr_assert_str_eq(key, tern_future_key(bad), "the dependent names the root cause");
    cr_assert(contains(dmsg, "flaky: failure 2 of 5"), "root message reaches dependent: %s", dmsg);
    tern_future_release(ok);
    tern_future_release(bad);
    tern_future_release(dep);
    down();
}

/* ---- 2. plugins that crash or hang ---------------------------------------------------- */

LTest(failures, crashing_and_hanging_tasks_err_and_the_cluster_keeps_serving, .init = make_tmpdir,
      .fini = cleanup_procs)
{
    char addr[256];
    pid_t nannies[2];
    const char *opts[] = { "--allowed-failures", "2", NULL };
    start_cluster("tcp://127.0.0.1:0", opts, 2, nannies, addr, sizeof(addr));
    tern_submit_opts limit = { .timeout_ms = 300 };
    tern_future *seg = submit("faultplug:segfault", NULL, NULL);
    tern_future *abrt = submit("faultplug:abort", NULL, NULL);
    tern_future *spin = submit("faultplug:spin", NULL, &limit);
    enum { N = 60 };
    tern_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit("faultplug:mix", tern_list_of(tern_int(i), tern_int(2000)), NULL);

    const char *m = error_of(seg, TERN_EKILLED);
    cr_assert(contains(m, "killed 2 workers") && contains(m, "killed by signal"), "segfault: %s",
              m);
    m = error_of(abrt, TERN_EKILLED);
    cr_assert(contains(m, "killed 2 workers") && contains(m, "killed by signal"), "abort: %s", m);
    m = error_of(spin, TERN_ETIMEDOUT);
    cr_assert(contains(m, "timeout of 300 ms") && contains(m, "restarted its executor"), "spin: %s",
              m);
    for (int i = 0; i < N; i++)
        cr_assert_eq(int_of(fs[i]), mix_local(i, NULL, 0), "mix(%d)", i);
    /* Both workers are back, and serve new work. */
    wait_workers(2);
    tern_future *after = submit("faultplug:mix", tern_list_of(tern_int(7), tern_int(0)), NULL);
    cr_assert_eq(int_of(after), mix_local(7, NULL, 0));
    tern_future_release(seg);
    tern_future_release(abrt);
    tern_future_release(spin);
    tern_future_release(after);
    for (int i = 0; i < N; i++)
        tern_future_release(fs[i]);
    down_procs();
}

/* ---- 3. kill -9 during a random task graph, 20 seeded trials ----------------------------- */

enum { DAG_N = 2000, DAG_WORKERS = 3, MAX_DEPS = 3 };

typedef struct dag {
    int ndeps[DAG_N];
    int deps[DAG_N][MAX_DEPS];
    int micros[DAG_N];
    bool hold[DAG_N];
    int64_t expect[DAG_N];
} dag;

static uint64_t rng_next(uint64_t *s)
{ /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static void make_dag(dag *g, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < DAG_N; i++) {
        int nd = i == 0 ? 0 : (int)(rng_next(&s) % (MAX_DEPS + 1));
        g->ndeps[i] = nd;
        int64_t dv[MAX_DEPS];
        for (int k = 0; k < nd; k++) {
            /* mostly recent tasks (deep chains), sometimes any earlier one (wide fan-in) */
            int back = rng_next(&s) % 4 ? (int)(rng_next(&s) % 50) + 1 : i;
            int d = i - 1 - (int)(rng_next(&s) % (uint64_t)(back < i ? back : i));
            g->deps[i][k] = d;
            dv[k] = g->expect[d];
        }
        g->micros[i] = (int)(rng_next(&s) % 1500);
        g->hold[i] = rng_next(&s) % 4 == 0;
        g->expect[i] = mix_local(i, dv, (size_t)nd);
    }
    /* Hold every sink (no dependents): their whole lineage must survive. */
    bool has_dependent[DAG_N] = { false };
    for (int i = 0; i < DAG_N; i++)
        for (int k = 0; k < g->ndeps[i]; k++)
            has_dependent[g->deps[i][k]] = true;
    for (int i = 0; i < DAG_N; i++)
        g->hold[i] |= !has_dependent[i];
}

/* Runs one trial; returns how many executors it killed. */
static int run_trial(const dag *g, uint64_t seed, pid_t *nannies, tern_future **fs)
{
    uint64_t s = seed ^ 0xA5A5A5A5u;
    tern_submit_opts impure = { .impure = true };
    for (int i = 0; i < DAG_N; i++) {
        tern_value *args = tern_list_of(tern_int(i), tern_int(g->micros[i]));
        for (int k = 0; k < g->ndeps[i]; k++)
            OK(tern_list_append(args, tern_future_ref(fs[g->deps[i][k]])));
        fs[i] = submit("faultplug:mix", args, &impure);
    }
    /* Futures not held are released at once: their data is freed once their dependents ran,
     * but their lineage stays for recomputing. */
    for (int i = 0; i < DAG_N; i++)
        if (!g->hold[i]) {
            tern_future_release(fs[i]);
            fs[i] = NULL;
        }
    /* Kill 3 random executors at random moments while the graph runs. */
    pid_t killed[3] = { 0 };
    int nkilled = 0;
    for (int k = 0; k < 3; k++) {
        nap_ms(20 + (int)(rng_next(&s) % 250));
        int w = (int)(rng_next(&s) % DAG_WORKERS);
        pid_t exec = child_of(nannies[w]);
        if (exec > 0) {
            kill(exec, SIGKILL);
            killed[k] = exec;
            nkilled++;
        }
    }
    for (int i = 0; i < DAG_N; i++) {
        if (!fs[i])
            continue;
        tern_value *v = NULL;
        int rc = tern_result(fs[i], 60000, &v);
        cr_assert_eq(rc, TERN_OK, "seed %llu: task %d: %s: %s", (unsigned long long)seed, i,
                     tern_strerror_name(rc), tern_client_errmsg(NULL));
        int64_t got = 0;
        cr_assert_eq(tern_value_get_int(v, &got), TERN_OK);
        tern_value_unref(v);
        cr_assert_eq(got, g->expect[i], "seed %llu: task %d: %lld, expected %lld",
                     (unsigned long long)seed, i, (long long)got, (long long)g->expect[i]);
        tern_future_release(fs[i]);
        fs[i] = NULL;
    }
    /* Every killed executor was replaced by its nanny. */
    for (int w = 0; w < DAG_WORKERS; w++)
        for (int k = 0; k < 3; k++)
            if (killed[k] > 0 && child_of(nannies[w]) == killed[k])
                wait_child_of(nannies[w], killed[k]);
    wait_workers(DAG_WORKERS);
    return nkilled;
}

LTest(failures, kill9_random_workers_during_random_dags_20_trials, .init = make_tmpdir,
      .fini = cleanup_procs, .timeout = 580)
{
    char addr[256];
    pid_t nannies[DAG_WORKERS];
    /* Kills are not the tasks' fault: blame would need 10 crashes of one task. */
    const char *opts[] = { "--allowed-failures", "10", NULL };
    start_cluster("tcp://127.0.0.1:0", opts, DAG_WORKERS, nannies, addr, sizeof(addr));
    dag *g = calloc(1, sizeof(*g));
    tern_future **fs = calloc(DAG_N, sizeof(*fs));
    cr_assert(g && fs);
    int passed = 0, kills = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        make_dag(g, seed);
        kills += run_trial(g, seed, nannies, fs);
        passed++;
    }
    cr_assert_eq(passed, 20);
    /* The kills did hit: workers were lost and lost keys recomputed from their lineage. */
    tern_value *st = NULL;
    OK(tern_status_info(C, &st));
    int64_t lost = map_int(st, "workers_lost"), recomputed = map_int(st, "recomputed");
    tern_value_unref(st);
    cr_assert_geq(kills, 20, "only %d kills landed (the others hit a restarting worker)", kills);
    /* (an executor killed before it registered is no worker lost) */
    cr_assert_geq(lost, 20, "%lld workers lost, %d kills", (long long)lost, kills);
    cr_assert_gt(recomputed, 0, "no key was recomputed");
    fprintf(stderr, "kill9 trials: %d kills, %lld workers lost, %lld keys recomputed\n", kills,
            (long long)lost, (long long)recomputed);
    /* Nothing is left behind on the cluster once every future is released. */
    double t0 = now_ms();
    load l;
    do {
        l = cluster_load(C);
        if (l.keys == 0 && l.in_memory == 0)
            break;
        nap_ms(20);
    } while (now_ms() - t0 < T);
    cr_assert(l.keys == 0 && l.in_memory == 0, "%lld keys left on workers, %lld in memory",
              (long long)l.keys, (long long)l.in_memory);
    free(g);
    free(fs);
    down_procs();
}

/* ---- 4. scattered data lost with its worker ------------------------------------------ */

LTest(failures, lost_scattered_data_errs_clearly, .init = make_tmpdir, .fini = cleanup_procs)
{
    char addr[256];
    pid_t nannies[1];
    start_cluster("tcp://127.0.0.1:0", NULL, 1, nannies, addr, sizeof(addr));
    tern_future *data = NULL;
    OK(tern_scatter(C, tern_int(41), &data));
    tern_future *computed = submit("faultplug:mix", tern_list_of(tern_int(3), tern_int(0)), NULL);
    cr_assert_eq(int_of(computed), mix_local(3, NULL, 0));
    /* A dependent that cannot start before the loss: it waits for a sleeper first. */
    tern_future *sleeper = submit("clusterplug:sleep_ms", tern_list_of(tern_int(400)), NULL);
    tern_future *dep = submit(
        "faultplug:mix",
        tern_list_of(tern_int(1), tern_int(0), tern_future_ref(data), tern_future_ref(sleeper)),
        NULL);
    pid_t exec = child_of(nannies[0]);
    cr_assert_gt(exec, 0);
    kill(exec, SIGKILL);
    const char *m = error_of(data, TERN_ELOST);
    cr_assert(contains(m, "scattered data") && contains(m, "cannot be recomputed"), "%s", m);
    cr_assert_eq(tern_future_status(data), TERN_LOST);
    m = error_of(dep, TERN_ELOST);
    cr_assert(contains(m, tern_future_key(data)), "the dependent names the lost key: %s", m);
    /* Computed data is recomputed from its lineage on the restarted executor. */
    wait_child_of(nannies[0], exec);
    wait_workers(1);
    tern_value *v = NULL;
    OK(tern_result(computed, T, &v));
    tern_value_unref(v);
    cr_assert_eq(int_of(sleeper), 400);
    tern_future_release(data);
    tern_future_release(computed);
    tern_future_release(sleeper);
    tern_future_release(dep);
    down_procs();
}

/* ---- 5. a worker that goes silent ---------------------------------------------------- */

/* A stopped process would outlive the test (a pending SIGTERM waits for SIGCONT) and keep
 * ctest's output pipe open: .fini kills it whatever happened. */
static pid_t stopped_pid;

static void cleanup_stopped(void)
{
    if (stopped_pid > 0) {
        kill(stopped_pid, SIGKILL);
        kill(stopped_pid, SIGCONT);
    }
    stopped_pid = 0;
    cleanup_procs();
}

LTest(failures, silent_worker_is_declared_dead_and_rejoins, .init = make_tmpdir,
      .fini = cleanup_stopped)
{
    char addr[256];
    pid_t nannies[2];
    const char *opts[] = { "--heartbeat-ms", "100", "--death-timeout-ms", "1000", NULL };
    start_cluster("tcp://127.0.0.1:0", opts, 2, nannies, addr, sizeof(addr));
    tern_future *held = submit("faultplug:mix", tern_list_of(tern_int(5), tern_int(0)), NULL);
    cr_assert_eq(int_of(held), mix_local(5, NULL, 0));
    const tern_value *names, *name;
    tern_value *m = who_has(C, held, &names);
    const char *holder;
    OK(tern_list_get(names, 0, &name));
    OK(tern_value_get_text(name, &holder, NULL));
    int silent = holder[1] - '0';
    cr_assert(silent == 0 || silent == 1, "held by %s", holder);
    tern_value_unref(m);
    const char *on_silent[] = { silent ? "w1" : "w0", NULL };
    tern_submit_opts o0 = { .workers = on_silent };
    /* The holder stops answering (as a hung host would): its process is stopped, its TCP
     * connection stays open. Its only copy of `held` must be recomputed elsewhere. */
    pid_t exec = child_of(nannies[silent]);
    cr_assert_gt(exec, 0);
    double t0 = now_ms();
    stopped_pid = exec;
    kill(exec, SIGSTOP);
    enum { N = 20 };
    tern_future *fs[N];
    int64_t dv[1] = { mix_local(5, NULL, 0) };
    for (int i = 0; i < N; i++)
        fs[i] =
            submit("faultplug:mix",
                   tern_list_of(tern_int(100 + i), tern_int(1000), tern_future_ref(held)), NULL);
    for (int i = 0; i < N; i++)
        cr_assert_eq(int_of(fs[i]), mix_local(100 + i, dv, 1), "task %d", i);
    double took = now_ms() - t0;
    cr_assert_lt(took, 8000, "w0's work moved within the death timeout (took %.0f ms)", took);
    load l = cluster_load(C);
    cr_assert_eq(l.workers, 1, "the silent worker was declared dead");
    /* Back from the dead: it notices it was dropped, reconnects and registers again. */
    kill(exec, SIGCONT);
    stopped_pid = 0;
    wait_workers(2);
    tern_future *again = submit("faultplug:mix", tern_list_of(tern_int(9), tern_int(0)), &o0);
    cr_assert_eq(int_of(again), mix_local(9, NULL, 0));
    tern_future_release(held);
    tern_future_release(again);
    for (int i = 0; i < N; i++)
        tern_future_release(fs[i]);
    down_procs();
}

/* ---- 6. the scheduler killed mid-run ---------------------------------------------------- */

LTest(failures, scheduler_killed_clients_get_errors_workers_come_back, .init = make_tmpdir,
      .fini = cleanup_procs)
{
    char listen[256], addr[256], addr2[256];
    snprintf(listen, sizeof(listen), "ipc://%s/scheduler.ipc", tmpdir);
    pid_t nannies[2];
    pid_t sched = start_cluster(listen, NULL, 2, nannies, addr, sizeof(addr));
    tern_future *slow = submit("clusterplug:sleep_ms", tern_list_of(tern_int(2000)), NULL);
    nap_ms(200);
    double t0 = now_ms();
    kill9(sched);
    tern_value *v = NULL;
    ERR(TERN_ECLOSED, tern_result(slow, T, &v));
    double took = now_ms() - t0;
    cr_assert_lt(took, 3000, "the pending call failed promptly (%.0f ms)", took);
    cr_assert(contains(tern_client_errmsg(NULL), "scheduler"), "says why: %s",
              tern_client_errmsg(NULL));
    tern_future *late = NULL;
    int rc = tern_submit(C, "faultplug:mix", tern_list_of(tern_int(1), tern_int(0)), NULL, &late);
    cr_assert_eq(rc, TERN_ECLOSED, "submit after the loss: %s", tern_strerror_name(rc));
    tern_future_release(slow);
    cr_assert(close_bounded(C));
    C = NULL;
    /* A new scheduler at the same address: the workers register with it again. */
    start_scheduler(listen, NULL, addr2, sizeof(addr2));
    cr_assert_str_eq(addr, addr2);
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(addr2, &o, &C));
    wait_workers(2);
    upload(C, PLUGIN("faultplug"));
    tern_future *f = submit("faultplug:mix", tern_list_of(tern_int(2), tern_int(0)), NULL);
    cr_assert_eq(int_of(f), mix_local(2, NULL, 0));
    tern_future_release(f);
    down_procs();
}

/* ---- 7. a client that goes away -------------------------------------------------------- */

LTest(failures, closed_client_releases_its_keys, .init = up2, .fini = cleanup)
{
    tern_client *other;
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(tern_client_address(C), &o, &other));
    tern_future *f = NULL;
    OK(tern_submit(other, "clusterplug:add", tern_list_of(tern_int(1), tern_int(2)), NULL, &f));
    tern_value *v = NULL;
    OK(tern_result(f, T, &v));
    tern_value_unref(v);
    cr_assert_eq(cluster_load(C).in_memory, 1);
    /* The other client leaves without releasing: its keys go with it. */
    cr_assert(close_bounded(other));
    tern_future_release(f);
    double t0 = now_ms();
    load l;
    do {
        l = cluster_load(C);
        if (l.in_memory == 0 && l.keys == 0)
            break;
        nap_ms(10);
    } while (now_ms() - t0 < T);
    cr_assert(l.in_memory == 0 && l.keys == 0, "%lld keys in memory after the client left",
              (long long)l.in_memory);
    down();
}

/* ---- 8. task messages that are not valid UTF-8 ------------------------------------------ */

#define FFFD "\xEF\xBF\xBD"

/* Waits at most 10 s for f, which must err with TERN_ETASK (never hang: an erred report that
 * could not be built was dropped, and the future waited for ever). Returns its message. */
static const char *erred_promptly(tern_future *f)
{
    tern_value *v = NULL;
    double t0 = now_ms();
    int rc = tern_result(f, 10000, &v);
    tern_value_unref(v);
    cr_assert_neq(rc, TERN_ETIMEDOUT, "%s hung: no error after %.0f ms", tern_future_key(f),
                  now_ms() - t0);
    return error_of(f, TERN_ETASK);
}

/* clusterplug:fail_with: fails with `bytes` repeated n times as its message, under key. */
static tern_future *fail_with(const char *bytes, int64_t n, const char *key)
{
    tern_submit_opts o = { .key = key };
    return submit("clusterplug:fail_with",
                  tern_list_of(tern_bytes(bytes, strlen(bytes)), tern_int(n)), &o);
}

LTest(failures, task_messages_that_are_not_utf8_err_their_futures, .init = up2, .fini = cleanup)
{
    /* tern_fail keeps 1,023 bytes of a message: this one is cut inside its first euro sign */
    static char cut[1100];
    memset(cut, 'a', 1021);
    strcpy(cut + 1021, "\xE2\x82\xAC\xE2\x82\xAC");
    tern_future *bad = fail_with("bad \xFF byte \xC0\x80 and \xED\xA0\x80", 1, NULL);
    tern_future *cut1023 = fail_with(cut, 1, NULL);
    tern_future *longer = fail_with("\xC3\xA9", 3000, NULL); /* 6,000 bytes of e-acute */
    tern_future *dep =
        submit("clusterplug:add", tern_list_of(tern_future_ref(bad), tern_int(1)), NULL);
    /* A key of 600 bytes of non-ASCII characters: the message is cut so that the key, the task
     * and the worker still fit in the scheduler's error, whatever the message's length. */
    tern_future *keyed[3];
    for (int i = 0; i < 3; i++) {
        char key[700] = "";
        for (int k = 0; k < 200; k++)
            strcat(key, "\xE2\x82\xAC");
        snprintf(key + strlen(key), sizeof(key) - strlen(key), "-%d", i);
        keyed[i] = fail_with("\xC3\xA9", 250 + i, key); /* 500, 502, 504 bytes */
    }

    const char *m = erred_promptly(bad);
    cr_assert(contains(m, "bad " FFFD " byte " FFFD FFFD " and " FFFD FFFD FFFD), "%s", m);
    cr_assert(contains(m, "on worker"), "%s", m);
    m = erred_promptly(cut1023);
    cr_assert(contains(m, "aaaaaaaa") && !contains(m, FFFD) && contains(m, "on worker"), "%s", m);
    m = erred_promptly(longer);
    cr_assert(contains(m, "\xC3\xA9\xC3\xA9\xC3\xA9") && contains(m, "on worker"), "%s", m);
    cr_assert_leq(strlen(m), 1023);
    m = erred_promptly(dep);
    cr_assert(contains(m, "bad " FFFD " byte"), "the dependent has the root's message: %s", m);
    for (int i = 0; i < 3; i++) {
        m = erred_promptly(keyed[i]);
        cr_assert(contains(m, "\xC3\xA9") && contains(m, tern_future_key(keyed[i])) &&
                      contains(m, "on worker"),
                  "key %d: %s", i, m);
    }
    /* The cluster serves on. */
    tern_future *ok = submit("clusterplug:add", tern_list_of(tern_int(2), tern_int(3)), NULL);
    cr_assert_eq(int_of(ok), 5);
    tern_future_release(bad);
    tern_future_release(cut1023);
    tern_future_release(longer);
    tern_future_release(dep);
    for (int i = 0; i < 3; i++)
        tern_future_release(keyed[i]);
    tern_future_release(ok);
    down();
}

/* Keys of up to the 1,024-byte limit made of non-ASCII characters: the scheduler's own texts
 * (" (task F, key K, on worker W)", "dependency K (T) failed: ...") are cut only between
 * characters, so the erred event is never dropped (it was, and these futures hung). */
LTest(failures, errors_of_keys_near_the_limit_reach_their_futures, .init = up2, .fini = cleanup)
{
    tern_future *keyed[3], *dep[3];
    for (int i = 0; i < 3; i++) {
        char key[1100] = "";
        for (int k = 0; k < 338 + i; k++) /* 1,016 to 1,022 bytes */
            strcat(key, "\xE2\x82\xAC");
        snprintf(key + strlen(key), sizeof(key) - strlen(key), "-%d", i);
        keyed[i] = fail_with("\xC3\xA9", 400, key);
        dep[i] =
            submit("clusterplug:add", tern_list_of(tern_future_ref(keyed[i]), tern_int(1)), NULL);
    }
    for (int i = 0; i < 3; i++) {
        const char *m = erred_promptly(keyed[i]);
        cr_assert(contains(m, "\xC3\xA9"), "key %d: %s", i, m);
        m = erred_promptly(dep[i]);
        cr_assert(contains(m, tern_future_key(keyed[i])), "dependent %d: %s", i, m);
        int code;
        const char *msg, *task, *key;
        OK(tern_future_error(dep[i], &code, &msg, &task, &key));
        cr_assert_str_eq(key, tern_future_key(keyed[i]));
    }
    for (int i = 0; i < 3; i++) {
        tern_future_release(dep[i]);
        tern_future_release(keyed[i]);
    }
    down();
}

/* A plugin whose version is not UTF-8 is refused at upload, saying why, and nothing of it is
 * registered (it was half registered, and the upload said "out of memory"). */
LTest(failures, plugin_version_that_is_not_utf8_is_refused_at_upload, .init = up2, .fini = cleanup)
{
    tern_plugin_info info;
    int rc = tern_upload_plugin(C, PLUGIN("bad_version"), &info);
    const char *why = tern_client_errmsg(NULL);
    cr_assert_eq(rc, TERN_ENOTPLUGIN, "upload: %s: %s", tern_strerror_name(rc), why);
    cr_assert(contains(why, "version") && contains(why, "UTF-8"), "%s", why);
    tern_future *f = NULL;
    rc = tern_submit(C, "bad_version:one", NULL, NULL, &f);
    if (rc == TERN_OK) {
        tern_value *v = NULL;
        rc = tern_result(f, 10000, &v);
        tern_value_unref(v);
        tern_future_release(f);
    }
    cr_assert_neq(rc, TERN_OK, "a task of the refused plugin ran");
    cr_assert_neq(rc, TERN_ETIMEDOUT, "a task of the refused plugin hangs");
    tern_future *ok = submit("clusterplug:add", tern_list_of(tern_int(2), tern_int(3)), NULL);
    cr_assert_eq(int_of(ok), 5);
    tern_future_release(ok);
    down();
}

/* ---- 9. plugins that exit ------------------------------------------------------------- */

/* A task that ends its executor, however it does it (exit with any status, _exit, a signal,
 * a stack overflow), is a crash: the executor is restarted with backoff, the task is blamed,
 * and after --allowed-failures it errs with TERN_EKILLED naming how the executor ended. Every
 * worker stays (before: exit(0), exit(2) and exit(78) ended the nanny too, so the task went
 * on to kill every worker, and exit(75) was a restart that blamed no task). */
static void ending_the_executor_is_a_crash(const char *task, int64_t code, const char *why,
                                           const char *or_why)
{
    char addr[256];
    pid_t nannies[2];
    const char *opts[] = { "--allowed-failures", "2", NULL };
    start_cluster("tcp://127.0.0.1:0", opts, 2, nannies, addr, sizeof(addr));
    tern_future *f = submit(task, code >= 0 ? tern_list_of(tern_int(code)) : NULL, NULL);
    const char *m = error_of(f, TERN_EKILLED);
    cr_assert(contains(m, "killed") && (contains(m, why) || (or_why && contains(m, or_why))),
              "%s: %s", task, m);
    for (int i = 0; i < 2; i++) {
        int st;
        cr_assert_eq(waitpid(nannies[i], &st, WNOHANG), 0, "the nanny of w%d ended", i);
    }
    wait_workers(2);
    /* Another client is served, on both workers. */
    tern_client *other;
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(addr, &o, &other));
    for (int i = 0; i < 2; i++) {
        const char *on[] = { i ? "w1" : "w0", NULL };
        tern_submit_opts so = { .workers = on };
        tern_future *ok = NULL;
        OK(tern_submit(other, "faultplug:mix", tern_list_of(tern_int(i), tern_int(0)), &so, &ok));
        tern_value *v = NULL;
        OK(tern_result(ok, T, &v));
        int64_t got = 0;
        OK(tern_value_get_int(v, &got));
        cr_assert_eq(got, mix_local(i, NULL, 0));
        tern_value_unref(v);
        tern_future_release(ok);
    }
    cr_assert(close_bounded(other));
    tern_future_release(f);
    down_procs();
}

LTest(failures, task_calling_exit_0_is_a_crash, .init = make_tmpdir, .fini = cleanup_procs)
{
    ending_the_executor_is_a_crash("faultplug:exit_with", 0,
                                   "exited with status 0 (not a clean shutdown)", NULL);
}

LTest(failures, task_calling_exit_2_is_a_crash, .init = make_tmpdir, .fini = cleanup_procs)
{
    ending_the_executor_is_a_crash("faultplug:exit_with", 2,
                                   "exited with status 2 (not a clean shutdown)", NULL);
}

LTest(failures, task_calling_exit_75_is_a_crash, .init = make_tmpdir, .fini = cleanup_procs)
{
    ending_the_executor_is_a_crash("faultplug:exit_with", 75,
                                   "exited with status 75 (not a clean shutdown)", NULL);
}

LTest(failures, task_calling_exit_78_is_a_crash, .init = make_tmpdir, .fini = cleanup_procs)
{
    ending_the_executor_is_a_crash("faultplug:exit_with", 78,
                                   "exited with status 78 (not a clean shutdown)", NULL);
}

LTest(failures, task_calling__exit_1_is_a_crash, .init = make_tmpdir, .fini = cleanup_procs)
{
    ending_the_executor_is_a_crash("faultplug:underscore_exit", 1,
                                   "exited with status 1 (not a clean shutdown)", NULL);
}

LTest(failures, task_calling_abort_is_a_crash, .init = make_tmpdir, .fini = cleanup_procs)
{
    ending_the_executor_is_a_crash("faultplug:abort", -1, "killed by signal 6", NULL);
}

LTest(failures, task_raising_sigkill_is_a_crash, .init = make_tmpdir, .fini = cleanup_procs)
{
    ending_the_executor_is_a_crash("faultplug:kill_self", -1, "killed by signal 9", NULL);
}

/* (With AddressSanitizer in the executor, a stack overflow is its report, then its exit status
 * or SIGABRT: SIGSEGV otherwise.) */
LTest(failures, task_overflowing_its_stack_is_a_crash, .init = make_tmpdir, .fini = cleanup_procs)
{
    ending_the_executor_is_a_crash("faultplug:overflow", -1, "killed by signal",
                                   "exited with status 1 (not a clean shutdown)");
}
