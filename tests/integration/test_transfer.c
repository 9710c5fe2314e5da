/* Integration tests of the same-host shortcut (sdk/src/transport/shm.c): on a real cluster of a
 * scheduler and two workers, large arrays move between the workers and to the client through
 * memfds, with the same results as through the socket ($TERN_NO_SHM=1). A worker's array
 * lives in a memfd of its own ("/memfd:tern-array", bigbuf.c), which it lends: the receiver
 * copies it, and the holder's memfd is then sealed against shrinking but not against writes
 * (read through /proc/<pid>/fd). Under AddressSanitizer arrays stay on the heap, so the
 * holder copies each into a sealed memfd "/memfd:tern:<key>" that the receiver maps read-only
 * (/proc/<pid>/maps). A hand-made data server then checks the receiver's fallback: a
 * descriptor that does not map makes terni_peers_get ask again for the bytes. */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <signal.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../unit/leakcheck.h"
#include "harness.h"
#include "sdk/src/bigbuf.h"
#include "sdk/src/transport/peers.h"
#include "sdk/src/transport/shm.h"
#include "sdk/src/transport/wire.h"

#define LEN ((size_t)1 << 20) /* 8 MiB of doubles */

/* How a worker's 8 MiB result reaches a receiver on this host: its own memfd-backed buffer,
 * lent (bigbuf.c) and mapped by the receiver while it pins it; under AddressSanitizer arrays
 * stay on the heap (bigbuf.h), so a sealed copy in a memfd named after the key, which the
 * receiver maps. Mapped either way. */
#if defined(__SANITIZE_ADDRESS__)
#define SENT_COPIED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SENT_COPIED 1
#endif
#endif
#define MAPPED(shm) (shm)
#ifdef SENT_COPIED
#define LENT(shm) false
#else
#define LENT(shm) (shm)
#endif
#define SEED  20261127
#define ALPHA 3.0

/* ---- the arrays plugin's random(n, seed), computed here ---------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double *local_random(size_t n, uint64_t s)
{
    uint64_t st[4] = { splitmix64(&s), splitmix64(&s), splitmix64(&s), splitmix64(&s) };
    double *y = malloc(n * sizeof(double));
    cr_assert_not_null(y);
    for (size_t i = 0; i < n; i++) {
        uint64_t out = st[0] + st[3], t = st[1] << 17;
        st[2] ^= st[0];
        st[3] ^= st[1];
        st[1] ^= st[2];
        st[0] ^= st[3];
        st[2] ^= t;
        st[3] = (st[3] << 45) | (st[3] >> 19);
        y[i] = (double)(out >> 11) * 0x1.0p-53;
    }
    return y;
}

/* ---- where the bytes are ---------------------------------------------------------- */

/* Whether pid has a mapping whose name contains `name` and, unless perms is NULL, with those
 * permissions. A receiver maps a sealed copy private and read-only ("r--p"; the copy is named
 * tern:<key>); a worker's own large arrays are shared mappings of memfds named tern-array
 * (bigbuf.c, "rw-s"), which it lends and receivers map private and read-only too. */
static bool maps_memfd(pid_t pid, const char *perms, const char *name)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "re");
    cr_assert_not_null(f, "cannot read %s", path);
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        char p[8] = "";
        found =
            strstr(line, name) && sscanf(line, "%*s %7s", p) == 1 && (!perms || !strcmp(p, perms));
    }
    fclose(f);
    return found;
}

/* Whether pid holds a memfd of its array buffers ("tern-array") that it has lent: sealed
 * against shrinking, not against writes (shm.c). */
static bool lent_memfd(pid_t pid)
{
    char dir[64], path[400], target[256];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot list %s", dir);
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        int fd = strstr(target, "memfd:tern-array") ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (fd < 0)
            continue;
        int seals = fcntl(fd, F_GET_SEALS);
        close(fd);
        found = seals >= 0 && (seals & F_SEAL_SHRINK) && !(seals & F_SEAL_WRITE);
    }
    closedir(d);
    return found;
}

/* Whether p lies in a mapping of one of our memfds in this process. */
static bool in_memfd(const void *p)
{
    char line[1024];
    FILE *f = fopen("/proc/self/maps", "re");
    cr_assert_not_null(f);
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (uintptr_t)p >= lo && (uintptr_t)p < hi)
            found = strstr(line, "/memfd:tern") != NULL;
    }
    fclose(f);
    return found;
}

/* The array result of f, checked element by element against a * ref[i], plus ref[i] when
 * plus (exactly: the same IEEE operations as the plugin's). Returns whether its data sits in
 * a memfd mapping of this process. */
static bool check_result(tern_future *f, const double *ref, double a, bool plus)
{
    tern_value *v = NULL;
    OK(tern_result(f, T, &v));
    const double *d;
    size_t n;
    cr_assert_eq(tern_value_get_f64_array(v, &d, &n), TERN_OK, "%s is not an f64 array",
                 tern_future_key(f));
    cr_assert_eq(n, LEN);
    for (size_t i = 0; i < n; i++) {
        double want = a * ref[i];
        if (plus)
            want = ref[i] + want;
        cr_assert(d[i] == want, "%s[%zu] = %.17g, expected %.17g", tern_future_key(f), i, d[i],
                  want);
    }
    bool mapped = in_memfd(d);
    tern_value_unref(v);
    return mapped;
}

/* Two workers w0 (A) and w1 (B); nannies and executors get their pids. */
static void start_two(pid_t nannies[2], pid_t execs[2])
{
    char addr[256];
    start_scheduler("tcp://127.0.0.1:0", NULL, addr, sizeof(addr));
    nannies[0] = start_worker_with(addr, "w0", NULL);
    nannies[1] = start_worker_with(addr, "w1", NULL);
    tern_connect_opts o = { .timeout_ms = T };
    OK(tern_connect(addr, &o, &C));
    wait_workers(2);
    for (int i = 0; i < 2; i++) {
        execs[i] = child_of(nannies[i]);
        cr_assert_gt(execs[i], 0);
    }
}

static const char *A[] = { "w0", NULL }, *B[] = { "w1", NULL };

/* x = random on A; y = x * ALPHA on B (x moves A -> B); z = x + y on A (y moves B -> A);
 * everything fetched by the client and checked against local_random. shm: whether the
 * shortcut is expected. Then A's executor is killed while B holds its mapping of x: B still
 * computes from it (w = x * 0.5 on B, fetched and checked), and the client fetches x from B. */
static void run_cluster(bool shm)
{
    pid_t nannies[2], execs[2];
    start_two(nannies, execs);
    double *ref = local_random(LEN, SEED);
    tern_submit_opts on_a = { .workers = A }, on_b = { .workers = B };
    tern_future *x = submit("arrays:random", tern_list_of(tern_int(LEN), tern_int(SEED)), &on_a);
    tern_future *y =
        submit("arrays:scale", tern_list_of(tern_future_ref(x), tern_double(ALPHA)), &on_b);
    tern_future *z =
        submit("arrays:add", tern_list_of(tern_future_ref(x), tern_future_ref(y)), &on_a);
    cr_assert_eq(check_result(z, ref, ALPHA, true), MAPPED(shm), "z's bytes: mapped %s",
                 MAPPED(shm) ? "not" : "when they should be copied");
    cr_assert_eq(check_result(y, ref, ALPHA, false), MAPPED(shm));
    cr_assert_eq(check_result(x, ref, 1, false), MAPPED(shm));
    /* x and y are 8 MiB worker results: lent from their own buffers, or under ASan sealed
     * copies; B and A map them either way */
    cr_assert_eq(lent_memfd(execs[0]), LENT(shm), "A lent x");
    cr_assert_eq(lent_memfd(execs[1]), LENT(shm), "B lent y");
    cr_assert_eq(maps_memfd(execs[1], "r--p", "/memfd:tern"), MAPPED(shm), "B's mapping of x");
    cr_assert_eq(maps_memfd(execs[0], "r--p", "/memfd:tern"), MAPPED(shm), "A's mapping of y");
#ifndef SENT_COPIED
    cr_assert_not(maps_memfd(execs[0], NULL, "/memfd:tern:"), "a sealed copy of x made on A");
#endif
    if (!shm)
        for (int i = 0; i < 2; i++)
            cr_assert_not(maps_memfd(execs[i], NULL, "/memfd:tern"),
                          "a memfd mapping with TERN_NO_SHM=1");

    /* A goes away; B keeps x in its store: its mapping of A's buffer (or, under ASan, of A's
     * sealed copy), whose pages outlive A */
    kill9(execs[0]);
    tern_future *w =
        submit("arrays:scale", tern_list_of(tern_future_ref(x), tern_double(0.5)), &on_b);
    check_result(w, ref, 0.5, false);
    cr_assert_eq(maps_memfd(execs[1], "r--p", "/memfd:tern"), MAPPED(shm),
                 "B's mapping of x, after A died");
    /* the client's future still names only A as x's holder; once that fetch fails, the client
     * asks the scheduler, which knows of B's copy */
    double t0 = now_ms();
    cr_assert_eq(check_result(x, ref, 1, false), MAPPED(shm), "x from B's copy");
    cr_assert_lt(now_ms() - t0, T, "fetching x from B took too long");
    tern_future_release(x);
    tern_future_release(y);
    tern_future_release(z);
    tern_future_release(w);
    free(ref);
    down_procs();
}

LTest(transfer, large_arrays_move_through_memfds, .init = make_tmpdir, .fini = cleanup_procs)
{
    unsetenv("TERN_NO_SHM");
    run_cluster(true);
}

LTest(transfer, tern_no_shm_moves_the_same_bytes_through_the_socket, .init = make_tmpdir,
      .fini = cleanup_procs)
{
    setenv("TERN_NO_SHM", "1", 1); /* the client and, inherited, the daemons */
    run_cluster(false);
    unsetenv("TERN_NO_SHM");
}

/* ---- the receiver's fallback, against a hand-made data server ----------------------- */

typedef struct fake {
    nng_socket sock;
    pthread_t thread;
    tern_value *value; /* the array served as bytes */
    int bad;           /* which bad descriptor to send: see serve_fake */
    int requests, with_host;
    int unpins; /* atomic: the test waits for it */
    terni_shm_file memfd;
} fake;

/* Answers gets: with a host identity, a descriptor that cannot map; without, the bytes. */
static void *serve_fake(void *arg)
{
    fake *f = arg;
    for (;;) {
        nng_msg *m;
        if (nng_recvmsg(f->sock, &m, 0) != 0)
            return NULL;
        tern_value *req = NULL, *out = tern_map_new(), *values = tern_map_new();
        char err[256];
        if (terni_msg_decode(m, &req, err, sizeof(err)) != TERN_OK)
            req = NULL; /* counted, answered with nothing: the test then fails */
        f->requests++;
        const char *key = "k";
        if (!strcmp(terni_op_name(req), "unpin")) { /* after a lent descriptor */
            __atomic_fetch_add(&f->unpins, 1, __ATOMIC_SEQ_CST);
            terni_set(out, "held", tern_list_of(tern_text(key)));
        } else if (terni_get_text(req, "host") && f->memfd.lent) { /* a good, lent one */
            f->with_host++;
            tern_value *shm = tern_map_new();
            tern_map_set(shm, key, terni_shm_descriptor(&f->memfd, f->value));
            terni_set(out, "shm", shm);
        } else if (terni_get_text(req, "host")) {
            f->with_host++;
            tern_value *d = terni_shm_descriptor(&f->memfd, f->value), *shm = tern_map_new();
            if (f->bad == 0) { /* the fd closed: another number */
                tern_map_set(d, "fd", tern_int(999999));
            } else if (f->bad == 1) { /* not an array descriptor at all */
                tern_value_unref(d);
                d = tern_text("junk");
            } else { /* a process that is not there */
                tern_map_set(d, "pid", tern_int(INT32_MAX));
            }
            tern_map_set(shm, key, d);
            terni_set(out, "shm", shm);
        } else {
            tern_map_set(values, key, tern_value_ref(f->value));
        }
        if (strcmp(terni_op_name(req), "unpin") != 0)
            terni_set(out, "values", values);
        else
            tern_value_unref(values);
        nng_msg *reply = NULL;
        int rc = terni_msg_encode(out, &reply);
        tern_value_unref(out);
        tern_value_unref(req);
        if (rc == TERN_OK && nng_sendmsg(f->sock, reply, 0) != 0)
            nng_msg_free(reply);
    }
}

/* Exports f->value (set by the caller) and starts serve_fake on a scratch ipc address, url. */
static void fake_start(fake *f, char url[256])
{
    cr_assert_not_null(f->value);
    cr_assert_eq(terni_shm_export(f->value, "fake", &f->memfd), TERN_OK);
    snprintf(url, 256, "ipc://%s", scratch("fake.ipc"));
    cr_assert_eq(nng_rep0_open(&f->sock), 0);
    cr_assert_eq(nng_listen(f->sock, url, NULL, 0), 0);
    pthread_create(&f->thread, NULL, serve_fake, f);
}

/* Gets key "k" from url through p, as a worker would: the values map. */
static tern_value *peers_get_k(terni_peers *p, const char *url)
{
    tern_value *keys = tern_list_of(tern_text("k")), *values = NULL;
    char err[512] = "";
    cr_assert_eq(terni_peers_get(p, url, keys, T, &values, err, sizeof(err)), TERN_OK, "%s", err);
    tern_value_unref(keys);
    return values;
}

/* peers_get_k through a fresh terni_peers, freed again. */
static tern_value *fake_get(const char *url)
{
    terni_peers *p;
    OK(terni_peers_new(NULL, &p));
    tern_value *values = peers_get_k(p, url);
    terni_peers_free(p);
    return values;
}

static void fake_stop(fake *f)
{
    nng_close(f->sock);
    pthread_join(f->thread, NULL);
    terni_shm_file_close(&f->memfd);
    tern_value_unref(f->value);
}

LTest(transfer, a_descriptor_that_does_not_map_means_bytes, .init = make_tmpdir,
      .fini = remove_tmpdir)
{
    unsetenv("TERN_NO_SHM");
    double *ref = local_random(LEN, SEED);
    for (int bad = 0; bad < 3; bad++) {
        fake f = { .bad = bad, .value = tern_f64_array(ref, LEN) };
        char url[256];
        fake_start(&f, url);
        tern_value *values = fake_get(url);
        const tern_value *got;
        cr_assert_eq(tern_map_get(values, "k", &got), TERN_OK);
        cr_assert(tern_value_equal(got, f.value), "bad descriptor %d: other bytes", bad);
        const double *d;
        size_t n;
        cr_assert_eq(tern_value_get_f64_array(got, &d, &n), TERN_OK);
        cr_assert_not(in_memfd(d));
        cr_assert_eq(f.requests, 2, "bad descriptor %d: %d requests", bad, f.requests);
        cr_assert_eq(f.with_host, 1);
        tern_value_unref(values);
        fake_stop(&f);
    }
    free(ref);
}

/* A lent array is mapped, not copied, and unpinned once the receiver's last reference to it
 * goes, without waiting for the sender's answer. If the receiver's connection closed first,
 * no unpin is sent: the sender let go of the pin when the connection went (and forsook the
 * buffer, below), and the mapping stays valid. */
LTest(transfer, a_lent_array_is_mapped_and_unpinned_when_released, .init = make_tmpdir,
      .fini = remove_tmpdir)
{
#ifdef SENT_COPIED
    cr_skip("arrays stay on the heap under AddressSanitizer (bigbuf.h): nothing is lent");
#endif
    unsetenv("TERN_NO_SHM");
    terni_bigbuf_use_memfd(); /* this process's large arrays in memfds, as a worker's */
    double *ref = local_random(LEN, SEED);
    for (int close_first = 0; close_first < 2; close_first++) {
        fake f = { .value = tern_f64_array(ref, LEN) };
        char url[256];
        fake_start(&f, url);
        cr_assert(f.memfd.lent, "the test's array is not memfd-backed");
        terni_peers *p;
        OK(terni_peers_new(NULL, &p));
        tern_value *values = peers_get_k(p, url);
        const tern_value *got;
        const double *d;
        size_t n;
        cr_assert_eq(tern_map_get(values, "k", &got), TERN_OK);
        cr_assert(tern_value_equal(got, f.value), "other bytes");
        cr_assert_eq(tern_value_get_f64_array(got, &d, &n), TERN_OK);
        cr_assert(tern_value_is_borrowed(got) && in_memfd(d),
                  "a lent array was copied instead of mapped");
        nap_ms(20);
        cr_assert_eq(__atomic_load_n(&f.unpins, __ATOMIC_SEQ_CST), 0, "unpinned while mapped");
        if (close_first)
            terni_peers_free(p);
        tern_value_unref(values);
        double t0 = now_ms();
        if (!close_first) {
            while (__atomic_load_n(&f.unpins, __ATOMIC_SEQ_CST) < 1) {
                cr_assert_lt(now_ms() - t0, T, "no unpin after the last reference went");
                nap_ms(2);
            }
            terni_peers_free(p);
        } else {
            nap_ms(50);
        }
        fake_stop(&f);
        cr_assert_eq(f.unpins, close_first ? 0 : 1, "close first %d: %d unpins", close_first,
                     f.unpins);
        cr_assert_eq(f.requests, close_first ? 1 : 2, "close first %d: %d requests", close_first,
                     f.requests);
        cr_assert_eq(f.with_host, 1);
    }
    free(ref);
}

/* ---- the holder's pins, on a real worker -------------------------------------------- */

/* The data-server address of worker `name` (tern_status_info), into buf. */
static void worker_address(const char *name, char *buf, size_t len)
{
    tern_value *st = NULL;
    OK(tern_status_info(C, &st));
    const tern_value *ws, *w;
    cr_assert_eq(tern_map_get(st, "workers", &ws), TERN_OK);
    buf[0] = '\0';
    for (size_t i = 0; tern_list_get(ws, i, &w) == TERN_OK; i++)
        if (!strcmp(terni_get_text(w, "name"), name))
            snprintf(buf, len, "%s", terni_get_text(w, "address"));
    tern_value_unref(st);
    cr_assert(buf[0], "no worker %s", name);
}

/* A get of key from the worker at addr with this host's identity: the inode of the memfd it
 * lends (the key must come lent). */
static int64_t lent_ino(terni_peers *p, const char *addr, const char *key)
{
    tern_value *req = terni_op("get"), *reply = NULL;
    cr_assert(terni_set(req, "keys", tern_list_of(tern_text(key))) &&
              terni_set_text(req, "host", terni_shm_host()));
    char err[512] = "";
    OK(terni_peers_request(p, addr, req, T, &reply, err, sizeof(err)));
    const tern_value *shm = terni_get(reply, "shm"), *d, *flag;
    bool lent = false;
    int64_t ino = -1;
    cr_assert_eq(tern_map_get(shm, key, &d), TERN_OK, "%s did not come as a descriptor", key);
    cr_assert(tern_map_get(d, "lent", &flag) == TERN_OK &&
                  tern_value_get_bool(flag, &lent) == TERN_OK && lent,
              "%s was not lent", key);
    cr_assert(terni_get_int(d, "ino", &ino));
    tern_value_unref(reply);
    tern_value_unref(req);
    return ino;
}

/* unpin key: whether the worker held a pin of it for this connection. */
static bool unpin_held(terni_peers *p, const char *addr, const char *key)
{
    tern_value *req = terni_op("unpin"), *reply = NULL;
    cr_assert(terni_set(req, "keys", tern_list_of(tern_text(key))));
    char err[512] = "";
    OK(terni_peers_request(p, addr, req, T, &reply, err, sizeof(err)));
    bool held = tern_list_len(terni_get(reply, "held")) == 1;
    tern_value_unref(reply);
    tern_value_unref(req);
    return held;
}

/* An 8 MiB random array on A, finished. */
static tern_future *random_on_a(void)
{
    tern_submit_opts on_a = { .impure = true, .workers = A };
    tern_future *x = submit("arrays:random", tern_list_of(tern_int(LEN)), &on_a);
    tern_value *v = NULL;
    OK(tern_result(x, T, &v)); /* fetched through the client's own connection */
    tern_value_unref(v);
    return x;
}

/* Waits until the workers hold no key. */
static void wait_no_keys(void)
{
    double t0 = now_ms();
    while (cluster_load(C).keys > 0) {
        cr_assert_lt(now_ms() - t0, T, "the workers still hold keys");
        nap_ms(5);
    }
}

/* Two workers with the same-host shortcut on; addr gets A's data-server address. */
static void start_two_lending(char *addr, size_t len)
{
    unsetenv("TERN_NO_SHM");
    pid_t nannies[2], execs[2];
    start_two(nannies, execs);
    worker_address("w0", addr, len);
}

LTest(transfer, a_lent_buffer_is_not_reused_until_its_reader_unpins_it, .init = make_tmpdir,
      .fini = cleanup_procs)
{
#ifdef SENT_COPIED
    cr_skip("arrays stay on the heap under AddressSanitizer (bigbuf.h): nothing is lent");
#endif
    char addr[256];
    start_two_lending(addr, sizeof(addr));
    terni_peers *p;
    OK(terni_peers_new(NULL, &p));
    /* x lent to us and pinned; its key then dropped on A */
    tern_future *x = random_on_a();
    char xkey[256];
    snprintf(xkey, sizeof(xkey), "%s", tern_future_key(x));
    int64_t xino = lent_ino(p, addr, xkey);
    tern_future_release(x);
    wait_no_keys();
    /* the pin keeps x's buffer from A's cache: y gets another */
    tern_future *y = random_on_a();
    int64_t yino = lent_ino(p, addr, tern_future_key(y));
    cr_assert_neq(yino, xino, "A reused a buffer that was lent and still pinned");
    cr_assert(unpin_held(p, addr, tern_future_key(y)));
    /* unpinned, x's buffer goes back to the cache, and the next array of its size gets it */
    cr_assert(unpin_held(p, addr, xkey), "the pin of x was not held");
    cr_assert_not(unpin_held(p, addr, xkey), "x unpinned twice");
    tern_future *z = random_on_a();
    cr_assert_eq(lent_ino(p, addr, tern_future_key(z)), xino,
                 "x's buffer was not reused after its unpin");
    cr_assert(unpin_held(p, addr, tern_future_key(z)));
    tern_future_release(y);
    tern_future_release(z);
    terni_peers_free(p);
    down_procs();
}

/* A reader maps a lent array and then closes its connection without unpinning: the worker
 * forsakes the buffer, so the next array of its size gets another one, and the reader's
 * mapping keeps the values it was lent. */
LTest(transfer, a_buffer_lent_to_a_reader_that_went_is_never_reused, .init = make_tmpdir,
      .fini = cleanup_procs)
{
#ifdef SENT_COPIED
    cr_skip("arrays stay on the heap under AddressSanitizer (bigbuf.h): nothing is lent");
#endif
    char addr[256];
    start_two_lending(addr, sizeof(addr));
    terni_peers *p, *q;
    OK(terni_peers_new(NULL, &p));
    OK(terni_peers_new(NULL, &q));
    tern_future *x = random_on_a();
    char xkey[256];
    snprintf(xkey, sizeof(xkey), "%s", tern_future_key(x));
    int64_t xino = lent_ino(q, addr, xkey);
    cr_assert(unpin_held(q, addr, xkey));
    /* p maps x; then x's key goes on A, and p's connection with it */
    tern_value *keys = tern_list_of(tern_text(xkey)), *values = NULL;
    char err[512] = "";
    OK(terni_peers_get(p, addr, keys, T, &values, err, sizeof(err)));
    const tern_value *got;
    const double *d;
    size_t n;
    cr_assert_eq(tern_map_get(values, xkey, &got), TERN_OK);
    cr_assert(tern_value_is_borrowed(got), "x was not mapped");
    cr_assert_eq(tern_value_get_f64_array(got, &d, &n), TERN_OK);
    tern_value *copy = tern_f64_array(d, n);
    tern_future_release(x);
    wait_no_keys();
    terni_peers_free(p);
    nap_ms(100); /* A sees the connection go */
    for (int i = 0; i < 3; i++) {
        tern_future *y = random_on_a();
        cr_assert_neq(lent_ino(q, addr, tern_future_key(y)), xino,
                      "A reused a buffer lent to a reader that went");
        cr_assert(unpin_held(q, addr, tern_future_key(y)));
        tern_future_release(y);
        wait_no_keys();
    }
    cr_assert(tern_value_equal(got, copy), "the reader's mapping of x changed");
    tern_value_unref(copy);
    tern_value_unref(values);
    tern_value_unref(keys);
    terni_peers_free(q);
    down_procs();
}
