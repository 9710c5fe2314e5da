/* Data-plane requests to workers (see peers.h).
 *
 * Design notes: one req socket per peer address, created on first use and kept; each
 * request opens its own context so threads never wait for each other's round trips. A peer
 * that disappears makes requests time out (timeout_ms); the scheduler learns of the death on
 * its own connection and reschedules, so a fetch never waits for ever. */
#include "peers.h"

#include "tls.h"
#include "wire.h"

#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

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
    int rc = TERN_OK;
    if (rv == 0) {
        nng_dialer d;
        rv = nng_dialer_create(&d, e->sock, address);
        if (rv == 0 && (rc = terni_tls_dialer(d, address, p->tls_ca, err, errlen)) != TERN_OK)
            rv = NNG_EINVAL;
        if (rv == 0)
            rv = nng_dialer_start(d, 0);
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

int terni_peers_request(terni_peers *p, const char *address, const tern_value *req, int timeout_ms,
                        tern_value **reply, char *err, size_t errlen)
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
    int rv = nng_ctx_open(&ctx, sock);
    if (rv == 0 && (rv = nng_aio_alloc(&aio, NULL, NULL)) != 0)
        nng_ctx_close(ctx);
    if (rv != 0) {
        nng_msg_free(m);
        snprintf(err, errlen, "cannot talk to %s: %s", address, nng_strerror(rv));
        return terni_nng_err(rv);
    }
    nng_aio_set_timeout(aio, timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
    nng_aio_set_msg(aio, m);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    rv = nng_aio_result(aio);
    if (rv != 0) {
        nng_msg_free(nng_aio_get_msg(aio));
    } else {
        nng_ctx_recv(ctx, aio);
        nng_aio_wait(aio);
        rv = nng_aio_result(aio);
    }
    if (rv != 0) {
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
    return rc;
}

int terni_peers_get(terni_peers *p, const char *address, const tern_value *keys, int timeout_ms,
                    tern_value **values, char *err, size_t errlen)
{
    *values = NULL;
    tern_value *req = terni_op("get");
    if (!req || !terni_set(req, "keys", tern_value_ref((tern_value *)keys))) {
        tern_value_unref(req);
        return TERN_ENOMEM;
    }
    tern_value *reply;
    int rc = terni_peers_request(p, address, req, timeout_ms, &reply, err, errlen);
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
