/* Shared by the integration tests (harness.c): clusters of real processes on loopback,
 * bounded waits, and small helpers over the client API that fail the running Criterion test
 * with a message naming the call. Test files set C (the client) and use tmpdir as scratch. */
#ifndef TERN_TEST_HARNESS_H
#define TERN_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <tern/tern.h>

#define T 20000 /* ms: the bound on every single wait */

#define PLUGIN(name) (TERN_TEST_PLUGIN_DIR "/" name ".so")

/* tern_close is given this long before a test calls it hung. */
#define CLOSE_BOUND_S 15

/* Asserts that a tern call succeeded, naming the code and the client's message otherwise. */
#define OK(expr)                                                                                   \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        cr_assert_eq(rc_, TERN_OK, "%s = %s: %s", #expr, tern_strerror_name(rc_),                  \
                     tern_client_errmsg(NULL));                                                    \
    } while (0)

/* Asserts a specific error code. */
#define ERR(code, expr)                                                                            \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        cr_assert_eq(rc_, (code), "%s = %s, expected %s (%s)", #expr, tern_strerror_name(rc_),     \
                     tern_strerror_name(code), tern_client_errmsg(NULL));                          \
    } while (0)

extern tern_client *C;
extern char tmpdir[128];

double now_ms(void);
void nap_ms(int ms);

/* Scratch directory of the test (tmpdir), and paths inside it (4 rotating static buffers). */
void make_tmpdir(void);
void remove_tmpdir(void);
const char *scratch(const char *name);
off_t file_size(const char *path);

/* Clusters: local://N with testplug and clusterplug uploaded (up1x4: 1 worker, 4 threads;
 * up2: 2 workers), stopped by down() at the end of a test or cleanup() in .fini. */
void upload(tern_client *c, const char *path);
void connect_local(int n, int threads);
void up1x4(void);
void up2(void);
/* tern_close with a watchdog: false if it did not return within CLOSE_BOUND_S. */
bool close_bounded(tern_client *c);
void down(void);
void cleanup(void);

/* Client helpers. */
tern_future *submit(const char *task, tern_value *args, const tern_submit_opts *o);
int64_t int_of(tern_future *f);
bool list_has_text(const tern_value *l, const char *s);
/* who_has for one future: *names is its list of worker names (borrowed from the result). */
tern_value *who_has(tern_client *c, tern_future *f, const tern_value **names);
int64_t map_int(const tern_value *m, const char *key);
/* The number of tasks in state ("erred", "memory", ...) in C's scheduler status. */
int64_t state_count(const char *state);

/* Totals over the workers of tern_status_info: keys, bytes, number of workers; and the
 * scheduler's keys_in_memory. */
typedef struct load {
    int64_t keys, bytes, workers, in_memory;
} load;
load cluster_load(tern_client *c);

/* Processes started by the test (up to 32), stopped by stop_procs (SIGTERM, then SIGKILL
 * after 3 s); down_procs/cleanup_procs also close C and remove tmpdir. */
pid_t spawn(char *const argv[]);
void stop_procs(void);
void down_procs(void);
void cleanup_procs(void);
/* kill -9, reaped at once when it is one of ours. */
void kill9(pid_t pid);
/* The first child of a process (a worker's executor under its nanny), or -1. */
pid_t child_of(pid_t parent);
/* Waits (bounded) until parent has a child other than not_this, and returns it. */
pid_t wait_child_of(pid_t parent, pid_t not_this);

/* The path of a tern program: $TERN_TEST_BIN_DIR (make tsan points it at the TSan-built
 * daemons) or else the build's bin directory. A static buffer per call (4 rotating). */
const char *test_bin(const char *name);
/* Whether the daemons test_bin names are built with AddressSanitizer or ThreadSanitizer (make asan,
 * make tsan): their allocators ignore mallopt and malloc_trim. */
bool sanitized_daemons(void);
/* tern-scheduler on listen (port 0 / unique ipc path) with extra options (NULL-terminated,
 * or NULL), and --http none unless extra has --http; addr receives the bound address. */
pid_t start_scheduler(const char *listen, const char *const *extra, char *addr, size_t addrlen);
/* tern-worker NAME with its workdir under tmpdir, --exit-with-parent --quiet, plus extra. */
void start_worker(const char *addr, const char *name);
pid_t start_worker_with(const char *addr, const char *name, const char *const *extra);
/* Waits (bounded) until the scheduler lists n workers. */
void wait_workers(int64_t n);

#endif
