/* Integration tests of taking (tern_arg_take, the scheduler's "take"): on a real cluster, a
 * task computes into a dependency's memory only when nothing else can read that value again,
 * and a taken dependency that is needed again is computed again from its lineage.
 *
 * One worker with one thread, so that placement is fixed. clusterplug's ones(n, after) makes
 * an array of n ones after `after` (a 300 ms sleep, so that the client's later ops reach the
 * scheduler first); took(x, ...) returns [taken, x + 1], computed into x when taken. The
 * arrays are 128 KiB: the scheduler only hands over results of 64 KiB and more. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "harness.h"

#define N     16384 /* doubles: 128 KiB */
#define SLEEP 300

static void up1(void)
{
    connect_local(1, 1);
}

/* ones(N) after a sleep: the returned future is x; the sleep's is released. */
static tern_future *slow_ones(int tag)
{
    tern_future *s = submit("clusterplug:sleep_ms", tern_list_of(tern_int(SLEEP + tag)), NULL);
    tern_future *x =
        submit("clusterplug:ones", tern_list_of(tern_int(N), tern_future_ref(s)), NULL);
    tern_future_release(s);
    return x;
}

/* Asserts that the array v (borrowed) is N copies of want. */
static void expect_all(const tern_value *v, double want, const char *what)
{
    const double *d;
    size_t n;
    cr_assert_eq(tern_value_get_f64_array(v, &d, &n), TERN_OK, "%s is not an f64 array", what);
    cr_assert_eq(n, N, "%s has %zu elements", what, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(d[i], want, "%s[%zu] = %g, expected %g", what, i, d[i], want);
}

/* Fetches f's result and asserts that it is N copies of want. */
static void expect_result_all(tern_future *f, double want, const char *what)
{
    tern_value *v = NULL;
    OK(tern_result(f, T, &v));
    expect_all(v, want, what);
    tern_value_unref(v);
}

/* took's result [taken, x + 1]: checks x + 1 == 2 everywhere and returns taken. */
static bool took_result(tern_future *y)
{
    tern_value *v = NULL;
    OK(tern_result(y, T, &v));
    const tern_value *flag, *arr;
    bool taken = false;
    cr_assert_eq(tern_list_len(v), 2);
    tern_list_get(v, 0, &flag);
    tern_list_get(v, 1, &arr);
    cr_assert_eq(tern_value_get_bool(flag, &taken), TERN_OK);
    expect_all(arr, 2.0, "took's x + 1");
    tern_value_unref(v);
    return taken;
}

static tern_future *took(tern_future *x, int tag)
{
    return submit("clusterplug:took", tern_list_of(tern_future_ref(x), tern_int(tag)), NULL);
}

Test(take, the_last_reader_of_an_unwanted_result_takes_it, .init = up1, .fini = cleanup)
{
    tern_future *x = slow_ones(0);
    tern_future *y = took(x, 0);
    tern_future_release(x); /* before x finishes: y will be its last reader */
    cr_expect(took_result(y), "took did not take x, which nothing else reads");
    tern_future_release(y);
    down();
}

Test(take, a_result_the_client_holds_is_not_taken_nor_changed, .init = up1, .fini = cleanup)
{
    tern_future *x = slow_ones(0);
    tern_future *y = took(x, 0);
    cr_expect_not(took_result(y), "took took x, whose future the client still holds");
    expect_result_all(x, 1.0, "x after took read it");
    tern_future_release(x);
    tern_future_release(y);
    down();
}

Test(take, two_readers_take_nothing, .init = up1, .fini = cleanup)
{
    tern_future *x = slow_ones(0);
    tern_future *y1 = took(x, 1), *y2 = took(x, 2);
    tern_future_release(x);
    cr_expect_not(took_result(y1), "the first of two readers took x");
    cr_expect_not(took_result(y2), "the second of two readers took x");
    tern_future_release(y1);
    tern_future_release(y2);
    down();
}

Test(take, an_argument_passed_twice_is_not_taken, .init = up1, .fini = cleanup)
{
    /* The scheduler hands x over (one dependency, one reader), but the task holds it twice:
     * the worker's reference count refuses the take. */
    tern_future *x = slow_ones(0);
    tern_future *y =
        submit("clusterplug:took", tern_list_of(tern_future_ref(x), tern_future_ref(x)), NULL);
    tern_future_release(x);
    tern_value *v = NULL;
    /* took's tag is x itself here: the result is still [taken, x + 1] */
    OK(tern_result(y, T, &v));
    const tern_value *flag;
    bool taken = true;
    tern_list_get(v, 0, &flag);
    cr_assert_eq(tern_value_get_bool(flag, &taken), TERN_OK);
    cr_expect_not(taken, "took took x, which it also held as its second argument");
    tern_value_unref(v);
    tern_future_release(y);
    down();
}

Test(take, a_taken_result_submitted_again_is_computed_again, .init = up1, .fini = cleanup)
{
    tern_future *x = slow_ones(0);
    char key[256];
    snprintf(key, sizeof(key), "%s", tern_future_key(x));
    tern_future *y = took(x, 0);
    tern_future_release(x);
    cr_assert(took_result(y));
    /* the same key again: its record is released lineage; its data became y's */
    tern_future *again = slow_ones(0);
    cr_assert_str_eq(tern_future_key(again), key);
    expect_result_all(again, 1.0, "x computed again");
    tern_future_release(again);
    tern_future_release(y);
    down();
}

Test(take, a_retried_task_gets_its_taken_dependency_back, .init = up1, .fini = cleanup)
{
    /* took takes x, adds one into it, then fails (first run): the retry runs on x computed
     * again from its lineage, so it too sees ones, and takes them. */
    tern_future *x = slow_ones(0);
    tern_submit_opts retry = { .retries = 1 };
    tern_future *y =
        submit("clusterplug:took",
               tern_list_of(tern_future_ref(x), tern_int(0), tern_text(scratch("runs"))), &retry);
    tern_future_release(x);
    cr_expect(took_result(y), "the retry did not take x computed again");
    cr_expect_eq(file_size(scratch("runs")), 2, "took ran %lld times, expected 2",
                 (long long)file_size(scratch("runs")));
    tern_future_release(y);
    down();
}
