/* tern-bench: the tern side of `make bench` (scripts/bench.sh, bench/compare.py).
 *
 *     tern-bench SUBCOMMAND [--scheduler URL] [--repeat N] [--quick] [--plugin PATH]
 *
 * SUBCOMMAND is one of latency, throughput_20k, throughput_100k, chain, tree, startup,
 * transfer, scale, or all (every one, in that order). Each runs on a fresh local://2 cluster
 * (or on the scheduler at URL), repeats its measurement N times (default 5) and prints one
 * JSON object on stdout:
 *
 *     {"bench": NAME, "system": "tern", "unit": UNIT, "median": x, "min": x, "max": x,
 *      "repeats": n, ...extra fields}
 *
 * --quick uses tiny sizes and one repeat (for the test suite). The tasks come from the bench
 * plugin (plugins/bench), found with --plugin, $TERN_BENCH_PLUGIN, or next to this binary in
 * ../lib/tern/plugins/bench.so; arrays:* is the scheduler's built-in plugin.
 * Exit status: 0, 1 when a tern call fails (the error goes to stderr), 2 on a usage error.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tern/tern.h>

#define WAIT_MS      600000 /* every wait: long enough for any size here, short of forever */
#define TRANSFER_LEN 1048576
#define SCALE_CHUNK  100000

static const char *address = "local://2";
static const char *plugin_path = NULL;
static int repeat = 5;
static bool quick = false;

/* Sizes; --quick shrinks them. */
static size_t latency_n = 2000, thr_small = 20000, thr_large = 100000, chain_n = 2000;
static size_t tree_arrays = 16, tree_len = 1000000, scale_n = 1000000;

static const tern_submit_opts impure = { .impure = true };

/* ---- small helpers ------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "tern-bench: out of memory\n");
        exit(1);
    }
    return p;
}

/* A failed tern call: the error and the client's message, then exit 1. */
static void check(int rc, const char *fmt, ...)
{
    if (rc == TERN_OK)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tern-bench: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s: %s\n", tern_strerror(rc), tern_client_errmsg(NULL));
    exit(1);
}

/* A future that did not finish: its task's error, then exit 1. */
static void future_failed(tern_future *f, int rc, const char *what)
{
    int code;
    const char *msg, *task, *key;
    if (tern_future_error(f, &code, &msg, &task, &key) == TERN_OK)
        fprintf(stderr, "tern-bench: %s: %s: %s (task %s, key %s)\n", what, tern_strerror(code),
                msg, task, key);
    else
        fprintf(stderr, "tern-bench: %s: %s: %s\n", what,
                tern_strerror(rc != TERN_OK ? rc : TERN_ETASK), tern_client_errmsg(NULL));
    exit(1);
}

/* Waits for all of fs and checks that every one finished. */
static void wait_all(tern_future **fs, size_t n, const char *what)
{
    check(tern_wait(fs, n, WAIT_MS, TERN_WAIT_ALL), "%s: waiting", what);
    for (size_t i = 0; i < n; i++)
        if (tern_future_status(fs[i]) != TERN_FINISHED)
            future_failed(fs[i], TERN_OK, what);
}

static tern_value *result(tern_future *f, const char *what)
{
    tern_value *v = NULL;
    int rc = tern_result(f, WAIT_MS, &v);
    if (rc != TERN_OK)
        future_failed(f, rc, what);
    return v;
}

static tern_value *status(tern_client *c)
{
    tern_value *st;
    check(tern_status_info(c, &st), "status");
    return st;
}

/* One round trip on the op stream: every op queued before (releases) has been handled. */
static void sync_cluster(tern_client *c)
{
    tern_value_unref(status(c));
}

static int64_t status_int(tern_value *st, const char *which)
{
    const tern_value *v;
    int64_t bytes = -1;
    if (tern_map_get(st, which, &v) != TERN_OK || tern_value_get_int(v, &bytes) != TERN_OK) {
        fprintf(stderr, "tern-bench: the scheduler's status has no %s\n", which);
        exit(1);
    }
    return bytes;
}

/* The scheduler's resident memory and the heap malloc has handed out and not had back, from
 * one status call. */
static void scheduler_mem(tern_client *c, int64_t *rss, int64_t *heap)
{
    tern_value *st = status(c);
    *rss = status_int(st, "rss_bytes");
    *heap = status_int(st, "heap_bytes");
    tern_value_unref(st);
}

static void release_all(tern_future **fs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tern_future_release(fs[i]);
        fs[i] = NULL;
    }
}

/* n argument lists of no-op tasks */
static tern_value **noop_args(size_t n)
{
    tern_value **a = xcalloc(n, sizeof(*a));
    for (size_t i = 0; i < n; i++)
        if (!(a[i] = tern_list_new(0))) {
            fprintf(stderr, "tern-bench: out of memory\n");
            exit(1);
        }
    return a;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v in place and returns its median. */
static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Nearest-rank percentile of sorted v. */
static double percentile(const double *v, size_t n, double p)
{
    size_t r = (size_t)ceil(p / 100 * (double)n);
    return v[r ? r - 1 : 0];
}

/* ---- JSON lines ---------------------------------------------------------------------- */

typedef struct {
    char s[4096];
    size_t len;
} extras;

static void x_add(extras *x, const char *fmt, ...) TERN_PRINTF(2, 3);
static void x_add(extras *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(x->s + x->len, sizeof(x->s) - x->len, fmt, ap);
    va_end(ap);
    if (k > 0)
        x->len = x->len + (size_t)k < sizeof(x->s) ? x->len + (size_t)k : sizeof(x->s) - 1;
}

static void x_num(extras *x, const char *key, double v)
{
    if (isfinite(v))
        x_add(x, ", \"%s\": %.6g", key, v);
    else
        x_add(x, ", \"%s\": null", key);
}

static void x_int(extras *x, const char *key, long long v)
{
    x_add(x, ", \"%s\": %lld", key, v);
}

static void x_str(extras *x, const char *key, const char *s)
{
    x_add(x, ", \"%s\": \"", key);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            x_add(x, "\\%c", ch);
        else if (ch < 0x20)
            x_add(x, "\\u%04x", ch);
        else
            x_add(x, "%c", ch);
    }
    x_add(x, "\"");
}

/* Prints the line for one benchmark: vals[0..n) are the per-repeat figures (sorted here). */
static void emit(const char *bench, const char *unit, double *vals, size_t n, extras *x)
{
    extras head = { .len = 0 };
    x_str(&head, "bench", bench);
    x_str(&head, "system", "tern");
    x_str(&head, "unit", unit);
    double med = median(vals, n);
    x_num(&head, "median", med);
    x_num(&head, "min", vals[0]);
    x_num(&head, "max", vals[n - 1]);
    x_int(&head, "repeats", (long long)n);
    x_str(&head, "address", address);
    x_add(&head, ", \"quick\": %s", quick ? "true" : "false");
    /* head starts with ", " */
    printf("{%s%s}\n", head.s + 2, x ? x->s : "");
    fflush(stdout);
}

/* ---- the cluster --------------------------------------------------------------------- */

static const char *find_plugin(void)
{
    static char path[PATH_MAX + 64];
    if (plugin_path)
        return plugin_path;
    const char *env = getenv("TERN_BENCH_PLUGIN");
    if (env && *env)
        return env;
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (k <= 0) {
        fprintf(stderr, "tern-bench: cannot find the bench plugin: use --plugin PATH\n");
        exit(1);
    }
    exe[k] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(path, sizeof(path), "%s/../lib/tern/plugins/bench.so", exe);
    return path;
}

/* A client with the bench plugin uploaded and both plugins loaded on the workers. */
static tern_client *cluster(void)
{
    tern_client *c;
    check(tern_connect(address, NULL, &c), "connecting to %s", address);
    const char *path = find_plugin();
    check(tern_upload_plugin(c, path, NULL), "uploading %s", path);
    /* warm up: a few tasks of each kind, spread over the workers */
    enum { W = 8 };
    tern_future *fs[W];
    tern_value **noops = noop_args(W);
    check(tern_map(c, "bench:noop", noops, W, &impure, fs), "warm-up");
    free(noops);
    wait_all(fs, W, "warm-up");
    release_all(fs, W);
    tern_value **args = xcalloc(W, sizeof(*args));
    for (size_t i = 0; i < W; i++)
        args[i] = tern_list_of(tern_int((int64_t)i));
    check(tern_map(c, "bench:inc", args, W, &impure, fs), "warm-up");
    free(args);
    wait_all(fs, W, "warm-up");
    release_all(fs, W);
    sync_cluster(c);
    return c;
}

/* ---- the benchmarks ------------------------------------------------------------------ */

/* Submit one no-op and wait for its result, latency_n times in sequence. */
static void bench_latency(void)
{
    tern_client *c = cluster();
    size_t n = latency_n;
    double *vals = xcalloc((size_t)repeat, sizeof(double));
    double *ops = xcalloc(n, sizeof(double));
    for (int r = 0; r < repeat; r++) {
        double total = 0;
        for (size_t i = 0; i < n; i++) {
            double t0 = now_s();
            tern_future *f;
            check(tern_submit(c, "bench:noop", NULL, &impure, &f), "latency: submit");
            tern_value_unref(result(f, "latency"));
            tern_future_release(f);
            ops[i] = (now_s() - t0) * 1e6;
            total += ops[i];
        }
        vals[r] = total / (double)n;
        sync_cluster(c);
    }
    qsort(ops, n, sizeof(double), cmp_double);
    extras x = { .len = 0 };
    x_int(&x, "ops", (long long)n);
    x_num(&x, "p50", percentile(ops, n, 50));
    x_num(&x, "p99", percentile(ops, n, 99));
    emit("latency", "us", vals, (size_t)repeat, &x);
    tern_close(c);
    free(ops);
    free(vals);
}

/* One tern_map of n no-op tasks, from the submit until all have finished. */
static void bench_throughput(const char *name, size_t n)
{
    tern_client *c = cluster();
    double *vals = xcalloc((size_t)repeat, sizeof(double));
    double *submit_ms = xcalloc((size_t)repeat, sizeof(double));
    double *release_ms = xcalloc((size_t)repeat, sizeof(double));
    tern_future **fs = xcalloc(n, sizeof(*fs));
    for (int r = 0; r < repeat; r++) {
        tern_value **args = noop_args(n);
        double t0 = now_s();
        check(tern_map(c, "bench:noop", args, n, &impure, fs), "%s: map", name);
        double t1 = now_s();
        check(tern_wait(fs, n, WAIT_MS, TERN_WAIT_ALL), "%s: wait", name);
        double t2 = now_s();
        free(args);
        wait_all(fs, n, name); /* checks that every task finished */
        double t3 = now_s();
        release_all(fs, n);
        sync_cluster(c);
        vals[r] = (double)n / (t2 - t0);
        submit_ms[r] = (t1 - t0) * 1e3;
        release_ms[r] = (now_s() - t3) * 1e3;
    }
    extras x = { .len = 0 };
    x_int(&x, "tasks", (long long)n);
    x_num(&x, "submit_ms", median(submit_ms, (size_t)repeat));
    x_num(&x, "release_ms", median(release_ms, (size_t)repeat));
    emit(name, "tasks/s", vals, (size_t)repeat, &x);
    tern_close(c);
    free(fs);
    free(release_ms);
    free(submit_ms);
    free(vals);
}

/* inc(inc(inc(...))), chain_n links, each submitted with the previous future. */
static void bench_chain(void)
{
    tern_client *c = cluster();
    size_t n = chain_n;
    double *vals = xcalloc((size_t)repeat, sizeof(double));
    double *total_ms = xcalloc((size_t)repeat, sizeof(double));
    for (int r = 0; r < repeat; r++) {
        int64_t start = (int64_t)r * 1000000;
        double t0 = now_s();
        tern_future *prev;
        check(tern_submit(c, "bench:inc", tern_list_of(tern_int(start)), &impure, &prev),
              "chain: submit");
        for (size_t i = 1; i < n; i++) {
            tern_future *f;
            check(tern_submit(c, "bench:inc", tern_list_of(tern_future_ref(prev)), &impure, &f),
                  "chain: submit");
            tern_future_release(prev); /* the pending dependent keeps it alive */
            prev = f;
        }
        tern_value *v = result(prev, "chain");
        double t1 = now_s();
        int64_t got = 0;
        if (tern_value_get_int(v, &got) != TERN_OK || got != start + (int64_t)n) {
            fprintf(stderr, "tern-bench: chain: result %lld, want %lld\n", (long long)got,
                    (long long)(start + (int64_t)n));
            exit(1);
        }
        tern_value_unref(v);
        tern_future_release(prev);
        sync_cluster(c);
        vals[r] = (t1 - t0) * 1e6 / (double)n;
        total_ms[r] = (t1 - t0) * 1e3;
    }
    extras x = { .len = 0 };
    x_int(&x, "links", (long long)n);
    x_num(&x, "total_ms", median(total_ms, (size_t)repeat));
    emit("chain", "us", vals, (size_t)repeat, &x);
    tern_close(c);
    free(total_ms);
    free(vals);
}

/* The seed's tree reduction: map random over tree_arrays arrays, add pairwise, fetch. The
 * first run is an untimed warm-up, as for the floor (floor_tree) and Dask (bench_dask.py):
 * it is the one that gets every worker's array buffers as new pages. */
static void bench_tree(void)
{
    tern_client *c = cluster();
    size_t n = tree_arrays;
    double *vals = xcalloc((size_t)repeat, sizeof(double));
    double *submit_ms = xcalloc((size_t)repeat, sizeof(double));
    tern_future **xs = xcalloc(n, sizeof(*xs));
    tern_value **args = xcalloc(n, sizeof(*args));
    for (int r = -1; r < repeat; r++) { /* r = -1: the warm-up */
        for (size_t i = 0; i < n; i++)
            args[i] = tern_list_of(tern_int((int64_t)tree_len));
        double t0 = now_s();
        check(tern_map(c, "arrays:random", args, n, &impure, xs), "tree: map arrays:random");
        for (size_t m = n; m > 1; m /= 2)
            for (size_t i = 0; i < m; i += 2) {
                tern_future *y;
                check(tern_submit(c, "arrays:add",
                                  tern_list_of(tern_future_ref(xs[i]), tern_future_ref(xs[i + 1])),
                                  NULL, &y),
                      "tree: submit arrays:add");
                tern_future_release(xs[i]);
                tern_future_release(xs[i + 1]);
                xs[i / 2] = y;
            }
        double t1 = now_s();
        tern_value *v = result(xs[0], "tree");
        double t2 = now_s();
        const double *y;
        size_t len = 0;
        if (tern_value_get_f64_array(v, &y, &len) != TERN_OK || len != tree_len) {
            fprintf(stderr, "tern-bench: tree: the result is not an array of %zu\n", tree_len);
            exit(1);
        }
        tern_value_unref(v);
        tern_future_release(xs[0]);
        sync_cluster(c);
        if (r < 0)
            continue;
        vals[r] = (t2 - t0) * 1e3;
        submit_ms[r] = (t1 - t0) * 1e3;
    }
    extras x = { .len = 0 };
    x_int(&x, "arrays", (long long)n);
    x_int(&x, "length", (long long)tree_len);
    x_num(&x, "submit_ms", median(submit_ms, (size_t)repeat));
    emit("tree", "ms", vals, (size_t)repeat, &x);
    tern_close(c);
    free(args);
    free(xs);
    free(submit_ms);
    free(vals);
}

/* tern_connect until the workers are there, then tern_close. */
static void bench_startup(void)
{
    double *vals = xcalloc((size_t)repeat, sizeof(double));
    double *conn = xcalloc((size_t)repeat, sizeof(double));
    double *close_ = xcalloc((size_t)repeat, sizeof(double));
    for (int r = 0; r < repeat; r++) {
        tern_client *c;
        double t0 = now_s();
        check(tern_connect(address, NULL, &c), "startup: connecting to %s", address);
        double t1 = now_s();
        tern_close(c);
        double t2 = now_s();
        vals[r] = (t2 - t0) * 1e3;
        conn[r] = (t1 - t0) * 1e3;
        close_[r] = (t2 - t1) * 1e3;
    }
    extras x = { .len = 0 };
    x_num(&x, "connect_ms", median(conn, (size_t)repeat));
    x_num(&x, "close_ms", median(close_, (size_t)repeat));
    emit("startup", "ms", vals, (size_t)repeat, &x);
    free(close_);
    free(conn);
    free(vals);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The first two worker names in name order (local-0 and local-1 on local://2). */
static void two_workers(tern_client *c, char **a, char **b)
{
    tern_value *st = status(c);
    const tern_value *ws, *w, *name;
    size_t n = 0;
    if (tern_map_get(st, "workers", &ws) == TERN_OK)
        n = tern_list_len(ws);
    if (n < 2) {
        fprintf(stderr, "tern-bench: transfer needs two workers, the cluster has %zu\n", n);
        exit(1);
    }
    char **names = xcalloc(n, sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        const char *s = "";
        if (tern_list_get(ws, i, &w) == TERN_OK && tern_map_get(w, "name", &name) == TERN_OK)
            tern_value_get_text(name, &s, NULL);
        names[i] = strdup(s);
    }
    qsort(names, n, sizeof(*names), cmp_str);
    *a = names[0];
    *b = names[1];
    for (size_t i = 2; i < n; i++)
        free(names[i]);
    free(names);
    tern_value_unref(st);
}

/* arrays:sum of x on `worker`: submit until the result; returns ms. */
static double timed_sum(tern_client *c, tern_future *x, const char *worker)
{
    const char *only[] = { worker, NULL };
    tern_submit_opts o = { .impure = true, .workers = only };
    double t0 = now_s();
    tern_future *f;
    check(tern_submit(c, "arrays:sum", tern_list_of(tern_future_ref(x)), &o, &f),
          "transfer: submit arrays:sum");
    tern_value_unref(result(f, "transfer: arrays:sum"));
    double ms = (now_s() - t0) * 1e3;
    tern_future_release(f);
    return ms;
}

/* An 8 MB array made on worker A and summed on B, minus the same sum on A. The first round is
 * an untimed warm-up, as for Dask (bench_dask.py). */
static void bench_transfer(void)
{
    tern_client *c = cluster();
    char *wa, *wb;
    two_workers(c, &wa, &wb);
    const double bytes = (double)TRANSFER_LEN * sizeof(double);
    double *vals = xcalloc((size_t)repeat, sizeof(double));
    double *base = xcalloc((size_t)repeat, sizeof(double));
    double *moved = xcalloc((size_t)repeat, sizeof(double));
    double *move = xcalloc((size_t)repeat, sizeof(double));
    for (int r = -1; r < repeat; r++) { /* r = -1: the warm-up */
        const char *on_a[] = { wa, NULL };
        tern_submit_opts o = { .impure = true, .workers = on_a };
        tern_future *x;
        check(tern_submit(c, "arrays:random", tern_list_of(tern_int(TRANSFER_LEN)), &o, &x),
              "transfer: submit arrays:random");
        wait_all(&x, 1, "transfer: arrays:random");
        double at_a = timed_sum(c, x, wa); /* where the data lives */
        double at_b = timed_sum(c, x, wb); /* after that, wb holds a copy too */
        tern_future_release(x);
        sync_cluster(c);
        if (r < 0)
            continue;
        base[r] = at_a;
        moved[r] = at_b;
        move[r] = moved[r] - base[r];
        vals[r] = bytes / 1e6 / (fmax(move[r], 1e-3) / 1e3);
    }
    extras x = { .len = 0 };
    x_int(&x, "bytes", (long long)bytes);
    x_str(&x, "from", wa);
    x_str(&x, "to", wb);
    x_num(&x, "moved_ms", median(moved, (size_t)repeat));
    x_num(&x, "baseline_ms", median(base, (size_t)repeat));
    x_num(&x, "transfer_ms", median(move, (size_t)repeat));
    emit("transfer", "MB/s", vals, (size_t)repeat, &x);
    tern_close(c);
    free(move);
    free(moved);
    free(base);
    free(vals);
    free(wa);
    free(wb);
}

/* scale_n no-op tasks in maps of SCALE_CHUNK, all submitted, then waited for; plus the
 * scheduler's resident memory per task while they are all held. */
static void bench_scale(void)
{
    tern_client *c = cluster();
    size_t n = scale_n;
    double *vals = xcalloc((size_t)repeat, sizeof(double));
    double *submit_s = xcalloc((size_t)repeat, sizeof(double));
    double *release_s = xcalloc((size_t)repeat, sizeof(double));
    tern_future **fs = xcalloc(n, sizeof(*fs));
    int64_t rss_before, heap_before, rss_peak = 0, heap_peak = 0, rss_end, heap_end;
    scheduler_mem(c, &rss_before, &heap_before);
    for (int r = 0; r < repeat; r++) {
        double t0 = now_s();
        for (size_t i = 0; i < n; i += SCALE_CHUNK) {
            size_t k = n - i < SCALE_CHUNK ? n - i : SCALE_CHUNK;
            tern_value **args = noop_args(k);
            check(tern_map(c, "bench:noop", args, k, &impure, fs + i), "scale: map");
            free(args);
        }
        double t1 = now_s();
        check(tern_wait(fs, n, WAIT_MS, TERN_WAIT_ALL), "scale: wait");
        double t2 = now_s();
        wait_all(fs, n, "scale");
        int64_t rss, heap;
        scheduler_mem(c, &rss, &heap); /* all held, none released */
        if (rss > rss_peak)
            rss_peak = rss;
        if (heap > heap_peak)
            heap_peak = heap;
        double t3 = now_s();
        release_all(fs, n);
        sync_cluster(c);
        vals[r] = t2 - t0;
        submit_s[r] = t1 - t0;
        release_s[r] = now_s() - t3;
    }
    extras x = { .len = 0 };
    x_int(&x, "tasks", (long long)n);
    x_int(&x, "chunk", SCALE_CHUNK);
    x_num(&x, "submit_s", median(submit_s, (size_t)repeat));
    x_num(&x, "release_s", median(release_s, (size_t)repeat));
    x_int(&x, "rss_before", (long long)rss_before);
    x_int(&x, "rss_peak", (long long)rss_peak);
    scheduler_mem(c, &rss_end, &heap_end); /* after the last release */
    x_int(&x, "rss_end", (long long)rss_end);
    x_int(&x, "heap_end", (long long)heap_end);
    x_num(&x, "bytes_per_task", (double)(rss_peak - rss_before) / (double)n);
    x_int(&x, "heap_peak", (long long)heap_peak);
    x_num(&x, "heap_bytes_per_task", (double)(heap_peak - heap_before) / (double)n);
    emit("scale", "s", vals, (size_t)repeat, &x);
    tern_close(c);
    free(fs);
    free(release_s);
    free(submit_s);
    free(vals);
}

/* ---- main ---------------------------------------------------------------------------- */

static void run_throughput_20k(void)
{
    bench_throughput("throughput_20k", thr_small);
}

static void run_throughput_100k(void)
{
    bench_throughput("throughput_100k", thr_large);
}

static const struct {
    const char *name;
    void (*run)(void);
} benches[] = {
    { "latency", bench_latency },
    { "throughput_20k", run_throughput_20k },
    { "throughput_100k", run_throughput_100k },
    { "chain", bench_chain },
    { "tree", bench_tree },
    { "startup", bench_startup },
    { "transfer", bench_transfer },
    { "scale", bench_scale },
};
#define NBENCHES (sizeof(benches) / sizeof(benches[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: tern-bench SUBCOMMAND [--scheduler URL] [--repeat N] [--quick] "
               "[--plugin PATH]\n"
               "SUBCOMMAND: all");
    for (size_t i = 0; i < NBENCHES; i++)
        fprintf(f, " | %s", benches[i].name);
    fprintf(f, "\nPrints one JSON object per benchmark on stdout. Default cluster local://2, "
               "5 repeats.\n");
}

int main(int argc, char **argv)
{
    const char *cmd = NULL;
    int repeat_opt = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--scheduler") && has)
            address = argv[++i];
        else if (!strcmp(a, "--plugin") && has)
            plugin_path = argv[++i];
        else if (!strcmp(a, "--repeat") && has) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*argv[i] == '\0' || *end != '\0' || v < 1 || v > 1000) {
                fprintf(stderr, "tern-bench: --repeat wants 1..1000, not \"%s\"\n", argv[i]);
                return 2;
            }
            repeat_opt = (int)v;
        } else if (!strcmp(a, "--quick"))
            quick = true;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (a[0] != '-' && !cmd)
            cmd = a;
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!cmd) {
        usage(stderr);
        return 2;
    }
    size_t which = NBENCHES;
    for (size_t i = 0; i < NBENCHES; i++)
        if (!strcmp(cmd, benches[i].name))
            which = i;
    if (which == NBENCHES && strcmp(cmd, "all") != 0) {
        fprintf(stderr, "tern-bench: unknown benchmark \"%s\"\n", cmd);
        usage(stderr);
        return 2;
    }
    if (quick) {
        repeat = 1;
        latency_n = 100;
        thr_small = 2000;
        thr_large = 5000;
        chain_n = 100;
        tree_arrays = 4;
        tree_len = 100000;
        scale_n = 20000;
    }
    if (repeat_opt)
        repeat = repeat_opt;
    for (size_t i = 0; i < NBENCHES; i++)
        if (which == NBENCHES || which == i)
            benches[i].run();
    return 0;
}
