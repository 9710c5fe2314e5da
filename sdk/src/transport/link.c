/* Peer side of a scheduler connection (see link.h).
 *
 * Design notes
 *  - Ordering: posts and calls share one FIFO, and only one op request is in flight, so the
 *    scheduler sees ops in the order they were made (a submit before the release of its
 *    dependency; an upload before a submit that uses it).
 *  - Batching: while a request is in flight, new ops accumulate and go together next time.
 *    Nothing waits to fill a batch, so a lone op is sent at once (latency) and a burst costs
 *    one message (throughput).
 *  - No thread of our own on the message path: every wake-up of a thread costs 10-30 us on a
 *    busy 2-core machine, and a task's round trip used to cross four of ours (sender and
 *    poller, at the client and at the worker). Now the thread that queues an op onto an idle
 *    link encodes and sends it itself (nng_ctx_send does not block), and both contexts run
 *    as aio callbacks on nng's task threads: the op stream's callback finishes the batch's
 *    waiters and sends whatever queued meanwhile; the poll's callback hands the events to
 *    on_events and re-arms the poll. So on_events runs on an nng thread and must not block
 *    (it queues work and signals). `inflight` (under the lock) says who owns op_aio: the
 *    request in flight, or nobody. Only the heartbeat ticker is a thread, and it wakes once
 *    per heartbeat interval, not per op.
 *  - NNG_OPT_REQ_RESENDTIME is infinite: nng would otherwise re-send a request unanswered
 *    after 60 s, duplicating ops (and every long poll).
 *  - A waiter that times out is marked abandoned and freed when its result arrives; the
 *    caller never touches it again.
 *  - Liveness (terni_link_liveness): when nothing was sent for an interval, the ticker sends
 *    a "heartbeat" op, and an op request unanswered for the timeout declares the link down (a
 *    scheduler host that hangs or is cut off keeps its TCP connection open, so nng alone
 *    would wait for ever). The pipe is then closed, so nng does not resend our requests
 *    elsewhere.
 *  - Close (nng 1.5.2 aborts if an operation starts on a closed socket, and a reply arriving
 *    during nng_close can hang it): set `closing` (nothing new starts: the poll callback
 *    checks it under the lock before it re-arms, and it re-arms under the lock), stop the
 *    poll aio, wait (bounded) for the op request in flight, stop the op aio, join the ticker,
 *    and only then close the socket.
 */
#include "sdk/src/transport/link.h"

#include "sdk/src/protocol/protocol.h"
#include "sdk/src/transport/auth.h"
#include "sdk/src/transport/tls.h"
#include "sdk/src/value_internal.h" /* terni_encode_sized */
#include "sdk/src/transport/wire.h"

#include <cbor.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BATCH 65536
#define BYE_MS    1000 /* terni_link_close's goodbye: the scheduler's answer, then the poll's end */

typedef struct waiter {
    bool done, abandoned;
    int rc;
    tern_value *result;
    char msg[512];
} waiter;

/* A queued op, already encoded: the queuing thread encodes it (item_new) and a request is
 * the CBOR list head followed by its items' bytes, so no thread walks the op's tree twice. */
typedef struct item {
    uint8_t *enc;
    size_t size;   /* bytes of enc */
    char name[24]; /* the op's name, for the log */
    waiter *w;     /* NULL for a post */
    struct item *next;
} item;

/* An item for op (consumed), or NULL with *rc set: TERN_ENOMEM, or TERN_ETOODEEP for an op
 * nested deeper than the encoder allows. */
static item *item_new(tern_value *op, waiter *w, int *rc)
{
    item *it = op ? calloc(1, sizeof(*it)) : NULL;
    size_t size = it ? tern_encoded_size(op) : 0;
    *rc = it && !size ? TERN_ETOODEEP : TERN_ENOMEM;
    if (size && (it->enc = malloc(size)) && terni_encode_sized(op, size, it->enc) == TERN_OK) {
        it->size = size;
        snprintf(it->name, sizeof(it->name), "%s", terni_op_name(op));
        it->w = w;
        *rc = TERN_OK;
    } else if (it) {
        free(it->enc);
        free(it);
        it = NULL;
    }
    tern_value_unref(op);
    return it;
}

static void item_free(item *it)
{
    free(it->enc);
    free(it);
}

enum { OP_SEND, OP_RECV };                 /* op_aio's stage */
enum { POLL_SEND, POLL_RECV, POLL_PAUSE }; /* poll_aio's stage */

struct terni_link {
    nng_socket sock;
    nng_ctx op_ctx, poll_ctx;
    nng_aio *op_aio, *poll_aio; /* callbacks op_cb, poll_cb (after the handshake) */
    nng_aio *hs_aio;            /* no callback: the handshake's blocking round trips */
    pthread_mutex_t lock;
    pthread_cond_t cond;      /* ticker: closing, down or liveness changed */
    pthread_cond_t done_cond; /* some waiter finished, or the op stream went idle */
    item *head, *tail;
    item *batch;   /* the request in flight (owned by whoever owns op_aio) */
    size_t nbatch; /* ops in it */
    bool inflight; /* op_aio is busy with `batch` */
    int op_stage, poll_stage;
    bool polling; /* the poll callback chain is alive */
    bool flush;   /* lazy ops wait on an idle link: the ticker sends them */
    uint64_t last_sent_ns;
    bool closing, down, threads_started;
    bool leaving;            /* "bye" is on its way: the poll is not re-armed (terni_link_close) */
    atomic_bool slab_events; /* decode poll replies into a slab (terni_link_slab_events) */
    pthread_t ticker;
    terni_events_fn on_events;
    terni_down_fn on_down;
    void *arg;
    uint32_t pipe;
    int heartbeat_ms, timeout_ms; /* 0: no heartbeats, no answer deadline */
    struct terni_link *next_parked;
};

/* Links whose socket nng_close did not finish closing within its bound (nng 1.5.2 close
 * deadlock, upstream #1813; terni_close_bounded). nng may still run pipe_cb on such a link,
 * from its reaper thread, after we give up waiting: make tsan caught exactly that, pipe_cb
 * locking a link that terni_link_close had destroyed and freed. So such a link is parked here,
 * reachable (not a leak to LeakSanitizer) and never freed; it only happens when closing hangs. */
static pthread_mutex_t parked_lock = PTHREAD_MUTEX_INITIALIZER;
static terni_link *parked;

/* Frees l after its socket was closed (closed: terni_close_bounded's result), or parks it. */
static void free_link(terni_link *l, bool closed)
{
    if (!closed) {
        pthread_mutex_lock(&parked_lock);
        l->next_parked = parked;
        parked = l;
        pthread_mutex_unlock(&parked_lock);
        return;
    }
    if (l->op_aio)
        nng_aio_free(l->op_aio);
    if (l->poll_aio)
        nng_aio_free(l->poll_aio);
    if (l->hs_aio)
        nng_aio_free(l->hs_aio);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    pthread_cond_destroy(&l->done_cond);
    free(l);
}

static void finish(terni_link *l, waiter *w, int rc, tern_value *result, const char *msg)
{
    /* lock held */
    if (w->abandoned) {
        tern_value_unref(result);
        free(w);
        return;
    }
    w->done = true;
    w->rc = rc;
    w->result = result;
    snprintf(w->msg, sizeof(w->msg), "%s", msg ? msg : "");
    pthread_cond_broadcast(&l->done_cond);
}

static void fail_queue(terni_link *l, item *it, const char *why)
{
    /* lock held */
    while (it) {
        item *next = it->next;
        if (it->w)
            finish(l, it->w, TERN_ECLOSED, NULL, why);
        item_free(it);
        it = next;
    }
}

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    terni_link *l = arg;
    bool notify = false;
    pthread_mutex_lock(&l->lock);
    if (ev == NNG_PIPE_EV_ADD_POST) {
        l->pipe = nng_pipe_id(p);
    } else if ((uint32_t)nng_pipe_id(p) == l->pipe && !l->down) {
        l->down = true;
        notify = !l->closing && l->threads_started;
        fail_queue(l, l->head, "the connection to the scheduler was lost");
        l->head = l->tail = NULL;
        pthread_cond_broadcast(&l->cond);
    }
    pthread_mutex_unlock(&l->lock);
    if (notify) {
        nng_aio_cancel(l->op_aio);
        nng_aio_cancel(l->poll_aio);
        if (l->on_down)
            l->on_down(l->arg, "the connection to the scheduler was lost");
    }
}

/* Sends `req` (not stolen) on ctx and waits for the decoded reply. */
static int roundtrip(nng_ctx ctx, nng_aio *aio, const tern_value *req, int timeout_ms,
                     tern_value **reply, char *err, size_t errlen)
{
    nng_msg *m;
    int rc = terni_msg_encode(req, &m);
    if (rc != TERN_OK) {
        snprintf(err, errlen, "cannot encode request: %s", tern_strerror(rc));
        return rc;
    }
    nng_aio_set_timeout(aio, timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
    nng_aio_set_msg(aio, m);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    int rv = nng_aio_result(aio);
    if (rv != 0) {
        nng_msg_free(nng_aio_get_msg(aio));
        snprintf(err, errlen, "sending to the scheduler failed: %s", nng_strerror(rv));
        return terni_nng_err(rv);
    }
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    rv = nng_aio_result(aio);
    if (rv != 0) {
        snprintf(err, errlen, "no answer from the scheduler: %s", nng_strerror(rv));
        return terni_nng_err(rv);
    }
    rc = terni_msg_decode(nng_aio_get_msg(aio), reply, err, errlen);
    if (rc == TERN_OK && tern_value_type(*reply) != TERN_T_LIST) {
        tern_value_unref(*reply);
        snprintf(err, errlen, "the scheduler's reply is not a list");
        return TERN_EPROTO;
    }
    return rc;
}

/* The scheduler stopped answering: the same as losing the connection. */
static void declare_down(terni_link *l, const char *why)
{
    pthread_mutex_lock(&l->lock);
    bool notify = !l->down && !l->closing;
    l->down = true;
    fail_queue(l, l->head, why);
    l->head = l->tail = NULL;
    pthread_cond_broadcast(&l->cond);
    nng_pipe p = NNG_PIPE_INITIALIZER;
    p.id = l->pipe;
    pthread_mutex_unlock(&l->lock);
    if (!notify)
        return;
    nng_pipe_close(p);
    nng_aio_cancel(l->poll_aio);
    if (l->on_down)
        l->on_down(l->arg, why);
}

static void kick(terni_link *l);

/* Finishes the request in flight: rc (and err) for a failed round trip, else the reply. Then
 * sends what queued meanwhile. Called by the owner of op_aio, as the last use of it. */
static void finish_batch(terni_link *l, int rc, tern_value *reply, char *err)
{
    item *batch = l->batch;
    size_t n = l->nbatch;
    if (rc == TERN_ETIMEDOUT) {
        char why[512];
        snprintf(why, sizeof(why), "the scheduler did not answer for %d ms; it is gone or cut off",
                 l->timeout_ms);
        declare_down(l, why);
        snprintf(err, 512, "%s", why);
        rc = TERN_ECLOSED;
    }
    if (rc == TERN_OK && tern_list_len(reply) != n) {
        rc = TERN_EPROTO;
        snprintf(err, 512, "the scheduler answered %zu results for %zu ops", tern_list_len(reply),
                 n);
    }
    pthread_mutex_lock(&l->lock);
    size_t i = 0;
    for (item *it = batch; it; it = it->next, i++) {
        const tern_value *r = NULL;
        if (rc == TERN_OK)
            tern_list_get(reply, i, &r);
        const char *msg = err;
        int code = rc == TERN_OK ? terni_result_error(r, &msg) : rc;
        if (it->w)
            finish(l, it->w, code, code == TERN_OK ? tern_value_ref((tern_value *)r) : NULL, msg);
        else if (code != TERN_OK && rc == TERN_OK)
            fprintf(stderr, "tern: %s failed: %s\n", it->name, msg);
        it->w = NULL;
    }
    l->batch = NULL;
    l->nbatch = 0;
    l->inflight = false;
    pthread_cond_broadcast(&l->done_cond);
    pthread_mutex_unlock(&l->lock);
    /* Free the sent items outside the lock (waiters are finished and detached). */
    for (item *it = batch, *next; it; it = next) {
        next = it->next;
        item_free(it);
    }
    tern_value_unref(reply);
    kick(l);
}

/* Sends the queued ops as one request if the link is idle; the caller must not hold the
 * lock. The thread that wins `inflight` owns op_aio until finish_batch. */
static void kick(terni_link *l)
{
    pthread_mutex_lock(&l->lock);
    if (l->inflight || !l->head || l->closing || l->down) {
        pthread_mutex_unlock(&l->lock);
        return;
    }
    item *batch = l->head, *last = batch;
    size_t n = 1, bytes = batch->size;
    while (last->next && n < MAX_BATCH && bytes + last->next->size <= TERNI_MAX_BATCH_BYTES) {
        last = last->next;
        bytes += last->size;
        n++;
    }
    l->head = last->next;
    if (!l->head)
        l->tail = NULL;
    last->next = NULL;
    l->batch = batch;
    l->nbatch = n;
    l->inflight = true;
    l->last_sent_ns = terni_now_ns();
    int timeout = l->timeout_ms > 0 ? l->timeout_ms : -1;
    pthread_mutex_unlock(&l->lock);

    char err[512] = "out of memory";
    uint8_t head[9];
    size_t hlen = cbor_encode_array_start(n, head, sizeof(head));
    nng_msg *m = NULL;
    if (nng_msg_alloc(&m, hlen + bytes) != 0) {
        finish_batch(l, TERN_ENOMEM, NULL, err);
        return;
    }
    uint8_t *p = nng_msg_body(m);
    memcpy(p, head, hlen);
    p += hlen;
    for (item *it = batch; it; it = it->next) {
        memcpy(p, it->enc, it->size);
        p += it->size;
    }
    l->op_stage = OP_SEND;
    nng_aio_set_timeout(l->op_aio, timeout < 0 ? NNG_DURATION_INFINITE : timeout);
    nng_aio_set_msg(l->op_aio, m);
    nng_ctx_send(l->op_ctx, l->op_aio);
}

static void op_cb(void *arg)
{
    terni_link *l = arg;
    int rv = nng_aio_result(l->op_aio);
    char err[512];
    if (l->op_stage == OP_SEND) {
        if (rv == 0) {
            l->op_stage = OP_RECV;
            nng_ctx_recv(l->op_ctx, l->op_aio);
            return;
        }
        nng_msg_free(nng_aio_get_msg(l->op_aio));
        nng_aio_set_msg(l->op_aio, NULL);
        snprintf(err, sizeof(err), "sending to the scheduler failed: %s", nng_strerror(rv));
        finish_batch(l, terni_nng_err(rv), NULL, err);
        return;
    }
    if (rv != 0) {
        snprintf(err, sizeof(err), "no answer from the scheduler: %s", nng_strerror(rv));
        finish_batch(l, terni_nng_err(rv), NULL, err);
        return;
    }
    tern_value *reply = NULL;
    int rc = terni_msg_decode(nng_aio_get_msg(l->op_aio), &reply, err, sizeof(err));
    nng_aio_set_msg(l->op_aio, NULL);
    if (rc == TERN_OK && tern_value_type(reply) != TERN_T_LIST) {
        tern_value_unref(reply);
        reply = NULL;
        snprintf(err, sizeof(err), "the scheduler's reply is not a list");
        rc = TERN_EPROTO;
    }
    finish_batch(l, rc, rc == TERN_OK ? reply : NULL, err);
}

/* Parks the next poll (or stops the chain when closing or down). Sends under the lock, so
 * terni_link_close, which sets `closing` under it before stopping poll_aio, never races a
 * poll being armed. */
static void arm_poll(terni_link *l)
{
    nng_msg *m = NULL;
    tern_value *poll = tern_list_of(terni_enc_empty(TERNI_OP_POLL));
    int rc = poll ? terni_msg_encode(poll, &m) : TERN_ENOMEM;
    tern_value_unref(poll);
    pthread_mutex_lock(&l->lock);
    if (l->closing || l->down || l->leaving) {
        l->polling = false;
        pthread_cond_broadcast(&l->done_cond);
        pthread_mutex_unlock(&l->lock);
        nng_msg_free(m);
        return;
    }
    if (rc != TERN_OK) { /* out of memory: try again shortly */
        l->poll_stage = POLL_PAUSE;
        nng_sleep_aio(10, l->poll_aio);
    } else {
        l->poll_stage = POLL_SEND;
        nng_aio_set_timeout(l->poll_aio, NNG_DURATION_INFINITE);
        nng_aio_set_msg(l->poll_aio, m);
        nng_ctx_send(l->poll_ctx, l->poll_aio);
    }
    pthread_mutex_unlock(&l->lock);
}

static void poll_cb(void *arg)
{
    terni_link *l = arg;
    int rv = nng_aio_result(l->poll_aio);
    if (l->poll_stage == POLL_PAUSE) {
        arm_poll(l);
        return;
    }
    if (l->poll_stage == POLL_SEND && rv == 0) {
        pthread_mutex_lock(&l->lock);
        bool stop = l->closing;
        if (!stop) {
            l->poll_stage = POLL_RECV;
            nng_ctx_recv(l->poll_ctx, l->poll_aio);
        } else {
            l->polling = false;
        }
        pthread_mutex_unlock(&l->lock);
        return;
    }
    int rc = terni_nng_err(rv);
    if (l->poll_stage == POLL_SEND) {
        nng_msg_free(nng_aio_get_msg(l->poll_aio));
        nng_aio_set_msg(l->poll_aio, NULL);
    } else if (rv == 0) {
        tern_value *events = NULL;
        char err[512];
        nng_msg *m = nng_aio_get_msg(l->poll_aio);
        rc = atomic_load_explicit(&l->slab_events, memory_order_relaxed)
                 ? terni_msg_decode_slab(m, &events, err, sizeof(err))
                 : terni_msg_decode(m, &events, err, sizeof(err));
        nng_aio_set_msg(l->poll_aio, NULL);
        if (rc == TERN_OK && tern_value_type(events) != TERN_T_LIST) {
            tern_value_unref(events);
            rc = TERN_EPROTO;
        } else if (rc == TERN_OK) {
            l->on_events(l->arg, events);
            tern_value_unref(events);
        }
    }
    if (rc == TERN_OK || rc == TERN_ECLOSED || rc == TERN_ETIMEDOUT) {
        arm_poll(l);
        return;
    }
    pthread_mutex_lock(&l->lock); /* don't spin on a broken link */
    if (l->closing || l->down || l->leaving) {
        l->polling = false;
        pthread_cond_broadcast(&l->done_cond);
    } else {
        l->poll_stage = POLL_PAUSE;
        nng_sleep_aio(10, l->poll_aio);
    }
    pthread_mutex_unlock(&l->lock);
}

/* Heartbeats: an idle link sends one every heartbeat_ms (nothing sent for that long). Also
 * sends lazy ops (terni_link_post_encoded_lazy) queued on an idle link, one wake-up later. */
static void *ticker_main(void *arg)
{
    terni_link *l = arg;
    pthread_mutex_lock(&l->lock);
    while (!l->closing && !l->down) {
        if (l->flush) {
            l->flush = false;
            pthread_mutex_unlock(&l->lock);
            kick(l);
            pthread_mutex_lock(&l->lock);
            continue;
        }
        if (l->heartbeat_ms <= 0) {
            pthread_cond_wait(&l->cond, &l->lock);
            continue;
        }
        uint64_t hb_ns = (uint64_t)l->heartbeat_ms * 1000000u, now = terni_now_ns();
        uint64_t due = l->last_sent_ns + hb_ns;
        if (now < due) {
            struct timespec ts;
            int ms = (int)((due - now + 999999u) / 1000000u);
            terni_deadline(&ts, ms > 0 ? ms : 1);
            pthread_cond_timedwait(&l->cond, &l->lock, &ts);
            continue;
        }
        if (l->inflight || l->head) { /* busy: the answer to what is in flight is due first */
            l->last_sent_ns = now;
            continue;
        }
        int rc;
        item *hb = item_new(terni_enc_empty(TERNI_OP_HEARTBEAT), NULL, &rc);
        if (hb)
            l->head = l->tail = hb;
        l->last_sent_ns = now;
        pthread_mutex_unlock(&l->lock);
        kick(l);
        pthread_mutex_lock(&l->lock);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* One auth op on the op-stream context (terni_auth_rt): [op] -> [answer]. */
typedef struct auth_rt_arg {
    terni_link *l;
    int timeout_ms;
} auth_rt_arg;

static int auth_rt(void *arg, const tern_value *op, tern_value **answer, char *err, size_t errlen)
{
    auth_rt_arg *a = arg;
    tern_value *req = tern_list_of(tern_value_ref((tern_value *)op)), *reply = NULL;
    const tern_value *first = NULL;
    int rc = req ? roundtrip(a->l->op_ctx, a->l->hs_aio, req, a->timeout_ms, &reply, err, errlen)
                 : TERN_ENOMEM;
    tern_value_unref(req);
    if (rc == TERN_OK && tern_list_get(reply, 0, &first) != TERN_OK) {
        snprintf(err, errlen, "the scheduler's answer to %s is empty", terni_op_name(op));
        rc = TERN_EPROTO;
    }
    *answer = rc == TERN_OK ? tern_value_ref((tern_value *)first) : NULL;
    tern_value_unref(reply);
    return rc;
}

int terni_link_open(const char *url, const terni_sec *sec, tern_value *hello, int timeout_ms,
                    terni_events_fn on_events, terni_down_fn on_down, void *arg, terni_link **out,
                    tern_value **welcome, char *err, size_t errlen)
{
    if (welcome)
        *welcome = NULL;
    terni_link *l = calloc(1, sizeof(*l));
    tern_value *req = tern_list_of(hello);
    if (!l || !req) {
        free(l);
        tern_value_unref(req);
        snprintf(err, errlen, "out of memory");
        return TERN_ENOMEM;
    }
    l->on_events = on_events;
    l->on_down = on_down;
    l->arg = arg;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    pthread_cond_init(&l->done_cond, NULL);
    int rv = nng_req0_open(&l->sock);
    if (rv == 0)
        rv = nng_socket_set_ms(l->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    if (rv == 0)
        rv = nng_socket_set_size(l->sock, NNG_OPT_RECVMAXSZ, TERNI_MAX_MSG);
    if (rv == 0) {
        nng_pipe_notify(l->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, l);
        nng_pipe_notify(l->sock, NNG_PIPE_EV_REM_POST, pipe_cb, l);
        rv = nng_ctx_open(&l->op_ctx, l->sock);
    }
    if (rv == 0)
        rv = nng_ctx_open(&l->poll_ctx, l->sock);
    if (rv == 0)
        rv = nng_aio_alloc(&l->op_aio, op_cb, l);
    if (rv == 0)
        rv = nng_aio_alloc(&l->poll_aio, poll_cb, l);
    if (rv == 0)
        rv = nng_aio_alloc(&l->hs_aio, NULL, NULL);
    int rc;
    if (rv == 0) {
        nng_dialer d;
        rv = nng_dialer_create(&d, l->sock, url);
        rc = rv == 0 ? terni_tls_dialer(d, url, sec, err, errlen) : TERN_OK;
        if (rv == 0 && rc == TERN_OK)
            rv = nng_dialer_start(d, 0);
        if (rv == NNG_ECRYPTO || rv == NNG_EPEERAUTH)
            snprintf(err, errlen,
                     "TLS handshake with %s failed (%s): check that the CA file signed the "
                     "server's certificate and that the host name matches it",
                     url, nng_strerror(rv));
        else if (rv != 0)
            snprintf(err, errlen, "cannot connect to %s: %s%s", url, nng_strerror(rv),
                     rv == NNG_ECONNSHUT && !strncmp(url, "tls+tcp://", 10)
                         ? " (if the server verifies clients, give a client certificate: "
                           "TERN_TLS_CERT and TERN_TLS_KEY, or the tls_cert_file option)"
                         : "");
        if (rc == TERN_OK)
            rc = terni_nng_err(rv);
    } else {
        snprintf(err, errlen, "cannot open a socket: %s", nng_strerror(rv));
        rc = terni_nng_err(rv);
    }
    if (rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP)
        rc = TERN_EINVAL;
    tern_value *reply = NULL;
    if (rc == TERN_OK && sec && sec->token.len) { /* prove the cluster token before hello */
        auth_rt_arg a = { l, timeout_ms };
        terni_hello hm;
        const char *role = terni_dec_hello(hello, &hm, NULL, 0) == TERN_OK ? hm.role : NULL;
        char why[512];
        rc = terni_auth_client(&sec->token, role ? role : "client", auth_rt, &a, why, sizeof(why));
        if (rc != TERN_OK)
            snprintf(err, errlen, "authentication with %s failed: %s", url, why);
    }
    if (rc == TERN_OK)
        rc = roundtrip(l->op_ctx, l->hs_aio, req, timeout_ms, &reply, err, errlen);
    tern_value_unref(req);
    if (rc == TERN_OK) {
        const tern_value *w = NULL;
        const char *msg = NULL;
        tern_list_get(reply, 0, &w);
        int code = terni_result_error(w, &msg);
        if (!w || code != TERN_OK) {
            rc = w ? code : TERN_EPROTO;
            snprintf(err, errlen, "the scheduler refused the connection: %s",
                     msg ? msg : "empty reply");
        } else {
            /* The scheduler sets the pace of heartbeats and how long silence may last. */
            terni_welcome wm;
            if (terni_dec_welcome(w, &wm, NULL, 0) == TERN_OK && wm.heartbeat_ms > 0 &&
                wm.death_timeout_ms > wm.heartbeat_ms && wm.death_timeout_ms < INT32_MAX) {
                l->heartbeat_ms = (int)wm.heartbeat_ms;
                l->timeout_ms = (int)wm.death_timeout_ms;
            }
            if (welcome)
                *welcome = tern_value_ref((tern_value *)w);
        }
    }
    tern_value_unref(reply);
    pthread_mutex_lock(&l->lock);
    if (rc == TERN_OK && l->down) { /* nng may have resent the hello on a new connection */
        rc = TERN_ECLOSED;
        snprintf(err, errlen, "the connection to %s was lost during the handshake", url);
    }
    pthread_mutex_unlock(&l->lock);
    if (rc != TERN_OK) {
        tern_value_unref(welcome ? *welcome : NULL);
        if (welcome)
            *welcome = NULL;
        l->closing = true;
        free_link(l, terni_close_bounded(l->sock, 1000));
        return rc;
    }
    pthread_mutex_lock(&l->lock);
    l->threads_started = true;
    l->polling = true;
    l->last_sent_ns = terni_now_ns();
    pthread_mutex_unlock(&l->lock);
    *out = l; /* before the poll starts: on_events may use it at once */
    pthread_create(&l->ticker, NULL, ticker_main, l);
    arm_poll(l);
    return TERN_OK;
}

/* Before the socket closes: "bye" tells the scheduler to answer our parked poll now (empty)
 * and any later poll at once, and the poll is not re-armed, so once the chain has ended
 * nothing can arrive on this socket any more. nng 1.5.2's close can deadlock when a reply
 * lands during it (upstream #1813), and its stuck reaper then hangs every later close in the
 * process. Bounded: a scheduler that is gone or does not know "bye" costs BYE_MS at most. */
static void say_bye(terni_link *l)
{
    pthread_mutex_lock(&l->lock);
    bool up = !l->down && !l->closing && l->threads_started;
    l->leaving = true;
    pthread_mutex_unlock(&l->lock);
    if (!up)
        return;
    tern_value *r = NULL;
    char err[256];
    int rc = terni_link_call(l, terni_enc_empty(TERNI_OP_BYE), BYE_MS, &r, err, sizeof(err));
    tern_value_unref(r);
    if (rc != TERN_OK)
        return;
    struct timespec ts;
    terni_deadline(&ts, BYE_MS);
    pthread_mutex_lock(&l->lock);
    while (l->polling && pthread_cond_timedwait(&l->done_cond, &l->lock, &ts) == 0)
        ;
    pthread_mutex_unlock(&l->lock);
}

void terni_link_close(terni_link *l)
{
    if (!l)
        return;
    say_bye(l);
    pthread_mutex_lock(&l->lock);
    l->closing = true;
    fail_queue(l, l->head, "the client is closing");
    l->head = l->tail = NULL;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    /* See the design notes: no operation may start on the socket once nng_close runs. The
     * poll cannot re-arm once `closing` is set, so stopping its aio ends the chain; the op
     * request in flight may finish (bounded), and nothing new starts after it. */
    nng_aio_stop(l->poll_aio);
    struct timespec ts;
    terni_deadline(&ts, 2000);
    pthread_mutex_lock(&l->lock);
    while (l->inflight && pthread_cond_timedwait(&l->done_cond, &l->lock, &ts) == 0)
        ;
    pthread_mutex_unlock(&l->lock);
    nng_aio_stop(l->op_aio);
    pthread_join(l->ticker, NULL);
    free_link(l, terni_close_bounded(l->sock, 1000));
}

static int enqueue_item(terni_link *l, item *it, bool lazy);

static int enqueue(terni_link *l, tern_value *op, waiter *w, bool lazy)
{
    int rc;
    item *it = item_new(op, w, &rc);
    if (!it)
        return rc;
    return enqueue_item(l, it, lazy);
}

static int enqueue_item(terni_link *l, item *it, bool lazy)
{
    pthread_mutex_lock(&l->lock);
    if (l->closing || l->down) {
        pthread_mutex_unlock(&l->lock);
        item_free(it);
        return TERN_ECLOSED;
    }
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    bool idle = !l->inflight;
    if (idle && lazy) { /* the ticker sends it, unless an op that is not lazy comes first */
        l->flush = true;
        pthread_cond_signal(&l->cond);
        idle = false;
    }
    pthread_mutex_unlock(&l->lock);
    if (idle) /* else the callback of the request in flight sends it next */
        kick(l);
    return TERN_OK;
}

int terni_link_post(terni_link *l, tern_value *op)
{
    return enqueue(l, op, NULL, false);
}

static int post_encoded(terni_link *l, uint8_t *enc, size_t len, const char *name, bool lazy)
{
    item *it = enc && len ? calloc(1, sizeof(*it)) : NULL;
    if (!it) {
        free(enc);
        return TERN_ENOMEM;
    }
    it->enc = enc;
    it->size = len;
    snprintf(it->name, sizeof(it->name), "%s", name);
    return enqueue_item(l, it, lazy);
}

int terni_link_post_encoded(terni_link *l, uint8_t *enc, size_t len, const char *name)
{
    return post_encoded(l, enc, len, name, false);
}

int terni_link_post_encoded_lazy(terni_link *l, uint8_t *enc, size_t len, const char *name)
{
    return post_encoded(l, enc, len, name, true);
}

int terni_link_call(terni_link *l, tern_value *op, int timeout_ms, tern_value **result, char *err,
                    size_t errlen)
{
    *result = NULL;
    waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        tern_value_unref(op);
        return TERN_ENOMEM;
    }
    int rc = enqueue(l, op, w, false);
    if (rc != TERN_OK) {
        free(w);
        snprintf(err, errlen, "%s",
                 rc == TERN_ECLOSED ? "not connected to the scheduler" : "out of memory");
        return rc;
    }
    struct timespec ts;
    terni_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&l->lock);
    while (!w->done) {
        if (timeout_ms < 0)
            pthread_cond_wait(&l->done_cond, &l->lock);
        else if (pthread_cond_timedwait(&l->done_cond, &l->lock, &ts) != 0)
            break;
    }
    if (!w->done) {
        w->abandoned = true;
        pthread_mutex_unlock(&l->lock);
        snprintf(err, errlen, "the scheduler did not answer within %d ms", timeout_ms);
        return TERN_ETIMEDOUT;
    }
    pthread_mutex_unlock(&l->lock);
    rc = w->rc;
    *result = w->result;
    if (rc != TERN_OK)
        snprintf(err, errlen, "%s", w->msg);
    free(w);
    return rc;
}

void terni_link_liveness(terni_link *l, int heartbeat_ms, int timeout_ms)
{
    pthread_mutex_lock(&l->lock);
    l->heartbeat_ms = heartbeat_ms;
    l->timeout_ms = timeout_ms;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

bool terni_link_alive(terni_link *l)
{
    pthread_mutex_lock(&l->lock);
    bool alive = !l->closing && !l->down;
    pthread_mutex_unlock(&l->lock);
    return alive;
}

void terni_link_slab_events(terni_link *l)
{
    atomic_store_explicit(&l->slab_events, true, memory_order_relaxed);
}
