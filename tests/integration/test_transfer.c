/* Integration tests of the same-host shortcut (runtime/net/shm.c): on a real cluster of a
 * scheduler and two workers, large arrays move between the workers and to the client through
 * sealed memfds, with the same results as through the socket ($TERN_NO_SHM=1). The path taken
 * is read from the processes' /proc/<pid>/maps: an array received through a memfd is a
 * private read-only mapping of "/memfd:tern-array" (a worker's own buffer, sealed in place)
 * or "/memfd:tern:<key>" (a copy) in the receiver. A hand-made data server then
 * checks the receiver's fallback: a descriptor that does not map makes terni_peers_get ask
 * again for the bytes. */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../unit/leakcheck.h"
#include "harness.h"
#include "peers.h"
#include "shm.h"
#include "wire.h"

#define LEN ((size_t)1 << 20) /* 8 MiB of doubles */

/* How a worker's 8 MiB result reaches a receiver on this host: its own memfd-backed buffer,
 * sealed in place (bigbuf.c); under AddressSanitizer arrays stay on the heap (bigbuf.h), so a
 * copy in a memfd named after the key. */
#if defined(__SANITIZE_ADDRESS__)
#define SENT_COPIED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SENT_COPIED 1
#endif
#endif
#ifdef SENT_COPIED
#define SENT "/memfd:tern:"
#else
#define SENT "/memfd:tern-array"
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
 * permissions. A receiver maps a memfd private and read-only ("r--p"); a worker's own large
 * arrays are shared mappings of memfds named tern-array (bigbuf.c): "rw-s", or "r--s" once
 * sealed in place for a receiver. A copy made for a receiver is named tern:<key>. */
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
 * computes from it (w = x * 0.5 on B, fetched and checked). */
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
    cr_assert_eq(check_result(z, ref, ALPHA, true), shm, "z's bytes: shm path %s",
                 shm ? "not taken" : "taken");
    cr_assert_eq(check_result(y, ref, ALPHA, false), shm);
    cr_assert_eq(check_result(x, ref, 1, false), shm);
    /* x and y are 8 MiB worker results: sent as their own buffers, sealed in place (SENT) */
    cr_assert_eq(maps_memfd(execs[1], "r--p", SENT), shm, "B's mapping of x");
    cr_assert_eq(maps_memfd(execs[0], "r--p", SENT), shm, "A's mapping of y");
#ifndef SENT_COPIED
    cr_assert_eq(maps_memfd(execs[0], "r--s", SENT), shm, "x sealed in place on A");
    cr_assert_not(maps_memfd(execs[0], NULL, "/memfd:tern:"), "a copy of x was made on A");
#endif
    if (!shm)
        for (int i = 0; i < 2; i++)
            cr_assert_not(maps_memfd(execs[i], NULL, "/memfd:tern"),
                          "a memfd mapping with TERN_NO_SHM=1");

    /* A goes away (its memfds with it); B keeps x in its store, mapped when shm */
    kill9(execs[0]);
    tern_future *w =
        submit("arrays:scale", tern_list_of(tern_future_ref(x), tern_double(0.5)), &on_b);
    check_result(w, ref, 0.5, false);
    cr_assert_eq(maps_memfd(execs[1], "r--p", SENT), shm, "B's mapping of x, after A died");
    /* (not tern_result(x) again: the client's future still names only A as x's holder, and
     * the scheduler sends no news of B's copy, so that fetch ends in TERN_ELOST) */
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
        if (terni_get_text(req, "host")) {
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
        terni_set(out, "values", values);
        nng_msg *reply = NULL;
        int rc = terni_msg_encode(out, &reply);
        tern_value_unref(out);
        tern_value_unref(req);
        if (rc == TERN_OK && nng_sendmsg(f->sock, reply, 0) != 0)
            nng_msg_free(reply);
    }
}

LTest(transfer, a_descriptor_that_does_not_map_means_bytes, .init = make_tmpdir,
      .fini = remove_tmpdir)
{
    unsetenv("TERN_NO_SHM");
    double *ref = local_random(LEN, SEED);
    for (int bad = 0; bad < 3; bad++) {
        fake f = { .bad = bad, .value = tern_f64_array(ref, LEN) };
        cr_assert_not_null(f.value);
        cr_assert_eq(terni_shm_export(f.value, "fake", &f.memfd), TERN_OK);
        char url[256];
        snprintf(url, sizeof(url), "ipc://%s", scratch("fake.ipc"));
        cr_assert_eq(nng_rep0_open(&f.sock), 0);
        cr_assert_eq(nng_listen(f.sock, url, NULL, 0), 0);
        pthread_create(&f.thread, NULL, serve_fake, &f);
        terni_peers *p;
        OK(terni_peers_new(NULL, &p));
        tern_value *keys = tern_list_of(tern_text("k")), *values = NULL;
        char err[512] = "";
        cr_assert_eq(terni_peers_get(p, url, keys, T, &values, err, sizeof(err)), TERN_OK, "%s",
                     err);
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
        tern_value_unref(keys);
        terni_peers_free(p);
        nng_close(f.sock);
        pthread_join(f.thread, NULL);
        terni_shm_file_close(&f.memfd);
        tern_value_unref(f.value);
    }
    free(ref);
}
