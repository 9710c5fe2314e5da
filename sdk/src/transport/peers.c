/* Data-plane requests to workers (see peers.h).
 *
 * Design notes: one req socket per peer address, created on first use and kept; each
 * request opens its own context so threads never wait for each other's round trips. A peer
 * that disappears makes requests time out (timeout_ms); the scheduler learns of the death on
 * its own connection and reschedules, so a fetch never waits for ever.
 *  - Dials do not block: a blocking nng dial to a host that hangs or is cut off waits for the
 *    kernel's SYN retries or nng's 10 s handshake, and it would do so holding the cache lock.
 *    Instead a request waits at most CONNECT_MS for a connection (its send phase), and can be
 *    cancelled meanwhile; nng keeps redialing in the background (backoff up to 5 s).
 *  - With a cluster token, each connection (nng pipe) to a data server is authenticated
 *    (auth.h) before its first request: a pipe callback records the current pipe, and a
 *    request finding it different from the authenticated one runs the challenge-response
 *    first, under the peer's own lock (other peers are not held up). A request refused with
 *    TERN_EAUTH (nng reconnected in between) authenticates again and is sent once more.
 *  - Same host (shm.h): a get carries this host's identity; the data server may then answer
 *    large arrays with memfd descriptors ("shm") instead of bytes. get maps them (read-only,
 *    borrowed by the value) and asks once more, without the identity, for the keys whose
 *    descriptors do not map, so callers see the same values either way.
 *  - A lent array (the sender's own buffer, pinned for our connection) is unpinned when the
 *    value's last reference goes, on whatever thread that is: a lender (one per get, held by
 *    each of its mapped arrays, holding a reference to the terni_peers) sends "unpin" on a
 *    context of its own whose send and reply are handled in nng callbacks, so nobody waits.
 *    After terni_peers_free nothing is sent: our connections are closed, and the sender
 *    forsook the buffers (never reuses them) when they went. The terni_peers struct itself
 *    lives until its last lender goes. */
#include "sdk/src/transport/peers.h"

#include "sdk/src/protocol/protocol.h"

#include "sdk/src/transport/auth.h"
#include "sdk/src/transport/shm.h"
#include "sdk/src/transport/tls.h"
#include "sdk/src/transport/wire.h"

#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#define CONNECT_MS     3000  /* how long a request waits for a connection to its peer */
#define UNPIN_REPLY_MS 10000 /* how long an unpin waits for its (ignored) reply */
#define UNPIN_WAIT_MS  1000  /* how long terni_peers_free waits for unpins in flight */

typedef struct peer {
    char *address;
    nng_socket sock;
    pthread_mutex_t auth_lock;
    _Atomic uint32_t pipe; /* current connection (set by a pipe callback) */
    uint32_t authed_pipe;  /* the connection authenticated last (under auth_lock) */
    UT_hash_handle hh;
    struct peer *next_parked;
} peer;

/* Peers whose socket nng_close did not finish closing within its bound (terni_close_bounded):
 * nng may still run peer_pipe_cb on them, so they are kept, reachable, and never freed (as
 * link.c's parked links). */
static pthread_mutex_t parked_lock = PTHREAD_MUTEX_INITIALIZER;
static peer *parked;

struct terni_peers {
    char *tls_ca, *tls_cert, *tls_key;
    terni_sec sec; /* strings point to the copies above */
    pthread_mutex_t lock;
    peer *by_addr;
    bool closed;             /* terni_peers_free has begun: no more unpins (under lock) */
    int unpinning;           /* unpin and post ops sent and not yet answered (under lock) */
    pthread_cond_t unpinned; /* unpinning went down */
    atomic_int refs; /* the owner's, one per lender (mapped lent arrays), one per unpin op */
};

static char *dup_or_null(const char *s, bool *ok)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *ok = false;
    return d;
}

int terni_peers_new(const terni_sec *sec, terni_peers **out)
{
    terni_peers *p = calloc(1, sizeof(*p));
    if (!p)
        return TERN_ENOMEM;
    bool ok = true;
    if (sec) {
        p->sec = *sec;
        p->sec.tls_ca = p->tls_ca = dup_or_null(sec->tls_ca, &ok);
        p->sec.tls_cert = p->tls_cert = dup_or_null(sec->tls_cert, &ok);
        p->sec.tls_key = p->tls_key = dup_or_null(sec->tls_key, &ok);
    }
    if (!ok) {
        free(p->tls_ca);
        free(p->tls_cert);
        free(p->tls_key);
        free(p);
        return TERN_ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->unpinned, NULL);
    atomic_init(&p->refs, 1);
    *out = p;
    return TERN_OK;
}

static void peers_destroy(terni_peers *p)
{
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->unpinned);
    free(p->tls_ca);
    free(p->tls_cert);
    free(p->tls_key);
    memset(&p->sec.token, 0, sizeof(p->sec.token));
    free(p);
}

static void peers_unref(terni_peers *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1)
        peers_destroy(p);
}

void terni_peers_free(terni_peers *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->closed = true; /* arrays still mapped from now on unmap without unpinning */
    /* Unpins in flight are answered before the sockets close: nng 1.5.2's close can deadlock
     * when a reply lands during it (upstream #1813), and its stuck reaper then hangs every
     * later close in the process. Bounded: a sender that does not answer costs UNPIN_WAIT_MS. */
    struct timespec ts;
    terni_deadline(&ts, UNPIN_WAIT_MS);
    while (p->unpinning && pthread_cond_timedwait(&p->unpinned, &p->lock, &ts) == 0)
        ;
    pthread_mutex_unlock(&p->lock);
    peer *e, *tmp;
    HASH_ITER(hh, p->by_addr, e, tmp)
    {
        HASH_DEL(p->by_addr, e);
        if (!terni_close_bounded(e->sock, 1000)) {
            pthread_mutex_lock(&parked_lock);
            e->next_parked = parked;
            parked = e;
            pthread_mutex_unlock(&parked_lock);
            continue;
        }
        pthread_mutex_destroy(&e->auth_lock);
        free(e->address);
        free(e);
    }
    peers_unref(p);
}

static void peer_pipe_cb(nng_pipe pp, nng_pipe_ev ev, void *arg)
{
    peer *e = arg;
    atomic_store(&e->pipe, (uint32_t)nng_pipe_id(pp));
}

static int get_socket(terni_peers *p, const char *address, peer **out, char *err, size_t errlen)
{
    pthread_mutex_lock(&p->lock);
    peer *e;
    HASH_FIND_STR(p->by_addr, address, e);
    if (e) {
        *out = e;
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
    if (rv == 0)
        rv = nng_pipe_notify(e->sock, NNG_PIPE_EV_ADD_POST, peer_pipe_cb, e);
    int rc = TERN_OK;
    if (rv == 0) {
        nng_dialer d;
        rv = nng_dialer_create(&d, e->sock, address);
        if (rv == 0 && (rc = terni_tls_dialer(d, address, &p->sec, err, errlen)) != TERN_OK)
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
    pthread_mutex_init(&e->auth_lock, NULL);
    HASH_ADD_KEYPTR(hh, p->by_addr, e->address, strlen(e->address), e);
    *out = e;
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

/* One round trip on a fresh context; *reply gets the answer as sent (error results too). */
static int raw_request(nng_socket sock, const char *address, const tern_value *req, int timeout_ms,
                       const int *cancel, tern_value **reply, uint32_t *via, char *err,
                       size_t errlen)
{
    *reply = NULL;
    int rc;
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
        nng_msg *got = nng_aio_get_msg(aio);
        int id = nng_pipe_id(nng_msg_get_pipe(got));
        if (via)
            *via = id > 0 ? (uint32_t)id : 0;
        rc = terni_msg_decode(got, reply, err, errlen);
    }
    nng_aio_free(aio);
    nng_ctx_close(ctx);
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    return rc;
}

typedef struct auth_arg {
    uint32_t via; /* the connection the last answer came on */
    peer *e;
    int timeout_ms;
    const int *cancel;
} auth_arg;

static int auth_rt(void *arg, const tern_value *op, tern_value **answer, char *err, size_t errlen)
{
    auth_arg *a = arg;
    return raw_request(a->e->sock, a->e->address, op, a->timeout_ms, a->cancel, answer, &a->via,
                       err, errlen);
}

/* Authenticates e's current connection unless that is done already (force: even so). */
static int ensure_auth(terni_peers *p, peer *e, int timeout_ms, const int *cancel, bool force,
                       char *err, size_t errlen)
{
    if (!p->sec.token.len)
        return TERN_OK;
    pthread_mutex_lock(&e->auth_lock);
    /* e->pipe is set by the ADD_POST callback, which nng runs after the connection can already
     * carry messages: until it has run for the first connection, the one we authenticated is
     * the only one there is. (Reading e->pipe after the handshake instead, as this did, could
     * record 0, and the next request then authenticated the same connection again and was
     * refused, "this connection is already authenticated": seen once in make tsan.) */
    uint32_t pipe = atomic_load(&e->pipe);
    if (!pipe)
        pipe = e->authed_pipe;
    int rc = TERN_OK;
    if (force || !pipe || pipe != e->authed_pipe) {
        auth_arg a = { .e = e, .timeout_ms = timeout_ms, .cancel = cancel };
        char why[512];
        rc = terni_auth_client(&p->sec.token, "peer", auth_rt, &a, why, sizeof(why));
        /* the connection the proof was accepted on, from the answer itself */
        e->authed_pipe = rc == TERN_OK ? a.via : 0;
        if (rc != TERN_OK)
            snprintf(err, errlen, "authentication with worker at %s failed: %s", e->address, why);
    }
    pthread_mutex_unlock(&e->auth_lock);
    return rc;
}

static int request(terni_peers *p, const char *address, const tern_value *req, int timeout_ms,
                   const int *cancel, tern_value **reply, char *err, size_t errlen)
{
    *reply = NULL;
    peer *e = NULL;
    int rc = get_socket(p, address, &e, err, errlen);
    if (rc == TERN_OK)
        rc = ensure_auth(p, e, timeout_ms, cancel, false, err, errlen);
    if (rc != TERN_OK)
        return rc;
    tern_value *raw = NULL;
    rc = raw_request(e->sock, address, req, timeout_ms, cancel, &raw, NULL, err, errlen);
    const char *msg = NULL;
    if (rc == TERN_OK && p->sec.token.len && terni_result_error(raw, &msg) == TERN_EAUTH) {
        /* nng reconnected between our proof and this request: prove again, once */
        tern_value_unref(raw);
        raw = NULL;
        rc = ensure_auth(p, e, timeout_ms, cancel, true, err, errlen);
        if (rc == TERN_OK)
            rc = raw_request(e->sock, address, req, timeout_ms, cancel, &raw, NULL, err, errlen);
    }
    if (rc != TERN_OK)
        return rc;
    int code = terni_result_error(raw, &msg);
    if (code != TERN_OK) {
        snprintf(err, errlen, "%s", msg);
        tern_value_unref(raw);
        return code;
    }
    *reply = raw;
    return TERN_OK;
}

int terni_peers_request(terni_peers *p, const char *address, const tern_value *req, int timeout_ms,
                        tern_value **reply, char *err, size_t errlen)
{
    return request(p, address, req, timeout_ms, NULL, reply, err, errlen);
}

/* ---- posting: requests whose replies nng callbacks await ------------------------------ */

typedef struct post_op {
    nng_ctx ctx;
    nng_aio *aio;
    bool sent;
    int timeout_ms;
    terni_peers *p; /* a reference, and counted in p->unpinning, until the op is done */
    terni_peers_done done;
    void *arg;
} post_op;

static void op_finished(terni_peers *p)
{
    pthread_mutex_lock(&p->lock);
    p->unpinning--;
    pthread_cond_broadcast(&p->unpinned);
    pthread_mutex_unlock(&p->lock);
    peers_unref(p);
}

static void post_op_cb(void *arg)
{
    post_op *op = arg;
    int rv = nng_aio_result(op->aio);
    if (rv == 0 && !op->sent) {
        op->sent = true;
        nng_aio_set_timeout(op->aio, op->timeout_ms);
        nng_ctx_recv(op->ctx, op->aio);
        return;
    }
    char err[512] = "";
    int rc = TERN_OK;
    if (rv != 0) {
        if (!op->sent) /* the message was not sent: still ours */
            nng_msg_free(nng_aio_get_msg(op->aio));
        rc = !op->sent && rv == NNG_ETIMEDOUT ? TERN_ECONNREFUSED : terni_nng_err(rv);
        snprintf(err, sizeof(err), "%s",
                 !op->sent && rv == NNG_ETIMEDOUT ? "no connection within the connect timeout"
                                                  : nng_strerror(rv));
    } else {
        tern_value *reply = NULL;
        const char *msg = NULL;
        rc = terni_msg_decode(nng_aio_get_msg(op->aio), &reply, err, sizeof(err)); /* takes it */
        if (rc == TERN_OK && (rc = terni_result_error(reply, &msg)) != TERN_OK)
            snprintf(err, sizeof(err), "%s", msg);
        tern_value_unref(reply);
    }
    nng_ctx_close(op->ctx);
    nng_aio_reap(op->aio);
    terni_peers *p = op->p;
    op->done(op->arg, rc, err);
    free(op);
    op_finished(p);
}

int terni_peers_post(terni_peers *p, const char *address, const tern_value *req, int timeout_ms,
                     terni_peers_done done, void *arg)
{
    char err[256];
    peer *e = NULL;
    int rc = get_socket(p, address, &e, err, sizeof(err));
    if (rc != TERN_OK)
        return rc;
    if (p->sec.token.len) { /* authenticated already? (ensure_auth's test, without waiting) */
        if (pthread_mutex_trylock(&e->auth_lock) != 0)
            return TERN_EBUSY;
        uint32_t pipe = atomic_load(&e->pipe);
        bool authed = e->authed_pipe && (!pipe || pipe == e->authed_pipe);
        pthread_mutex_unlock(&e->auth_lock);
        if (!authed)
            return TERN_EBUSY;
    }
    nng_msg *m = NULL;
    post_op *op = calloc(1, sizeof(*op));
    if (!op || (rc = terni_msg_encode(req, &m)) != TERN_OK ||
        nng_aio_alloc(&op->aio, post_op_cb, op) != 0) {
        if (m)
            nng_msg_free(m);
        free(op);
        return rc != TERN_OK ? rc : TERN_ENOMEM;
    }
    *op = (post_op){ .aio = op->aio, .timeout_ms = timeout_ms, .done = done, .arg = arg };
    pthread_mutex_lock(&p->lock);
    bool go = !p->closed && nng_ctx_open(&op->ctx, e->sock) == 0;
    if (go) { /* counted before the lock goes: terni_peers_free waits for it */
        op->p = p;
        atomic_fetch_add(&p->refs, 1);
        p->unpinning++;
    }
    pthread_mutex_unlock(&p->lock);
    if (!go) {
        nng_msg_free(m);
        nng_aio_free(op->aio);
        free(op);
        return TERN_ECLOSED;
    }
    nng_aio_set_timeout(op->aio, CONNECT_MS);
    nng_aio_set_msg(op->aio, m);
    nng_ctx_send(op->ctx, op->aio);
    return TERN_OK;
}

/* ---- unpinning lent arrays (shm.h) ------------------------------------------------- */

/* One "unpin" on its own context, sent and its reply awaited by nng callbacks alone, so that
 * whichever thread drops a mapped array never waits for the sender. */
typedef struct unpin_op {
    nng_ctx ctx;
    nng_aio *aio;
    bool sent;
    terni_peers *p; /* a reference, and counted in p->unpinning, until the op is done */
} unpin_op;

static void unpin_op_done(void *arg)
{
    unpin_op *op = arg;
    int rv = nng_aio_result(op->aio);
    if (rv == 0 && !op->sent) {
        op->sent = true;
        nng_aio_set_timeout(op->aio, UNPIN_REPLY_MS);
        nng_ctx_recv(op->ctx, op->aio);
        return;
    }
    /* the reply ("held") changes nothing: a pin we no longer had went with our connection,
     * and the sender then forsook the buffer instead of reusing it */
    nng_msg *m = nng_aio_get_msg(op->aio); /* a send that failed, or the reply */
    if (m)
        nng_msg_free(m);
    nng_ctx_close(op->ctx);
    nng_aio_reap(op->aio);
    terni_peers *p = op->p;
    free(op);
    op_finished(p);
}

/* The sender of some mapped lent arrays: one get's worth, held by each of them. */
typedef struct lender {
    atomic_int refs;
    terni_peers *p; /* a reference */
    char address[];
} lender;

static void lender_hold(void *arg)
{
    atomic_fetch_add(&((lender *)arg)->refs, 1);
}

static void lender_unref(lender *l)
{
    if (atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    peers_unref(l->p);
    free(l);
}

/* Sends "unpin" for key to the lender, without waiting (best effort: if it cannot be sent,
 * the pin goes when our connection closes, and the buffer is forsaken then). */
static void lender_unpin(void *arg, const char *key)
{
    lender *l = arg;
    terni_peers *p = l->p;
    /* unpin has the shape of a keys message (protocol.h), written straight into CBOR */
    terni_outbox o = { 0 };
    nng_msg *m = NULL;
    unpin_op *op = NULL;
    if (terni_enc_keys(&o, TERNI_OP_UNPIN, &(terni_keys_msg){ .keys = terni_strs_of(&key, 1) }) &&
        nng_msg_alloc(&m, 0) == 0 && nng_msg_append(m, o.buf, o.len) == 0 &&
        (op = calloc(1, sizeof(*op))) && nng_aio_alloc(&op->aio, unpin_op_done, op) == 0) {
        pthread_mutex_lock(&p->lock);
        peer *e = NULL;
        if (!p->closed)
            HASH_FIND_STR(p->by_addr, l->address, e);
        bool go = e && nng_ctx_open(&op->ctx, e->sock) == 0;
        if (go) { /* counted before the lock goes: terni_peers_free waits for it */
            op->p = p;
            atomic_fetch_add(&p->refs, 1);
            p->unpinning++;
        }
        pthread_mutex_unlock(&p->lock);
        if (go) { /* sent outside the lock, which unpin_op_done takes */
            nng_aio_set_timeout(op->aio, CONNECT_MS);
            nng_aio_set_msg(op->aio, m);
            nng_ctx_send(op->ctx, op->aio);
            m = NULL;
            op = NULL;
        }
    }
    if (op) {
        if (op->aio)
            nng_aio_free(op->aio);
        free(op);
    }
    if (m)
        nng_msg_free(m);
    terni_outbox_free(&o);
    lender_unref(l);
}

static lender *lender_new(terni_peers *p, const char *address)
{
    size_t len = strlen(address) + 1;
    lender *l = malloc(sizeof(*l) + len);
    if (!l)
        return NULL;
    atomic_init(&l->refs, 1);
    atomic_fetch_add(&p->refs, 1);
    l->p = p;
    memcpy(l->address, address, len);
    return l;
}

/* One get; with host (this host's identity), large arrays may come as memfd descriptors,
 * which are mapped or copied here, and those that do not import are asked for again as
 * bytes. */
static int get(terni_peers *p, const char *address, const tern_value *keys, int timeout_ms,
               const int *cancel, const char *host, tern_value **values, char *err, size_t errlen)
{
    *values = NULL;
    tern_value *req = terni_enc_get(
        &(terni_get_msg){ .keys = { .n = tern_list_len(keys), .list = keys }, .host = host });
    if (!req)
        return TERN_ENOMEM;
    tern_value *reply;
    int rc = request(p, address, req, timeout_ms, cancel, &reply, err, errlen);
    tern_value_unref(req);
    if (rc != TERN_OK)
        return rc;
    const tern_value *v = terni_get(reply, "values"), *shm = terni_get(reply, "shm");
    tern_value *merged = NULL, *retry = NULL, *more = NULL;
    lender *l = NULL;
    if (tern_value_type(v) != TERN_T_MAP)
        rc = TERN_EPROTO;
    else if (!shm) /* the usual case: nothing to map */
        merged = tern_value_ref((tern_value *)v);
    else if (!host)
        rc = TERN_EPROTO; /* descriptors we did not ask for */
    else if (!(l = lender_new(p, address)))
        rc = TERN_ENOMEM;
    else {
        terni_shm_unpinner u = { .hold = lender_hold, .unpin = lender_unpin, .arg = l };
        rc = terni_shm_resolve(v, shm, &u, &merged, &retry);
    }
    if (l)
        lender_unref(l); /* each mapped lent array holds its own reference */
    tern_value_unref(reply);
    if (rc == TERN_EPROTO)
        snprintf(err, errlen, "worker at %s sent a malformed get reply", address);
    else if (rc == TERN_ENOMEM)
        snprintf(err, errlen, "out of memory");
    if (rc == TERN_OK && retry)
        rc = get(p, address, retry, timeout_ms, cancel, NULL, &more, err, errlen);
    const char *key;
    const tern_value *item;
    for (size_t i = 0; rc == TERN_OK && tern_map_entry(more, i, &key, &item) == TERN_OK; i++)
        rc = tern_map_set(merged, key, tern_value_ref((tern_value *)item));
    tern_value_unref(retry);
    tern_value_unref(more);
    if (rc != TERN_OK) {
        tern_value_unref(merged);
        return rc;
    }
    *values = merged;
    return TERN_OK;
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
    return get(p, address, keys, timeout_ms, cancel, terni_shm_host(), values, err, errlen);
}
