/* floor_taskbench: the Task Bench graphs with no runtime, the 100 % reference.
 *
 *     floor_taskbench [--threads N] [--barrier spin|pthread] [sweep options]
 *
 * Design notes
 * - One process, N pthreads (default 2, the cores tern and Dask get), one barrier per step.
 *   In step s with w tasks, thread t runs tasks [t*w/N, (t+1)*w/N): read the dependencies'
 *   values from the previous row, tb_kernel, tb_mix, write the current row. Two rows of W
 *   values, swapped after each barrier; nothing else is shared.
 * - The barrier is a sense-reversing spin barrier that yields after a while (a shared VM
 *   can deschedule a vCPU, and a pure spin would then burn the other's time slice); with
 *   --barrier pthread it is pthread_barrier_t, whose futex wake costs more per step.
 * - The threads are made and joined inside each timed run: a few tens of µs in runs of
 *   0.1 s and more.
 * - Options, steps, checks and JSON lines are sweep.c's, shared with tern-taskbench.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sweep.h"

#define SPINS_BEFORE_YIELD 2000

typedef struct {
    atomic_int left;  /* threads still to arrive in this round */
    atomic_int sense; /* flips when a round completes */
    int n;
} spin_barrier;

typedef struct {
    int threads;
    bool use_pthread;
} floor_cfg;

typedef struct {
    const tb_graph *g;
    long steps;
    uint64_t iterations;
    int threads;
    uint64_t *rows[2]; /* values of step s live in rows[s & 1] */
    bool use_pthread;
    spin_barrier spin;
    pthread_barrier_t pb;
} floor_run;

typedef struct {
    floor_run *run;
    int t;
} floor_thread;

static void spin_wait(spin_barrier *b, int *local_sense)
{
    int mine = !*local_sense;
    *local_sense = mine;
    if (atomic_fetch_sub(&b->left, 1) == 1) {
        atomic_store(&b->left, b->n);
        atomic_store(&b->sense, mine);
        return;
    }
    for (long k = 0; atomic_load(&b->sense) != mine; k++)
        if (k >= SPINS_BEFORE_YIELD)
            sched_yield();
}

static void *worker(void *arg)
{
    floor_thread *ft = arg;
    floor_run *r = ft->run;
    const tb_graph *g = r->g;
    int *deps = calloc((size_t)g->width, sizeof(int));
    uint64_t *in = calloc((size_t)g->width, sizeof(uint64_t));
    int sense = 0;
    if (!deps || !in) {
        fprintf(stderr, "floor_taskbench: out of memory\n");
        exit(1);
    }
    for (long s = 0; s < r->steps; s++) {
        const uint64_t *prev = r->rows[(s + 1) & 1];
        uint64_t *cur = r->rows[s & 1];
        int w = tb_width_at(g, s);
        int lo = (int)((long)ft->t * w / r->threads),
            hi = (int)((long)(ft->t + 1) * w / r->threads);
        for (int i = lo; i < hi; i++) {
            int n = tb_deps(g, s, i, deps);
            for (int j = 0; j < n; j++)
                in[j] = prev[deps[j]];
            uint64_t k = tb_kernel(r->iterations);
            cur[i] = tb_mix(s, i, in, (size_t)n, k);
        }
        if (r->use_pthread)
            pthread_barrier_wait(&r->pb);
        else
            spin_wait(&r->spin, &sense);
    }
    free(in);
    free(deps);
    return NULL;
}

static int run_floor(void *ctx, const tb_graph *g, long steps, uint64_t iterations, uint64_t *last,
                     double *elapsed_s)
{
    const floor_cfg *cfg = ctx;
    int n = cfg->threads;
    floor_run r = { .g = g,
                    .steps = steps,
                    .iterations = iterations,
                    .threads = n,
                    .use_pthread = cfg->use_pthread };
    r.rows[0] = calloc((size_t)g->width, sizeof(uint64_t));
    r.rows[1] = calloc((size_t)g->width, sizeof(uint64_t));
    pthread_t *tid = calloc((size_t)n, sizeof(pthread_t));
    floor_thread *ft = calloc((size_t)n, sizeof(floor_thread));
    if (!r.rows[0] || !r.rows[1] || !tid || !ft) {
        fprintf(stderr, "floor_taskbench: out of memory\n");
        return 1;
    }
    atomic_init(&r.spin.left, n);
    atomic_init(&r.spin.sense, 0);
    r.spin.n = n;
    if (cfg->use_pthread)
        pthread_barrier_init(&r.pb, NULL, (unsigned)n);
    double t0 = tb_now_s();
    for (int t = 0; t < n; t++) {
        ft[t] = (floor_thread){ .run = &r, .t = t };
        if (pthread_create(&tid[t], NULL, worker, &ft[t]) != 0) {
            fprintf(stderr, "floor_taskbench: pthread_create failed\n");
            exit(1);
        }
    }
    for (int t = 0; t < n; t++)
        pthread_join(tid[t], NULL);
    *elapsed_s = tb_now_s() - t0;
    memcpy(last, r.rows[(steps - 1) & 1], (size_t)tb_width_at(g, steps - 1) * sizeof(uint64_t));
    if (cfg->use_pthread)
        pthread_barrier_destroy(&r.pb);
    free(ft);
    free(tid);
    free(r.rows[0]);
    free(r.rows[1]);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: floor_taskbench [--threads N] [--barrier spin|pthread] [options]\n"
               "The Task Bench graphs on N pthreads (default 2) in one process, one barrier\n"
               "per step, the same kernel as tern and Dask: the 100%% reference. Prints one\n"
               "JSON line per point (bench/README.md, \"Task Bench graphs\").\n"
               "  --threads N         threads (default 2; also the efficiency's workers)\n"
               "  --barrier B         spin (default, yields when slow) or pthread\n");
    tb_opts_usage(f);
}

int main(int argc, char **argv)
{
    tb_opts o;
    tb_opts_init(&o, "floor");
    floor_cfg cfg = { .threads = 2, .use_pthread = false };
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
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            cfg.threads = atoi(argv[++i]);
            if (cfg.threads < 1 || cfg.threads > 1024) {
                fprintf(stderr, "floor_taskbench: --threads wants 1..1024\n");
                return 2;
            }
        } else if (!strcmp(a, "--barrier") && i + 1 < argc) {
            const char *b = argv[++i];
            if (!strcmp(b, "pthread"))
                cfg.use_pthread = true;
            else if (strcmp(b, "spin") != 0) {
                fprintf(stderr, "floor_taskbench: --barrier wants spin or pthread\n");
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!workers_given)
        o.workers = cfg.threads;
    tb_opts_finish(&o);
    char extra[128];
    snprintf(extra, sizeof(extra), ", \"threads\": %d, \"barrier\": \"%s\"", cfg.threads,
             cfg.use_pthread ? "pthread" : "spin");
    o.extra = extra;
    if (o.empty && tb_run_empty(&o, run_floor, &cfg))
        return 1;
    if (o.sweep && tb_run_sweep(&o, run_floor, &cfg))
        return 1;
    return 0;
}
