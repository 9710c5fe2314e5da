/* Large arrays (sdk/src/bigbuf.c): freed memory is handed out again, a reused buffer is still
 * zeroed where the API promises zeros, and the cache can be turned off. Through the public
 * array API, each test in its own process (Criterion), so TERN_ARRAY_CACHE_MB is read fresh. */
#include <criterion/criterion.h>

#include <tern/value.h>

#include <stdint.h>
#include <stdlib.h>

#define N ((size_t)2 << 20) /* 16 MB of float64: over the 1 MB threshold */

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif

static double *new_array(tern_value **v)
{
    double *d = NULL;
    *v = tern_f64_array_new(N, &d);
    cr_assert_not_null(*v);
    cr_assert_not_null(d);
    cr_assert_eq((uintptr_t)d % 64, 0, "array data must be 64-byte aligned");
    for (size_t i = 0; i < N; i += 512)
        d[i] = (double)i + 0.5;
    return d;
}

Test(bigbuf, a_freed_large_array_is_reused)
{
#ifdef ASAN
    cr_skip("arrays stay on the heap under AddressSanitizer (bigbuf.h)");
#endif
    tern_value *a;
    double *first = new_array(&a);
    tern_value_unref(a);
    tern_value *b;
    double *second = new_array(&b);
    cr_assert_eq(first, second, "the freed 16 MB buffer should be handed out again");
    cr_assert_eq((uintptr_t)second % 4096, 0, "large arrays are page-aligned");
    tern_value_unref(b);
}

Test(bigbuf, zeros_are_zeros_in_a_reused_buffer)
{
    tern_value *a;
    new_array(&a); /* dirty it */
    tern_value_unref(a);
    tern_value *z = tern_f64_array(NULL, N);
    cr_assert_not_null(z);
    const double *d;
    size_t n;
    cr_assert_eq(tern_value_get_f64_array(z, &d, &n), TERN_OK);
    cr_assert_eq(n, N);
    size_t i = 0;
    while (i < n && d[i] == 0.0)
        i++;
    cr_assert_eq(i, n, "element %zu is %g, not 0", i, i < n ? d[i] : 0.0);
    tern_value_unref(z);
}

Test(bigbuf, the_cache_can_be_turned_off)
{
    cr_assert_eq(setenv("TERN_ARRAY_CACHE_MB", "0", 1), 0);
    for (int round = 0; round < 3; round++) {
        tern_value *a;
        double *d = new_array(&a);
        cr_assert_eq(d[N - 512], (double)(N - 512) + 0.5);
        tern_value_unref(a);
    }
}

Test(bigbuf, many_sizes_and_a_small_limit)
{
    cr_assert_eq(setenv("TERN_ARRAY_CACHE_MB", "20", 1), 0); /* holds one 16 MB buffer */
    tern_value *vs[8];
    for (size_t k = 0; k < 8; k++) {
        double *d;
        size_t n = N / 8 * (k + 1); /* 2 to 16 MB */
        cr_assert_not_null(vs[k] = tern_f64_array_new(n, &d));
        d[0] = (double)k;
        d[n - 1] = (double)k;
    }
    for (size_t k = 0; k < 8; k++)
        tern_value_unref(vs[k]);
    for (size_t k = 0; k < 8; k++) { /* again, partly from the cache: every one usable */
        double *d;
        size_t n = N / 8 * (8 - k);
        cr_assert_not_null(vs[k] = tern_f64_array_new(n, &d));
        d[0] = d[n - 1] = 1.0;
        const double *r;
        size_t rn;
        cr_assert_eq(tern_value_get_f64_array(vs[k], &r, &rn), TERN_OK);
        cr_assert_eq(rn, n);
        cr_assert_eq(r[n - 1], 1.0);
    }
    for (size_t k = 0; k < 8; k++)
        tern_value_unref(vs[k]);
}
