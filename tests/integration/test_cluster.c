/* Integration tests of the cluster: real tern-scheduler and tern-worker processes on loopback,
 * driven through the client SDK (tern.h).
 *
 * Every test starts its own cluster (local://N in .init, or processes spawned here) and stops
 * it at the end of the test body (so the leak check covers tern_close), or in .fini when an
 * assertion ended the test early. Every wait is bounded, tern_close included. The plugins come
 * from the build tree: testplug (inc, echo, version, fail), testplug_v2, clusterplug (count,
 * sleep_ms, sum, add) and the arrays plugin every scheduler preloads.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tern/tern.h>

#include "../unit/leakcheck.h"

#include "harness.h"

static const char *W0[] = { "local-0", NULL }, *W1[] = { "local-1", NULL };

/* ---- 1. a future as an argument, across workers ------------------------------------ */

LTest(cluster, future_argument_moves_between_workers, .init = up2, .fini = cleanup)
{
    tern_submit_opts on0 = { .workers = W0 }, on1 = { .workers = W1 };
    tern_future *x = submit("testplug:inc", tern_list_of(tern_int(100)), &on0);
    tern_future *y = submit("testplug:inc", tern_list_of(tern_future_ref(x)), &on1);
    cr_assert_eq(int_of(y), 102);
    cr_assert_eq(int_of(x), 101);

    const tern_value *names;
    tern_value *m = who_has(C, x, &names);
    cr_assert(list_has_text(names, "local-0"), "the producer ran elsewhere");
    cr_assert(list_has_text(names, "local-1"), "the consumer's worker keeps no replica");
    cr_assert_eq(tern_list_len(names), 2);
    tern_value_unref(m);
    m = who_has(C, y, &names);
    cr_assert(list_has_text(names, "local-1") && tern_list_len(names) == 1,
              "the consumer did not run (only) on local-1");
    tern_value_unref(m);
    tern_future_release(x);
    tern_future_release(y);
    down();
}

/* ---- 2. futures nested in lists and maps -------------------------------------------- */

LTest(cluster, futures_nested_in_lists_and_maps, .init = up2, .fini = cleanup)
{
    tern_future *f1 = submit("testplug:inc", tern_list_of(tern_int(10)), NULL);
    tern_future *f2 = submit("testplug:inc", tern_list_of(tern_int(20)), NULL);
    tern_future *f3 = submit("testplug:inc", tern_list_of(tern_int(30)), NULL);
    tern_value *inner = tern_map_new();
    cr_assert_eq(tern_map_set(inner, "k", tern_future_ref(f3)), TERN_OK);
    cr_assert_eq(tern_map_set(inner, "plain", tern_int(1000)), TERN_OK);
    /* sum([f1, [f2, {"k": f3, "plain": 1000}]], f1) = 11 + 21 + 31 + 1000 + 11 */
    tern_value *arg = tern_list_of(tern_future_ref(f1), tern_list_of(tern_future_ref(f2), inner));
    tern_future *s = submit("clusterplug:sum", tern_list_of(arg, tern_future_ref(f1)), NULL);
    cr_assert_eq(int_of(s), 11 + 21 + 31 + 1000 + 11);

    /* echo gives the substituted structure back. */
    tern_value *m = tern_map_new();
    cr_assert_eq(tern_map_set(m, "k", tern_future_ref(f3)), TERN_OK);
    tern_future *e =
        submit("testplug:echo", tern_list_of(tern_list_of(tern_future_ref(f2), m)), NULL);
    tern_value *got = NULL, *want = tern_map_new();
    cr_assert_eq(tern_map_set(want, "k", tern_int(31)), TERN_OK);
    want = tern_list_of(tern_int(21), want);
    OK(tern_result(e, T, &got));
    char *gs = tern_value_to_string(got, 0);
    cr_assert(tern_value_equal(got, want), "echo gave %s", gs);
    free(gs);
    tern_value_unref(got);
    tern_value_unref(want);
    tern_future *all[] = { f1, f2, f3, s, e };
    for (size_t i = 0; i < 5; i++)
        tern_future_release(all[i]);
    down();
}

/* ---- 3. pure dedup, impure tasks ---------------------------------------------------- */

LTest(cluster, pure_calls_dedup_impure_calls_run_every_time, .init = up2, .fini = cleanup)
{
    const char *pure_path = strdup(scratch("pure")), *impure_path = strdup(scratch("impure"));
    tern_future *a = submit("clusterplug:count", tern_list_of(tern_text(pure_path)), NULL);
    tern_future *b = submit("clusterplug:count", tern_list_of(tern_text(pure_path)), NULL);
    cr_assert_str_eq(tern_future_key(a), tern_future_key(b));
    cr_assert_eq(int_of(a), 1);
    cr_assert_eq(int_of(b), 1);
    /* The same call again after it finished, and twice within one map. */
    tern_future *c = submit("clusterplug:count", tern_list_of(tern_text(pure_path)), NULL);
    tern_value *args[2] = { tern_list_of(tern_text(pure_path)),
                            tern_list_of(tern_text(pure_path)) };
    tern_future *m[2];
    OK(tern_map(C, "clusterplug:count", args, 2, NULL, m));
    cr_assert_str_eq(tern_future_key(c), tern_future_key(a));
    cr_assert_str_eq(tern_future_key(m[0]), tern_future_key(a));
    cr_assert_str_eq(tern_future_key(m[1]), tern_future_key(a));
    cr_assert_eq(int_of(c), 1);
    cr_assert_eq(int_of(m[1]), 1);

    tern_submit_opts imp = { .impure = true };
    tern_future *i[6];
    for (int k = 0; k < 3; k++)
        i[k] = submit("clusterplug:count", tern_list_of(tern_text(impure_path)), &imp);
    tern_value *iargs[3];
    for (int k = 0; k < 3; k++)
        iargs[k] = tern_list_of(tern_text(impure_path));
    OK(tern_map(C, "clusterplug:count", iargs, 3, &imp, i + 3));
    OK(tern_wait(i, 6, T, TERN_WAIT_ALL));
    for (int k = 0; k < 6; k++) {
        int64_t n = int_of(i[k]);
        cr_assert(n >= 1 && n <= 6, "count gave %lld", (long long)n);
        for (int l = 0; l < k; l++)
            cr_assert_str_neq(tern_future_key(i[k]), tern_future_key(i[l]));
    }
    nap_ms(200); /* a stray second run would show now */
    cr_assert_eq(file_size(pure_path), 1, "the pure task ran %lld times",
                 (long long)file_size(pure_path));
    cr_assert_eq(file_size(impure_path), 6, "impure tasks ran %lld times, not 6",
                 (long long)file_size(impure_path));
    tern_future_release(a);
    tern_future_release(b);
    tern_future_release(c);
    tern_future_release(m[0]);
    tern_future_release(m[1]);
    for (int k = 0; k < 6; k++)
        tern_future_release(i[k]);
    free((void *)pure_path);
    free((void *)impure_path);
    down();
}

/* ---- 4. scatter and gather ------------------------------------------------------------ */

LTest(cluster, scatter_and_gather, .init = up2, .fini = cleanup)
{
    tern_future *s = NULL, *s2 = NULL, *big = NULL;
    OK(tern_scatter(C, tern_list_of(tern_int(1), tern_int(2), tern_int(3)), &s));
    OK(tern_scatter(C, tern_list_of(tern_int(1), tern_int(2), tern_int(3)), &s2));
    cr_assert_str_eq(tern_future_key(s), tern_future_key(s2), "scatter is not content-keyed");
    /* Large enough not to travel inline. */
    size_t n = 50000;
    double *data = malloc(n * sizeof(double)), want_sum = 0;
    for (size_t k = 0; k < n; k++)
        want_sum += data[k] = (double)(k % 97);
    OK(tern_scatter(C, tern_f64_array(data, n), &big));

    tern_future *sum = submit("clusterplug:sum", tern_list_of(tern_future_ref(s)), NULL);
    tern_future *inc = submit("testplug:inc", tern_list_of(tern_future_ref(sum)), NULL);
    tern_future *asum = submit("arrays:sum", tern_list_of(tern_future_ref(big)), NULL);
    tern_future *fs[] = { s, sum, inc, big, asum };
    tern_value *out[5];
    OK(tern_gather(fs, 5, T, out));
    tern_value *want = tern_list_of(tern_int(1), tern_int(2), tern_int(3));
    cr_assert(tern_value_equal(out[0], want));
    tern_value_unref(want);
    int64_t i;
    OK(tern_value_get_int(out[1], &i));
    cr_assert_eq(i, 6);
    OK(tern_value_get_int(out[2], &i));
    cr_assert_eq(i, 7);
    const double *got;
    size_t got_n;
    OK(tern_value_get_f64_array(out[3], &got, &got_n));
    cr_assert_eq(got_n, n);
    cr_assert(!memcmp(got, data, n * sizeof(double)), "the scattered array came back changed");
    double d;
    OK(tern_value_get_number(out[4], &d));
    cr_assert_float_eq(d, want_sum, 1e-9);
    for (int k = 0; k < 5; k++)
        tern_value_unref(out[k]);

    const tern_value *names;
    tern_value *m = who_has(C, s, &names);
    cr_assert_geq(tern_list_len(names), 1, "no worker holds the scattered value");
    tern_value_unref(m);

    /* gather is all or nothing: one failed future fails it and leaves every out NULL. */
    tern_future *bad = submit("testplug:fail", NULL, NULL);
    tern_future *mixed[] = { sum, bad, inc };
    tern_value *mo[3] = { tern_int(0), tern_int(0), tern_int(0) };
    tern_value *keep[3] = { mo[0], mo[1], mo[2] };
    ERR(TERN_EINVAL, tern_gather(mixed, 3, T, mo));
    for (int k = 0; k < 3; k++) {
        cr_assert_null(mo[k]);
        tern_value_unref(keep[k]);
    }
    free(data);
    tern_future *all[] = { s, s2, big, sum, inc, asum, bad };
    for (size_t k = 0; k < 7; k++)
        tern_future_release(all[k]);
    down();
}

/* ---- 5. wait ALL / ANY, timeouts ---------------------------------------------------- */

LTest(cluster, wait_all_any_and_timeouts, .init = up2, .fini = cleanup)
{
    tern_future *fs[8];
    for (int k = 0; k < 8; k++)
        fs[k] = submit("testplug:inc", tern_list_of(tern_int(1000 + k)), NULL);
    OK(tern_wait(fs, 8, T, TERN_WAIT_ALL));
    for (int k = 0; k < 8; k++) {
        cr_assert_eq(tern_future_status(fs[k]), TERN_FINISHED);
        cr_assert_eq(int_of(fs[k]), 1001 + k);
        tern_future_release(fs[k]);
    }

    tern_submit_opts on0 = { .workers = W0 }, on1 = { .workers = W1 };
    tern_future *slow = submit("clusterplug:sleep_ms", tern_list_of(tern_int(2000)), &on0);
    tern_future *fast = submit("clusterplug:sleep_ms", tern_list_of(tern_int(10)), &on1);
    tern_future *both[] = { slow, fast };
    double t0 = now_ms();
    OK(tern_wait(both, 2, T, TERN_WAIT_ANY));
    double took = now_ms() - t0;
    cr_assert_eq(tern_future_status(fast), TERN_FINISHED);
    cr_assert_eq(tern_future_status(slow), TERN_PENDING, "ANY waited for the slow one too");
    cr_assert_lt(took, 1900, "ANY took %.0f ms", took);

    /* Timeouts while the slow one runs. */
    t0 = now_ms();
    ERR(TERN_ETIMEDOUT, tern_wait(both, 2, 150, TERN_WAIT_ALL));
    took = now_ms() - t0;
    cr_assert(took >= 140 && took < 1500, "a 150 ms wait took %.0f ms", took);
    ERR(TERN_ETIMEDOUT, tern_wait(&slow, 1, 50, TERN_WAIT_ANY));
    tern_value *v = tern_int(1);
    tern_value *keep = v;
    ERR(TERN_ETIMEDOUT, tern_result(slow, 0, &v));
    cr_assert_null(v);
    tern_value_unref(keep);
    ERR(TERN_ETIMEDOUT, tern_result(slow, 50, &v));
    cr_assert_eq(tern_future_status(slow), TERN_PENDING);

    OK(tern_wait(both, 2, T, TERN_WAIT_ALL));
    cr_assert_eq(int_of(slow), 2000);
    cr_assert_eq(int_of(fast), 10);
    OK(tern_wait(both, 2, 0, TERN_WAIT_ALL)); /* done ones need no time */
    OK(tern_wait(NULL, 0, 0, TERN_WAIT_ALL));
    tern_future_release(slow);
    tern_future_release(fast);
    down();
}

/* ---- 6. as_completed ----------------------------------------------------------------- */

LTest(cluster, as_completed_yields_in_completion_order, .init = up1x4, .fini = cleanup)
{
    /* One worker with four threads: all run at once, so they end in order of duration. */
    int ms[] = { 1500, 300, 900 };
    tern_future *fs[4];
    for (int k = 0; k < 3; k++)
        fs[k] = submit("clusterplug:sleep_ms", tern_list_of(tern_int(ms[k])), NULL);
    fs[3] = submit("clusterplug:sleep_ms", tern_list_of(tern_text("not a number")), NULL);
    tern_as_completed *it = NULL;
    OK(tern_as_completed_new(fs, 4, &it));
    tern_future *order[4];
    for (int k = 0; k < 4; k++) {
        OK(tern_as_completed_next(it, T, &order[k]));
        cr_assert_not_null(order[k]);
    }
    tern_future *none = NULL;
    ERR(TERN_ENOTFOUND, tern_as_completed_next(it, T, &none));
    cr_assert_null(none);
    cr_assert_eq(order[0], fs[3], "the failing task (done at once) is not first");
    cr_assert_eq(tern_future_status(order[0]), TERN_ERROR);
    cr_assert_eq(order[1], fs[1], "300 ms is not second");
    cr_assert_eq(order[2], fs[2], "900 ms is not third");
    cr_assert_eq(order[3], fs[0], "1500 ms is not last");
    for (int k = 0; k < 4; k++)
        tern_future_release(order[k]);
    tern_as_completed_free(it);

    /* A slow consumer still gets completion order: all are done before the first next(). */
    int ms2[] = { 800, 100, 450 };
    tern_future *gs[3];
    for (int k = 0; k < 3; k++)
        gs[k] = submit("clusterplug:sleep_ms", tern_list_of(tern_int(ms2[k])), NULL);
    OK(tern_as_completed_new(gs, 3, &it));
    OK(tern_wait(gs, 3, T, TERN_WAIT_ALL));
    int want[] = { 1, 2, 0 };
    for (int k = 0; k < 3; k++) {
        tern_future *f = NULL;
        OK(tern_as_completed_next(it, 0, &f));
        cr_assert_eq(f, gs[want[k]], "yield %d is the %d ms task", k,
                     f == gs[0]   ? 800
                     : f == gs[1] ? 100
                                  : 450);
        tern_future_release(f);
    }
    tern_as_completed_free(it);
    for (int k = 0; k < 3; k++)
        tern_future_release(gs[k]);

    /* A timeout while nothing is done. */
    tern_future *slow = submit("clusterplug:sleep_ms", tern_list_of(tern_int(700)), NULL);
    OK(tern_as_completed_new(&slow, 1, &it));
    ERR(TERN_ETIMEDOUT, tern_as_completed_next(it, 50, &none));
    cr_assert_null(none);
    OK(tern_as_completed_next(it, T, &none));
    cr_assert_eq(none, slow);
    tern_future_release(none);
    tern_as_completed_free(it);
    tern_future_release(slow);
    for (int k = 0; k < 4; k++)
        tern_future_release(fs[k]);
    down();
}

/* ---- 7. cancel ---------------------------------------------------------------------- */

LTest(cluster, cancel_waiting_task_and_its_dependents, .init = up2, .fini = cleanup)
{
    tern_future *slow = submit("clusterplug:sleep_ms", tern_list_of(tern_int(1500)), NULL);
    tern_future *dep =
        submit("clusterplug:add", tern_list_of(tern_future_ref(slow), tern_int(1)), NULL);
    tern_future *dep2 =
        submit("clusterplug:add", tern_list_of(tern_future_ref(dep), tern_int(1)), NULL);
    OK(tern_cancel(&dep, 1));
    tern_future *both[] = { dep, dep2 };
    OK(tern_wait(both, 2, T, TERN_WAIT_ALL));
    cr_assert_eq(tern_future_status(slow), TERN_PENDING, "the dependency should still run");
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(tern_future_status(both[k]), TERN_CANCELLED, "future %d: status %d", k,
                     tern_future_status(both[k]));
        tern_value *v = NULL;
        ERR(TERN_ECANCELED, tern_result(both[k], T, &v));
        cr_assert_null(v);
        int code;
        const char *msg, *task, *key;
        OK(tern_future_error(both[k], &code, &msg, &task, &key));
        cr_assert_eq(code, TERN_ECANCELED);
        cr_assert_str_eq(key, tern_future_key(dep), "the cancelled root is not named");
        cr_assert_str_eq(task, "clusterplug:add");
    }
    /* The dependency is unaffected; cancelling a done task changes nothing. */
    cr_assert_eq(int_of(slow), 1500);
    OK(tern_cancel(&slow, 1));
    cr_assert_eq(int_of(slow), 1500);
    cr_assert_eq(tern_future_status(slow), TERN_FINISHED);
    tern_future_release(dep2);
    tern_future_release(dep);
    tern_future_release(slow);
    down();
}

/* ---- 8. release frees worker memory --------------------------------------------------- */

LTest(cluster, release_frees_worker_memory, .init = up2, .fini = cleanup)
{
    enum { N = 8, LEN = 20000 };
    tern_value *args[N];
    for (int k = 0; k < N; k++)
        args[k] = tern_list_of(tern_int(LEN), tern_int(k));
    tern_future *fs[N];
    OK(tern_map(C, "arrays:random", args, N, NULL, fs));
    tern_future *small = submit("testplug:inc", tern_list_of(tern_int(5)), NULL);
    OK(tern_wait(fs, N, T, TERN_WAIT_ALL));
    cr_assert_eq(int_of(small), 6);
    load l = cluster_load(C);
    cr_assert_eq(l.workers, 2);
    cr_assert_geq(l.keys, N + 1, "keys %lld", (long long)l.keys);
    cr_assert_geq(l.bytes, (int64_t)N * LEN * 8, "bytes %lld", (long long)l.bytes);
    cr_assert_eq(l.in_memory, N + 1);

    for (int k = 0; k < N; k++)
        tern_future_release(fs[k]);
    tern_future_release(small);
    double t0 = now_ms();
    do {
        l = cluster_load(C);
        if (l.keys == 0 && l.bytes == 0 && l.in_memory == 0)
            break;
        nap_ms(20);
    } while (now_ms() - t0 < 10000);
    cr_assert(l.keys == 0 && l.bytes == 0 && l.in_memory == 0,
              "after release: %lld keys, %lld bytes on workers, %lld keys in memory",
              (long long)l.keys, (long long)l.bytes, (long long)l.in_memory);
    down();
}

/* Resident kilobytes of a process (VmRSS in /proc/PID/status), or -1. */
static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* The daemons keep freed memory while busy (runtime/util/daemon.c) and give it back once idle:
 * a worker that held 80 MB of results, and the scheduler that held their copies (small results
 * ride with "done"), are back near where they started soon after the release, not holding the
 * pages for ever. */
LTest(cluster, idle_daemons_give_released_memory_back, .init = make_tmpdir, .fini = cleanup_procs)
{
    if (sanitized_daemons())
        cr_skip("the daemons are built with a sanitizer, whose allocator keeps freed memory");
    enum { N = 10000, LEN = 1000 }; /* 8 KB arrays: on the heap, not in memfds (bigbuf.h) */
    char addr[256];
    pid_t sched = start_scheduler("tcp://127.0.0.1:0", NULL, addr, sizeof(addr));
    pid_t nanny = start_worker_with(addr, "w0", NULL);
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(addr, &o, &C));
    wait_workers(1);
    pid_t exec = child_of(nanny);
    cr_assert_gt(exec, 0, "no executor under the worker's nanny");
    const pid_t pids[2] = { exec, sched };
    const char *names[2] = { "worker", "scheduler" };
    long before[2], held[2];
    for (int p = 0; p < 2; p++)
        cr_assert_gt(before[p] = rss_kb(pids[p]), 0);

    tern_value **args = malloc(N * sizeof(*args));
    tern_future **fs = malloc(N * sizeof(*fs));
    for (int k = 0; k < N; k++)
        args[k] = tern_list_of(tern_int(LEN), tern_int(k));
    OK(tern_map(C, "arrays:random", args, N, NULL, fs));
    OK(tern_wait(fs, N, 90000, TERN_WAIT_ALL));
    for (int p = 0; p < 2; p++) {
        held[p] = rss_kb(pids[p]);
        cr_assert_gt(held[p] - before[p], (long)N * LEN * 8 / 1024 * 3 / 4,
                     "the %s's RSS grew by %ld kB only, holding %d arrays of %d bytes", names[p],
                     held[p] - before[p], N, LEN * 8);
    }

    for (int k = 0; k < N; k++)
        tern_future_release(fs[k]);
    double t0 = now_ms();
    for (int p = 0; p < 2; p++) {
        long after, bound = before[p] + (held[p] - before[p]) / 4;
        while ((after = rss_kb(pids[p])) > bound && now_ms() - t0 < 10000)
            nap_ms(50);
        cr_assert_leq(after, bound,
                      "10 s after releasing everything the idle %s still holds %ld kB "
                      "(%ld before the tasks, %ld while holding their results)",
                      names[p], after, before[p], held[p]);
    }
    free(args);
    free(fs);
    down_procs();
}

/* ---- 9. plugins uploaded before and after a worker joins ----------------------------- */

LTest(cluster, plugin_uploaded_before_and_after_worker_joins, .init = make_tmpdir,
      .fini = cleanup_procs)
{
    char addr[256];
    start_scheduler("tcp://127.0.0.1:0", NULL, addr, sizeof(addr));
    start_worker(addr, "first");
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(addr, &o, &C));
    wait_workers(1);

    /* Uploaded while only "first" exists; "second" must get it when it joins. A task
     * restricted to "second" waits (no worker) until then. */
    upload(C, PLUGIN("testplug"));
    const char *on_second[] = { "second", NULL }, *on_first[] = { "first", NULL };
    tern_submit_opts o2 = { .workers = on_second }, o1 = { .workers = on_first };
    tern_future *early = submit("testplug:inc", tern_list_of(tern_int(41)), &o2);
    nap_ms(200);
    cr_assert_eq(tern_future_status(early), TERN_PENDING, "ran without its worker");
    start_worker(addr, "second");
    wait_workers(2);
    cr_assert_eq(int_of(early), 42);
    tern_future *late = submit("testplug:version", NULL, &o2);
    tern_value *v = NULL;
    OK(tern_result(late, T, &v));
    const char *s;
    OK(tern_value_get_text(v, &s, NULL));
    cr_assert_str_eq(s, "1.0.0");
    tern_value_unref(v);
    const tern_value *names;
    tern_value *m = who_has(C, early, &names);
    cr_assert(list_has_text(names, "second") && tern_list_len(names) == 1);
    tern_value_unref(m);

    /* Uploaded when both exist: a new plugin, and a new version of testplug. */
    upload(C, PLUGIN("clusterplug"));
    upload(C, PLUGIN("testplug_v2"));
    tern_future *a1 = submit("clusterplug:add", tern_list_of(tern_int(1), tern_int(2)), &o1);
    tern_future *a2 =
        submit("clusterplug:add", tern_list_of(tern_future_ref(a1), tern_int(3)), &o2);
    cr_assert_eq(int_of(a2), 6);
    tern_future *v1 = submit("testplug:version", NULL, &o1);
    tern_future *v2 = submit("testplug:version", NULL, &o2);
    cr_assert_str_neq(tern_future_key(v2), tern_future_key(late), "a new version, a new key");
    tern_future *vs[] = { v1, v2 };
    tern_value *out[2];
    OK(tern_gather(vs, 2, T, out));
    for (int k = 0; k < 2; k++) {
        OK(tern_value_get_text(out[k], &s, NULL));
        cr_assert_str_eq(s, "2.0.0", "worker %d ran version %s", k, s);
        tern_value_unref(out[k]);
    }
    tern_future *all[] = { early, late, a1, a2, v1, v2 };
    for (size_t k = 0; k < 6; k++)
        tern_future_release(all[k]);
    down_procs();
}

/* Tasks submitted while no worker is connected wait, and are placed when one joins in the order
 * they were submitted (the scheduler's task table iterates in hash order, so it sorts them):
 * with one executor thread they also finish in that order. */
LTest(cluster, tasks_waiting_for_a_worker_run_in_submission_order, .init = make_tmpdir,
      .fini = cleanup_procs)
{
    enum { N = 200 };
    char addr[256];
    start_scheduler("tcp://127.0.0.1:0", NULL, addr, sizeof(addr));
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(addr, &o, &C));
    upload(C, PLUGIN("testplug"));
    tern_future *fs[N];
    for (int k = 0; k < N; k++)
        fs[k] = submit("testplug:inc", tern_list_of(tern_int(k)), NULL);
    nap_ms(100);
    for (int k = 0; k < N; k++)
        cr_assert_eq(tern_future_status(fs[k]), TERN_PENDING, "task %d ran with no worker", k);
    start_worker(addr, "only"); /* one executor thread */
    tern_as_completed *it = NULL;
    OK(tern_as_completed_new(fs, N, &it));
    for (int k = 0; k < N; k++) {
        tern_future *f = NULL;
        OK(tern_as_completed_next(it, T, &f));
        int at = -1;
        for (int m = 0; m < N; m++)
            if (fs[m] == f)
                at = m;
        cr_assert_eq(at, k, "the %d-th task to finish was submitted %d-th", k, at);
        cr_assert_eq(int_of(f), k + 1);
        tern_future_release(f); /* as_completed_next's reference */
    }
    tern_as_completed_free(it);
    for (int k = 0; k < N; k++)
        tern_future_release(fs[k]);
    down_procs();
}

/* ---- 10. two clients share a pure key -------------------------------------------------- */

LTest(cluster, two_clients_share_a_pure_key, .init = up2, .fini = cleanup)
{
    tern_client *b = NULL;
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(tern_client_address(C), &o, &b));
    const char *path = scratch("shared");
    tern_future *ca = submit("clusterplug:count", tern_list_of(tern_text(path)), NULL);
    tern_future *cb = NULL;
    OK(tern_submit(b, "clusterplug:count", tern_list_of(tern_text(path)), NULL, &cb));
    cr_assert_str_eq(tern_future_key(ca), tern_future_key(cb));
    cr_assert_eq(int_of(ca), 1);
    cr_assert_eq(int_of(cb), 1);

    /* A result too big to travel inline: b fetches it from a worker after a released it. */
    tern_future *ra = submit("arrays:random", tern_list_of(tern_int(20000), tern_int(7)), NULL);
    tern_future *rb = NULL;
    OK(tern_submit(b, "arrays:random", tern_list_of(tern_int(20000), tern_int(7)), NULL, &rb));
    cr_assert_str_eq(tern_future_key(ra), tern_future_key(rb));
    tern_value *va = NULL, *vb = NULL;
    OK(tern_result(ra, T, &va));
    OK(tern_wait(&rb, 1, T, TERN_WAIT_ALL));
    tern_future_release(ra);
    tern_future_release(ca);
    (void)cluster_load(C); /* a call on a's ordered stream: its release has been processed */
    OK(tern_result(rb, T, &vb));
    cr_assert(tern_value_equal(va, vb), "b got another value");
    tern_value_unref(va);
    tern_value_unref(vb);
    const tern_value *names;
    tern_value *m = who_has(b, rb, &names);
    cr_assert_geq(tern_list_len(names), 1, "released by a, the key left the workers");
    tern_value_unref(m);
    cr_assert_eq(int_of(cb), 1);
    nap_ms(100);
    cr_assert_eq(file_size(path), 1, "count ran %lld times", (long long)file_size(path));

    /* With b's references gone too, the cluster forgets both keys. */
    tern_future_release(rb);
    tern_future_release(cb);
    cr_assert(close_bounded(b), "closing the second client hung");
    double t0 = now_ms();
    load l;
    do {
        l = cluster_load(C);
        if (l.in_memory == 0 && l.keys == 0)
            break;
        nap_ms(20);
    } while (now_ms() - t0 < 10000);
    cr_assert(l.in_memory == 0 && l.keys == 0, "%lld keys left", (long long)l.in_memory);
    down();
}

/* A new version of a plugin, uploaded by one client, is what another client's later
 * submissions by name run (the scheduler tells every client about uploads). */
LTest(cluster, new_plugin_version_reaches_other_clients, .init = up2, .fini = cleanup)
{
    tern_client *b = NULL;
    tern_connect_opts o = { .timeout_ms = T };
    upload(C, PLUGIN("testplug"));
    OK(tern_connect(tern_client_address(C), &o, &b));
    tern_submit_opts impure = { .impure = true };
    const char *got = "";
    tern_value *v = NULL;
    tern_future *f = NULL;
    OK(tern_submit(b, "testplug:version", NULL, &impure, &f));
    OK(tern_result(f, T, &v));
    OK(tern_value_get_text(v, &got, NULL));
    cr_assert_str_eq(got, "1.0.0");
    tern_value_unref(v);
    tern_future_release(f);

    upload(C, PLUGIN("testplug_v2"));
    double t0 = now_ms();
    bool seen = false;
    while (!seen && now_ms() - t0 < 5000) { /* the notice reaches b asynchronously */
        OK(tern_submit(b, "testplug:version", NULL, &impure, &f));
        OK(tern_result(f, T, &v));
        OK(tern_value_get_text(v, &got, NULL));
        seen = !strcmp(got, "2.0.0");
        tern_value_unref(v);
        tern_future_release(f);
        if (!seen)
            nap_ms(10);
    }
    cr_assert(seen, "client b still runs version %s after another client uploaded 2.0.0", got);
    cr_assert(close_bounded(b), "closing the second client hung");
    down();
}

/* ---- 11. many tasks, long chains ----------------------------------------------------- */

/* Maps testplug:inc over 0..n-1 on C; fs[0..n) gets the futures. */
static void map_incs(tern_future **fs, int n)
{
    tern_value **args = malloc((size_t)n * sizeof(*args));
    cr_assert_not_null(args);
    for (int k = 0; k < n; k++)
        args[k] = tern_list_of(tern_int(k));
    OK(tern_map(C, "testplug:inc", args, (size_t)n, NULL, fs));
    free(args);
}

/* Gathers the n futures of map_incs, checks each result and releases them. */
static void gather_incs(tern_future **fs, int n, int timeout_ms)
{
    tern_value **out = malloc((size_t)n * sizeof(*out));
    cr_assert_not_null(out);
    OK(tern_gather(fs, (size_t)n, timeout_ms, out));
    for (int k = 0; k < n; k++) {
        int64_t i = -1;
        OK(tern_value_get_int(out[k], &i));
        cr_assert_eq(i, k + 1, "task %d gave %lld", k, (long long)i);
        tern_value_unref(out[k]);
        tern_future_release(fs[k]);
    }
    free(out);
}

LTest(cluster, map_of_10000_tasks, .init = up2, .fini = cleanup)
{
    enum { N = 10000 };
    tern_future **fs = malloc(N * sizeof(*fs));
    cr_assert_not_null(fs);
    map_incs(fs, N);
    gather_incs(fs, N, 90000);
    free(fs);
    down();
}

/* A large map goes in parts (client.c, post_part), but all or nothing: an argument list that
 * cannot be encoded, even the last one, fails the call before any part is posted. */
LTest(cluster, a_map_with_one_bad_argument_list_submits_nothing, .init = up2, .fini = cleanup)
{
    enum { N = 40000 };
    tern_value **args = malloc(N * sizeof(*args));
    tern_future **fs = malloc(N * sizeof(*fs));
    cr_assert(args && fs);
    for (int k = 0; k < N - 1; k++)
        args[k] = tern_list_of(tern_int(k));
    tern_value *deep = tern_int(0);
    for (int d = 0; d < TERN_MAX_DEPTH + 8; d++)
        deep = tern_list_of(deep);
    args[N - 1] = tern_list_of(deep);
    ERR(TERN_ETOODEEP, tern_map(C, "testplug:inc", args, N, NULL, fs));
    cr_assert(strstr(tern_client_errmsg(C), "testplug:inc"), "message: %s", tern_client_errmsg(C));
    cr_assert_eq(state_count("processing") + state_count("memory") + state_count("waiting"), 0,
                 "a part of the failed map reached the scheduler");
    /* the same map without the bad list goes through whole */
    map_incs(fs, N);
    gather_incs(fs, N, 90000);
    free(args);
    free(fs);
    down();
}

/* A map of many tasks is placed in slices, with the workers' requests and the clients' polls
 * let in between slices and every other event set aside, in order, until the op is placed
 * (scheduler.c, let_workers_in). Meanwhile a second client connects, runs a chain and releases
 * it, and one of the two workers is killed: the second client is served in order, the dead
 * worker's tasks run on the other, and every task of the map gives its result. */
LTest(cluster, peers_are_served_while_a_long_map_is_placed, .init = make_tmpdir,
      .fini = cleanup_procs)
{
    enum { N = 40000, LINKS = 20 };
    char addr[256];
    start_scheduler("tcp://127.0.0.1:0", NULL, addr, sizeof(addr));
    start_worker(addr, "stays");
    pid_t doomed = start_worker_with(addr, "doomed", NULL);
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(addr, &o, &C));
    wait_workers(2);
    upload(C, PLUGIN("testplug"));
    tern_future **fs = malloc(N * sizeof(*fs));
    cr_assert_not_null(fs);
    map_incs(fs, N);
    /* The first result comes from the first slice, so the rest is likely still being placed:
     * the worker's loss and the second client's hello are then set aside until it is. */
    OK(tern_wait(&fs[0], 1, T, TERN_WAIT_ALL));
    kill9(doomed);
    tern_client *b = NULL;
    OK(tern_connect(addr, &o, &b));
    tern_future *prev = NULL;
    OK(tern_submit(b, "testplug:inc", tern_list_of(tern_int(1000)), NULL, &prev));
    for (int i = 1; i < LINKS; i++) {
        tern_future *f = NULL;
        OK(tern_submit(b, "testplug:inc", tern_list_of(tern_future_ref(prev)), NULL, &f));
        tern_future_release(prev);
        prev = f;
    }
    tern_value *v = NULL;
    OK(tern_result(prev, T, &v));
    int64_t got = -1;
    OK(tern_value_get_int(v, &got));
    cr_assert_eq(got, 1000 + LINKS, "the second client's chain gave %lld", (long long)got);
    tern_value_unref(v);
    tern_future_release(prev);
    cr_assert(close_bounded(b), "closing the second client hung");

    gather_incs(fs, N, 120000);
    tern_value *st = NULL;
    OK(tern_status_info(C, &st));
    cr_assert_eq(map_int(st, "workers_lost"), 1);
    tern_value_unref(st);
    free(fs);
    down_procs();
}

/* The dashboard's task stream keeps each completion's names in fixed room (scheduler.c,
 * copy_cut): a long key is cut before the first character that does not fit, never inside
 * one, so the status stays valid UTF-8. */
LTest(cluster, task_stream_cuts_long_keys_between_characters, .init = up2, .fini = cleanup)
{
    char key[401] = "";
    for (int i = 0; i < 200; i++)
        strcat(key, "\xc3\xbc"); /* u-umlaut, two bytes each */
    tern_submit_opts o = { .key = key };
    tern_future *f = submit("testplug:inc", tern_list_of(tern_int(1)), &o);
    cr_assert_eq(int_of(f), 2);
    tern_value *st = NULL;
    OK(tern_status_info(C, &st)); /* fails to encode if a name was cut inside a character */
    const tern_value *stream, *last, *k;
    cr_assert_eq(tern_map_get(st, "stream", &stream), TERN_OK);
    cr_assert_geq(tern_list_len(stream), 1);
    cr_assert_eq(tern_list_get(stream, tern_list_len(stream) - 1, &last), TERN_OK);
    cr_assert_eq(tern_map_get(last, "key", &k), TERN_OK);
    const char *got;
    size_t len;
    OK(tern_value_get_text(k, &got, &len));
    cr_assert(len > 100 && len < 128 && len % 2 == 0, "kept %zu bytes of the key", len);
    cr_assert(!strncmp(got, key, len), "the stream's key is not a prefix of the task's");
    tern_value_unref(st);
    tern_future_release(f);
    down();
}

LTest(cluster, chain_of_1000_tasks, .init = up2, .fini = cleanup)
{
    tern_future *f = submit("testplug:inc", tern_list_of(tern_int(0)), NULL);
    for (int k = 1; k < 1000; k++) {
        tern_future *g = submit("testplug:inc", tern_list_of(tern_future_ref(f)), NULL);
        tern_future_release(f); /* the pending dependent keeps it on the cluster */
        f = g;
    }
    cr_assert_eq(int_of(f), 1000);
    tern_future_release(f);
    down();
}

/* ---- 12. errors ---------------------------------------------------------------------- */

LTest(cluster, errors_stay_on_their_futures, .init = up2, .fini = cleanup)
{
    tern_value *args[3] = { tern_list_of(tern_int(1)), tern_list_of(tern_text("one")),
                            tern_list_of(tern_int(3)) };
    tern_future *fs[3];
    OK(tern_map(C, "testplug:inc", args, 3, NULL, fs));
    tern_future *nosym = submit("testplug:no_such_task", tern_list_of(tern_int(1)), NULL);
    tern_future *fine = submit("testplug:inc", tern_list_of(tern_int(10)), NULL);
    tern_future *dep = submit("testplug:inc", tern_list_of(tern_future_ref(fs[1])), NULL);
    tern_future *dep2 =
        submit("clusterplug:add", tern_list_of(tern_int(1), tern_future_ref(dep)), NULL);
    tern_future *all[] = { fs[0], fs[1], fs[2], nosym, fine, dep, dep2 };
    OK(tern_wait(all, 7, T, TERN_WAIT_ALL));
    cr_assert_eq(int_of(fs[0]), 2);
    cr_assert_eq(int_of(fs[2]), 4);
    cr_assert_eq(int_of(fine), 11);
    cr_assert_eq(tern_future_error(fine, NULL, NULL, NULL, NULL), TERN_EINVAL);

    int code;
    const char *msg, *task, *key;
    /* wrong argument type */
    cr_assert_eq(tern_future_status(fs[1]), TERN_ERROR);
    tern_value *v = NULL;
    ERR(TERN_ETYPE, tern_result(fs[1], T, &v));
    cr_assert_null(v);
    OK(tern_future_error(fs[1], &code, &msg, &task, &key));
    cr_assert_eq(code, TERN_ETYPE);
    cr_assert(strstr(msg, "inc(int)"), "message: %s", msg);
    cr_assert_str_eq(task, "testplug:inc");
    cr_assert_str_eq(key, tern_future_key(fs[1]));

    /* unknown symbol */
    cr_assert_eq(tern_future_status(nosym), TERN_ERROR);
    OK(tern_future_error(nosym, &code, &msg, &task, &key));
    cr_assert_neq(code, TERN_OK);
    cr_assert(strstr(msg, "no_such_task"), "message: %s", msg);
    cr_assert_str_eq(task, "testplug:no_such_task");
    cr_assert_str_eq(key, tern_future_key(nosym));
    ERR(code, tern_result(nosym, T, &v));

    /* dependents name the root cause */
    tern_future *deps[] = { dep, dep2 };
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(tern_future_status(deps[k]), TERN_ERROR);
        ERR(TERN_ETYPE, tern_result(deps[k], T, &v));
        OK(tern_future_error(deps[k], &code, &msg, &task, &key));
        cr_assert_eq(code, TERN_ETYPE);
        cr_assert_str_eq(key, tern_future_key(fs[1]), "dependent %d names %s", k, key);
        cr_assert_str_eq(task, "testplug:inc");
        cr_assert(strstr(msg, tern_future_key(fs[1])), "message: %s", msg);
    }

    /* Errors at submit time return no future. */
    tern_future *none = (tern_future *)&none;
    ERR(TERN_ENOTFOUND,
        tern_submit(C, "no_such_plugin:inc", tern_list_of(tern_int(1)), NULL, &none));
    cr_assert_null(none);
    const char *bad_names[] = { "noColon", ":inc", "testplug:", "" };
    for (size_t k = 0; k < sizeof(bad_names) / sizeof(*bad_names); k++) {
        none = (tern_future *)&none;
        ERR(TERN_EINVAL, tern_submit(C, bad_names[k], tern_list_of(tern_int(1)), NULL, &none));
        cr_assert_null(none, "a future for \"%s\"", bad_names[k]);
    }
    ERR(TERN_EINVAL, tern_submit(C, NULL, NULL, NULL, &none));
    ERR(TERN_EINVAL, tern_submit(C, "testplug:inc", tern_int(1), NULL, &none));
    cr_assert_null(none);
    /* Texts that go to the wire as they are: task name, explicit key, worker names. */
    ERR(TERN_EINVAL, tern_submit(C, "testplug:in\xff", tern_list_of(tern_int(1)), NULL, &none));
    char long_key[1100]; /* over the 1,024-byte limit of a key */
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    const char *bad_keys[] = { "bad\xc3", "tab\there", "", long_key };
    for (size_t k = 0; k < sizeof(bad_keys) / sizeof(*bad_keys); k++) {
        tern_submit_opts ko = { .key = bad_keys[k] };
        none = (tern_future *)&none;
        ERR(TERN_EINVAL, tern_submit(C, "testplug:inc", tern_list_of(tern_int(1)), &ko, &none));
        cr_assert_null(none, "a future for bad key %zu", k);
    }
    const char *bad_workers[] = { "w\xe2\x82", NULL };
    tern_submit_opts wo = { .workers = bad_workers };
    ERR(TERN_EINVAL, tern_submit(C, "testplug:inc", tern_list_of(tern_int(1)), &wo, &none));
    cr_assert_null(none);

    /* The cluster still works. */
    tern_future *after = submit("testplug:inc", tern_list_of(tern_int(99)), NULL);
    cr_assert_eq(int_of(after), 100);
    tern_future_release(after);
    for (size_t k = 0; k < 7; k++)
        tern_future_release(all[k]);
    down();
}

/* ---- 13. the seed's tree reduction ----------------------------------------------------- */

LTest(cluster, tree_reduction_of_16_arrays, .init = up2, .fini = cleanup)
{
    enum { N = 16, LEN = 100000 };
    tern_value *args[N];
    for (int k = 0; k < N; k++)
        args[k] = tern_list_of(tern_int(LEN), tern_int(k));
    tern_future *level[N];
    OK(tern_map(C, "arrays:random", args, N, NULL, level));

    /* The expected sum, in the same pairwise order, from the inputs fetched first. */
    tern_value *xs[N];
    OK(tern_gather(level, N, T, xs));
    double *want[N];
    for (int k = 0; k < N; k++) {
        const double *x;
        size_t n;
        OK(tern_value_get_f64_array(xs[k], &x, &n));
        cr_assert_eq(n, LEN);
        want[k] = malloc(LEN * sizeof(double));
        memcpy(want[k], x, LEN * sizeof(double));
        tern_value_unref(xs[k]);
    }
    for (int width = N; width > 1; width /= 2)
        for (int k = 0; k < width / 2; k++) {
            for (size_t j = 0; j < LEN; j++)
                want[k][j] = want[2 * k][j] + want[2 * k + 1][j];
        }

    for (int width = N; width > 1; width /= 2) {
        for (int k = 0; k < width / 2; k++) {
            tern_future *a = level[2 * k], *b = level[2 * k + 1];
            level[k] =
                submit("arrays:add", tern_list_of(tern_future_ref(a), tern_future_ref(b)), NULL);
            tern_future_release(a);
            tern_future_release(b);
        }
    }
    tern_value *total = NULL;
    OK(tern_result(level[0], T, &total));
    const double *got;
    size_t n;
    OK(tern_value_get_f64_array(total, &got, &n));
    cr_assert_eq(n, LEN);
    double worst = 0;
    for (size_t j = 0; j < LEN; j++)
        worst = fmax(worst, fabs(got[j] - want[0][j]));
    cr_assert_leq(worst, 1e-12, "largest difference %g", worst);
    tern_value_unref(total);
    tern_future_release(level[0]);
    for (int k = 0; k < N; k++)
        free(want[k]);
    down();
}

/* ---- 14. connect errors ----------------------------------------------------------------- */

LTest(cluster, connect_errors)
{
    tern_client *c = (tern_client *)&c;
    double t0 = now_ms();
    ERR(TERN_ECONNREFUSED, tern_connect("tcp://127.0.0.1:1", NULL, &c));
    cr_assert_lt(now_ms() - t0, 3000, "refusal took %.0f ms", now_ms() - t0);
    cr_assert_null(c);
    const char *bad[] = { "http://127.0.0.1:1", "127.0.0.1:7786", "local://0", "local://-1",
                          "local://",           "local://two",    "local://2x" };
    for (size_t k = 0; k < sizeof(bad) / sizeof(*bad); k++) {
        c = (tern_client *)&c;
        ERR(TERN_EINVAL, tern_connect(bad[k], NULL, &c));
        cr_assert_null(c, "a client for %s", bad[k]);
    }
    ERR(TERN_EINVAL, tern_connect("local://1", NULL, NULL));
    tern_close(NULL);
}

/* ---- 15. close with pending futures ------------------------------------------------------ */

LTest(cluster, close_cancels_pending_futures, .init = up2, .fini = cleanup)
{
    tern_future *done = submit("testplug:inc", tern_list_of(tern_int(1)), NULL);
    cr_assert_eq(int_of(done), 2);
    tern_future *slow = submit("clusterplug:sleep_ms", tern_list_of(tern_int(600)), NULL);
    tern_future *dep =
        submit("clusterplug:add", tern_list_of(tern_future_ref(slow), tern_int(1)), NULL);
    tern_future *extra = tern_future_dup(dep);
    down();

    tern_future *pending[] = { slow, dep };
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(tern_future_status(pending[k]), TERN_CANCELLED);
        tern_value *v = NULL;
        double t0 = now_ms();
        ERR(TERN_ECLOSED, tern_result(pending[k], T, &v));
        cr_assert_lt(now_ms() - t0, 1000);
        cr_assert_null(v);
        int code;
        OK(tern_future_error(pending[k], &code, NULL, NULL, NULL));
        cr_assert_eq(code, TERN_ECLOSED);
    }
    OK(tern_wait(pending, 2, T, TERN_WAIT_ALL));
    ERR(TERN_ECLOSED, tern_cancel(pending, 2));
    tern_as_completed *it = NULL;
    OK(tern_as_completed_new(pending, 2, &it));
    tern_future *f = NULL;
    OK(tern_as_completed_next(it, T, &f));
    tern_future_release(f);
    tern_as_completed_free(it);
    tern_future_release(extra);
    tern_future_release(dep);
    tern_future_release(slow);
    tern_future_release(done);
}
