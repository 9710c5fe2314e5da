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
 *    with the tasks that were running (see watchdog.h, "Slots").
 *  - Clean exits are announced. A plugin may call exit() with any status, 0 and ours
 *    included, so an exit status alone says nothing. Each executor gets the write end of a
 *    pipe (--nanny-fd N); right before it ends on its own it writes "exit N" there
 *    (terni_nanny_announce_exit). An exit whose status was announced is the executor's: 0
 *    (stopped), 2 (bad options) and TERNI_EXIT_FATAL (refused for good, or setup failed) end
 *    the nanny too, with status 0, 2 or 1; TERNI_EXIT_RESTART (a task timeout) restarts at
 *    once and blames no task. Any other end (an exit nobody announced, a signal, a
 *    sanitizer's report) is a crash: restarted with backoff, the running tasks blamed.
 *  - The executor gets PR_SET_PDEATHSIG and --exit-with-parent: a nanny killed with -9
 *    takes its executor with it.
 */
#include "runtime/util/log.h"
#include "runtime/worker/worker.h"

#include <errno.h>
#include <fcntl.h>
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

/* Starts the executor; *announce gets the read end of its announcement pipe. */
static pid_t start(char **argv, int argc, const char *crashed, int *announce)
{
    int p[2];
    char fd[16];
    char **args = calloc((size_t)argc + 5, sizeof(char *));
    if (!args || pipe2(p, O_CLOEXEC) != 0) {
        free(args);
        return -1;
    }
    snprintf(fd, sizeof(fd), "%d", p[1]);
    int n = 0;
    for (int i = 0; i < argc; i++)
        args[n++] = argv[i];
    args[n++] = "--nanny-fd";
    args[n++] = fd;
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
        fcntl(p[1], F_SETFD, 0); /* the write end, and only it, crosses exec */
        execv("/proc/self/exe", args);
        fprintf(stderr, "tern-worker: cannot start the executor: %s\n", strerror(errno));
        _exit(1);
    }
    free(args);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    fcntl(p[0], F_SETFL, O_NONBLOCK); /* a process the executor started may hold the write end */
    *announce = p[0];
    return pid;
}

/* The exit status the executor announced before it ended (consumes fd), or -1 if none. */
static int announced(int fd)
{
    char buf[32];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf) - 1)) < 0 && errno == EINTR)
        ;
    close(fd);
    int code = -1;
    if (n > 0) {
        buf[n] = '\0';
        if (sscanf(buf, "exit %d\n", &code) != 1)
            code = -1;
    }
    return code;
}

/* ---- the executor's side ---- */

static int announce_fd = -1;

void terni_nanny_attach(int fd)
{
    /* not inherited by the processes a plugin starts */
    if (fd > STDERR_FILENO && fcntl(fd, F_SETFD, FD_CLOEXEC) == 0)
        announce_fd = fd;
}

void terni_nanny_announce_exit(int status)
{
    if (announce_fd < 0)
        return;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "exit %d\n", status);
    while (write(announce_fd, buf, (size_t)n) < 0 && errno == EINTR)
        ;
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
        int announce = -1;
        pid_t pid = start(argv, argc, crashed, &announce);
        if (pid < 0) {
            terni_log(TERNI_LOG_ERROR, "cannot start the executor: %s", strerror(errno));
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
                close(announce);
                return 0;
            }
            usleep(20 * 1000);
        }
        int clean = announced(announce);
        if (WIFEXITED(status) && WEXITSTATUS(status) == clean) {
            if (clean == 0 || clean == 2)
                return clean;
            if (clean == TERNI_EXIT_FATAL)
                return 1;
            if (clean == TERNI_EXIT_RESTART) {
                if (!quiet)
                    terni_log(TERNI_LOG_WARN,
                              "executor %d ended a task past its timeout; starting a new one",
                              (int)pid);
                crashed = NULL;
                continue;
            }
            snprintf(why, sizeof(why), "exited with status %d", clean);
        } else if (WIFEXITED(status)) {
            snprintf(why, sizeof(why), "exited with status %d (not a clean shutdown)",
                     WEXITSTATUS(status));
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
