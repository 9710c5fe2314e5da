/* Large arrays (sdk/src/bigbuf.c): freed memory is handed out again, a reused buffer is still
 * zeroed where the API promises zeros, and the cache can be turned off. With memfd backing
 * (the worker's): a buffer seals in place, becomes read-only, is never handed out again, and
 * the descriptors held stay within the budget. Through the public array API, each test in its
 * own process (Criterion), so TERN_ARRAY_CACHE_MB is read fresh and memfd backing starts off. */
#include <criterion/criterion.h>

#include <tern/value.h>

#include "sdk/src/bigbuf.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

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

static size_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    size_t n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Whether writing to p kills a child process with SIGSEGV. The child writes back the value
 * there: a memfd buffer is a shared mapping, so its write would show in this process. */
static bool write_faults(double *p)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        *(volatile double *)p = *(volatile double *)p;
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

Test(bigbuf, a_lent_memfd_buffer_stays_writable_and_is_reused)
{
#ifdef ASAN
    cr_skip("arrays stay on the heap under AddressSanitizer (bigbuf.h)");
#endif
    tern_value *a;
    double *d = new_array(&a);
    cr_assert_eq(terni_bigbuf_lend(d, N * sizeof(double)), -1, "anonymous memory lent");
    tern_value_unref(a);

    terni_bigbuf_use_memfd();
    new_array(&a); /* the cached anonymous buffer */
    tern_value *b;
    double *e = new_array(&b); /* a new one: memfd-backed */
    int fd = terni_bigbuf_lend(e, N * sizeof(double));
    cr_assert_geq(fd, 0, "a memfd-backed buffer was not lent");
    int seals = fcntl(fd, F_GET_SEALS);
    cr_assert_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW, "seals %#x",
                 seals);
    cr_assert_eq(seals & (F_SEAL_WRITE | F_SEAL_SEAL), 0, "a lent buffer sealed %#x", seals);
    cr_assert_not(write_faults(e), "a lent buffer must stay writable");
    cr_assert_neq(ftruncate(fd, 0), 0, "a lent buffer's file must not shrink");
    const double *m = mmap(NULL, N * sizeof(double), PROT_READ, MAP_SHARED, fd, 0);
    cr_assert_neq(m, MAP_FAILED);
    for (size_t i = 0; i < N; i += 512) /* the same pages, seen through the memfd */
        cr_assert_eq(m[i], (double)i + 0.5, "element %zu", i);
    e[7] = -1.0;
    cr_assert_eq(m[7], -1.0, "a write to the buffer must show through the memfd");
    munmap((void *)m, N * sizeof(double));
    int again = terni_bigbuf_lend(e, N * sizeof(double));
    cr_assert_geq(again, 0, "lending twice must give another descriptor");
    cr_assert_neq(again, fd);
    close(again);
    close(fd);
    cr_assert_eq(terni_bigbuf_lend(e + 512, N * sizeof(double)), -1, "not a buffer's start");
    tern_value_unref(b);
    /* the lent buffer comes back (the newest cached one first) */
    tern_value *c;
    double *f = new_array(&c);
    cr_assert_eq(f, e, "a lent buffer was not cached and reused");
    tern_value_unref(c);
    tern_value_unref(a);
}

Test(bigbuf, small_arrays_are_not_lent)
{
    terni_bigbuf_use_memfd();
    double *d;
    tern_value *v = tern_f64_array_new(1000, &d);
    cr_assert_not_null(v);
    cr_assert_eq(terni_bigbuf_lend(d, 1000 * sizeof(double)), -1);
    tern_value_unref(v);
}

Test(bigbuf, memfd_descriptors_stay_within_budget)
{
#ifdef ASAN
    cr_skip("arrays stay on the heap under AddressSanitizer (bigbuf.h)");
#endif
    struct rlimit r = { .rlim_cur = 64, .rlim_max = 64 };
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &r), 0);
    terni_bigbuf_use_memfd(); /* a quarter of 64: 16 descriptors */
    size_t before = open_fds();
    tern_value *vs[24];
    for (int round = 0; round < 2; round++) { /* the second from the cache */
        size_t lent = 0;
        for (size_t k = 0; k < 24; k++) {
            double *d;
            cr_assert_not_null(vs[k] = tern_f64_array_new(((size_t)1 << 17) + k, &d)); /* ~1 MB */
            d[0] = d[((size_t)1 << 17) + k - 1] = (double)k;
            int fd = terni_bigbuf_lend(d, (((size_t)1 << 17) + k) * sizeof(double));
            if (fd >= 0) {
                lent++;
                close(fd);
            }
        }
        cr_assert_eq(lent, 16, "%zu buffers were memfds, the budget is 16", lent);
        cr_assert_eq(open_fds() - before, 16);
        for (size_t k = 0; k < 24; k++)
            tern_value_unref(vs[k]);
        cr_assert_leq(open_fds() - before, 16, "cached buffers hold more descriptors than 16");
    }
}
