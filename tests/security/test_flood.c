/* Back-pressure: a client flooding the scheduler with submissions is slowed down, not
 * allowed to grow the scheduler's task table without bound, and still gets every result.
 *
 * A real tern-scheduler with --max-pending-tasks 100 on loopback, no worker at first, so
 * nothing finishes. The flooder submits 2000 tasks; a second client watches the status. The
 * scheduler must take the first 100 and hold the request carrying the rest (held_requests 1,
 * still 100 unfinished tasks half a second later: the other 1900 wait in the flooder's own
 * memory). Then a worker joins, and the flooder must get all 2000 results right. */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <tern/tern.h>

extern char **environ;

#define T   20000
#define CAP 100
#define N   2000

static pid_t procs[4];
static int nprocs;
static char dir[64];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void nap_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* $TERN_TEST_BIN_DIR (make tsan: the TSan-built daemons) or the build's bin directory. */
static char *bin_path(char *out, size_t len, const char *name)
{
    const char *d = getenv("TERN_TEST_BIN_DIR");
    snprintf(out, len, "%s/%s", d && *d ? d : TERN_TEST_BIN_DIR, name);
    return out;
}

static void spawn(char **argv)
{
    pid_t pid;
    int rv = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
    cr_assert_eq(rv, 0, "cannot start %s: %s", argv[0], strerror(rv));
    procs[nprocs++] = pid;
}

static void stop_all(void)
{
    for (int i = nprocs; i-- > 0;)
        kill(procs[i], SIGTERM);
    for (int i = 0; i < nprocs; i++) {
        double t0 = now_ms();
        int st;
        while (waitpid(procs[i], &st, WNOHANG) == 0) {
            if (now_ms() - t0 > 3000) {
                kill(procs[i], SIGKILL);
                waitpid(procs[i], &st, 0);
                break;
            }
            nap_ms(5);
        }
    }
    nprocs = 0;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static int64_t get_int(const tern_value *m, const char *k)
{
    const tern_value *v;
    int64_t i = -1;
    if (tern_map_get(m, k, &v) == TERN_OK)
        tern_value_get_int(v, &i);
    return i;
}

Test(flood, pending_limit_holds_a_flooding_client, .fini = stop_all, .timeout = 120)
{
    snprintf(dir, sizeof(dir), "/tmp/tern-flood-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char addrfile[128], addr[256] = "", wdir[128];
    snprintf(addrfile, sizeof(addrfile), "%s/address", dir);
    snprintf(wdir, sizeof(wdir), "%s/w", dir);
    char sched[512], worker[512];
    char *sargv[] = { bin_path(sched, sizeof(sched), "tern-scheduler"),
                      "--listen",
                      "tcp://127.0.0.1:0",
                      "--address-file",
                      addrfile,
                      "--max-pending-tasks",
                      "100",
                      "--http",
                      "none",
                      "--exit-with-parent",
                      "--quiet",
                      NULL };
    spawn(sargv);
    for (double t0 = now_ms(); !addr[0] && now_ms() - t0 < T; nap_ms(5)) {
        FILE *f = fopen(addrfile, "r");
        if (f) {
            if (fgets(addr, sizeof(addr), f))
                addr[strcspn(addr, "\n")] = '\0';
            fclose(f);
        }
    }
    cr_assert(addr[0], "no scheduler address");
    char *wargv[] = { bin_path(worker, sizeof(worker), "tern-worker"),
                      "--scheduler",
                      addr,
                      "--nthreads",
                      "2",
                      "--workdir",
                      wdir,
                      "--exit-with-parent",
                      "--quiet",
                      NULL };

    tern_connect_opts o = { .timeout_ms = T };
    tern_client *flooder, *watcher;
    cr_assert_eq(tern_connect(addr, &o, &flooder), TERN_OK, "%s", tern_client_errmsg(NULL));
    cr_assert_eq(tern_connect(addr, &o, &watcher), TERN_OK, "%s", tern_client_errmsg(NULL));
    cr_assert_eq(tern_upload_plugin(flooder, TERN_TEST_PLUGIN_DIR "/clusterplug.so", NULL), TERN_OK,
                 "%s", tern_client_errmsg(flooder));

    /* No worker yet: nothing finishes, so the flooder reaches its limit and stays there. */
    static tern_future *f[N];
    tern_submit_opts impure = { .impure = true };
    for (int i = 0; i < N; i++) {
        cr_assert_eq(
            tern_submit(flooder, "clusterplug:sleep_ms", tern_list_of(tern_int(1)), &impure, &f[i]),
            TERN_OK, "%s", tern_client_errmsg(flooder));
        if (i + 1 == CAP)
            nap_ms(200); /* the first CAP tasks reach the scheduler before the rest */
    }
    int64_t unfinished = 0, held = 0;
    for (int k = 0; k < 5; k++) { /* and stays there */
        nap_ms(100);
        tern_value *st = NULL;
        const tern_value *tasks = NULL;
        cr_assert_eq(tern_status_info(watcher, &st), TERN_OK);
        tern_map_get(st, "tasks", &tasks);
        unfinished =
            get_int(tasks, "waiting") + get_int(tasks, "no-worker") + get_int(tasks, "processing");
        held = get_int(st, "held_requests");
        tern_value_unref(st);
        cr_assert_eq(unfinished, CAP, "%lld unfinished tasks at the scheduler, limit %d",
                     (long long)unfinished, CAP);
        cr_assert_eq(held, 1, "%lld held requests", (long long)held);
    }
    /* A worker joins: the held submissions go through as tasks finish; every result arrives. */
    spawn(wargv);
    for (int i = 0; i < N; i++) {
        tern_value *v = NULL;
        int64_t ms = -1;
        cr_assert_eq(tern_result(f[i], 60000, &v), TERN_OK, "task %d: %s", i,
                     tern_client_errmsg(flooder));
        tern_value_get_int(v, &ms);
        cr_assert_eq(ms, 1);
        tern_value_unref(v);
        tern_future_release(f[i]);
    }
    tern_close(flooder);
    tern_close(watcher);
}
