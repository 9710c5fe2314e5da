/* tern-taskbench: the Task Bench graphs on a tern cluster, through the public client API.
 *
 *     tern-taskbench [--address URL] [--plugin PATH] [--submit submit|map]
 *                    [--wait-workers N] [--system NAME] [sweep options]
 *
 * Design notes
 * - The cluster is local://2 by default (a tern-scheduler and two tern-worker processes,
 *   one executor thread each, on ipc sockets, made by tern_connect and stopped by
 *   tern_close), or the scheduler at --address, started by hand (bench/taskbench/run.py
 *   does that with port 0); --wait-workers N waits until N workers have registered there.
 * - The plugin taskbench.so (plugin.c: the shared kernel object plus one task) is uploaded
 *   once. A run submits the whole graph step by step: task (s, i) is
 *   taskbench:task(s, i, iterations, refs to its dependencies' futures...), impure (a fresh
 *   key each run, as Dask's pure=False). After step s is submitted, the futures of step s-1
 *   are released: the pending dependents keep their keys alive on the cluster. Then the
 *   last step's values are gathered (small ints: they come with the completion notice).
 *   The clock runs from the first submission to the last value.
 * - --submit map submits each step with one tern_map (siblings placed in blocks per worker)
 *   instead of one tern_submit per task (the default, like Dask's client.submit).
 * - Right after connecting, the empty stencil (W x 1,000 tasks of 0 µs) runs once on the
 *   fresh cluster and then warm (sweep.c), then the sweep. Between runs one status round
 *   trip makes sure the releases of the previous run have been handled.
 * - Exit status: 0; 1 when a tern call, a task or a check fails; 2 on a usage error.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tern/tern.h>

#include "sweep.h"

#define WAIT_MS 300000 /* any one run: far longer than a point ever takes */

typedef struct {
    tern_client *c;
    bool use_map;
} tern_ctx_;

static const tern_submit_opts impure = { .impure = true };

static void fail_call(int rc, const char *what)
{
    fprintf(stderr, "tern-taskbench: %s: %s: %s\n", what, tern_strerror(rc),
            tern_client_errmsg(NULL));
}

static void fail_future(tern_future *f, int rc, const char *what)
{
    int code;
    const char *msg, *task, *key;
    if (tern_future_error(f, &code, &msg, &task, &key) == TERN_OK)
        fprintf(stderr, "tern-taskbench: %s: %s: %s (task %s, key %s)\n", what, tern_strerror(code),
                msg, task, key);
    else
        fail_call(rc, what);
}

/* The argument list of task (s, i): s, i, iterations, then refs to its dependencies. */
static tern_value *task_args(const tb_graph *g, long s, int i, uint64_t iterations,
                             tern_future **prev, int *deps, tern_value **items)
{
    int n = tb_deps(g, s, i, deps);
    items[0] = tern_int(s);
    items[1] = tern_int(i);
    items[2] = tern_int((int64_t)iterations);
    for (int j = 0; j < n; j++)
        items[3 + j] = tern_future_ref(prev[deps[j]]);
    return tern_list_from(items, (size_t)n + 3);
}

static void release_row(tern_future **row, int n)
{
    for (int i = 0; i < n; i++) {
        tern_future_release(row[i]);
        row[i] = NULL;
    }
}

static int run_tern(void *ctx, const tb_graph *g, long steps, uint64_t iterations, uint64_t *last,
                    double *elapsed_s)
{
    tern_ctx_ *t = ctx;
    size_t w = (size_t)g->width;
    tern_future **prev = calloc(w, sizeof(*prev)), **cur = calloc(w, sizeof(*cur));
    tern_value **args = calloc(w, sizeof(*args)), **vals = calloc(w, sizeof(*vals));
    tern_value **items = calloc(w + 3, sizeof(*items));
    int *deps = calloc(w, sizeof(int));
    int rc = 1, nprev = 0;
    if (!prev || !cur || !args || !vals || !items || !deps) {
        fprintf(stderr, "tern-taskbench: out of memory\n");
        goto out;
    }
    double t0 = tb_now_s();
    for (long s = 0; s < steps; s++) {
        int ws = tb_width_at(g, s);
        int err = TERN_OK;
        if (t->use_map) {
            for (int i = 0; i < ws; i++)
                args[i] = task_args(g, s, i, iterations, prev, deps, items);
            err = tern_map(t->c, "taskbench:task", args, (size_t)ws, &impure, cur);
        } else {
            for (int i = 0; i < ws && err == TERN_OK; i++) {
                tern_value *a = task_args(g, s, i, iterations, prev, deps, items);
                err = tern_submit(t->c, "taskbench:task", a, &impure, &cur[i]);
            }
        }
        if (err != TERN_OK) {
            fail_call(err, "submit taskbench:task");
            goto out;
        }
        release_row(prev, nprev);
        tern_future **tmp = prev;
        prev = cur;
        cur = tmp;
        nprev = ws;
    }
    int err = tern_gather(prev, (size_t)nprev, WAIT_MS, vals);
    *elapsed_s = tb_now_s() - t0;
    if (err != TERN_OK) {
        for (int i = 0; i < nprev; i++)
            if (tern_future_status(prev[i]) != TERN_FINISHED) {
                fail_future(prev[i], err, "gather the last step");
                goto out;
            }
        fail_call(err, "gather the last step");
        goto out;
    }
    for (int i = 0; i < nprev; i++) {
        int64_t v;
        if (tern_value_get_int(vals[i], &v) != TERN_OK) {
            fprintf(stderr, "tern-taskbench: task (%ld, %d) returned no int\n", steps - 1, i);
            goto out;
        }
        last[i] = (uint64_t)v;
    }
    rc = 0;
out:
    if (prev && vals)
        for (int i = 0; i < nprev; i++)
            tern_value_unref(vals[i]);
    if (prev)
        release_row(prev, nprev);
    if (rc == 0) { /* one round trip: the releases above have been handled */
        tern_value *st;
        if (tern_status_info(t->c, &st) == TERN_OK)
            tern_value_unref(st);
    }
    free(deps);
    free(items);
    free(vals);
    free(args);
    free(cur);
    free(prev);
    return rc;
}

/* The plugin next to this binary: ../lib/tern/plugins/taskbench.so. */
static const char *default_plugin(void)
{
    static char path[PATH_MAX + 64];
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (k <= 0)
        return NULL;
    exe[k] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(path, sizeof(path), "%s/../lib/tern/plugins/taskbench.so", exe);
    return path;
}

/* Registered workers and their executor threads in all, from the scheduler's status. */
static int cluster_size(tern_client *c, int *workers, int *threads)
{
    tern_value *st;
    int rc = tern_status_info(c, &st);
    if (rc != TERN_OK)
        return rc;
    const tern_value *ws, *w, *nt;
    *workers = *threads = 0;
    if (tern_map_get(st, "workers", &ws) == TERN_OK) {
        *workers = (int)tern_list_len(ws);
        for (int i = 0; i < *workers; i++) {
            int64_t n = 1;
            if (tern_list_get(ws, (size_t)i, &w) == TERN_OK &&
                tern_map_get(w, "nthreads", &nt) == TERN_OK)
                tern_value_get_int(nt, &n);
            *threads += (int)n;
        }
    }
    tern_value_unref(st);
    return TERN_OK;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tern-taskbench [--address URL] [--plugin PATH] [--submit submit|map]\n"
               "                      [--wait-workers N] [--system NAME] [options]\n"
               "The Task Bench graphs on a tern cluster: one JSON line per point and one for\n"
               "the empty stencil (bench/README.md, \"Task Bench graphs\").\n"
               "  --address URL       the cluster (default local://2)\n"
               "  --plugin PATH       taskbench.so (default ../lib/tern/plugins/ beside this)\n"
               "  --submit HOW        submit: one tern_submit per task (default);\n"
               "                      map: one tern_map per step\n"
               "  --wait-workers N    first wait (30 s at most) until N workers registered\n"
               "  --system NAME       the lines' \"system\" (default tern)\n"
               "  (--workers defaults to the executor threads the cluster has)\n");
    tb_opts_usage(f);
}

int main(int argc, char **argv)
{
    tb_opts o;
    tb_opts_init(&o, "tern");
    const char *address = "local://2", *plugin = NULL;
    tern_ctx_ t = { .c = NULL, .use_map = false };
    long wait_workers = 0;
    bool workers_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc = tb_opts_parse(&o, argc, argv, &i);
        if (rc < 0)
            return 2;
        if (rc > 0) {
            workers_given = workers_given || !strcmp(a, "--workers");
            continue;
        }
        bool has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--address") && has)
            address = argv[++i];
        else if (!strcmp(a, "--plugin") && has)
            plugin = argv[++i];
        else if (!strcmp(a, "--system") && has)
            o.system = argv[++i];
        else if (!strcmp(a, "--wait-workers") && has)
            wait_workers = atol(argv[++i]);
        else if (!strcmp(a, "--submit") && has) {
            const char *v = argv[++i];
            if (!strcmp(v, "map"))
                t.use_map = true;
            else if (strcmp(v, "submit") != 0) {
                fprintf(stderr, "tern-taskbench: --submit wants submit or map\n");
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!plugin && !(plugin = default_plugin())) {
        fprintf(stderr, "tern-taskbench: cannot find taskbench.so: use --plugin PATH\n");
        return 1;
    }
    tb_opts_finish(&o); /* calibrate before the cluster's processes exist */

    double t0 = tb_now_s();
    int rc = tern_connect(address, NULL, &t.c);
    if (rc != TERN_OK) {
        fail_call(rc, "connect");
        return 1;
    }
    int workers = 0, threads = 0;
    for (;;) {
        if ((rc = cluster_size(t.c, &workers, &threads)) != TERN_OK) {
            fail_call(rc, "status");
            tern_close(t.c);
            return 1;
        }
        if (workers >= wait_workers)
            break;
        if (tb_now_s() - t0 > 30) {
            fprintf(stderr, "tern-taskbench: %d of %ld workers after 30 s\n", workers,
                    wait_workers);
            tern_close(t.c);
            return 1;
        }
        usleep(20000);
    }
    double connect_s = tb_now_s() - t0;
    if ((rc = tern_upload_plugin(t.c, plugin, NULL)) != TERN_OK) {
        fail_call(rc, plugin);
        tern_close(t.c);
        return 1;
    }
    if (!workers_given)
        o.workers = threads > 0 ? threads : 1;
    char extra[PATH_MAX + 256];
    snprintf(extra, sizeof(extra),
             ", \"address\": \"%s\", \"submit\": \"%s\", \"cluster_workers\": %d, "
             "\"connect_s\": %.4f",
             address, t.use_map ? "map" : "submit", workers, connect_s);
    o.extra = extra;
    int status = 0;
    if (o.empty && tb_run_empty(&o, run_tern, &t))
        status = 1;
    if (status == 0 && o.sweep && tb_run_sweep(&o, run_tern, &t))
        status = 1;
    tern_close(t.c);
    return status;
}
