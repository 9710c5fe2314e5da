/* Integration tests of early placement (the scheduler's place_early, the worker's "after"):
 * on a real cluster of two workers, a task whose only missing dependency is running on a
 * worker, as that dependency's only dependent, goes to that worker at once and starts when
 * the dependency finishes there; further dependents of a fan-out are placed as usual; and a
 * dependency that fails or is retried, or a dependent no longer wanted, leaves nothing hanging,
 * running or waiting on the worker.
 *
 * Early placement needs the dependency's symbol to have given small results before, so each
 * test first runs clusterplug:sleep_ms once. The dependency is sleep_ms(SLOW), so that the
 * dependent is submitted, and its state read from the scheduler's status, while it runs. */
#include <criterion/criterion.h>

#include <string.h>

#include "harness.h"

#define SLOW 400 /* ms */

static const char *contains(const char *s, const char *needle)
{
    return s ? strstr(s, needle) : NULL;
}

/* A state's count of tasks of fn in the scheduler's status ("processing", "waiting", "done"). */
static int64_t sym_count(const char *fn, const char *state)
{
    tern_value *st = NULL;
    OK(tern_status_info(C, &st));
    const tern_value *syms, *m;
    int64_t n = 0;
    if (tern_map_get(st, "symbols", &syms) == TERN_OK && tern_map_get(syms, fn, &m) == TERN_OK)
        n = map_int(m, state);
    tern_value_unref(st);
    return n;
}

static void warm(void)
{
    tern_future *f = submit("clusterplug:sleep_ms", tern_list_of(tern_int(0)), NULL);
    cr_assert_eq(int_of(f), 0);
    tern_future_release(f);
}

static tern_future *slow(tern_value *fail)
{
    return submit("clusterplug:sleep_ms",
                  fail ? tern_list_of(tern_int(SLOW), fail) : tern_list_of(tern_int(SLOW)), NULL);
}

static tern_future *add(tern_future *a, int64_t b, const tern_submit_opts *o)
{
    return submit("clusterplug:add", tern_list_of(tern_future_ref(a), tern_int(b)), o);
}

/* The single worker name holding f's result. */
static void holder(tern_future *f, char *buf, size_t len)
{
    const tern_value *names, *item;
    const char *name;
    tern_value *wh = who_has(C, f, &names);
    cr_assert_eq(tern_list_len(names), 1);
    tern_list_get(names, 0, &item);
    tern_value_get_text(item, &name, NULL);
    snprintf(buf, len, "%s", name);
    tern_value_unref(wh);
}

/* The value of f, which must have erred, and its message. */
static const char *error_message(tern_future *f)
{
    tern_value *v = NULL;
    int rc = tern_result(f, T, &v);
    cr_assert_neq(rc, TERN_OK, "%s did not err", tern_future_key(f));
    cr_assert_neq(rc, TERN_ETIMEDOUT, "%s hung", tern_future_key(f));
    int code;
    const char *msg, *task, *key;
    OK(tern_future_error(f, &code, &msg, &task, &key));
    return msg;
}

Test(pipeline, a_dependent_is_placed_on_its_dependency_s_worker_before_it_finishes, .init = up2,
     .fini = cleanup)
{
    warm();
    tern_future *d = slow(NULL), *t = add(d, 1, NULL);
    nap_ms(SLOW / 4);
    cr_expect_eq(sym_count("clusterplug:add", "processing"), 1,
                 "the dependent is not processing while its dependency runs");
    cr_expect_eq(sym_count("clusterplug:sleep_ms", "processing"), 1);
    cr_assert_eq(int_of(t), SLOW + 1);
    char hd[64], ht[64];
    holder(d, hd, sizeof(hd));
    holder(t, ht, sizeof(ht));
    cr_expect_str_eq(ht, hd, "the dependent ran on %s, its dependency on %s", ht, hd);
    tern_future_release(t);
    tern_future_release(d);
    down();
}

/* The scheduler's count of push requests (status "pushes"). */
static int64_t pushes(void)
{
    tern_value *st = NULL;
    OK(tern_status_info(C, &st));
    int64_t n = map_int(st, "pushes");
    tern_value_unref(st);
    return n;
}

Test(pipeline, a_fan_out_is_placed_early_too, .init = up2, .fini = cleanup)
{
    warm();
    tern_future *d = slow(NULL), *t1 = add(d, 1, NULL), *t2 = add(d, 2, NULL);
    nap_ms(SLOW / 4);
    /* both dependents go before d finishes, wherever they start soonest */
    cr_expect_eq(sym_count("clusterplug:add", "processing"), 2,
                 "the dependents of a running task were not both placed early");
    cr_expect_eq(sym_count("clusterplug:add", "waiting"), 0);
    cr_assert_eq(int_of(t1), SLOW + 1);
    cr_assert_eq(int_of(t2), SLOW + 2);
    tern_future_release(t1);
    tern_future_release(t2);
    tern_future_release(d);
    down();
}

Test(pipeline, a_result_is_pushed_to_a_dependent_placed_early_on_another_worker, .init = up2,
     .fini = cleanup)
{
    warm();
    char hd[64];
    tern_future *w = submit("clusterplug:sleep_ms", tern_list_of(tern_int(0)), NULL);
    cr_assert_eq(int_of(w), 0);
    holder(w, hd, sizeof(hd));
    const char *other[] = { strcmp(hd, "local-0") ? "local-0" : "local-1", NULL };
    const char *same[] = { hd, NULL };
    tern_submit_opts on_other = { .workers = other }, on_same = { .workers = same };
    int64_t before = pushes();
    tern_future *d = submit("clusterplug:sleep_ms", tern_list_of(tern_int(SLOW)), &on_same);
    tern_future *t = add(d, 1, &on_other), *u = add(d, 2, &on_same);
    nap_ms(SLOW / 4);
    cr_expect_eq(sym_count("clusterplug:add", "processing"), 2, "not placed early");
    cr_expect_eq(pushes() - before, 1, "one push for the one dependent on another worker");
    cr_assert_eq(int_of(t), SLOW + 1);
    cr_assert_eq(int_of(u), SLOW + 2);
    char ht[64];
    holder(t, ht, sizeof(ht));
    cr_expect_str_eq(ht, other[0]);
    /* d is counted on both workers once pushed, and goes from both when released */
    const tern_value *names = NULL;
    tern_value *wh = who_has(C, d, &names);
    cr_expect_eq(tern_list_len(names), 2, "the pushed copy is not counted as held");
    tern_value_unref(wh);
    tern_future_release(t);
    tern_future_release(u);
    tern_future_release(w);
    tern_future_release(d);
    down();
}

Test(pipeline, an_early_dependent_of_a_failing_task_errs, .init = up2, .fini = cleanup)
{
    warm();
    tern_future *d = slow(tern_bool(true)), *t = add(d, 1, NULL);
    nap_ms(SLOW / 4);
    cr_expect_eq(sym_count("clusterplug:add", "processing"), 1, "not placed early");
    const char *msg = error_message(t);
    cr_expect(contains(msg, "failing after"), "the dependency's failure: %s", msg);
    /* the worker that held the early dependent still serves */
    tern_future *again = add(d, 2, NULL);
    error_message(again);
    tern_future *ok = submit("clusterplug:add", tern_list_of(tern_int(2), tern_int(3)), NULL);
    cr_assert_eq(int_of(ok), 5);
    tern_future_release(ok);
    tern_future_release(again);
    tern_future_release(t);
    tern_future_release(d);
    down();
}

/* A dependency that fails cancels its early dependent on the worker too, not only for the
 * client: when the same key later runs there again and succeeds, the dependent (which would
 * still be waiting for that key, had the worker kept it) does not run. */
Test(pipeline, a_failed_dependency_leaves_no_dependent_waiting_on_its_worker, .init = up2,
     .fini = cleanup)
{
    warm();
    const char *w0[] = { "local-0", NULL };
    tern_submit_opts on_w0 = { .workers = w0 };
    /* sleep_ms(SLOW, path) fails on its first run only; count(path, d) appends a byte */
    tern_future *d = submit("clusterplug:sleep_ms",
                            tern_list_of(tern_int(SLOW), tern_text(scratch("runs"))), &on_w0);
    tern_future *t = submit("clusterplug:count",
                            tern_list_of(tern_text(scratch("ran")), tern_future_ref(d)), NULL);
    nap_ms(SLOW / 4);
    cr_expect_eq(sym_count("clusterplug:count", "processing"), 1, "not placed early");
    error_message(t);
    char key[256];
    snprintf(key, sizeof(key), "%s", tern_future_key(d));
    tern_future_release(t);
    tern_future_release(d);
    double t0 = now_ms();
    while (state_count("erred") > 0) { /* the scheduler forgets both */
        cr_assert_lt(now_ms() - t0, T, "the released erred tasks are still known");
        nap_ms(5);
    }
    /* the same key again, on the same worker: it succeeds this time */
    tern_future *again = submit("clusterplug:sleep_ms",
                                tern_list_of(tern_int(SLOW), tern_text(scratch("runs"))), &on_w0);
    cr_assert_str_eq(tern_future_key(again), key);
    cr_assert_eq(int_of(again), SLOW);
    cr_assert_eq(file_size(scratch("runs")), 2);
    nap_ms(100);
    cr_expect_eq(file_size(scratch("ran")), -1,
                 "the failed dependency's early dependent ran when its key was stored later");
    tern_future_release(again);
    down();
}

Test(pipeline, an_early_dependent_waits_for_its_dependency_s_retry, .init = up2, .fini = cleanup)
{
    warm();
    tern_submit_opts retry = { .retries = 1 };
    tern_future *d = submit("clusterplug:sleep_ms",
                            tern_list_of(tern_int(SLOW), tern_text(scratch("runs"))), &retry);
    tern_future *t = add(d, 1, NULL);
    nap_ms(SLOW / 4);
    cr_expect_eq(sym_count("clusterplug:add", "processing"), 1, "not placed early");
    cr_assert_eq(int_of(t), SLOW + 1);
    cr_expect_eq(file_size(scratch("runs")), 2, "the dependency ran %lld times, expected 2",
                 (long long)file_size(scratch("runs")));
    tern_future_release(t);
    tern_future_release(d);
    down();
}

Test(pipeline, an_early_dependent_no_longer_wanted_never_runs, .init = up2, .fini = cleanup)
{
    warm();
    /* count(path, d) appends a byte to path when it runs: d only orders it */
    tern_future *d = slow(NULL);
    tern_future *t = submit("clusterplug:count",
                            tern_list_of(tern_text(scratch("ran")), tern_future_ref(d)), NULL);
    nap_ms(SLOW / 4);
    cr_expect_eq(sym_count("clusterplug:count", "processing"), 1, "not placed early");
    tern_future_release(t); /* cancelled on its worker, where it waits for d */
    cr_assert_eq(int_of(d), SLOW);
    tern_future *ok = add(d, 5, NULL); /* placed after d finished: the worker serves on */
    cr_assert_eq(int_of(ok), SLOW + 5);
    cr_expect_eq(file_size(scratch("ran")), -1, "the cancelled dependent ran");
    tern_future_release(ok);
    tern_future_release(d);
    down();
}

Test(pipeline, a_chain_runs_to_the_end, .init = up2, .fini = cleanup)
{
    warm();
    /* each link's dependency is the one before, running or about to: most go early */
    tern_future *prev = slow(NULL);
    for (int i = 0; i < 500; i++) {
        tern_future *next = add(prev, 1, NULL);
        tern_future_release(prev);
        prev = next;
    }
    cr_assert_eq(int_of(prev), SLOW + 500);
    tern_future_release(prev);
    down();
}
