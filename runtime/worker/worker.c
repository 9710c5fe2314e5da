/* The worker: runs tasks on N threads, holds results, serves them to peers and clients.
 *
 * Design notes
 *  Threads:
 *   - the link's poll callback (an nng thread, link.h) receives scheduler events (compute,
 *     free, cancel, plugin) and only queues or applies them; loading a plugin happens there
 *     too (rare, short);
 *   - N executor threads pop the highest-priority ready task, gather its dependencies (from
 *     the local store, or fetched directly from the peer workers listed in the compute event,
 *     never through the scheduler), substitute them into the arguments, call the task, store
 *     the result and report "done" (with the value inline when small) or "erred";
 *   - the data server's nng callbacks answer get/put/unpin from peers and clients. A get
 *     from a process on this host (its "host" identity equals ours, shm.h) gets each large
 *     array as a memfd descriptor instead of its bytes. Large results are allocated in
 *     memfds from the start (bigbuf.c, turned on at start unless TERN_NO_SHM), so the array's
 *     own buffer is lent: the reader maps it, and until it unpins the key (or its
 *     connection closes) the value is pinned here, so that the buffer is neither freed nor
 *     reused under the mapping even if the key is dropped. A pin that goes with its
 *     connection forsakes the buffer (never written or reused again, bigbuf.h): the reader
 *     may still map it. Other arrays go as a sealed copy. The descriptor is kept with the
 *     stored value (closed when the key is dropped).
 *  Locking: one mutex guards the store and the queue; values are immutable once stored
 *  (shared values are frozen), so readers take a reference and drop the lock at once.
 *  Taking: a compute event may name dependencies held here whose last reader the task is
 *  ("take", sent by the scheduler only when no client wants them and no other task needs
 *  them). They move from the store into the job at once, and the task is called with them
 *  referenced once, so tern_arg_take can let it compute in place (an add into an operand
 *  instead of a fresh 8 MB array). A queued job that is cancelled frees them with itself.
 *  Early placement: a compute event may name in "after" dependencies that are being computed
 *  here; the job then waits in w->blocked (indexed by awaited key in w->awaiting) and joins
 *  the ready queue when the last of them is stored, with no message in between.
 *  Cancellation: "free"/"cancel" for a key that is queued or blocked removes it; for a
 *  running task it marks the key so its result is dropped when the task returns.
 *  Scheduler loss: the link goes down (connection lost, or no answer within the scheduler's
 *  death timeout); the worker drops its data and queue (a scheduler that declared it dead or
 *  restarted knows nothing of them) and reconnects with backoff, for ever, under the same
 *  name. w->link is swapped under link_lock; every post goes through post().
 *  Crash forensics: each executor thread writes the key it runs into its slot of
 *  <workdir>/running (a shared file mapping: a plain store, no system call per task). When
 *  the process dies, the nanny starts a new one with --crashed WHY; it reads the slots left
 *  behind and reports them in its hello so the scheduler can blame the right tasks.
 *  Task timeouts: a watchdog thread checks running tasks; one past its timeout is reported
 *  erred (TERN_ETIMEDOUT), and the process exits with TERNI_EXIT_RESTART, announced to the
 *  nanny (nanny.c), so that it starts a fresh executor and blames no task: a thread stuck in
 *  plugin code cannot be stopped any other way.
 */
#include "worker.h"

#include "auth.h"
#include "bigbuf.h"
#include "keytab.h"
#include "link.h"
#include "outbox.h"
#include "loader.h"
#include "log.h"
#include "rss.h"
#include "peers.h"
#include "shm.h"
#include "task_ctx.h"
#include "tls.h"
#include "utf8.h"
#include "wire.h"

#include <fcntl.h>
#include <malloc.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uthash.h>

#define INLINE_MAX       (64 * 1024) /* results up to this many encoded bytes ride with "done" */
#define FETCH_TIMEOUT_MS 60000
#define DATA_RECEIVERS   4
#define SLOT_SIZE        (TERNI_MAX_KEY + 64) /* per thread in <workdir>/running: a whole key */
#define WATCHDOG_MS      20  /* how often the watchdog checks timeouts and idleness */
#define TRIM_IDLE_MS     200 /* idle this long after the store changed, the heap is trimmed */

/* A result held here: in w->store under its key, which it owns (allocated with it). */
typedef struct stored {
    tern_value *value;
    int64_t nbytes;
    terni_shm_file shm; /* the value's bytes in a sealed memfd, made on first use (shm.h) */
    char key[];
} stored;

typedef struct job {
    char *key, *fn, *plugin; /* stored after the struct, in its allocation */
    tern_value *args;        /* CBOR bytes */
    tern_value *deps;        /* map key -> [addresses] */
    tern_value *taken;       /* NULL, or map key -> value: dependencies handed over to this job */
    int priority;
    int64_t run, timeout_ms; /* attempt number echoed to the scheduler; 0: no timeout */
    uint64_t seq, start_ns;
    int cancelled; /* written under w->lock, read atomically by a fetch in progress */
    char *slot;    /* its executor's slot in <workdir>/running, or NULL */
    struct job *prev_run, *next_run; /* in w->running while executing */
    char **after;         /* keys computed here that it was placed early after ("after") */
    size_t nafter, nwait; /* of them: all, and not stored yet */
    struct job *prev_blk, *next_blk; /* in w->blocked while nwait > 0 */
} job;

/* A queued job with its order inline: sifting the heap then reads only the array. With the job
 * read through its pointer at each comparison, nearly every read missed the cache (50,000
 * queued jobs in throughput_100k: executor_main's heap_pop was 15% of an executor's time). */
typedef struct queued {
    int priority;
    uint64_t seq;
    job *j;
} queued;

/* A result being computed here that blocked jobs wait for. */
typedef struct awaited {
    char *key;
    struct job **jobs;
    size_t n, cap;
    UT_hash_handle hh;
} awaited;

typedef struct data_ctx {
    struct worker *w;
    nng_ctx ctx;
    nng_aio *aio;
    bool sending;
} data_ctx;

/* An array lent to a reader on this host (shm.h): held until it unpins or its pipe goes (then
 * forsaken: data_pipe_gone). */
typedef struct pin {
    uint32_t pipe;
    char *key;
    tern_value *value;
} pin;

typedef struct executor {
    struct worker *w;
    int index; /* slot in the running file */
} executor;

typedef struct worker {
    const terni_worker_opts *opts;
    terni_loader *loader;
    terni_peers *peers;
    pthread_mutex_t link_lock;
    terni_link *link; /* NULL while disconnected */
    int link_down;    /* set by on_down (an nng thread), read by the main loop: atomics */
    char *slots;      /* nthreads x SLOT_SIZE, shared file mapping, or NULL */
    size_t slots_len;
    pthread_mutex_t lock;
    pthread_cond_t cond;    /* executors: a job was queued, or stopping */
    pthread_cond_t wd_cond; /* watchdog: stopping (its own, so it never takes a job's wake-up) */
    terni_keytab store;     /* key -> stored (keytab.h) */
    job *blocked;           /* jobs waiting for results computed here (on_compute's "after") */
    awaited *awaiting;      /* key -> the blocked jobs waiting for it */
    pin *pins;              /* unordered; few at a time */
    size_t npins, cappins;
    queued *heap; /* max-heap on (priority, -seq) */
    size_t nheap, capheap;
    job *running; /* executing now: a list of at most nthreads jobs */
    uint64_t seq;
    uint64_t store_changes; /* keys stored and dropped so far: the watchdog's idle trim */
    bool stopping;
    atomic_int *stop;
    pthread_t *threads;
    executor *executors;
    pthread_t watchdog;
    bool watchdog_started;
    nng_socket data_sock;
    terni_gate *gate; /* the data server's: cluster token check per connection */
    terni_sec sec;
    data_ctx data[DATA_RECEIVERS];
    char address[256];
} worker;

static void wlog(const worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wlog(const worker *w, const char *fmt, ...)
{
    (void)w;
    if (!terni_log_enabled(TERNI_LOG_INFO))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    terni_log(TERNI_LOG_INFO, "%s", msg);
}

/* ---- store ------------------------------------------------------------------------ */

static tern_value *store_get(worker *w, const char *key)
{
    pthread_mutex_lock(&w->lock);
    stored *s = terni_keytab_get(&w->store, key);
    tern_value *v = s ? tern_value_ref(s->value) : NULL;
    pthread_mutex_unlock(&w->lock);
    return v;
}

static void unblock(worker *w, const char *key);

/* Stores v (reference taken) unless the key is there already; jobs placed early that waited
 * only for key become ready (unblock). */
static void store_put(worker *w, const char *key, tern_value *v, int64_t nbytes)
{
    pthread_mutex_lock(&w->lock);
    stored *s = terni_keytab_get(&w->store, key);
    if (!s) { /* out of memory it is not stored, and a dependent's fetch fails (TERN_ELOST) */
        size_t len = strlen(key) + 1;
        if ((s = calloc(1, sizeof(*s) + len))) {
            memcpy(s->key, key, len);
            s->shm.fd = -1;
            if (terni_keytab_put(&w->store, s->key, s) == 0) {
                s->value = tern_value_ref(v);
                s->nbytes = nbytes;
                w->store_changes++;
            } else {
                free(s);
                s = NULL;
            }
        }
    }
    if (s)
        unblock(w, key);
    pthread_mutex_unlock(&w->lock);
}

static void stored_free(stored *s)
{
    terni_shm_file_close(&s->shm);
    tern_value_unref(s->value);
    free(s);
}

/* Whether key was held (and is now dropped). */
static bool store_drop_locked(worker *w, const char *key)
{
    stored *s = terni_keytab_pop(&w->store, key);
    if (s) {
        stored_free(s);
        w->store_changes++;
    }
    return s != NULL;
}

/* ---- queue ------------------------------------------------------------------------ */

static bool job_before(const queued *a, const queued *b)
{
    return a->priority != b->priority ? a->priority > b->priority : a->seq < b->seq;
}

static void heap_push(worker *w, job *j)
{
    if (w->nheap == w->capheap) {
        size_t cap = w->capheap ? w->capheap * 2 : 64;
        queued *grown = realloc(w->heap, cap * sizeof(*grown));
        if (!grown)
            return; /* out of memory: the task is lost; the scheduler sees no answer */
        w->heap = grown;
        w->capheap = cap;
    }
    size_t i = w->nheap++;
    w->heap[i] = (queued){ .priority = j->priority, .seq = j->seq, .j = j };
    while (i && job_before(&w->heap[i], &w->heap[(i - 1) / 2])) {
        queued t = w->heap[i];
        w->heap[i] = w->heap[(i - 1) / 2];
        w->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static job *heap_pop(worker *w)
{
    if (!w->nheap)
        return NULL;
    job *top = w->heap[0].j;
    w->heap[0] = w->heap[--w->nheap];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < w->nheap && job_before(&w->heap[l], &w->heap[m]))
            m = l;
        if (r < w->nheap && job_before(&w->heap[r], &w->heap[m]))
            m = r;
        if (m == i)
            break;
        queued t = w->heap[i];
        w->heap[i] = w->heap[m];
        w->heap[m] = t;
        i = m;
    }
    return top;
}

/* The running list (under w->lock). It holds one job per busy executor thread, so a walk is
 * cheaper than the hash table it replaced (whose insert and delete per task were 6 % of a
 * worker's time in throughput_100k). */
static void running_add(worker *w, job *j)
{
    j->prev_run = NULL;
    j->next_run = w->running;
    if (w->running)
        w->running->prev_run = j;
    w->running = j;
}

static void running_remove(worker *w, job *j)
{
    if (j->prev_run)
        j->prev_run->next_run = j->next_run;
    else
        w->running = j->next_run;
    if (j->next_run)
        j->next_run->prev_run = j->prev_run;
    j->prev_run = j->next_run = NULL;
}

static void job_free(job *j)
{
    tern_value_unref(j->args); /* key, fn and plugin live in the job's allocation (on_compute) */
    tern_value_unref(j->deps);
    tern_value_unref(j->taken);
    for (size_t i = 0; i < j->nafter; i++)
        free(j->after[i]);
    free(j->after);
    free(j);
}

/* ---- jobs placed early, waiting for results computed here ---------------------------- */

/* All under w->lock. */

static void blocked_unlink(worker *w, job *j)
{
    if (j->prev_blk)
        j->prev_blk->next_blk = j->next_blk;
    else
        w->blocked = j->next_blk;
    if (j->next_blk)
        j->next_blk->prev_blk = j->prev_blk;
    j->prev_blk = j->next_blk = NULL;
}

/* Makes j wait for key; false if out of memory. */
static bool await_key(worker *w, job *j, const char *key)
{
    awaited *a;
    HASH_FIND_STR(w->awaiting, key, a);
    if (!a) {
        if (!(a = calloc(1, sizeof(*a))) || !(a->key = strdup(key))) {
            free(a);
            return false;
        }
        HASH_ADD_KEYPTR(hh, w->awaiting, a->key, strlen(a->key), a);
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 1;
        job **grown = realloc(a->jobs, cap * sizeof(*grown));
        if (!grown)
            return false;
        a->jobs = grown;
        a->cap = cap;
    }
    a->jobs[a->n++] = j;
    return true;
}

static void awaited_free(worker *w, awaited *a)
{
    HASH_DEL(w->awaiting, a);
    free(a->key);
    free(a->jobs);
    free(a);
}

/* key is stored now: the jobs waiting only for it become ready. */
static void unblock(worker *w, const char *key)
{
    awaited *a;
    HASH_FIND_STR(w->awaiting, key, a);
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        job *j = a->jobs[i];
        if (--j->nwait == 0) {
            blocked_unlink(w, j);
            heap_push(w, j);
            pthread_cond_signal(&w->cond);
        }
    }
    awaited_free(w, a);
}

/* A blocked job cancelled or forgotten: out of the index, and freed. */
static void drop_blocked(worker *w, job *j)
{
    for (size_t i = 0; i < j->nafter; i++) {
        awaited *a;
        HASH_FIND_STR(w->awaiting, j->after[i], a);
        for (size_t k = 0; a && k < a->n; k++)
            if (a->jobs[k] == j)
                a->jobs[k--] = a->jobs[--a->n];
        if (a && !a->n)
            awaited_free(w, a);
    }
    blocked_unlink(w, j);
    job_free(j);
}

static void drop_all_blocked(worker *w)
{
    while (w->blocked)
        drop_blocked(w, w->blocked);
}

/* ---- reporting -------------------------------------------------------------------- */

/* Sends op (stolen) to the scheduler, or drops it while disconnected. Returns TERN_OK,
 * TERN_ECLOSED (disconnected: the scheduler no longer wants it) or the link's error (not sent:
 * out of memory). */
static int post(worker *w, tern_value *op)
{
    int rc = TERN_ECLOSED;
    pthread_mutex_lock(&w->link_lock);
    if (w->link)
        rc = terni_link_post(w->link, op);
    else
        tern_value_unref(op);
    pthread_mutex_unlock(&w->link_lock);
    return rc;
}

/* post for an op encoded already (enc, len bytes: taken). */
static int post_encoded(worker *w, uint8_t *enc, size_t len, const char *name)
{
    int rc = TERN_ECLOSED;
    pthread_mutex_lock(&w->link_lock);
    if (w->link)
        rc = terni_link_post_encoded(w->link, enc, len, name);
    else
        free(enc);
    pthread_mutex_unlock(&w->link_lock);
    return rc;
}

/* The stand-in for a report that could not be built or sent (out of memory): an erred report
 * with a fixed ASCII message naming the key, so that no future waits for ever. It is written
 * into a buffer allocated ahead, one per reporting thread (fallback_buf, made again after each
 * use), and needs no memory but the link's own item. */
#define FALLBACK_MAX (2 * TERNI_MAX_KEY + 256)
static __thread uint8_t *fallback_buf;

static void fallback_prepare(void)
{
    if (!fallback_buf)
        fallback_buf = malloc(FALLBACK_MAX);
}

static void fallback_release(void)
{
    free(fallback_buf);
    fallback_buf = NULL;
}

static void post_fallback(worker *w, const char *key, int64_t run, int code)
{
    char k[TERNI_MAX_KEY + 1], msg[TERNI_MAX_KEY + 64];
    terni_utf8_copy(k, sizeof(k), key, strlen(key)); /* valid already (terni_valid_key) */
    snprintf(msg, sizeof(msg), "task %s erred; its message could not be encoded", k);
    terni_outbox o = { .buf = fallback_buf, .cap = fallback_buf ? FALLBACK_MAX : 0 };
    fallback_buf = NULL;
    size_t mark;
    terni_ob_begin(&o, &mark);
    terni_ob_map(&o, 5); /* keys in CBOR's deterministic order, as report_done's */
    terni_ob_text(&o, "op");
    terni_ob_text(&o, "erred");
    terni_ob_text(&o, "key");
    terni_ob_text(&o, k);
    terni_ob_text(&o, "run");
    terni_ob_int(&o, run);
    terni_ob_text(&o, "code");
    terni_ob_int(&o, code);
    terni_ob_text(&o, "message");
    terni_ob_text(&o, msg);
    int rc = TERN_ENOMEM;
    if (terni_ob_end(&o, mark))
        rc = post_encoded(w, o.buf, o.len, "erred");
    else
        terni_outbox_free(&o);
    terni_log(rc == TERN_OK ? TERNI_LOG_WARN : TERNI_LOG_ERROR,
              "the report of task %s could not be built; %s", k,
              rc == TERN_OK ? "sent a stand-in" : "nor could its stand-in");
    fallback_prepare(); /* for the next time */
}

/* Reports key erred. The scheduler appends " (task F, key K, on worker W)" and keeps 1,023
 * bytes in all: the message, made valid UTF-8, is cut (at a character) so that this fits too,
 * and a cut of the scheduler's never falls inside a character of the message. */
static void report_erred_key(worker *w, const char *key, const char *fn, int64_t run, int code,
                             const char *msg)
{
    char text[TERNI_TASK_MSG_MAX];
    size_t decoration = strlen(key) + strlen(fn) + strlen(w->opts->name) + 32;
    size_t cap = decoration + 64 < sizeof(text) ? sizeof(text) - decoration : 64;
    terni_utf8_copy(text, cap, msg, strlen(msg));
    tern_value *op = terni_op("erred");
    int rc = TERN_ENOMEM;
    if (op && terni_set_text(op, "key", key) && terni_set_int(op, "code", code) &&
        terni_set_text(op, "message", text) && terni_set_int(op, "run", run))
        rc = post(w, op);
    else
        tern_value_unref(op);
    if (rc != TERN_OK && rc != TERN_ECLOSED)
        post_fallback(w, key, run, code);
}

static void report_erred(worker *w, const job *j, int code, const char *msg)
{
    report_erred_key(w, j->key, j->fn, j->run, code, msg);
}

/* {"op": "done", "key", "run", "value"?: bytes (a small result's encoding), "nbytes",
 * "rss_bytes", "duration_us"}, written straight into CBOR (outbox.h; keys in CBOR's
 * deterministic order) and posted encoded: no value tree per task. Out of memory, the result
 * is dropped and the stand-in erred report goes instead (post_fallback). */
static void report_done(worker *w, const job *j, tern_value *result, int64_t duration_us)
{
    size_t nbytes = tern_encoded_size(result), mark;
    bool inl = nbytes && nbytes <= INLINE_MAX;
    terni_outbox o = { 0 };
    terni_ob_begin(&o, &mark);
    terni_ob_map(&o, inl ? 7 : 6);
    terni_ob_text(&o, "op");
    terni_ob_text(&o, "done");
    terni_ob_text(&o, "key");
    terni_ob_text(&o, j->key);
    terni_ob_text(&o, "run");
    terni_ob_int(&o, j->run);
    if (inl) {
        terni_ob_text(&o, "value");
        terni_ob_bytes_of(&o, result, nbytes);
    }
    terni_ob_text(&o, "nbytes");
    terni_ob_int(&o, (int64_t)nbytes);
    terni_ob_text(&o, "rss_bytes");
    terni_ob_int(&o, terni_rss_bytes());
    terni_ob_text(&o, "duration_us");
    terni_ob_int(&o, duration_us);
    int rc = TERN_ENOMEM;
    if (terni_ob_end(&o, mark))
        rc = post_encoded(w, o.buf, o.len, "done");
    else
        terni_outbox_free(&o);
    if (rc == TERN_OK || rc == TERN_ECLOSED)
        return;
    pthread_mutex_lock(&w->lock); /* the scheduler will not know it is here */
    store_drop_locked(w, j->key);
    pthread_mutex_unlock(&w->lock);
    post_fallback(w, j->key, j->run, TERN_ENOMEM);
}

/* ---- running a task --------------------------------------------------------------- */

typedef struct depvals {
    tern_value *map;   /* key -> value */
    char missing[256]; /* a key reference with no dependency entry */
} depvals;

static tern_value *lookup_dep(void *arg, const char *key)
{
    depvals *dv = arg;
    const tern_value *v;
    if (tern_map_get(dv->map, key, &v) != TERN_OK) {
        terni_utf8_copy(dv->missing, sizeof(dv->missing), key, strlen(key));
        return NULL;
    }
    return tern_value_ref((tern_value *)v);
}

/* Gets every dependency into dv->map: local store first, else a peer that has it. */
static int gather(worker *w, const job *j, depvals *dv, char *msg, size_t msglen)
{
    const char *key;
    const tern_value *addrs;
    for (size_t i = 0; tern_map_entry(j->deps, i, &key, &addrs) == TERN_OK; i++) {
        const tern_value *mine;
        tern_value *v = j->taken && tern_map_get(j->taken, key, &mine) == TERN_OK
                            ? tern_value_ref((tern_value *)mine)
                            : store_get(w, key);
        const tern_value *a;
        const char *addr;
        char err[512] = "no worker holds it";
        for (size_t k = 0; !v && !__atomic_load_n(&j->cancelled, __ATOMIC_RELAXED) &&
                           tern_list_get(addrs, k, &a) == TERN_OK;
             k++) {
            if (tern_value_get_text(a, &addr, NULL) != TERN_OK || !strcmp(addr, w->address))
                continue;
            tern_value *keys = tern_list_of(tern_text(key)), *values = NULL;
            if (keys &&
                terni_peers_get_cancellable(w->peers, addr, keys, FETCH_TIMEOUT_MS, &j->cancelled,
                                            &values, err, sizeof(err)) == TERN_OK) {
                const tern_value *got;
                if (tern_map_get(values, key, &got) == TERN_OK) {
                    v = tern_value_ref((tern_value *)got);
                    int64_t nbytes = (int64_t)tern_encoded_size(v);
                    store_put(w, key, v, nbytes);
                    tern_value *op = terni_op("added");
                    if (op && terni_set_text(op, "key", key) && terni_set_int(op, "nbytes", nbytes))
                        post(w, op);
                    else
                        tern_value_unref(op);
                } else {
                    snprintf(err, sizeof(err), "worker at %s no longer holds it", addr);
                }
            }
            tern_value_unref(keys);
            tern_value_unref(values);
        }
        if (!v) {
            terni_utf8_fmt(msg, msglen, "cannot get dependency %s: %s", key, err);
            return TERN_ELOST;
        }
        if (tern_map_set(dv->map, key, v) != TERN_OK) {
            snprintf(msg, msglen, "out of memory");
            return TERN_ENOMEM;
        }
    }
    return TERN_OK;
}

/* Whether v is one of the values handed over to j. */
static bool was_taken(const job *j, const tern_value *v)
{
    const char *key;
    const tern_value *t;
    for (size_t i = 0; tern_map_entry(j->taken, i, &key, &t) == TERN_OK; i++)
        if (t == v)
            return true;
    return false;
}

/* Calls the task on the items of *call_args. The arguments are first held only by the
 * array passed to the task, and *call_args, dv's map and the job's taken map are let go of:
 * a dependency handed over to this job (the scheduler's "take") is then referenced once, so
 * tern_arg_take can give it to the task to change in place. */
static int call_task(job *j, tern_task_fn fn, const char *symbol, tern_value **call_args,
                     depvals *dv, tern_value **result, char *msg, size_t msglen)
{
    size_t n = tern_list_len(*call_args);
    tern_value **items = calloc(n ? n : 1, sizeof(*items));
    bool *takeable = j->taken ? calloc(n ? n : 1, sizeof(*takeable)) : NULL;
    if (!items || (j->taken && !takeable)) {
        free(items);
        free(takeable);
        snprintf(msg, msglen, "out of memory");
        return TERN_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const tern_value *item;
        tern_list_get(*call_args, i, &item);
        items[i] = tern_value_ref((tern_value *)item);
        if (takeable)
            takeable[i] = was_taken(j, item);
    }
    tern_value_unref(*call_args);
    *call_args = NULL;
    tern_value_unref(dv->map);
    dv->map = NULL;
    tern_value_unref(j->taken);
    j->taken = NULL;
    int rc = terni_task_call(fn, symbol, j->key, items, takeable, n, result, msg, msglen);
    for (size_t i = 0; i < n; i++)
        tern_value_unref(items[i]); /* NULL where the task took it */
    free(items);
    free(takeable);
    return rc;
}

static void run_job(worker *w, job *j)
{
    char msg[TERNI_TASK_MSG_MAX] = "";
    depvals dv = { .map = tern_map_new() };
    tern_value *args = NULL, *call_args = NULL, *result = NULL;
    const void *bytes;
    size_t len;
    int rc = dv.map ? TERN_OK : TERN_ENOMEM;
    const terni_plugin *p = NULL;
    tern_task_fn fn = NULL;
    const char *colon = strchr(j->fn, ':');
    if (rc == TERN_OK) {
        p = terni_loader_get(w->loader, j->plugin);
        if (!p) {
            rc = TERN_ENOTFOUND;
            terni_utf8_fmt(msg, sizeof(msg), "plugin %.16s is not loaded on worker %s", j->plugin,
                           w->opts->name);
        } else if (!colon) {
            rc = TERN_EINVAL;
            terni_utf8_fmt(msg, sizeof(msg), "task name %s is not plugin:symbol", j->fn);
        } else {
            rc = terni_plugin_resolve(p, colon + 1, &fn, msg, sizeof(msg));
        }
    }
    if (rc == TERN_OK && tern_value_get_bytes(j->args, &bytes, &len) == TERN_OK)
        rc = tern_decode(bytes, len, NULL, &args, msg, sizeof(msg));
    if (rc == TERN_OK && tern_value_type(args) != TERN_T_LIST) {
        rc = TERN_EPROTO;
        snprintf(msg, sizeof(msg), "arguments are not a list");
    }
    if (rc == TERN_OK)
        rc = gather(w, j, &dv, msg, sizeof(msg));
    if (rc == TERN_OK) {
        call_args = terni_substitute_keyrefs(args, lookup_dep, &dv);
        if (!call_args && dv.missing[0]) {
            rc = TERN_EPROTO;
            terni_utf8_fmt(msg, sizeof(msg),
                           "argument refers to key %s, which is not among the task's dependencies",
                           dv.missing);
        } else if (!call_args) {
            rc = TERN_ENOMEM;
            snprintf(msg, sizeof(msg), "out of memory substituting arguments");
        }
    }
    uint64_t t0 = terni_now_ns();
    if (rc == TERN_OK)
        rc = call_task(j, fn, colon + 1, &call_args, &dv, &result, msg, sizeof(msg));
    int64_t duration_us = (int64_t)((terni_now_ns() - t0) / 1000);
    pthread_mutex_lock(&w->lock);
    bool cancelled = j->cancelled;
    running_remove(w, j);
    if (j->slot) /* under w->lock: see timed_out */
        j->slot[0] = '\0';
    pthread_mutex_unlock(&w->lock);
    if (cancelled) {
        /* nothing to report: the scheduler already forgot or cancelled it */
    } else if (rc == TERN_OK) {
        store_put(w, j->key, result, (int64_t)tern_encoded_size(result));
        report_done(w, j, result, duration_us);
    } else {
        report_erred(w, j, rc, msg);
    }
    tern_value_unref(result);
    tern_value_unref(call_args);
    tern_value_unref(args);
    tern_value_unref(dv.map);
    job_free(j);
}

static void *executor_main(void *arg)
{
    executor *e = arg;
    worker *w = e->w;
    char *slot = w->slots ? w->slots + (size_t)e->index * SLOT_SIZE : NULL;
    fallback_prepare();
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->nheap && !w->stopping)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->stopping) {
            pthread_mutex_unlock(&w->lock);
            fallback_release();
            return NULL;
        }
        job *j = heap_pop(w);
        j->start_ns = terni_now_ns();
        running_add(w, j);
        /* The slot is written (key first, then its terminator: a torn slot reads as another
         * key) and cleared (run_job) under w->lock, so that timed_out's clearing of every slot
         * cannot interleave with an executor's write and leave a key behind to be blamed. */
        j->slot = slot;
        if (slot) { /* not snprintf: a printf per task was 2% of an executor's time */
            size_t n = strnlen(j->key, SLOT_SIZE - 1);
            memcpy(slot, j->key, n);
            slot[n] = '\0';
        }
        pthread_mutex_unlock(&w->lock);
        run_job(w, j);
    }
}

/* ---- crash forensics and task timeouts --------------------------------------------- */

/* Maps <workdir>/running (nthreads slots). Returns the keys a crashed predecessor left there
 * (a list, possibly empty) and clears them. */
static tern_value *open_slots(worker *w)
{
    tern_value *left = tern_list_new(0);
    char path[4096];
    snprintf(path, sizeof(path), "%s/running", w->opts->workdir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return left;
    struct stat st;
    size_t old = fstat(fd, &st) == 0 ? (size_t)st.st_size : 0;
    size_t need = (size_t)w->opts->nthreads * SLOT_SIZE;
    size_t len = old > need ? old : need;
    if (ftruncate(fd, (off_t)len) == 0) {
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) {
            for (size_t off = 0; left && off + SLOT_SIZE <= old; off += SLOT_SIZE)
                if (m[off] && memchr(m + off, '\0', SLOT_SIZE))
                    tern_list_append(left, tern_text(m + off));
            memset(m, 0, len);
            w->slots = m;
            w->slots_len = len;
        }
    }
    close(fd);
    return left;
}

/* A task ran past its timeout: report it, make sure the report left, and end this process
 * so the nanny starts a fresh one (exit status TERNI_EXIT_RESTART: not a crash). */
static void timed_out(worker *w, const char *key, const char *fn, int64_t run, int64_t timeout_ms)
{
    char msg[512];
    snprintf(msg, sizeof(msg),
             "task ran longer than its timeout of %lld ms; worker %s restarted its executor "
             "to stop it",
             (long long)timeout_ms, w->opts->name);
    wlog(w, "%s: %s", key, msg);
    report_erred_key(w, key, fn, run, TERN_ETIMEDOUT, msg);
    pthread_mutex_lock(&w->link_lock);
    if (w->link) { /* ops are sent in order: once this answers, the report is there */
        tern_value *r = NULL;
        char err[256];
        terni_link_call(w->link, terni_op("heartbeat"), 2000, &r, err, sizeof(err));
        tern_value_unref(r);
    }
    pthread_mutex_unlock(&w->link_lock);
    /* A deliberate restart: blame no task. Under w->lock, held until _exit, so no executor
     * writes its slot after the clearing (found by make tsan: a data race with the executors'
     * writes, which could leave a running task's key behind to be blamed for a crash). */
    pthread_mutex_lock(&w->lock);
    if (w->slots)
        memset(w->slots, 0, w->slots_len);
    terni_nanny_announce_exit(TERNI_EXIT_RESTART);
    _exit(TERNI_EXIT_RESTART);
}

/* The watchdog: every WATCHDOG_MS it ends a task past its timeout (timed_out), and once the
 * worker has been idle for TRIM_IDLE_MS after its store changed, it gives the free heap back to
 * the system (malloc_trim): the daemons keep freed memory while busy (daemon.c). */
static void *watchdog_main(void *arg)
{
    worker *w = arg;
    uint64_t seen = 0, trimmed = 0; /* store_changes at the last tick, and at the last trim */
    uint64_t busy_ns = 0;           /* when the worker was last seen busy or changing */
    fallback_prepare();
    for (;;) {
        char key[TERNI_MAX_KEY + 1] = "", fn[256] = ""; /* fn: for its length (timed_out) */
        int64_t run = 0, timeout_ms = 0;
        struct timespec ts;
        terni_deadline(&ts, WATCHDOG_MS);
        pthread_mutex_lock(&w->lock);
        while (!w->stopping && pthread_cond_timedwait(&w->wd_cond, &w->lock, &ts) == 0)
            ;
        if (w->stopping) {
            pthread_mutex_unlock(&w->lock);
            fallback_release();
            return NULL;
        }
        uint64_t now = terni_now_ns();
        for (job *j = w->running; j; j = j->next_run) {
            if (j->timeout_ms > 0 && !j->cancelled &&
                now - j->start_ns > (uint64_t)j->timeout_ms * 1000000u) {
                snprintf(key, sizeof(key), "%s",
                         j->key); /* whole: keys are TERNI_MAX_KEY at most */
                snprintf(fn, sizeof(fn), "%s", j->fn);
                run = j->run;
                timeout_ms = j->timeout_ms;
                break;
            }
        }
        if (w->nheap || w->running || w->store_changes != seen)
            busy_ns = now;
        seen = w->store_changes;
        bool quiet = seen != trimmed && now - busy_ns >= TRIM_IDLE_MS * 1000000u;
        pthread_mutex_unlock(&w->lock);
        if (key[0])
            timed_out(w, key, fn, run, timeout_ms);
        if (quiet) {
            malloc_trim(0);
            trimmed = seen;
        }
    }
}

/* ---- scheduler events (the link's poll callback) ----------------------------------- */

/* "take": the scheduler hands these keys' data held here to the job, as its last reader: they
 * leave the store now (the scheduler no longer counts them as held here), so that no later
 * event finds them, and they are freed with the job. Under w->lock. */
static void take_deps(worker *w, job *j, const tern_value *keys)
{
    const tern_value *item;
    const char *key;
    for (size_t i = 0; tern_list_get(keys, i, &item) == TERN_OK; i++) {
        if (tern_value_get_text(item, &key, NULL) != TERN_OK)
            continue;
        stored *s = terni_keytab_pop(&w->store, key);
        if (!s)
            continue;
        if (!j->taken)
            j->taken = tern_map_new();
        /* Out of memory, the job does not find it: it reports TERN_ELOST, and the scheduler
         * computes the key again. */
        if (j->taken)
            tern_map_set(j->taken, key, tern_value_ref(s->value));
        stored_free(s);
    }
}

/* "after": the job was placed before these dependencies, which run here, finished; it waits
 * (in w->blocked) for those not stored yet. Out of memory, it does not wait: it then fails to
 * find them (TERN_ELOST), and the scheduler places it again. Under w->lock. */
static void wait_for(worker *w, job *j, const tern_value *keys)
{
    const tern_value *item;
    const char *key;
    for (size_t i = 0; j->after && tern_list_get(keys, i, &item) == TERN_OK; i++) {
        if (tern_value_get_text(item, &key, NULL) != TERN_OK)
            continue;
        if (terni_keytab_get(&w->store, key) || !(j->after[j->nafter] = strdup(key)))
            continue;
        if (!await_key(w, j, key)) {
            free(j->after[j->nafter]);
            continue;
        }
        j->nafter++;
        j->nwait++;
    }
}

static void on_compute(worker *w, const tern_value *ev)
{
    const char *key = terni_get_text(ev, "key"), *fn = terni_get_text(ev, "fn"),
               *plugin = terni_get_text(ev, "plugin");
    const tern_value *args = terni_get(ev, "args"), *deps = terni_get(ev, "deps");
    const tern_value *take = terni_get(ev, "take"), *after = terni_get(ev, "after");
    int64_t prio = 0, run = 0, timeout_ms = 0;
    terni_get_int(ev, "priority", &prio);
    terni_get_int(ev, "run", &run);
    terni_get_int(ev, "timeout_ms", &timeout_ms);
    if (!key || !fn || !plugin || !args || (deps && tern_value_type(deps) != TERN_T_MAP)) {
        wlog(w, "ignoring a malformed compute event");
        return;
    }
    /* the job and its three strings in one allocation (job_free) */
    size_t klen = strlen(key) + 1, flen = strlen(fn) + 1, plen = strlen(plugin) + 1;
    job *j = calloc(1, sizeof(*j) + klen + flen + plen);
    if (!j)
        return;
    j->key = memcpy((char *)(j + 1), key, klen);
    j->fn = memcpy(j->key + klen, fn, flen);
    j->plugin = memcpy(j->fn + flen, plugin, plen);
    j->args = tern_value_ref((tern_value *)args);
    j->deps = deps ? tern_value_ref((tern_value *)deps) : NULL; /* absent: none */
    j->priority = (int)prio;
    j->run = run;
    j->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    size_t nafter = tern_list_len(after);
    if (nafter && !(j->after = calloc(nafter, sizeof(char *)))) {
        job_free(j);
        return;
    }
    pthread_mutex_lock(&w->lock);
    take_deps(w, j, take);
    j->seq = ++w->seq;
    wait_for(w, j, after);
    if (j->nwait) {
        j->next_blk = w->blocked;
        if (w->blocked)
            w->blocked->prev_blk = j;
        w->blocked = j;
    } else {
        heap_push(w, j);
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
}

/* free/cancel: drop stored data, queued jobs, and results of running jobs for these keys. */
static void on_drop(worker *w, const tern_value *ev, bool drop_data)
{
    const tern_value *keys = terni_get(ev, "keys"), *item;
    const char *key;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; tern_list_get(keys, i, &item) == TERN_OK; i++) {
        if (tern_value_get_text(item, &key, NULL) != TERN_OK)
            continue;
        bool held = drop_data && store_drop_locked(w, key);
        for (job *r = w->running; r; r = r->next_run)
            if (!strcmp(r->key, key))
                __atomic_store_n(&r->cancelled, 1, __ATOMIC_RELAXED);
        /* A key held here is finished, not queued: skip the walk of the queue, which made
         * every free cost O(queue) while a long queue waited. (Were it queued again too, that
         * run's report would be stale, and the scheduler ignores stale reports.) */
        for (job *b = w->blocked; !held && b; b = b->next_blk)
            if (!strcmp(b->key, key)) {
                drop_blocked(w, b);
                break;
            }
        for (size_t k = 0; !held && k < w->nheap; k++)
            if (!strcmp(w->heap[k].j->key, key)) {
                job *q = w->heap[k].j;
                w->heap[k] = w->heap[--w->nheap];
                job_free(q);
                /* restore heap order (pushing each back in turn writes no index above it) */
                queued *all = w->heap;
                size_t n = w->nheap;
                w->nheap = 0;
                for (size_t m = 0; m < n; m++)
                    heap_push(w, all[m].j);
                break;
            }
    }
    pthread_mutex_unlock(&w->lock);
}

static void on_plugin(worker *w, const tern_value *ev)
{
    const void *bytes;
    size_t len;
    const char *id = terni_get_text(ev, "id");
    if (!id || tern_value_get_bytes(terni_get(ev, "bytes"), &bytes, &len) != TERN_OK)
        return;
    const terni_plugin *p;
    char msg[1024];
    int rc = terni_loader_load(w->loader, bytes, len, &p, msg, sizeof(msg));
    if (rc == TERN_OK) {
        wlog(w, "loaded plugin %s %s", terni_plugin_name(p), terni_plugin_version(p));
        return;
    }
    wlog(w, "cannot load plugin %.12s: %s", id, msg);
    tern_value *op = terni_op("plugin_failed");
    if (op && terni_set_text(op, "id", id) && terni_set_text(op, "message", msg))
        post(w, op);
    else
        tern_value_unref(op);
}

static void on_events(void *arg, const tern_value *events)
{
    worker *w = arg;
    const tern_value *ev;
    for (size_t i = 0; tern_list_get(events, i, &ev) == TERN_OK; i++) {
        const char *op = terni_op_name(ev);
        if (!strcmp(op, "compute"))
            on_compute(w, ev);
        else if (!strcmp(op, "free"))
            on_drop(w, ev, true);
        else if (!strcmp(op, "cancel"))
            on_drop(w, ev, false);
        else if (!strcmp(op, "plugin"))
            on_plugin(w, ev);
    }
}

static void on_down(void *arg, const char *why)
{
    worker *w = arg;
    wlog(w, "%s; reconnecting", why);
    __atomic_store_n(&w->link_down, 1, __ATOMIC_RELEASE);
}

/* After losing the scheduler: it knows nothing of our data or queue any more. */
static void forget_everything(worker *w)
{
    pthread_mutex_lock(&w->lock);
    drop_all_blocked(w);
    while (w->nheap)
        job_free(w->heap[--w->nheap].j);
    for (job *j = w->running; j; j = j->next_run)
        __atomic_store_n(&j->cancelled, 1, __ATOMIC_RELAXED);
    TERNI_KEYTAB_EACH (&w->store, e) /* dropping removes only e: safe while iterating */
        store_drop_locked(w, e->key);
    pthread_mutex_unlock(&w->lock);
}

/* ---- data server (nng callbacks) -------------------------------------------------- */

/* Pins v for key, lent to the reader on pipe. Under w->lock. False if out of memory. */
static bool pin_add(worker *w, uint32_t pipe, const char *key, const tern_value *v)
{
    if (w->npins == w->cappins) {
        size_t cap = w->cappins ? 2 * w->cappins : 8;
        pin *grown = realloc(w->pins, cap * sizeof(*grown));
        if (!grown)
            return false;
        w->pins = grown;
        w->cappins = cap;
    }
    char *k = strdup(key);
    if (!k)
        return false;
    w->pins[w->npins++] = (pin){ pipe, k, tern_value_ref((tern_value *)v) };
    return true;
}

/* Releases pin i; its value is unreferenced by the caller after the lock (*value). */
static void pin_remove_locked(worker *w, size_t i, tern_value **value)
{
    *value = w->pins[i].value;
    free(w->pins[i].key);
    w->pins[i] = w->pins[--w->npins];
}

/* Releases one pin of (pipe, key); false if there was none. */
static bool unpin(worker *w, uint32_t pipe, const char *key)
{
    tern_value *v = NULL;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->npins && !v; i++)
        if (w->pins[i].pipe == pipe && !strcmp(w->pins[i].key, key))
            pin_remove_locked(w, i, &v);
    pthread_mutex_unlock(&w->lock);
    tern_value_unref(v); /* may free an 8 MB buffer: outside the lock */
    return v != NULL;
}

/* A connection to the data server closed: the gate forgets it, and its pins go. Each pinned
 * buffer is forsaken first: its reader maps it (shm.c) and can no longer tell us when it is
 * done, so the buffer must never be written or reused (terni_shm_forsake). */
static void data_pipe_gone(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)ev;
    worker *w = arg;
    uint32_t id = nng_pipe_id(p);
    terni_gate_pipe_gone(w->gate, id);
    for (;;) {
        tern_value *v = NULL;
        pthread_mutex_lock(&w->lock);
        for (size_t i = 0; i < w->npins && !v; i++)
            if (w->pins[i].pipe == id)
                pin_remove_locked(w, i, &v);
        pthread_mutex_unlock(&w->lock);
        if (!v)
            break;
        terni_shm_forsake(v);
        tern_value_unref(v);
    }
}

/* For a get from this host (on pipe): the descriptor of key's memfd when v (its stored value,
 * held by the caller) is a large array: the array's own buffer, lent and then pinned until
 * the reader unpins it, or on the first request a sealed copy (terni_shm_export). NULL: send
 * bytes (small or not an array, memfd failed, out of memory, or the key was dropped
 * meanwhile). */
static tern_value *shm_descriptor(worker *w, uint32_t pipe, const char *key, const tern_value *v)
{
    if (!terni_shm_eligible(v))
        return NULL;
    terni_shm_file f = { .fd = -1 }, made = { .fd = -1 };
    stored *s;
    bool pinned = false; /* a lent buffer is pinned while s->shm is still the key's */
    pthread_mutex_lock(&w->lock);
    s = terni_keytab_get(&w->store, key);
    if (s && s->value == v)
        f = s->shm;
    pinned = f.fd >= 0 && f.lent && pin_add(w, pipe, key, v);
    pthread_mutex_unlock(&w->lock);
    if (f.fd < 0) { /* exported outside the lock; a concurrent request may win */
        int rc = terni_shm_export(v, key, &made);
        if (rc != TERN_OK) {
            terni_log(TERNI_LOG_DEBUG, "get %s: no memfd (%s), sending bytes", key,
                      tern_strerror(rc));
            return NULL;
        }
        pthread_mutex_lock(&w->lock);
        s = terni_keytab_get(&w->store, key);
        if (s && s->value == v && s->shm.fd < 0) {
            s->shm = made;
            made.fd = -1;
        }
        if (s && s->value == v)
            f = s->shm;
        pinned = f.fd >= 0 && f.lent && pin_add(w, pipe, key, v);
        pthread_mutex_unlock(&w->lock);
        terni_shm_file_close(&made);
    }
    if (f.fd < 0 || (f.lent && !pinned))
        return NULL;
    terni_log(TERNI_LOG_DEBUG, "get %s: memfd descriptor, %zu bytes", key, f.len);
    tern_value *d = terni_shm_descriptor(&f, v);
    if (!d && pinned) /* out of memory: the bytes go instead, and nobody will unpin */
        unpin(w, pipe, key);
    return d;
}

static tern_value *serve(worker *w, const tern_value *req, uint32_t pipe)
{
    const char *op = terni_op_name(req);
    if (!strcmp(op, "get")) {
        tern_value *values = tern_map_new(), *out = tern_map_new(), *shm = NULL;
        const tern_value *keys = terni_get(req, "keys"), *item;
        const char *key, *host = terni_get_text(req, "host"), *ours = terni_shm_host();
        bool same_host = host && ours && !strcmp(host, ours);
        for (size_t i = 0; values && tern_list_get(keys, i, &item) == TERN_OK; i++) {
            if (tern_value_get_text(item, &key, NULL) != TERN_OK)
                continue;
            tern_value *v = store_get(w, key),
                       *d = same_host && v ? shm_descriptor(w, pipe, key, v) : NULL;
            bool lent = d && terni_get(d, "lent");
            if (d && (shm || (shm = tern_map_new())) &&
                tern_map_set(shm, key, d) == TERN_OK) { /* steals d */
                tern_value_unref(v);
                continue;
            }
            if (d && !shm)
                tern_value_unref(d);
            if (lent) /* out of memory: the bytes go instead, and nobody will unpin */
                unpin(w, pipe, key);
            if (v)
                tern_map_set(values, key, v);
        }
        bool ok = out && terni_set(out, "values", tern_value_ref(values)) &&
                  (!shm || terni_set(out, "shm", tern_value_ref(shm)));
        tern_value_unref(values);
        tern_value_unref(shm);
        if (ok)
            return out;
        tern_value_unref(out);
        return terni_error_result(TERN_ENOMEM, "out of memory");
    }
    if (!strcmp(op, "unpin")) { /* {"keys": [...]} -> {"held": [the keys that were pinned]} */
        const tern_value *keys = terni_get(req, "keys"), *item;
        const char *key;
        tern_value *held = tern_list_new(0), *out = tern_map_new();
        for (size_t i = 0; tern_list_get(keys, i, &item) == TERN_OK; i++)
            if (tern_value_get_text(item, &key, NULL) == TERN_OK && unpin(w, pipe, key) && held)
                tern_list_append(held, tern_text(key));
        if (held && out && terni_set(out, "held", held))
            return out;
        tern_value_unref(out);
        return terni_error_result(TERN_ENOMEM, "out of memory");
    }
    if (!strcmp(op, "put")) {
        const char *key = terni_get_text(req, "key");
        const tern_value *v = terni_get(req, "value");
        if (!key || !*key || !v)
            return terni_error_result(TERN_EINVAL, "put needs a key and a value");
        int64_t nbytes = (int64_t)tern_encoded_size(v);
        store_put(w, key, (tern_value *)v, nbytes);
        tern_value *added = terni_op("added");
        if (added && terni_set_text(added, "key", key) && terni_set_int(added, "nbytes", nbytes))
            post(w, added);
        else
            tern_value_unref(added);
        return tern_map_new();
    }
    return terni_error_result(TERN_EPROTO, "unknown data op \"%s\"", op);
}

/* One data-plane request (consumed): the cluster token gate, then serve(). Returns the
 * encoded reply, or NULL when none can be made. */
static nng_msg *data_request(worker *w, nng_msg *in)
{
    tern_value *req = NULL, *reply = NULL;
    char err[256];
    uint32_t pipe = nng_pipe_id(nng_msg_get_pipe(in));
    bool authed = terni_gate_authed(w->gate, pipe), decoded = false;
    terni_gate_verdict verdict = TERNI_GATE_PASS;
    if (!authed && nng_msg_len(in) > TERNI_AUTH_MAX_MSG) /* not worth decoding */
        nng_msg_free(in);
    else
        decoded = terni_msg_decode(in, &req, err, sizeof(err)) == TERN_OK;
    if (!authed || (decoded && !strncmp(terni_op_name(req), "auth", 4)))
        verdict = terni_gate_check(w->gate, pipe, decoded ? req : NULL, &reply);
    if (verdict == TERNI_GATE_PASS)
        reply = decoded ? serve(w, req, pipe)
                        : terni_error_result(TERN_EPROTO, "malformed request: %s", err);
    tern_value_unref(req);
    if (verdict == TERNI_GATE_REPLY_CLOSE)
        terni_gate_close_later(w->gate, pipe);
    nng_msg *m = NULL;
    if (!reply || terni_msg_encode(reply, &m) != TERN_OK) {
        tern_value *e = terni_error_result(TERN_ENOMEM, "cannot encode the reply");
        if (!e || terni_msg_encode(e, &m) != TERN_OK)
            m = NULL;
        tern_value_unref(e);
    }
    tern_value_unref(reply);
    return m;
}

static void data_cb(void *arg)
{
    data_ctx *d = arg;
    int rv = nng_aio_result(d->aio);
    if (d->sending) {
        if (rv != 0)
            nng_msg_free(nng_aio_get_msg(d->aio));
        d->sending = false;
        nng_ctx_recv(d->ctx, d->aio);
        return;
    }
    if (rv != 0) {
        if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
            nng_ctx_recv(d->ctx, d->aio);
        return;
    }
    nng_msg *m = data_request(d->w, nng_aio_get_msg(d->aio));
    if (!m) {
        nng_ctx_recv(d->ctx, d->aio);
        return;
    }
    d->sending = true;
    nng_aio_set_msg(d->aio, m);
    nng_ctx_send(d->ctx, d->aio);
}

static int start_data_server(worker *w, char *err, size_t errlen)
{
    nng_listener l;
    if (terni_gate_new(&w->opts->token, &w->gate) != TERN_OK) {
        snprintf(err, errlen, "out of memory");
        return TERN_ENOMEM;
    }
    int rv = nng_rep0_open(&w->data_sock);
    if (rv == 0)
        rv = nng_socket_set_size(w->data_sock, NNG_OPT_RECVMAXSZ, TERNI_MAX_MSG);
    if (rv == 0)
        rv = nng_pipe_notify(w->data_sock, NNG_PIPE_EV_REM_POST, data_pipe_gone, w);
    if (rv == 0)
        rv = nng_listener_create(&l, w->data_sock, w->opts->listen);
    int rc = TERN_OK;
    if (rv == 0 && (rc = terni_tls_listener(l, w->opts->listen, &w->sec, err, errlen)) != TERN_OK)
        return rc;
    if (rv == 0)
        rv = nng_listener_start(l, 0);
    if (rv != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", w->opts->listen, nng_strerror(rv));
        return terni_nng_err(rv);
    }
    snprintf(w->address, sizeof(w->address), "%s", w->opts->listen);
    int port;
    if ((!strncmp(w->opts->listen, "tcp://", 6) || !strncmp(w->opts->listen, "tls+tcp://", 10)) &&
        nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
        const char *colon = strrchr(w->opts->listen, ':');
        snprintf(w->address, sizeof(w->address), "%.*s:%d", (int)(colon - w->opts->listen),
                 w->opts->listen, port);
    }
    for (int i = 0; i < DATA_RECEIVERS; i++) {
        data_ctx *d = &w->data[i];
        d->w = w;
        if (nng_aio_alloc(&d->aio, data_cb, d) != 0 || nng_ctx_open(&d->ctx, w->data_sock) != 0) {
            snprintf(err, errlen, "cannot start the data server");
            return TERN_ENOMEM;
        }
        nng_ctx_recv(d->ctx, d->aio);
    }
    return TERN_OK;
}

/* ---- lifecycle -------------------------------------------------------------------- */

static tern_value *make_hello(worker *w, tern_value *crashed)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    tern_value *hello = terni_op("hello");
    if (!hello || !terni_set_int(hello, "wire", TERNI_WIRE_VERSION) ||
        !terni_set_text(hello, "role", "worker") || !terni_set_text(hello, "name", w->opts->name) ||
        !terni_set_int(hello, "nthreads", w->opts->nthreads) ||
        !terni_set_int(hello, "memory", (int64_t)pages * page) ||
        !terni_set_text(hello, "address", w->address) ||
        (crashed && !terni_set(hello, "crashed", tern_value_ref(crashed)))) {
        tern_value_unref(hello);
        return NULL;
    }
    return hello;
}

/* Sleeps ms in small steps, returning early once *stop is set. */
static void nap(atomic_int *stop, int ms)
{
    for (int t = 0; t < ms && !*stop; t += 20)
        usleep(20 * 1000);
}

/* Connects (retrying with backoff for ever) and serves until stopped. */
static int serve_scheduler(worker *w, tern_value *crashed)
{
    char err[1024];
    int backoff = 100, failures = 0;
    while (!*w->stop) {
        tern_value *hello = make_hello(w, crashed);
        if (!hello) {
            terni_log(TERNI_LOG_ERROR, "out of memory");
            return 1;
        }
        terni_link *link = NULL;
        __atomic_store_n(&w->link_down, 0, __ATOMIC_RELEASE);
        int rc = terni_link_open(w->opts->scheduler, &w->sec, hello, w->opts->connect_timeout_ms,
                                 on_events, on_down, w, &link, NULL, err, sizeof(err));
        if (rc == TERN_EPROTO || rc == TERN_EAUTH) { /* retrying cannot help */
            terni_log(TERNI_LOG_ERROR, "%s", err);
            return TERNI_EXIT_FATAL;
        }
        if (rc != TERN_OK) {
            if (failures++ % 20 == 0)
                wlog(w, "cannot register with %s: %s; retrying", w->opts->scheduler, err);
            nap(w->stop, backoff);
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
            continue;
        }
        terni_link_slab_events(link); /* a job keeps its arguments only until it has run */
        backoff = 100;
        failures = 0;
        tern_value_unref(crashed); /* reported */
        crashed = NULL;
        pthread_mutex_lock(&w->link_lock);
        w->link = link;
        pthread_mutex_unlock(&w->link_lock);
        wlog(w, "connected to %s, serving data at %s, %d thread%s", w->opts->scheduler, w->address,
             w->opts->nthreads, w->opts->nthreads == 1 ? "" : "s");
        while (!*w->stop && !__atomic_load_n(&w->link_down, __ATOMIC_ACQUIRE))
            usleep(20 * 1000);
        pthread_mutex_lock(&w->link_lock);
        w->link = NULL;
        pthread_mutex_unlock(&w->link_lock);
        terni_link_close(link);
        if (!*w->stop)
            forget_everything(w);
    }
    tern_value_unref(crashed);
    return 0;
}

/* Each large array served to a peer on this host keeps a memfd open while it is stored
 * (shm.h): lift the soft descriptor limit (often 1024) to the hard one. When even that runs
 * out, those arrays go as bytes. */
static void raise_fd_limit(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

int terni_worker_run(const terni_worker_opts *opts, atomic_int *stop)
{
    worker w_ = { .opts = opts,
                  .stop = stop,
                  .sec = { .tls_ca = opts->tls_ca,
                           .tls_cert = opts->tls_cert,
                           .tls_key = opts->tls_key,
                           .tls_verify_clients = opts->tls_verify_clients,
                           .token = opts->token } },
           *w = &w_;
    char err[1024];
    raise_fd_limit();
    if (terni_shm_host()) /* the shortcut is on: large results in memfds, served uncopied */
        terni_bigbuf_use_memfd();
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->link_lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    pthread_cond_init(&w->wd_cond, NULL);
    int rc = terni_keytab_init(&w->store) == 0 ? TERN_OK : TERN_ENOMEM;
    snprintf(err, sizeof(err), "out of memory");
    if (rc == TERN_OK)
        rc = terni_loader_open(opts->workdir, &w->loader, err, sizeof(err));
    if (rc == TERN_OK)
        rc = terni_peers_new(&w->sec, &w->peers);
    if (rc == TERN_OK)
        rc = start_data_server(w, err, sizeof(err));
    if (rc != TERN_OK) {
        terni_log(TERNI_LOG_ERROR, "%s", err);
        return TERNI_EXIT_FATAL;
    }
    tern_value *left = open_slots(w), *crashed = NULL;
    if (opts->crashed) { /* our predecessor died; the nanny says how */
        crashed = tern_map_new();
        if (crashed && (!terni_set_text(crashed, "why", opts->crashed) ||
                        !terni_set(crashed, "keys", tern_value_ref(left)))) {
            tern_value_unref(crashed);
            crashed = NULL;
        }
        wlog(w, "restarted: the previous executor %s while running %zu task%s", opts->crashed,
             tern_list_len(left), tern_list_len(left) == 1 ? "" : "s");
    }
    tern_value_unref(left);
    /* The executors exist before the link so no compute event waits for them. */
    w->threads = calloc((size_t)opts->nthreads, sizeof(pthread_t));
    w->executors = calloc((size_t)opts->nthreads, sizeof(executor));
    for (int i = 0; w->threads && w->executors && i < opts->nthreads; i++) {
        w->executors[i] = (executor){ .w = w, .index = i };
        pthread_create(&w->threads[i], NULL, executor_main, &w->executors[i]);
    }
    w->watchdog_started = pthread_create(&w->watchdog, NULL, watchdog_main, w) == 0;
    rc = serve_scheduler(w, crashed);

    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_cond_broadcast(&w->wd_cond);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; w->threads && w->executors && i < opts->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    if (w->watchdog_started)
        pthread_join(w->watchdog, NULL);
    free(w->threads);
    free(w->executors);
    /* If nng's close did not finish (terni_close_bounded), its reaper may still run the data
     * aios' callbacks and the gate's pipe callback: leave both, the process is exiting. */
    if (terni_close_bounded(w->data_sock, 1000)) {
        for (int i = 0; i < DATA_RECEIVERS; i++)
            if (w->data[i].aio)
                nng_aio_free(w->data[i].aio);
        terni_gate_free(w->gate);
        while (w->npins) {
            tern_value *v;
            pin_remove_locked(w, w->npins - 1, &v);
            tern_value_unref(v);
        }
        free(w->pins);
    }
    memset(&w->sec.token, 0, sizeof(w->sec.token));
    terni_peers_free(w->peers);
    drop_all_blocked(w);
    while (w->nheap)
        job_free(w->heap[--w->nheap].j);
    free(w->heap);
    TERNI_KEYTAB_EACH (&w->store, e)
        stored_free(e->value);
    terni_keytab_free(&w->store);
    terni_loader_close(w->loader);
    if (w->slots)
        munmap(w->slots, w->slots_len);
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->link_lock);
    pthread_cond_destroy(&w->cond);
    pthread_cond_destroy(&w->wd_cond);
    return rc;
}

/* ---- fuzzing entry (tests/fuzz/fuzz_worker.c, which links a stand-in for link.c) ------ */

void *terni_worker_fuzz_new(const terni_worker_opts *opts)
{
    worker *w = calloc(1, sizeof(*w));
    char err[512];
    if (!w)
        return NULL;
    w->opts = opts;
    w->sec.token = opts->token;
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->link_lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    pthread_cond_init(&w->wd_cond, NULL);
    snprintf(err, sizeof(err), "out of memory");
    if (terni_keytab_init(&w->store) != 0 ||
        terni_loader_open(opts->workdir, &w->loader, err, sizeof(err)) != TERN_OK ||
        terni_gate_new(&opts->token, &w->gate) != TERN_OK) {
        fprintf(stderr, "fuzz worker: %s\n", err);
        abort();
    }
    return w;
}

void terni_worker_fuzz_events(void *w, const tern_value *events)
{
    on_events(w, events);
}

void terni_worker_fuzz_data(void *w, const void *bytes, size_t len, uint32_t pipe)
{
    (void)pipe; /* nng gives a message no pipe of our choosing: all arrive on pipe 0 */
    nng_msg *in;
    if (nng_msg_alloc(&in, len) != 0)
        return;
    memcpy(nng_msg_body(in), bytes, len);
    nng_msg *out = data_request(w, in);
    if (out)
        nng_msg_free(out);
}

void terni_worker_fuzz_free(void *arg)
{
    worker *w = arg;
    drop_all_blocked(w);
    while (w->nheap)
        job_free(w->heap[--w->nheap].j);
    free(w->heap);
    TERNI_KEYTAB_EACH (&w->store, e)
        stored_free(e->value);
    terni_keytab_free(&w->store);
    terni_gate_free(w->gate);
    terni_loader_close(w->loader);
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->link_lock);
    pthread_cond_destroy(&w->cond);
    pthread_cond_destroy(&w->wd_cond);
    free(w);
}
