/* floor_tree: the arithmetic of the seed's tree reduction in one C process, no runtime.
 *
 *     xs = [random(LENGTH) for _ in range(ARRAYS)]         (xoshiro256+, doubles in [0, 1))
 *     while len(xs) > 1: xs = [xs[i] + xs[i + 1] ...]       (in place: cblas_daxpy, alpha 1)
 *
 * Timed per repeat: the random fill and the pairwise adds, into arrays allocated and touched
 * once before any timing (the figure, "median" etc.: pure arithmetic and memory traffic).
 * Each repeat also runs once on fresh anonymous mappings made inside the timing, so page
 * faults count as they do for a runtime that makes new arrays: "fresh_pages_ms_median".
 * With 2 threads each thread owns one half of the element range of every array and does
 * its fill and adds alone (no synchronisation until the join). OpenBLAS runs 1 thread per
 * caller. One untimed warm-up run comes first. Every result is checked: its mean must be
 * near ARRAYS / 2.
 *
 * Prints one JSON line per thread count (1 and 2):
 *   {"bench": "tree", "system": "floor", "unit": "ms", "median", "min", "max", "repeats",
 *    "threads", ...}
 *
 * Usage: floor_tree [--quick] [--repeat N] [--arrays N] [--length N]
 *        (--quick: 1 repeat; sizes stay 16 x 1,000,000, which take well under a second)
 */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* xoshiro256+ (Blackman & Vigna), seeded through splitmix64. */
typedef struct {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline double rng_double(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = s[0] + s[3];
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return (double)(result >> 11) * 0x1.0p-53;
}

typedef struct {
    double **xs;
    long arrays;
    size_t lo, hi; /* element range [lo, hi) of every array */
    uint64_t seed;
    double fill_ms, add_ms;
} part;

static void *run_part(void *arg)
{
    part *p = arg;
    size_t n = p->hi - p->lo;
    double t0 = now_ms();
    for (long a = 0; a < p->arrays; a++) {
        rng r;
        rng_seed(&r, p->seed + (uint64_t)a * 1000003u);
        double *x = p->xs[a] + p->lo;
        for (size_t i = 0; i < n; i++)
            x[i] = rng_double(&r);
    }
    double t1 = now_ms();
    /* Pairwise, level by level: xs[i] += xs[i + step]. The result ends up in xs[0]. */
    for (long step = 1; step < p->arrays; step *= 2)
        for (long i = 0; i + step < p->arrays; i += 2 * step)
            cblas_daxpy((int)n, 1.0, p->xs[i + step] + p->lo, 1, p->xs[i] + p->lo, 1);
    p->fill_ms = t1 - t0;
    p->add_ms = now_ms() - t1;
    return NULL;
}

/* The arrays: either `pool` (allocated and touched once, outside the timing), or, with pool
 * NULL, fresh anonymous mappings made and unmapped inside the timing (page faults count). */
static double **map_arrays(long arrays, size_t length)
{
    double **xs = calloc((size_t)arrays, sizeof(*xs));
    if (!xs)
        return NULL;
    for (long a = 0; a < arrays; a++) {
        void *p = mmap(NULL, length * sizeof(double), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "floor_tree: mmap: out of memory\n");
            exit(1);
        }
        xs[a] = p;
    }
    return xs;
}

static void unmap_arrays(double **xs, long arrays, size_t length)
{
    for (long a = 0; a < arrays; a++)
        munmap(xs[a], length * sizeof(double));
    free(xs);
}

/* One full reduction; returns its wall time in ms, or a negative value on failure. */
static double run_once(double **pool, long arrays, size_t length, int threads, uint64_t seed,
                       double *fill_ms, double *add_ms)
{
    double t0 = now_ms();
    double **xs = pool ? pool : map_arrays(arrays, length);
    if (!xs)
        return -1;
    part parts[2];
    pthread_t tid[2];
    for (int t = 0; t < threads; t++) {
        parts[t] = (part){ .xs = xs,
                           .arrays = arrays,
                           .lo = length * (size_t)t / (size_t)threads,
                           .hi = length * (size_t)(t + 1) / (size_t)threads,
                           .seed = seed + (uint64_t)t * 7919u };
    }
    int started = 0;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tid[t], NULL, run_part, &parts[t]) == 0)
            started++;
    run_part(&parts[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    double elapsed = now_ms() - t0;

    double sum = 0;
    for (size_t i = 0; i < length; i++)
        sum += xs[0][i];
    if (!pool)
        unmap_arrays(xs, arrays, length);

    int ok = started == threads - 1;
    double mean = sum / (double)length;
    double expect = (double)arrays / 2.0;
    if (!(fabs(mean - expect) < 0.05 * expect))
        ok = 0;
    *fill_ms = *add_ms = 0;
    for (int t = 0; t < threads; t++) {
        if (parts[t].fill_ms > *fill_ms)
            *fill_ms = parts[t].fill_ms;
        if (parts[t].add_ms > *add_ms)
            *add_ms = parts[t].add_ms;
    }
    if (!ok) {
        fprintf(stderr, "floor_tree: check failed (threads %d, mean %.6f, expected ~%.1f)\n",
                threads, mean, expect);
        return -1;
    }
    return elapsed;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long parse_pos(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > (1L << 28)) {
        fprintf(stderr, "floor_tree: %s must be a positive integer, not \"%s\"\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    long repeats = 5, arrays = 16, length = 1000000;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeats = parse_pos(argv[++i], "--repeat");
        else if (!strcmp(argv[i], "--arrays") && i + 1 < argc)
            arrays = parse_pos(argv[++i], "--arrays");
        else if (!strcmp(argv[i], "--length") && i + 1 < argc)
            length = parse_pos(argv[++i], "--length");
        else {
            bool help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
            fprintf(help ? stdout : stderr,
                    "usage: floor_tree [--quick] [--repeat N] [--arrays N] [--length N]\n"
                    "The C floor of the tree reduction: the same sums in one process, no\n"
                    "runtime, printed as JSON lines (see bench/README.md).\n");
            return help ? 0 : 2;
        }
    }
    if (quick)
        repeats = 1;
    if (arrays & (arrays - 1)) {
        fprintf(stderr, "floor_tree: --arrays must be a power of two\n");
        return 2;
    }
    openblas_set_num_threads(1); /* our own threads split the work */
    const char *core = openblas_get_corename();

    double **pool = map_arrays(arrays, (size_t)length);
    for (long a = 0; a < arrays; a++)
        memset(pool[a], 0, (size_t)length * sizeof(double)); /* fault the pages in now */
    double *ms = calloc((size_t)repeats, sizeof(double));
    double *fresh = calloc((size_t)repeats, sizeof(double));
    double *fill = calloc((size_t)repeats, sizeof(double));
    double *add = calloc((size_t)repeats, sizeof(double));
    if (!ms || !fresh || !fill || !add)
        return 1;
    for (int threads = 1; threads <= 2; threads++) {
        double f, a;
        if (run_once(pool, arrays, (size_t)length, threads, 1, &f, &a) < 0) /* warm-up */
            return 1;
        for (long r = 0; r < repeats; r++) {
            uint64_t seed = 1000 + (uint64_t)r;
            ms[r] = run_once(pool, arrays, (size_t)length, threads, seed, &fill[r], &add[r]);
            fresh[r] = run_once(NULL, arrays, (size_t)length, threads, seed, &f, &a);
            if (ms[r] < 0 || fresh[r] < 0)
                return 1;
        }
        double lo = ms[0], hi = ms[0];
        for (long r = 1; r < repeats; r++) {
            lo = ms[r] < lo ? ms[r] : lo;
            hi = ms[r] > hi ? ms[r] : hi;
        }
        double med = median(ms, (int)repeats);
        printf("{\"bench\": \"tree\", \"system\": \"floor\", \"unit\": \"ms\", \"median\": %.3f, "
               "\"min\": %.3f, \"max\": %.3f, \"repeats\": %ld, \"threads\": %d, "
               "\"arrays\": %ld, \"length\": %ld, \"fill_ms_median\": %.3f, "
               "\"add_ms_median\": %.3f, \"fresh_pages_ms_median\": %.3f, "
               "\"prng\": \"xoshiro256+\", \"add\": \"cblas_daxpy in place\", "
               "\"openblas_core\": \"%s\"%s}\n",
               med, lo, hi, repeats, threads, arrays, length, median(fill, (int)repeats),
               median(add, (int)repeats), median(fresh, (int)repeats), core ? core : "unknown",
               quick ? ", \"quick\": true" : "");
        fflush(stdout);
    }
    unmap_arrays(pool, arrays, (size_t)length);
    free(fresh);
    free(ms);
    free(fill);
    free(add);
    return 0;
}
