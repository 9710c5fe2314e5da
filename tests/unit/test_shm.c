/* Unit tests of sdk/src/transport/shm.c: a sealed memfd made by terni_shm_export and mapped back
 * through /proc/self/fd gives the same bytes; every check on the receiving side (inode,
 * seals, length, file type, descriptor fields) refuses with an error code, never a crash or
 * a blocked open; a lent buffer is mapped too, and its key unpinned once the mapping goes;
 * terni_shm_resolve sorts keys into mapped and to-ask-again. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tern/codec.h>

#include "sdk/src/bigbuf.h"
#include "leakcheck.h"
#include "sdk/src/transport/shm.h"
#include "sdk/src/transport/wire.h"

#define N ((size_t)1 << 18) /* 2 MiB of doubles */

static tern_value *f64_ramp(size_t n)
{
    double *d;
    tern_value *v = tern_f64_array_new(n, &d);
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++)
        d[i] = (double)i * 0.5 - 7.25;
    return v;
}

static tern_value *export(const tern_value *v, terni_shm_file *f)
{
    cr_assert_eq(terni_shm_export(v, "test", f), TERN_OK);
    cr_assert_geq(f->fd, 0);
    tern_value *d = terni_shm_descriptor(f, v);
    cr_assert_not_null(d);
    return d;
}

/* A descriptor with one field replaced (val stolen; NULL: field removed). */
static tern_value *with(const tern_value *d, const char *key, tern_value *val)
{
    tern_value *c = tern_map_new();
    const char *k;
    const tern_value *v;
    for (size_t i = 0; tern_map_entry(d, i, &k, &v) == TERN_OK; i++)
        if (strcmp(k, key) != 0)
            cr_assert_eq(tern_map_set(c, k, tern_value_ref((tern_value *)v)), TERN_OK);
    if (val)
        cr_assert_eq(tern_map_set(c, key, val), TERN_OK);
    return c;
}

/* with() of two fields. */
static tern_value *with2(const tern_value *d, const char *k1, tern_value *v1, const char *k2,
                         tern_value *v2)
{
    tern_value *c1 = with(d, k1, v1), *c2 = with(c1, k2, v2);
    tern_value_unref(c1);
    return c2;
}

/* The receiver's side of unpinning (shm.h), counted. */
typedef struct unpins {
    int holds, unpins;
    char key[64];
} unpins;

static void count_hold(void *arg)
{
    ((unpins *)arg)->holds++;
}

static void count_unpin(void *arg, const char *key)
{
    unpins *u = arg;
    u->unpins++;
    snprintf(u->key, sizeof(u->key), "%s", key);
}

static unpins counted;
static const terni_shm_unpinner counter = { count_hold, count_unpin, &counted };

static int import_rc(tern_value *d) /* d consumed */
{
    tern_value *out = (tern_value *)1;
    char err[256] = "";
    bool lent;
    int rc = terni_shm_import(d, "k", &counter, &out, &lent, err, sizeof(err));
    if (rc == TERN_OK)
        tern_value_unref(out);
    else
        cr_assert_null(out);
    tern_value_unref(d);
    return rc;
}

LTest(shm, round_trip_through_proc_self_fd)
{
    tern_value *v = f64_ramp(N);
    terni_shm_file f;
    tern_value *d = export(v, &f);
    cr_assert_eq(f.len, N * sizeof(double));
    int seals = fcntl(f.fd, F_GET_SEALS);
    cr_assert_eq(seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                 F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    cr_assert_eq(write(f.fd, "x", 1), -1, "a sealed memfd took a write");
    tern_value *got;
    char err[256] = "";
    bool lent = true;
    cr_assert_not(f.lent, "a heap array was lent");
    cr_assert_eq(terni_shm_import(d, "k", &counter, &got, &lent, err, sizeof(err)), TERN_OK, "%s",
                 err);
    cr_assert_not(lent);
    terni_shm_file_close(&f); /* the mapping outlives the sender's fd */
    cr_assert_eq(f.fd, -1);
    cr_assert(tern_value_is_borrowed(got));
    cr_assert(tern_value_equal(got, v));
    const double *a, *b;
    size_t na, nb;
    cr_assert_eq(tern_value_get_f64_array(v, &a, &na), TERN_OK);
    cr_assert_eq(tern_value_get_f64_array(got, &b, &nb), TERN_OK);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(a, b, na * sizeof(double)), 0);
    cr_assert_neq(a, b);
    double *mut;
    size_t nm;
    cr_assert_eq(tern_value_f64_data_mut(got, &mut, &nm), TERN_ESHARED);
    tern_value_unref(got);
    tern_value_unref(d);
    tern_value_unref(v);
}

/* A ramp in a memfd-backed buffer, as a worker's arrays (bigbuf.c), exported: lent (*d). */
static tern_value *lent_ramp(terni_shm_file *f, tern_value **d)
{
    terni_bigbuf_use_memfd();
    tern_value *v = f64_ramp(N);
    *d = export(v, f);
    cr_assert(f->lent, "a memfd-backed array was not lent");
    return v;
}

/* A worker's array (a memfd-backed buffer, bigbuf.c) is lent, not copied or sealed: the
 * receiver maps the sender's own buffer read-only, and unpins the key once its last reference
 * goes and the mapping with it. */
Test(shm, a_memfd_backed_array_is_lent_mapped_and_unpinned_when_released)
{
#ifdef TEST_ASAN
    cr_skip("arrays stay on the heap under AddressSanitizer (bigbuf.h)");
#endif
    terni_shm_file f;
    tern_value *d, *v = lent_ramp(&f, &d);
    const tern_value *flag;
    bool b = false;
    cr_assert_eq(tern_map_get(d, "lent", &flag), TERN_OK, "the descriptor does not say lent");
    cr_assert_eq(tern_value_get_bool(flag, &b), TERN_OK);
    cr_assert(b);
    int seals = fcntl(f.fd, F_GET_SEALS);
    cr_assert_eq(seals & F_SEAL_WRITE, 0, "a lent buffer was sealed against writes");
    cr_assert_eq(seals & F_SEAL_SHRINK, F_SEAL_SHRINK);
    tern_value *got;
    bool lent = false;
    char err[256] = "";
    counted = (unpins){ 0 };
    cr_assert_eq(terni_shm_import(d, "k", &counter, &got, &lent, err, sizeof(err)), TERN_OK, "%s",
                 err);
    cr_assert(lent);
    cr_assert(tern_value_is_borrowed(got), "a lent array is mapped, not copied");
    cr_assert(tern_value_equal(got, v));
    cr_assert_eq(counted.holds, 1);
    double *mut, *mine;
    size_t n;
    cr_assert_eq(tern_value_f64_data_mut(got, &mut, &n), TERN_ESHARED, "the mapping is read-only");
    cr_assert_eq(tern_value_f64_data_mut(v, &mine, &n), TERN_OK, "the sender's stays writable");
    /* the mapping shows the sender's pages: what the sender promises not to change */
    const double *seen;
    cr_assert_eq(tern_value_get_f64_array(got, &seen, &n), TERN_OK);
    cr_assert_neq((const void *)seen, (const void *)mine);
    mine[1] = 42.0;
    cr_assert_eq(seen[1], 42.0, "the receiver does not see the sender's buffer");
    mine[1] = 0.5 - 7.25;
    tern_value *extra = tern_value_ref(got);
    tern_value_unref(got);
    cr_assert_eq(counted.unpins, 0, "unpinned while still referenced");
    tern_value_unref(extra);
    cr_assert_eq(counted.unpins, 1, "the last reference went without an unpin");
    cr_assert_str_eq(counted.key, "k");
    /* a lent descriptor needs someone to unpin it */
    tern_value *out = (tern_value *)1;
    cr_assert_eq(terni_shm_import(d, "k", NULL, &out, &lent, err, sizeof(err)), TERN_EINVAL);
    cr_assert_null(out);
    /* a lent descriptor needs a file sealed against shrinking: an unsealed memfd is refused */
    int plain = memfd_create("plain", MFD_CLOEXEC);
    cr_assert_geq(plain, 0);
    cr_assert_eq(ftruncate(plain, (off_t)f.len), 0);
    struct stat st;
    cr_assert_eq(fstat(plain, &st), 0);
    tern_value *unsealed = with2(d, "fd", tern_int(plain), "ino", tern_int((int64_t)st.st_ino));
    cr_assert_eq(import_rc(unsealed), TERN_EIO);
    close(plain);
    /* resolve maps it the same way, with the unpinner it is given */
    tern_value *shm = tern_map_new(), *merged, *retry;
    cr_assert_eq(tern_map_set(shm, "k2", tern_value_ref(d)), TERN_OK);
    counted = (unpins){ 0 };
    cr_assert_eq(terni_shm_resolve(NULL, shm, &counter, &merged, &retry), TERN_OK);
    cr_assert_null(retry);
    cr_assert_eq(counted.holds, 1);
    tern_value_unref(merged);
    cr_assert_eq(counted.unpins, 1);
    cr_assert_str_eq(counted.key, "k2");
    tern_value_unref(shm);
    terni_shm_file_close(&f);
    tern_value_unref(d);
    tern_value_unref(v);
}

/* A buffer forsaken by its lender (its reader's connection closed while it may still map it)
 * is never written through the API again, nor cached: freed, it is unmapped and closed, and
 * the next array of its size gets a new memfd. */
Test(shm, a_forsaken_buffer_is_neither_writable_nor_reused)
{
#ifdef TEST_ASAN
    cr_skip("arrays stay on the heap under AddressSanitizer (bigbuf.h)");
#endif
    terni_shm_file f;
    tern_value *d, *v = lent_ramp(&f, &d);
    double *mine;
    size_t n;
    cr_assert_eq(tern_value_f64_data_mut(v, &mine, &n), TERN_OK);
    terni_bigbuf_forsake(mine);
    cr_assert_eq(tern_value_f64_data_mut(v, &mine, &n), TERN_ESHARED,
                 "a forsaken buffer is still writable");
    tern_value *got;
    bool lent;
    char err[256] = "";
    cr_assert_eq(terni_shm_import(d, "k", &counter, &got, &lent, err, sizeof(err)), TERN_OK, "%s",
                 err);
    uint64_t ino = f.ino;
    terni_shm_file_close(&f);
    tern_value_unref(d);
    tern_value_unref(v); /* freed: not cached */
    tern_value *w = f64_ramp(N), *d2 = export(w, &f);
    cr_assert(f.lent);
    cr_assert_neq(f.ino, ino, "a forsaken buffer was reused");
    cr_assert_eq(tern_value_f64_data_mut(w, &mine, &n), TERN_OK);
    mine[0] = 99.0; /* the mapping still shows what was lent */
    tern_value *ref = f64_ramp(N);
    cr_assert(tern_value_equal(got, ref), "the reader's mapping changed");
    tern_value_unref(ref);
    tern_value_unref(got);
    terni_shm_file_close(&f);
    tern_value_unref(d2);
    tern_value_unref(w);
}

LTest(shm, round_trip_shaped_i64)
{
    size_t shape[3] = { 4, 512, 128 }, n = 4 * 512 * 128;
    int64_t *data;
    tern_value *v = tern_i64_array_new_shaped(3, shape, &data);
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++)
        data[i] = (int64_t)(i * 2654435761u) - (1 << 30);
    cr_assert(terni_shm_eligible(v));
    terni_shm_file f;
    tern_value *d = export(v, &f), *got;
    char err[256] = "";
    bool lent;
    cr_assert_eq(terni_shm_import(d, "k", &counter, &got, &lent, err, sizeof(err)), TERN_OK, "%s",
                 err);
    cr_assert_eq(tern_value_type(got), TERN_T_I64_ARRAY);
    size_t ndim;
    const size_t *sh;
    cr_assert_eq(tern_array_shape(got, &ndim, &sh), TERN_OK);
    cr_assert_eq(ndim, 3);
    cr_assert(sh[0] == 4 && sh[1] == 512 && sh[2] == 128);
    cr_assert(tern_value_equal(got, v));
    tern_value_unref(d);
    terni_shm_file_close(&f);
    tern_value_unref(v);
    tern_value_unref(got); /* unmapped here */
}

LTest(shm, eligibility_and_export_refusals)
{
    tern_value *small = f64_ramp(1000), *big = f64_ramp(N), *text = tern_text("x");
    cr_assert_not(terni_shm_eligible(small));
    cr_assert(terni_shm_eligible(big));
    cr_assert_not(terni_shm_eligible(text));
    cr_assert_not(terni_shm_eligible(NULL));
    terni_shm_file f;
    cr_assert_eq(terni_shm_export(text, "t", &f), TERN_EINVAL);
    cr_assert_eq(f.fd, -1);
    cr_assert_null(terni_shm_descriptor(&f, big));
    tern_value_unref(small);
    tern_value_unref(big);
    tern_value_unref(text);
}

/* No descriptors left: memfd_create fails (EMFILE), export says so, nothing leaks. */
LTest(shm, export_at_the_fd_limit)
{
    tern_value *v = f64_ramp(N);
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = dup(0); /* the lowest free descriptor: at most this many are open below it */
    cr_assert_geq(probe, 0);
    close(probe);
    low = old;
    low.rlim_cur = (rlim_t)probe;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    terni_shm_file f;
    int rc = terni_shm_export(v, "limit", &f);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    cr_assert_neq(rc, TERN_OK);
    cr_assert_eq(f.fd, -1);
    tern_value_unref(v);
}

LTest(shm, wrong_inode_rejected)
{
    tern_value *v = f64_ramp(N);
    terni_shm_file f;
    tern_value *d = export(v, &f);
    void *addr = (void *)1;
    char err[256] = "";
    cr_assert_eq(terni_shm_map(getpid(), f.fd, f.ino + 1, f.dev, f.len, &addr, err, sizeof(err)),
                 TERN_ENOTFOUND);
    cr_assert_null(addr);
    cr_assert_eq(terni_shm_map(getpid(), f.fd, f.ino, f.dev + 1, f.len, &addr, err, sizeof(err)),
                 TERN_ENOTFOUND);
    cr_assert_eq(import_rc(with(d, "ino", tern_int((int64_t)f.ino + 1))), TERN_ENOTFOUND);
    /* the fd number reused by another memfd of the same size */
    terni_shm_file g;
    cr_assert_eq(terni_shm_export(v, "other", &g), TERN_OK);
    cr_assert_eq(dup2(g.fd, f.fd), f.fd);
    cr_assert_eq(import_rc(tern_value_ref(d)), TERN_ENOTFOUND);
    /* the fd closed */
    terni_shm_file_close(&f);
    cr_assert_eq(import_rc(tern_value_ref(d)), TERN_ENOTFOUND);
    terni_shm_file_close(&g);
    tern_value_unref(d);
    tern_value_unref(v);
}

static int memfd_with(size_t len, int seals)
{
    int fd = memfd_create("test-unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)len), 0);
    if (seals)
        cr_assert_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
    return fd;
}

static int map_fd(int fd, size_t len)
{
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    void *addr = (void *)1;
    char err[256] = "";
    int rc = terni_shm_map(getpid(), fd, st.st_ino, st.st_dev, len, &addr, err, sizeof(err));
    if (rc == TERN_OK)
        munmap(addr, len);
    else
        cr_assert_null(addr);
    return rc;
}

LTest(shm, unsealed_memfd_rejected)
{
    size_t len = (size_t)1 << 20;
    int none = memfd_with(len, 0), no_shrink = memfd_with(len, F_SEAL_WRITE),
        no_write = memfd_with(len, F_SEAL_SHRINK | F_SEAL_GROW),
        enough = memfd_with(len, F_SEAL_WRITE | F_SEAL_SHRINK);
    cr_assert_eq(map_fd(none, len), TERN_EIO);
    cr_assert_eq(map_fd(no_shrink, len), TERN_EIO);
    cr_assert_eq(map_fd(no_write, len), TERN_EIO);
    cr_assert_eq(map_fd(enough, len), TERN_OK);
    /* a regular file (no seals at all) */
    char path[] = "/tmp/tern-test-shm-XXXXXX";
    int reg = mkstemp(path);
    cr_assert_geq(reg, 0);
    unlink(path);
    cr_assert_eq(ftruncate(reg, (off_t)len), 0);
    cr_assert_eq(map_fd(reg, len), TERN_EIO);
    close(reg);
    close(none);
    close(no_shrink);
    close(no_write);
    close(enough);
}

LTest(shm, too_short_rejected)
{
    tern_value *v = f64_ramp(N);
    terni_shm_file f;
    tern_value *d = export(v, &f);
    void *addr;
    char err[256] = "";
    cr_assert_eq(terni_shm_map(getpid(), f.fd, f.ino, f.dev, f.len + 8, &addr, err, sizeof(err)),
                 TERN_EIO);
    cr_assert(strstr(err, "fewer than"), "%s", err);
    /* a descriptor claiming a bigger shape than the file holds */
    cr_assert_eq(import_rc(with2(d, "len", tern_int((int64_t)f.len * 2), "shape",
                                 tern_list_of(tern_int((int64_t)N * 2)))),
                 TERN_EIO);
    /* and a shorter one is fine: only the first len bytes are mapped */
    cr_assert_eq(import_rc(with2(d, "len", tern_int((int64_t)f.len / 2), "shape",
                                 tern_list_of(tern_int((int64_t)N / 2)))),
                 TERN_OK);
    terni_shm_file_close(&f);
    tern_value_unref(d);
    tern_value_unref(v);
}

LTest(shm, bogus_pid_and_fd_rejected)
{
    void *addr;
    char err[256];
    size_t len = 4096;
    int64_t bad_pids[] = { 0, -1, (int64_t)INT32_MAX + 1, INT64_MIN, INT64_MAX };
    for (size_t i = 0; i < sizeof(bad_pids) / sizeof(bad_pids[0]); i++)
        cr_assert_eq(terni_shm_map(bad_pids[i], 0, 1, 1, len, &addr, err, sizeof(err)),
                     TERN_EINVAL);
    cr_assert_eq(terni_shm_map(getpid(), -1, 1, 1, len, &addr, err, sizeof(err)), TERN_EINVAL);
    cr_assert_eq(terni_shm_map(getpid(), INT64_MAX, 1, 1, len, &addr, err, sizeof(err)),
                 TERN_EINVAL);
    cr_assert_eq(terni_shm_map(getpid(), 0, 1, 1, 0, &addr, err, sizeof(err)), TERN_EINVAL);
    cr_assert_eq(terni_shm_map(getpid(), 0, 1, 1, SIZE_MAX, &addr, err, sizeof(err)), TERN_EINVAL);
    /* no such fd, no such process (above any pid_max) */
    cr_assert_eq(terni_shm_map(getpid(), 999999, 1, 1, len, &addr, err, sizeof(err)),
                 TERN_ENOTFOUND);
    cr_assert_eq(terni_shm_map(INT32_MAX, 0, 1, 1, len, &addr, err, sizeof(err)), TERN_ENOTFOUND);
    /* a FIFO with its real inode: refused without opening it (an open would block) */
    char dir[] = "/tmp/tern-test-shm-XXXXXX", fifo[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    int fd = open(fifo, O_RDWR | O_NONBLOCK);
    cr_assert_geq(fd, 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(terni_shm_map(getpid(), fd, st.st_ino, st.st_dev, len, &addr, err, sizeof(err)),
                 TERN_ENOTFOUND);
    close(fd);
    unlink(fifo);
    rmdir(dir);
    /* stdin/stdout as descriptors: whatever they are here, not a sealed memfd */
    for (int i = 0; i < 3; i++)
        if (fstat(i, &st) == 0)
            cr_assert_neq(
                terni_shm_map(getpid(), i, st.st_ino, st.st_dev, len, &addr, err, sizeof(err)),
                TERN_OK);
}

LTest(shm, malformed_descriptors_rejected)
{
    tern_value *v = f64_ramp(N);
    terni_shm_file f;
    tern_value *d = export(v, &f);
    const char *fields[] = { "pid", "fd", "ino", "dev", "len", "type", "shape" };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        cr_assert_eq(import_rc(with(d, fields[i], NULL)), TERN_EINVAL, "without %s", fields[i]);
        cr_assert_eq(import_rc(with(d, fields[i], tern_text("1"))), TERN_EINVAL, "%s", fields[i]);
        cr_assert_eq(import_rc(with(d, fields[i], tern_double(1))), TERN_EINVAL, "%s", fields[i]);
    }
    cr_assert_eq(import_rc(with(d, "pid", tern_int(-5))), TERN_EINVAL);
    cr_assert_eq(import_rc(with(d, "fd", tern_int(-1))), TERN_EINVAL);
    cr_assert_eq(import_rc(with(d, "len", tern_int(-8))), TERN_EINVAL);
    cr_assert_eq(import_rc(with(d, "len", tern_int((int64_t)f.len + 1))), TERN_EINVAL);
    cr_assert_eq(import_rc(with(d, "type", tern_text("u8"))), TERN_EINVAL);
    cr_assert_eq(import_rc(with(d, "shape", tern_list_new(0))), TERN_EINVAL);
    cr_assert_eq(import_rc(with(d, "shape", tern_list_of(tern_int(-1)))), TERN_EINVAL);
    cr_assert_eq(import_rc(with(d, "shape", tern_list_of(tern_text("x")))), TERN_EINVAL);
    cr_assert_eq(import_rc(with(d, "shape", tern_list_of(tern_int(0)))), TERN_EINVAL);
    cr_assert_eq(import_rc(with(d, "shape", tern_list_of(tern_int(INT64_MAX), tern_int(2)))),
                 TERN_EINVAL);
    tern_value *dims = tern_list_new(0);
    for (int i = 0; i < TERN_MAX_DIMS + 1; i++)
        tern_list_append(dims, tern_int(1));
    cr_assert_eq(import_rc(with(d, "shape", dims)), TERN_EINVAL);
    /* product of shape x 8 must be len: 2 x N/2 fits, N x 2 does not */
    cr_assert_eq(import_rc(with(d, "shape", tern_list_of(tern_int(2), tern_int((int64_t)N / 2)))),
                 TERN_OK);
    cr_assert_eq(import_rc(with(d, "shape", tern_list_of(tern_int((int64_t)N), tern_int(2)))),
                 TERN_EINVAL);
    cr_assert_eq(import_rc(tern_int(3)), TERN_EINVAL);
    cr_assert_eq(import_rc(tern_map_new()), TERN_EINVAL);
    /* the type changed to i64: same bytes, another type; allowed (the peer could send them) */
    cr_assert_eq(import_rc(with(d, "type", tern_text("i64"))), TERN_OK);
    terni_shm_file_close(&f);
    tern_value_unref(d);
    tern_value_unref(v);
}

LTest(shm, resolve_sorts_keys)
{
    tern_value *v = f64_ramp(N);
    terni_shm_file f;
    tern_value *d = export(v, &f), *values = tern_map_new(), *shm = tern_map_new();
    cr_assert_eq(tern_map_set(values, "small", tern_int(7)), TERN_OK);
    cr_assert_eq(tern_map_set(shm, "good", tern_value_ref(d)), TERN_OK);
    cr_assert_eq(tern_map_set(shm, "gone", with(d, "fd", tern_int(999999))), TERN_OK);
    cr_assert_eq(tern_map_set(shm, "junk", tern_text("not a descriptor")), TERN_OK);
    tern_value *merged, *retry;
    counted = (unpins){ 0 };
    cr_assert_eq(terni_shm_resolve(values, shm, &counter, &merged, &retry), TERN_OK);
    cr_assert_eq(counted.holds, 0, "a sealed copy counted as lent");
    const tern_value *got;
    cr_assert_eq(tern_map_len(merged), 2);
    cr_assert_eq(tern_map_get(merged, "small", &got), TERN_OK);
    cr_assert_eq(tern_map_get(merged, "good", &got), TERN_OK);
    cr_assert(tern_value_equal(got, v));
    cr_assert_eq(tern_list_len(retry), 2);
    const tern_value *k;
    const char *s0, *s1;
    tern_list_get(retry, 0, &k);
    tern_value_get_text(k, &s0, NULL);
    tern_list_get(retry, 1, &k);
    tern_value_get_text(k, &s1, NULL);
    cr_assert((!strcmp(s0, "gone") && !strcmp(s1, "junk")) ||
              (!strcmp(s0, "junk") && !strcmp(s1, "gone")));
    tern_value_unref(merged);
    tern_value_unref(retry);
    /* nothing to retry; shm absent; shm not a map */
    cr_assert_eq(terni_shm_resolve(values, NULL, &counter, &merged, &retry), TERN_OK);
    cr_assert_null(retry);
    cr_assert_eq(tern_map_len(merged), 1);
    tern_value_unref(merged);
    tern_value *bad = tern_list_new(0);
    cr_assert_eq(terni_shm_resolve(values, bad, &counter, &merged, &retry), TERN_EPROTO);
    cr_assert_null(merged);
    cr_assert_null(retry);
    tern_value_unref(bad);
    tern_value_unref(values);
    tern_value_unref(shm);
    tern_value_unref(d);
    terni_shm_file_close(&f);
    tern_value_unref(v);
}

LTest(shm, host_identity_and_switch)
{
    unsetenv("TERN_NO_SHM");
    const char *h = terni_shm_host();
    cr_assert_not_null(h);
    cr_assert(strchr(h, '/') && strstr(h, "pid:["), "%s", h);
    setenv("TERN_NO_SHM", "1", 1);
    cr_assert_null(terni_shm_host());
    setenv("TERN_NO_SHM", "0", 1);
    cr_assert_str_eq(terni_shm_host(), h);
    setenv("TERN_NO_SHM", "", 1);
    cr_assert_not_null(terni_shm_host());
    unsetenv("TERN_NO_SHM");
}
