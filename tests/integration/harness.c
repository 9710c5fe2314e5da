/* Shared by the integration tests: clusters of real processes, bounded waits, and small
 * helpers over the client API. See harness.h. */
#include "harness.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

tern_client *C;
char tmpdir[128];

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void nap_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- clusters --------------------------------------------------------------------- */

void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tern-it-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

void remove_tmpdir(void)
{
    if (!tmpdir[0])
        return;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    tmpdir[0] = '\0';
}

/* A path inside the test's scratch directory (static buffer per slot). */
const char *scratch(const char *name)
{
    static char paths[4][256];
    static int slot;
    char *p = paths[slot++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

void upload(tern_client *c, const char *path)
{
    tern_plugin_info info;
    OK(tern_upload_plugin(c, path, &info));
    cr_assert_gt(info.ntasks, 0);
}

void connect_local(int n, int threads)
{
    make_tmpdir();
    tern_connect_opts o = { .timeout_ms = T, .local_threads = threads };
    char addr[32];
    snprintf(addr, sizeof(addr), "local://%d", n);
    OK(tern_connect(addr, &o, &C));
    upload(C, PLUGIN("testplug"));
    upload(C, PLUGIN("clusterplug"));
}

void up1x4(void)
{
    connect_local(1, 4);
}

void up2(void)
{
    connect_local(2, 1);
}

static void *close_main(void *arg)
{
    tern_close(arg);
    return NULL;
}

bool close_bounded(tern_client *c)
{
    pthread_t t;
    if (!c)
        return true;
    if (pthread_create(&t, NULL, close_main, c) != 0) {
        tern_close(c);
        return true;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += CLOSE_BOUND_S;
    if (pthread_timedjoin_np(t, NULL, &ts) == 0)
        return true;
    pthread_detach(t);
    return false;
}

/* Stops the cluster at the end of a test (so the leak check covers tern_close). */
void down(void)
{
    tern_client *c = C;
    C = NULL;
    bool closed = close_bounded(c);
    remove_tmpdir();
    cr_assert(closed, "tern_close did not return within %d s", CLOSE_BOUND_S);
}

/* .fini: the same for a test that an assertion ended early. */
void cleanup(void)
{
    tern_client *c = C;
    C = NULL;
    close_bounded(c);
    remove_tmpdir();
}

/* ---- helpers ---------------------------------------------------------------------- */

tern_future *submit(const char *task, tern_value *args, const tern_submit_opts *o)
{
    tern_future *f = NULL;
    OK(tern_submit(C, task, args, o, &f));
    cr_assert_not_null(f);
    return f;
}

int64_t int_of(tern_future *f)
{
    tern_value *v = NULL;
    OK(tern_result(f, T, &v));
    int64_t i = 0;
    int rc = tern_value_get_int(v, &i);
    char *s = tern_value_to_string(v, 0);
    tern_value_unref(v);
    cr_assert_eq(rc, TERN_OK, "%s is not an int: %s", tern_future_key(f), s);
    free(s);
    return i;
}

bool list_has_text(const tern_value *l, const char *s)
{
    const tern_value *item;
    const char *t;
    for (size_t i = 0; tern_list_get(l, i, &item) == TERN_OK; i++)
        if (tern_value_get_text(item, &t, NULL) == TERN_OK && !strcmp(t, s))
            return true;
    return false;
}

/* who_has for one future: *out is its list of worker names (borrowed from *map). */
tern_value *who_has(tern_client *c, tern_future *f, const tern_value **names)
{
    tern_value *m = NULL;
    OK(tern_who_has(c, &f, 1, &m));
    OK(tern_map_get(m, tern_future_key(f), names));
    return m;
}

int64_t map_int(const tern_value *m, const char *key)
{
    const tern_value *v;
    int64_t i = -1;
    cr_assert_eq(tern_map_get(m, key, &v), TERN_OK, "no \"%s\" in the status", key);
    cr_assert_eq(tern_value_get_int(v, &i), TERN_OK, "\"%s\" is not an int", key);
    return i;
}

int64_t state_count(const char *state)
{
    tern_value *st = NULL;
    OK(tern_status_info(C, &st));
    const tern_value *tasks;
    cr_assert_eq(tern_map_get(st, "tasks", &tasks), TERN_OK);
    int64_t n = map_int(tasks, state);
    tern_value_unref(st);
    return n;
}

load cluster_load(tern_client *c)
{
    tern_value *st = NULL;
    OK(tern_status_info(c, &st));
    load l = { 0, 0, 0, map_int(st, "keys_in_memory") };
    const tern_value *ws, *w;
    cr_assert_eq(tern_map_get(st, "workers", &ws), TERN_OK);
    for (size_t i = 0; tern_list_get(ws, i, &w) == TERN_OK; i++) {
        l.keys += map_int(w, "keys");
        l.bytes += map_int(w, "bytes");
        l.workers++;
    }
    tern_value_unref(st);
    return l;
}

static pid_t procs[32];
static size_t nprocs;

pid_t spawn(char *const argv[])
{
    pid_t pid;
    int rv = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
    cr_assert_eq(rv, 0, "cannot start %s: %s", argv[0], strerror(rv));
    procs[nprocs++] = pid;
    return pid;
}

void stop_procs(void)
{
    for (size_t i = nprocs; i-- > 0;)
        kill(procs[i], SIGTERM);
    for (size_t i = 0; i < nprocs; i++) {
        int status;
        double t0 = now_ms();
        while (waitpid(procs[i], &status, WNOHANG) == 0) {
            if (now_ms() - t0 > 3000) {
                kill(procs[i], SIGKILL);
                waitpid(procs[i], &status, 0);
                break;
            }
            nap_ms(5);
        }
    }
    nprocs = 0;
}

void down_procs(void)
{
    tern_client *c = C;
    C = NULL;
    bool closed = close_bounded(c);
    stop_procs();
    remove_tmpdir();
    cr_assert(closed, "tern_close did not return within %d s", CLOSE_BOUND_S);
}

void cleanup_procs(void)
{
    tern_client *c = C;
    C = NULL;
    close_bounded(c);
    stop_procs();
    remove_tmpdir();
}

void start_worker(const char *addr, const char *name)
{
    start_worker_with(addr, name, NULL);
}

void wait_workers(int64_t n)
{
    double t0 = now_ms();
    load l;
    do {
        l = cluster_load(C);
        if (l.workers == n)
            return;
        nap_ms(10);
    } while (now_ms() - t0 < T);
    cr_assert_fail("%lld workers registered, not %lld", (long long)l.workers, (long long)n);
}

void kill9(pid_t pid)
{
    kill(pid, SIGKILL);
    for (size_t i = 0; i < nprocs; i++)
        if (procs[i] == pid) {
            waitpid(pid, NULL, 0);
            procs[i] = procs[--nprocs];
            break;
        }
}

pid_t child_of(pid_t parent)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)parent, (int)parent);
    FILE *f = fopen(path, "r");
    int pid = -1;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = -1;
        fclose(f);
    }
    return (pid_t)pid;
}

pid_t wait_child_of(pid_t parent, pid_t not_this)
{
    double t0 = now_ms();
    do {
        pid_t c = child_of(parent);
        if (c > 0 && c != not_this)
            return c;
        nap_ms(5);
    } while (now_ms() - t0 < T);
    cr_assert_fail("process %d started no child (other than %d)", (int)parent, (int)not_this);
    return -1;
}

const char *test_bin(const char *name)
{
    static char paths[4][512];
    static int slot;
    const char *dir = getenv("TERN_TEST_BIN_DIR");
    char *p = paths[slot++ % 4];
    snprintf(p, 512, "%s/%s", dir && *dir ? dir : TERN_TEST_BIN_DIR, name);
    return p;
}

bool sanitized_daemons(void)
{
    FILE *f = fopen(test_bin("tern-worker"), "rb");
    if (!f)
        return false;
    /* the runtime's entry point is in the dynamic symbol table's strings of such a binary */
    static const char *const marks[] = { "__asan_init", "__tsan_init" };
    char buf[1 << 16];
    size_t keep = 0, got;
    bool found = false;
    while (!found && (got = fread(buf + keep, 1, sizeof(buf) - keep, f)) > 0) {
        size_t len = keep + got;
        for (size_t m = 0; !found && m < 2; m++)
            found = memmem(buf, len, marks[m], strlen(marks[m])) != NULL;
        keep = len < 16 ? len : 16; /* a mark split between two reads */
        memmove(buf, buf + len - keep, keep);
    }
    fclose(f);
    return found;
}

pid_t start_scheduler(const char *listen, const char *const *extra, char *addr, size_t addrlen)
{
    char addrfile[256];
    snprintf(addrfile, sizeof(addrfile), "%s/address-%zu", tmpdir, nprocs);
    char *argv[32] = { (char *)test_bin("tern-scheduler"),
                       "--listen",
                       (char *)listen,
                       "--address-file",
                       addrfile,
                       "--exit-with-parent",
                       "--quiet" };
    int n = 7;
    bool http = false;
    for (; extra && *extra && n < 29; extra++) {
        http |= !strcmp(*extra, "--http");
        argv[n++] = (char *)*extra;
    }
    /* No dashboard unless the test asks for one: tests run in parallel, and schedulers on the
     * default port 7787 would race for it (the losers only warn, but the port is not theirs). */
    if (!http) {
        argv[n++] = "--http";
        argv[n++] = "none";
    }
    argv[n] = NULL;
    pid_t pid = spawn(argv);
    addr[0] = '\0';
    double t0 = now_ms();
    while (!addr[0] && now_ms() - t0 < T) {
        FILE *f = fopen(addrfile, "r");
        if (f) {
            if (fgets(addr, (int)addrlen, f))
                addr[strcspn(addr, "\n")] = '\0';
            fclose(f);
        }
        if (!addr[0])
            nap_ms(5);
    }
    cr_assert(addr[0], "the scheduler wrote no address");
    unlink(addrfile);
    return pid;
}

pid_t start_worker_with(const char *addr, const char *name, const char *const *extra)
{
    char workdir[256];
    snprintf(workdir, sizeof(workdir), "%s/%s", tmpdir, name);
    char *argv[32] = { (char *)test_bin("tern-worker"),
                       "--scheduler",
                       (char *)addr,
                       "--name",
                       (char *)name,
                       "--workdir",
                       workdir,
                       "--exit-with-parent",
                       "--quiet" };
    int n = 9;
    for (; extra && *extra && n < 31; extra++)
        argv[n++] = (char *)*extra;
    argv[n] = NULL;
    return spawn(argv);
}
