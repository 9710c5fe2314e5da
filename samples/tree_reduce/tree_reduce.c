/* tree_reduce: the seed's showcase on a tern cluster.
 *
 *     xs = executor.map(np.random.random, [1000000] * 16, pure=False)
 *     while len(xs) > 1:
 *         xs = [executor.submit(add, xs[i], xs[i + 1]) for i in range(0, len(xs), 2)]
 *     xs[0].result()
 *
 * Sixteen random million-element arrays are made on the workers (arrays:random), neighbours
 * are added pairwise (arrays:add) until one array is left, and only that one comes back.
 * Then, to check, the sixteen inputs are fetched and summed here, element by element.
 *
 * Usage: tree_reduce [SCHEDULER_ADDRESS] [--arrays N] [--length N]
 *        (default local://2: a scheduler and two workers started for the run)
 * Exit status 0 when the result matches the local sum, 1 otherwise, 2 on a usage error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tern/tern.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long parse_count(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > (1L << 28)) {
        fprintf(stderr, "tree_reduce: %s must be a positive integer, not \"%s\"\n", what, s);
        exit(2);
    }
    return v;
}

static int fail(tern_client *c, int rc, const char *what)
{
    fprintf(stderr, "tree_reduce: %s failed: %s: %s\n", what, tern_strerror(rc),
            tern_client_errmsg(c));
    return rc;
}

static void print_array(const char *label, const double *x, size_t n)
{
    printf("%s [", label);
    for (size_t i = 0; i < 3 && i < n; i++)
        printf("%s%.8f", i ? ", " : "", x[i]);
    if (n > 6)
        printf(", ...");
    for (size_t i = n > 3 ? (n > 6 ? n - 3 : 3) : n; i < n; i++)
        printf(", %.8f", x[i]);
    printf("]\n");
}

int main(int argc, char **argv)
{
    const char *address = "local://2";
    long count = 16, length = 1000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--arrays") && i + 1 < argc)
            count = parse_count(argv[++i], "--arrays");
        else if (!strcmp(argv[i], "--length") && i + 1 < argc)
            length = parse_count(argv[++i], "--length");
        else if (argv[i][0] != '-')
            address = argv[i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: tree_reduce [SCHEDULER_ADDRESS] [--arrays N] [--length N]\n"
                   "Makes N random arrays on the workers (default 16 of 1000000 doubles), adds\n"
                   "neighbours pairwise until one is left, fetches only that one and checks it\n"
                   "against a local sum. SCHEDULER_ADDRESS defaults to local://2.\n");
            return 0;
        } else {
            fprintf(stderr, "usage: tree_reduce [SCHEDULER_ADDRESS] [--arrays N] [--length N]\n");
            return 2;
        }
    }
    if (count & (count - 1)) {
        fprintf(stderr, "tree_reduce: --arrays must be a power of two (got %ld)\n", count);
        return 2;
    }

    double t0 = now_ms();
    tern_client *c;
    int rc = tern_connect(address, NULL, &c);
    if (rc != TERN_OK)
        return fail(NULL, rc, "connecting"), 1;
    double t_connect = now_ms();
    printf("cluster  %s (%s)\n", address, tern_client_address(c));

    /* xs = map(random, [length] * count, pure=False) */
    tern_future **inputs = calloc((size_t)count, sizeof(*inputs));
    tern_future **xs = calloc((size_t)count, sizeof(*xs));
    tern_value **args = calloc((size_t)count, sizeof(*args));
    for (long i = 0; i < count; i++)
        args[i] = tern_list_of(tern_int(length));
    tern_submit_opts impure = { .impure = true };
    rc = tern_map(c, "arrays:random", args, (size_t)count, &impure, inputs);
    if (rc != TERN_OK)
        return fail(c, rc, "map arrays:random"), tern_close(c), 1;
    for (long i = 0; i < count; i++)
        xs[i] = tern_future_dup(inputs[i]);

    /* while len(xs) > 1: xs = [submit(add, xs[i], xs[i + 1]) ...] */
    for (long n = count; n > 1 && rc == TERN_OK; n /= 2) {
        for (long i = 0; i < n && rc == TERN_OK; i += 2) {
            tern_future *y;
            rc = tern_submit(c, "arrays:add",
                             tern_list_of(tern_future_ref(xs[i]), tern_future_ref(xs[i + 1])), NULL,
                             &y);
            tern_future_release(xs[i]);
            tern_future_release(xs[i + 1]);
            xs[i / 2] = y;
        }
    }
    double t_submit = now_ms();
    tern_value *total = NULL;
    if (rc == TERN_OK)
        rc = tern_result(xs[0], 60000, &total);
    double t_result = now_ms();
    if (rc != TERN_OK)
        return fail(c, rc, "the reduction"), tern_close(c), 1;

    const double *y;
    size_t n;
    tern_value_get_f64_array(total, &y, &n);
    print_array("result  ", y, n);

    /* Where did the work happen? */
    tern_value *who = NULL;
    if (tern_who_has(c, inputs, (size_t)count, &who) == TERN_OK) {
        printf("inputs   ");
        for (long i = 0; i < count; i++) {
            const tern_value *names, *name;
            const char *s = "?";
            if (tern_map_get(who, tern_future_key(inputs[i]), &names) == TERN_OK &&
                tern_list_get(names, 0, &name) == TERN_OK)
                tern_value_get_text(name, &s, NULL);
            printf("%s%s", i ? " " : "", s);
        }
        printf("\n");
        tern_value_unref(who);
    }

    /* Check: fetch the inputs and add them here. */
    double t_check0 = now_ms();
    tern_value **vals = calloc((size_t)count, sizeof(*vals));
    rc = tern_gather(inputs, (size_t)count, 60000, vals);
    double max_err = 0;
    bool ok = rc == TERN_OK;
    if (ok) {
        double *want = calloc(n, sizeof(double));
        for (long i = 0; i < count; i++) {
            const double *x;
            size_t m;
            tern_value_get_f64_array(vals[i], &x, &m);
            for (size_t j = 0; j < m && j < n; j++)
                want[j] += x[j];
        }
        for (size_t j = 0; j < n; j++)
            max_err = fmax(max_err, fabs(y[j] - want[j]));
        ok = max_err <= 1e-12 * (double)count;
        free(want);
    } else {
        fail(c, rc, "fetching the inputs");
    }
    double t_check = now_ms();
    for (long i = 0; i < count; i++) {
        tern_value_unref(vals[i]);
        tern_future_release(inputs[i]);
    }
    tern_future_release(xs[0]);
    tern_value_unref(total);
    tern_close(c);
    double t_close = now_ms();

    printf("check    %s: max |tree - local sum| = %.3g over %zu elements\n", ok ? "ok" : "FAILED",
           max_err, n);
    printf("time     connect %.1f ms | submit %ld tasks %.2f ms | compute + fetch result %.1f "
           "ms | close %.1f ms\n",
           t_connect - t0, 2 * count - 1, t_submit - t_connect, t_result - t_submit,
           t_close - t_check);
    printf("         total without the check %.1f ms (the check's fetch of %ld inputs took "
           "%.1f ms)\n",
           (t_result - t0) + (t_close - t_check), count, t_check - t_check0);
    free(vals);
    free(args);
    free(xs);
    free(inputs);
    return ok ? 0 : 1;
}
