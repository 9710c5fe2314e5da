/* The worker process (worker.c); main.c parses options. */
#ifndef TERNI_WORKER_H
#define TERNI_WORKER_H

#include <signal.h>
#include <stdbool.h>

typedef struct terni_worker_opts {
    const char *scheduler; /* scheduler URL */
    const char *name;      /* unique worker name */
    const char *workdir;   /* plugin files go to <workdir>/plugins */
    const char *listen;    /* data server URL; tcp://127.0.0.1:0 picks a port */
    const char *tls_ca;    /* CA for tls+tcp:// scheduler and peers (NULL: $TERN_TLS_CA) */
    const char *tls_cert;  /* certificate + key PEM for a tls+tcp:// --listen */
    const char *crashed;   /* set by the nanny: how the previous executor ended */
    int nthreads;
    int connect_timeout_ms;
    bool quiet;
} terni_worker_opts;

/* Exit status of an executor that ended itself to stop a task past its timeout: the nanny
 * restarts it at once and blames no task. */
#define TERNI_EXIT_RESTART 75
/* Exit status of an executor that cannot work and must not be restarted: the scheduler
 * refused it for good (wire version, authentication) or its setup failed. */
#define TERNI_EXIT_FATAL 78

/* Runs until *stop is set, reconnecting whenever the scheduler is lost. Returns an exit
 * status (TERNI_EXIT_FATAL when the scheduler refuses us for good or setup fails). */
int terni_worker_run(const terni_worker_opts *opts, volatile sig_atomic_t *stop);

/* The nanny (nanny.c): runs `argv` plus --no-nanny as the executor process, restarting it
 * after a crash with backoff, until *stop. Returns an exit status. */
int terni_nanny_run(char **argv, int argc, volatile sig_atomic_t *stop, bool quiet);

#endif
