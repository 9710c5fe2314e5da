/* tree_reduce: the seed's showcase, a binary tree reduction of 16 random million-element
 * arrays, run in-process through the plugin loader and the arrays plugin.
 *
 *     x1 x2 x3 x4 ... x16      arrays:random(1000000, seed) each
 *      \ /   \ /
 *      y1    y2   ...          arrays:add(neighbour, neighbour)
 *        ...
 *       total                  one array; checked against a direct element-wise sum
 *
 * Until the cluster exists (issue: cluster core), this runs every task in this process; the
 * task calls are the same ones a worker makes. Usage:
 *     tree_reduce [--plugin PATH] [--arrays N] [--length N]
 * Exit status 0 when the result matches the direct sum, 1 otherwise, 2 on a usage error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tern/value.h>

#include "loader.h"
#include "task_ctx.h"

#ifndef TERN_PLUGIN_DIR
#define TERN_PLUGIN_DIR "build/lib/tern/plugins"
#endif

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int call(terni_loader *l, const char *qualified, tern_value *args, tern_value **out)
{
    char msg[1024];
    tern_task_fn fn;
    int rc = terni_loader_resolve(l, qualified, NULL, &fn, msg, sizeof(msg));
    if (rc == TERN_OK) {
        const tern_value *items[4];
        size_t n = tern_list_len(args);
        for (size_t i = 0; i < n && i < 4; i++)
            tern_list_get(args, i, &items[i]);
        rc = terni_task_call(fn, strchr(qualified, ':') + 1, "", items, n, out, msg, sizeof(msg));
    }
    tern_value_unref(args);
    if (rc != TERN_OK)
        fprintf(stderr, "tree_reduce: %s failed: %s: %s\n", qualified, tern_strerror(rc), msg);
    return rc;
}

static long parse_count(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > (1L << 30)) {
        fprintf(stderr, "tree_reduce: %s must be a positive integer, not \"%s\"\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *plugin = TERN_PLUGIN_DIR "/arrays.so";
    long count = 16, length = 1000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--plugin") && i + 1 < argc)
            plugin = argv[++i];
        else if (!strcmp(argv[i], "--arrays") && i + 1 < argc)
            count = parse_count(argv[++i], "--arrays");
        else if (!strcmp(argv[i], "--length") && i + 1 < argc)
            length = parse_count(argv[++i], "--length");
        else {
            fprintf(stderr, "usage: tree_reduce [--plugin PATH] [--arrays N] [--length N]\n");
            return 2;
        }
    }
    if (count & (count - 1)) {
        fprintf(stderr, "tree_reduce: --arrays must be a power of two (got %ld)\n", count);
        return 2;
    }

    char workdir[] = "/tmp/tern-demo-XXXXXX";
    if (!mkdtemp(workdir)) {
        perror("tree_reduce: mkdtemp");
        return 1;
    }
    char msg[1024];
    terni_loader *l;
    const terni_plugin *p;
    int rc = terni_loader_open(workdir, &l, msg, sizeof(msg));
    if (rc == TERN_OK)
        rc = terni_loader_load_file(l, plugin, &p, msg, sizeof(msg));
    if (rc != TERN_OK) {
        fprintf(stderr, "tree_reduce: cannot load %s: %s\n", plugin, msg);
        return 1;
    }
    printf("plugin %s %s (sha256 %.16s...), %zu tasks\n", terni_plugin_name(p),
           terni_plugin_version(p), terni_plugin_id(p), terni_plugin_task_count(p));

    tern_value **xs = calloc((size_t)count, sizeof(*xs));
    double t0 = now_ms();
    for (long i = 0; i < count && rc == TERN_OK; i++)
        rc = call(l, "arrays:random", tern_list_of(tern_int(length), tern_int(i)), &xs[i]);
    double t1 = now_ms();

    /* The direct sum, for checking, before the reduction consumes the inputs. */
    double *want = calloc((size_t)length, sizeof(double));
    for (long i = 0; i < count && rc == TERN_OK; i++) {
        const double *x;
        size_t n;
        tern_value_get_f64_array(xs[i], &x, &n);
        for (size_t j = 0; j < n; j++)
            want[j] += x[j];
    }

    double t2 = now_ms();
    for (long n = count; n > 1 && rc == TERN_OK; n /= 2)
        for (long i = 0; i < n && rc == TERN_OK; i += 2) {
            tern_value *y = NULL;
            rc = call(l, "arrays:add", tern_list_of(xs[i], xs[i + 1]), &y);
            xs[i] = xs[i + 1] = NULL;
            xs[i / 2] = y;
        }
    double t3 = now_ms();
    if (rc != TERN_OK)
        return 1;

    const double *total;
    size_t n;
    tern_value_get_f64_array(xs[0], &total, &n);
    double max_err = 0, sum = 0;
    for (size_t j = 0; j < n; j++) {
        max_err = fmax(max_err, fabs(total[j] - want[j]));
        sum += total[j];
    }
    char *preview = tern_value_to_string(xs[0], 0);
    printf("result   %s\n", preview);
    printf("arrays   %ld x %ld float64; random %.1f ms, reduction (%ld adds) %.1f ms\n", count,
           length, t1 - t0, count - 1, t3 - t2);
    printf("check    sum of elements %.6f (expected about %.0f), max |error| vs direct sum %.3g\n",
           sum, 0.5 * (double)count * (double)length, max_err);
    bool ok = max_err <= 1e-9 * (double)count;
    printf("%s\n", ok ? "ok: tree reduction matches the direct sum"
                      : "FAILED: tree reduction differs from the direct sum");

    free(preview);
    free(want);
    tern_value_unref(xs[0]);
    free(xs);
    terni_loader_close(l);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", workdir);
    if (system(cmd) != 0)
        fprintf(stderr, "tree_reduce: could not remove %s\n", workdir);
    return ok ? 0 : 1;
}
