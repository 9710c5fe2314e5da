/* The nanny: tern-worker's supervising process.
 *
 * Design notes
 *  - The executor (the process that connects, loads plugins and runs tasks) is started with
 *    fork + exec of our own binary with --no-nanny: after fork only exec is safe, as nng and
 *    the plugins' threads do not survive a fork.
 *  - The nanny holds no sockets and runs no plugin code, so a task that segfaults, aborts,
 *    loops or eats all memory takes down only the executor. The nanny restarts it with
 *    backoff (100 ms doubling to 5 s; back to 100 ms after a run of 10 s) and tells the new
 *    one how the old one ended (--crashed WHY), which it reports to the scheduler together
 *    with the tasks that were running (see worker.c, "Crash forensics").
 *  - Exit statuses of the executor: 0 (stopped), 2 (bad options) and TERNI_EXIT_FATAL
 *    (refused for good, or setup failed) end the nanny too, with status 0, 2 or 1;
 *    TERNI_EXIT_RESTART (a task timeout) restarts at once; any other status (a plugin calling
 *    exit, a sanitizer's report) is a crash.
 *  - The executor gets PR_SET_PDEATHSIG and --exit-with-parent: a nanny killed with -9
 *    takes its executor with it.
 */
#include "log.h"
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static pid_t start(char **argv, int argc, const char *crashed)
{
    char **args = calloc((size_t)argc + 3, sizeof(char *));
    if (!args)
        return -1;
    int n = 0;
    for (int i = 0; i < argc; i++)
        args[n++] = argv[i];
    if (crashed) {
        args[n++] = "--crashed";
        args[n++] = (char *)crashed;
    }
    args[n] = NULL;
    pid_t self = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != self) /* the nanny died before prctl took effect */
            _exit(0);
        execv("/proc/self/exe", args);
        fprintf(stderr, "tern-worker: cannot start the executor: %s\n", strerror(errno));
        _exit(1);
    }
    free(args);
    return pid;
}

/* Stops the executor: SIGTERM, then SIGKILL after 5 s (a task stuck in plugin code). */
static void stop_child(pid_t pid)
{
    kill(pid, SIGTERM);
    for (int i = 0; i < 5000; i++) { /* 1 ms steps: a clean exit takes a few ms */
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int terni_nanny_run(char **argv, int argc, atomic_int *stop, bool quiet)
{
    char why[256];
    const char *crashed = NULL;
    int backoff = 100;
    while (!*stop) {
        double t0 = now_s();
        pid_t pid = start(argv, argc, crashed);
        if (pid < 0) {
            terni_log(TERNI_LOG_ERROR, "cannot fork the executor: %s", strerror(errno));
            return 1;
        }
        int status = 0;
        for (;;) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid)
                break;
            if (r < 0 && errno != EINTR) {
                status = 0;
                break;
            }
            if (*stop) {
                stop_child(pid);
                return 0;
            }
            usleep(20 * 1000);
        }
        if (WIFEXITED(status)) {
            int code = WEXITSTATUS(status);
            if (code == 0 || code == 2)
                return code;
            if (code == TERNI_EXIT_FATAL)
                return 1;
            if (code == TERNI_EXIT_RESTART) {
                if (!quiet)
                    terni_log(TERNI_LOG_WARN,
                              "executor %d ended a task past its timeout; starting a new one",
                              (int)pid);
                crashed = NULL;
                continue;
            }
            snprintf(why, sizeof(why), "exited with status %d", code);
        } else if (WIFSIGNALED(status)) {
            int sig = WTERMSIG(status);
            snprintf(why, sizeof(why), "was killed by signal %d (%s)", sig, strsignal(sig));
        } else {
            snprintf(why, sizeof(why), "ended");
        }
        crashed = why;
        if (now_s() - t0 > 10.0)
            backoff = 100;
        if (!quiet)
            terni_log(TERNI_LOG_WARN, "executor %d %s; restarting in %d ms", (int)pid, why,
                      backoff);
        for (int t = 0; t < backoff && !*stop; t += 20)
            usleep(20 * 1000);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    return 0;
}
