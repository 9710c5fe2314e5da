/* The worker's job queue (jobs.c): jobs ready to run, by priority and then arrival (a heap,
 * heap.h); the jobs running now (a list); and jobs placed here early, blocked until results
 * being computed here are stored ("after"), indexed by the key they wait for.
 *
 * Contract: not thread-safe. Every call is made under the worker's one lock (core.h), which
 * also guards the store: the scheduler's events add and cancel jobs (events.c), executor
 * threads start and finish them (executor.c), storing a result unblocks them (core.c), and the
 * watchdog reads the running list (watchdog.c). A job is in one place at a time: blocked, ready,
 * or running (its executor frees it when it has run). */
#ifndef TERNI_WORKER_JOBS_H
#define TERNI_WORKER_JOBS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tern/value.h>

#include "runtime/util/heap.h"
#include "runtime/util/list.h"
#include "runtime/worker/store.h"

typedef struct terni_job {
    char *key, *fn, *plugin; /* stored after the struct, in its allocation */
    tern_value *args;        /* CBOR bytes */
    tern_value *deps;        /* map key -> [addresses] */
    tern_value *taken;       /* NULL, or map key -> value: dependencies handed over to this job */
    int priority;
    int64_t run, timeout_ms; /* attempt number echoed to the scheduler; 0: no timeout */
    uint64_t seq, start_ns;
    int cancelled;            /* written under the lock, read atomically by a fetch in progress */
    char *slot;               /* its executor's slot in <workdir>/running (watchdog.h), or NULL */
    char **after;             /* keys computed here that it was placed early after ("after") */
    size_t nafter, nwait;     /* of them: all, and not stored yet */
    terni_heap_node in_ready; /* in jobs->ready while queued (untracked: never written) */
    terni_list in_list;       /* in jobs->blocked while nwait > 0, in jobs->running while run */
} terni_job;

typedef struct terni_jobs {
    terni_heap ready;               /* queued: highest priority first, then first come */
    terni_list running;             /* at most one job per executor thread */
    terni_list blocked;             /* jobs waiting for results computed here */
    struct terni_awaited *awaiting; /* key -> the blocked jobs waiting for it */
    uint64_t seq;                   /* arrival order */
    pthread_cond_t cond;            /* executors wait on it: a job became ready, or stopping */
} terni_jobs;

/* An empty queue. Returns 0, or -1 if the condition variable cannot be made. */
int terni_jobs_init(terni_jobs *q);

/* Frees every queued and blocked job, and the queue (no executor may run: they were joined). */
void terni_jobs_destroy(terni_jobs *q);

/* A job for key with its function and plugin copied into its allocation, room for nafter keys
 * in j->after, and everything else zero. NULL when out of memory. */
terni_job *terni_job_new(const char *key, const char *fn, const char *plugin, size_t nafter);
void terni_job_free(terni_job *j);

/* Queues j (taken): first the dependencies named in take (a list of keys, may be NULL) move
 * from s into j->taken; then j waits for those in after (keys being computed here, may be
 * NULL) that s does not hold yet, or is ready at once (an executor is woken). Out of memory, a
 * dependency is neither taken nor waited for (the job then fails to find it: TERN_ELOST, and
 * the scheduler places it again), and a job that cannot be queued is dropped (the scheduler
 * sees no answer). */
void terni_jobs_add(terni_jobs *q, terni_store *s, terni_job *j, const tern_value *take,
                    const tern_value *after);

/* key was stored: the jobs that waited only for it become ready. */
void terni_jobs_stored(terni_jobs *q, const char *key);

/* Whether a job is ready to run. */
bool terni_jobs_any_ready(const terni_jobs *q);

/* Whether a job is ready or running. */
bool terni_jobs_busy(const terni_jobs *q);

/* The first ready job, now running (start_ns set), or NULL if none is ready. */
terni_job *terni_jobs_start(terni_jobs *q);

/* j, started, has returned: off the running list. The caller frees it. */
void terni_jobs_finish(terni_jobs *q, terni_job *j);

/* "free"/"cancel" for key: a running job's result will be dropped (cancelled); unless held
 * (key is stored here, so it is finished, not queued), the first blocked and the first queued
 * job for key are dropped. */
void terni_jobs_cancel(terni_jobs *q, const char *key, bool held);

/* The scheduler was lost: every queued and blocked job goes, running ones are cancelled. */
void terni_jobs_forget(terni_jobs *q);

#endif
