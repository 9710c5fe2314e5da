/* The executor threads (executor.c): each takes the first ready job (jobs.h), gathers its
 * dependencies (from the local store, or fetched directly from the peer workers listed in the
 * compute event, never through the scheduler), substitutes them into the arguments, calls the
 * task, stores the result and reports "done" (with the value inline when small) or "erred".
 *
 * Contract: the lifecycle (worker.c) starts them after the watchdog's slots are open and before
 * the link, so that no compute event waits for them; to stop them it sets core->stopping and
 * broadcasts core->jobs.cond under core->lock, then calls terni_executors_join. Jobs are taken
 * and finished under core->lock; a task runs without it. */
#ifndef TERNI_WORKER_EXECUTOR_H
#define TERNI_WORKER_EXECUTOR_H

#include <pthread.h>
#include <stdbool.h>

#include "runtime/worker/core.h"
#include "runtime/worker/watchdog.h"

typedef struct terni_executor {
    terni_wcore *core;
    char *slot; /* its slot in <workdir>/running (watchdog.h), or NULL */
    pthread_t thread;
    bool started;
} terni_executor;

typedef struct terni_executors {
    terni_executor *each; /* opts->nthreads of them */
    int n;
} terni_executors;

/* Starts core->opts->nthreads executor threads, thread i writing into slot i of wd. Out of
 * memory or threads, fewer (possibly none) run. */
void terni_executors_start(terni_executors *ex, terni_wcore *core, terni_watchdog *wd);

/* Waits for the threads to end (see the contract) and frees them. */
void terni_executors_join(terni_executors *ex);

#endif
