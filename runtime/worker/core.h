/* What the worker's modules share (core.c): the store and the job queue under one lock, the
 * link to the scheduler, and the ops every module sends it.
 *
 * Contract
 *  - lock guards store, jobs and stopping, and the data server's pins (dataserver.c). Values
 *    are immutable once stored (shared values are frozen), so readers take a reference and let
 *    go of the lock at once (terni_wcore_get).
 *  - link is swapped by the lifecycle (worker.c) under link_lock; every op goes through
 *    terni_wcore_post or terni_wcore_post_encoded, which drop it while disconnected.
 *  - opts, loader, peers and address are set before any thread starts, and only read after.
 */
#ifndef TERNI_WORKER_CORE_H
#define TERNI_WORKER_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "jobs.h"
#include "link.h"
#include "loader.h"
#include "peers.h"
#include "store.h"
#include "worker.h"

typedef struct terni_wcore {
    const terni_worker_opts *opts;
    terni_loader *loader;
    terni_peers *peers; /* NULL in the fuzzing worker */
    char address[256];  /* the data server's, as peers reach it (dataserver.c) */
    pthread_mutex_t lock;
    terni_store store;
    terni_jobs jobs;
    bool stopping; /* under lock: executor threads and the watchdog end */
    pthread_mutex_t link_lock;
    terni_link *link; /* NULL while disconnected */
} terni_wcore;

/* Locks, an empty store and queue, and the plugin loader for opts->workdir. Returns TERN_OK, or
 * an error with err filled in; on error nothing needs freeing. */
int terni_wcore_init(terni_wcore *c, const terni_worker_opts *opts, char *err, size_t errlen);

/* Frees what init made and every job and value left (no thread of the worker may run). */
void terni_wcore_destroy(terni_wcore *c);

/* The value stored under key (a new reference), or NULL. Takes the lock. */
tern_value *terni_wcore_get(terni_wcore *c, const char *key);

/* Stores v (reference taken) under key unless held already; the jobs that waited only for it
 * become ready. Takes the lock. */
void terni_wcore_put(terni_wcore *c, const char *key, tern_value *v, int64_t nbytes);

/* A value that came from elsewhere (a peer, a client's put): stored, and the scheduler told
 * that key is held here ("added"). */
void terni_wcore_put_added(terni_wcore *c, const char *key, tern_value *v);

/* After losing the scheduler, which knows nothing of our data or queue any more: everything
 * stored and queued goes, and running tasks' results will be dropped. Takes the lock. */
void terni_wcore_forget(terni_wcore *c);

/* Sends op (stolen) to the scheduler, or drops it while disconnected. */
void terni_wcore_post(terni_wcore *c, tern_value *op);

/* The same for an op already encoded (buf: malloc'd, taken). */
void terni_wcore_post_encoded(terni_wcore *c, uint8_t *buf, size_t len, const char *name);

/* Reports run `run` of key failed: {"op": "erred", "key", "code", "message", "run"}. */
void terni_wcore_erred(terni_wcore *c, const char *key, int64_t run, int code, const char *msg);

#endif
