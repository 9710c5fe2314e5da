/* What the worker's modules share (core.c): the store and the job queue under one lock, the
 * link to the scheduler, and the ops every module sends it.
 *
 * Contract
 *  - lock guards store, jobs and stopping, and the data server's pins (dataserver.c). Values
 *    are immutable once stored (shared values are frozen), so readers take a reference and let
 *    go of the lock at once (terni_wcore_get).
 *  - link is swapped by the lifecycle (worker.c) under link_lock; every op goes through
 *    terni_wcore_post or terni_wcore_post_outbox, which drop it while disconnected.
 *  - No task's future waits for ever: a task's report that cannot be built or sent (out of
 *    memory) is replaced by a stand-in erred report written into a buffer allocated ahead
 *    (terni_wcore_standin), one per reporting thread.
 *  - Text the worker builds from task output, keys and names is valid UTF-8, cut only between
 *    characters (utf8.h): a report with text that is not was lost, and its future hung.
 *  - opts, loader, peers and address are set before any thread starts, and only read after.
 */
#ifndef TERNI_WORKER_CORE_H
#define TERNI_WORKER_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/worker/jobs.h"
#include "sdk/src/protocol/protocol.h"
#include "sdk/src/transport/link.h"
#include "runtime/worker/loader.h"
#include "sdk/src/transport/outbox.h"
#include "sdk/src/transport/peers.h"
#include "runtime/worker/pusher.h"
#include "runtime/worker/store.h"
#include "runtime/worker/worker.h"

typedef struct terni_wcore {
    const terni_worker_opts *opts;
    terni_loader *loader;
    terni_peers *peers;   /* NULL in the fuzzing worker */
    terni_pusher *pusher; /* NULL in the fuzzing worker: no pushes */
    char address[256];    /* the data server's, as peers reach it (dataserver.c) */
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
 * become ready, and the pushes asked for key are sent (pusher.h). Takes the lock. Returns
 * whether it was stored now (false: held already, or out of memory). */
bool terni_wcore_put(terni_wcore *c, const char *key, tern_value *v, int64_t nbytes);

/* A value that came from elsewhere (a peer's push or fetch, a client's put): stored, and the
 * scheduler told that key is held here ("added"), unless it was held already. */
void terni_wcore_put_added(terni_wcore *c, const char *key, tern_value *v);

/* After losing the scheduler, which knows nothing of our data or queue any more: everything
 * stored and queued goes, and running tasks' results will be dropped. Takes the lock. */
void terni_wcore_forget(terni_wcore *c);

/* Sends op (stolen) to the scheduler, or drops it while disconnected. Returns TERN_OK,
 * TERN_ECLOSED (disconnected: the scheduler no longer wants it) or the link's error (not sent:
 * out of memory). */
int terni_wcore_post(terni_wcore *c, tern_value *op);

/* The same for an op written straight into CBOR by its encoder (protocol.h): o holds that one
 * op, which is posted encoded; built is what the encoder returned. o's buffer is taken (o is
 * left empty), also on error; TERN_ENOMEM if the op could not be built. */
int terni_wcore_post_outbox(terni_wcore *c, terni_outbox *o, bool built, terni_op_id op);

/* Reports run `run` of key (task fn) failed: {"op": "erred", "key", "code", "message", "run"}.
 * The scheduler appends " (task F, key K, on worker W)" and keeps 1,023 bytes in all: msg, made
 * valid UTF-8, is cut (at a character) so that this fits too, and a cut of the scheduler's never
 * falls inside a character of it. If the report cannot be built or sent, the stand-in goes. */
void terni_wcore_erred(terni_wcore *c, const char *key, const char *fn, int64_t run, int code,
                       const char *msg);

/* The stand-in for a report of key that could not be built or sent (out of memory): an erred
 * report with code and a fixed ASCII message naming the key ("task K erred; its message could
 * not be encoded"), so that no future waits for ever. It needs no memory but the link's own
 * item when the calling thread has called terni_wcore_standin_prepare. */
void terni_wcore_standin(terni_wcore *c, const char *key, int64_t run, int code);

/* A thread that reports tasks (the executors, the watchdog) allocates its stand-in's buffer
 * ahead when it starts, and frees it when it ends. */
void terni_wcore_standin_prepare(void);
void terni_wcore_standin_release(void);

/* The done report of key's result could not be built or sent: the result is dropped (the
 * scheduler would never know it is here) and the stand-in (TERN_ENOMEM) goes instead. Takes the
 * lock. */
void terni_wcore_unreported(terni_wcore *c, const char *key, int64_t run);

#endif
