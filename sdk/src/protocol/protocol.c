/* The op list and every message's decoder (protocol.h). The encoders are in protocol_enc.c.
 *
 * Design notes
 *  Decoders check every field they read and nothing else: the "op" field is the caller's (it
 *  looked the op up to choose the decoder), and unknown fields are ignored so that a newer
 *  peer may add optional ones. They borrow, never copy: a scheduler request is decoded into
 *  one slab (wire.h) and every string the handlers see points into it. The first problem
 *  found is the one reported; the struct's contents are then unspecified.
 */
#include "sdk/src/protocol/protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>

const terni_op_info terni_ops[TERNI_OP_COUNT] = {
#define TERNI_OP_INFO(id, name, dir, roles) [TERNI_OP_##id] = { name, dir, roles },
    TERNI_OPS(TERNI_OP_INFO)
#undef TERNI_OP_INFO
};

static int cmp_name(const void *key, const void *e)
{
    return strcmp(key, ((const terni_op_info *)e)->name);
}

terni_op_id terni_op_lookup(const char *name)
{
    if (!name)
        return TERNI_OP_NONE;
    const terni_op_info *e =
        bsearch(name, terni_ops, TERNI_OP_COUNT, sizeof(terni_ops[0]), cmp_name);
    return e ? (terni_op_id)(e - terni_ops) : TERNI_OP_NONE;
}

terni_op_id terni_op_of(const tern_value *m)
{
    const tern_value *v;
    const char *s;
    if (tern_map_get(m, "op", &v) != TERN_OK || tern_value_get_text(v, &s, NULL) != TERN_OK)
        return TERNI_OP_NONE;
    return terni_op_lookup(s);
}

const char *terni_strs_at(const terni_strs *s, size_t i)
{
    if (s->v)
        return s->v[i];
    if (s->items)
        return s->text_of(s->items[i]);
    const tern_value *item;
    const char *t = NULL;
    if (tern_list_get(s->list, i, &item) == TERN_OK)
        tern_value_get_text(item, &t, NULL);
    return t;
}

int terni_cbor_key_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la != lb ? (la < lb ? -1 : 1) : memcmp(a, b, la);
}

/* ---- field readers ---------------------------------------------------------------------- */

typedef struct dec {
    const tern_value *m;
    const char *op;
    char *err;
    size_t errlen;
    int rc;
} dec;

static void fail(dec *d, const char *field, const char *what)
{
    if (d->rc != TERN_OK)
        return;
    d->rc = TERN_EPROTO;
    if (d->err && d->errlen)
        snprintf(d->err, d->errlen, "%s: field \"%s\" %s", d->op, field, what);
}

/* Starts decoding m as op; false (and the error) when it is not a map. */
static bool start(dec *d, const tern_value *m, const char *op, char *err, size_t errlen)
{
    *d = (dec){ m, op, err, errlen, TERN_OK };
    if (tern_value_type(m) == TERN_T_MAP)
        return true;
    d->rc = TERN_EPROTO;
    if (err && errlen)
        snprintf(err, errlen, "%s: not a map", op);
    return false;
}

static const tern_value *field(dec *d, const char *k, bool required)
{
    const tern_value *v;
    if (tern_map_get(d->m, k, &v) == TERN_OK)
        return v;
    if (required)
        fail(d, k, "is missing");
    return NULL;
}

static const char *text(dec *d, const char *k, bool required)
{
    const tern_value *v = field(d, k, required);
    const char *s = NULL;
    if (v && tern_value_get_text(v, &s, NULL) != TERN_OK)
        fail(d, k, "must be text");
    return s;
}

static int64_t integer(dec *d, const char *k, bool required, int64_t dflt)
{
    const tern_value *v = field(d, k, required);
    int64_t i = dflt;
    if (v && tern_value_get_int(v, &i) != TERN_OK) {
        fail(d, k, "must be an int");
        i = dflt;
    }
    return i;
}

static bool boolean(dec *d, const char *k)
{
    const tern_value *v = field(d, k, false);
    bool b = false;
    if (v && tern_value_get_bool(v, &b) != TERN_OK)
        fail(d, k, "must be a bool");
    return b;
}

/* v's bytes (v may be NULL: absent); k names it in the error. */
static const void *bytes_of(dec *d, const tern_value *v, const char *k, size_t *len)
{
    const void *p = NULL;
    *len = 0;
    if (v && tern_value_get_bytes(v, &p, len) != TERN_OK) {
        fail(d, k, "must be bytes");
        p = NULL, *len = 0;
    }
    return p;
}

static const void *bytes(dec *d, const char *k, bool required, size_t *len)
{
    return bytes_of(d, field(d, k, required), k, len);
}

static const tern_value *of_type(dec *d, const char *k, bool required, tern_type type)
{
    const tern_value *v = field(d, k, required);
    if (v && tern_value_type(v) != type) {
        fail(d, k, type == TERN_T_MAP ? "must be a map" : "must be a list");
        return NULL;
    }
    return v;
}

/* Checks that list is a list of texts; what names it in the error. */
static terni_strs texts_of(dec *d, const tern_value *list, const char *what)
{
    terni_strs s = { 0 };
    if (!list)
        return s;
    if (tern_value_type(list) != TERN_T_LIST) {
        fail(d, what, "must be a list of texts");
        return s;
    }
    size_t n = tern_list_len(list);
    for (size_t i = 0; i < n; i++) {
        const tern_value *item;
        if (tern_list_get(list, i, &item) != TERN_OK || tern_value_type(item) != TERN_T_TEXT) {
            char why[64];
            snprintf(why, sizeof(why), "must be a list of texts (item %zu is not)", i);
            fail(d, what, why);
            return (terni_strs){ 0 };
        }
    }
    s.n = n;
    s.list = list;
    return s;
}

static terni_strs strs(dec *d, const char *k, bool required)
{
    return texts_of(d, field(d, k, required), k);
}

/* ---- requests to the scheduler ---------------------------------------------------------- */

int terni_dec_hello(const tern_value *op, terni_hello *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_hello){ .nthreads = 1 };
    if (!start(&d, op, "hello", err, errlen))
        return d.rc;
    out->wire = integer(&d, "wire", false, 0);
    out->role = text(&d, "role", false);
    out->name = text(&d, "name", false);
    out->address = text(&d, "address", false);
    out->nthreads = integer(&d, "nthreads", false, 1);
    out->memory = integer(&d, "memory", false, 0);
    const tern_value *crashed = of_type(&d, "crashed", false, TERN_T_MAP);
    if (crashed && d.rc == TERN_OK) {
        dec c;
        start(&c, crashed, "hello.crashed", err, errlen);
        out->crashed = true;
        out->crashed_why = text(&c, "why", false);
        out->crashed_keys = strs(&c, "keys", false);
        d.rc = c.rc;
    }
    return d.rc;
}

int terni_dec_plugin_info(const tern_value *m, terni_plugin_info *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_plugin_info){ 0 };
    if (!start(&d, m, "plugin info", err, errlen))
        return d.rc;
    out->id = text(&d, "id", true);
    out->name = text(&d, "name", true);
    out->version = text(&d, "version", true);
    out->tasks = text(&d, "tasks", true);
    return d.rc;
}

int terni_dec_welcome(const tern_value *op, terni_welcome *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_welcome){ 0 };
    if (!start(&d, op, "welcome", err, errlen))
        return d.rc;
    out->wire = integer(&d, "wire", true, 0);
    out->heartbeat_ms = integer(&d, "heartbeat_ms", false, 0);
    out->death_timeout_ms = integer(&d, "death_timeout_ms", false, 0);
    out->workers = integer(&d, "workers", false, 0);
    out->plugins = of_type(&d, "plugins", false, TERN_T_LIST);
    const tern_value *p;
    for (size_t i = 0; d.rc == TERN_OK && tern_list_get(out->plugins, i, &p) == TERN_OK; i++) {
        terni_plugin_info info;
        d.rc = terni_dec_plugin_info(p, &info, err, errlen);
    }
    return d.rc;
}

int terni_dec_submit(const tern_value *op, terni_submit *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_submit){ 0 };
    if (!start(&d, op, "submit", err, errlen))
        return d.rc;
    out->tasks = of_type(&d, "tasks", true, TERN_T_LIST);
    out->ntasks = tern_list_len(out->tasks);
    out->fn = text(&d, "fn", false);
    out->plugin = text(&d, "plugin", false);
    out->group = integer(&d, "group", false, 0);
    out->gsize = integer(&d, "gsize", false, 0);
    return d.rc;
}

int terni_dec_task_spec(const terni_submit *sub, size_t i, terni_task_spec *out, char *err,
                        size_t errlen)
{
    dec d;
    const tern_value *spec = NULL;
    *out = (terni_task_spec){ 0 };
    tern_list_get(sub->tasks, i, &spec);
    if (!start(&d, spec, "submit.tasks[]", err, errlen))
        return d.rc;
    out->key = text(&d, "key", true);
    const char *fn = text(&d, "fn", false), *plugin = text(&d, "plugin", false);
    out->fn = fn ? fn : sub->fn;
    out->plugin = plugin ? plugin : sub->plugin;
    out->args = bytes(&d, "args", false, &out->args_len);
    out->deps = strs(&d, "deps", false);
    out->priority = integer(&d, "priority", false, 0);
    out->retries = integer(&d, "retries", false, 0);
    out->gindex = integer(&d, "gindex", false, 0);
    out->gsize = integer(&d, "gsize", false, sub->gsize);
    out->timeout_ms = integer(&d, "timeout_ms", false, 0);
    out->workers = strs(&d, "workers", false);
    return d.rc;
}

int terni_dec_keys(const tern_value *op, terni_keys_msg *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_keys_msg){ 0 };
    if (start(&d, op, "keys message", err, errlen)) {
        const char *name = text(&d, "op", false);
        d.op = name ? name : d.op; /* release, cancel, free or unpin */
        out->keys = strs(&d, "keys", true);
    }
    return d.rc;
}

int terni_dec_upload(const tern_value *op, terni_upload *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_upload){ 0 };
    if (start(&d, op, "upload", err, errlen))
        out->bytes = bytes(&d, "bytes", true, &out->len);
    return d.rc;
}

int terni_dec_scatter(const tern_value *op, terni_scatter *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_scatter){ 0 };
    if (start(&d, op, "scatter", err, errlen))
        out->key = text(&d, "key", false);
    return d.rc;
}

int terni_dec_who_has(const tern_value *op, terni_who_has *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_who_has){ 0 };
    if (start(&d, op, "who_has", err, errlen)) {
        out->keys = strs(&d, "keys", true);
        out->addresses = boolean(&d, "addresses");
    }
    return d.rc;
}

int terni_dec_empty(const tern_value *op, char *err, size_t errlen)
{
    dec d;
    start(&d, op, "op", err, errlen);
    return d.rc;
}

int terni_dec_done(const tern_value *op, terni_done *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_done){ .run = -1, .rss_bytes = -1, .duration_us = -1 };
    if (!start(&d, op, "done", err, errlen))
        return d.rc;
    out->key = text(&d, "key", true);
    out->run = integer(&d, "run", false, -1);
    out->nbytes = integer(&d, "nbytes", true, 0);
    out->rss_bytes = integer(&d, "rss_bytes", false, -1);
    out->duration_us = integer(&d, "duration_us", false, -1);
    out->value = bytes(&d, "value", false, &out->value_len);
    return d.rc;
}

int terni_dec_erred(const tern_value *op, terni_erred *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_erred){ .code = TERN_ETASK, .run = -1 };
    if (!start(&d, op, "erred", err, errlen))
        return d.rc;
    out->key = text(&d, "key", true);
    out->code = integer(&d, "code", false, TERN_ETASK);
    out->message = text(&d, "message", false);
    out->run = integer(&d, "run", false, -1);
    out->task = text(&d, "task", false);
    out->root = text(&d, "root", false);
    return d.rc;
}

int terni_dec_added(const tern_value *op, terni_added *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_added){ 0 };
    if (start(&d, op, "added", err, errlen)) {
        out->key = text(&d, "key", true);
        out->nbytes = integer(&d, "nbytes", false, 0);
    }
    return d.rc;
}

int terni_dec_plugin_failed(const tern_value *op, terni_plugin_failed *out, char *err,
                            size_t errlen)
{
    dec d;
    *out = (terni_plugin_failed){ 0 };
    if (start(&d, op, "plugin_failed", err, errlen)) {
        out->id = text(&d, "id", true);
        out->message = text(&d, "message", false);
    }
    return d.rc;
}

int terni_dec_push(const tern_value *op, terni_push *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_push){ 0 };
    if (start(&d, op, "push", err, errlen)) {
        const char *name = text(&d, "op", false);
        d.op = name ? name : d.op; /* push or push_failed */
        out->key = text(&d, "key", true);
        out->to = strs(&d, "to", true);
        out->message = text(&d, "message", false);
    }
    return d.rc;
}

/* ---- events ------------------------------------------------------------------------------ */

int terni_dec_compute(const tern_value *op, terni_compute *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_compute){ 0 };
    if (!start(&d, op, "compute", err, errlen))
        return d.rc;
    out->key = text(&d, "key", true);
    out->fn = text(&d, "fn", true);
    out->plugin = text(&d, "plugin", true);
    out->args_value = field(&d, "args", true);
    out->args = bytes_of(&d, out->args_value, "args", &out->args_len);
    out->run = integer(&d, "run", true, 0);
    out->priority = integer(&d, "priority", false, 0);
    out->timeout_ms = integer(&d, "timeout_ms", false, 0);
    out->deps_map = of_type(&d, "deps", false, TERN_T_MAP);
    size_t n = tern_map_len(out->deps_map);
    for (size_t i = 0; d.rc == TERN_OK && i < n; i++) {
        const char *k;
        const tern_value *at;
        if (tern_map_entry(out->deps_map, i, &k, &at) == TERN_OK)
            texts_of(&d, at, "deps");
    }
    out->take = strs(&d, "take", false);
    out->after = strs(&d, "after", false);
    return d.rc;
}

int terni_dec_finished(const tern_value *op, terni_finished *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_finished){ 0 };
    if (!start(&d, op, "finished", err, errlen))
        return d.rc;
    out->key = text(&d, "key", true);
    out->nbytes = integer(&d, "nbytes", true, 0);
    out->value = bytes(&d, "value", false, &out->value_len);
    out->who = strs(&d, "who", false);
    return d.rc;
}

int terni_dec_recomputing(const tern_value *op, terni_recomputing *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_recomputing){ 0 };
    if (start(&d, op, "recomputing", err, errlen))
        out->key = text(&d, "key", true);
    return d.rc;
}

int terni_dec_plugin(const tern_value *op, terni_plugin_msg *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_plugin_msg){ 0 };
    if (!start(&d, op, "plugin", err, errlen))
        return d.rc;
    out->id = text(&d, "id", true);
    out->bytes = bytes(&d, "bytes", false, &out->len);
    out->name = text(&d, "name", false);
    out->version = text(&d, "version", false);
    out->tasks = text(&d, "tasks", false);
    return d.rc;
}

/* ---- the data plane ---------------------------------------------------------------------- */

int terni_dec_get(const tern_value *op, terni_get_msg *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_get_msg){ 0 };
    if (start(&d, op, "get", err, errlen)) {
        out->keys = strs(&d, "keys", true);
        out->host = text(&d, "host", false);
    }
    return d.rc;
}

int terni_dec_put(const tern_value *op, terni_put_msg *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_put_msg){ 0 };
    if (start(&d, op, "put", err, errlen)) {
        out->key = text(&d, "key", true);
        out->value = field(&d, "value", true);
    }
    return d.rc;
}

/* ---- the authentication handshake ----------------------------------------------------- */

int terni_dec_auth(const tern_value *op, terni_auth_msg *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_auth_msg){ 0 };
    if (start(&d, op, "auth", err, errlen)) {
        out->wire = integer(&d, "wire", false, 0);
        out->role = text(&d, "role", false);
        out->cnonce = bytes(&d, "cnonce", false, &out->cnonce_len);
    }
    return d.rc;
}

int terni_dec_challenge(const tern_value *op, terni_challenge *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_challenge){ 0 };
    if (start(&d, op, "challenge", err, errlen)) {
        out->snonce = bytes(&d, "snonce", true, &out->snonce_len);
        out->proof = bytes(&d, "proof", true, &out->proof_len);
    }
    return d.rc;
}

int terni_dec_auth_proof(const tern_value *op, terni_auth_proof *out, char *err, size_t errlen)
{
    dec d;
    *out = (terni_auth_proof){ 0 };
    if (start(&d, op, "auth_proof", err, errlen))
        out->proof = bytes(&d, "proof", true, &out->proof_len);
    return d.rc;
}

/* ---- any ------------------------------------------------------------------------------- */

int terni_msg_dec(terni_op_id id, const tern_value *op, terni_msg *out, char *err, size_t errlen)
{
    switch (id) {
    case TERNI_OP_HELLO:
        return terni_dec_hello(op, &out->hello, err, errlen);
    case TERNI_OP_WELCOME:
        return terni_dec_welcome(op, &out->welcome, err, errlen);
    case TERNI_OP_SUBMIT:
        return terni_dec_submit(op, &out->submit, err, errlen);
    case TERNI_OP_RELEASE:
    case TERNI_OP_CANCEL:
    case TERNI_OP_FREE:
    case TERNI_OP_UNPIN:
        return terni_dec_keys(op, &out->keys, err, errlen);
    case TERNI_OP_UPLOAD:
        return terni_dec_upload(op, &out->upload, err, errlen);
    case TERNI_OP_SCATTER:
        return terni_dec_scatter(op, &out->scatter, err, errlen);
    case TERNI_OP_WHO_HAS:
        return terni_dec_who_has(op, &out->who_has, err, errlen);
    case TERNI_OP_HEARTBEAT:
    case TERNI_OP_BYE:
    case TERNI_OP_POLL:
    case TERNI_OP_PLUGINS:
    case TERNI_OP_STATUS:
        return terni_dec_empty(op, err, errlen);
    case TERNI_OP_DONE:
        return terni_dec_done(op, &out->done, err, errlen);
    case TERNI_OP_ERRED:
        return terni_dec_erred(op, &out->erred, err, errlen);
    case TERNI_OP_ADDED:
        return terni_dec_added(op, &out->added, err, errlen);
    case TERNI_OP_PLUGIN_FAILED:
        return terni_dec_plugin_failed(op, &out->plugin_failed, err, errlen);
    case TERNI_OP_PUSH:
    case TERNI_OP_PUSH_FAILED:
        return terni_dec_push(op, &out->push, err, errlen);
    case TERNI_OP_COMPUTE:
        return terni_dec_compute(op, &out->compute, err, errlen);
    case TERNI_OP_FINISHED:
        return terni_dec_finished(op, &out->finished, err, errlen);
    case TERNI_OP_RECOMPUTING:
        return terni_dec_recomputing(op, &out->recomputing, err, errlen);
    case TERNI_OP_PLUGIN:
        return terni_dec_plugin(op, &out->plugin, err, errlen);
    case TERNI_OP_GET:
        return terni_dec_get(op, &out->get, err, errlen);
    case TERNI_OP_PUT:
        return terni_dec_put(op, &out->put, err, errlen);
    case TERNI_OP_AUTH:
        return terni_dec_auth(op, &out->auth, err, errlen);
    case TERNI_OP_CHALLENGE:
        return terni_dec_challenge(op, &out->challenge, err, errlen);
    case TERNI_OP_AUTH_PROOF:
        return terni_dec_auth_proof(op, &out->auth_proof, err, errlen);
    case TERNI_OP_AUTHENTICATED:
        return terni_dec_empty(op, err, errlen);
    default:
        if (err && errlen)
            snprintf(err, errlen, "no typed decoder for op %d", (int)id);
        return TERN_EPROTO;
    }
}
