/* The built-in "arrays" plugin: float64 array kernels on OpenBLAS.
 *
 * Design notes
 *  - Every task checks its arguments' types and shapes and fails with a message naming the
 *    task, the argument and what was expected; kernels never see mismatched input.
 *  - Results are allocated with tern_f64_array_new[_shaped] and written in place. The
 *    elementwise a + alpha * b (add/sub/axpy) is one loop that reads both inputs and writes
 *    the result once: memory-bound, it beat a copy followed by daxpy (which crosses the
 *    result twice) by 1.4x on cold 8 MB arrays, and a copy + daxpy block by block by 1.2x.
 *    When the task may take an operand (tern_arg_take: the last reader of a dependency),
 *    they compute into it instead: no new array, so no page faults on fresh memory, and one
 *    array fewer crossed (0.75 against 0.96 ms per cold 8 MB add).
 *  - BLAS calls take int lengths; longer arrays are processed in chunks.
 *  - OpenBLAS threads: a worker runs several tasks at once, and OpenBLAS's thread count is
 *    process-global, so the plugin sets 1 BLAS thread at load (TERN_BLAS_THREADS overrides)
 *    to avoid oversubscription (notes/dependencies.md measured 2x slower daxpy otherwise).
 *    tern-worker also defaults OPENBLAS_NUM_THREADS to 1, so that OpenBLAS does not start
 *    (and spin) a thread per core before this constructor runs.
 *    It logs the OpenBLAS core at load and warns when DYNAMIC_ARCH fell back to Prescott.
 *  - random() is xoshiro256+ seeded through splitmix64: deterministic for a given seed, and
 *    seeded from getrandom() when no seed is given (the pure=false use in the seed example).
 */
#include <tern/plugin.h>

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

TERN_PLUGIN("arrays", "0.1.0");

/* Not declared in Debian's cblas.h for every variant; provided by libopenblas. */
extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);
extern void openblas_set_num_threads(int num_threads);

__attribute__((constructor)) static void arrays_init(void)
{
    int threads = 1;
    const char *env = getenv("TERN_BLAS_THREADS");
    if (env && *env) {
        char *end;
        long t = strtol(env, &end, 10);
        if (*end == '\0' && t >= 1 && t <= 256)
            threads = (int)t;
        else
            fprintf(stderr, "arrays: ignoring TERN_BLAS_THREADS=%s (want 1..256)\n", env);
    }
    openblas_set_num_threads(threads);
    const char *core = openblas_get_corename();
    if (getenv("TERN_ARRAYS_QUIET") == NULL)
        fprintf(stderr, "arrays: OpenBLAS core %s, %d BLAS thread%s\n", core ? core : "?", threads,
                threads == 1 ? "" : "s");
    if (core && strcasecmp(core, "prescott") == 0)
        fprintf(stderr, "arrays: warning: OpenBLAS detected only the Prescott core (SSE3) on "
                        "this CPU; set OPENBLAS_CORETYPE (e.g. Haswell or SkylakeX) for faster "
                        "kernels\n");
}

/* ---- argument helpers: each fails the task with a clear message and returns nonzero ---- */

static int want_f64(tern_ctx *ctx, size_t i, const tern_value **v, const double **x, size_t *n)
{
    const tern_value *a = tern_arg(ctx, i);
    if (!a) {
        tern_fail(ctx, TERN_EINVAL, "%s: missing argument %zu (an f64 array); got %zu argument(s)",
                  tern_task_symbol(ctx), i, tern_nargs(ctx));
        return 1;
    }
    if (tern_value_get_f64_array(a, x, n) != TERN_OK) {
        tern_fail(ctx, TERN_ETYPE, "%s: argument %zu must be an f64 array, not %s",
                  tern_task_symbol(ctx), i, tern_type_name(tern_value_type(a)));
        return 1;
    }
    if (v)
        *v = a;
    return 0;
}

static int want_number(tern_ctx *ctx, size_t i, double *out)
{
    const tern_value *a = tern_arg(ctx, i);
    if (!a || tern_value_get_number(a, out) != TERN_OK) {
        tern_fail(ctx, TERN_ETYPE, "%s: argument %zu must be a number%s%s", tern_task_symbol(ctx),
                  i, a ? ", not " : " (missing)", a ? tern_type_name(tern_value_type(a)) : "");
        return 1;
    }
    return 0;
}

static int want_nargs(tern_ctx *ctx, size_t lo, size_t hi, const char *usage)
{
    size_t n = tern_nargs(ctx);
    if (n < lo || n > hi) {
        tern_fail(ctx, TERN_EINVAL, "%s takes %s; got %zu argument(s)", tern_task_symbol(ctx),
                  usage, n);
        return 1;
    }
    return 0;
}

static bool same_shape(const tern_value *a, const tern_value *b)
{
    size_t na, nb;
    const size_t *sa, *sb;
    tern_array_shape(a, &na, &sa);
    tern_array_shape(b, &nb, &sb);
    return na == nb && memcmp(sa, sb, na * sizeof(size_t)) == 0;
}

static void shape_text(const tern_value *a, char *buf, size_t len)
{
    size_t nd;
    const size_t *s;
    tern_array_shape(a, &nd, &s);
    size_t used = (size_t)snprintf(buf, len, "(");
    for (size_t d = 0; d < nd && used < len; d++)
        used += (size_t)snprintf(buf + used, len - used, d ? ", %zu" : "%zu", s[d]);
    if (used < len)
        snprintf(buf + used, len - used, nd == 1 ? ",)" : ")");
}

static int want_same_shape(tern_ctx *ctx, const tern_value *a, const tern_value *b)
{
    if (same_shape(a, b))
        return 0;
    char sa[128], sb[128];
    shape_text(a, sa, sizeof(sa));
    shape_text(b, sb, sizeof(sb));
    tern_fail(ctx, TERN_ESHAPE, "%s: shapes %s and %s do not match", tern_task_symbol(ctx), sa, sb);
    return 1;
}

/* A new f64 array shaped like `like`, or a failed task. */
static tern_value *new_like(tern_ctx *ctx, const tern_value *like, double **data)
{
    size_t nd;
    const size_t *s;
    tern_array_shape(like, &nd, &s);
    tern_value *r = tern_f64_array_new_shaped(nd, s, data);
    if (!r)
        tern_fail(ctx, TERN_ENOMEM, "%s: out of memory for %zu elements", tern_task_symbol(ctx),
                  tern_array_len(like));
    return r;
}

/* Shape from an int n or a list of ints; fills shape/ndim or fails the task. */
static int want_shape(tern_ctx *ctx, size_t i, size_t shape[TERN_MAX_DIMS], size_t *ndim)
{
    const tern_value *a = tern_arg(ctx, i);
    int64_t n;
    if (a && tern_value_get_int(a, &n) == TERN_OK) {
        if (n < 0)
            goto bad;
        shape[0] = (size_t)n;
        *ndim = 1;
        return 0;
    }
    size_t len = tern_list_len(a);
    if (!a || tern_value_type(a) != TERN_T_LIST || len < 1 || len > TERN_MAX_DIMS)
        goto bad;
    for (size_t d = 0; d < len; d++) {
        const tern_value *item;
        if (tern_list_get(a, d, &item) || tern_value_get_int(item, &n) || n < 0)
            goto bad;
        shape[d] = (size_t)n;
    }
    *ndim = len;
    return 0;
bad:
    tern_fail(ctx, TERN_EINVAL,
              "%s: argument %zu must be a length >= 0 or a list of 1 to %d lengths",
              tern_task_symbol(ctx), i, TERN_MAX_DIMS);
    return 1;
}

/* ---- BLAS wrappers over size_t lengths ------------------------------------------------ */

#define CHUNK ((size_t)INT_MAX / 2)

/* y = a + alpha * b in one pass: the arrays cross memory once (read a and b, write y), where
 * copying a into y and then calling daxpy crosses y twice. Memory-bound, so a plain loop. */
static void axpby_n(size_t n, const double *restrict a, double alpha, const double *restrict b,
                    double *restrict y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + alpha * b[i];
}

/* y += alpha * b: into an operand (the floor's daxpy, without its int length limit). */
static void add_scaled_n(size_t n, double *restrict y, double alpha, const double *restrict b)
{
    for (size_t i = 0; i < n; i++)
        y[i] += alpha * b[i];
}

/* y = a + alpha * y: into the other operand. */
static void scaled_add_n(size_t n, const double *restrict a, double alpha, double *restrict y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + alpha * y[i];
}

static void scal_n(size_t n, double alpha, double *x)
{
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        cblas_dscal((int)m, alpha, x + off, 1);
    }
}

static double dot_n(size_t n, const double *x, const double *y)
{
    double s = 0;
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        s += cblas_ddot((int)m, x + off, 1, y + off, 1);
    }
    return s;
}

static double sum_n(size_t n, const double *x)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
    }
    for (; i < n; i++)
        s0 += x[i];
    return (s0 + s1) + (s2 + s3);
}

static tern_value *number(tern_ctx *ctx, double d)
{
    tern_value *r = tern_double(d);
    return r ? r : tern_fail(ctx, TERN_ENOMEM, "%s: out of memory", tern_task_symbol(ctx));
}

/* ---- constructors --------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* random(n[, seed]): n uniform doubles in [0, 1) (n may also be a shape list). */
TERN_TASK(random)
{
    size_t shape[TERN_MAX_DIMS], nd;
    int64_t seed;
    if (want_nargs(ctx, 1, 2, "(n[, seed])") || want_shape(ctx, 0, shape, &nd))
        return NULL;
    uint64_t s;
    if (tern_nargs(ctx) == 2) {
        if (tern_arg_int(ctx, 1, &seed) != TERN_OK)
            return tern_fail(ctx, TERN_ETYPE, "random: seed (argument 1) must be an int");
        s = (uint64_t)seed;
    } else if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s)) {
        return tern_fail(ctx, TERN_EIO, "random: getrandom() failed");
    }
    uint64_t st[4] = { splitmix64(&s), splitmix64(&s), splitmix64(&s), splitmix64(&s) };
    double *y;
    tern_value *r = tern_f64_array_new_shaped(nd, shape, &y);
    if (!r)
        return tern_fail(ctx, TERN_ENOMEM, "random: out of memory");
    size_t n = tern_array_len(r);
    for (size_t i = 0; i < n; i++) {
        uint64_t out = st[0] + st[3]; /* xoshiro256+ */
        uint64_t t = st[1] << 17;
        st[2] ^= st[0];
        st[3] ^= st[1];
        st[1] ^= st[2];
        st[0] ^= st[3];
        st[2] ^= t;
        st[3] = rotl(st[3], 45);
        y[i] = (double)(out >> 11) * 0x1.0p-53;
    }
    return r;
}

static tern_value *filled(tern_ctx *ctx, double v)
{
    size_t shape[TERN_MAX_DIMS], nd;
    if (want_nargs(ctx, 1, 1, "(n) or ([d0, d1, ...])") || want_shape(ctx, 0, shape, &nd))
        return NULL;
    double *y;
    tern_value *r = tern_f64_array_new_shaped(nd, shape, &y);
    if (!r)
        return tern_fail(ctx, TERN_ENOMEM, "%s: out of memory", tern_task_symbol(ctx));
    size_t n = tern_array_len(r);
    for (size_t i = 0; i < n; i++)
        y[i] = v;
    return r;
}

TERN_TASK(zeros)
{
    return filled(ctx, 0.0);
}

TERN_TASK(ones)
{
    return filled(ctx, 1.0);
}

/* arange(n) = [0, 1, ..., n-1]; arange(start, stop[, step]) like numpy. */
TERN_TASK(arange)
{
    double start = 0, stop, step = 1;
    if (want_nargs(ctx, 1, 3, "(n) or (start, stop[, step])"))
        return NULL;
    if (tern_nargs(ctx) == 1) {
        if (want_number(ctx, 0, &stop))
            return NULL;
    } else if (want_number(ctx, 0, &start) || want_number(ctx, 1, &stop) ||
               (tern_nargs(ctx) == 3 && want_number(ctx, 2, &step))) {
        return NULL;
    }
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        return tern_fail(ctx, TERN_EINVAL,
                         "arange: start, stop and step must be finite and "
                         "step non-zero");
    double count = ceil((stop - start) / step);
    if (count < 0)
        count = 0;
    if (count > (double)((size_t)1 << 40))
        return tern_fail(ctx, TERN_ETOOBIG, "arange: %.0f elements is too many", count);
    double *y;
    tern_value *r = tern_f64_array_new((size_t)count, &y);
    if (!r)
        return tern_fail(ctx, TERN_ENOMEM, "arange: out of memory");
    for (size_t i = 0; i < (size_t)count; i++)
        y[i] = start + (double)i * step;
    return r;
}

/* ---- elementwise ---------------------------------------------------------------------- */

/* y = first + alpha * second, with shapes checked. Computed into an operand when the task
 * may take one (tern_arg_take: this task is its last reader), else into a new array. */
static tern_value *combine(tern_ctx *ctx, size_t first, size_t second, double alpha)
{
    const tern_value *va, *vb;
    const double *a, *b;
    size_t na, nb, n;
    double *y;
    if (want_f64(ctx, first, &va, &a, &na) || want_f64(ctx, second, &vb, &b, &nb) ||
        want_same_shape(ctx, va, vb))
        return NULL;
    /* Taken values stay alive with us, so va, vb, a and b stay valid. */
    tern_value *ta = tern_arg_take(ctx, first), *tb = ta ? NULL : tern_arg_take(ctx, second);
    if (ta && tern_value_f64_data_mut(ta, &y, &n) == TERN_OK) {
        add_scaled_n(n, y, alpha, b);
        return ta;
    }
    if (tb && tern_value_f64_data_mut(tb, &y, &n) == TERN_OK) {
        scaled_add_n(n, a, alpha, y);
        return tb;
    }
    tern_value *r = new_like(ctx, va, &y);
    if (r)
        axpby_n(na, a, alpha, b, y);
    tern_value_unref(ta);
    tern_value_unref(tb);
    return r;
}

/* add(a, b) = a + b (daxpy). */
TERN_TASK(add)
{
    return want_nargs(ctx, 2, 2, "(a, b)") ? NULL : combine(ctx, 0, 1, 1.0);
}

/* sub(a, b) = a - b. */
TERN_TASK(sub)
{
    return want_nargs(ctx, 2, 2, "(a, b)") ? NULL : combine(ctx, 0, 1, -1.0);
}

/* scale(x, alpha) = alpha * x (dscal). */
TERN_TASK(scale)
{
    const tern_value *vx;
    const double *x;
    size_t n;
    double alpha, *y;
    if (want_nargs(ctx, 2, 2, "(x, alpha)") || want_f64(ctx, 0, &vx, &x, &n) ||
        want_number(ctx, 1, &alpha))
        return NULL;
    tern_value *r = new_like(ctx, vx, &y);
    if (!r)
        return NULL;
    memcpy(y, x, n * sizeof(double));
    scal_n(n, alpha, y);
    return r;
}

/* axpy(alpha, x, y) = alpha * x + y. */
TERN_TASK(axpy)
{
    double alpha;
    if (want_nargs(ctx, 3, 3, "(alpha, x, y)") || want_number(ctx, 0, &alpha))
        return NULL;
    return combine(ctx, 2, 1, alpha);
}

/* ---- reductions ----------------------------------------------------------------------- */

/* dot(x, y): sum of x[i] * y[i] (ddot); shapes must match. */
TERN_TASK(dot)
{
    const tern_value *vx, *vy;
    const double *x, *y;
    size_t nx, ny;
    if (want_nargs(ctx, 2, 2, "(x, y)") || want_f64(ctx, 0, &vx, &x, &nx) ||
        want_f64(ctx, 1, &vy, &y, &ny) || want_same_shape(ctx, vx, vy))
        return NULL;
    return number(ctx, dot_n(nx, x, y));
}

TERN_TASK(sum)
{
    const double *x;
    size_t n;
    if (want_nargs(ctx, 1, 1, "(x)") || want_f64(ctx, 0, NULL, &x, &n))
        return NULL;
    return number(ctx, sum_n(n, x));
}

TERN_TASK(mean)
{
    const double *x;
    size_t n;
    if (want_nargs(ctx, 1, 1, "(x)") || want_f64(ctx, 0, NULL, &x, &n))
        return NULL;
    if (n == 0)
        return tern_fail(ctx, TERN_EINVAL, "mean: the array is empty");
    return number(ctx, sum_n(n, x) / (double)n);
}

/* norm(x): Euclidean norm (dnrm2, overflow-safe). */
TERN_TASK(norm)
{
    const double *x;
    size_t n;
    if (want_nargs(ctx, 1, 1, "(x)") || want_f64(ctx, 0, NULL, &x, &n))
        return NULL;
    if (n > (size_t)INT_MAX)
        return tern_fail(ctx, TERN_ETOOBIG, "norm: arrays over %d elements are not supported",
                         INT_MAX);
    return number(ctx, cblas_dnrm2((int)n, x, 1));
}

/* matmul(A, B): A is m x k, B is k x n (2-D, row-major) -> m x n (dgemm). */
TERN_TASK(matmul)
{
    const tern_value *va, *vb;
    const double *a, *b;
    size_t na, nb, nda, ndb;
    const size_t *sa, *sb;
    if (want_nargs(ctx, 2, 2, "(A, B)") || want_f64(ctx, 0, &va, &a, &na) ||
        want_f64(ctx, 1, &vb, &b, &nb))
        return NULL;
    tern_array_shape(va, &nda, &sa);
    tern_array_shape(vb, &ndb, &sb);
    if (nda != 2 || ndb != 2)
        return tern_fail(ctx, TERN_ESHAPE,
                         "matmul: both arguments must be 2-D arrays; got %zu-D and %zu-D", nda,
                         ndb);
    if (sa[1] != sb[0])
        return tern_fail(ctx, TERN_ESHAPE,
                         "matmul: inner dimensions differ: (%zu, %zu) x (%zu, %zu)", sa[0], sa[1],
                         sb[0], sb[1]);
    if (sa[0] > INT_MAX || sa[1] > INT_MAX || sb[1] > INT_MAX)
        return tern_fail(ctx, TERN_ETOOBIG, "matmul: dimensions over %d are not supported",
                         INT_MAX);
    size_t shape[2] = { sa[0], sb[1] };
    double *c;
    tern_value *r = tern_f64_array_new_shaped(2, shape, &c);
    if (!r)
        return tern_fail(ctx, TERN_ENOMEM, "matmul: out of memory");
    int m = (int)sa[0], k = (int)sa[1], n = (int)sb[1];
    if (m && n) {
        if (k)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, a, k ? k : 1, b, n,
                        0.0, c, n);
        else
            memset(c, 0, (size_t)m * (size_t)n * sizeof(double));
    }
    return r;
}
