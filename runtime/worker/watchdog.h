/* Crash forensics and task timeouts (watchdog.c).
 *
 * Slots: each executor thread writes the key it runs into its slot of <workdir>/running, a
 * shared file mapping (a plain store, no system call per task). When the process dies, the
 * nanny starts a new one with --crashed WHY; it reads the slots left behind (the keys come
 * back from terni_watchdog_open) and reports them in its hello so the scheduler can blame the
 * right tasks.
 *
 * The watchdog thread checks the running jobs every few milliseconds: one past its timeout is
 * reported erred (TERN_ETIMEDOUT) and the process exits with TERNI_EXIT_RESTART, announced to
 * the nanny (terni_nanny_announce_exit, nanny.c), so that it starts a fresh executor and blames
 * no task: a thread stuck in plugin code cannot be stopped any other way. When
 * idle, it also gives freed memory back to the system.
 *
 * Contract: the lifecycle (worker.c) opens it before the executors start, starts the thread,
 * and at the end sets core->stopping and calls terni_watchdog_wake under core->lock, then
 * terni_watchdog_close. Slots are written and cleared (terni_slot_set, terni_slot_clear) only
 * under core->lock, so a restart's clearing of every slot cannot interleave with them. */
#ifndef TERNI_WORKER_WATCHDOG_H
#define TERNI_WORKER_WATCHDOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "sdk/src/transport/auth.h" /* TERNI_MAX_KEY */
#include "runtime/worker/core.h"

#define TERNI_SLOT_SIZE (TERNI_MAX_KEY + 64) /* per thread in <workdir>/running: a whole key */

typedef struct terni_watchdog {
    terni_wcore *core;
    char *slots; /* nthreads x TERNI_SLOT_SIZE, shared file mapping, or NULL */
    size_t slots_len;
    pthread_cond_t cond; /* stopping (its own, so that it never takes a job's wake-up) */
    pthread_t thread;
    bool started;
} terni_watchdog;

/* Maps <workdir>/running (opts->nthreads slots; without it no slots are kept). Returns the keys a
 * crashed predecessor left there (a list, possibly empty; NULL when out of memory), and clears
 * them. */
tern_value *terni_watchdog_open(terni_watchdog *wd, terni_wcore *core);

/* Executor thread i's slot, or NULL when there are no slots. */
char *terni_watchdog_slot(terni_watchdog *wd, int i);

/* Writes key into slot (may be NULL): a whole key fits (TERNI_MAX_KEY). Under core->lock. */
void terni_slot_set(char *slot, const char *key);

/* Clears slot (may be NULL). Under core->lock. */
void terni_slot_clear(char *slot);

/* Starts the watchdog thread; false if it could not start (the worker runs without it). */
bool terni_watchdog_start(terni_watchdog *wd);

/* Under core->lock, after setting core->stopping: the thread ends. */
void terni_watchdog_wake(terni_watchdog *wd);

/* Joins the thread if started and unmaps the slots. */
void terni_watchdog_close(terni_watchdog *wd);

#endif
