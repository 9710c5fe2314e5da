/* tern-scheduler: parses options and runs the scheduler (scheduler.c). */
#include "scheduler.h"

#include <limits.h>
#include "daemon.h"
#include "http.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: tern-scheduler [--listen URL] [--address-file PATH] [--tls-cert PEM] "
               "[--workdir DIR]\n"
               "                      [--preload PLUGIN.so]... [--no-preload] [--quiet]\n"
               "                      [--http ADDR|none] [--log-level L] [--exit-with-parent]\n"
               "  --listen URL        tcp://host:port, ipc:///path (default tcp://127.0.0.1:7786;\n"
               "                      port 0 picks a free port)\n"
               "  --address-file P    write the bound address to P once listening\n"
               "  --tls-cert PEM      certificate and private key for a tls+tcp:// listen URL\n"
               "  --preload P         plugin to offer to every worker from the start (default:\n"
               "                      the built-in arrays plugin)\n"
               "  --http ADDR         dashboard, /api/status and /metrics on host:port (default\n"
               "                      " TERNI_HTTP_DEFAULT ", skipped with a warning if busy;\n"
               "                      port 0 picks one; \"none\" turns it off); also "
               "$TERN_HTTP\n" TERNI_LOG_USAGE "  --quiet             log warnings and errors only\n"
               "  --exit-with-parent  stop when the process that started this one exits\n"
               "environment: TERN_LOG_LEVEL, TERN_HTTP\n");
}

#ifndef TERN_PLUGIN_RELDIR /* set by cmake/TernInstall.cmake */
#define TERN_PLUGIN_RELDIR "../lib/tern/plugins"
#endif

/* <dir of this executable>/<rel>, or NULL. */
static char *beside_exe(const char *rel)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    size_t len = strlen(exe) + strlen(rel) + 2;
    char *out = malloc(len);
    if (out)
        snprintf(out, len, "%s/%s", exe, rel);
    return out;
}

int main(int argc, char **argv)
{
    terni_sched_opts o = { .listen = "tcp://127.0.0.1:7786" };
    const char *preload[64];
    size_t npre = 0;
    bool no_preload = false, exit_with_parent = false;
    if (!terni_log_init("tern-scheduler", NULL))
        fprintf(stderr, "tern-scheduler: ignoring TERN_LOG_LEVEL=%s (not a level)\n",
                getenv("TERN_LOG_LEVEL"));
    if (terni_log_take_args("tern-scheduler", &argc, argv) != 0)
        return 2;
    o.http = getenv("TERN_HTTP") && *getenv("TERN_HTTP") ? getenv("TERN_HTTP") : NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--listen") && has)
            o.listen = argv[++i];
        else if (!strcmp(a, "--address-file") && has)
            o.address_file = argv[++i];
        else if (!strcmp(a, "--tls-cert") && has)
            o.tls_cert = argv[++i];
        else if (!strcmp(a, "--workdir") && has)
            o.workdir = argv[++i];
        else if (!strcmp(a, "--preload") && has && npre < 63)
            preload[npre++] = argv[++i];
        else if (!strcmp(a, "--no-preload"))
            no_preload = true;
        else if (!strcmp(a, "--http") && has)
            o.http = argv[++i];
        else if (!strcmp(a, "--quiet"))
            o.quiet = true;
        else if (!strcmp(a, "--exit-with-parent"))
            exit_with_parent = true;
        else if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "tern-scheduler: unknown or incomplete option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (o.quiet)
        terni_log_quiet();
    char *builtin = NULL;
    if (!npre && !no_preload) {
        builtin = beside_exe(TERN_PLUGIN_RELDIR "/arrays.so"); /* installed */
        if (!builtin || access(builtin, R_OK) != 0) {
            free(builtin);
            builtin = beside_exe("../lib/tern/plugins/arrays.so"); /* build tree */
        }
        if (builtin && access(builtin, R_OK) == 0)
            preload[npre++] = builtin;
    }
    preload[npre] = NULL;
    o.preload = preload;
    char *inspector = beside_exe("tern-plugin-info");
    o.inspector = inspector ? inspector : "tern-plugin-info";
    char workdir[] = "/tmp/tern-scheduler-XXXXXX";
    if (!o.workdir) {
        if (!mkdtemp(workdir)) {
            perror("tern-scheduler: mkdtemp");
            return 1;
        }
        o.workdir = workdir;
    }

    terni_daemon_init(exit_with_parent);
    int rc = terni_sched_run(&o, &terni_stop);
    if (o.workdir == workdir)
        rmdir(workdir);
    free(builtin);
    free(inspector);
    return rc;
}
