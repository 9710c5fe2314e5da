/* The worker: runs tasks on N threads, holds results, serves them to peers and clients. This
 * file is its lifecycle: it wires the modules together, dispatches the scheduler's events, and
 * reconnects when the scheduler is lost.
 *
 * Design notes
 *  Modules (each .c with its own .h, whose top comment is its contract):
 *   - core: what the others share: the store and the job queue under one lock, the link to
 *     the scheduler and the ops sent on it (post, "added", "erred", and the stand-in for a
 *     report that cannot be built or sent);
 *   - store: key -> value, with the memfd each large value is served from;
 *   - jobs: the ready heap (priority, then arrival), the running list, and jobs placed early,
 *     blocked on results computed here ("after");
 *   - events: the scheduler's compute, free, cancel and plugin events;
 *   - executor: the N threads that run tasks;
 *   - watchdog: crash forensics (<workdir>/running) and task timeouts;
 *   - dataserver: get/put/unpin for peers and clients, memfd descriptors and their pins;
 *   - pusher: puts results on the workers of tasks placed early after them ("push").
 *  Threads:
 *   - the link's poll callback (an nng thread, link.h) receives scheduler events and only
 *     queues or applies them (events.h);
 *   - N executor threads pop the highest-priority ready job and run it (executor.h);
 *   - the data server's nng callbacks answer get/put/unpin (dataserver.h);
 *   - the pusher thread puts results on the workers waiting for them (pusher.h);
 *   - the watchdog thread ends tasks past their timeout and trims the heap when idle
 *     (watchdog.h);
 *   - this thread connects, waits, and reconnects (serve_scheduler).
 *  Locking: one mutex (core.lock) guards the store, the queue and the pins; values are
 *  immutable once stored (shared values are frozen), so readers take a reference and drop the
 *  lock at once. The link is swapped under core.link_lock; every op goes through core's post.
 *  Taking: a compute event may name dependencies held here whose last reader the task is
 *  ("take", sent by the scheduler only when no client wants them and no other task needs
 *  them). They move from the store into the job at once (jobs.c), and the task is called with
 *  them referenced once (executor.c). A queued job that is cancelled frees them with itself.
 *  Scheduler loss: the link goes down (connection lost, or no answer within the scheduler's
 *  death timeout); the worker drops its data and queue (a scheduler that declared it dead or
 *  restarted knows nothing of them) and reconnects with backoff, for ever, under the same
 *  name.
 *  Restarts: the nanny (nanny.c) runs this process as the executor and restarts it after a
 *  crash with --crashed WHY; the keys left in <workdir>/running go in the hello, so the
 *  scheduler can blame the right tasks. A task past its timeout ends the process on purpose
 *  (TERNI_EXIT_RESTART, watchdog.h), announced to the nanny, which counts any other end of the
 *  executor as a crash (terni_nanny_announce_exit).
 */
#include "runtime/worker/worker.h"

#include "sdk/src/bigbuf.h"
#include "runtime/worker/core.h"
#include "runtime/worker/dataserver.h"
#include "runtime/worker/events.h"
#include "runtime/worker/executor.h"
#include "runtime/util/log.h"
#include "sdk/src/transport/shm.h"
#include "runtime/worker/watchdog.h"
#include "sdk/src/transport/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct worker {
    terni_wcore core;
    terni_executors executors;
    terni_watchdog watchdog;
    terni_dataserver data;
    terni_pusher pusher;
    terni_sec sec;
    atomic_int *stop;
    int link_down; /* set by on_down (an nng thread), read by the main loop: atomics */
} worker;

static void on_events(void *arg, const tern_value *events)
{
    worker *w = arg;
    terni_events_apply(&w->core, events);
}

static void on_down(void *arg, const char *why)
{
    worker *w = arg;
    terni_log(TERNI_LOG_INFO, "%s; reconnecting", why);
    __atomic_store_n(&w->link_down, 1, __ATOMIC_RELEASE);
}

/* crashed: the keys our crashed predecessor left (crash_report), or NULL. */
static tern_value *make_hello(worker *w, const tern_value *crashed)
{
    const terni_worker_opts *opts = w->core.opts;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return terni_enc_hello(&(terni_hello){
        .wire = TERNI_WIRE_VERSION,
        .role = "worker",
        .name = opts->name,
        .address = w->core.address,
        .nthreads = opts->nthreads,
        .memory = (int64_t)pages * page,
        .crashed = crashed != NULL,
        .crashed_why = opts->crashed,
        .crashed_keys = { .n = tern_list_len(crashed), .list = crashed },
    });
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
    const terni_worker_opts *opts = w->core.opts;
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
        int rc = terni_link_open(opts->scheduler, &w->sec, hello, opts->connect_timeout_ms,
                                 on_events, on_down, w, &link, NULL, err, sizeof(err));
        if (rc == TERN_EPROTO || rc == TERN_EAUTH) { /* retrying cannot help */
            terni_log(TERNI_LOG_ERROR, "%s", err);
            return TERNI_EXIT_FATAL;
        }
        if (rc != TERN_OK) {
            if (failures++ % 20 == 0)
                terni_log(TERNI_LOG_INFO, "cannot register with %s: %s; retrying", opts->scheduler,
                          err);
            nap(w->stop, backoff);
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
            continue;
        }
        terni_link_slab_events(link); /* a job keeps its arguments only until it has run */
        backoff = 100;
        failures = 0;
        tern_value_unref(crashed); /* reported */
        crashed = NULL;
        pthread_mutex_lock(&w->core.link_lock);
        w->core.link = link;
        pthread_mutex_unlock(&w->core.link_lock);
        terni_log(TERNI_LOG_INFO, "connected to %s, serving data at %s, %d thread%s",
                  opts->scheduler, w->core.address, opts->nthreads, opts->nthreads == 1 ? "" : "s");
        while (!*w->stop && !__atomic_load_n(&w->link_down, __ATOMIC_ACQUIRE))
            usleep(20 * 1000);
        pthread_mutex_lock(&w->core.link_lock);
        w->core.link = NULL;
        pthread_mutex_unlock(&w->core.link_lock);
        terni_link_close(link);
        if (!*w->stop)
            terni_wcore_forget(&w->core);
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

/* The hello's "crashed" (protocol.h): the keys our predecessor left in its slots when it
 * crashed (the nanny says how: opts->crashed), else NULL. Takes left. */
static tern_value *crash_report(const terni_worker_opts *opts, tern_value *left)
{
    if (!opts->crashed) {
        tern_value_unref(left);
        return NULL;
    }
    terni_log(TERNI_LOG_INFO, "restarted: the previous executor %s while running %zu task%s",
              opts->crashed, tern_list_len(left), tern_list_len(left) == 1 ? "" : "s");
    return left;
}

int terni_worker_run(const terni_worker_opts *opts, atomic_int *stop)
{
    worker w_ = { .stop = stop,
                  .sec = { .tls_ca = opts->tls_ca,
                           .tls_cert = opts->tls_cert,
                           .tls_key = opts->tls_key,
                           .tls_verify_clients = opts->tls_verify_clients,
                           .token = opts->token } },
           *w = &w_;
    terni_wcore *c = &w->core;
    char err[1024];
    raise_fd_limit();
    if (terni_shm_host()) /* the shortcut is on: large results in memfds, served uncopied */
        terni_bigbuf_use_memfd();
    int rc = terni_wcore_init(c, opts, err, sizeof(err));
    if (rc == TERN_OK && (rc = terni_peers_new(&w->sec, &c->peers)) != TERN_OK)
        snprintf(err, sizeof(err), "out of memory");
    if (rc == TERN_OK && (rc = terni_dataserver_init(&w->data, c, &opts->token)) != TERN_OK)
        snprintf(err, sizeof(err), "out of memory");
    if (rc == TERN_OK)
        rc = terni_dataserver_listen(&w->data, &w->sec, err, sizeof(err));
    if (rc == TERN_OK && (terni_pusher_init(&w->pusher, c) != 0 ||
                          (c->pusher = &w->pusher, terni_pusher_start(&w->pusher)) != TERN_OK)) {
        rc = TERN_ENOMEM;
        snprintf(err, sizeof(err), "cannot start the pusher thread");
    }
    if (rc != TERN_OK) {
        terni_log(TERNI_LOG_ERROR, "%s", err);
        return TERNI_EXIT_FATAL;
    }
    tern_value *crashed = crash_report(opts, terni_watchdog_open(&w->watchdog, c));
    /* The executors exist before the link so no compute event waits for them. */
    terni_executors_start(&w->executors, c, &w->watchdog);
    terni_watchdog_start(&w->watchdog);
    rc = serve_scheduler(w, crashed);

    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_cond_broadcast(&c->jobs.cond);
    terni_watchdog_wake(&w->watchdog);
    pthread_mutex_unlock(&c->lock);
    terni_executors_join(&w->executors);
    terni_pusher_destroy(&w->pusher);
    c->pusher = NULL;
    terni_watchdog_close(&w->watchdog);
    terni_dataserver_close(&w->data);
    memset(&w->sec.token, 0, sizeof(w->sec.token));
    terni_peers_free(c->peers);
    terni_wcore_destroy(c);
    return rc;
}

/* ---- fuzzing entry (tests/fuzz/fuzz_worker.c, which links a stand-in for link.c) ------ */

void *terni_worker_fuzz_new(const terni_worker_opts *opts)
{
    worker *w = calloc(1, sizeof(*w));
    char err[512] = "out of memory";
    if (!w)
        return NULL;
    w->sec.token = opts->token;
    if (terni_wcore_init(&w->core, opts, err, sizeof(err)) != TERN_OK ||
        terni_dataserver_init(&w->data, &w->core, &opts->token) != TERN_OK) {
        fprintf(stderr, "fuzz worker: %s\n", err);
        abort();
    }
    return w;
}

void terni_worker_fuzz_events(void *w, const tern_value *events)
{
    on_events(w, events);
}

void terni_worker_fuzz_data(void *arg, const void *bytes, size_t len, uint32_t pipe)
{
    worker *w = arg;
    (void)pipe; /* nng gives a message no pipe of our choosing: all arrive on pipe 0 */
    nng_msg *in;
    if (nng_msg_alloc(&in, len) != 0)
        return;
    memcpy(nng_msg_body(in), bytes, len);
    nng_msg *out = terni_dataserver_request(&w->data, in);
    if (out)
        nng_msg_free(out);
}

void terni_worker_fuzz_free(void *arg)
{
    worker *w = arg;
    terni_dataserver_close(&w->data);
    terni_wcore_destroy(&w->core);
    free(w);
}
