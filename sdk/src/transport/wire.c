/* Wire format helpers (see wire.h). */
#include "sdk/src/transport/wire.h"

#include "sdk/src/value_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

tern_value *terni_op(const char *name)
{
    tern_value *m = tern_map_new();
    if (m && tern_map_set(m, "op", tern_text(name)) != TERN_OK) {
        tern_value_unref(m);
        return NULL;
    }
    return m;
}

bool terni_set(tern_value *m, const char *key, tern_value *val)
{
    return val && tern_map_set(m, key, val) == TERN_OK;
}

bool terni_set_text(tern_value *m, const char *key, const char *s)
{
    return s && terni_set(m, key, tern_text(s));
}

bool terni_set_int(tern_value *m, const char *key, int64_t i)
{
    return terni_set(m, key, tern_int(i));
}

const tern_value *terni_get(const tern_value *m, const char *key)
{
    const tern_value *v;
    return tern_map_get(m, key, &v) == TERN_OK ? v : NULL;
}

const char *terni_get_text(const tern_value *m, const char *key)
{
    const char *s;
    return tern_value_get_text(terni_get(m, key), &s, NULL) == TERN_OK ? s : NULL;
}

bool terni_list_has_text(const tern_value *list, const char *s)
{
    const tern_value *item;
    const char *t;
    for (size_t i = 0; tern_list_get(list, i, &item) == TERN_OK; i++)
        if (tern_value_get_text(item, &t, NULL) == TERN_OK && !strcmp(t, s))
            return true;
    return false;
}

bool terni_get_int(const tern_value *m, const char *key, int64_t *out)
{
    return tern_value_get_int(terni_get(m, key), out) == TERN_OK;
}

bool terni_get_bool(const tern_value *m, const char *key)
{
    bool b = false;
    tern_value_get_bool(terni_get(m, key), &b);
    return b;
}

const char *terni_op_name(const tern_value *m)
{
    const char *s = terni_get_text(m, "op");
    return s ? s : "";
}

tern_value *terni_error_result(int code, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    terni_utf8_vfmt(buf, sizeof(buf), fmt, ap); /* a text value: valid UTF-8, however cut */
    va_end(ap);
    tern_value *m = tern_map_new();
    if (m && (!terni_set_int(m, "error", code) || !terni_set_text(m, "message", buf))) {
        tern_value_unref(m);
        return NULL;
    }
    return m;
}

int terni_result_error(const tern_value *r, const char **msg)
{
    int64_t code;
    if (tern_value_type(r) != TERN_T_MAP || !terni_get_int(r, "error", &code))
        return TERN_OK;
    if (msg) {
        *msg = terni_get_text(r, "message");
        if (!*msg)
            *msg = tern_strerror((int)code);
    }
    return code > 0 && code < TERN_ERR_COUNT ? (int)code : TERN_EPROTO;
}

int terni_msg_encode(const tern_value *v, nng_msg **out)
{
    size_t need = tern_encoded_size(v);
    if (!need)
        return TERN_ETOODEEP;
    nng_msg *m;
    if (nng_msg_alloc(&m, need) != 0)
        return TERN_ENOMEM;
    int rc = terni_encode_sized(v, need, nng_msg_body(m));
    if (rc != TERN_OK) {
        nng_msg_free(m);
        return rc;
    }
    *out = m;
    return TERN_OK;
}

static void free_msg(void *arg)
{
    nng_msg_free(arg);
}

static const tern_decode_opts msg_opts = { .max_len = TERNI_MAX_MSG,
                                           .max_depth = TERN_MAX_DEPTH,
                                           .max_items = TERNI_MAX_ITEMS };

int terni_msg_decode(nng_msg *m, tern_value **out, char *err, size_t errlen)
{
    return tern_decode_borrow(nng_msg_body(m), nng_msg_len(m), &msg_opts, free_msg, m, out, err,
                              errlen);
}

int terni_msg_decode_slab(nng_msg *m, tern_value **out, char *err, size_t errlen)
{
    return terni_decode_slab(nng_msg_body(m), nng_msg_len(m), &msg_opts, free_msg, m, out, err,
                             errlen);
}

typedef struct closer {
    nng_socket sock;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done, abandoned;
} closer;

static void *close_thread(void *arg)
{
    closer *c = arg;
    nng_close(c->sock);
    pthread_mutex_lock(&c->lock);
    c->done = true;
    bool abandoned = c->abandoned;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (abandoned) {
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        free(c);
    }
    return NULL;
}

bool terni_close_bounded(nng_socket s, int timeout_ms)
{
    closer *c = calloc(1, sizeof(*c));
    pthread_t t;
    if (!c) {
        nng_close(s);
        return true;
    }
    c->sock = s;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    if (pthread_create(&t, NULL, close_thread, c) != 0) {
        nng_close(s);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        free(c);
        return true;
    }
    pthread_detach(t);
    struct timespec ts;
    terni_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&c->lock);
    while (!c->done && pthread_cond_timedwait(&c->cond, &c->lock, &ts) == 0)
        ;
    bool done = c->done;
    c->abandoned = !done;
    pthread_mutex_unlock(&c->lock);
    if (done) {
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        free(c);
    } else {
        fprintf(stderr,
                "tern: nng_close did not finish within %d ms (nng 1.5.2 close deadlock, "
                "upstream #1813); continuing without it\n",
                timeout_ms);
    }
    return done;
}

int terni_nng_err(int rv)
{
    switch (rv) {
    case 0:
        return TERN_OK;
    case NNG_ETIMEDOUT:
        return TERN_ETIMEDOUT;
    case NNG_ECLOSED:
    case NNG_ECANCELED:
    case NNG_ECONNRESET:
    case NNG_ECONNSHUT:
        return TERN_ECLOSED;
    case NNG_ECONNREFUSED:
    case NNG_EADDRINVAL:
    case NNG_EUNREACHABLE:
        return TERN_ECONNREFUSED;
    case NNG_ENOMEM:
        return TERN_ENOMEM;
    case NNG_EINVAL:
        return TERN_EINVAL;
    case NNG_EPROTO:
    case NNG_ENOTSUP:
        return TERN_EPROTO;
    case NNG_EMSGSIZE:
        return TERN_ETOOBIG;
    case NNG_ECRYPTO:
    case NNG_EPEERAUTH:
        return TERN_EAUTH;
    default:
        return TERN_EIO;
    }
}

void terni_walk_keyrefs(const tern_value *v, void (*fn)(void *arg, const char *key), void *arg)
{
    const char *key;
    const tern_value *item;
    switch (tern_value_type(v)) {
    case TERN_T_KEYREF:
        if (tern_value_get_keyref(v, &key) == TERN_OK)
            fn(arg, key);
        break;
    case TERN_T_LIST:
        for (size_t i = 0; tern_list_get(v, i, &item) == TERN_OK; i++)
            terni_walk_keyrefs(item, fn, arg);
        break;
    case TERN_T_MAP:
        for (size_t i = 0; tern_map_entry(v, i, NULL, &item) == TERN_OK; i++)
            terni_walk_keyrefs(item, fn, arg);
        break;
    default:
        break;
    }
}

static bool has_keyrefs(const tern_value *v)
{
    const tern_value *item;
    switch (tern_value_type(v)) {
    case TERN_T_KEYREF:
        return true;
    case TERN_T_LIST:
        for (size_t i = 0; tern_list_get(v, i, &item) == TERN_OK; i++)
            if (has_keyrefs(item))
                return true;
        return false;
    case TERN_T_MAP:
        for (size_t i = 0; tern_map_entry(v, i, NULL, &item) == TERN_OK; i++)
            if (has_keyrefs(item))
                return true;
        return false;
    default:
        return false;
    }
}

tern_value *terni_substitute_keyrefs(const tern_value *v,
                                     tern_value *(*lookup)(void *arg, const char *key), void *arg)
{
    const char *key;
    const tern_value *item;
    if (!has_keyrefs(v))
        return tern_value_ref((tern_value *)v);
    switch (tern_value_type(v)) {
    case TERN_T_KEYREF:
        tern_value_get_keyref(v, &key);
        return lookup(arg, key);
    case TERN_T_LIST: {
        tern_value *out = tern_list_new(tern_list_len(v));
        for (size_t i = 0; out && tern_list_get(v, i, &item) == TERN_OK; i++)
            if (tern_list_append(out, terni_substitute_keyrefs(item, lookup, arg)) != TERN_OK) {
                tern_value_unref(out);
                out = NULL;
            }
        return out;
    }
    case TERN_T_MAP: {
        tern_value *out = tern_map_new();
        for (size_t i = 0; out && tern_map_entry(v, i, &key, &item) == TERN_OK; i++)
            if (tern_map_set(out, key, terni_substitute_keyrefs(item, lookup, arg)) != TERN_OK) {
                tern_value_unref(out);
                out = NULL;
            }
        return out;
    }
    default:
        return tern_value_ref((tern_value *)v);
    }
}

void terni_deadline(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    if (ms <= 0)
        return;
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

uint64_t terni_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
