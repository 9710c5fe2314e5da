/* Same-host transfer of large arrays through sealed memfds (see shm.h).
 *
 * Design notes
 *  - Who: a `get` carries the requester's host identity (terni_shm_host: boot id + pid
 *    namespace). A data server with the same identity answers each array of at least
 *    TERNI_SHM_MIN_BYTES (256 KiB, shm.h) with a descriptor {pid, fd, ino, dev, len, type,
 *    shape} in the reply's "shm" map instead of the bytes in "values" (dataserver.c).
 *    Both ends check $TERN_NO_SHM, so either side can turn it off.
 *  - Sender, two kinds of descriptor:
 *    - lent ("lent": true): an array whose buffer already is a memfd (the worker allocates
 *      large arrays that way, bigbuf.c) is shown as it is, its memfd sealed against shrinking
 *      and growing only (terni_bigbuf_lend). The buffer stays the sender's, writable, and
 *      returns to its cache when the array is freed, so the sender pins the array (dataserver.c)
 *      until the receiver says it no longer maps it ("unpin", peers.c), and forsakes the
 *      buffer (never writes or reuses it, bigbuf.h) if the receiver's connection goes first.
 *      Sealing the buffer read-only in place instead (before) made every served buffer
 *      unusable afterwards, and the next array on that worker paid for fresh pages: 6 ms and
 *      more per 8 MB.
 *    - sealed: any other array's bytes are copied once into a new memfd (MFD_ALLOW_SEALING |
 *      MFD_CLOEXEC, named tern:<key>) with write(), then sealed F_SEAL_WRITE | F_SEAL_SHRINK |
 *      F_SEAL_GROW | F_SEAL_SEAL: no one, the sender included, can change or truncate it, so
 *      the receiver maps it and keeps the mapping.
 *    The worker exports on the first same-host request for a key and keeps the fd with the
 *    stored value until the key is dropped; later requests reuse it. Any failure (fd limit,
 *    ENOMEM) means bytes as before.
 *  - Receiver: stat() of /proc/<pid>/fd/<fd> first (it does not open the target, so a
 *    descriptor naming a FIFO or a device has no effect), which must be a regular file of the
 *    descriptor's inode; then open O_RDONLY | O_NONBLOCK | O_NOCTTY, fstat again (same inode,
 *    at least len bytes), F_GET_SEALS must include F_SEAL_SHRINK (no access can SIGBUS) and,
 *    unless lent, F_SEAL_WRITE (the pages cannot change under us), mmap MAP_PRIVATE |
 *    PROT_READ, close. A sealed file's mapping keeps the memfd alive: the sender may drop the
 *    key, close the fd or exit; the array borrows the mapping (value_internal.h's
 *    terni_borrow), and the last reference unmaps it. Arrays that borrow cannot be changed
 *    through the public API (tern_value_f64_data_mut gives TERN_ESHARED), so PROT_READ is
 *    enough. A lent array is mapped the same way (its file need only be sealed against
 *    shrinking), and the mapping's release, after munmap, calls the caller's unpinner
 *    (terni_shm_unpinner: peers.c sends "unpin" without waiting). Copying it instead (pread
 *    into an array of our own, then a synchronous unpin, before) cost the copy and a round
 *    trip on the critical path of every move: in a /tmp micro-benchmark an 8 MB add read
 *    through the mapping took 1.2-1.6 ms against 2.0-2.7 ms for pread and the add, and the
 *    tree reduction's final move and fetch are such moves.
 *  - /proc/<pid>/fd needs ptrace read access to the sender (same user, dumpable). Whatever
 *    fails on the receiver (process gone, fd closed or reused for another file, permission
 *    denied, a malformed descriptor) makes the caller (peers.c) ask again for those keys
 *    without the host identity, i.e. as bytes: the shortcut never turns into an error.
 *  - No MAP_POPULATE: read faults on a shared-memory file map 16 pages each (fault-around),
 *    and in three interleaved rounds of `tern-bench transfer` the populated mapping was
 *    slower (5.3-5.8 ms per 8 MB move against 4.2-4.9 ms); an array that is only partly
 *    read also faults in only that part.
 *  - Only arrays that are the value of a key go this way; arrays inside lists or maps travel
 *    as bytes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sdk/src/transport/shm.h"

#include "sdk/src/bigbuf.h"
#include "sdk/src/value_internal.h"
#include "sdk/src/transport/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQUIRED_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK)
#define LENT_SEALS     F_SEAL_SHRINK
#define ALL_SEALS      (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static char host_id[160];

static void read_host_id(void)
{
    char boot[64] = "", ns[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (f) {
        if (!fgets(boot, sizeof(boot), f))
            boot[0] = '\0';
        fclose(f);
    }
    boot[strcspn(boot, "\n")] = '\0';
    ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
    if (n > 0 && boot[0])
        snprintf(host_id, sizeof(host_id), "%s/%.*s", boot, (int)n, ns);
}

const char *terni_shm_host(void)
{
    const char *off = getenv("TERN_NO_SHM");
    if (off && *off && strcmp(off, "0") != 0)
        return NULL;
    pthread_once(&host_once, read_host_id);
    return host_id[0] ? host_id : NULL;
}

static bool is_array(const tern_value *v)
{
    tern_type t = tern_value_type(v);
    return t == TERN_T_F64_ARRAY || t == TERN_T_I64_ARRAY;
}

bool terni_shm_eligible(const tern_value *v)
{
    return is_array(v) && v->u.arr.n >= TERNI_SHM_MIN_BYTES / TERNI_ELEM_SIZE;
}

void terni_shm_file_close(terni_shm_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

/* *f for fd (taken), whose first len bytes are the array's: TERN_OK, or TERN_EIO (fd closed)
 * if it cannot be stat'ed or is shorter. A lent buffer is the page-rounded size of the array,
 * so it may be longer. */
static int file_of(int fd, size_t len, bool lent, terni_shm_file *f)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0 || (size_t)st.st_size < len) {
        close(fd);
        return TERN_EIO;
    }
    *f = (terni_shm_file){
        .fd = fd, .ino = (uint64_t)st.st_ino, .dev = (uint64_t)st.st_dev, .len = len, .lent = lent
    };
    return TERN_OK;
}

int terni_shm_export(const tern_value *v, const char *name, terni_shm_file *f)
{
    *f = (terni_shm_file){ .fd = -1 };
    if (!is_array(v) || !v->u.arr.n)
        return TERN_EINVAL;
    size_t len = v->u.arr.n * TERNI_ELEM_SIZE;
    const char *p = v->u.arr.data;
    int fd = v->u.arr.borrow ? -1 : terni_bigbuf_lend(v->u.arr.data, len);
    if (fd >= 0)
        return file_of(fd, len, true, f);
    char label[64]; /* the kernel keeps up to 249 bytes; maps and fd listings show it */
    snprintf(label, sizeof(label), "tern:%s", name ? name : "");
    fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return errno == ENOMEM ? TERN_ENOMEM : TERN_EIO;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            return e == ENOMEM || e == ENOSPC ? TERN_ENOMEM : TERN_EIO;
        }
        done += (size_t)w;
    }
    if (fcntl(fd, F_ADD_SEALS, ALL_SEALS) != 0) {
        close(fd);
        return TERN_EIO;
    }
    return file_of(fd, len, false, f);
}

void terni_shm_forsake(const tern_value *v)
{
    if (is_array(v) && !v->u.arr.borrow)
        terni_bigbuf_forsake(v->u.arr.data);
}

tern_value *terni_shm_descriptor(const terni_shm_file *f, const tern_value *v)
{
    if (f->fd < 0 || !is_array(v))
        return NULL;
    tern_value *shape = tern_list_new(v->u.arr.ndim), *d = tern_map_new();
    for (size_t i = 0; shape && i < v->u.arr.ndim; i++)
        if (tern_list_append(shape, tern_int((int64_t)v->u.arr.shape[i])) != TERN_OK) {
            tern_value_unref(shape);
            shape = NULL;
        }
    bool ok = d && terni_set_int(d, "pid", (int64_t)getpid()) && terni_set_int(d, "fd", f->fd) &&
              terni_set_int(d, "ino", (int64_t)f->ino) &&
              terni_set_int(d, "dev", (int64_t)f->dev) &&
              terni_set_int(d, "len", (int64_t)f->len) &&
              terni_set_text(d, "type", v->type == TERN_T_F64_ARRAY ? "f64" : "i64") &&
              (!f->lent || terni_set(d, "lent", tern_bool(true)));
    if (ok)
        ok = terni_set(d, "shape", shape); /* steals shape */
    else
        tern_value_unref(shape);
    if (!ok) {
        tern_value_unref(d);
        return NULL;
    }
    return d;
}

static bool same_file(const struct stat *st, uint64_t ino, uint64_t dev)
{
    return S_ISREG(st->st_mode) && (uint64_t)st->st_ino == ino && (uint64_t)st->st_dev == dev;
}

/* Opens /proc/<pid>/fd/<fd> after the checks of terni_shm_map, requiring seals_needed:
 * *out is the open descriptor (the caller closes it). */
static int open_checked(int64_t pid, int64_t fd, uint64_t ino, uint64_t dev, size_t len,
                        int seals_needed, int *out, char *err, size_t errlen)
{
    *out = -1;
    if (pid <= 0 || pid > INT32_MAX || fd < 0 || fd > INT32_MAX || !len ||
        len > TERNI_SHM_MAX_BYTES) {
        snprintf(err, errlen, "shared-memory descriptor out of range");
        return TERN_EINVAL;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/%lld/fd/%lld", (long long)pid, (long long)fd);
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return e == ENOENT || e == ESRCH || e == ENOTDIR ? TERN_ENOTFOUND : TERN_EIO;
    }
    if (!same_file(&st, ino, dev)) {
        snprintf(err, errlen, "%s is another file now", path);
        return TERN_ENOTFOUND;
    }
    int f = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (f < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
        return e == ENOENT || e == ESRCH ? TERN_ENOTFOUND : TERN_EIO;
    }
    int rc = TERN_OK;
    int seals;
    if (fstat(f, &st) != 0 || !same_file(&st, ino, dev)) {
        snprintf(err, errlen, "%s is another file now", path);
        rc = TERN_ENOTFOUND;
    } else if (st.st_size < 0 || (uint64_t)st.st_size < len) {
        snprintf(err, errlen, "%s holds %lld bytes, fewer than %zu", path, (long long)st.st_size,
                 len);
        rc = TERN_EIO;
    } else if ((seals = fcntl(f, F_GET_SEALS)) < 0 || (seals & seals_needed) != seals_needed) {
        snprintf(err, errlen, "%s is not sealed against %s", path,
                 seals_needed & F_SEAL_WRITE ? "writes and shrinking" : "shrinking");
        rc = TERN_EIO;
    }
    if (rc == TERN_OK)
        *out = f;
    else
        close(f);
    return rc;
}

/* terni_shm_map, requiring the seals in seals_needed. */
static int map_checked(int64_t pid, int64_t fd, uint64_t ino, uint64_t dev, size_t len,
                       int seals_needed, void **addr, char *err, size_t errlen)
{
    *addr = NULL;
    int f;
    int rc = open_checked(pid, fd, ino, dev, len, seals_needed, &f, err, errlen);
    if (rc != TERN_OK)
        return rc;
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, f, 0);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "cannot map /proc/%lld/fd/%lld: %s", (long long)pid, (long long)fd,
                 strerror(errno));
        rc = TERN_EIO;
    } else {
        *addr = m;
    }
    close(f);
    return rc;
}

int terni_shm_map(int64_t pid, int64_t fd, uint64_t ino, uint64_t dev, size_t len, void **addr,
                  char *err, size_t errlen)
{
    return map_checked(pid, fd, ino, dev, len, REQUIRED_SEALS, addr, err, errlen);
}

typedef struct mapping {
    void *addr;
    size_t len;
    terni_shm_unpinner u; /* lent: told once unmapped; else unpin is NULL */
    char key[];
} mapping;

static void unmap(void *arg)
{
    mapping *m = arg;
    munmap(m->addr, m->len);
    if (m->u.unpin)
        m->u.unpin(m->u.arg, m->key); /* after munmap: the sender may reuse the buffer now */
    free(m);
}

/* A non-negative int field of the descriptor. */
static bool field(const tern_value *d, const char *key, int64_t *out)
{
    return terni_get_int(d, key, out) && *out >= 0;
}

int terni_shm_import(const tern_value *desc, const char *key, const terni_shm_unpinner *u,
                     tern_value **out, bool *lent, char *err, size_t errlen)
{
    *out = NULL;
    *lent = false;
    int64_t pid, fd, ino, dev, len;
    const char *type = terni_get_text(desc, "type");
    const tern_value *lent_v = terni_get(desc, "lent");
    const tern_value *shape = terni_get(desc, "shape");
    size_t ndim = tern_list_len(shape);
    if (tern_value_type(desc) != TERN_T_MAP || !field(desc, "pid", &pid) ||
        !field(desc, "fd", &fd) || !terni_get_int(desc, "ino", &ino) ||
        !terni_get_int(desc, "dev", &dev) || !field(desc, "len", &len) || !type ||
        (strcmp(type, "f64") != 0 && strcmp(type, "i64") != 0) ||
        tern_value_type(shape) != TERN_T_LIST || ndim < 1 || ndim > TERN_MAX_DIMS ||
        (lent_v && tern_value_get_bool(lent_v, lent) != TERN_OK)) {
        snprintf(err, errlen, "malformed shared-memory descriptor");
        return TERN_EINVAL;
    }
    size_t dims[TERN_MAX_DIMS], n = 1;
    for (size_t i = 0; i < ndim; i++) {
        const tern_value *item;
        int64_t d;
        if (tern_list_get(shape, i, &item) != TERN_OK || tern_value_get_int(item, &d) != TERN_OK ||
            d < 0 || (d && n > TERNI_SHM_MAX_BYTES / TERNI_ELEM_SIZE / (uint64_t)d)) {
            snprintf(err, errlen, "shared-memory descriptor has a bad shape");
            return TERN_EINVAL;
        }
        dims[i] = (size_t)d;
        n *= (size_t)d;
    }
    if (!n || (uint64_t)len != (uint64_t)n * TERNI_ELEM_SIZE) {
        snprintf(err, errlen, "shared-memory descriptor: length %lld is not %zu elements x %d",
                 (long long)len, n, TERNI_ELEM_SIZE);
        return TERN_EINVAL;
    }
    if (*lent && (!u || !u->unpin || !u->hold || !key)) {
        snprintf(err, errlen, "a lent shared-memory descriptor needs someone to unpin it");
        return TERN_EINVAL;
    }
    bool f64 = !strcmp(type, "f64");
    void *addr;
    int rc = map_checked(pid, fd, (uint64_t)ino, (uint64_t)dev, (size_t)len,
                         *lent ? LENT_SEALS : REQUIRED_SEALS, &addr, err, errlen);
    if (rc != TERN_OK)
        return rc;
    size_t keylen = *lent ? strlen(key) + 1 : 0;
    mapping *m = malloc(sizeof(*m) + keylen);
    terni_borrow *b = malloc(sizeof(*b));
    tern_value *v = NULL;
    if (m && b) {
        *m = (mapping){ .addr = addr, .len = (size_t)len };
        if (keylen)
            memcpy(m->key, key, keylen);
        b->release = unmap;
        b->arg = m;
        atomic_init(&b->refs, 0);
        v = terni_array_borrowed(f64 ? TERN_T_F64_ARRAY : TERN_T_I64_ARRAY, ndim, dims, n, addr,
                                 b); /* takes the one reference */
    }
    if (!v) {
        free(b);
        free(m);
        munmap(addr, (size_t)len);
        snprintf(err, errlen, "out of memory");
        return TERN_ENOMEM;
    }
    if (*lent) { /* from now on the release of v unpins key */
        u->hold(u->arg);
        m->u = *u;
    }
    *out = v;
    return TERN_OK;
}

int terni_shm_resolve(const tern_value *values, const tern_value *shm, const terni_shm_unpinner *u,
                      tern_value **merged, tern_value **retry)
{
    *merged = NULL;
    *retry = NULL;
    if (shm && tern_value_type(shm) != TERN_T_MAP)
        return TERN_EPROTO;
    tern_value *out = tern_map_new();
    if (!out)
        return TERN_ENOMEM;
    const char *key;
    const tern_value *v;
    int rc = TERN_OK;
    for (size_t i = 0; rc == TERN_OK && tern_map_entry(values, i, &key, &v) == TERN_OK; i++)
        rc = tern_map_set(out, key, tern_value_ref((tern_value *)v));
    for (size_t i = 0; rc == TERN_OK && tern_map_entry(shm, i, &key, &v) == TERN_OK; i++) {
        tern_value *arr;
        char err[256];
        bool was_lent;
        if (terni_shm_import(v, key, u, &arr, &was_lent, err, sizeof(err)) == TERN_OK) {
            rc = tern_map_set(out, key, arr);
        } else {
            if (!*retry && !(*retry = tern_list_new(0)))
                rc = TERN_ENOMEM;
            else
                rc = tern_list_append(*retry, tern_text(key));
        }
    }
    if (rc != TERN_OK) {
        tern_value_unref(out);
        tern_value_unref(*retry);
        *retry = NULL;
        return TERN_ENOMEM;
    }
    *merged = out;
    return TERN_OK;
}
