/* Checking an uploaded plugin without running its code in the scheduler.
 *
 * Design notes: dlopen runs a plugin's constructors, and a plugin is arbitrary user code, so
 * the scheduler never dlopens one. It writes the bytes to a file and runs
 * `tern-plugin-info --describe FILE` (the worker's own loader, in a child process) to learn
 * the plugin's name, version and tasks and whether it loads at all. A crash or hang of the
 * child is an upload error, not a scheduler crash; a child that runs too long is killed. */
#include "runtime/scheduler/scheduler.h"

#include "sdk/src/utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tern/error.h>

extern char **environ;

#define INSPECT_TIMEOUT_MS 10000

static int write_file(const char *path, const void *bytes, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, (const char *)bytes + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    close(fd);
    return done == len ? 0 : -1;
}

int terni_inspect_plugin(const char *inspector, const char *workdir, const void *bytes, size_t len,
                         const char *id, char **name, char **version, char **tasks, char *msg,
                         size_t msglen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/upload-%.16s-%d.so", workdir, id, (int)getpid());
    if (write_file(path, bytes, len) != 0) {
        snprintf(msg, msglen, "scheduler cannot write %s: %s", path, strerror(errno));
        return TERN_EIO;
    }
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        unlink(path);
        snprintf(msg, msglen, "scheduler cannot create a pipe: %s", strerror(errno));
        return TERN_EIO;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    /* The answer is on stdout; what plugin constructors print is not the scheduler's log. */
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    char *argv[] = { (char *)inspector, "--describe", path, NULL };
    pid_t pid;
    int rv = posix_spawn(&pid, inspector, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rv != 0) {
        close(out[0]);
        unlink(path);
        snprintf(msg, msglen, "scheduler cannot run %s: %s", inspector, strerror(rv));
        return TERN_EIO;
    }
    char buf[8192];
    size_t got = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    bool timed_out = false;
    for (;;) {
        ssize_t r = read(out[0], buf + got, sizeof(buf) - 1 - got);
        if (r > 0) {
            got += (size_t)r;
            if (got == sizeof(buf) - 1)
                break;
            continue;
        }
        if (r == 0)
            break;
        if (errno != EAGAIN && errno != EINTR)
            break;
        struct timespec now, nap = { 0, 2 * 1000 * 1000 };
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >
            INSPECT_TIMEOUT_MS) {
            timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        nanosleep(&nap, NULL);
    }
    buf[got] = '\0';
    close(out[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    unlink(path);
    if (timed_out) {
        snprintf(msg, msglen, "loading the plugin took more than %d ms; its constructors hang",
                 INSPECT_TIMEOUT_MS);
        return TERN_EDLOPEN;
    }
    if (WIFSIGNALED(status)) {
        snprintf(msg, msglen,
                 "loading the plugin crashed the loader with signal %d (%s); "
                 "check its constructors",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
        return TERN_EDLOPEN;
    }
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
    char *f[4] = { 0 };
    char *save = NULL, *tok = strtok_r(buf, "\t", &save);
    for (int i = 0; tok && i < 4; i++, tok = strtok_r(NULL, "\t", &save))
        f[i] = tok;
    if (f[0] && !strcmp(f[0], "ok") && f[1] && f[2]) {
        /* The loader refuses such a plugin; an inspector of another version might not. */
        if (!terni_utf8_valid(f[1], strlen(f[1])) || !terni_utf8_valid(f[2], strlen(f[2])) ||
            (f[3] && !terni_utf8_valid(f[3], strlen(f[3])))) {
            snprintf(msg, msglen, "the plugin's name, version or task names are not UTF-8 text");
            return TERN_ENOTPLUGIN;
        }
        *name = strdup(f[1]);
        *version = strdup(f[2]);
        *tasks = strdup(f[3] ? f[3] : "");
        if (!*name || !*version || !*tasks) {
            free(*name), free(*version), free(*tasks);
            snprintf(msg, msglen, "out of memory");
            return TERN_ENOMEM;
        }
        return TERN_OK;
    }
    if (f[0] && !strcmp(f[0], "error") && f[1] && f[2]) {
        int code = atoi(f[1]);
        snprintf(msg, msglen, "%s", f[2]);
        return code > 0 && code < TERN_ERR_COUNT ? code : TERN_ENOTPLUGIN;
    }
    snprintf(msg, msglen, "the plugin inspector gave no answer (exit status %d)",
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return TERN_EIO;
}
