/* The scheduler: sessions, workers, plugins and the task graph, driven by one thread.
 * main.c parses options and calls terni_sched_run(). */
#ifndef TERNI_SCHEDULER_H
#define TERNI_SCHEDULER_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "sdk/src/transport/auth.h"

/* --allow-upload: who may upload plugins. */
enum { TERNI_UPLOAD_YES = 0, TERNI_UPLOAD_LOCAL, TERNI_UPLOAD_NO };
/* Default --max-pending-tasks. */
#define TERNI_MAX_PENDING_DEFAULT 1000000

typedef struct terni_sched_opts {
    const char *listen;       /* URL; tcp://127.0.0.1:0 picks a port */
    const char *address_file; /* where to write the bound address, or NULL */
    const char *tls_cert;     /* tls+tcp:// listen: certificate (+ key) PEM */
    const char *tls_key;      /* its key when not in tls_cert */
    const char *tls_ca;       /* CA for client certificates (with tls_verify_clients) */
    bool tls_verify_clients;  /* mutual TLS */
    terni_token token;        /* cluster token every peer must prove (len 0: none) */
    int allow_upload;         /* TERNI_UPLOAD_* */
    size_t max_pending;       /* unfinished tasks per client before back-pressure; 0: default */
    const char *workdir;      /* scratch space for uploads */
    const char *inspector;    /* path of tern-plugin-info */
    const char **preload;     /* NULL-terminated plugin files loaded at start */
    int heartbeat_ms;         /* how often workers send heartbeats (told in the welcome) */
    int death_timeout_ms;     /* a worker silent this long is declared dead */
    int allowed_failures;     /* a task running in this many crashed executors errs */
    bool quiet;
    const char *http; /* dashboard host:port, "none", or NULL for TERNI_HTTP_DEFAULT (http.h) */
} terni_sched_opts;

/* Runs until *stop becomes non-zero (checked after every event and at least every 200 ms, so
 * a signal handler only sets it). Returns a process exit status. */
int terni_sched_run(const terni_sched_opts *opts, atomic_int *stop);

/* Checks plugin bytes in a child process (tern-plugin-info --describe). On success fills
 * name, version and a space-separated task list (malloc'd, caller frees). Returns a tern code;
 * msg gets the reason on failure. Blocks for the child's run (tens of milliseconds). */
int terni_inspect_plugin(const char *inspector, const char *workdir, const void *bytes, size_t len,
                         const char *id, char **name, char **version, char **tasks, char *msg,
                         size_t msglen);

/* Fuzzing entry points (tests/fuzz/fuzz_scheduler.c, which links a stand-in for server.c):
 * the real handlers, fed one event at a time without a thread or a socket. */
struct terni_event;
void *terni_sched_fuzz_begin(const terni_sched_opts *opts);       /* NULL: out of memory */
void terni_sched_fuzz_event(void *sched, struct terni_event *ev); /* takes ev's request, body */
void terni_sched_fuzz_end(void *sched);

#endif
