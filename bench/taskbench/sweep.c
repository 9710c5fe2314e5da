/* The sweep shared by tern-taskbench and floor_taskbench (see sweep.h).
 *
 * Design notes
 * - A point is (pattern, task duration). Its iterations are duration x iters_per_us,
 *   rounded; its steps are chosen so that one repeat holds target_s of kernel time at 100 %
 *   efficiency, and so that the repeat is predicted to last at most max_s, the prediction
 *   being the ideal step time plus the overhead per step measured at the previous (longer)
 *   duration of the same pattern. So long tasks get few steps, short tasks many, and a
 *   system whose overhead dominates gets few enough steps that its slow points stay short.
 * - Efficiency = ideal elapsed / elapsed, the ideal being slots x duration, where slots is
 *   the sum over steps of ceil(tasks in the step / workers): the best any schedule can do
 *   when each step needs the one before. At W = 2 on 2 workers that is
 *   W x S x duration / (elapsed x workers) for every pattern, the tree included (its
 *   1-task steps count as a full step). "utilization" = tasks x duration / (elapsed x
 *   workers) is reported too (the tree's best is 75 % at W = 2). Durations are the requested
 *   ones; the measured one (tb_measure_us here, in this process, right before the point) is
 *   reported as kernel_us_measured so a drifting machine shows.
 * - Sweeping: durations in the order given (longest first). If the first point is already
 *   below 50 %, longer durations (x3, x10/3: 30000, 100000) are run first until 50 % is
 *   reached or extend_to is passed, so that the METG is bracketed. Going down, a pattern
 *   stops after its first point below stop_below.
 * - Every repeat's last-step values are compared with tb_graph_reference, which needs
 *   tb_kernel(iterations) once per point: a task that did not run its kernel in full, or got
 *   the wrong inputs, fails the run.
 * - Lines go to stdout, progress to stderr; the figure ("median") is the efficiency.
 */
#include "sweep.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool given_durations, given_target, given_max, given_repeats, given_empty_repeats,
    given_extend;

double tb_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tb_opts_init(tb_opts *o, const char *system)
{
    static const double durations[] = { 10000, 3000, 1000, 300, 100, 30, 10 };
    memset(o, 0, sizeof(*o));
    o->system = system;
    for (int p = 0; p < TB_NPATTERNS; p++)
        o->patterns[p] = (tb_pattern)p;
    o->npatterns = TB_NPATTERNS;
    o->ndurations = (int)(sizeof(durations) / sizeof(durations[0]));
    memcpy(o->durations, durations, sizeof(durations));
    o->width = 2;
    o->radix = 3;
    o->workers = 2;
    o->min_steps = 10;
    o->max_tasks = 200000;
    o->target_s = 0.3;
    o->max_s = 1.0;
    o->repeats = 3;
    o->stop_below = 0.10;
    o->extend_to = 100000;
    o->sweep = true;
    o->empty = true;
    o->empty_steps = 1000;
    o->empty_repeats = 3;
    o->extra = "";
}

void tb_opts_usage(FILE *f)
{
    fprintf(f, "  --patterns LIST     stencil,nocomm,tree,nearest,all_to_all (default all)\n"
               "  --durations LIST    task durations in us, swept in this order\n"
               "                      (default 10000,3000,1000,300,100,30,10)\n"
               "  --width W           tasks per step (default 2)\n"
               "  --radix K           nearest: points each task depends on (default 3)\n"
               "  --workers N         cores the graph runs on, for the efficiency (default 2)\n"
               "  --steps N           steps at every point (default: chosen per point)\n"
               "  --min-steps N       chosen steps at least N (default 10)\n"
               "  --max-tasks N       chosen steps give at most N tasks (default 200000)\n"
               "  --target-s X        kernel time per repeat at 100%% efficiency (default 0.3)\n"
               "  --max-s X           predicted wall time per repeat at most (default 1.0)\n"
               "  --repeat N          runs per point (default 3)\n"
               "  --stop-below E      stop a pattern after a point below E (default 0.1)\n"
               "  --extend-to US      first point below 50%%: longer tasks (x3, x10/3) up to\n"
               "                      US until 50%% is reached (default 100000; 0: never)\n"
               "  --no-sweep          skip the sweep\n"
               "  --no-empty          skip the empty stencil (W x 1000 tasks of 0 us)\n"
               "  --empty-steps N     steps of the empty stencil (default 1000)\n"
               "  --empty-repeats N   warm runs of the empty stencil (default 3)\n"
               "  --iters-per-us X    kernel calibration to use (default: measured at start)\n"
               "  --quick             durations 1000,100; 0.05 s per repeat; 1 repeat;\n"
               "                      --extend-to 10000\n");
}

static int bad(const char *opt, const char *val, const char *want)
{
    fprintf(stderr, "taskbench: %s wants %s, not \"%s\"\n", opt, want, val);
    return -1;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_patterns(tb_opts *o, const char *list)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", list);
    o->npatterns = 0;
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        tb_pattern p;
        if (tb_pattern_parse(t, &p) || o->npatterns == TB_NPATTERNS)
            return -1;
        o->patterns[o->npatterns++] = p;
    }
    return o->npatterns ? 0 : -1;
}

static int parse_durations(tb_opts *o, const char *list)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", list);
    o->ndurations = 0;
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        double d;
        if (parse_double(t, 0, 1e8, &d) || o->ndurations == TB_MAX_DURATIONS)
            return -1;
        o->durations[o->ndurations++] = d;
    }
    return o->ndurations ? 0 : -1;
}

int tb_opts_parse(tb_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--quick"))
        o->quick = true;
    else if (!strcmp(a, "--no-sweep"))
        o->sweep = false;
    else if (!strcmp(a, "--no-empty"))
        o->empty = false;
    else {
        static const char *const with_value[] = {
            "--patterns",    "--durations",     "--width",        "--radix",
            "--workers",     "--steps",         "--min-steps",    "--max-tasks",
            "--target-s",    "--max-s",         "--repeat",       "--stop-below",
            "--empty-steps", "--empty-repeats", "--iters-per-us", "--extend-to",
        };
        bool known = false;
        for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
            known = known || !strcmp(a, with_value[k]);
        if (!known)
            return 0;
        if (*i + 1 >= argc) {
            fprintf(stderr, "taskbench: %s needs a value\n", a);
            return -1;
        }
        const char *v = argv[++*i];
        long n;
        if (!strcmp(a, "--patterns")) {
            if (parse_patterns(o, v))
                return bad(a, v, "a list of stencil, nocomm, tree, nearest, all_to_all");
        } else if (!strcmp(a, "--durations")) {
            if (parse_durations(o, v))
                return bad(a, v, "a list of durations in us");
            given_durations = true;
        } else if (!strcmp(a, "--width")) {
            if (parse_long(v, 1, 4096, &n))
                return bad(a, v, "1..4096");
            o->width = (int)n;
        } else if (!strcmp(a, "--radix")) {
            if (parse_long(v, 1, 4096, &n))
                return bad(a, v, "1..4096");
            o->radix = (int)n;
        } else if (!strcmp(a, "--workers")) {
            if (parse_long(v, 1, 4096, &n))
                return bad(a, v, "1..4096");
            o->workers = (int)n;
        } else if (!strcmp(a, "--steps")) {
            if (parse_long(v, 1, 100000000, &o->steps))
                return bad(a, v, "1..1e8");
        } else if (!strcmp(a, "--min-steps")) {
            if (parse_long(v, 1, 100000000, &o->min_steps))
                return bad(a, v, "1..1e8");
        } else if (!strcmp(a, "--max-tasks")) {
            if (parse_long(v, 1, 100000000, &o->max_tasks))
                return bad(a, v, "1..1e8");
        } else if (!strcmp(a, "--target-s")) {
            if (parse_double(v, 1e-4, 3600, &o->target_s))
                return bad(a, v, "seconds");
            given_target = true;
        } else if (!strcmp(a, "--max-s")) {
            if (parse_double(v, 1e-4, 3600, &o->max_s))
                return bad(a, v, "seconds");
            given_max = true;
        } else if (!strcmp(a, "--repeat")) {
            if (parse_long(v, 1, 1000, &n))
                return bad(a, v, "1..1000");
            o->repeats = (int)n;
            given_repeats = true;
        } else if (!strcmp(a, "--stop-below")) {
            if (parse_double(v, 0, 1, &o->stop_below))
                return bad(a, v, "an efficiency in [0, 1]");
        } else if (!strcmp(a, "--empty-steps")) {
            if (parse_long(v, 1, 100000000, &o->empty_steps))
                return bad(a, v, "1..1e8");
        } else if (!strcmp(a, "--empty-repeats")) {
            if (parse_long(v, 0, 1000, &n))
                return bad(a, v, "0..1000");
            o->empty_repeats = (int)n;
            given_empty_repeats = true;
        } else if (!strcmp(a, "--extend-to")) {
            if (parse_double(v, 0, 1e8, &o->extend_to))
                return bad(a, v, "a duration in us (0: never)");
            given_extend = true;
        } else if (!strcmp(a, "--iters-per-us")) {
            if (parse_double(v, 1e-3, 1e9, &o->iters_per_us))
                return bad(a, v, "a positive number");
        }
    }
    return 1;
}

void tb_opts_finish(tb_opts *o)
{
    if (o->quick) {
        if (!given_durations) {
            o->ndurations = 2;
            o->durations[0] = 1000;
            o->durations[1] = 100;
        }
        if (!given_target)
            o->target_s = 0.05;
        if (!given_max)
            o->max_s = 0.25;
        if (!given_repeats)
            o->repeats = 1;
        if (!given_empty_repeats)
            o->empty_repeats = 1;
        if (!given_extend)
            o->extend_to = 10000;
    }
    if (o->iters_per_us <= 0) {
        o->iters_per_us = tb_calibrate();
        o->calibrated = true;
    }
}

/* ---- JSON lines ---------------------------------------------------------------------- */

typedef struct {
    char s[2048];
    size_t len;
} line;

static void add(line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(line *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(l->s + l->len, sizeof(l->s) - l->len, fmt, ap);
    va_end(ap);
    if (k > 0)
        l->len = l->len + (size_t)k < sizeof(l->s) ? l->len + (size_t)k : sizeof(l->s) - 1;
}

static void num(line *l, const char *key, double v)
{
    if (isfinite(v))
        add(l, ", \"%s\": %.6g", key, v);
    else
        add(l, ", \"%s\": null", key);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v; its median. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The head of a line: bench, system, unit, median/min/max of vals[0..n) (sorted here). */
static void head(line *l, const tb_opts *o, const char *bench, const char *unit, double *vals,
                 int n)
{
    double med = median(vals, n);
    add(l, "{\"bench\": \"%s\", \"system\": \"%s\", \"unit\": \"%s\"", bench, o->system, unit);
    num(l, "median", med);
    num(l, "min", vals[0]);
    num(l, "max", vals[n - 1]);
    add(l, ", \"repeats\": %d", n);
}

static void tail(line *l, const tb_opts *o)
{
    num(l, "iters_per_us", o->iters_per_us);
    add(l, ", \"calibration\": \"%s\", \"quick\": %s%s}", o->calibrated ? "measured" : "given",
        o->quick ? "true" : "false", o->extra);
    printf("%s\n", l->s);
    fflush(stdout);
}

/* ---- running and checking ------------------------------------------------------------ */

/* One run of g, checked; its elapsed seconds, or a negative number on failure. */
static double run_checked(const tb_opts *o, tb_run_fn run, void *ctx, const tb_graph *g, long steps,
                          uint64_t iterations, const uint64_t *want)
{
    uint64_t *got = calloc((size_t)g->width, sizeof(uint64_t));
    double elapsed = -1;
    if (!got) {
        fprintf(stderr, "taskbench: out of memory\n");
        return -1;
    }
    if (run(ctx, g, steps, iterations, got, &elapsed) != 0) {
        free(got);
        return -1;
    }
    int w = tb_width_at(g, steps - 1);
    for (int i = 0; i < w; i++)
        if (got[i] != want[i]) {
            fprintf(stderr,
                    "taskbench: %s %s: task (%ld, %d) = %016llx, want %016llx (%ld steps, "
                    "%llu iterations)\n",
                    o->system, tb_pattern_name(g->pattern), steps - 1, i,
                    (unsigned long long)got[i], (unsigned long long)want[i], steps,
                    (unsigned long long)iterations);
            free(got);
            return -1;
        }
    free(got);
    return elapsed;
}

int tb_run_empty(const tb_opts *o, tb_run_fn run, void *ctx)
{
    tb_graph g = { .pattern = TB_STENCIL, .width = o->width, .radix = o->radix };
    long steps = o->empty_steps;
    uint64_t *want = calloc((size_t)o->width, sizeof(uint64_t));
    double *warm = calloc((size_t)o->empty_repeats + 1, sizeof(double));
    if (!want || !warm || tb_graph_reference(&g, steps, tb_kernel(0), want) < 0) {
        fprintf(stderr, "taskbench: out of memory\n");
        return 1;
    }
    fprintf(stderr, "taskbench: %s empty stencil, %ld tasks\n", o->system, tb_tasks(&g, steps));
    double fresh = run_checked(o, run, ctx, &g, steps, 0, want);
    if (fresh < 0)
        return 1;
    for (int r = 0; r < o->empty_repeats; r++)
        if ((warm[r] = run_checked(o, run, ctx, &g, steps, 0, want)) < 0)
            return 1;
    int n = o->empty_repeats;
    if (n == 0) { /* no warm run: the line's figures are the fresh one */
        warm[0] = fresh;
        n = 1;
    }
    line l = { .len = 0 };
    head(&l, o, "taskbench_empty", "s", warm, n);
    add(&l,
        ", \"pattern\": \"stencil\", \"width\": %d, \"steps\": %ld, \"tasks\": %ld, "
        "\"task_us\": 0, \"workers\": %d",
        o->width, steps, tb_tasks(&g, steps), o->workers);
    num(&l, "fresh_s", fresh);
    num(&l, "warm_s", median(warm, n));
    num(&l, "per_task_us", median(warm, n) * 1e6 / (double)tb_tasks(&g, steps));
    tail(&l, o);
    free(warm);
    free(want);
    return 0;
}

/* Average ideal slots per step over a long stretch (exact for every pattern but the tree,
 * whose period is much shorter than 4096 steps). */
static double slots_per_step(const tb_graph *g, int workers)
{
    return (double)tb_slots(g, 4096, workers) / 4096.0;
}

static long choose_steps(const tb_opts *o, const tb_graph *g, double task_us, double overhead_s)
{
    if (o->steps > 0)
        return o->steps;
    double ideal_step_s = slots_per_step(g, o->workers) * task_us * 1e-6;
    double tasks_per_step = (double)tb_tasks(g, 4096) / 4096.0;
    double steps = ideal_step_s > 0 ? o->target_s / ideal_step_s : (double)o->max_tasks;
    if (overhead_s >= 0 && ideal_step_s + overhead_s > 0) {
        double cap = o->max_s / (ideal_step_s + overhead_s);
        steps = steps < cap ? steps : cap;
    }
    double most = (double)o->max_tasks / tasks_per_step;
    steps = steps < most ? steps : most;
    long s = (long)llround(steps);
    return s < o->min_steps ? o->min_steps : s;
}

static int kernel_reps(double task_us)
{
    /* ~30 ms of kernel, 3 to 1000 calls */
    double r = task_us > 0 ? 30000.0 / task_us : 1000;
    return r < 3 ? 3 : r > 1000 ? 1000 : (int)r;
}

/* One point; its median efficiency (or -1 on failure) and the overhead per step. */
static double run_point(const tb_opts *o, tb_run_fn run, void *ctx, const tb_graph *g,
                        double task_us, double *overhead_s)
{
    long steps = choose_steps(o, g, task_us, *overhead_s);
    uint64_t iterations = (uint64_t)llround(task_us * o->iters_per_us);
    double kernel_us = tb_measure_us(iterations, kernel_reps(task_us));
    uint64_t *want = calloc((size_t)g->width, sizeof(uint64_t));
    double *eff = calloc((size_t)o->repeats, sizeof(double));
    double *el = calloc((size_t)o->repeats, sizeof(double));
    if (!want || !eff || !el || tb_graph_reference(g, steps, tb_kernel(iterations), want) < 0) {
        fprintf(stderr, "taskbench: out of memory\n");
        return -1;
    }
    long tasks = tb_tasks(g, steps);
    long slots = tb_slots(g, steps, o->workers);
    double ideal_s = (double)slots * task_us * 1e-6; /* the best schedule's elapsed time */
    double work_s = (double)tasks * task_us * 1e-6;  /* kernel time in all */
    for (int r = 0; r < o->repeats; r++) {
        el[r] = run_checked(o, run, ctx, g, steps, iterations, want);
        if (el[r] < 0)
            return -1;
        eff[r] = ideal_s / el[r];
    }
    line l = { .len = 0 };
    head(&l, o, "taskbench", "efficiency", eff, o->repeats);
    double eff_med = median(eff, o->repeats);
    double el_med = median(el, o->repeats);
    add(&l, ", \"pattern\": \"%s\", \"width\": %d", tb_pattern_name(g->pattern), g->width);
    if (g->pattern == TB_NEAREST)
        add(&l, ", \"radix\": %d", g->radix);
    add(&l, ", \"steps\": %ld, \"tasks\": %ld, \"workers\": %d", steps, tasks, o->workers);
    num(&l, "task_us", task_us);
    add(&l, ", \"iterations\": %llu", (unsigned long long)iterations);
    num(&l, "kernel_us_measured", kernel_us);
    num(&l, "elapsed_s", el_med);
    num(&l, "elapsed_min_s", el[0]);
    num(&l, "elapsed_max_s", el[o->repeats - 1]);
    num(&l, "efficiency", eff_med);
    num(&l, "utilization", work_s / (el_med * o->workers));
    num(&l, "ideal_utilization", work_s / (ideal_s * o->workers));
    tail(&l, o);
    fprintf(stderr, "taskbench: %s %-10s %8.0f us x %6ld tasks: %.3f s, efficiency %.3f\n",
            o->system, tb_pattern_name(g->pattern), task_us, tasks, el_med, eff_med);
    *overhead_s = el_med > ideal_s ? (el_med - ideal_s) / (double)steps : 0;
    free(el);
    free(eff);
    free(want);
    return eff_med;
}

/* The next duration up the 1-3-10 series: 10000 -> 30000 -> 100000. */
static double next_up(double d)
{
    double m = d / pow(10, floor(log10(d)));
    return m < 2 ? d * 3 : d * 10 / 3;
}

int tb_run_sweep(const tb_opts *o, tb_run_fn run, void *ctx)
{
    for (int p = 0; p < o->npatterns; p++) {
        tb_graph g = { .pattern = o->patterns[p], .width = o->width, .radix = o->radix };
        double overhead_s = -1; /* unknown before the first point */
        double first = run_point(o, run, ctx, &g, o->durations[0], &overhead_s);
        if (first < 0)
            return 1;
        /* below 50 % already: longer tasks until 50 % is reached, so the METG is bracketed */
        double up_overhead_s = overhead_s, eff = first;
        for (double d = o->durations[0]; eff < 0.5 && d > 0 && next_up(d) <= o->extend_to + 0.5;) {
            d = next_up(d);
            if ((eff = run_point(o, run, ctx, &g, d, &up_overhead_s)) < 0)
                return 1;
        }
        if (first < o->stop_below)
            continue;
        for (int d = 1; d < o->ndurations; d++) {
            eff = run_point(o, run, ctx, &g, o->durations[d], &overhead_s);
            if (eff < 0)
                return 1;
            if (eff < o->stop_below)
                break;
        }
    }
    return 0;
}
