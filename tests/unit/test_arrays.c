/* The arrays plugin, loaded through the loader, against naive C loops. */
#include <criterion/criterion.h>

#include <math.h>

#include "leakcheck.h"
#include "testutil.h"

static char *workdir;
static terni_loader *loader;
static char err[1024];

static void setup(void)
{
    setenv("TERN_ARRAYS_QUIET", "1", 1);
    workdir = make_tmpdir();
    cr_assert_not_null(workdir);
    cr_assert_eq(terni_loader_open(workdir, &loader, err, sizeof(err)), TERN_OK, "%s", err);
    const terni_plugin *p;
    cr_assert_eq(terni_loader_load_file(loader, PLUGIN_PATH("arrays"), &p, err, sizeof(err)),
                 TERN_OK, "%s", err);
}

static void teardown(void)
{
    terni_loader_close(loader);
    rm_tree(workdir);
}

TestSuite(arrays, .init = setup, .fini = teardown, .timeout = 60);

/* Runs arrays:<sym> and asserts success. */
static tern_value *run(const char *sym, tern_value *args)
{
    char q[64];
    snprintf(q, sizeof(q), "arrays:%s", sym);
    tern_value *out;
    int rc = call_task(loader, q, args, &out, err, sizeof(err));
    cr_assert_eq(rc, TERN_OK, "%s: %s (%s)", q, tern_strerror(rc), err);
    return out;
}

/* Runs arrays:<sym>, asserts it fails with `code` and that the message contains `needle`. */
static void run_fails(const char *sym, tern_value *args, int code, const char *needle)
{
    char q[64];
    snprintf(q, sizeof(q), "arrays:%s", sym);
    tern_value *out;
    int rc = call_task(loader, q, args, &out, err, sizeof(err));
    cr_assert_eq(rc, code, "%s: got %s (%s), want %s", q, tern_strerror_name(rc), err,
                 tern_strerror_name(code));
    cr_assert_null(out);
    cr_assert(strstr(err, needle), "%s: message \"%s\" lacks \"%s\"", q, err, needle);
}

static const double *f64(const tern_value *v, size_t *n)
{
    const double *x;
    cr_assert_eq(tern_value_get_f64_array(v, &x, n), TERN_OK);
    return x;
}

static double number(const tern_value *v)
{
    double d;
    cr_assert_eq(tern_value_get_double(v, &d), TERN_OK);
    return d;
}

static void assert_close(double got, double want, double rel)
{
    cr_assert(fabs(got - want) <= rel * fmax(1.0, fabs(want)), "got %.17g want %.17g", got, want);
}

static tern_value *rand_array(size_t n, int64_t seed)
{
    return run("random", tern_list_of(tern_int((int64_t)n), tern_int(seed)));
}

LTest(arrays, random_is_deterministic_per_seed_and_uniform)
{
    tern_value *a = rand_array(1000000, 7), *b = rand_array(1000000, 7),
               *c = rand_array(1000000, 8);
    cr_assert(tern_value_equal(a, b), "same seed must give the same array");
    cr_assert_not(tern_value_equal(a, c), "different seeds must differ");
    size_t n;
    const double *x = f64(a, &n);
    cr_assert_eq(n, 1000000);
    double sum = 0, lo = 1, hi = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(x[i] >= 0.0 && x[i] < 1.0, "x[%zu] = %g outside [0, 1)", i, x[i]);
        sum += x[i];
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    assert_close(sum / (double)n, 0.5, 0.005);
    cr_assert(lo < 1e-4 && hi > 1 - 1e-4);
    tern_value_unref(a);
    tern_value_unref(b);
    tern_value_unref(c);
}

LTest(arrays, random_without_seed_differs_each_call)
{
    tern_value *a = run("random", tern_list_of(tern_int(64)));
    tern_value *b = run("random", tern_list_of(tern_int(64)));
    cr_assert_not(tern_value_equal(a, b));
    tern_value_unref(a);
    tern_value_unref(b);
}

LTest(arrays, zeros_ones_with_lengths_and_shapes)
{
    tern_value *z = run("zeros", tern_list_of(tern_int(5)));
    tern_value *o = run("ones", tern_list_of(tern_list_of(tern_int(2), tern_int(3))));
    size_t n, nd;
    const size_t *shape;
    const double *x = f64(z, &n);
    cr_assert_eq(n, 5);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(x[i], 0.0);
    x = f64(o, &n);
    cr_assert_eq(n, 6);
    cr_assert_eq(tern_array_shape(o, &nd, &shape), TERN_OK);
    cr_assert_eq(nd, 2);
    cr_assert_eq(shape[0], 2);
    cr_assert_eq(shape[1], 3);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(x[i], 1.0);
    tern_value_unref(z);
    tern_value_unref(o);
    run_fails("zeros", tern_list_of(tern_int(-1)), TERN_EINVAL, "length >= 0");
    run_fails("ones", tern_list_of(tern_text("3")), TERN_EINVAL, "argument 0");
}

LTest(arrays, arange_forms)
{
    tern_value *a = run("arange", tern_list_of(tern_int(4)));
    tern_value *b = run("arange", tern_list_of(tern_double(1), tern_double(2), tern_double(0.25)));
    tern_value *c = run("arange", tern_list_of(tern_int(5), tern_int(0), tern_int(-2)));
    size_t n;
    const double *x = f64(a, &n);
    cr_assert_eq(n, 4);
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(x[i], (double)i);
    x = f64(b, &n);
    cr_assert_eq(n, 4);
    cr_assert_eq(x[3], 1.75);
    x = f64(c, &n);
    cr_assert_eq(n, 3);
    cr_assert_eq(x[0], 5.0);
    cr_assert_eq(x[2], 1.0);
    tern_value_unref(a);
    tern_value_unref(b);
    tern_value_unref(c);
    run_fails("arange", tern_list_of(tern_int(0), tern_int(5), tern_int(0)), TERN_EINVAL,
              "step non-zero");
}

LTest(arrays, elementwise_kernels_match_loops)
{
    const size_t n = 100003; /* odd, to catch unrolled tails */
    tern_value *va = rand_array(n, 1), *vb = rand_array(n, 2);
    size_t na;
    const double *a = f64(va, &na), *b = f64(vb, &na);
    tern_value *add = run("add", tern_list_of(tern_value_ref(va), tern_value_ref(vb)));
    tern_value *sub = run("sub", tern_list_of(tern_value_ref(va), tern_value_ref(vb)));
    tern_value *scl = run("scale", tern_list_of(tern_value_ref(va), tern_double(-2.5)));
    tern_value *axp =
        run("axpy", tern_list_of(tern_double(3.0), tern_value_ref(va), tern_value_ref(vb)));
    size_t m;
    const double *r_add = f64(add, &m), *r_sub = f64(sub, &m), *r_scl = f64(scl, &m),
                 *r_axp = f64(axp, &m);
    cr_assert_eq(m, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(r_add[i], a[i] + b[i], "add[%zu]", i);
        cr_assert_eq(r_sub[i], a[i] - b[i], "sub[%zu]", i);
        cr_assert_eq(r_scl[i], -2.5 * a[i], "scale[%zu]", i);
        assert_close(r_axp[i], 3.0 * a[i] + b[i], 1e-15);
    }
    tern_value *vals[] = { va, vb, add, sub, scl, axp };
    for (size_t i = 0; i < 6; i++)
        tern_value_unref(vals[i]);
}

/* Runs arrays:<sym> on args (stolen) where argument `takeable` (or none: -1) may be taken. */
static tern_value *run_taking(const char *sym, tern_value *args, int takeable)
{
    char q[64];
    snprintf(q, sizeof(q), "arrays:%s", sym);
    bool can[3] = { takeable == 0, takeable == 1, takeable == 2 };
    tern_value *out;
    int rc = call_task_takeable(loader, q, args, can, &out, err, sizeof(err));
    cr_assert_eq(rc, TERN_OK, "%s: %s (%s)", q, tern_strerror(rc), err);
    return out;
}

/* A copy of v (a new array with one reference). */
static tern_value *copy_of(const tern_value *v)
{
    size_t n;
    const double *x = f64(v, &n);
    tern_value *c = tern_f64_array(x, n);
    cr_assert_not_null(c);
    return c;
}

LTest(arrays, elementwise_kernels_compute_into_an_operand_they_may_take)
{
    const size_t n = 300007; /* 2.4 MB: a large buffer (bigbuf.c) */
    tern_value *va = rand_array(n, 5), *vb = rand_array(n, 6);
    size_t m;
    const double *a = f64(va, &m), *b = f64(vb, &m);
    static const struct {
        const char *sym;
        int first, second; /* argument positions of a and b */
        double alpha;      /* result = a + alpha * b */
    } cases[] = { { "add", 0, 1, 1.0 }, { "sub", 0, 1, -1.0 }, { "axpy", 2, 1, 3.0 } };
    for (size_t c = 0; c < 3; c++)
        for (int pos = 0; pos < 2; pos++) {
            /* operands held only by the call: the one at `pos` may be taken */
            tern_value *ops[2] = { copy_of(va), copy_of(vb) };
            const double *into = f64(ops[pos], &m);
            int arg = pos == 0 ? cases[c].first : cases[c].second;
            tern_value *args = !strcmp(cases[c].sym, "axpy")
                                   ? tern_list_of(tern_double(3.0), ops[1], ops[0])
                                   : tern_list_of(ops[0], ops[1]);
            tern_value *r = run_taking(cases[c].sym, args, arg);
            const double *got = f64(r, &m);
            cr_assert_eq(m, n);
            cr_expect_eq(got, into, "%s did not compute into its operand %d", cases[c].sym, arg);
            for (size_t i = 0; i < n; i++)
                assert_close(got[i], a[i] + cases[c].alpha * b[i], 1e-15);
            tern_value_unref(r);
        }
    /* An operand someone else still references is not taken, and stays as it was. */
    tern_value *held = copy_of(va);
    tern_value *r = run_taking("add", tern_list_of(tern_value_ref(held), copy_of(vb)), 0);
    const double *got = f64(r, &m), *h = f64(held, &m);
    cr_expect_neq(got, h, "add computed into an operand that is still referenced");
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(h[i], a[i], "the held operand changed at %zu", i);
        cr_assert_eq(got[i], a[i] + b[i]);
    }
    tern_value_unref(r);
    tern_value_unref(held);
    tern_value_unref(va);
    tern_value_unref(vb);
}

LTest(arrays, reductions_match_loops)
{
    const size_t n = 250001;
    tern_value *va = rand_array(n, 3), *vb = rand_array(n, 4);
    size_t k;
    const double *a = f64(va, &k), *b = f64(vb, &k);
    double dot = 0, sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        dot += a[i] * b[i];
        sum += a[i];
        sq += a[i] * a[i];
    }
    tern_value *r;
    r = run("dot", tern_list_of(tern_value_ref(va), tern_value_ref(vb)));
    assert_close(number(r), dot, 1e-12);
    tern_value_unref(r);
    r = run("sum", tern_list_of(tern_value_ref(va)));
    assert_close(number(r), sum, 1e-12);
    tern_value_unref(r);
    r = run("mean", tern_list_of(tern_value_ref(va)));
    assert_close(number(r), sum / (double)n, 1e-12);
    tern_value_unref(r);
    r = run("norm", tern_list_of(tern_value_ref(va)));
    assert_close(number(r), sqrt(sq), 1e-12);
    tern_value_unref(r);
    tern_value_unref(va);
    tern_value_unref(vb);
}

LTest(arrays, matmul_matches_triple_loop)
{
    const size_t m = 37, k = 23, n = 41;
    size_t sa[2] = { m, k }, sb[2] = { k, n };
    double *a, *b;
    tern_value *va = tern_f64_array_new_shaped(2, sa, &a);
    tern_value *vb = tern_f64_array_new_shaped(2, sb, &b);
    for (size_t i = 0; i < m * k; i++)
        a[i] = sin((double)i);
    for (size_t i = 0; i < k * n; i++)
        b[i] = cos((double)i * 0.5);
    tern_value *vc = run("matmul", tern_list_of(tern_value_ref(va), tern_value_ref(vb)));
    size_t nd, cn;
    const size_t *sc;
    cr_assert_eq(tern_array_shape(vc, &nd, &sc), TERN_OK);
    cr_assert_eq(nd, 2);
    cr_assert_eq(sc[0], m);
    cr_assert_eq(sc[1], n);
    const double *c = f64(vc, &cn);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t p = 0; p < k; p++)
                s += a[i * k + p] * b[p * n + j];
            assert_close(c[i * n + j], s, 1e-12);
        }
    tern_value_unref(vc);
    tern_value_unref(va);
    tern_value_unref(vb);
}

LTest(arrays, shaped_add_keeps_the_shape)
{
    size_t s[3] = { 2, 3, 4 };
    tern_value *a = tern_f64_array_shaped(3, s, NULL);
    tern_value *b = run("ones", tern_list_of(tern_list_of(tern_int(2), tern_int(3), tern_int(4))));
    tern_value *c = run("add", tern_list_of(a, b));
    size_t nd;
    const size_t *sc;
    cr_assert_eq(tern_array_shape(c, &nd, &sc), TERN_OK);
    cr_assert_eq(nd, 3);
    cr_assert_eq(memcmp(sc, s, sizeof(s)), 0);
    tern_value_unref(c);
}

LTest(arrays, shape_and_type_errors_are_clear)
{
    run_fails("add", tern_list_of(tern_f64_array(NULL, 3), tern_f64_array(NULL, 4)), TERN_ESHAPE,
              "shapes (3,) and (4,) do not match");
    run_fails("add", tern_list_of(tern_f64_array(NULL, 3), tern_text("x")), TERN_ETYPE,
              "argument 1 must be an f64 array, not text");
    run_fails("add", tern_list_of(tern_f64_array(NULL, 3)), TERN_EINVAL, "takes (a, b)");
    run_fails("add", tern_list_of(tern_i64_array(NULL, 3), tern_i64_array(NULL, 3)), TERN_ETYPE,
              "not i64 array");
    run_fails("scale", tern_list_of(tern_f64_array(NULL, 3), tern_text("2")), TERN_ETYPE,
              "argument 1 must be a number");
    run_fails("dot", tern_list_of(tern_f64_array(NULL, 2), tern_f64_array(NULL, 5)), TERN_ESHAPE,
              "do not match");
    run_fails("mean", tern_list_of(tern_f64_array(NULL, 0)), TERN_EINVAL, "empty");
    run_fails("matmul", tern_list_of(tern_f64_array(NULL, 4), tern_f64_array(NULL, 4)), TERN_ESHAPE,
              "2-D");
    size_t sa[2] = { 2, 3 }, sb[2] = { 2, 3 };
    run_fails("matmul",
              tern_list_of(tern_f64_array_shaped(2, sa, NULL), tern_f64_array_shaped(2, sb, NULL)),
              TERN_ESHAPE, "inner dimensions differ: (2, 3) x (2, 3)");
    run_fails("random", tern_list_of(tern_int(3), tern_text("seed")), TERN_ETYPE, "seed");
}

LTest(arrays, seed_tree_reduction_matches_a_direct_sum)
{
    /* The showcase: 16 random arrays, neighbours added pairwise until one is left. */
    enum { N = 16, LEN = 100000 };
    tern_value *xs[N];
    double *want = calloc(LEN, sizeof(double));
    for (int i = 0; i < N; i++) {
        xs[i] = rand_array(LEN, 100 + i);
        size_t n;
        const double *x = f64(xs[i], &n);
        for (size_t j = 0; j < LEN; j++)
            want[j] += x[j];
    }
    for (int n = N; n > 1; n /= 2)
        for (int i = 0; i < n; i += 2) {
            tern_value *y = run("add", tern_list_of(xs[i], xs[i + 1]));
            xs[i / 2] = y;
        }
    size_t n;
    const double *total = f64(xs[0], &n);
    cr_assert_eq(n, LEN);
    for (size_t j = 0; j < LEN; j++)
        assert_close(total[j], want[j], 1e-13);
    tern_value_unref(xs[0]);
    free(want);
}
