/* The scheduler: one thread, one event queue, all cluster state.
 *
 * Design notes
 *  Sessions. A peer is identified by the nng pipe it talks on (server.h). "hello" turns a
 *  pipe into a client or worker session; losing the pipe ends it. Each session has an outbox
 *  of events and, usually, one parked "poll" request; after every event the loop answers
 *  parked polls whose outbox is non-empty, so events batch naturally while a peer is busy.
 *
 *  Task states (one per key):
 *    WAITING     some dependency is not in memory yet
 *    NO_WORKER   ready, but no worker may run it (none connected, or restrictions)
 *    PROCESSING  sent to a worker (queued or running there)
 *    MEMORY      result held by >= 1 worker (who_has), size known
 *    RELEASED    result no longer wanted and freed, record kept as lineage for dependents
 *    ERRED       failed (or a dependency failed, or was cancelled, or was lost)
 *  When no client wants a task and no unfinished dependent needs it, its workers are told to
 *  free the data. The record itself (function, arguments, dependencies) stays as long as some
 *  dependent's record does, so a lost result can be recomputed from its lineage; without
 *  dependents the task leaves the table (is forgotten).
 *  Counting invariants: d->nneeders = dependents of d in WAITING, NO_WORKER or PROCESSING;
 *  for a WAITING task, nwaiting = its dependencies not in MEMORY.
 *
 *  Placement: a ready task goes to the worker where it can start soonest: estimated queue
 *  wait (tasks processing per thread x mean task time) plus the bytes of its dependencies
 *  that worker lacks divided by an assumed bandwidth. Ties go to the least loaded worker.
 *  Root tasks of one map (a "group") instead go in contiguous blocks, dealt round the workers
 *  in join order (MAP_BLOCK), so neighbours of a tree reduction share a worker.
 *
 *  Long submit ops: between slices of a submit op (let_workers_in) the workers' requests and
 *  the clients' polls are handled and everything else is set aside in order, so workers start
 *  on a large map's first tasks while the rest is placed.
 *
 *  Pipelining (place_early): a task submitted while the dependencies it lacks all run on one
 *  worker, as their only dependent, goes to that worker at once with "after" naming them; the
 *  worker starts it when they finish there. A chain of small tasks then runs back to back on
 *  one worker, each link without a round trip through here. Only for dependencies whose
 *  symbol has given only small results (a large one could be taken, which needs it finished
 *  first), and not for further dependents of a fan-out. An early task is PROCESSING; should a
 *  dependency it waits for run again (requeue) it is requeued with it, and should one fail,
 *  its worker is told to cancel it.
 *
 *  Taking: when a task is placed on the worker that holds the only copy of a large dependency
 *  that no client wants and no other task needs, the compute event says "take": the worker
 *  hands the data to the task (tern_arg_take), which may compute into it in place, and the
 *  dependency becomes RELEASED at once, as if freed. Should the task have to run again
 *  (requeue: its worker left, a fetch failed, a retry), the dependency is recomputed from
 *  its lineage like any released one.
 *
 *  Errors propagate: an erred task errs every dependent (transitively) with a message that
 *  names the root cause's key and task. Retries re-run a failing task before it errs.
 *
 *  Worker loss (connection lost, or silent for --death-timeout-ms; workers send heartbeats):
 *  tasks processing there are placed again; keys whose only copy was there are recomputed
 *  from their lineage, recursively (released dependencies are recomputed too); tasks running
 *  elsewhere that needed such a key wait for it again. Scattered data cannot be recomputed:
 *  its futures and dependents err with TERN_ELOST. A worker's executor that crashed reports,
 *  when it comes back, which tasks it was running; a task blamed --allowed-failures times
 *  errs with TERN_EKILLED. Compute events carry an attempt number that done/erred echo, so
 *  a stale report from an earlier placement cannot fail a task. See docs/failures.md.
 *
 *  Security (docs/security.md): the server authenticates peers before any request reaches
 *  this file. Back-pressure: each client session counts the tasks it created that have not
 *  finished (task.submitter); a request holding a submit from a client at or over
 *  max_pending is held (not answered) until the count drops, so the client's single
 *  op-stream request in flight stalls its sender and its further ops wait in its own memory.
 *  Requests without submits (release, cancel, polls) are never held.
 */
#include "scheduler.h"

#include "http.h"
#include "keytab.h"
#include "log.h"
#include "outbox.h"
#include "rss.h"
#include "server.h"
#include "wire.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>
#include <uthash.h>

/* Placement's transfer estimate; small results travel inline (the limit is in worker.c). */
#define ASSUMED_BANDWIDTH 1e9 /* bytes per second between workers */
#define INITIAL_TASK_TIME 1e-4

enum { ROLE_NONE, ROLE_CLIENT, ROLE_WORKER };
enum { T_WAITING, T_NO_WORKER, T_PROCESSING, T_MEMORY, T_ERRED, T_RELEASED, T_NSTATES };

static const char *const state_names[T_NSTATES] = { "waiting", "no-worker", "processing",
                                                    "memory",  "erred",     "released" };

/* Requests are decoded on nng's threads and freed by the scheduler's thread; the daemon keeps
 * freed pages resident while busy (daemon.c). After this many bytes of requests the loop calls
 * malloc_trim as soon as its queue is empty (a million tasks held: RSS 1,136 -> 673 bytes per
 * task, with 525 of heap in use; a trim of a 1 GB heap takes milliseconds). At 64 MB, up to
 * that much decoded since the last trim could still be resident when the memory is read:
 * tern-bench scale gave 534-568 bytes of RSS per task (337 of heap); at 16 MB, 413-427, and
 * the same time (6.1-6.2 s). */
#define TRIM_AFTER_BYTES (16u << 20)
/* After this many, or after any task was forgotten, a whole wait with no event trims too: what
 * the tail of a burst freed (results released after the last trim, say) is given back, while
 * heartbeats alone never trigger it. */
#define TRIM_IDLE_AFTER_BYTES (1u << 20)

/* Root tasks of one map go to the workers in blocks of up to this many (choose_worker): a
 * worker's share of a small map stays together (the seed's tree reduction), while a large map
 * is dealt round, so that every worker gets work from the first slice of its submit op
 * (SUBMIT_SLICE) instead of one worker the first half. */
#define MAP_BLOCK 1024

/* A submit op of many tasks lets the workers in after every this many (let_workers_in): their
 * polls are answered with what has been placed so far, and their reports handled, while the
 * rest of the op is still being placed. */
#define SUBMIT_SLICE 2048

/* A task whose dependency fetches fail this often (holders alive but unreachable) errs. */
#define MAX_LOST_FETCHES 5

/* Smallest result a task may take from its dependency to compute in place (may_take). */
#define TAKE_MIN_BYTES (64 * 1024)

typedef struct task task;

/* Pointers to other records (a task's dependents, wanters, holders). Most tasks have one of
 * each, so the first lives here and only a second one allocates; ptrs_items gives the array. */
typedef struct ptrs {
    uint32_t n, cap; /* cap <= 1: the inline slot u.one */
    union {
        void *one;
        void **many;
    } u;
} ptrs;

/* Why a task erred: its code and message, and the root cause's task name and key. */
typedef struct task_error {
    int code;
    char *msg, *task, *key;
} task_error;
typedef struct session session;

typedef struct worker {
    char *name, *address;
    int nthreads;
    int64_t memory;
    session *s;
    size_t nprocessing, nkeys;
    int64_t nbytes;
    bool gone;
    uint64_t ndone;          /* tasks finished here (dashboard) */
    int64_t rss;             /* its resident memory, as of its last "done" */
    tern_value *status_keys; /* op_status only: keys processing here */
    uint64_t last_ns;        /* when a request from it last arrived (liveness) */
    UT_hash_handle hh;
} worker;

struct session {
    uint32_t pipe;
    int role;
    terni_request *poll;
    terni_outbox ob; /* queued events, encoded (outbox.h) */
    worker *w;
    size_t npending;  /* tasks this client created that have not finished */
    terni_event held; /* a request held back by the pending-task limit (held.req != NULL) */
    bool bye;         /* said "bye": polls are answered at once, never parked (op_bye) */
    UT_hash_handle hh;
};

typedef struct plugin {
    char id[65];
    char *name, *version, *tasks;
    tern_value *bytes;
    uint64_t seq;
    UT_hash_handle hh;
} plugin;

struct task {
    char *key;             /* points just past the record: one allocation (task_new) */
    const char *fn;        /* "plugin:symbol", interned */
    const char *plugin_id; /* interned; NULL for scattered data */
    const uint8_t *args;   /* CBOR of the argument list, stored after the key (task_new) */
    uint32_t args_len;     /* NULL args: none (scattered data, or a malformed submission) */
    int state;
    task **deps;
    uint32_t ndeps, nwaiting;
    ptrs dependents;   /* task */
    ptrs wanters;      /* session: the clients that hold a future of it */
    ptrs who;          /* worker: where its result is held */
    uint32_t nneeders; /* unfinished dependents */
    uint32_t inl_len;  /* 0: no inline result */
    union {
        uint8_t *p;
        uint8_t small[8];
    } inl;      /* small result as CBOR bytes (inline_bytes): in `small` up to 8 */
    worker *on; /* PROCESSING: where */
    int64_t nbytes;
    int priority, retries;
    int attempt;      /* placements so far; compute events carry it, reports echo it */
    int suspicious;   /* executors that crashed while running it */
    int lost_fetches; /* reports of dependencies that could not be fetched */
    uint32_t gindex;  /* its index in its map, and the map's size: co-assignment */
    uint32_t gsize;   /* (choose_worker); 0 if not from a map */
    bool forget_queued;
    bool early; /* PROCESSING: placed before its dependencies finished (place_early) */
    int64_t timeout_ms;
    char **restrict_to;     /* NULL-terminated names, or NULL */
    struct task_error *err; /* ERRED: why (set_error); NULL otherwise */
    session *submitter;     /* the client that created it, until it finishes */
    task *next_forget;
    struct symstat *sym; /* dashboard counters of its symbol, found once (see statistics) */
    uint64_t seq;        /* creation order (each_in_order) */
};

/* The items (const a: callers that only read them, e.g. for a const task). */
static void **ptrs_items(const ptrs *a)
{
    return a->cap > 1 ? a->u.many : (void **)&a->u.one;
}

static bool ptrs_push(ptrs *a, void *p)
{
    if (a->n == a->cap) {
        if (a->cap > UINT32_MAX / 2)
            return false;
        if (a->cap == 0) { /* the inline slot */
            a->cap = 1;
        } else {
            uint32_t c = a->cap * 2;
            void **grown = realloc(a->cap > 1 ? a->u.many : NULL, c * sizeof(void *));
            if (!grown)
                return false;
            if (a->cap == 1)
                grown[0] = a->u.one;
            a->u.many = grown;
            a->cap = c;
        }
    }
    ptrs_items(a)[a->n++] = p;
    return true;
}

static void ptrs_free(ptrs *a)
{
    if (a->cap > 1)
        free(a->u.many);
    *a = (ptrs){ 0 };
}

/* The i-th item, converted from the void * it is stored as. */
#define DEPENDENT(t, i) ((task *)ptrs_items(&(t)->dependents)[i])
#define WANTER(t, i)    ((session *)ptrs_items(&(t)->wanters)[i])
#define WHO_AT(t, i)    ((worker *)ptrs_items(&(t)->who)[i])

static bool ptrs_remove(ptrs *a, const void *p)
{
    void **items = ptrs_items(a);
    for (size_t i = 0; i < a->n; i++)
        if (items[i] == p) {
            items[i] = items[--a->n];
            return true;
        }
    return false;
}

static const uint8_t *inline_bytes(const task *t)
{
    return t->inl_len <= sizeof(t->inl.small) ? t->inl.small : t->inl.p;
}

/* A string many tasks share (task names, plugin ids), counted (intern/unintern). */
typedef struct interned {
    size_t refs;
    UT_hash_handle hh;
    char s[];
} interned;

typedef struct dead_pipe {
    uint32_t pipe;
    UT_hash_handle hh;
} dead_pipe;

typedef struct sched {
    terni_server *srv;
    dead_pipe *dead; /* pipes already lost: their late requests must not revive a session */
    const terni_sched_opts *opts;
    session *sessions;
    worker *workers;
    terni_keytab tasks; /* key -> task (keytab.h) */
    uint64_t task_seq;  /* the next task's seq */
    interned *strings;  /* task names and plugin ids of live tasks */
    plugin *plugins;
    uint64_t plugin_seq;
    task *forget_head; /* tasks to check for forgetting after the current event */
    size_t nheld;      /* sessions with a held request */
    double task_time;  /* mean task duration, seconds (EMA) */
    uint64_t ntasks_done;
    terni_http *http; /* dashboard, or NULL */
    char http_url[256];
    uint64_t nworkers_lost, nrecomputed; /* failure counters for status */
    size_t request_bytes;                /* decoded since the last malloc_trim */
    size_t forgotten;                    /* tasks forgotten since the last malloc_trim */
    terni_event *later; /* events set aside during a long submit op (let_workers_in) */
    size_t later_head, nlater, later_cap; /* the oldest is later[later_head] */
} sched;

static sched S;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    if (!terni_log_enabled(TERNI_LOG_INFO))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    terni_log(TERNI_LOG_INFO, "%s", msg);
}

/* ---- statistics for the dashboard and /metrics ------------------------------------- */

/* Counters only the status op reads: per-symbol totals, a ring of recent completions (the
 * task stream), a duration histogram and byte counters. All on the scheduler thread. */
#define STREAM_LEN    256
#define RUNNING_SHOWN 32 /* keys listed per worker in status (the count is exact) */

static const double hist_bounds[] = { 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10, 60 };
#define NBUCKETS (sizeof(hist_bounds) / sizeof(hist_bounds[0]) + 1)

typedef struct symstat {
    char *fn;
    uint64_t done, erred;
    uint64_t large;        /* results of TAKE_MIN_BYTES and more (place_early) */
    size_t now[T_NSTATES]; /* op_status only: tasks of this symbol by state */
    UT_hash_handle hh;
} symstat;

/* The dashboard's task stream keeps the recent completions' names in place, cut to these
 * sizes (copy_cut), so that recording one allocates nothing: it happens for every task. */
typedef struct completion {
    char key[128], fn[96], worker[64];
    double start_ms, stop_ms; /* Unix time; start = stop - the worker's measured run time */
    bool erred;
} completion;

static struct {
    symstat *symbols;
    completion stream[STREAM_LEN];
    uint64_t nstream; /* completions ever recorded; the newest is stream[(nstream-1) % LEN] */
    uint64_t hist[NBUCKETS], nhist, nerred;
    double hist_sum;
    int64_t transfer_bytes, result_bytes;
} ST;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static symstat *symstat_of(const char *fn)
{
    if (!fn || !*fn)
        return NULL;
    symstat *st;
    HASH_FIND_STR(ST.symbols, fn, st);
    if (st)
        return st;
    st = calloc(1, sizeof(*st));
    if (!st || !(st->fn = strdup(fn))) {
        free(st);
        return NULL;
    }
    HASH_ADD_KEYPTR(hh, ST.symbols, st->fn, strlen(st->fn), st);
    return st;
}

/* A task was sent to w: count the dependency bytes w lacks as transferred. */
static void stats_placed(const task *t, const worker *w)
{
    if (terni_log_enabled(TERNI_LOG_DEBUG))
        terni_log(TERNI_LOG_DEBUG, "task %s (%s) placed on %s", t->key, t->fn, w->name);
    for (size_t i = 0; i < t->ndeps; i++) {
        const task *d = t->deps[i];
        bool here = false;
        for (size_t k = 0; k < d->who.n && !here; k++)
            here = WHO_AT(d, k) == w;
        if (!here)
            ST.transfer_bytes += d->nbytes;
    }
}

/* A worker reported a task finished (erred false) or failed, after duration_us. */
/* Copies s into dst[cap], cut before the first character that does not fit (UTF-8). */
static void copy_cut(char *dst, size_t cap, const char *s)
{
    size_t n = strnlen(s, cap - 1);
    if (s[n] != '\0')
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) /* inside a character */
            n--;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static void stats_finished(task *t, worker *w, int64_t duration_us, int64_t nbytes, bool erred)
{
    if (!t->sym)
        t->sym = symstat_of(t->fn);
    symstat *st = t->sym;
    if (st) {
        st->done += !erred;
        st->erred += erred;
        st->large += !erred && nbytes >= TAKE_MIN_BYTES;
    }
    ST.nerred += erred;
    if (!erred) {
        w->ndone++;
        ST.result_bytes += nbytes > 0 ? nbytes : 0;
    }
    double secs = duration_us > 0 ? (double)duration_us * 1e-6 : 0;
    if (terni_log_enabled(TERNI_LOG_DEBUG))
        terni_log(TERNI_LOG_DEBUG, "task %s %s on %s after %.3f ms", t->key,
                  erred ? "failed" : "done", w->name, secs * 1e3);
    if (duration_us >= 0 && !erred) {
        size_t b = 0;
        while (b < NBUCKETS - 1 && secs > hist_bounds[b])
            b++;
        ST.hist[b]++;
        ST.nhist++;
        ST.hist_sum += secs;
    }
    completion *c = &ST.stream[ST.nstream++ % STREAM_LEN];
    copy_cut(c->key, sizeof(c->key), t->key);
    copy_cut(c->fn, sizeof(c->fn), t->fn ? t->fn : "");
    copy_cut(c->worker, sizeof(c->worker), w->name);
    c->stop_ms = now_ms();
    c->start_ms = c->stop_ms - secs * 1e3;
    c->erred = erred;
}

static void stats_free(void)
{
    symstat *st, *tmp;
    HASH_ITER(hh, ST.symbols, st, tmp)
    {
        HASH_DEL(ST.symbols, st);
        free(st->fn);
        free(st);
    }
    memset(&ST, 0, sizeof(ST));
}

static bool set_double(tern_value *m, const char *k, double d)
{
    return terni_set(m, k, tern_double(d));
}

/* op_status counts tasks by symbol in its one walk over the table: stats_begin() before it,
 * stats_count(t) for each task. */
static void stats_begin(void)
{
    symstat *st, *stmp;
    HASH_ITER(hh, ST.symbols, st, stmp)
    memset(st->now, 0, sizeof(st->now));
}

static inline void stats_count(task *t)
{
    if (!t->sym)
        t->sym = symstat_of(t->fn);
    if (t->sym)
        t->sym->now[t->state]++;
}

/* Adds the dashboard's fields to a status map (see docs/protocol.md, "status"): symbols,
 * stream, histogram and counters. Called by op_status after its walk (stats_count). */
static bool stats_to_status(tern_value *out)
{
    symstat *st, *stmp;
    tern_value *symbols = tern_map_new();
    HASH_ITER(hh, ST.symbols, st, stmp)
    {
        tern_value *m = tern_map_new();
        bool ok = m && terni_set_int(m, "done", (int64_t)st->done) &&
                  terni_set_int(m, "failed", (int64_t)st->erred);
        for (int i = 0; ok && i < T_NSTATES; i++)
            ok = terni_set_int(m, state_names[i], (int64_t)st->now[i]);
        if (!ok)
            tern_value_unref(m);
        if (!ok || tern_map_set(symbols, st->fn, m) != TERN_OK) {
            tern_value_unref(symbols);
            return false;
        }
    }
    tern_value *stream = tern_list_new(STREAM_LEN);
    uint64_t first = ST.nstream > STREAM_LEN ? ST.nstream - STREAM_LEN : 0;
    for (uint64_t i = first; stream && i < ST.nstream; i++) {
        const completion *c = &ST.stream[i % STREAM_LEN];
        tern_value *m = tern_map_new();
        if (!m || !terni_set_text(m, "key", c->key) || !terni_set_text(m, "fn", c->fn) ||
            !terni_set_text(m, "worker", c->worker) || !set_double(m, "start_ms", c->start_ms) ||
            !set_double(m, "stop_ms", c->stop_ms) || !terni_set(m, "erred", tern_bool(c->erred)) ||
            tern_list_append(stream, m) != TERN_OK) {
            tern_value_unref(stream);
            stream = NULL;
        }
    }
    tern_value *hist = tern_map_new(), *bounds = tern_list_new(NBUCKETS),
               *counts = tern_list_new(NBUCKETS);
    for (size_t b = 0; b < NBUCKETS; b++) {
        if (b + 1 < NBUCKETS)
            tern_list_append(bounds, tern_double(hist_bounds[b]));
        tern_list_append(counts, tern_int((int64_t)ST.hist[b]));
    }
    /* terni_set steals its value even when it fails, so every one is called */
    bool ok = hist != NULL;
    ok &= terni_set(hist, "bounds_s", bounds);
    ok &= terni_set(hist, "counts", counts);
    if (!ok || !set_double(hist, "sum_s", ST.hist_sum) ||
        !terni_set_int(hist, "count", (int64_t)ST.nhist)) {
        tern_value_unref(hist);
        hist = NULL;
    }
    ok = terni_set(out, "symbols", symbols);
    ok &= terni_set(out, "stream", stream);
    ok &= terni_set(out, "duration_histogram", hist);
    return ok && terni_set_int(out, "tasks_erred", (int64_t)ST.nerred) &&
           terni_set_int(out, "transfer_bytes", ST.transfer_bytes) &&
           terni_set_int(out, "result_bytes", ST.result_bytes) &&
           set_double(out, "time_ms", now_ms()) &&
           (!S.http_url[0] || terni_set_text(out, "dashboard", S.http_url));
}

/* ---- sessions and events ---------------------------------------------------------- */

static void send_event(session *s, tern_value *ev)
{
    if (!ev)
        return;
    if (!s || s->role == ROLE_NONE) {
        tern_value_unref(ev);
        return;
    }
    if (!terni_outbox_add(&s->ob, ev))
        terni_log(TERNI_LOG_ERROR, "out of memory queueing an event");
    tern_value_unref(ev);
}

/* Direct writers of the frequent events (outbox.h): no value tree. Map keys go in CBOR's
 * deterministic order (shorter first, then bytewise), as our encoder writes them. */
static bool can_send(const session *s)
{
    return s && s->role != ROLE_NONE;
}

static void ob_done(session *s, size_t mark)
{
    if (!terni_ob_end(&s->ob, mark))
        terni_log(TERNI_LOG_ERROR, "out of memory queueing an event");
}

/* {"op": op, "keys": [key]} for a worker session (free, cancel). */
static void send_key_event(session *s, const char *op, const char *key)
{
    if (!can_send(s))
        return;
    size_t mark;
    terni_ob_begin(&s->ob, &mark);
    terni_ob_map(&s->ob, 2);
    terni_ob_text(&s->ob, "op");
    terni_ob_text(&s->ob, op);
    terni_ob_text(&s->ob, "keys");
    terni_ob_list(&s->ob, 1);
    terni_ob_text(&s->ob, key);
    ob_done(s, mark);
}

static void ob_addresses(terni_outbox *o, const task *t)
{
    terni_ob_list(o, t->who.n);
    for (size_t i = 0; i < t->who.n; i++)
        terni_ob_text(o, WHO_AT(t, i)->address);
}

/* {"op": "finished", "key", "who"?: [addresses], "value"?: bytes, "nbytes"}: who only when
 * the result is not inline (the client needs it only to fetch). */
static void send_finished(session *s, const task *t)
{
    if (!can_send(s))
        return;
    bool has_value = t->inl_len > 0;
    size_t mark;
    terni_ob_begin(&s->ob, &mark);
    terni_ob_map(&s->ob, 4);
    terni_ob_text(&s->ob, "op");
    terni_ob_text(&s->ob, "finished");
    terni_ob_text(&s->ob, "key");
    terni_ob_text(&s->ob, t->key);
    if (!has_value) {
        terni_ob_text(&s->ob, "who");
        ob_addresses(&s->ob, t);
    } else {
        terni_ob_text(&s->ob, "value");
        terni_ob_bytes(&s->ob, inline_bytes(t), t->inl_len);
    }
    terni_ob_text(&s->ob, "nbytes");
    terni_ob_int(&s->ob, t->nbytes);
    ob_done(s, mark);
}

static void flush_session(session *s)
{
    if (s->poll && s->ob.n) {
        nng_msg *m = terni_outbox_take(&s->ob);
        if (m) {
            terni_server_reply_msg(s->poll, m);
            s->poll = NULL;
        }
    }
}

static void flush_all(void)
{
    session *s, *tmp;
    HASH_ITER(hh, S.sessions, s, tmp)
    flush_session(s);
}

/* ---- small helpers ---------------------------------------------------------------- */

static void error_free(task_error *e)
{
    if (e) {
        free(e->msg);
        free(e->task);
        free(e->key);
        free(e);
    }
}

static void set_error(task *t, int code, const char *msg, const char *root_task,
                      const char *root_key)
{
    task_error *e = calloc(1, sizeof(*e));
    if (e && (!(e->msg = strdup(msg ? msg : tern_strerror(code))) ||
              !(e->task = strdup(root_task ? root_task : "")) ||
              !(e->key = strdup(root_key ? root_key : t->key)))) {
        error_free(e);
        e = NULL;
    }
    if (e)
        e->code = code;
    error_free(t->err);
    t->err = e;
}

/* t's error; a stand-in when set_error ran out of memory. */
static const task_error *error_of(const task *t)
{
    static const task_error oom = { TERN_ENOMEM, "out of memory recording the error", "", "" };
    return t->err ? t->err : &oom;
}

/* ---- notifications ---------------------------------------------------------------- */

static tern_value *erred_event(const task *t)
{
    tern_value *ev = terni_op("erred");
    const task_error *e = error_of(t);
    if (!ev || !terni_set_text(ev, "key", t->key) || !terni_set_int(ev, "code", e->code) ||
        !terni_set_text(ev, "message", e->msg) || !terni_set_text(ev, "task", e->task) ||
        !terni_set_text(ev, "root", e->key)) {
        tern_value_unref(ev);
        return NULL;
    }
    return ev;
}

/* Tells s that t has finished: a finished or an erred event. */
static void notify(session *s, const task *t)
{
    if (t->state == T_MEMORY)
        send_finished(s, t);
    else
        send_event(s, erred_event(t));
}

static void notify_wanters(task *t)
{
    for (size_t i = 0; i < t->wanters.n; i++)
        notify(WANTER(t, i), t);
}

/* ---- forgetting ------------------------------------------------------------------- */

static void free_on_workers(task *t)
{
    for (size_t i = 0; i < t->who.n; i++) {
        worker *w = WHO_AT(t, i);
        w->nkeys--;
        w->nbytes -= t->nbytes;
        send_key_event(w->s, "free", t->key);
    }
    t->who.n = 0;
}

/* The shared copy of s, counted; NULL if out of memory. */
static const char *intern(const char *s)
{
    interned *i;
    size_t len = strlen(s);
    HASH_FIND(hh, S.strings, s, len, i);
    if (!i) {
        if (!(i = malloc(sizeof(*i) + len + 1)))
            return NULL;
        i->refs = 0;
        memcpy(i->s, s, len + 1);
        HASH_ADD(hh, S.strings, s[0], len, i);
    }
    i->refs++;
    return i->s;
}

static void unintern(const char *s)
{
    if (!s)
        return;
    interned *i = (interned *)(s - offsetof(interned, s));
    if (--i->refs == 0) {
        HASH_DEL(S.strings, i);
        free(i);
    }
}

/* Requests are decoded on nng's threads, in their malloc arenas, a batch at a time: keeping a
 * reference to a small piece of one would keep the pages of the whole decoded batch resident
 * (this made the scheduler's RSS twice its heap with a million tasks held). So the arguments
 * and inline results a task keeps are copied, on the scheduler's thread, into the task's own
 * memory: the arguments after its key, an inline result of up to 8 bytes into the record. */

/* A zeroed task record with its key and then a copy of args (v's bytes, if v is a bytes
 * value; else t->args stays NULL) stored after it: one allocation. NULL if out of memory. */
static task *task_new(const char *key, const tern_value *args)
{
    size_t len = strlen(key), alen = 0;
    const void *a = NULL;
    if (tern_value_get_bytes(args, &a, &alen) != TERN_OK || alen > UINT32_MAX)
        a = NULL, alen = 0;
    task *t = calloc(1, sizeof(*t) + len + 1 + alen);
    if (t) {
        t->seq = S.task_seq++;
        t->key = (char *)(t + 1);
        memcpy(t->key, key, len + 1);
        if (a) {
            uint8_t *copy = (uint8_t *)t->key + len + 1;
            memcpy(copy, a, alen);
            t->args = copy;
            t->args_len = (uint32_t)alen;
        }
    }
    return t;
}

static void inline_clear(task *t)
{
    if (t->inl_len > sizeof(t->inl.small))
        free(t->inl.p);
    t->inl_len = 0;
}

/* Keeps a copy of v's bytes (v a bytes value) as t's inline result; false if out of memory
 * (or v is not bytes, or is empty), and t then has none. */
static bool inline_set(task *t, const tern_value *v)
{
    const void *b;
    size_t len;
    inline_clear(t);
    if (tern_value_get_bytes(v, &b, &len) != TERN_OK || !len || len > UINT32_MAX)
        return false;
    if (len > sizeof(t->inl.small)) {
        if (!(t->inl.p = malloc(len)))
            return false;
        memcpy(t->inl.p, b, len);
    } else {
        memcpy(t->inl.small, b, len);
    }
    t->inl_len = (uint32_t)len;
    return true;
}

static void task_free(task *t)
{
    unintern(t->fn);
    unintern(t->plugin_id);
    inline_clear(t);
    free(t->deps);
    ptrs_free(&t->dependents);
    ptrs_free(&t->wanters);
    ptrs_free(&t->who);
    if (t->restrict_to)
        for (char **r = t->restrict_to; *r; r++)
            free(*r);
    free(t->restrict_to);
    error_free(t->err);
    free(t);
}

static bool finished(const task *t)
{
    return t->state == T_MEMORY || t->state == T_ERRED || t->state == T_RELEASED;
}

/* In memory with at least one live copy. */
static bool present(const task *t)
{
    return t->state == T_MEMORY && t->who.n > 0;
}

/* The task finished or is forgotten: it no longer counts against its client's limit. */
static void unpend(task *t)
{
    if (t->submitter && t->submitter->npending)
        t->submitter->npending--;
    t->submitter = NULL;
}

static void maybe_forget(task *t);

/* A dependent of each of t's deps stops needing them (t finished or was forgotten). */
static void release_deps(task *t)
{
    for (size_t i = 0; i < t->ndeps; i++) {
        task *d = t->deps[i];
        if (d->nneeders)
            d->nneeders--;
    }
    for (size_t i = 0; i < t->ndeps; i++)
        maybe_forget(t->deps[i]);
}

/* Forgetting frees the task, which would pull it from under any loop walking a dependents
 * list; so maybe_forget only queues, and process_forgets() runs after each event. */
static void maybe_forget(task *t)
{
    if (t->wanters.n || t->nneeders || t->forget_queued)
        return;
    t->forget_queued = true;
    t->next_forget = S.forget_head;
    S.forget_head = t;
}

/* No one wants t's result any more, but dependents' records need its lineage: free the
 * data (or stop the computation) and keep the record. */
static void release_keep_lineage(task *t)
{
    unpend(t);
    if (t->state == T_PROCESSING && t->on) {
        send_key_event(t->on->s, "cancel", t->key);
        t->on->nprocessing--;
        t->on = NULL;
    }
    if (!finished(t))
        release_deps(t);
    free_on_workers(t);
    inline_clear(t);
    if (t->state != T_ERRED)
        t->state = T_RELEASED;
}

static void forget_now(task *t)
{
    if (t->dependents.n) {
        release_keep_lineage(t);
        return;
    }
    if (t->state == T_PROCESSING && t->on) {
        send_key_event(t->on->s, "cancel", t->key);
        t->on->nprocessing--;
        t->on = NULL;
    }
    free_on_workers(t);
    unpend(t);
    bool was_finished = finished(t);
    terni_keytab_pop(&S.tasks, t->key);
    for (size_t i = 0; i < t->dependents.n; i++) {
        task *dep = DEPENDENT(t, i);
        for (size_t j = 0; j < dep->ndeps; j++)
            if (dep->deps[j] == t)
                dep->deps[j] = dep->deps[--dep->ndeps], j--;
    }
    for (size_t i = 0; i < t->ndeps; i++)
        ptrs_remove(&t->deps[i]->dependents, t);
    if (!was_finished)
        release_deps(t);
    else
        for (size_t i = 0; i < t->ndeps; i++)
            maybe_forget(t->deps[i]);
    task_free(t);
    S.forgotten++;
}

static void process_forgets(void)
{
    while (S.forget_head) {
        task *t = S.forget_head;
        S.forget_head = t->next_forget;
        t->forget_queued = false;
        if (!t->wanters.n && !t->nneeders)
            forget_now(t);
    }
}

/* ---- placement -------------------------------------------------------------------- */

static bool allowed(const task *t, const worker *w)
{
    if (w->gone)
        return false;
    if (!t->restrict_to)
        return true;
    for (char **r = t->restrict_to; *r; r++)
        if (!strcmp(*r, w->name))
            return true;
    return false;
}

static worker *choose_worker(const task *t)
{
    size_t nworkers = HASH_COUNT(S.workers);
    if (nworkers == 0)
        return NULL;
    worker *w, *tmp, *best = NULL;
    if (t->ndeps == 0 && t->gsize > 1 && !t->restrict_to) {
        /* Co-assignment of map siblings: contiguous blocks, dealt round the workers in join
         * order, which is the table's iteration order (uthash keeps insertion order; workers
         * are only appended). A block is each worker's share of the map, at most MAP_BLOCK. */
        size_t share = (t->gsize + nworkers - 1) / nworkers;
        size_t block = share < MAP_BLOCK ? share : MAP_BLOCK;
        size_t want = (t->gindex / block) % nworkers, i = 0;
        HASH_ITER(hh, S.workers, w, tmp)
        {
            if (i++ == want) {
                best = w;
                break;
            }
        }
        if (best && !best->gone)
            return best;
        best = NULL;
    }
    double best_cost = 0;
    HASH_ITER(hh, S.workers, w, tmp)
    {
        if (!allowed(t, w))
            continue;
        double missing = 0;
        for (size_t i = 0; i < t->ndeps; i++) {
            task *d = t->deps[i];
            bool here = false;
            for (size_t k = 0; k < d->who.n && !here; k++)
                here = WHO_AT(d, k) == w;
            if (!here)
                missing += (double)d->nbytes;
        }
        double cost = (double)w->nprocessing / (w->nthreads > 0 ? w->nthreads : 1) * S.task_time +
                      missing / ASSUMED_BANDWIDTH;
        if (!best || cost < best_cost - 1e-12 ||
            (cost <= best_cost + 1e-12 && w->nprocessing < best->nprocessing)) {
            best = w;
            best_cost = cost;
        }
    }
    return best;
}

/* Whether t, about to run on w, may take d (tern_arg_take): compute into d's memory in place.
 * Only when nothing else can read d again: no client holds a future of it, t is the only
 * unfinished task that needs it, and w holds its only copy. Only for results worth it (large,
 * so not inline here either) and with lineage (not scattered data), so that d can be computed
 * again should t have to run again (requeue). */
static bool may_take(const task *d, const worker *w)
{
    return d->state == T_MEMORY && d->wanters.n == 0 && d->nneeders == 1 && d->who.n == 1 &&
           ptrs_items(&d->who)[0] == w && d->plugin_id && d->args && d->inl_len == 0 &&
           d->nbytes >= TAKE_MIN_BYTES;
}

/* After a compute event that named them in "take": the taken deps are released to t, their
 * copy on w counted as gone (w drops it from its store as the event arrives). */
static void take_deps(task *t, worker *w)
{
    for (size_t i = 0; i < t->ndeps; i++) {
        task *d = t->deps[i];
        if (may_take(d, w)) {
            ptrs_remove(&d->who, w);
            w->nkeys--;
            w->nbytes -= d->nbytes;
            d->state = T_RELEASED;
        }
    }
}

static int cmp_key_order(const void *a, const void *b)
{
    const task *x = *(task *const *)a, *y = *(task *const *)b;
    size_t lx = strlen(x->key), ly = strlen(y->key); /* CBOR order: shorter first */
    return lx != ly ? (lx < ly ? -1 : 1) : memcmp(x->key, y->key, lx);
}

/* {"op": "compute", "key", "fn", "plugin", "args", "run", "deps"?: {key: [addresses]},
 * "take"?: [key], "after"?: [key], "priority"?, "timeout_ms"?}: deps, take, after, priority and
 * timeout_ms only when there are any / non-zero. Written straight into the worker's outbox;
 * false if out of memory. take lists the deps that may_take(d, s->w) allows (take_deps then
 * releases them); when early (place_early), after lists the deps not present, which are
 * running on that worker, and nothing is taken. */
static bool send_compute(session *s, const task *t, bool early)
{
    const void *args = NULL;
    size_t args_len = 0;
    if (!can_send(s) || !t->args)
        return false;
    args = t->args;
    args_len = t->args_len;
    task *one, **deps = t->ndeps == 1 ? &one : NULL;
    size_t ntake = 0, nafter = 0;
    for (size_t i = 0; i < t->ndeps; i++) {
        ntake += !early && may_take(t->deps[i], s->w);
        nafter += early && !present(t->deps[i]);
    }
    if (t->ndeps == 1)
        one = t->deps[0];
    else if (t->ndeps > 1) {
        if (!(deps = malloc(t->ndeps * sizeof(*deps))))
            return false;
        memcpy(deps, t->deps, t->ndeps * sizeof(*deps));
        qsort(deps, t->ndeps, sizeof(*deps), cmp_key_order);
    }
    size_t mark;
    terni_outbox *o = &s->ob;
    terni_ob_begin(o, &mark);
    terni_ob_map(o, 6 + (t->ndeps > 0) + (ntake > 0) + (nafter > 0) + (t->priority != 0) +
                        (t->timeout_ms > 0));
    terni_ob_text(o, "fn");
    terni_ob_text(o, t->fn);
    terni_ob_text(o, "op");
    terni_ob_text(o, "compute");
    terni_ob_text(o, "key");
    terni_ob_text(o, t->key);
    terni_ob_text(o, "run");
    terni_ob_int(o, t->attempt);
    terni_ob_text(o, "args");
    terni_ob_bytes(o, args, args_len);
    if (t->ndeps) {
        terni_ob_text(o, "deps");
        terni_ob_map(o, t->ndeps);
        for (size_t i = 0; i < t->ndeps; i++) {
            terni_ob_text(o, deps[i]->key);
            ob_addresses(o, deps[i]);
        }
    }
    if (ntake) {
        terni_ob_text(o, "take");
        terni_ob_list(o, ntake);
        for (size_t i = 0; i < t->ndeps; i++)
            if (may_take(deps[i], s->w))
                terni_ob_text(o, deps[i]->key);
    }
    if (nafter) {
        terni_ob_text(o, "after");
        terni_ob_list(o, nafter);
        for (size_t i = 0; i < t->ndeps; i++)
            if (!present(deps[i]))
                terni_ob_text(o, deps[i]->key);
    }
    terni_ob_text(o, "plugin");
    terni_ob_text(o, t->plugin_id);
    if (t->priority) {
        terni_ob_text(o, "priority");
        terni_ob_int(o, t->priority);
    }
    if (t->timeout_ms > 0) {
        terni_ob_text(o, "timeout_ms");
        terni_ob_int(o, t->timeout_ms);
    }
    if (deps != &one)
        free(deps);
    bool ok = terni_ob_end(o, mark);
    if (!ok)
        terni_log(TERNI_LOG_ERROR, "out of memory queueing a compute event");
    return ok;
}

static void place(task *t)
{
    worker *w = choose_worker(t);
    if (!w) {
        t->state = T_NO_WORKER;
        return;
    }
    t->attempt++;
    if (!send_compute(w->s, t, false)) {
        t->state = T_NO_WORKER;
        return;
    }
    take_deps(t, w);
    t->state = T_PROCESSING;
    t->early = false;
    t->on = w;
    w->nprocessing++;
    stats_placed(t, w);
}

/* Whether every finished task of d's symbol so far gave a small result: its dependents can
 * then gain nothing from taking it (may_take), so they may be placed early. */
static bool small_results(task *d)
{
    if (!d->sym)
        d->sym = symstat_of(d->fn);
    return d->sym && d->sym->done > 0 && d->sym->large == 0;
}

/* Pipelining (a WAITING task, just submitted): when every dependency t lacks is running on one
 * worker, and t is its only dependent, t goes there at once, with "after" naming them; the
 * worker starts t as soon as they finish there, without the round trip through this
 * scheduler (a chain of small tasks then runs back to back). Not when the dependency has other
 * dependents (they are placed as usual, so that a fan-out spreads over the workers), nor when
 * its results are large or unknown (t could take one, which needs it finished: may_take).
 * Should such a dependency run again or elsewhere, t goes back to waiting (requeue). */
static void place_early(task *t)
{
    worker *w = NULL;
    for (size_t i = 0; i < t->ndeps; i++) {
        task *d = t->deps[i];
        if (present(d))
            continue;
        if (d->state != T_PROCESSING || !d->on || (w && d->on != w) || d->dependents.n != 1 ||
            !small_results(d))
            return;
        w = d->on;
    }
    if (!w || !allowed(t, w))
        return;
    t->attempt++;
    if (!send_compute(w->s, t, true)) {
        t->attempt--;
        return;
    }
    t->state = T_PROCESSING;
    t->early = true;
    t->on = w;
    w->nprocessing++;
    stats_placed(t, w);
}

static int by_seq(const void *a, const void *b)
{
    const task *x = *(task *const *)a, *y = *(task *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Calls fn(t, arg) for each task for which which(t, arg) holds, in creation order (asked again
 * just before each call: an earlier call may have changed it). The table iterates in hash
 * order; placing in creation order keeps first submitted, first run among equal priorities.
 * Out of memory for the sorted list: in the table's order. fn must not add or free tasks. */
static void each_in_order(bool (*which)(const task *, const void *), void (*fn)(task *, void *),
                          void *arg)
{
    size_t n = 0, k = 0;
    TERNI_KEYTAB_EACH (&S.tasks, e)
        n += which(e->value, arg);
    task **ts = n ? malloc(n * sizeof(*ts)) : NULL;
    if (!ts) {
        TERNI_KEYTAB_EACH (&S.tasks, e)
            if (which(e->value, arg))
                fn(e->value, arg);
        return;
    }
    TERNI_KEYTAB_EACH (&S.tasks, e)
        if (k < n && which(e->value, arg))
            ts[k++] = e->value;
    qsort(ts, k, sizeof(*ts), by_seq);
    for (size_t i = 0; i < k; i++)
        if (which(ts[i], arg))
            fn(ts[i], arg);
    free(ts);
}

static bool is_unassigned(const task *t, const void *arg)
{
    (void)arg;
    return t->state == T_NO_WORKER;
}

static void place_task(task *t, void *arg)
{
    (void)arg;
    place(t);
}

static void place_unassigned(void)
{
    each_in_order(is_unassigned, place_task, NULL);
}

/* ---- state transitions ------------------------------------------------------------ */

static void task_erred(task *t, int code, const char *msg, const char *root_task,
                       const char *root_key);

static void errs_dependents(task *t)
{
    char msg[1024];
    const task_error *e = error_of(t);
    for (size_t i = 0; i < t->dependents.n; i++) {
        task *d = DEPENDENT(t, i);
        if (finished(d))
            continue;
        snprintf(msg, sizeof(msg), "dependency %s (%s) failed: %s", e->key,
                 e->task[0] ? e->task : "data", e->msg);
        task_erred(d, e->code, msg, e->task, e->key);
    }
}

static void task_erred(task *t, int code, const char *msg, const char *root_task,
                       const char *root_key)
{
    if (t->state == T_PROCESSING && t->on) {
        if (t->early) /* waiting there for a dependency that failed */
            send_key_event(t->on->s, "cancel", t->key);
        t->on->nprocessing--;
        t->on = NULL;
    }
    bool was_finished = finished(t);
    t->state = T_ERRED;
    unpend(t);
    set_error(t, code, msg, root_task, root_key);
    notify_wanters(t);
    errs_dependents(t);
    if (!was_finished)
        release_deps(t);
    maybe_forget(t);
}

static void task_ready_check(task *t)
{
    if (t->state == T_WAITING && t->nwaiting == 0)
        place(t);
}

static void task_in_memory(task *t, worker *w, int64_t nbytes, tern_value *inline_value)
{
    bool was_finished = t->state == T_MEMORY || t->state == T_ERRED;
    bool was_needer = !finished(t);
    if (t->state == T_PROCESSING && t->on) {
        t->on->nprocessing--;
        t->on = NULL;
    }
    t->state = T_MEMORY;
    unpend(t);
    t->nbytes = nbytes;
    if (inline_value && !inline_set(t, inline_value))
        logf_("the inline result of %s is not kept (out of memory, or not non-empty bytes): "
              "clients will fetch it",
              t->key);
    bool have = false;
    for (size_t i = 0; i < t->who.n; i++)
        have |= WHO_AT(t, i) == w;
    if (!have) {
        if (ptrs_push(&t->who, w)) {
            w->nkeys++;
            w->nbytes += nbytes;
        }
    }
    if (was_finished)
        return;
    notify_wanters(t);
    for (size_t i = 0; i < t->dependents.n; i++) {
        task *d = DEPENDENT(t, i);
        if (d->state == T_WAITING && d->nwaiting) {
            d->nwaiting--;
            task_ready_check(d);
        }
    }
    if (was_needer)
        release_deps(t);
    maybe_forget(t);
}

/* ---- lineage ---------------------------------------------------------------------- */

/* Deps of a WAITING task that are not in memory. */
static size_t count_missing(const task *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->ndeps; i++)
        n += !present(t->deps[i]);
    return n;
}

/* Makes a RELEASED task (or one whose every copy was lost) compute again: it becomes WAITING,
 * and so do its own released dependencies, recursively. Scattered data cannot be made again:
 * it errs with TERN_ELOST, and that error reaches every dependent. */
static void recompute(task *t, const char *why)
{
    if (t->state != T_RELEASED && !(t->state == T_MEMORY && t->who.n == 0))
        return; /* on its way already, present, or erred */
    inline_clear(t);
    if (!t->plugin_id) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "scattered data %s was lost (%s) and cannot be recomputed: scatter it again",
                 t->key, why);
        t->state = T_RELEASED; /* not a needer of anything: task_erred must not release deps */
        task_erred(t, TERN_ELOST, msg, "", t->key);
        return;
    }
    t->state = T_WAITING;
    S.nrecomputed++;
    for (size_t i = 0; i < t->ndeps; i++)
        t->deps[i]->nneeders++;
    for (size_t i = 0; i < t->ndeps && t->state == T_WAITING; i++)
        recompute(t->deps[i], why);
    if (t->state != T_WAITING)
        return; /* a dependency erred, and with it this task */
    t->nwaiting = count_missing(t);
    task_ready_check(t);
}

/* Called for a task that was PROCESSING when a dependency of it lost its last copy, or its
 * worker left: back to WAITING (or straight to placement when nothing is missing). */
static void requeue(task *t, bool cancel_there)
{
    /* Dependents placed early on t's worker wait there for t's result: not any more. */
    for (size_t i = 0; t->on && i < t->dependents.n; i++) {
        task *d = DEPENDENT(t, i);
        if (d->state == T_PROCESSING && d->early && d->on == t->on)
            requeue(d, !d->on->gone);
    }
    if (t->on) {
        if (cancel_there)
            send_key_event(t->on->s, "cancel", t->key);
        t->on->nprocessing--;
        t->on = NULL;
    }
    t->state = T_WAITING;
    t->nwaiting = count_missing(t);
    /* A dependency t took (take_deps) is gone with that run: make it again. */
    for (size_t i = 0; i < t->ndeps && t->state == T_WAITING; i++)
        if (t->deps[i]->state == T_RELEASED)
            recompute(t->deps[i], "the task that took it runs again");
}

/* ---- ops from clients ------------------------------------------------------------- */

static bool add_wanter(task *t, session *s)
{
    for (size_t i = 0; i < t->wanters.n; i++)
        if (WANTER(t, i) == s)
            return true;
    return ptrs_push(&t->wanters, s);
}

static plugin *plugin_by_name(const char *name)
{
    plugin *p, *tmp, *best = NULL;
    HASH_ITER(hh, S.plugins, p, tmp)
    {
        if (!strcmp(p->name, name) && (!best || p->seq > best->seq))
            best = p;
    }
    return best;
}

/* A field of a task spec, or the submit op's when the spec has none (fn, plugin, group and
 * gsize are sent once per op by our client). */
static const tern_value *spec_get(const tern_value *spec, const tern_value *op, const char *k)
{
    const tern_value *v = terni_get(spec, k);
    return v ? v : terni_get(op, k);
}

static const char *spec_text(const tern_value *spec, const tern_value *op, const char *k)
{
    const char *s = NULL;
    return tern_value_get_text(spec_get(spec, op, k), &s, NULL) == TERN_OK ? s : NULL;
}

static bool spec_int(const tern_value *spec, const tern_value *op, const char *k, int64_t *out)
{
    return tern_value_get_int(spec_get(spec, op, k), out) == TERN_OK;
}

/* One task of a submit op. Errors become an erred task (so the future errs), never a failed
 * request: other tasks of the batch are unaffected. */
static void submit_one(session *s, const tern_value *spec, const tern_value *op)
{
    const char *key = terni_get_text(spec, "key");
    const char *fn = spec_text(spec, op, "fn");
    const char *pid = spec_text(spec, op, "plugin");
    const tern_value *args = terni_get(spec, "args");
    const tern_value *deps = terni_get(spec, "deps");
    if (!terni_valid_key(key))
        return; /* nothing to answer to (our client never sends such a key) */
    task *t = terni_keytab_get(&S.tasks, key);
    if (t) { /* the same key again: one task, one more interested client */
        add_wanter(t, s);
        if (t->state == T_RELEASED)
            recompute(t, "submitted again");
        else if (finished(t))
            notify(s, t);
        return;
    }
    t = task_new(key, args);
    if (!t || !(t->fn = intern(fn ? fn : "")) || (pid && !(t->plugin_id = intern(pid))) ||
        terni_keytab_put(&S.tasks, t->key, t) != 0) {
        if (t)
            task_free(t);
        return; /* out of memory: the submission is dropped, unanswered */
    }
    t->state = T_WAITING;
    int64_t v;
    if (terni_get_int(spec, "priority", &v))
        t->priority = (int)v;
    if (terni_get_int(spec, "retries", &v) && v > 0)
        t->retries = (int)(v > 1000 ? 1000 : v);
    int64_t gi = 0, gs = 0;             /* out of range: no co-assignment */
    terni_get_int(spec, "gindex", &gi); /* absent: 0 */
    if (spec_int(spec, op, "gsize", &gs) && gs > 1 && gs <= UINT32_MAX && gi >= 0 && gi < gs) {
        t->gindex = (uint32_t)gi;
        t->gsize = (uint32_t)gs;
    }
    if (terni_get_int(spec, "timeout_ms", &v) && v > 0)
        t->timeout_ms = v;
    const tern_value *rw = terni_get(spec, "workers");
    if (tern_list_len(rw)) {
        size_t n = tern_list_len(rw);
        t->restrict_to = calloc(n + 1, sizeof(char *));
        for (size_t i = 0, k = 0; t->restrict_to && i < n; i++) {
            const tern_value *item;
            const char *name;
            if (tern_list_get(rw, i, &item) == TERN_OK &&
                tern_value_get_text(item, &name, NULL) == TERN_OK)
                t->restrict_to[k++] = strdup(name);
        }
    }
    add_wanter(t, s);
    t->submitter = s;
    s->npending++;

    char msg[512] = "";
    int code = TERN_OK;
    if (!fn || !pid || !args || tern_value_type(args) != TERN_T_BYTES) {
        code = TERN_EPROTO;
        snprintf(msg, sizeof(msg), "malformed submission for %s", key);
    } else {
        plugin *p;
        HASH_FIND_STR(S.plugins, pid, p);
        if (!p) {
            code = TERN_ENOTFOUND;
            snprintf(msg, sizeof(msg), "plugin %.16s... for %s is not uploaded", pid, fn);
        }
    }
    size_t ndeps = tern_list_len(deps);
    t->deps = ndeps ? calloc(ndeps, sizeof(task *)) : NULL;
    for (size_t i = 0; code == TERN_OK && i < ndeps; i++) {
        const tern_value *item;
        const char *dk;
        task *d = NULL;
        if (tern_list_get(deps, i, &item) == TERN_OK &&
            tern_value_get_text(item, &dk, NULL) == TERN_OK)
            d = terni_keytab_get(&S.tasks, dk);
        if (!d || d == t) {
            code = TERN_ENOTFOUND;
            snprintf(msg, sizeof(msg),
                     "argument %s refers to a key the cluster does not have "
                     "(released, or never submitted)",
                     d == t ? "itself" : "future");
            break;
        }
        bool dup = false;
        for (size_t k = 0; k < t->ndeps; k++)
            dup |= t->deps[k] == d;
        if (dup)
            continue;
        t->deps[t->ndeps++] = d;
        ptrs_push(&d->dependents, t);
        d->nneeders++;
        if (!present(d))
            t->nwaiting++;
    }
    if (code != TERN_OK) {
        task_erred(t, code, msg, fn, key);
        return;
    }
    for (size_t i = 0; i < t->ndeps; i++)
        if (t->deps[i]->state == T_ERRED) {
            char m[1024];
            const task_error *e = error_of(t->deps[i]);
            snprintf(m, sizeof(m), "dependency %s (%s) failed: %s", e->key,
                     e->task[0] ? e->task : "data", e->msg);
            task_erred(t, e->code, m, e->task, e->key);
            return;
        }
    for (size_t i = 0; i < t->ndeps && t->state == T_WAITING; i++)
        recompute(t->deps[i], "needed again"); /* released lineage a new task refers to */
    if (t->state == T_WAITING && t->nwaiting == 0)
        place(t);
    else if (t->state == T_WAITING)
        place_early(t);
}

static void let_workers_in(void);

static tern_value *op_submit(session *s, const tern_value *op)
{
    const tern_value *tasks = terni_get(op, "tasks");
    const tern_value *spec;
    for (size_t i = 0; tern_list_get(tasks, i, &spec) == TERN_OK; i++) {
        submit_one(s, spec, op);
        if ((i + 1) % SUBMIT_SLICE == 0 && i + 1 < tern_list_len(tasks))
            let_workers_in();
    }
    return tern_null();
}

static void unwant(task *t, session *s)
{
    if (ptrs_remove(&t->wanters, s))
        maybe_forget(t);
}

static tern_value *op_release(session *s, const tern_value *op)
{
    const tern_value *keys = terni_get(op, "keys"), *item;
    const char *k;
    for (size_t i = 0; tern_list_get(keys, i, &item) == TERN_OK; i++) {
        task *t;
        if (tern_value_get_text(item, &k, NULL) == TERN_OK) {
            t = terni_keytab_get(&S.tasks, k);
            if (t)
                unwant(t, s);
        }
    }
    return tern_null();
}

static tern_value *op_cancel(session *s, const tern_value *op)
{
    const tern_value *keys = terni_get(op, "keys"), *item;
    const char *k;
    for (size_t i = 0; tern_list_get(keys, i, &item) == TERN_OK; i++) {
        task *t;
        if (tern_value_get_text(item, &k, NULL) != TERN_OK)
            continue;
        t = terni_keytab_get(&S.tasks, k);
        if (!t || finished(t))
            continue;
        if (t->state == T_PROCESSING && t->on) {
            send_key_event(t->on->s, "cancel", t->key);
        }
        task_erred(t, TERN_ECANCELED, "cancelled", t->fn, t->key);
    }
    return tern_null();
}

/* {"keys": [...], "addresses"?: bool} -> key -> the names (or, with addresses, the data-server
 * addresses) of the workers holding it. */
static tern_value *op_who_has(const tern_value *op)
{
    tern_value *out = tern_map_new();
    const tern_value *keys = terni_get(op, "keys"), *item;
    bool addresses = terni_get_bool(op, "addresses");
    const char *k;
    for (size_t i = 0; out && tern_list_get(keys, i, &item) == TERN_OK; i++) {
        if (tern_value_get_text(item, &k, NULL) != TERN_OK)
            continue;
        task *t = terni_keytab_get(&S.tasks, k);
        tern_value *names = tern_list_new(0);
        for (size_t j = 0; t && names && j < t->who.n; j++)
            tern_list_append(names,
                             tern_text(addresses ? WHO_AT(t, j)->address : WHO_AT(t, j)->name));
        tern_map_set(out, k, names);
    }
    return out;
}

/* Bytes malloc has handed out and not had back (all arenas): the live part of the RSS. */
static int64_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (int64_t)(mi.uordblks + mi.hblkhd);
}

static tern_value *op_status(void)
{
    tern_value *out = tern_map_new(), *workers = tern_list_new(0), *states = tern_map_new();
    size_t counts[T_NSTATES] = { 0 }, in_memory = 0;
    worker *w, *wtmp;
    HASH_ITER(hh, S.workers, w, wtmp)
    w->status_keys = tern_list_new(0);
    stats_begin();
    TERNI_KEYTAB_EACH (&S.tasks, e) {
        task *t = e->value;
        counts[t->state]++;
        in_memory += t->state == T_MEMORY;
        stats_count(t);
        if (t->state == T_PROCESSING && t->on && t->on->status_keys &&
            tern_list_len(t->on->status_keys) < RUNNING_SHOWN)
            tern_list_append(t->on->status_keys, tern_text(t->key));
    }
    for (int i = 0; states && i < T_NSTATES; i++)
        tern_map_set(states, state_names[i], tern_int((int64_t)counts[i]));
    HASH_ITER(hh, S.workers, w, wtmp)
    {
        tern_value *m = tern_map_new(), *running = w->status_keys;
        w->status_keys = NULL;
        if (!m) {
            tern_value_unref(running);
            continue;
        }
        if (terni_set(m, "running", running) && terni_set_text(m, "name", w->name) &&
            terni_set_text(m, "address", w->address) && terni_set_int(m, "nthreads", w->nthreads) &&
            terni_set_int(m, "memory", w->memory) && terni_set_int(m, "keys", (int64_t)w->nkeys) &&
            terni_set_int(m, "bytes", w->nbytes) &&
            terni_set_int(m, "processing", (int64_t)w->nprocessing) &&
            terni_set_int(m, "tasks_done", (int64_t)w->ndone) &&
            terni_set_int(m, "rss_bytes", w->rss))
            tern_list_append(workers, m);
        else
            tern_value_unref(m);
    }
    size_t nclients = 0;
    session *s, *stmp;
    HASH_ITER(hh, S.sessions, s, stmp)
    nclients += s->role == ROLE_CLIENT;
    if (!out || !terni_set(out, "workers", workers) || !terni_set(out, "tasks", states) ||
        !terni_set_int(out, "keys_in_memory", (int64_t)in_memory) ||
        !terni_set_int(out, "clients", (int64_t)nclients) ||
        !terni_set_int(out, "plugins", (int64_t)HASH_COUNT(S.plugins)) ||
        !terni_set_int(out, "tasks_done", (int64_t)S.ntasks_done) ||
        !terni_set_int(out, "workers_lost", (int64_t)S.nworkers_lost) ||
        !terni_set_int(out, "recomputed", (int64_t)S.nrecomputed) ||
        !terni_set_int(out, "rss_bytes", terni_rss_bytes_now()) ||
        !terni_set_int(out, "heap_bytes", heap_in_use()) ||
        !terni_set_int(out, "held_requests", (int64_t)S.nheld) || !stats_to_status(out)) {
        tern_value_unref(out);
        return NULL;
    }
    return out;
}

static tern_value *plugin_info(const plugin *p)
{
    tern_value *m = tern_map_new();
    if (m && terni_set_text(m, "id", p->id) && terni_set_text(m, "name", p->name) &&
        terni_set_text(m, "version", p->version) && terni_set_text(m, "tasks", p->tasks))
        return m;
    tern_value_unref(m);
    return NULL;
}

static tern_value *plugin_event(const plugin *p)
{
    tern_value *ev = terni_op("plugin");
    if (ev && terni_set_text(ev, "id", p->id) && terni_set(ev, "bytes", tern_value_ref(p->bytes)))
        return ev;
    tern_value_unref(ev);
    return NULL;
}

/* Checks and registers plugin bytes; *out gets the plugin (also when already known). */
static int add_plugin(const void *data, size_t len, plugin **out, char *msg, size_t msglen)
{
    unsigned char digest[32];
    char id[65];
    mbedtls_sha256_ret(data, len, digest, 0);
    for (int i = 0; i < 32; i++)
        snprintf(id + 2 * i, 3, "%02x", digest[i]);
    plugin *p;
    HASH_FIND_STR(S.plugins, id, p);
    if (p) {
        *out = p;
        return TERN_OK;
    }
    char *name = NULL, *version = NULL, *tasks = NULL;
    int rc = terni_inspect_plugin(S.opts->inspector, S.opts->workdir, data, len, id, &name,
                                  &version, &tasks, msg, msglen);
    if (rc != TERN_OK)
        return rc;
    p = calloc(1, sizeof(*p));
    if (!p || !(p->bytes = tern_bytes(data, len))) {
        free(p);
        free(name), free(version), free(tasks);
        snprintf(msg, msglen, "out of memory");
        return TERN_ENOMEM;
    }
    memcpy(p->id, id, sizeof(id));
    p->name = name;
    p->version = version;
    p->tasks = tasks;
    p->seq = ++S.plugin_seq;
    HASH_ADD_STR(S.plugins, id, p);
    logf_("plugin %s %s (%.12s) with tasks: %s", name, version, id, tasks);
    worker *w, *tmp;
    HASH_ITER(hh, S.workers, w, tmp)
    send_event(w->s, plugin_event(p));
    /* Clients learn the new version too, so their next submissions by name use it. */
    session *s, *stmp;
    HASH_ITER(hh, S.sessions, s, stmp)
    {
        tern_value *info = s->role == ROLE_CLIENT ? plugin_info(p) : NULL;
        if (info && terni_set_text(info, "op", "plugin"))
            send_event(s, info);
        else
            tern_value_unref(info);
    }
    *out = p;
    return TERN_OK;
}

static tern_value *op_upload(const tern_value *op)
{
    const void *data;
    size_t len;
    if (tern_value_get_bytes(terni_get(op, "bytes"), &data, &len) != TERN_OK)
        return terni_error_result(TERN_EINVAL, "upload needs the plugin file as bytes");
    char msg[1024];
    plugin *p;
    int rc = add_plugin(data, len, &p, msg, sizeof(msg));
    if (rc != TERN_OK)
        return terni_error_result(rc, "%s", msg);
    return plugin_info(p);
}

static tern_value *op_plugins(void)
{
    tern_value *l = tern_list_new(0);
    plugin *p, *tmp;
    HASH_ITER(hh, S.plugins, p, tmp)
    {
        if (plugin_by_name(p->name) == p)
            tern_list_append(l, plugin_info(p));
    }
    return l;
}

/* scatter {key}: choose a worker for data the client will put there itself. */
static tern_value *op_scatter(session *s, const tern_value *op)
{
    const char *key = terni_get_text(op, "key");
    if (!terni_valid_key(key))
        return terni_error_result(TERN_EINVAL,
                                  "scatter needs a key (1 to %d bytes, no control "
                                  "characters)",
                                  TERNI_MAX_KEY);
    task *t = terni_keytab_get(&S.tasks, key);
    if (t) {
        add_wanter(t, s);
        if (finished(t))
            notify(s, t);
    }
    worker *w, *tmp, *best = NULL;
    HASH_ITER(hh, S.workers, w, tmp)
    {
        if (!best || w->nbytes < best->nbytes)
            best = w;
    }
    if (!best)
        return terni_error_result(TERN_ENOWORKERS, "no worker is connected to hold the data");
    if (!t) {
        t = task_new(key, NULL);
        if (!t || !(t->fn = intern("")) || terni_keytab_put(&S.tasks, t->key, t) != 0) {
            if (t)
                task_free(t);
            return terni_error_result(TERN_ENOMEM, "out of memory");
        }
        t->state = T_WAITING; /* until the worker reports it holds the data */
        t->nwaiting = 1;
        add_wanter(t, s);
    }
    tern_value *r = tern_map_new();
    if (r && terni_set_text(r, "worker", best->name) && terni_set_text(r, "address", best->address))
        return r;
    tern_value_unref(r);
    return NULL;
}

/* ---- ops from workers ------------------------------------------------------------- */

static tern_value *op_done(session *s, const tern_value *op)
{
    const char *key = terni_get_text(op, "key");
    int64_t nbytes = 0, duration_us = 0;
    terni_get_int(op, "nbytes", &nbytes);
    terni_get_int(op, "rss_bytes", &s->w->rss); /* optional */
    task *t = NULL;
    if (key)
        t = terni_keytab_get(&S.tasks, key);
    if (!t) { /* forgotten meanwhile: the worker should drop it */
        if (key)
            send_key_event(s, "free", key);
        return tern_null();
    }
    if (terni_get_int(op, "duration_us", &duration_us) && duration_us >= 0) {
        S.task_time = 0.9 * S.task_time + 0.1 * ((double)duration_us * 1e-6);
        S.ntasks_done++;
    }
    if (t->state != T_PROCESSING && t->state != T_MEMORY) {
        /* erred (cancelled) or re-queued meanwhile: the result is not wanted */
        send_key_event(s, "free", key);
        return tern_null();
    }
    const tern_value *value = terni_get(op, "value");
    if (t->state == T_PROCESSING)
        stats_finished(t, s->w, duration_us, nbytes, false);
    task_in_memory(t, s->w, nbytes, (tern_value *)value);
    return tern_null();
}

static tern_value *op_erred(session *s, const tern_value *op)
{
    const char *key = terni_get_text(op, "key");
    const char *msg = terni_get_text(op, "message");
    int64_t code = TERN_ETASK;
    terni_get_int(op, "code", &code);
    int64_t run = -1;
    terni_get_int(op, "run", &run);
    task *t = NULL;
    if (key)
        t = terni_keytab_get(&S.tasks, key);
    if (!t || t->state != T_PROCESSING || t->on != s->w || (run >= 0 && run != t->attempt))
        return tern_null(); /* stale: an earlier placement, or no longer wanted */
    if (code == TERN_ELOST && t->ndeps && ++t->lost_fetches < MAX_LOST_FETCHES) {
        /* A dependency could not be fetched: its holder left (then it is being recomputed)
         * or was unreachable. Not the task's fault: wait for the data, or place again. */
        logf_("%s could not fetch a dependency on %s: %s", t->key, s->w->name, msg ? msg : "");
        requeue(t, false);
        task_ready_check(t);
        return tern_null();
    }
    if (t->retries > 0) {
        t->retries--;
        logf_("retrying %s after: %s", t->key, msg ? msg : "");
        requeue(t, false); /* which makes again what the failed run took */
        task_ready_check(t);
        return tern_null();
    }
    stats_finished(t, s->w, -1, 0, true);
    char full[1024];
    snprintf(full, sizeof(full), "%s (task %s, key %s, on worker %s)", msg ? msg : "task failed",
             t->fn, t->key, s->w->name);
    task_erred(t, code > 0 && code < TERN_ERR_COUNT ? (int)code : TERN_ETASK, full, t->fn, t->key);
    return tern_null();
}

static tern_value *op_added(session *s, const tern_value *op)
{
    const char *key = terni_get_text(op, "key");
    int64_t nbytes = 0;
    terni_get_int(op, "nbytes", &nbytes);
    task *t = NULL;
    if (key)
        t = terni_keytab_get(&S.tasks, key);
    if (!t) {
        if (key)
            send_key_event(s, "free", key);
        return tern_null();
    }
    if (t->state == T_MEMORY || (t->state == T_WAITING && !t->plugin_id))
        task_in_memory(t, s->w, nbytes, NULL);
    else if (t->state == T_RELEASED) /* released while it was fetched: not counted, so drop it */
        send_key_event(s, "free", key);
    return tern_null();
}

/* ---- sessions --------------------------------------------------------------------- */

/* A restarted executor reports {why, keys} of its predecessor's crash: the tasks it was
 * running are suspects. One blamed --allowed-failures times errs with TERN_EKILLED. */
static void blame_crash(worker *w, const tern_value *crashed)
{
    const char *why = terni_get_text(crashed, "why");
    const tern_value *keys = terni_get(crashed, "keys"), *item;
    if (!crashed)
        return;
    logf_("worker %s restarted after its executor %s", w->name, why ? why : "crashed");
    const char *key;
    for (size_t i = 0; tern_list_get(keys, i, &item) == TERN_OK; i++) {
        task *t = NULL;
        if (tern_value_get_text(item, &key, NULL) == TERN_OK)
            t = terni_keytab_get(&S.tasks, key);
        if (!t || finished(t))
            continue;
        t->suspicious++;
        if (t->suspicious < S.opts->allowed_failures)
            continue;
        char msg[1024];
        snprintf(msg, sizeof(msg),
                 "task %s (key %s) killed %d workers: it was running each time one died "
                 "(last: worker %s, whose executor %s); it is not run again "
                 "(--allowed-failures %d)",
                 t->fn, t->key, t->suspicious, w->name, why ? why : "crashed",
                 S.opts->allowed_failures);
        if (t->state == T_PROCESSING && t->on)
            send_key_event(t->on->s, "cancel", t->key);
        task_erred(t, TERN_EKILLED, msg, t->fn, t->key);
    }
}

static tern_value *op_hello(session *s, const tern_value *op)
{
    int64_t wire = 0;
    terni_get_int(op, "wire", &wire);
    if (wire != TERNI_WIRE_VERSION)
        return terni_error_result(TERN_EPROTO,
                                  "wire protocol version %lld is not supported: this scheduler "
                                  "speaks version %d; use matching tern versions",
                                  (long long)wire, TERNI_WIRE_VERSION);
    if (s->role != ROLE_NONE)
        return terni_error_result(TERN_EPROTO, "this connection already said hello");
    const char *role = terni_get_text(op, "role");
    if (role && !strcmp(role, "worker")) {
        const char *name = terni_get_text(op, "name"), *address = terni_get_text(op, "address");
        int64_t nthreads = 1, memory = 0;
        terni_get_int(op, "nthreads", &nthreads);
        terni_get_int(op, "memory", &memory);
        if (!name || !*name || !address || !*address)
            return terni_error_result(TERN_EINVAL, "a worker must give a name and an address");
        if (!terni_valid_worker_name(name) || !terni_valid_address(address))
            return terni_error_result(TERN_EINVAL,
                                      "a worker name is 1 to 128 of A-Z a-z 0-9 . _ : @ + -, "
                                      "and its address a tcp://, tls+tcp:// or ipc:// URL");
        worker *w;
        HASH_FIND_STR(S.workers, name, w);
        if (w)
            return terni_error_result(TERN_EINVAL,
                                      "a worker named %s is already connected; names must be "
                                      "unique (--name)",
                                      name);
        w = calloc(1, sizeof(*w));
        if (!w || !(w->name = strdup(name)) || !(w->address = strdup(address))) {
            if (w)
                free(w->name);
            free(w);
            return terni_error_result(TERN_ENOMEM, "out of memory");
        }
        w->nthreads = nthreads > 0 ? (int)nthreads : 1;
        w->memory = memory;
        w->s = s;
        w->last_ns = terni_now_ns();
        HASH_ADD_KEYPTR(hh, S.workers, w->name, strlen(w->name), w);
        s->role = ROLE_WORKER;
        s->w = w;
        logf_("worker %s joined (%d threads, data at %s)", w->name, w->nthreads, w->address);
        plugin *p, *tmp;
        HASH_ITER(hh, S.plugins, p, tmp)
        send_event(s, plugin_event(p));
        blame_crash(w, terni_get(op, "crashed"));
        place_unassigned();
    } else {
        s->role = ROLE_CLIENT;
    }
    tern_value *r = terni_op("welcome");
    if (r && terni_set_int(r, "wire", TERNI_WIRE_VERSION) &&
        terni_set_int(r, "heartbeat_ms", S.opts->heartbeat_ms) &&
        terni_set_int(r, "death_timeout_ms", S.opts->death_timeout_ms) &&
        terni_set_int(r, "workers", (int64_t)HASH_COUNT(S.workers)) &&
        terni_set(r, "plugins", op_plugins()))
        return r;
    tern_value_unref(r);
    return NULL;
}

static void free_worker(worker *w)
{
    free(w->name);
    free(w->address);
    free(w);
}

/* A worker left (connection lost or declared dead). See "Worker loss" above. */
/* Whether a dependency of t lost its last copy just now (worker_lost, between steps 1 and
 * 4: still MEMORY, no holder). Others it lacks are not lost: a released one it took (its run
 * holds it), or one running on its worker that it was placed early after. */
static bool needs_lost(const task *t)
{
    for (size_t i = 0; i < t->ndeps; i++)
        if (t->deps[i]->state == T_MEMORY && t->deps[i]->who.n == 0)
            return true;
    return false;
}

static bool is_processing(const task *t, const void *arg)
{
    (void)arg;
    return t->state == T_PROCESSING;
}

/* worker_lost's step 3 for one task processing on w, or elsewhere. */
static void requeue_from(task *t, void *arg)
{
    worker *w = arg;
    if (t->on == w) {
        t->on = NULL;
        w->nprocessing--;
        requeue(t, false);
    } else if (needs_lost(t)) {
        requeue(t, true);
    }
}

static bool is_ready(const task *t, const void *arg)
{
    (void)arg;
    return t->state == T_WAITING && t->nwaiting == 0 && t->plugin_id;
}

static void worker_lost(worker *w, const char *why)
{
    logf_("worker %s left: %s", w->name, why);
    S.nworkers_lost++;
    w->gone = true;
    HASH_DEL(S.workers, w);
    ptrs lostp = { 0 };
    /* 1. Drop the worker from every who_has; collect keys that lost their last copy. */
    TERNI_KEYTAB_EACH (&S.tasks, e) {
        task *t = e->value;
        bool had = false;
        for (size_t i = 0; i < t->who.n; i++)
            if (WHO_AT(t, i) == w) {
                void **items = ptrs_items(&t->who);
                items[i--] = items[--t->who.n];
                had = true;
            }
        if (had && t->state == T_MEMORY && t->who.n == 0 && !ptrs_push(&lostp, t))
            logf_("out of memory handling the loss of %s", t->key);
    }
    void **lost = ptrs_items(&lostp);
    size_t nlost = lostp.n;
    /* 2. Waiting dependents count each lost key as missing again. */
    for (size_t i = 0; i < nlost; i++) {
        task *l = lost[i];
        for (size_t k = 0; k < l->dependents.n; k++) {
            task *d = DEPENDENT(l, k);
            if (d->state == T_WAITING)
                d->nwaiting++;
        }
    }
    /* 3. Tasks running there go back to waiting; so do tasks running elsewhere that need a
     *    lost key (they would fail fetching it): they are cancelled there. */
    each_in_order(is_processing, requeue_from, w);
    /* 4. Lost keys: recompute those still wanted or needed; the rest become lineage. */
    char why_lost[300];
    snprintf(why_lost, sizeof(why_lost), "its only copy was on worker %s, which left", w->name);
    for (size_t i = 0; i < nlost; i++) {
        task *t = lost[i];
        if (t->wanters.n || t->nneeders) {
            for (size_t k = 0; k < t->wanters.n && t->plugin_id; k++) {
                tern_value *ev = terni_op("recomputing");
                if (ev && terni_set_text(ev, "key", t->key))
                    send_event(WANTER(t, k), ev);
                else
                    tern_value_unref(ev);
            }
            recompute(t, why_lost);
        } else {
            t->state = T_RELEASED;
            maybe_forget(t);
        }
    }
    ptrs_free(&lostp);
    /* 5. Place everything that is ready again. */
    each_in_order(is_ready, place_task, NULL);
    free_worker(w);
}

static void session_lost(uint32_t pipe, const char *why)
{
    dead_pipe *d;
    HASH_FIND(hh, S.dead, &pipe, sizeof(pipe), d);
    if (!d && (d = calloc(1, sizeof(*d)))) {
        d->pipe = pipe;
        HASH_ADD(hh, S.dead, pipe, sizeof(pipe), d);
    }
    session *s;
    HASH_FIND(hh, S.sessions, &pipe, sizeof(pipe), s);
    if (!s)
        return;
    HASH_DEL(S.sessions, s);
    if (s->poll)
        terni_server_drop(s->poll);
    if (s->role == ROLE_WORKER && s->w)
        worker_lost(s->w, why);
    if (s->role == ROLE_CLIENT) {
        TERNI_KEYTAB_EACH (&S.tasks, e) {
            task *t = e->value;
            if (t->submitter == s)
                t->submitter = NULL;
            if (ptrs_remove(&t->wanters, s))
                maybe_forget(t);
        }
    }
    if (s->held.req) {
        terni_server_drop(s->held.req);
        tern_value_unref(s->held.body);
        S.nheld--;
    }
    terni_outbox_free(&s->ob);
    free(s);
}

static session *session_get(uint32_t pipe)
{
    session *s;
    HASH_FIND(hh, S.sessions, &pipe, sizeof(pipe), s);
    if (s)
        return s;
    dead_pipe *d;
    HASH_FIND(hh, S.dead, &pipe, sizeof(pipe), d);
    if (d) /* a request that was queued before its connection's loss was seen */
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->pipe = pipe;
    HASH_ADD(hh, S.sessions, pipe, sizeof(pipe), s);
    return s;
}

/* --allow-upload: an error result when this session may not upload, else NULL. */
static tern_value *upload_refusal(const session *s)
{
    if (S.opts->allow_upload == TERNI_UPLOAD_NO)
        return terni_error_result(TERN_EAUTH, "plugin upload is disabled on this scheduler "
                                              "(--allow-upload no); ask its operator to "
                                              "--preload the plugin");
    if (S.opts->allow_upload == TERNI_UPLOAD_LOCAL && !terni_pipe_is_local(s->pipe))
        return terni_error_result(TERN_EAUTH, "this scheduler accepts plugin uploads only from "
                                              "clients on its own machine (--allow-upload local)");
    return NULL;
}

/* Answers s's parked poll, if any, with no events. */
static void answer_poll_empty(session *s)
{
    if (!s->poll)
        return;
    tern_value *empty = tern_list_new(0);
    if (!empty || terni_server_reply(s->poll, empty) != TERN_OK)
        terni_server_drop(s->poll);
    tern_value_unref(empty);
    s->poll = NULL;
}

/* The peer is about to close its connection: its parked poll is answered now (empty; events
 * queued for it stay queued) and any later one at once, so that nothing is sent to it while it
 * closes (nng 1.5.2's close can deadlock when a reply lands then: link.c, say_bye). */
static tern_value *op_bye(session *s)
{
    s->bye = true;
    answer_poll_empty(s);
    return tern_null();
}

static tern_value *dispatch(session *s, const tern_value *op)
{
    const char *name = terni_op_name(op);
    if (!strcmp(name, "hello"))
        return op_hello(s, op);
    if (s->role == ROLE_NONE)
        return terni_error_result(TERN_EPROTO, "say hello first (op %s before hello)", name);
    if (!strcmp(name, "bye"))
        return op_bye(s);
    if (s->role == ROLE_CLIENT) {
        if (!strcmp(name, "submit"))
            return op_submit(s, op);
        if (!strcmp(name, "release"))
            return op_release(s, op);
        if (!strcmp(name, "cancel"))
            return op_cancel(s, op);
        if (!strcmp(name, "upload")) {
            tern_value *no = upload_refusal(s);
            return no ? no : op_upload(op);
        }
        if (!strcmp(name, "plugins"))
            return op_plugins();
        if (!strcmp(name, "scatter"))
            return op_scatter(s, op);
    } else {
        if (!strcmp(name, "done"))
            return op_done(s, op);
        if (!strcmp(name, "erred"))
            return op_erred(s, op);
        if (!strcmp(name, "added"))
            return op_added(s, op);
        if (!strcmp(name, "plugin_failed")) {
            logf_("worker %s could not load plugin %.12s: %s", s->w->name,
                  terni_get_text(op, "id") ? terni_get_text(op, "id") : "?",
                  terni_get_text(op, "message") ? terni_get_text(op, "message") : "");
            return tern_null();
        }
    }
    if (!strcmp(name, "heartbeat"))
        return tern_null(); /* its arrival is the point (liveness) */
    if (!strcmp(name, "who_has"))
        return op_who_has(op);
    if (!strcmp(name, "status"))
        return op_status();
    return terni_error_result(TERN_EPROTO, "unknown op \"%s\" for a %s", name,
                              s->role == ROLE_CLIENT ? "client" : "worker");
}

/* A request holding a submit op, from a client over its pending-task limit. */
static bool must_hold(const session *s, const terni_event *ev)
{
    size_t cap = S.opts->max_pending ? S.opts->max_pending : TERNI_MAX_PENDING_DEFAULT;
    if (s->role != ROLE_CLIENT || s->npending < cap || tern_value_type(ev->body) != TERN_T_LIST)
        return false;
    const tern_value *op;
    for (size_t i = 0; tern_list_get(ev->body, i, &op) == TERN_OK; i++)
        if (!strcmp(terni_op_name(op), "submit"))
            return true;
    return false;
}

static void handle_request(terni_event *ev)
{
    session *s = session_get(ev->pipe);
    if (!s) {
        terni_server_drop(ev->req);
        tern_value_unref(ev->body);
        return;
    }
    if (s->w && ev->at_ns > s->w->last_ns)
        s->w->last_ns = ev->at_ns;
    if (must_hold(s, ev)) {
        if (s->held.req) { /* our link never sends two; a hand-made client gets refused */
            tern_value *r = tern_list_of(terni_error_result(
                TERN_EBUSY, "too many unfinished tasks; a submission is already waiting"));
            if (!r || terni_server_reply(ev->req, r) != TERN_OK)
                terni_server_drop(ev->req);
            tern_value_unref(r);
            tern_value_unref(ev->body);
            return;
        }
        s->held = *ev;
        S.nheld++;
        return;
    }
    tern_value *reply = NULL;
    const tern_value *first = NULL;
    if (!ev->body || tern_value_type(ev->body) != TERN_T_LIST) {
        reply = tern_list_of(terni_error_result(TERN_EPROTO, "malformed request: %s",
                                                ev->body ? "not a list of ops" : ev->error));
    } else if (tern_list_get(ev->body, 0, &first) == TERN_OK &&
               !strcmp(terni_op_name(first), "poll") && tern_list_len(ev->body) > 1) {
        reply = tern_list_of(terni_error_result(TERN_EPROTO, "a poll request must hold only the "
                                                             "poll op"));
    } else if (first && !strcmp(terni_op_name(first), "poll") && s->role != ROLE_NONE) {
        if (s->bye) { /* sent before the peer's "bye" arrived: answered at once, not parked */
            reply = tern_list_new(0);
        } else {
            answer_poll_empty(s); /* one poll per peer: the older one goes empty */
            s->poll = ev->req;
            tern_value_unref(ev->body);
            flush_session(s);
            return;
        }
    } else {
        size_t n = tern_list_len(ev->body);
        reply = tern_list_new(n);
        for (size_t i = 0; reply && i < n; i++) {
            const tern_value *op;
            tern_list_get(ev->body, i, &op);
            tern_value *r = dispatch(s, op);
            if (tern_list_append(reply, r ? r : terni_error_result(TERN_ENOMEM, "out of memory")) !=
                TERN_OK) {
                tern_value_unref(reply);
                reply = NULL;
            }
        }
    }
    if (reply)
        terni_server_reply(ev->req, reply);
    else
        terni_server_drop(ev->req);
    tern_value_unref(reply);
    tern_value_unref(ev->body);
}

/* ---- a long submit op lets the workers in ---------------------------------------- */

static bool later_has_pipe(uint32_t pipe)
{
    for (size_t i = S.later_head; i < S.nlater; i++)
        if (S.later[i].pipe == pipe)
            return true;
    return false;
}

/* Room for one more event set aside; false if out of memory. */
static bool later_reserve(void)
{
    if (S.nlater < S.later_cap)
        return true;
    size_t cap = S.later_cap ? S.later_cap * 2 : 64;
    terni_event *grown = realloc(S.later, cap * sizeof(*grown));
    if (!grown)
        return false;
    S.later = grown;
    S.later_cap = cap;
    return true;
}

/* The next event: those set aside come first, in order, then the server's queue. */
static int next_event(int timeout_ms, terni_event *ev)
{
    if (S.later_head < S.nlater) {
        *ev = S.later[S.later_head++];
        if (S.later_head == S.nlater)
            S.later_head = S.nlater = 0;
        return TERN_OK;
    }
    return terni_server_next(S.srv, timeout_ms, ev);
}

/* A request that holds just a poll op: it only parks (handle_request). */
static bool is_poll(const terni_event *ev)
{
    const tern_value *op;
    return tern_list_len(ev->body) == 1 && tern_list_get(ev->body, 0, &op) == TERN_OK &&
           !strcmp(terni_op_name(op), "poll");
}

/* Runs between two tasks of a long submit op (op_submit), so that the workers start on the
 * op's first tasks while the rest is placed, instead of after all of it, and clients hear of
 * the first results. Parked polls are answered with the events queued so far; then the events
 * that arrived meanwhile are taken: a worker's requests and a client's polls are handled now
 * (a poll parks, reports apply), anything else is set aside, in order, for the main loop
 * (next_event). Each task before this point is complete (submit_one), so a worker's request
 * changes nothing it could not change between two submit ops. A session with an event set
 * aside has its later ones set aside too, so every peer's requests are handled in the order
 * they came; sessions are neither made nor lost here. */
static void let_workers_in(void)
{
    if (!S.srv) /* the fuzzing entry has no server */
        return;
    flush_all();
    terni_event ev;
    while (later_reserve() && terni_server_next(S.srv, 0, &ev) == TERN_OK) {
        session *s = NULL;
        if (ev.kind == TERNI_EV_REQUEST)
            HASH_FIND(hh, S.sessions, &ev.pipe, sizeof(ev.pipe), s);
        if (s && (s->role == ROLE_WORKER || (s->role == ROLE_CLIENT && is_poll(&ev))) &&
            !later_has_pipe(ev.pipe)) {
            S.request_bytes += ev.bytes;
            handle_request(&ev);
            process_forgets();
        } else {
            S.later[S.nlater++] = ev;
        }
    }
    flush_all();
}

/* Handles held requests whose client has dropped below its limit again. */
static void resume_held(void)
{
    session *s, *tmp;
    HASH_ITER(hh, S.sessions, s, tmp)
    {
        if (!S.nheld)
            return;
        if (!s->held.req || must_hold(s, &s->held))
            continue;
        terni_event ev = s->held;
        memset(&s->held, 0, sizeof(s->held));
        S.nheld--;
        handle_request(&ev);
    }
}

static int preload(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        terni_log(TERNI_LOG_ERROR, "cannot open plugin %s: %s", path, strerror(errno));
        return TERN_ENOTFOUND;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = n > 0 ? malloc((size_t)n) : NULL;
    int rc = TERN_EIO;
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        char msg[1024];
        plugin *p;
        rc = add_plugin(buf, (size_t)n, &p, msg, sizeof(msg));
        if (rc != TERN_OK)
            terni_log(TERNI_LOG_ERROR, "plugin %s refused: %s", path, msg);
    }
    free(buf);
    fclose(f);
    return rc;
}

/* Frees every session (their parked requests belong to the server). */
static void free_sessions(void)
{
    session *s, *stmp;
    HASH_ITER(hh, S.sessions, s, stmp)
    {
        HASH_DEL(S.sessions, s);
        terni_outbox_free(&s->ob);
        tern_value_unref(s->held.body);
        free(s);
    }
    for (size_t i = S.later_head; i < S.nlater; i++)
        tern_value_unref(S.later[i].body); /* their requests belong to the server too */
    free(S.later);
    S.later = NULL;
    S.later_head = S.nlater = S.later_cap = 0;
}

/* Frees the task graph, workers and plugins (after free_sessions). */
static void free_state(void)
{
    TERNI_KEYTAB_EACH (&S.tasks, e)
        task_free(e->value);
    terni_keytab_free(&S.tasks);
    worker *w, *wtmp;
    HASH_ITER(hh, S.workers, w, wtmp)
    {
        HASH_DEL(S.workers, w);
        free_worker(w);
    }
    dead_pipe *d, *dtmp;
    HASH_ITER(hh, S.dead, d, dtmp)
    {
        HASH_DEL(S.dead, d);
        free(d);
    }
    plugin *p, *ptmp;
    HASH_ITER(hh, S.plugins, p, ptmp)
    {
        HASH_DEL(S.plugins, p);
        free(p->name);
        free(p->version);
        free(p->tasks);
        tern_value_unref(p->bytes);
        free(p);
    }
}

/* Declares dead the workers silent for longer than --death-timeout-ms (a host that hangs or
 * is cut off keeps its TCP connection open). Only called when the event queue is not backed
 * up, so a busy scheduler never mistakes its own delay for a worker's silence. */
static void check_liveness(uint64_t now)
{
    uint64_t limit = (uint64_t)S.opts->death_timeout_ms * 1000000u;
    worker *w, *tmp;
    HASH_ITER(hh, S.workers, w, tmp)
    {
        if (now <= w->last_ns || now - w->last_ns <= limit)
            continue;
        char why[200];
        snprintf(why, sizeof(why), "no heartbeat for %.1f s (--death-timeout-ms %d)",
                 (double)(now - w->last_ns) / 1e9, S.opts->death_timeout_ms);
        uint32_t pipe = w->s->pipe;
        session_lost(pipe, why); /* frees w */
        terni_server_close_pipe(S.srv, pipe);
    }
}

int terni_sched_run(const terni_sched_opts *opts, atomic_int *stop)
{
    memset(&S, 0, sizeof(S));
    S.opts = opts;
    S.task_time = INITIAL_TASK_TIME;
    char bound[512], err[512];
    terni_sec sec = { .tls_cert = opts->tls_cert,
                      .tls_key = opts->tls_key,
                      .tls_ca = opts->tls_ca,
                      .tls_verify_clients = opts->tls_verify_clients,
                      .token = opts->token };
    int rc = terni_server_open(opts->listen, &sec, &S.srv, bound, sizeof(bound), err, sizeof(err));
    memset(&sec.token, 0, sizeof(sec.token));
    if (rc != TERN_OK) {
        terni_log(TERNI_LOG_ERROR, "%s", err);
        return 1;
    }
    char warn[512];
    rc = terni_http_start(opts->http, &S.http, S.http_url, sizeof(S.http_url), warn, sizeof(warn),
                          err, sizeof(err));
    if (rc != TERN_OK) {
        terni_log(TERNI_LOG_ERROR, "%s", err);
        terni_server_close(S.srv);
        return 1;
    }
    if (warn[0])
        terni_log(TERNI_LOG_WARN, "%s", warn);
    /* The address file goes out before the preloads: checking a plugin starts a process
     * (tern-plugin-info), and peers that dial meanwhile simply wait in nng until the loop
     * below runs, which is after every preload, so no hello is answered without them. */
    if (opts->address_file) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", opts->address_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%s\n", bound) < 0 || fclose(f) != 0 ||
            rename(tmp, opts->address_file) != 0) {
            terni_log(TERNI_LOG_ERROR, "cannot write %s: %s", opts->address_file, strerror(errno));
            terni_http_stop(S.http);
            terni_server_close(S.srv);
            return 1;
        }
    }
    if (terni_keytab_init(&S.tasks) != 0) {
        terni_log(TERNI_LOG_ERROR, "out of memory");
        terni_http_stop(S.http);
        terni_server_close(S.srv);
        return 1;
    }
    for (const char **p = opts->preload; p && *p; p++)
        preload(*p);
    logf_("listening on %s", bound);
    if (S.http)
        logf_("dashboard at %s", S.http_url);
    uint64_t next_check = 0, check_every = (uint64_t)opts->heartbeat_ms * 1000000u / 2;
    int wait_ms = opts->heartbeat_ms < 200 ? opts->heartbeat_ms : 200;
    while (!*stop) {
        terni_http_refresh(S.http, op_status);
        terni_event ev;
        bool trim = S.request_bytes >= TRIM_AFTER_BYTES;
        int got = next_event(trim ? 0 : wait_ms, &ev);
        /* The queue is empty after a burst, or quiet for a whole wait after some work. */
        if (got != TERN_OK && (trim || S.request_bytes >= TRIM_IDLE_AFTER_BYTES || S.forgotten)) {
            malloc_trim(0);
            S.request_bytes = 0;
            S.forgotten = 0;
            if (trim)
                continue;
        }
        if (got == TERN_OK && ev.kind == TERNI_EV_REQUEST)
            S.request_bytes += ev.bytes;
        uint64_t now = terni_now_ns();
        /* Idle, or the event just taken is fresh (the queue is not backed up). */
        if (now >= next_check && (got != TERN_OK || now - ev.at_ns < check_every)) {
            check_liveness(now);
            process_forgets();
            flush_all();
            next_check = now + check_every;
        }
        if (got != TERN_OK)
            continue;
        switch (ev.kind) {
        case TERNI_EV_REQUEST:
            handle_request(&ev);
            break;
        case TERNI_EV_PEER_LOST:
            session_lost(ev.pipe, "connection lost");
            break;
        default:
            break;
        }
        process_forgets();
        if (S.nheld)
            resume_held();
        process_forgets();
        flush_all();
    }
    logf_("shutting down");
    terni_http_stop(S.http);
    S.http = NULL;
    stats_free();
    free_sessions();
    terni_server_close(S.srv);
    free_state();
    return 0;
}

/* ---- fuzzing entry (tests/fuzz/fuzz_scheduler.c) ------------------------------------ */

void terni_sched_fuzz_begin(const terni_sched_opts *opts)
{
    memset(&S, 0, sizeof(S));
    S.opts = opts;
    S.task_time = INITIAL_TASK_TIME;
    terni_keytab_init(&S.tasks); /* out of memory: every put fails, as out of memory */
}

void terni_sched_fuzz_event(terni_event *ev)
{
    if (ev->kind == TERNI_EV_REQUEST)
        handle_request(ev);
    else if (ev->kind == TERNI_EV_PEER_LOST)
        session_lost(ev->pipe, "connection lost");
    process_forgets();
    if (S.nheld)
        resume_held();
    process_forgets();
    flush_all();
}

void terni_sched_fuzz_end(void)
{
    session *s, *tmp;
    HASH_ITER(hh, S.sessions, s, tmp)
    {
        if (s->poll)
            terni_server_drop(s->poll);
        if (s->held.req)
            terni_server_drop(s->held.req);
    }
    stats_free();
    free_sessions();
    free_state();
}
