/* The scheduler's graph engine: task records, workers as placement sees them, and every state
 * transition. No I/O: what the world must be told leaves through graph_effects (events.c
 * encodes it into messages; tests/unit/test_graph.c records it). No globals: every function
 * takes the graph.
 *
 * Task states (task.state; set only by graph_set_state, transitions.c):
 *   WAITING     some dependency is not in memory yet
 *   NO_WORKER   ready, but no worker may run it (none connected, or restrictions)
 *   PROCESSING  sent to a worker (queued or running there; or placed early, "after" its deps)
 *   MEMORY      result held by >= 1 worker (who), size known
 *   RELEASED    result no longer wanted and freed, record kept as lineage for dependents
 *   ERRED       failed, or a dependency failed, or the data was lost and cannot be made again
 *
 * Ownership: the graph owns tasks and errors; workers and clients are owned by the caller
 * (the scheduler's sessions embed them), which adds a worker with graph_worker_add and removes
 * it only through graph_worker_lost, and tells the graph of a client's end (graph_client_gone)
 * before freeing it.
 *
 * Calls: each graph_* entry point is one event: it runs every transition it causes (a
 * worklist, transitions.c) before it returns. Forgetting (freeing records no one needs) is
 * deferred to graph_flush, which the caller runs after each event, so that a record read by a
 * loop in the caller is never freed under it. graph_validate checks every invariant.
 */
#ifndef TERNI_SCHED_GRAPH_H
#define TERNI_SCHED_GRAPH_H

#include "sdk/src/support/keytab.h"
#include "runtime/scheduler/ptrs.h"
#include "runtime/scheduler/states.h"
#include "runtime/scheduler/stats.h"
#include "runtime/util/list.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

/* Why a task erred: the root cause's code, own message, task name and key. Shared, counted:
 * every dependent that erred because of it points to the same record, so a failure at the
 * root of a long chain costs one record, and each dependent's message names the root once. */
typedef struct task_error {
    uint32_t refs;
    int code;
    const char *msg, *task, *key; /* stored after the record */
} task_error;

/* A client as the graph sees it: something that wants keys and is told of them. */
typedef struct client {
    size_t npending; /* tasks it created that have not finished (back-pressure) */
} client;

typedef struct worker {
    char *name, *address;
    int nthreads;
    int64_t memory;
    void *peer; /* the caller's (its session); effects get the worker, not this */
    size_t nprocessing, nkeys;
    int64_t nbytes;
    bool gone;
    uint64_t ndone;    /* tasks finished here (dashboard) */
    int64_t rss;       /* its resident memory, as of its last "done" */
    uint64_t last_ns;  /* when a request from it last arrived (liveness) */
    uint64_t join_seq; /* join order (placement deals map blocks in it) */
    UT_hash_handle hh;
} worker;

typedef struct task task;
struct task {
    char *key;             /* points just past the record: one allocation (task_new) */
    const char *fn;        /* "plugin:symbol", interned */
    const char *plugin_id; /* interned; NULL for scattered data */
    const uint8_t *args;   /* CBOR of the argument list, stored after the key */
    uint32_t args_len;     /* NULL args: none (scattered data, or a malformed submission) */
    uint8_t state;
    bool forget_queued;
    bool early;            /* PROCESSING: placed before its dependencies finished (early.c) */
    bool deferred;         /* WAITING: in the graph's deferred list (early.c), in_deferred */
    bool in_walk;          /* graph_cancel's walk: already visited */
    bool took;             /* PROCESSING: its run took (moved in) a dependency's only copy */
    bool lost;             /* graph_worker_lost: its last copy was on the worker that left */
    uint16_t retries;      /* left (at most 1000) */
    uint16_t suspicious;   /* executors that crashed while running it */
    uint16_t lost_fetches; /* reports of dependencies that could not be fetched */
    task **deps;
    uint32_t ndeps, nwaiting;
    terni_ptrs dependents; /* task */
    terni_ptrs wanters;    /* client */
    terni_ptrs who;        /* worker: where its result is held */
    uint32_t nneeders;     /* dependents in WAITING, NO_WORKER or PROCESSING */
    uint32_t inl_len;      /* 0: no inline result */
    union {
        uint8_t *p;
        uint8_t small[8];
    } inl;      /* small result as CBOR bytes (graph_inline_bytes): in `small` up to 8 */
    worker *on; /* PROCESSING: where */
    int64_t nbytes;
    int64_t attempt; /* its current placement's run number, unique in the graph (a record made
                      * again for the same key never reuses one); compute events carry it,
                      * reports echo it, so a stale report is told apart */
    int priority;
    uint32_t gindex; /* its index in its map, and the map's size: co-assignment */
    uint32_t gsize;  /* (placement.c); 0 if not from a map */
    int64_t timeout_ms;
    char **restrict_to; /* NULL-terminated names, or NULL */
    task_error *err;    /* ERRED: why; NULL otherwise (or out of memory recording it) */
    client *submitter;  /* the client that created it, until it finishes */
    task *next_forget;
    symstat *sym;            /* its symbol's counters (stats.h), found at creation; may be NULL */
    uint64_t seq;            /* creation order */
    struct push_state *push; /* where its result is pushed (early.h); NULL: nowhere */
    terni_list in_deferred;  /* in g->deferred while deferred */
};

/* What the graph tells the world. Each is called during a graph_* call; none may call back
 * into the graph. compute returns false when the event cannot be sent (out of memory): the
 * task then stays unplaced. */
typedef struct graph_effects {
    /* Run t on w. early: t's dependencies that are not in memory run on w ("after"); else
     * the dependencies that placement_may_take allows are handed to t ("take"). */
    bool (*compute)(void *ctx, worker *w, const task *t, bool early);
    void (*free_key)(void *ctx, worker *w, const char *key); /* drop its data */
    void (*cancel)(void *ctx, worker *w, const char *key);   /* do not run (or drop) it */
    void (*finished)(void *ctx, client *c, const task *t);   /* t is in memory */
    /* c's future of key erred with e (e->key: the root cause; may be key itself) */
    void (*erred)(void *ctx, client *c, const char *key, const task_error *e);
    void (*recomputing)(void *ctx, client *c, const task *t); /* its data was lost */
    /* from, running (or holding) t, sends t's result to `to` as soon as it has it: a task
     * placed early on `to` waits for it there */
    void (*push)(void *ctx, worker *from, const task *t, worker *to);
} graph_effects;

/* One item of the transition worklist (transitions.c). */
typedef struct graph_work {
    task *t;
    uint8_t op;
    bool flag;
    task_error *err; /* counted reference, for op ERR */
} graph_work;

typedef struct interned interned;

typedef struct graph {
    const graph_effects *fx;
    void *ctx;
    terni_keytab tasks; /* key -> task */
    worker *workers;    /* by name, in join order */
    uint64_t worker_seq;
    interned *strings; /* task names and plugin ids of live tasks */
    uint64_t task_seq;
    int64_t run_seq;   /* the last run number given (task.attempt) */
    task *forget_head; /* tasks to check for forgetting (graph_flush) */
    graph_work *work;  /* the worklist (a stack) */
    size_t nwork, work_cap;
    bool work_oom; /* an item could not be pushed: logged once */
    size_t nstate[T_NSTATES];
    double task_time; /* mean task duration, seconds (EMA) */
    uint64_t ntasks_done, nrecomputed, nworkers_lost;
    size_t forgotten;     /* since the caller last cleared it (malloc_trim) */
    int allowed_failures; /* executors a task may take down before it errs */
    const char *lost_why; /* graph_worker_lost: why (scattered data's error names it) */
    stats st;             /* dashboard counters (stats.h) */
    int nthreads;         /* of the connected workers: the early budget (early.h) */
    size_t nearly;        /* tasks PROCESSING early */
    terni_list deferred;  /* tasks that may be placed early once the budget allows (early.h) */
    uint64_t npushes;     /* push effects so far */
} graph;

/* ---- lifecycle ---- */

/* An empty graph whose effects go to fx(ctx, ...). Returns 0, or -1 when out of memory. */
int graph_init(graph *g, const graph_effects *fx, void *ctx);
/* Frees every task and error; workers and clients stay the caller's. */
void graph_free(graph *g);

/* ---- a task's submission (ops.c decodes it) ---- */

typedef struct graph_spec {
    const char *key, *fn, *plugin_id; /* plugin_id NULL: malformed (erred at once) */
    const void *args;                 /* CBOR of the argument list; NULL: malformed */
    size_t args_len;
    const char **deps; /* keys */
    size_t ndeps;
    int priority, retries;
    uint32_t gindex, gsize;
    int64_t timeout_ms;
    const char *const *restrict_to; /* names, or NULL */
    size_t nrestrict;
    int code;        /* != TERN_OK: the submission is refused with this code and msg */
    const char *msg; /* (e.g. plugin not uploaded); the task errs at once */
} graph_spec;

/* c submits a task. A key the graph has: one task, one more wanter (a released one, or an
 * erred one no one else wants, runs again). Returns the task, or NULL when out of memory (the
 * submission is then dropped). */
task *graph_submit(graph *g, client *c, const graph_spec *spec);
/* Scattered data: c will put key on a worker itself. NULL when out of memory. */
task *graph_scatter(graph *g, client *c, const char *key);
/* c no longer wants key (its future was released). */
void graph_release(graph *g, client *c, const char *key);
/* c no longer wants key, nor the unfinished tasks it wants that depend on it: its futures
 * of them err with TERN_ECANCELED. Tasks that no one else wants or needs stop. Finished
 * tasks are left as they are. */
void graph_cancel(graph *g, client *c, const char *key);
/* c is gone: it wants nothing. */
void graph_client_gone(graph *g, client *c);

/* ---- reports from workers ---- */

/* w holds key's result (nbytes; inline: its CBOR, or NULL). duration_us < 0: unknown. */
void graph_done(graph *g, worker *w, const char *key, int64_t nbytes, const void *inl,
                size_t inl_len, int64_t duration_us);
/* key failed on w in run `run` (< 0: unknown). Stale reports are ignored. */
void graph_erred(graph *g, worker *w, const char *key, int code, const char *msg, int64_t run);
/* w holds a copy of key (fetched, or scattered data put there). */
void graph_added(graph *g, worker *w, const char *key, int64_t nbytes);
/* from could not push key's result to `to` (to may be gone already: NULL): what waits there
 * for it is placed again. */
void graph_push_failed(graph *g, worker *from, const char *key, worker *to);
/* w's executor crashed (why) while running key: counted against allowed_failures. */
void graph_blame(graph *g, worker *w, const char *key, const char *why);

/* ---- workers ---- */

/* w joins (its name unique, its fields set by the caller); placement may use it at once. */
void graph_worker_add(graph *g, worker *w);
/* w left (why): its work is placed again and data only it held is recomputed. w is removed
 * from g->workers and marked gone; the caller frees it after this returns. */
void graph_worker_lost(graph *g, worker *w, const char *why);
/* Places the tasks that had no worker (after a join). */
void graph_place_unassigned(graph *g);

/* ---- after each event ---- */

/* Forgets the tasks no one wants or needs any more. */
void graph_flush(graph *g);

/* Checks every invariant (validate.c); on a violation writes what is wrong to msg and
 * returns false. Walks the whole graph: for tests and debug builds. */
bool graph_validate(graph *g, char *msg, size_t msglen);

/* ---- reading ---- */

task *graph_task(graph *g, const char *key);
static inline const uint8_t *graph_inline_bytes(const task *t)
{
    return t->inl_len <= sizeof(t->inl.small) ? t->inl.small : t->inl.p;
}
static inline bool graph_finished(const task *t)
{
    return t->state == T_MEMORY || t->state == T_ERRED || t->state == T_RELEASED;
}
/* In memory with at least one live copy. */
static inline bool graph_present(const task *t)
{
    return t->state == T_MEMORY && t->who.n > 0;
}
#define DEPENDENT(t, i) ((task *)terni_ptrs_items(&(t)->dependents)[i])
#define WANTER(t, i)    ((client *)terni_ptrs_items(&(t)->wanters)[i])
#define WHO_AT(t, i)    ((worker *)terni_ptrs_items(&(t)->who)[i])

/* The error of an erred task; a static stand-in when recording it ran out of memory. */
const task_error *graph_error_of(const task *t);

#endif
