/* Pushes under failure (issue 23 part 4): results pushed from a producer's worker straight to
 * the worker of a consumer placed early (runtime/worker/pusher.c, scheduler/early.c) while
 * executors are killed or stopped around the push, pushes fail, come twice or before the
 * producer's "done"; every value must be right, nothing may hang, and copies must go.
 *
 * Design notes
 *  - Real processes: a scheduler (TERN_SCHED_VALIDATE=1: a broken graph invariant aborts it,
 *    failing the test) and 2-4 workers w0..w3 with their nannies on loopback, port 0.
 *    Consumers are forced onto a worker with tern_submit_opts.workers; a killed executor comes
 *    back under the same name; a stopped one (SIGSTOP) is a worker that does not answer.
 *    Waits are bounded; values are checked against a local computation (mix_local) or the
 *    value submitted; kill schedules come from seeds named in the assertion messages.
 *  - Early placement needs the producer's symbol to have finished with small results before:
 *    cluster() runs sleep_ms and mix once, and tests check that "pushes" (status) moved.
 *  - Leaks are checked on the workers themselves: a data-plane "get" (terni_peers, as a peer)
 *    of the released keys must find none, and the status must count none.
 *  - "A push before the consumer's compute" cannot be forced on a real cluster: the scheduler
 *    asks for the push when it sends the compute, and frees a put it did not ask for. Its
 *    worker side (job queue and store) is driven directly (jobs.c and store.c are compiled
 *    in); on the cluster the test acts as the pushing peer while the producer still runs. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/leakcheck.h"
#include "harness.h"
#include "runtime/worker/jobs.h"
#include "runtime/worker/store.h"
#include "sdk/src/protocol/protocol.h"
#include "sdk/src/transport/peers.h"
#include "sdk/src/transport/wire.h"

#define MIX_MOD ((((uint64_t)1) << 61) - 1)

#ifndef TRIALS /* seeded trials of the kill tests (-DTRIALS=100 for a soak) */
#define TRIALS 10
#endif

static int64_t mix_local(int64_t i, const int64_t *deps, size_t ndeps)
{
    uint64_t acc = ((uint64_t)i * 1000003u) % MIX_MOD;
    for (size_t k = 0; k < ndeps; k++)
        acc = (acc + ((uint64_t)(k + 1) * ((uint64_t)deps[k] % MIX_MOD)) % MIX_MOD) % MIX_MOD;
    return (int64_t)acc;
}

static uint64_t rng_next(uint64_t *s)
{ /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* ---- the cluster ------------------------------------------------------------------------ */

static pid_t nannies[4];
static pid_t stopped; /* an executor stopped with SIGSTOP, killed by teardown */
static int nworkers;
static terni_peers *P; /* data-plane requests to the workers, as a peer makes them */
static const char *ON[4][2] = { { "w0", NULL }, { "w1", NULL }, { "w2", NULL }, { "w3", NULL } };

static tern_submit_opts on(int w)
{
    return (tern_submit_opts){ .workers = ON[w] };
}

static void run_once(const char *task, tern_value *args)
{
    tern_future *f = submit(task, args, NULL);
    tern_value *v = NULL;
    OK(tern_result(f, T, &v));
    tern_value_unref(v);
    tern_future_release(f);
}

static void cluster(int n)
{
    char addr[256];
    setenv("TERN_SCHED_VALIDATE", "1", 1);
    const char *opts[] = { "--allowed-failures", "50", NULL };
    start_scheduler("tcp://127.0.0.1:0", opts, addr, sizeof(addr));
    for (int i = 0; i < n; i++)
        nannies[i] = start_worker_with(addr, ON[i][0], NULL);
    nworkers = n;
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(addr, &o, &C));
    wait_workers(n);
    upload(C, PLUGIN("faultplug"));
    upload(C, PLUGIN("clusterplug"));
    OK(terni_peers_new(NULL, &P));
    /* both symbols finish once with small results, so that their dependents go early */
    run_once("clusterplug:sleep_ms", tern_list_of(tern_int(0)));
    run_once("faultplug:mix", tern_list_of(tern_int(0), tern_int(0)));
}

static void teardown(void)
{
    if (stopped > 0) { /* a stopped process would outlive the test (see test_failures.c) */
        kill(stopped, SIGKILL);
        kill(stopped, SIGCONT);
    }
    stopped = 0;
    if (P)
        terni_peers_free(P);
    P = NULL;
    cleanup_procs();
}

static void down_cluster(void)
{
    terni_peers_free(P);
    P = NULL;
    down_procs();
}

/* mix(id, micros, deps...) on worker w. */
static tern_future *mix(int64_t id, int micros, tern_future *const *deps, size_t n, int w)
{
    tern_value *args = tern_list_of(tern_int(id), tern_int(micros));
    for (size_t k = 0; k < n; k++)
        OK(tern_list_append(args, tern_future_ref(deps[k])));
    tern_submit_opts o = on(w);
    return submit("faultplug:mix", args, &o);
}

/* sleep_ms(ms) on worker w, under a fresh key. */
static tern_future *sleeper(int ms, int w)
{
    tern_submit_opts o = on(w);
    o.impure = true;
    return submit("clusterplug:sleep_ms", tern_list_of(tern_int(ms)), &o);
}

static int64_t status_int(const char *name)
{
    tern_value *st = NULL;
    OK(tern_status_info(C, &st));
    int64_t n = map_int(st, name);
    tern_value_unref(st);
    return n;
}

/* Waits (bounded) until the scheduler has asked for more than `before` pushes. */
static void wait_pushes(int64_t before, const char *why)
{
    double t0 = now_ms();
    while (status_int("pushes") <= before) {
        cr_assert_lt(now_ms() - t0, T, "no push was asked for: %s (not placed early?)", why);
        nap_ms(2);
    }
}

/* f's int result within the bound, which must be TERN_OK. */
static int64_t result_int(tern_future *f, const char *trial)
{
    tern_value *v = NULL;
    int rc = tern_result(f, T, &v);
    cr_assert_eq(rc, TERN_OK, "%s: %s: %s: %s", trial, tern_future_key(f), tern_strerror_name(rc),
                 tern_client_errmsg(NULL));
    int64_t i = 0;
    cr_assert_eq(tern_value_get_int(v, &i), TERN_OK, "%s: %s is not an int", trial,
                 tern_future_key(f));
    tern_value_unref(v);
    return i;
}

/* f = mix(id, _, d) with d's value dv. */
static void expect_mix(tern_future *f, int64_t id, int64_t dv, const char *trial)
{
    cr_assert_eq(result_int(f, trial), mix_local(id, &dv, 1), "%s: mix %lld", trial, (long long)id);
}

/* Waits (bounded) until the scheduler counts f as held on worker w. */
static void wait_held(tern_future *f, int w, const char *why)
{
    double t0 = now_ms();
    for (bool held = false; !held; nap_ms(2)) {
        const tern_value *names;
        tern_value *wh = who_has(C, f, &names);
        held = list_has_text(names, ON[w][0]);
        tern_value_unref(wh);
        cr_assert_lt(now_ms() - t0, T, "%s is not counted on %s: %s", tern_future_key(f), ON[w][0],
                     why);
    }
}

/* The data-server address of worker w as registered now; false if it is not. */
static bool find_address(int w, char *buf, size_t len)
{
    tern_value *st = NULL;
    OK(tern_status_info(C, &st));
    const tern_value *ws = terni_get(st, "workers"), *item;
    buf[0] = '\0';
    for (size_t i = 0; tern_list_get(ws, i, &item) == TERN_OK; i++)
        if (!strcmp(terni_get_text(item, "name"), ON[w][0]))
            snprintf(buf, len, "%s", terni_get_text(item, "address"));
    tern_value_unref(st);
    return buf[0] != '\0';
}

/* The values worker w holds of keys (a map key -> value: absent keys are not held). */
static tern_value *get_from(int w, const char *const *keys, size_t n)
{
    char addr[256], err[512] = "";
    cr_assert(find_address(w, addr, sizeof(addr)), "worker %s is not registered", ON[w][0]);
    tern_value *list = tern_list_new(n), *values = NULL;
    for (size_t i = 0; i < n; i++)
        OK(tern_list_append(list, tern_text(keys[i])));
    int rc = terni_peers_get(P, addr, list, T, &values, err, sizeof(err));
    tern_value_unref(list);
    cr_assert_eq(rc, TERN_OK, "get from %s: %s", ON[w][0], err);
    return values;
}

/* Worker w's copy of key, or NULL. */
static tern_value *copy_on(int w, const char *key)
{
    tern_value *values = get_from(w, &key, 1), *v = NULL;
    const tern_value *got;
    if (tern_map_get(values, key, &got) == TERN_OK)
        v = tern_value_ref((tern_value *)got);
    tern_value_unref(values);
    return v;
}

static bool held_on(int w, const char *key)
{
    tern_value *v = copy_on(w, key);
    tern_value_unref(v);
    return v != NULL;
}

/* The keys of the futures released by release(), until expect_all_freed checks them. */
static struct {
    size_t n;
    char *key[256];
} released;

static void release(tern_future *f)
{
    cr_assert_lt(released.n, 256);
    cr_assert_not_null(released.key[released.n++] = strdup(tern_future_key(f)));
    tern_future_release(f);
}

static void release_all(tern_future *const *fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        release(fs[i]);
}

/* Waits (bounded) until no worker holds a released key (asked on the data plane) and the
 * status counts no key on the workers and none in memory. */
static void expect_all_freed(const char *trial)
{
    double t0 = now_ms();
    char left[300] = "";
    load l;
    for (;; nap_ms(20)) {
        l = cluster_load(C);
        left[0] = '\0';
        for (int w = 0; w < nworkers && !left[0] && released.n; w++) {
            tern_value *values = get_from(w, (const char *const *)released.key, released.n);
            const char *key;
            if (tern_map_entry(values, 0, &key, NULL) == TERN_OK)
                snprintf(left, sizeof(left), "%s on %s", key, ON[w][0]);
            tern_value_unref(values);
        }
        if (l.keys == 0 && l.in_memory == 0 && !left[0])
            break;
        cr_assert_lt(now_ms() - t0, T,
                     "%s: not freed: %lld keys counted on workers, %lld in memory; held: %s", trial,
                     (long long)l.keys, (long long)l.in_memory, left[0] ? left : "none");
    }
    while (released.n)
        free(released.key[--released.n]);
}

static char killed_address[256]; /* the data server of the executor killed last */

/* Kills worker w's executor now; returns its pid (its nanny starts another). */
static pid_t kill_executor(int w)
{
    cr_assert(find_address(w, killed_address, sizeof(killed_address)));
    pid_t exec = child_of(nannies[w]);
    cr_assert_gt(exec, 0, "no executor under w%d's nanny", w);
    kill(exec, SIGKILL);
    return exec;
}

/* Waits (bounded) until w's new executor has registered (its data server on a new port). */
static void wait_replaced(int w, pid_t killed)
{
    wait_child_of(nannies[w], killed);
    double t0 = now_ms();
    char now[256];
    while (!find_address(w, now, sizeof(now)) || !strcmp(now, killed_address)) {
        cr_assert_lt(now_ms() - t0, T, "w%d's new executor did not register", w);
        nap_ms(10);
    }
    wait_workers(nworkers);
}

/* Stops worker w's executor (w = -1: resumes the one stopped). */
static void stop_executor(int w)
{
    if (w < 0) {
        kill(stopped, SIGCONT);
        stopped = 0;
        return;
    }
    stopped = child_of(nannies[w]);
    cr_assert_gt(stopped, 0, "no executor under w%d's nanny", w);
    kill(stopped, SIGSTOP);
}

/* ---- 1. the consumer's worker dies while a push to it is in flight ------------------------ */

/* One trial: d = sleep_ms(ms) on worker a, NC consumers mix(base + i, 0, d) on the workers
 * cw[0..ncw) in turn, and the executor of worker victim killed kill_at ms after d was
 * submitted. Every value is checked, and everything is freed once released. */
enum { NC = 12 };

static void kill_trial(const char *trial, int a, int ms, const int *cw, int ncw, int64_t base,
                       int victim, int kill_at)
{
    int64_t before = status_int("pushes");
    double t0 = now_ms();
    tern_future *d = sleeper(ms, a), *cs[NC + 1];
    for (int i = 0; i < NC; i++)
        cs[i] = mix(base + i, 0, &d, 1, cw[i % ncw]);
    if (kill_at > 50)
        wait_pushes(before, trial);
    double wait = kill_at - (now_ms() - t0);
    nap_ms(wait > 0 ? (int)wait : 0);
    pid_t killed = kill_executor(victim);
    for (int i = 0; i < NC; i++)
        expect_mix(cs[i], base + i, ms, trial);
    cr_assert_eq(result_int(d, trial), ms, "%s", trial);
    wait_replaced(victim, killed);
    cs[NC] = d;
    release_all(cs, NC + 1);
    expect_all_freed(trial);
}

/* d runs on w0 for 400 ms, its consumers wait on w1 for the push; w1's executor is killed
 * before, just before, at and after d's end (the push in flight). */
LTest(push, consumer_killed_while_its_push_is_in_flight, .init = make_tmpdir, .fini = teardown,
      .timeout = 60)
{
    cluster(2);
    static const int kill_at[] = { 150, 330, 395, 410, 430 };
    for (int k = 0; k < 5; k++) {
        char trial[64];
        snprintf(trial, sizeof(trial), "w1 killed at %d ms", kill_at[k]);
        kill_trial(trial, 0, 400, (int[]){ 1 }, 1, 100 * k, 1, kill_at[k]);
    }
    down_cluster();
}

/* A push that cannot be made: the consumer's worker does not answer (its executor stopped,
 * not dead: the scheduler still counts it) when the producer puts, so the put fails at the
 * pusher's connect bound (3 s, a first connection) and is reported ("push_failed"). The
 * consumer is placed again: once its worker answers again it must fetch d, not wait for a
 * push that will not come. */
LTest(push, a_failed_push_places_its_consumer_again, .init = make_tmpdir, .fini = teardown,
      .timeout = 60)
{
    cluster(2);
    int64_t before = status_int("pushes");
    tern_future *d = sleeper(200, 0), *c = mix(5, 0, &d, 1, 1);
    wait_pushes(before, "a consumer on w1");
    stop_executor(1);
    cr_assert_eq(result_int(d, "producer"), 200);
    nap_ms(4000); /* the put's connect bound, and some */
    stop_executor(-1);
    expect_mix(c, 5, 200, "consumer whose push failed");
    release_all((tern_future *[]){ d, c }, 2);
    expect_all_freed("after release");
    down_cluster();
}

/* ---- 2. the producer dies after pushing to some consumers and not to others --------------- */

/* d on A, 50-200 ms, its consumers on B and C; A's executor killed up to 30 ms before or
 * after d's end. The producer rotates over the workers (each nanny's restart backoff grows). */
LTest(push, producer_killed_around_its_end_10_seeded_trials, .init = make_tmpdir, .fini = teardown,
      .timeout = 30 + 6 * TRIALS)
{
    cluster(3);
    int64_t before = status_int("pushes");
    for (uint64_t seed = 1; seed <= TRIALS; seed++) {
        uint64_t s = seed;
        int a = (int)(seed % 3), ms = 50 + (int)(rng_next(&s) % 151);
        int kill_at = ms - 30 + (int)(rng_next(&s) % 61);
        char trial[96];
        snprintf(trial, sizeof(trial), "seed %llu (d %d ms on w%d, killed at %d ms)",
                 (unsigned long long)seed, ms, a, kill_at);
        kill_trial(trial, a, ms, (int[]){ (a + 1) % 3, (a + 2) % 3 }, 2, 1000 * (int64_t)seed, a,
                   kill_at);
    }
    cr_assert_gt(status_int("pushes"), before, "no push was asked for in %d trials", TRIALS);
    down_cluster();
}

/* The same, made certain: a consumer's worker X does not answer (its executor stopped) when
 * the producer puts d there, and the producer is killed as soon as its "done" is known and its
 * push to B has landed. The put to X is lost in flight; so is the put to C when the pusher
 * makes its puts in order, one at a time (C's is queued behind X's, held up by the connect
 * bound). The consumers waiting for those pushes must be placed again and fetch d from B. */
LTest(push, producer_killed_after_done_with_pushes_still_queued, .init = make_tmpdir,
      .fini = teardown, .timeout = 60)
{
    cluster(4);
    enum { A, B, X, CW };
    int64_t before = status_int("pushes");
    tern_future *d = sleeper(300, A);
    tern_future *cb = mix(1, 0, &d, 1, B), *cx = mix(2, 0, &d, 1, X), *cc = mix(3, 0, &d, 1, CW);
    wait_pushes(before + 2, "consumers on w1, w2, w3");
    stop_executor(X);
    cr_assert_eq(result_int(d, "producer"), 300);
    wait_held(d, B, "its push to w1 did not land"); /* so d is not lost with A */
    pid_t killed = kill_executor(A);
    nap_ms(100);
    stop_executor(-1);
    expect_mix(cb, 1, 300, "consumer on w1");
    expect_mix(cx, 2, 300, "consumer on w2 (stopped)");
    expect_mix(cc, 3, 300, "consumer on w3");
    wait_replaced(A, killed);
    release_all((tern_future *[]){ d, cb, cx, cc }, 4);
    expect_all_freed("after release");
    down_cluster();
}

/* ---- 3. a push before the consumer's compute, and a push that comes twice ----------------- */

/* terni_wcore_put's sequence (core.c): store unless held, then wake the jobs waiting. */
static void store_put(terni_store *s, terni_jobs *q, const char *key, tern_value *v)
{
    if (terni_store_put(s, key, v, 8))
        terni_jobs_stored(q, key);
}

/* A job placed early after the keys in `after` (taken). */
static terni_job *job_after(terni_jobs *q, terni_store *s, const char *key, tern_value *after)
{
    terni_job *j = terni_job_new(key, "f", "p", tern_list_len(after));
    cr_assert_not_null(j);
    terni_jobs_add(q, s, j, NULL, after);
    tern_value_unref(after);
    return j;
}

static void run_one(terni_jobs *q, terni_job *expected, const char *what)
{
    terni_job *j = terni_jobs_start(q);
    cr_assert_eq(j, expected, "%s: %s started", what, j ? j->key : "nothing");
    terni_jobs_finish(q, j);
    terni_job_free(j);
    cr_assert_null(terni_jobs_start(q), "%s: another job is ready", what);
}

LTest(push, job_queue_push_before_compute_and_twice)
{
    terni_store s;
    terni_jobs q;
    cr_assert_eq(terni_store_init(&s), 0);
    cr_assert_eq(terni_jobs_init(&q), 0);
    tern_value *v1 = tern_int(1), *v1b = tern_int(-1), *v2 = tern_int(2), *v3 = tern_int(3);
    /* pushed before the compute: the job is ready at once */
    store_put(&s, &q, "K1", v1);
    terni_job *t1 = job_after(&q, &s, "T1", tern_list_of(tern_text("K1")));
    cr_assert(terni_jobs_any_ready(&q), "a job after a key already stored is blocked");
    run_one(&q, t1, "after a stored key");
    /* pushed twice: the value first stored stays, and the second wakes no job */
    store_put(&s, &q, "K1", v1b);
    cr_assert_eq(terni_store_find(&s, "K1")->value, v1, "a second push replaced the value");
    cr_assert_null(terni_jobs_start(&q));
    /* a job after K2 and K3: K2 pushed twice must not count as both */
    terni_job *t2 = job_after(&q, &s, "T2", tern_list_of(tern_text("K2"), tern_text("K3")));
    terni_job *t3 = job_after(&q, &s, "T3", tern_list_of(tern_text("K2")));
    cr_assert_not(terni_jobs_any_ready(&q));
    store_put(&s, &q, "K2", v2);
    run_one(&q, t3, "T3 after K2");
    store_put(&s, &q, "K2", v2);
    cr_assert_null(terni_jobs_start(&q), "T2 started with K3 missing (K2 pushed twice)");
    store_put(&s, &q, "K3", v3);
    run_one(&q, t2, "T2 after K2 and K3");
    store_put(&s, &q, "K3", v3);
    cr_assert_null(terni_jobs_start(&q), "a job ran twice");
    /* pushed, freed (the scheduler had not asked for it), then computed for: it waits again */
    cr_assert(terni_store_drop(&s, "K1"));
    terni_job *t4 = job_after(&q, &s, "T4", tern_list_of(tern_text("K1")));
    cr_assert_not(terni_jobs_any_ready(&q), "a job after a dropped key is ready");
    store_put(&s, &q, "K1", v1);
    run_one(&q, t4, "after the key came again");
    tern_value *vs[] = { v1, v1b, v2, v3 };
    for (int i = 0; i < 4; i++)
        tern_value_unref(vs[i]);
    terni_jobs_destroy(&q);
    terni_store_free(&s);
}

/* The test puts d's value on the consumer's worker itself, twice, while d still runs: the
 * consumer starts at once and finishes first (a consumer's "done" before its producer's);
 * d's own push arrives third and changes nothing; both copies are counted and freed. */
LTest(push, a_push_before_the_producer_s_done_and_twice, .init = make_tmpdir, .fini = teardown,
      .timeout = 60)
{
    cluster(2);
    enum { SLOW = 2500 };
    int64_t before = status_int("pushes");
    tern_future *d = sleeper(SLOW, 0), *t = mix(7, 0, &d, 1, 1);
    wait_pushes(before, "consumer on w1");
    char addr[256], err[512] = "";
    cr_assert(find_address(1, addr, sizeof(addr)));
    tern_value *value = tern_int(SLOW), *reply = NULL,
               *req = terni_enc_put(&(terni_put_msg){ .key = tern_future_key(d), .value = value });
    cr_assert_not_null(req);
    for (int i = 0; i < 2; i++, tern_value_unref(reply))
        OK(terni_peers_request(P, addr, req, T, &reply, err, sizeof(err)));
    tern_value_unref(req);
    tern_value_unref(value);
    expect_mix(t, 7, SLOW, "consumer of the put");
    cr_assert_eq(tern_future_status(d), TERN_PENDING,
                 "the consumer did not finish before its producer: the put did not unblock it");
    cr_assert_eq(result_int(d, "producer"), SLOW);
    wait_held(d, 1, "the put copy");
    wait_held(d, 0, "the producer's copy");
    cr_assert(held_on(0, tern_future_key(d)) && held_on(1, tern_future_key(d)));
    release_all((tern_future *[]){ d, t }, 2);
    expect_all_freed("after release");
    down_cluster();
}

/* ---- 4. a pushed copy goes once its consumers are done and nothing else wants it ----------- */

LTest(push, pushed_copies_are_freed_with_their_key, .init = make_tmpdir, .fini = teardown,
      .timeout = 60)
{
    cluster(2);
    int64_t before = status_int("pushes");
    /* d is wanted by its consumers on w1 only: its future is released at once */
    tern_future *d = sleeper(400, 0), *cs[4];
    for (int i = 0; i < 4; i++)
        cs[i] = mix(10 + i, 0, &d, 1, 1);
    release(d);
    const char *key = released.key[0];
    wait_pushes(before, "consumers on w1");
    for (int i = 0; i < 4; i++)
        expect_mix(cs[i], 10 + i, 400, "d's consumers");
    /* d goes from both workers while the consumers' results stay */
    double t0 = now_ms();
    while (held_on(0, key) || held_on(1, key)) {
        cr_assert_lt(now_ms() - t0, T, "d is still held (w0: %d, w1: %d) after its consumers",
                     held_on(0, key), held_on(1, key));
        nap_ms(10);
    }
    t0 = now_ms();
    while (cluster_load(C).keys != 4) {
        cr_assert_lt(now_ms() - t0, T, "%lld keys counted, not the 4 results",
                     (long long)cluster_load(C).keys);
        nap_ms(10);
    }
    release_all(cs, 4);
    expect_all_freed("after release");
    down_cluster();
}

/* ---- 5. a pushed value is the stored value ------------------------------------------------- */

/* A value of every type: texts, extreme ints and doubles, bytes, arrays, maps, nesting. */
static tern_value *structured(void)
{
    uint64_t st = 5;
    unsigned char raw[300] = { 0, 0xff };
    int64_t ints[100];
    for (size_t i = 0; i < 300; i++) {
        uint64_t r = rng_next(&st);
        raw[i] = i < 2 ? raw[i] : (unsigned char)r;
        ints[i % 100] = (int64_t)r;
    }
    tern_value *inner = tern_map_new(), *deep = tern_int(42);
    OK(tern_map_set(inner, "\xE2\x82\xAC", tern_list_of(tern_int(INT64_MIN), tern_null())));
    OK(tern_map_set(inner, "", tern_bytes("", 0)));
    for (int i = 0; i < 6; i++)
        deep = tern_list_of(deep, tern_text("d"));
    return tern_list_of(tern_text("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80"), tern_text(""),
                        tern_int(INT64_MAX), tern_int(-1), tern_double(-0.0), tern_double(NAN),
                        tern_double(-INFINITY), tern_double(4.9e-324), tern_bool(true),
                        tern_bytes(raw, sizeof(raw)), tern_i64_array(ints, 100),
                        tern_f64_array_shaped(2, (size_t[]){ 2, 3 },
                                              (double[]){ 1.5, -2.5, 0, -0.0, 1e300, -1e-300 }),
                        inner, deep);
}

/* got (taken; NULL: f's result) is want. */
static void expect_equal(tern_value *got, tern_future *f, const tern_value *want, const char *what)
{
    if (!got && f)
        OK(tern_result(f, T, &got));
    cr_assert_not_null(got, "%s: none", what);
    char *g = tern_value_to_string(got, 0), *w = tern_value_to_string(want, 0);
    cr_assert(tern_value_equal(got, want), "%s: %s, expected %s", what, g, w);
    free(g);
    free(w);
    tern_value_unref(got);
}

LTest(push, a_pushed_value_is_the_stored_value, .init = make_tmpdir, .fini = teardown,
      .timeout = 60)
{
    cluster(2);
    upload(C, PLUGIN("testplug"));
    upload(C, PLUGIN("arrays"));
    tern_submit_opts a = on(0), b = on(1);
    run_once("testplug:echo", tern_list_of(tern_int(1)));
    run_once("arrays:add",
             tern_list_of(tern_f64_array((double[]){ 1 }, 1), tern_f64_array((double[]){ 2 }, 1)));
    enum { N = 1000 };
    double x[N], twice[N];
    uint64_t rs = 17;
    for (size_t i = 0; i < N; i++) {
        uint64_t bits = rng_next(&rs);
        memcpy(&x[i], &bits, sizeof(bits)); /* odd i: any bit pattern */
        if (i % 2 == 0)
            x[i] = i == 0   ? -0.0
                   : i == 2 ? INFINITY
                   : i == 4 ? 4.9e-324
                            : (double)(bits >> 11) * 0x1.0p-53;
        twice[i] = x[i] + x[i];
    }
    tern_value *want_d = structured(), *want_y = tern_f64_array(twice, N);
    /* on w0, early behind a sleeper: d = echo(value), y = add(x, x) (made by the plugin);
     * their consumers on w1 echo them back */
    int64_t before = status_int("pushes");
    tern_future *s = sleeper(400, 0);
    tern_future *d =
        submit("testplug:echo", tern_list_of(tern_value_ref(want_d), tern_future_ref(s)), &a);
    tern_future *xf =
        submit("testplug:echo", tern_list_of(tern_f64_array(x, N), tern_future_ref(s)), &a);
    tern_future *y =
        submit("arrays:add", tern_list_of(tern_future_ref(xf), tern_future_ref(xf)), &a);
    tern_future *ed = submit("testplug:echo", tern_list_of(tern_future_ref(d)), &b);
    tern_future *ey = submit("testplug:echo", tern_list_of(tern_future_ref(y)), &b);
    wait_pushes(before + 1, "two consumers on w1");
    expect_equal(NULL, ed, want_d, "the consumer's echo of d");
    expect_equal(NULL, ey, want_y, "the consumer's echo of y");
    /* the producer's copy and the pushed copy, read from each worker's data server */
    expect_equal(copy_on(0, tern_future_key(d)), NULL, want_d, "d on w0");
    expect_equal(copy_on(1, tern_future_key(d)), NULL, want_d, "d pushed to w1");
    expect_equal(copy_on(0, tern_future_key(y)), NULL, want_y, "y on w0");
    expect_equal(copy_on(1, tern_future_key(y)), NULL, want_y, "y pushed to w1");
    expect_equal(NULL, d, want_d, "d's result");
    tern_value_unref(want_d);
    tern_value_unref(want_y);
    release_all((tern_future *[]){ s, d, xf, y, ed, ey }, 6);
    expect_all_freed("after release");
    down_cluster();
}

/* ---- 6. a stencil ---------------------------------------------------------------------- */

enum { WIDTH = 4, STEPS = 50 };

/* cell (s, c) = mix(s * WIDTH + c, micros, the cells c-1, c, c+1 of step s-1 (periodic)), its
 * column on worker c % nw. Futures of steps not held are released at once (their lineage
 * stays): the last step is held, and every hold_every-th. */
static void stencil(tern_future **fs, int64_t *expect, int nw, int micros, int hold_every)
{
    for (int s = 0; s < STEPS; s++)
        for (int c = 0; c < WIDTH; c++) {
            int i = s * WIDTH + c, n[3] = { (c + WIDTH - 1) % WIDTH, c, (c + 1) % WIDTH };
            tern_future *deps[3];
            int64_t dv[3];
            for (int k = 0; k < 3 && s > 0; k++) {
                deps[k] = fs[i - WIDTH - c + n[k]];
                dv[k] = expect[i - WIDTH - c + n[k]];
            }
            fs[i] = mix(i, micros, deps, s ? 3 : 0, c % nw);
            expect[i] = mix_local(i, dv, s ? 3 : 0);
        }
    for (int i = 0; i < (STEPS - 1) * WIDTH; i++)
        if ((i / WIDTH) % hold_every != hold_every - 1) {
            release(fs[i]);
            fs[i] = NULL;
        }
}

static void check_stencil(tern_future **fs, const int64_t *expect, const char *trial)
{
    for (int i = 0; i < STEPS * WIDTH; i++)
        if (fs[i]) {
            cr_assert_eq(result_int(fs[i], trial), expect[i], "%s: cell (%d, %d)", trial, i / WIDTH,
                         i % WIDTH);
            release(fs[i]);
        }
    expect_all_freed(trial);
}

/* The stencil on 3 workers, checked against a local computation, through pushes; then again
 * (other keys) with an executor killed mid-run, in seeded trials. */
LTest(push, stencil_through_pushes_and_with_an_executor_killed, .init = make_tmpdir,
      .fini = teardown, .timeout = 40 + 3 * TRIALS)
{
    cluster(3);
    tern_future *fs[STEPS * WIDTH];
    int64_t expect[STEPS * WIDTH];
    int64_t before = status_int("pushes");
    stencil(fs, expect, 3, 1000, 1); /* every cell held */
    check_stencil(fs, expect, "stencil");
    cr_assert_gt(status_int("pushes"), before, "no push: the stencil went by ordinary fetches");
    for (uint64_t seed = 1; seed <= (TRIALS + 4) / 5; seed++) {
        uint64_t s = seed * 7919;
        int victim = (int)(rng_next(&s) % 3), kill_at = 60 + (int)(rng_next(&s) % 100);
        char trial[96];
        snprintf(trial, sizeof(trial), "seed %llu (w%d killed at %d ms)", (unsigned long long)seed,
                 victim, kill_at);
        before = status_int("pushes");
        double t0 = now_ms();
        stencil(fs, expect, 3, 5000 + (int)seed, 10); /* micros: other keys each trial */
        double wait = kill_at - (now_ms() - t0);
        nap_ms(wait > 0 ? (int)wait : 0);
        cr_assert_eq(tern_future_status(fs[STEPS * WIDTH - 1]), TERN_PENDING,
                     "%s: the stencil ended before the kill", trial);
        pid_t killed = kill_executor(victim);
        check_stencil(fs, expect, trial);
        cr_assert_gt(status_int("pushes"), before, "%s: no push asked for", trial);
        wait_replaced(victim, killed);
    }
    down_cluster();
}
