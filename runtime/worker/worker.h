/* The worker process (worker.c); main.c parses options. */
#ifndef TERNI_WORKER_H
#define TERNI_WORKER_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "sdk/src/transport/auth.h"

typedef struct terni_worker_opts {
    const char *scheduler;   /* scheduler URL */
    const char *name;        /* unique worker name */
    const char *workdir;     /* plugin files go to <workdir>/plugins */
    const char *listen;      /* data server URL; tcp://127.0.0.1:0 picks a port */
    const char *tls_ca;      /* CA for tls+tcp:// scheduler and peers (NULL: $TERN_TLS_CA) */
    const char *tls_cert;    /* certificate (+ key) PEM for a tls+tcp:// --listen */
    const char *tls_key;     /* its key, when not in tls_cert */
    bool tls_verify_clients; /* data server: require client certificates signed by tls_ca */
    terni_token token;       /* cluster token (len 0: none): proven to the scheduler and peers,
                                required from everyone fetching data here */
    const char *crashed;     /* set by the nanny: how the previous executor ended */
    int nthreads;
    int connect_timeout_ms;
    bool quiet;
} terni_worker_opts;

/* Exit status of an executor that ended itself to stop a task past its timeout: the nanny
 * restarts it at once and blames no task (if announced: terni_nanny_announce_exit). */
#define TERNI_EXIT_RESTART 75
/* Exit status of an executor that cannot work and must not be restarted: the scheduler
 * refused it for good (wire version, authentication) or its setup failed. */
#define TERNI_EXIT_FATAL 78

/* Runs until *stop is set, reconnecting whenever the scheduler is lost. Returns an exit
 * status (TERNI_EXIT_FATAL when the scheduler refuses us for good or setup fails). */
int terni_worker_run(const terni_worker_opts *opts, atomic_int *stop);

/* Fuzzing entry points (tests/fuzz/fuzz_worker.c, with a stand-in for link.c): a worker
 * without threads or sockets; scheduler events and data-plane messages go through the real
 * handlers (on_events; data_request: the token gate, then serve). */
void *terni_worker_fuzz_new(const terni_worker_opts *opts);
void terni_worker_fuzz_events(void *w, const tern_value *events);
void terni_worker_fuzz_data(void *w, const void *bytes, size_t len, uint32_t pipe);
void terni_worker_fuzz_free(void *w);

/* The nanny (nanny.c): runs `argv` plus --no-nanny as the executor process, restarting it
 * after a crash with backoff, until *stop. Returns an exit status. Every end of the executor
 * that it did not announce (below) is a crash, whatever its exit status. */
int terni_nanny_run(char **argv, int argc, atomic_int *stop, bool quiet);

/* In the executor: fd (--nanny-fd) is the nanny's announcement pipe. */
void terni_nanny_attach(int fd);
/* In the executor, right before it exits on its own with status (and only then): tells the
 * nanny that this exit is deliberate. Does nothing without a nanny. */
void terni_nanny_announce_exit(int status);

#endif
