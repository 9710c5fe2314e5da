/* tern-scheduler: parses options and runs the scheduler (scheduler.c). */
#include "runtime/scheduler/scheduler.h"

#include <limits.h>
#include <malloc.h>
#include "runtime/util/daemon.h"
#include "runtime/scheduler/http.h"
#include "runtime/util/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(
        f, "usage: tern-scheduler [--listen URL] [--address-file PATH] [--tls-cert PEM] "
           "[--workdir DIR]\n"
           "                      [--tls-key PEM] [--tls-ca PEM] [--tls-verify-clients]\n"
           "                      [--token-file FILE] [--insecure] [--allow-upload yes|no|local]\n"
           "                      [--max-pending-tasks N]\n"
           "                      [--preload PLUGIN.so]... [--no-preload] [--quiet]\n"
           "                      [--heartbeat-ms N] [--death-timeout-ms N]\n"
           "                      [--allowed-failures N] [--http ADDR|none] [--log-level L]\n"
           "                      [--exit-with-parent]\n"
           "  --listen URL        tcp://host:port, ipc:///path (default tcp://127.0.0.1:7786;\n"
           "                      port 0 picks a free port)\n"
           "  --address-file P    write the bound address to P once listening\n"
           "  --tls-cert PEM      certificate (and key, unless --tls-key) for a tls+tcp:// URL\n"
           "  --tls-key PEM       private key of --tls-cert\n"
           "  --tls-ca PEM        with --tls-verify-clients: CA that signed client certificates\n"
           "  --tls-verify-clients  require every peer to present a certificate (mutual TLS)\n"
           "  --token-file FILE   cluster token (default $TERN_TOKEN_FILE); every client and\n"
           "                      worker must prove it (HMAC challenge; never sent)\n"
           "  --insecure          allow a non-loopback --listen without a token or client TLS,\n"
           "                      and a non-loopback --http (the dashboard has no login)\n"
           "  --allow-upload M    who may upload plugins: yes (default: any authenticated\n"
           "                      client), local (clients on this machine), no (--preload only)\n"
           "  --max-pending-tasks N  unfinished tasks one client may have before its further\n"
           "                      submissions wait (back-pressure; default 1000000)\n"
           "  --preload P         plugin to offer to every worker from the start (default:\n"
           "                      the built-in arrays plugin)\n"
           "  --heartbeat-ms N    how often workers send heartbeats (default 1000)\n"
           "  --death-timeout-ms N  a worker silent this long is declared dead and its\n"
           "                      work moves elsewhere (default 30000)\n"
           "  --allowed-failures N  a task running when N executors crashed errs with\n"
           "                      TERN_EKILLED instead of running again (default 3)\n"
           "  --http ADDR         dashboard, /api/status and /metrics on host:port (default\n"
           "                      " TERNI_HTTP_DEFAULT ", skipped with a warning if busy;\n"
           "                      port 0 picks one; \"none\" turns it off); also "
           "$TERN_HTTP\n" TERNI_LOG_USAGE "  --quiet             log warnings and errors only\n"
           "  --exit-with-parent  stop when the process that started this one exits\n"
           "environment: TERN_LOG_LEVEL, TERN_HTTP, TERN_TOKEN_FILE, TERN_TLS_CERT, TERN_TLS_KEY,\n"
           "TERN_TLS_CA\n");
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

/* The dashboard has no authentication (docs/security.md): it shows keys, task names and
 * worker addresses to whoever reaches it. Like the cluster port, it stays on loopback unless
 * --insecure says otherwise (then with a loud warning); ssh -L reaches it from elsewhere. */
static int http_policy(const char *http, bool insecure, char *err, size_t errlen)
{
    if (!http || !strcmp(http, "none") || !strcmp(http, "off"))
        return TERN_OK; /* off, or the loopback default */
    const char *hostport = strncmp(http, "http://", 7) ? http : http + 7;
    if (!strchr(hostport, ':'))
        return TERN_OK; /* not HOST:PORT: terni_http_start refuses it, naming the format */
    char url[512];
    snprintf(url, sizeof(url), "tcp://%s", hostport);
    size_t n = strlen(url);
    if (n && url[n - 1] == '/')
        url[n - 1] = '\0';
    if (terni_url_is_loopback(url))
        return TERN_OK;
    if (!insecure) {
        snprintf(err, errlen,
                 "refusing to serve the dashboard on %s: it has no login and shows the "
                 "cluster's tasks, keys and worker addresses to anyone who can reach it. Keep it "
                 "on loopback and use ssh -L 7787:127.0.0.1:7787 HOST, or give --insecure "
                 "(see docs/security.md)",
                 http);
        return TERN_EAUTH;
    }
    fprintf(stderr,
            "tern-scheduler: WARNING: --insecure: dashboard on %s WITHOUT AUTHENTICATION: "
            "anyone who can reach it sees the cluster's tasks, keys and workers\n",
            http);
    return TERN_OK;
}

int main(int argc, char **argv)
{
    terni_sched_opts o = { .listen = "tcp://127.0.0.1:7786",
                           .heartbeat_ms = 1000,
                           .death_timeout_ms = 30000,
                           .allowed_failures = 3 };
    const char *preload[64];
    size_t npre = 0;
    bool no_preload = false, exit_with_parent = false, insecure = false;
    const char *token_file = NULL;
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
        else if (!strcmp(a, "--tls-key") && has)
            o.tls_key = argv[++i];
        else if (!strcmp(a, "--tls-ca") && has)
            o.tls_ca = argv[++i];
        else if (!strcmp(a, "--tls-verify-clients"))
            o.tls_verify_clients = true;
        else if (!strcmp(a, "--token-file") && has)
            token_file = argv[++i];
        else if (!strcmp(a, "--insecure"))
            insecure = true;
        else if (!strcmp(a, "--allow-upload") && has) {
            const char *m = argv[++i];
            if (!strcmp(m, "yes"))
                o.allow_upload = TERNI_UPLOAD_YES;
            else if (!strcmp(m, "local"))
                o.allow_upload = TERNI_UPLOAD_LOCAL;
            else if (!strcmp(m, "no"))
                o.allow_upload = TERNI_UPLOAD_NO;
            else {
                fprintf(stderr, "tern-scheduler: --allow-upload takes yes, no or local, not %s\n",
                        m);
                return 2;
            }
        } else if (!strcmp(a, "--max-pending-tasks") && has) {
            char *end;
            long long n = strtoll(argv[++i], &end, 10);
            if (*end || n < 1) {
                fprintf(stderr, "tern-scheduler: --max-pending-tasks must be >= 1, not %s\n",
                        argv[i]);
                return 2;
            }
            o.max_pending = (size_t)n;
        } else if (!strcmp(a, "--workdir") && has)
            o.workdir = argv[++i];
        else if (!strcmp(a, "--preload") && has && npre < 63)
            preload[npre++] = argv[++i];
        else if (!strcmp(a, "--heartbeat-ms") && has) {
            if (!terni_int_option("tern-scheduler", a, argv[++i], 10, 3600000, &o.heartbeat_ms))
                return 2;
        } else if (!strcmp(a, "--death-timeout-ms") && has) {
            if (!terni_int_option("tern-scheduler", a, argv[++i], 50, 86400000,
                                  &o.death_timeout_ms))
                return 2;
        } else if (!strcmp(a, "--allowed-failures") && has) {
            if (!terni_int_option("tern-scheduler", a, argv[++i], 1, 1000, &o.allowed_failures))
                return 2;
        } else if (!strcmp(a, "--no-preload"))
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
    if (o.death_timeout_ms <= o.heartbeat_ms) {
        fprintf(stderr,
                "tern-scheduler: --death-timeout-ms (%d) must be longer than "
                "--heartbeat-ms (%d)\n",
                o.death_timeout_ms, o.heartbeat_ms);
        return 2;
    }
    char err[1024];
    if (terni_token_load(token_file, &o.token, err, sizeof(err)) != TERN_OK) {
        fprintf(stderr, "tern-scheduler: %s\n", err);
        return 2;
    }
    terni_sec sec = { .token = o.token, .tls_verify_clients = o.tls_verify_clients };
    if (terni_listen_policy("tern-scheduler", o.listen, &sec, insecure, err, sizeof(err)) !=
        TERN_OK) {
        fprintf(stderr, "tern-scheduler: %s\n", err);
        return 2;
    }
    if (http_policy(o.http, insecure, err, sizeof(err)) != TERN_OK) {
        fprintf(stderr, "tern-scheduler: %s\n", err);
        return 2;
    }
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
    /* A fixed mmap threshold. glibc raises it (up to 32 MB) each time a mapped block is freed,
     * after which the scheduler's large transient buffers (outboxes, decoded request batches)
     * come from the heap, between task records, and their pages stay resident when freed:
     * with a million tasks held, 566 bytes of RSS per task against 329 of heap in use; with
     * the threshold fixed at 128 KiB, 464 (tern-bench scale, same session). */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    int rc = terni_sched_run(&o, &terni_stop);
    if (o.workdir == workdir)
        rmdir(workdir);
    free(builtin);
    free(inspector);
    return rc;
}
