/* tern-worker: parses options and runs a worker (worker.c). */
#include "runtime/worker/worker.h"

#include "runtime/util/daemon.h"
#include "runtime/util/log.h"
#include "sdk/src/support/rmtree.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tern-worker --scheduler URL [--nthreads N] [--name NAME] [--workdir DIR]\n"
            "                   [--listen URL] [--tls-ca PEM] [--tls-cert PEM] [--tls-key PEM]\n"
            "                   [--tls-verify-clients] [--token-file FILE] [--insecure]\n"
            "                   [--quiet] [--log-level L] [--no-nanny] [--exit-with-parent]\n"
            "  --scheduler URL  the scheduler (default: $TERN_SCHEDULER)\n"
            "  --nthreads N   executor threads (default 1)\n"
            "  --name NAME    unique worker name (default: HOST-PID)\n"
            "  --workdir DIR  where uploaded plugins are stored (default: a fresh temporary\n"
            "                 directory, removed at exit)\n"
            "  --tls-ca PEM   CA that signed the scheduler's and peers' tls+tcp:// certificates\n"
            "  --tls-cert PEM certificate (and key, unless --tls-key) for a tls+tcp:// --listen;\n"
            "                 also presented to servers that verify clients\n"
            "  --tls-key PEM  private key of --tls-cert\n"
            "  --tls-verify-clients  data server: require client certificates signed by --tls-ca\n"
            "  --token-file F cluster token (default $TERN_TOKEN_FILE): proven to the scheduler\n"
            "                 and peers, required from everyone fetching data here\n"
            "  --insecure     allow a non-loopback --listen without a token or client TLS\n"
            "  --listen URL   where peers fetch this worker's data (default\n"
            "                 tcp://127.0.0.1:0, a free port)\n"
            "  --log-level L  error, warn, info (default) or debug; also $TERN_LOG_LEVEL\n"
            "  --quiet        log warnings and errors only\n"
            "  --exit-with-parent  stop when the process that started this one exits\n"
            "  --no-nanny     run tasks in this process; by default a small supervising\n"
            "                 process (the nanny) runs them in a child it restarts after a\n"
            "                 crash and after a task timeout\n"
            "environment: TERN_SCHEDULER, TERN_LOG_LEVEL, TERN_TLS_CA\n");
}

static int run(int argc, char **argv)
{
    terni_worker_opts o = { .listen = "tcp://127.0.0.1:0",
                            .nthreads = 1,
                            .connect_timeout_ms = 10000 };
    bool exit_with_parent = false, nanny = true, insecure = false;
    const char *token_file = NULL;
    static char instance[320];
    if (!terni_log_init("tern-worker", instance))
        fprintf(stderr, "tern-worker: ignoring TERN_LOG_LEVEL=%s (not a level)\n",
                getenv("TERN_LOG_LEVEL"));
    if (terni_log_take_args("tern-worker", &argc, argv) != 0)
        return 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--scheduler") && has)
            o.scheduler = argv[++i];
        else if (!strcmp(a, "--nthreads") && has) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 1024) {
                fprintf(stderr, "tern-worker: --nthreads must be 1..1024, not %s\n", argv[i]);
                return 2;
            }
            o.nthreads = (int)n;
        } else if (!strcmp(a, "--name") && has)
            o.name = argv[++i];
        else if (!strcmp(a, "--workdir") && has)
            o.workdir = argv[++i];
        else if (!strcmp(a, "--listen") && has)
            o.listen = argv[++i];
        else if (!strcmp(a, "--tls-ca") && has)
            o.tls_ca = argv[++i];
        else if (!strcmp(a, "--tls-cert") && has)
            o.tls_cert = argv[++i];
        else if (!strcmp(a, "--tls-key") && has)
            o.tls_key = argv[++i];
        else if (!strcmp(a, "--tls-verify-clients"))
            o.tls_verify_clients = true;
        else if (!strcmp(a, "--token-file") && has)
            token_file = argv[++i];
        else if (!strcmp(a, "--insecure"))
            insecure = true;
        else if (!strcmp(a, "--quiet"))
            o.quiet = true;
        else if (!strcmp(a, "--exit-with-parent"))
            exit_with_parent = true;
        else if (!strcmp(a, "--no-nanny"))
            nanny = false;
        else if (!strcmp(a, "--crashed") && has) /* from the nanny */
            o.crashed = argv[++i];
        else if (!strcmp(a, "--nanny-fd") && has) /* from the nanny */
            terni_nanny_attach(atoi(argv[++i]));
        else if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "tern-worker: unknown or incomplete option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o.scheduler && getenv("TERN_SCHEDULER") && *getenv("TERN_SCHEDULER"))
        o.scheduler = getenv("TERN_SCHEDULER");
    if (!o.scheduler) {
        fprintf(stderr, "tern-worker: --scheduler URL (or $TERN_SCHEDULER) is required\n");
        usage(stderr);
        return 2;
    }
    char err[1024];
    terni_sec sec = { .tls_ca = o.tls_ca, .tls_verify_clients = o.tls_verify_clients };
    if (terni_token_load(token_file, &o.token, err, sizeof(err)) != TERN_OK) {
        fprintf(stderr, "tern-worker: %s\n", err);
        return 2;
    }
    sec.token = o.token;
    if (terni_listen_policy("tern-worker", o.listen, &sec, insecure, err, sizeof(err)) != TERN_OK) {
        fprintf(stderr, "tern-worker: %s\n", err);
        return 2;
    }
    char name[300];
    if (!o.name) {
        char host[256] = "worker";
        gethostname(host, sizeof(host) - 1);
        snprintf(name, sizeof(name), "%s-%d", host, (int)getpid());
        o.name = name;
    }
    if (o.quiet)
        terni_log_quiet();
    snprintf(instance, sizeof(instance), "worker=%s", o.name);
    char workdir[] = "/tmp/tern-worker-XXXXXX";
    bool own_workdir = false;
    if (!o.workdir) {
        if (!mkdtemp(workdir)) {
            perror("tern-worker: mkdtemp");
            return 1;
        }
        o.workdir = workdir;
        own_workdir = true;
    }
    terni_daemon_init(exit_with_parent);
    /* OpenBLAS (the arrays plugin's library) starts a thread per core when it is loaded, and
     * each spins on sched_yield for about 0.1 s before it sleeps; the plugin then asks for one
     * BLAS thread anyway (plugins/arrays, TERN_BLAS_THREADS raises it, which OpenBLAS allows).
     * One thread from the start: tern-bench startup 27.7/27.4/24.8 -> 21.8/23.5/23.5 ms,
     * alternating. An OPENBLAS_NUM_THREADS the user set is kept. */
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    int rc;
    if (nanny) {
        /* The executor runs this binary again, with our name and work directory. */
        char **args = calloc((size_t)argc + 10, sizeof(char *));
        if (!args) {
            fprintf(stderr, "tern-worker: out of memory\n");
            return 1;
        }
        int n = 0;
        for (int i = 0; i < argc; i++)
            args[n++] = argv[i];
        args[n++] = "--no-nanny";
        args[n++] = "--exit-with-parent";
        args[n++] = "--name";
        args[n++] = (char *)o.name;
        args[n++] = "--workdir";
        args[n++] = (char *)o.workdir;
        if (terni_log_level_explicit()) { /* main() took --log-level out of argv */
            args[n++] = "--log-level";
            args[n++] = (char *)terni_log_level_name(terni_log_get_level());
        }
        rc = terni_nanny_run(args, n, &terni_stop, o.quiet);
        free(args);
    } else {
        rc = terni_worker_run(&o, &terni_stop);
    }
    if (own_workdir && !terni_rmtree(workdir))
        fprintf(stderr, "tern-worker: could not remove %s\n", workdir);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = run(argc, argv);
    /* Every return is deliberate: an executor tells its nanny so (nanny.c). A plugin that
     * calls exit() never gets here. */
    terni_nanny_announce_exit(rc);
    return rc;
}
