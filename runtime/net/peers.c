/* Data-plane requests to workers (see peers.h).
 *
 * Design notes: one req socket per peer address, created on first use and kept; each
 * request opens its own context so threads never wait for each other's round trips. A peer
 * that disappears makes requests time out (timeout_ms); the scheduler learns of the death on
 * its own connection and reschedules, so a fetch never waits for ever.
 *  - Dials do not block: a blocking nng dial to a host that hangs or is cut off waits for the
 *    kernel's SYN retries or nng's 10 s handshake, and it would do so holding the cache lock.
 *    Instead a request waits at most CONNECT_MS for a connection (its send phase), and can be
 *    cancelled meanwhile; nng keeps redialing in the background (backoff up to 5 s). */
#include "peers.h"

#include "tls.h"
#include "wire.h"

#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#define CONNECT_MS 3000 /* how long a request waits for a connection to its peer */

typedef struct peer {
    char *address;
    nng_socket sock;
    UT_hash_handle hh;
} peer;

struct terni_peers {
    char *tls_ca;
    pthread_mutex_t lock;
    peer *by_addr;
};

int terni_peers_new(const char *tls_ca, terni_peers **out)
{
    terni_peers *p = calloc(1, sizeof(*p));
    if (!p || (tls_ca && !(p->tls_ca = strdup(tls_ca)))) {
        free(p);
        return TERN_ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return TERN_OK;
}

void terni_peers_free(terni_peers *p)
{
    if (!p)
        return;
    peer *e, *tmp;
    HASH_ITER(hh, p->by_addr, e, tmp)
    {
        HASH_DEL(p->by_addr, e);
        terni_close_bounded(e->sock, 1000);
        free(e->address);
        free(e);
    }
    pthread_mutex_destroy(&p->lock);
    free(p->tls_ca);
    free(p);
}

static int get_socket(terni_peers *p, const char *address, nng_socket *out, char *err,
                      size_t errlen)
{
    pthread_mutex_lock(&p->lock);
    peer *e;
    HASH_FIND_STR(p->by_addr, address, e);
    if (e) {
        *out = e->sock;
        pthread_mutex_unlock(&p->lock);
        return TERN_OK;
    }
    e = calloc(1, sizeof(*e));
    int rv = e && (e->address = strdup(address)) ? nng_req0_open(&e->sock) : NNG_ENOMEM;
    if (rv == 0)
        rv = nng_socket_set_ms(e->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    if (rv == 0)
        rv = nng_socket_set_size(e->sock, NNG_OPT_RECVMAXSZ, TERNI_MAX_MSG);
    if (rv == 0)
        rv = nng_socket_set_ms(e->sock, NNG_OPT_RECONNMAXT, 5000);
    int rc = TERN_OK;
    if (rv == 0) {
        nng_dialer d;
        rv = nng_dialer_create(&d, e->sock, address);
        if (rv == 0 && (rc = terni_tls_dialer(d, address, p->tls_ca, err, errlen)) != TERN_OK)
            rv = NNG_EINVAL;
        if (rv == 0)
            rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
    }
    if (rv != 0) {
        if (rc == TERN_OK)
            snprintf(err, errlen, "cannot connect to worker at %s: %s", address, nng_strerror(rv));
        if (e && e->address)
            nng_close(e->sock);
        if (e)
            free(e->address);
        free(e);
        pthread_mutex_unlock(&p->lock);
        return rc != TERN_OK ? rc : terni_nng_err(rv);
    }
    HASH_ADD_KEYPTR(hh, p->by_addr, e->address, strlen(e->address), e);
    *out = e->sock;
    pthread_mutex_unlock(&p->lock);
    return TERN_OK;
}

/* Completion of one aio, waited for in slices so that a cancel flag is noticed. */
typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} waiter;

static void aio_done(void *arg)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Waits for the aio started last; cancels it once *cancel becomes non-zero. */
static void wait_aio(nng_aio *aio, waiter *w, const int *cancel)
{
    pthread_mutex_lock(&w->lock);
    while (!w->done) {
        if (!cancel) {
            pthread_cond_wait(&w->cond, &w->lock);
            continue;
        }
        struct timespec ts;
        terni_deadline(&ts, 50);
        pthread_cond_timedwait(&w->cond, &w->lock, &ts);
        if (!w->done && __atomic_load_n(cancel, __ATOMIC_RELAXED)) {
            pthread_mutex_unlock(&w->lock);
            nng_aio_cancel(aio);
            pthread_mutex_lock(&w->lock);
        }
    }
    w->done = false;
    pthread_mutex_unlock(&w->lock);
}

static int request(terni_peers *p, const char *address, const tern_value *req, int timeout_ms,
                   const int *cancel, tern_value **reply, char *err, size_t errlen)
{
    *reply = NULL;
    nng_socket sock;
    int rc = get_socket(p, address, &sock, err, errlen);
    if (rc != TERN_OK)
        return rc;
    nng_msg *m;
    if ((rc = terni_msg_encode(req, &m)) != TERN_OK) {
        snprintf(err, errlen, "cannot encode request: %s", tern_strerror(rc));
        return rc;
    }
    nng_ctx ctx;
    nng_aio *aio = NULL;
    waiter w = { .done = false };
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    int rv = nng_ctx_open(&ctx, sock);
    if (rv == 0 && (rv = nng_aio_alloc(&aio, aio_done, &w)) != 0)
        nng_ctx_close(ctx);
    if (rv != 0) {
        nng_msg_free(m);
        pthread_mutex_destroy(&w.lock);
        pthread_cond_destroy(&w.cond);
        snprintf(err, errlen, "cannot talk to %s: %s", address, nng_strerror(rv));
        return terni_nng_err(rv);
    }
    /* The send phase waits for a connection: bounded by CONNECT_MS. */
    bool unreachable = false;
    nng_aio_set_timeout(aio, timeout_ms >= 0 && timeout_ms < CONNECT_MS ? timeout_ms : CONNECT_MS);
    nng_aio_set_msg(aio, m);
    nng_ctx_send(ctx, aio);
    wait_aio(aio, &w, cancel);
    rv = nng_aio_result(aio);
    if (rv != 0) {
        nng_msg_free(nng_aio_get_msg(aio));
        if (rv == NNG_ETIMEDOUT) { /* no connection to the peer */
            snprintf(err, errlen, "cannot reach worker at %s (no connection within %d ms)", address,
                     CONNECT_MS);
            rv = NNG_ECONNREFUSED;
            unreachable = true;
        }
    } else {
        nng_aio_set_timeout(aio, timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
        nng_ctx_recv(ctx, aio);
        wait_aio(aio, &w, cancel);
        rv = nng_aio_result(aio);
    }
    if (rv != 0) {
        if (!unreachable)
            snprintf(err, errlen, "request to worker at %s failed: %s", address, nng_strerror(rv));
        rc = terni_nng_err(rv);
    } else {
        rc = terni_msg_decode(nng_aio_get_msg(aio), reply, err, errlen);
        const char *msg = NULL;
        int code = rc == TERN_OK ? terni_result_error(*reply, &msg) : TERN_OK;
        if (code != TERN_OK) {
            snprintf(err, errlen, "%s", msg);
            tern_value_unref(*reply);
            *reply = NULL;
            rc = code;
        }
    }
    nng_aio_free(aio);
    nng_ctx_close(ctx);
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    return rc;
}

int terni_peers_request(terni_peers *p, const char *address, const tern_value *req, int timeout_ms,
                        tern_value **reply, char *err, size_t errlen)
{
    return request(p, address, req, timeout_ms, NULL, reply, err, errlen);
}

int terni_peers_get(terni_peers *p, const char *address, const tern_value *keys, int timeout_ms,
                    tern_value **values, char *err, size_t errlen)
{
    return terni_peers_get_cancellable(p, address, keys, timeout_ms, NULL, values, err, errlen);
}

int terni_peers_get_cancellable(terni_peers *p, const char *address, const tern_value *keys,
                                int timeout_ms, const int *cancel, tern_value **values, char *err,
                                size_t errlen)
{
    *values = NULL;
    tern_value *req = terni_op("get");
    if (!req || !terni_set(req, "keys", tern_value_ref((tern_value *)keys))) {
        tern_value_unref(req);
        return TERN_ENOMEM;
    }
    tern_value *reply;
    int rc = request(p, address, req, timeout_ms, cancel, &reply, err, errlen);
    tern_value_unref(req);
    if (rc != TERN_OK)
        return rc;
    const tern_value *v = terni_get(reply, "values");
    if (tern_value_type(v) != TERN_T_MAP) {
        tern_value_unref(reply);
        snprintf(err, errlen, "worker at %s sent a malformed get reply", address);
        return TERN_EPROTO;
    }
    *values = tern_value_ref((tern_value *)v);
    tern_value_unref(reply);
    return TERN_OK;
}
