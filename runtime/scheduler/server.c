/* Scheduler-side transport (see server.h).
 *
 * Design notes
 *  - nng rep0 with contexts: each context holds at most one request, so to keep receiving
 *    while some requests are parked (long polls can wait for minutes), a context that
 *    delivers a request immediately arms a spare one. Contexts whose reply has been sent go
 *    back to a free list. The number armed for receiving stays at RECEIVERS.
 *  - aio callbacks run on nng's few task threads and must not block: they only decode the
 *    message and push an event onto the queue (mutex + condvar). All state lives with the
 *    single consumer thread.
 *  - An aio may not be freed from its own callback, so request structs are only freed at
 *    close; they are recycled through the free list.
 *  - Authentication (auth.h) happens here, in the callbacks, before the scheduler sees
 *    anything: with a cluster token, a pipe that has not proven it may only send the small
 *    auth ops, which the gate answers directly; anything else is refused (TERN_EAUTH) and the
 *    pipe closed. The scheduler therefore only ever handles authenticated peers.
 */
#include "runtime/scheduler/server.h"

#include "sdk/src/protocol/protocol.h"
#include "sdk/src/transport/auth.h"
#include "sdk/src/transport/tls.h"
#include "sdk/src/transport/wire.h"

#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECEIVERS 8

enum req_state { R_IDLE, R_RECV, R_HELD, R_SEND };

struct terni_request {
    terni_server *srv;
    nng_ctx ctx;
    nng_aio *aio;
    int state;
    uint32_t pipe;
    terni_request *next_free;
    terni_request *next_all;
};

typedef struct qnode {
    terni_event ev;
    struct qnode *next;
} qnode;

struct terni_server {
    nng_socket sock;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    qnode *head, *tail;
    terni_request *free_list, *all;
    terni_gate *gate;
    bool closing;
};

static void push(terni_server *s, const terni_event *ev)
{
    qnode *n = malloc(sizeof(*n));
    if (!n) { /* out of memory: drop the event but never the request's context */
        if (ev->req)
            terni_server_drop(ev->req);
        tern_value_unref(ev->body);
        return;
    }
    n->ev = *ev;
    n->ev.at_ns = terni_now_ns();
    n->next = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->tail)
        s->tail->next = n;
    else
        s->head = n;
    s->tail = n;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void request_cb(void *arg);

/* Takes a recycled request (or a new one) and starts receiving on it. Lock not held. */
static void arm_receiver(terni_server *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->closing) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    terni_request *r = s->free_list;
    if (r)
        s->free_list = r->next_free;
    pthread_mutex_unlock(&s->lock);
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return;
        r->srv = s;
        if (nng_aio_alloc(&r->aio, request_cb, r) != 0 || nng_ctx_open(&r->ctx, s->sock) != 0) {
            if (r->aio)
                nng_aio_free(r->aio);
            free(r);
            return;
        }
        pthread_mutex_lock(&s->lock);
        r->next_all = s->all;
        s->all = r;
        pthread_mutex_unlock(&s->lock);
    }
    r->state = R_RECV;
    nng_ctx_recv(r->ctx, r->aio);
}

static void recycle(terni_request *r)
{
    terni_server *s = r->srv;
    pthread_mutex_lock(&s->lock);
    r->state = R_IDLE;
    r->next_free = s->free_list;
    s->free_list = r;
    pthread_mutex_unlock(&s->lock);
}

/* The gate's part (see the design notes): true when the request was answered here. */
static bool screen(terni_server *s, terni_request *r, terni_event *ev, bool authed)
{
    const tern_value *op = NULL;
    if (ev->body && tern_list_len(ev->body) == 1)
        tern_list_get(ev->body, 0, &op);
    if (authed && !terni_op_in(terni_op_of(op), TERNI_DIR_AUTH))
        return false;
    tern_value *reply = NULL;
    terni_gate_verdict v = terni_gate_check(s->gate, ev->pipe, op, &reply);
    if (v == TERNI_GATE_PASS)
        return false;
    tern_value *list = reply ? tern_list_of(reply) : NULL;
    if (!list || terni_server_reply(r, list) != TERN_OK)
        terni_server_drop(r);
    if (v == TERNI_GATE_REPLY_CLOSE)
        terni_gate_close_later(s->gate, ev->pipe);
    tern_value_unref(list);
    tern_value_unref(ev->body);
    return true;
}

static void request_cb(void *arg)
{
    terni_request *r = arg;
    terni_server *s = r->srv;
    int rv = nng_aio_result(r->aio);
    if (r->state == R_SEND) {
        if (rv != 0)
            nng_msg_free(nng_aio_get_msg(r->aio));
        recycle(r);
        return;
    }
    /* R_RECV */
    if (rv != 0) {
        if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
            return;
        nng_ctx_recv(r->ctx, r->aio); /* transient: keep receiving */
        return;
    }
    nng_msg *m = nng_aio_get_msg(r->aio);
    terni_event ev = { .kind = TERNI_EV_REQUEST, .req = r };
    ev.pipe = r->pipe = nng_pipe_id(nng_msg_get_pipe(m));
    ev.bytes = nng_msg_len(m);
    r->state = R_HELD;
    arm_receiver(s);
    bool authed = terni_gate_authed(s->gate, ev.pipe);
    if (!authed && nng_msg_len(m) > TERNI_AUTH_MAX_MSG) { /* not worth decoding */
        nng_msg_free(m);
        snprintf(ev.error, sizeof(ev.error), "too large for an unauthenticated connection");
    } else if (terni_msg_decode_slab(m, &ev.body, ev.error, sizeof(ev.error)) != TERN_OK) {
        ev.body = NULL;
    }
    if (screen(s, r, &ev, authed))
        return;
    push(s, &ev);
}

static void pipe_cb(nng_pipe p, nng_pipe_ev what, void *arg)
{
    terni_server *s = arg;
    if (what == NNG_PIPE_EV_REM_POST)
        terni_gate_pipe_gone(s->gate, nng_pipe_id(p));
    terni_event ev = { .kind = what == NNG_PIPE_EV_ADD_POST ? TERNI_EV_PEER_UP : TERNI_EV_PEER_LOST,
                       .pipe = nng_pipe_id(p) };
    push(arg, &ev);
}

int terni_server_open(const char *url, const terni_sec *sec, terni_server **out, char *bound,
                      size_t boundlen, char *err, size_t errlen)
{
    terni_server *s = calloc(1, sizeof(*s));
    if (!s || terni_gate_new(sec ? &sec->token : NULL, &s->gate) != TERN_OK) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return TERN_ENOMEM;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    int rv = nng_rep0_open(&s->sock);
    nng_listener l;
    if (rv == 0)
        rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, TERNI_MAX_MSG);
    if (rv == 0) {
        nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, s);
        nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s);
        rv = nng_listener_create(&l, s->sock, url);
    }
    int rc = TERN_OK;
    if (rv == 0 && (rc = terni_tls_listener(l, url, sec, err, errlen)) != TERN_OK)
        rv = NNG_EINVAL;
    if (rv == 0)
        rv = nng_listener_start(l, 0);
    if (rv != 0) {
        if (rc == TERN_OK)
            snprintf(err, errlen, "cannot listen on %s: %s", url, nng_strerror(rv));
        nng_close(s->sock);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        terni_gate_free(s->gate);
        free(s);
        if (rc != TERN_OK)
            return rc;
        return terni_nng_err(rv) == TERN_EIO ? TERN_EINVAL : terni_nng_err(rv);
    }
    if (bound && boundlen) {
        int port = 0;
        snprintf(bound, boundlen, "%s", url);
        if ((!strncmp(url, "tcp://", 6) || !strncmp(url, "tls+tcp://", 10)) &&
            nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
            const char *colon = strrchr(url, ':');
            snprintf(bound, boundlen, "%.*s:%d", (int)(colon - url), url, port);
        }
    }
    for (int i = 0; i < RECEIVERS; i++)
        arm_receiver(s);
    *out = s;
    return TERN_OK;
}

void terni_server_close(terni_server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    pthread_mutex_unlock(&s->lock);
    /* Aborts every pending aio (callbacks see NNG_ECLOSED). If nng's close deadlocks (see
     * terni_close_bounded), nng may still hold our contexts and call back into s (its lock,
     * its gate): leave all of it, we are exiting. */
    if (!terni_close_bounded(s->sock, 1000))
        return;
    terni_request *r = s->all;
    while (r) {
        terni_request *next = r->next_all;
        nng_aio_free(r->aio);
        free(r);
        r = next;
    }
    qnode *n = s->head;
    while (n) {
        qnode *next = n->next;
        tern_value_unref(n->ev.body);
        free(n);
        n = next;
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    terni_gate_free(s->gate);
    free(s);
}

int terni_server_next(terni_server *s, int timeout_ms, terni_event *ev)
{
    pthread_mutex_lock(&s->lock);
    if (!s->head && timeout_ms != 0) {
        if (timeout_ms < 0) {
            while (!s->head)
                pthread_cond_wait(&s->cond, &s->lock);
        } else {
            struct timespec ts;
            terni_deadline(&ts, timeout_ms);
            while (!s->head && pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
                ;
        }
    }
    qnode *n = s->head;
    if (n) {
        s->head = n->next;
        if (!s->head)
            s->tail = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (!n)
        return TERN_ETIMEDOUT;
    *ev = n->ev;
    free(n);
    return TERN_OK;
}

void terni_server_wake(terni_server *s)
{
    terni_event ev = { .kind = TERNI_EV_WAKE };
    push(s, &ev);
}

int terni_server_reply(terni_request *r, const tern_value *reply)
{
    nng_msg *m;
    int rc = terni_msg_encode(reply, &m);
    if (rc != TERN_OK) {
        tern_value *e = terni_error_result(rc, "cannot encode the reply: %s", tern_strerror(rc));
        rc = e ? terni_msg_encode(e, &m) : TERN_ENOMEM;
        tern_value_unref(e);
        if (rc != TERN_OK) {
            terni_server_drop(r);
            return rc;
        }
    }
    terni_server_reply_msg(r, m);
    return TERN_OK;
}

void terni_server_reply_msg(terni_request *r, nng_msg *m)
{
    r->state = R_SEND;
    nng_aio_set_msg(r->aio, m);
    nng_ctx_send(r->ctx, r->aio);
}

void terni_server_drop(terni_request *r)
{
    recycle(r);
}

uint32_t terni_request_pipe(const terni_request *r)
{
    return r->pipe;
}

void terni_server_close_pipe(terni_server *s, uint32_t pipe)
{
    (void)s;
    nng_pipe p = NNG_PIPE_INITIALIZER;
    p.id = pipe;
    nng_pipe_close(p); /* NNG_ENOENT when already gone: nothing to do */
}
