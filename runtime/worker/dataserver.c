/* The data server (dataserver.h): nng callbacks, the token gate, get/put/unpin, and the pins
 * of buffers lent to readers on this host. */
#include "runtime/worker/dataserver.h"

#include "runtime/util/log.h"
#include "sdk/src/protocol/protocol.h"
#include "sdk/src/transport/shm.h"
#include "sdk/src/transport/tls.h"
#include "sdk/src/transport/wire.h"

#include <nng/protocol/reqrep0/rep.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An array lent to a reader on this host (shm.h): held until it unpins or its pipe goes (then
 * forsaken: data_pipe_gone). */
typedef struct terni_pin {
    uint32_t pipe;
    char *key;
    tern_value *value;
} terni_pin;

/* ---- pins ------------------------------------------------------------------------- */

/* Pins v for key, lent to the reader on pipe. Under core->lock. False if out of memory. */
static bool pin_add(terni_dataserver *ds, uint32_t pipe, const char *key, const tern_value *v)
{
    if (ds->npins == ds->cappins) {
        size_t cap = ds->cappins ? 2 * ds->cappins : 8;
        terni_pin *grown = realloc(ds->pins, cap * sizeof(*grown));
        if (!grown)
            return false;
        ds->pins = grown;
        ds->cappins = cap;
    }
    char *k = strdup(key);
    if (!k)
        return false;
    ds->pins[ds->npins++] = (terni_pin){ pipe, k, tern_value_ref((tern_value *)v) };
    return true;
}

/* Releases pin i; its value is unreferenced by the caller after the lock (*value). */
static void pin_remove_locked(terni_dataserver *ds, size_t i, tern_value **value)
{
    *value = ds->pins[i].value;
    free(ds->pins[i].key);
    ds->pins[i] = ds->pins[--ds->npins];
}

/* Releases one pin of (pipe, key); false if there was none. */
static bool unpin(terni_dataserver *ds, uint32_t pipe, const char *key)
{
    tern_value *v = NULL;
    pthread_mutex_lock(&ds->core->lock);
    for (size_t i = 0; i < ds->npins && !v; i++)
        if (ds->pins[i].pipe == pipe && !strcmp(ds->pins[i].key, key))
            pin_remove_locked(ds, i, &v);
    pthread_mutex_unlock(&ds->core->lock);
    tern_value_unref(v); /* may free an 8 MB buffer: outside the lock */
    return v != NULL;
}

/* A connection to the data server closed: the gate forgets it, and its pins go. Each pinned
 * buffer is forsaken first: its reader maps it (shm.c) and can no longer tell us when it is
 * done, so the buffer must never be written or reused (terni_shm_forsake). */
static void data_pipe_gone(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)ev;
    terni_dataserver *ds = arg;
    uint32_t id = nng_pipe_id(p);
    terni_gate_pipe_gone(ds->gate, id);
    for (;;) {
        tern_value *v = NULL;
        pthread_mutex_lock(&ds->core->lock);
        for (size_t i = 0; i < ds->npins && !v; i++)
            if (ds->pins[i].pipe == id)
                pin_remove_locked(ds, i, &v);
        pthread_mutex_unlock(&ds->core->lock);
        if (!v)
            break;
        terni_shm_forsake(v);
        tern_value_unref(v);
    }
}

/* Under core->lock: key's memfd if v is still its stored value (none: fd -1), pinned for the
 * reader on pipe if it is a lent buffer (*pinned; false also when out of memory). */
static terni_shm_file key_memfd(terni_dataserver *ds, uint32_t pipe, const char *key,
                                const tern_value *v, bool *pinned)
{
    terni_shm_file f = { .fd = -1 };
    terni_stored *s = terni_store_find(&ds->core->store, key);
    if (s && s->value == v)
        f = s->shm;
    *pinned = f.fd >= 0 && f.lent && pin_add(ds, pipe, key, v);
    return f;
}

/* For a get from this host (on pipe): the descriptor of key's memfd when v (its stored value,
 * held by the caller) is a large array: the array's own buffer, lent and then pinned until
 * the reader unpins it, or on the first request a sealed copy (terni_shm_export). NULL: send
 * bytes (small or not an array, memfd failed, out of memory, or the key was dropped
 * meanwhile). */
static tern_value *shm_descriptor(terni_dataserver *ds, uint32_t pipe, const char *key,
                                  const tern_value *v)
{
    if (!terni_shm_eligible(v))
        return NULL;
    terni_wcore *c = ds->core;
    terni_shm_file f, made = { .fd = -1 };
    bool pinned; /* a lent buffer is pinned while s->shm is still the key's */
    pthread_mutex_lock(&c->lock);
    f = key_memfd(ds, pipe, key, v, &pinned);
    pthread_mutex_unlock(&c->lock);
    if (f.fd < 0) { /* exported outside the lock; a concurrent request may win */
        int rc = terni_shm_export(v, key, &made);
        if (rc != TERN_OK) {
            terni_log(TERNI_LOG_DEBUG, "get %s: no memfd (%s), sending bytes", key,
                      tern_strerror(rc));
            return NULL;
        }
        pthread_mutex_lock(&c->lock);
        terni_stored *s = terni_store_find(&c->store, key);
        if (s && s->value == v && s->shm.fd < 0) {
            s->shm = made;
            made.fd = -1;
        }
        f = key_memfd(ds, pipe, key, v, &pinned);
        pthread_mutex_unlock(&c->lock);
        terni_shm_file_close(&made);
    }
    if (f.fd < 0 || (f.lent && !pinned))
        return NULL;
    terni_log(TERNI_LOG_DEBUG, "get %s: memfd descriptor, %zu bytes", key, f.len);
    tern_value *d = terni_shm_descriptor(&f, v);
    if (!d && pinned) /* out of memory: the bytes go instead, and nobody will unpin */
        unpin(ds, pipe, key);
    return d;
}

/* ---- the ops ---------------------------------------------------------------------- */

/* get (protocol.h) -> {"values": {key: value}, "shm"?: {key: descriptor}} */
static tern_value *serve_get(terni_dataserver *ds, const terni_get_msg *req, uint32_t pipe)
{
    tern_value *values = tern_map_new(), *out = tern_map_new(), *shm = NULL;
    const char *ours = terni_shm_host();
    bool same_host = req->host && ours && !strcmp(req->host, ours);
    for (size_t i = 0; values && i < req->keys.n; i++) {
        const char *key = terni_strs_at(&req->keys, i);
        tern_value *v = terni_wcore_get(ds->core, key),
                   *d = same_host && v ? shm_descriptor(ds, pipe, key, v) : NULL;
        bool lent = d && terni_get(d, "lent");
        if (d && (shm || (shm = tern_map_new())) &&
            tern_map_set(shm, key, d) == TERN_OK) { /* steals d */
            tern_value_unref(v);
            continue;
        }
        if (d && !shm)
            tern_value_unref(d);
        if (lent) /* out of memory: the bytes go instead, and nobody will unpin */
            unpin(ds, pipe, key);
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

/* unpin (protocol.h) -> {"held": [the keys that were pinned]} */
static tern_value *serve_unpin(terni_dataserver *ds, const terni_keys_msg *req, uint32_t pipe)
{
    tern_value *held = tern_list_new(0), *out = tern_map_new();
    for (size_t i = 0; i < req->keys.n; i++) {
        const char *key = terni_strs_at(&req->keys, i);
        if (unpin(ds, pipe, key) && held)
            tern_list_append(held, tern_text(key));
    }
    if (held && out && terni_set(out, "held", held))
        return out;
    tern_value_unref(out);
    return terni_error_result(TERN_ENOMEM, "out of memory");
}

/* put (protocol.h) -> {} */
static tern_value *serve_put(terni_dataserver *ds, const terni_put_msg *req)
{
    if (!*req->key)
        return terni_error_result(TERN_EINVAL, "put needs a key and a value");
    terni_wcore_put_added(ds->core, req->key, (tern_value *)req->value);
    return tern_map_new();
}

static tern_value *serve(terni_dataserver *ds, const tern_value *req, uint32_t pipe)
{
    terni_op_id id = terni_op_of(req);
    if (!terni_op_in(id, TERNI_DIR_DATA))
        return terni_error_result(TERN_EPROTO, "unknown data op \"%s\"", terni_op_name(req));
    terni_msg m;
    char err[256];
    if (terni_msg_dec(id, req, &m, err, sizeof(err)) != TERN_OK)
        return id == TERNI_OP_PUT ? terni_error_result(TERN_EINVAL, "put needs a key and a value")
                                  : terni_error_result(TERN_EPROTO, "%s", err);
    switch (id) {
    case TERNI_OP_GET:
        return serve_get(ds, &m.get, pipe);
    case TERNI_OP_UNPIN:
        return serve_unpin(ds, &m.keys, pipe);
    default: /* TERNI_OP_PUT */
        return serve_put(ds, &m.put);
    }
}

nng_msg *terni_dataserver_request(terni_dataserver *ds, nng_msg *in)
{
    tern_value *req = NULL, *reply = NULL;
    char err[256];
    uint32_t pipe = nng_pipe_id(nng_msg_get_pipe(in));
    bool authed = terni_gate_authed(ds->gate, pipe), decoded = false;
    terni_gate_verdict verdict = TERNI_GATE_PASS;
    if (!authed && nng_msg_len(in) > TERNI_AUTH_MAX_MSG) /* not worth decoding */
        nng_msg_free(in);
    else
        decoded = terni_msg_decode(in, &req, err, sizeof(err)) == TERN_OK;
    if (!authed || (decoded && (terni_op_in(terni_op_of(req), TERNI_DIR_AUTH))))
        verdict = terni_gate_check(ds->gate, pipe, decoded ? req : NULL, &reply);
    if (verdict == TERNI_GATE_PASS)
        reply = decoded ? serve(ds, req, pipe)
                        : terni_error_result(TERN_EPROTO, "malformed request: %s", err);
    tern_value_unref(req);
    if (verdict == TERNI_GATE_REPLY_CLOSE)
        terni_gate_close_later(ds->gate, pipe);
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

/* ---- the socket ------------------------------------------------------------------- */

static void data_cb(void *arg)
{
    terni_data_ctx *d = arg;
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
    nng_msg *m = terni_dataserver_request(d->ds, nng_aio_get_msg(d->aio));
    if (!m) {
        nng_ctx_recv(d->ctx, d->aio);
        return;
    }
    d->sending = true;
    nng_aio_set_msg(d->aio, m);
    nng_ctx_send(d->ctx, d->aio);
}

int terni_dataserver_init(terni_dataserver *ds, terni_wcore *core, const terni_token *token)
{
    *ds = (terni_dataserver){ .core = core };
    return terni_gate_new(token, &ds->gate) == TERN_OK ? TERN_OK : TERN_ENOMEM;
}

int terni_dataserver_listen(terni_dataserver *ds, const terni_sec *sec, char *err, size_t errlen)
{
    const char *listen = ds->core->opts->listen;
    char *address = ds->core->address;
    size_t addrlen = sizeof(ds->core->address);
    nng_listener l;
    int rv = nng_rep0_open(&ds->sock);
    ds->listening = rv == 0;
    if (rv == 0)
        rv = nng_socket_set_size(ds->sock, NNG_OPT_RECVMAXSZ, TERNI_MAX_MSG);
    if (rv == 0)
        rv = nng_pipe_notify(ds->sock, NNG_PIPE_EV_REM_POST, data_pipe_gone, ds);
    if (rv == 0)
        rv = nng_listener_create(&l, ds->sock, listen);
    int rc = TERN_OK;
    if (rv == 0 && (rc = terni_tls_listener(l, listen, sec, err, errlen)) != TERN_OK)
        return rc;
    if (rv == 0)
        rv = nng_listener_start(l, 0);
    if (rv != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", listen, nng_strerror(rv));
        return terni_nng_err(rv);
    }
    snprintf(address, addrlen, "%s", listen);
    int port;
    if ((!strncmp(listen, "tcp://", 6) || !strncmp(listen, "tls+tcp://", 10)) &&
        nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
        const char *colon = strrchr(listen, ':');
        snprintf(address, addrlen, "%.*s:%d", (int)(colon - listen), listen, port);
    }
    for (int i = 0; i < TERNI_DATA_RECEIVERS; i++) {
        terni_data_ctx *d = &ds->data[i];
        d->ds = ds;
        if (nng_aio_alloc(&d->aio, data_cb, d) != 0 || nng_ctx_open(&d->ctx, ds->sock) != 0) {
            snprintf(err, errlen, "cannot start the data server");
            return TERN_ENOMEM;
        }
        nng_ctx_recv(d->ctx, d->aio);
    }
    return TERN_OK;
}

void terni_dataserver_close(terni_dataserver *ds)
{
    if (ds->listening && !terni_close_bounded(ds->sock, 1000))
        return;
    for (int i = 0; i < TERNI_DATA_RECEIVERS; i++)
        if (ds->data[i].aio)
            nng_aio_free(ds->data[i].aio);
    terni_gate_free(ds->gate);
    while (ds->npins) {
        tern_value *v;
        pin_remove_locked(ds, ds->npins - 1, &v);
        tern_value_unref(v);
    }
    free(ds->pins);
}
