/* Every message's encoder (protocol.h); the op list and the decoders are in protocol.c.
 *
 * Design notes
 *  The outbox encoders write map keys in CBOR's deterministic order (shorter first, then
 *  bytewise) by hand, so that their bytes equal tern_encode's of the same map: a peer that
 *  builds the map as a value tree and one that writes it directly are indistinguishable
 *  (tests/unit/test_protocol_msgs.c compares both ways for every message). The order of each
 *  map is in the comment above its encoder. Map heads give the count of the fields written,
 *  so optional fields are counted first.
 */
#include "sdk/src/protocol/protocol.h"

#include <string.h>

#include <tern/codec.h>
#include <tern/error.h>

static void ob_strs(terni_outbox *o, const terni_strs *s)
{
    terni_ob_list(o, s->n);
    for (size_t i = 0; i < s->n; i++)
        terni_ob_text(o, terni_strs_at(s, i));
}

static void ob_field_text(terni_outbox *o, const char *k, const char *v)
{
    terni_ob_text(o, k);
    terni_ob_text(o, v);
}

static void ob_field_int(terni_outbox *o, const char *k, int64_t v)
{
    terni_ob_text(o, k);
    terni_ob_int(o, v);
}

/* ---- value-tree helpers ------------------------------------------------------------------ */

typedef struct enc {
    tern_value *m;
    bool ok;
} enc;

static enc tree(terni_op_id op)
{
    tern_value *m = tern_map_new();
    enc e = { m, m != NULL };
    if (e.ok && op != TERNI_OP_NONE)
        e.ok = tern_map_set(m, "op", tern_text(terni_ops[op].name)) == TERN_OK;
    return e;
}

/* Sets k to v (stolen); a NULL v means out of memory. */
static void set(enc *e, const char *k, tern_value *v)
{
    if (!e->ok || !v) {
        tern_value_unref(v);
        e->ok = false;
        return;
    }
    e->ok = tern_map_set(e->m, k, v) == TERN_OK;
}

static void set_text(enc *e, const char *k, const char *s)
{
    if (s)
        set(e, k, tern_text(s));
}

/* The list of s's texts: s's own list when it has one (shared, not copied). */
static tern_value *list_of(const terni_strs *s)
{
    if (s->list)
        return tern_value_ref((tern_value *)s->list);
    tern_value *l = tern_list_new(s->n);
    for (size_t i = 0; l && i < s->n; i++)
        if (tern_list_append(l, tern_text(terni_strs_at(s, i))) != TERN_OK) {
            tern_value_unref(l);
            return NULL;
        }
    return l;
}

static tern_value *done(enc *e)
{
    if (e->ok)
        return e->m;
    tern_value_unref(e->m);
    return NULL;
}

/* ---- requests to the scheduler ---------------------------------------------------------- */

/* A worker's hello (name set) carries its resources; a client's only wire and role. */
tern_value *terni_enc_hello(const terni_hello *m)
{
    enc e = tree(TERNI_OP_HELLO);
    set(&e, "wire", tern_int(m->wire));
    set_text(&e, "role", m->role);
    if (m->name) {
        set_text(&e, "name", m->name);
        set_text(&e, "address", m->address);
        set(&e, "nthreads", tern_int(m->nthreads));
        set(&e, "memory", tern_int(m->memory));
    }
    if (m->crashed) {
        enc c = tree(TERNI_OP_NONE);
        set_text(&c, "why", m->crashed_why);
        set(&c, "keys", list_of(&m->crashed_keys));
        set(&e, "crashed", done(&c));
    }
    return done(&e);
}

tern_value *terni_enc_plugin_info(const terni_plugin_info *m)
{
    enc e = tree(TERNI_OP_NONE);
    set_text(&e, "id", m->id);
    set_text(&e, "name", m->name);
    set_text(&e, "version", m->version);
    set_text(&e, "tasks", m->tasks);
    return done(&e);
}

tern_value *terni_enc_welcome(const terni_welcome *m)
{
    enc e = tree(TERNI_OP_WELCOME);
    set(&e, "wire", tern_int(m->wire));
    set(&e, "heartbeat_ms", tern_int(m->heartbeat_ms));
    set(&e, "death_timeout_ms", tern_int(m->death_timeout_ms));
    set(&e, "workers", tern_int(m->workers));
    set(&e, "plugins", m->plugins ? tern_value_ref((tern_value *)m->plugins) : tern_list_new(0));
    return done(&e);
}

static bool same(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

/* A spec: fn?, key, args?, deps?, gsize?, gindex?, plugin?, retries?, workers?, priority?,
 * timeout_ms?. */
static void ob_spec(terni_outbox *o, const terni_submit *op, const terni_task_spec *s)
{
    bool fn = s->fn && !same(s->fn, op->fn), plugin = s->plugin && !same(s->plugin, op->plugin);
    bool gsize = s->gsize != op->gsize, gindex = s->gsize > 1;
    terni_ob_map(o, 1 + fn + (s->args != NULL) + (s->deps.n > 0) + gsize + gindex + plugin +
                        (s->retries > 0) + (s->workers.n > 0) + (s->priority != 0) +
                        (s->timeout_ms > 0));
    if (fn)
        ob_field_text(o, "fn", s->fn);
    ob_field_text(o, "key", s->key);
    if (s->args) {
        terni_ob_text(o, "args");
        terni_ob_bytes(o, s->args, s->args_len);
    }
    if (s->deps.n) {
        terni_ob_text(o, "deps");
        ob_strs(o, &s->deps);
    }
    if (gsize)
        ob_field_int(o, "gsize", s->gsize);
    if (gindex)
        ob_field_int(o, "gindex", s->gindex);
    if (plugin)
        ob_field_text(o, "plugin", s->plugin);
    if (s->retries > 0)
        ob_field_int(o, "retries", s->retries);
    if (s->workers.n) {
        terni_ob_text(o, "workers");
        ob_strs(o, &s->workers);
    }
    if (s->priority)
        ob_field_int(o, "priority", s->priority);
    if (s->timeout_ms > 0)
        ob_field_int(o, "timeout_ms", s->timeout_ms);
}

/* fn?, op, group?, gsize?, tasks, plugin? (group and gsize when gsize > 1): begin writes up to
 * the head of tasks, end the plugin. */
void terni_enc_submit_begin(terni_outbox *o, const terni_submit *m, size_t n, size_t *mark)
{
    bool group = m->gsize > 1;
    terni_ob_begin(o, mark);
    terni_ob_map(o, 2 + (m->fn != NULL) + 2 * group + (m->plugin != NULL));
    if (m->fn)
        ob_field_text(o, "fn", m->fn);
    ob_field_text(o, "op", "submit");
    if (group) {
        ob_field_int(o, "group", m->group);
        ob_field_int(o, "gsize", m->gsize);
    }
    terni_ob_text(o, "tasks");
    terni_ob_list(o, n);
}

void terni_enc_submit_spec(terni_outbox *o, const terni_submit *m, const terni_task_spec *s)
{
    ob_spec(o, m, s);
}

bool terni_enc_submit_end(terni_outbox *o, const terni_submit *m, size_t mark)
{
    if (m->plugin)
        ob_field_text(o, "plugin", m->plugin);
    return terni_ob_end(o, mark);
}

bool terni_enc_submit(terni_outbox *o, const terni_submit *m, const terni_task_spec *specs,
                      size_t n)
{
    size_t mark;
    terni_enc_submit_begin(o, m, n, &mark);
    for (size_t i = 0; i < n; i++)
        terni_enc_submit_spec(o, m, &specs[i]);
    return terni_enc_submit_end(o, m, mark);
}

/* op, keys. */
bool terni_enc_keys(terni_outbox *o, terni_op_id op, const terni_keys_msg *m)
{
    size_t mark;
    terni_ob_begin(o, &mark);
    terni_ob_map(o, 2);
    ob_field_text(o, "op", terni_ops[op].name);
    terni_ob_text(o, "keys");
    ob_strs(o, &m->keys);
    return terni_ob_end(o, mark);
}

/* op, to, key, message? */
bool terni_enc_push(terni_outbox *o, terni_op_id op, const terni_push *m)
{
    size_t mark;
    terni_ob_begin(o, &mark);
    terni_ob_map(o, m->message ? 4 : 3);
    ob_field_text(o, "op", terni_ops[op].name);
    terni_ob_text(o, "to");
    ob_strs(o, &m->to);
    ob_field_text(o, "key", m->key);
    if (m->message)
        ob_field_text(o, "message", m->message);
    return terni_ob_end(o, mark);
}

tern_value *terni_enc_upload(const terni_upload *m)
{
    enc e = tree(TERNI_OP_UPLOAD);
    set(&e, "bytes", tern_bytes(m->bytes, m->len));
    return done(&e);
}

tern_value *terni_enc_scatter(const terni_scatter *m)
{
    enc e = tree(TERNI_OP_SCATTER);
    set_text(&e, "key", m->key);
    return done(&e);
}

tern_value *terni_enc_who_has(const terni_who_has *m)
{
    enc e = tree(TERNI_OP_WHO_HAS);
    set(&e, "keys", list_of(&m->keys));
    if (m->addresses)
        set(&e, "addresses", tern_bool(true));
    return done(&e);
}

tern_value *terni_enc_empty(terni_op_id op)
{
    enc e = tree(op);
    return done(&e);
}

/* op, key, run?, value?, nbytes, rss_bytes?, duration_us?. */
bool terni_enc_done(terni_outbox *o, const terni_done *m)
{
    size_t mark, vlen = m->result ? m->value_len : (m->value ? m->value_len : 0);
    bool inl = m->result ? vlen > 0 : m->value != NULL;
    terni_ob_begin(o, &mark);
    terni_ob_map(o, 3 + (m->run >= 0) + inl + (m->rss_bytes >= 0) + (m->duration_us >= 0));
    ob_field_text(o, "op", "done");
    ob_field_text(o, "key", m->key);
    if (m->run >= 0)
        ob_field_int(o, "run", m->run);
    if (inl) {
        terni_ob_text(o, "value");
        if (m->result)
            terni_ob_bytes_of(o, m->result, vlen);
        else
            terni_ob_bytes(o, m->value, vlen);
    }
    ob_field_int(o, "nbytes", m->nbytes);
    if (m->rss_bytes >= 0)
        ob_field_int(o, "rss_bytes", m->rss_bytes);
    if (m->duration_us >= 0)
        ob_field_int(o, "duration_us", m->duration_us);
    return terni_ob_end(o, mark);
}

/* op, key, run?, code, root?, task?, message?. Written straight into the outbox: no value tree
 * to fail to build (the scheduler's texts are valid UTF-8: checked on the way in). */
bool terni_enc_erred(terni_outbox *o, const terni_erred *m)
{
    size_t mark;
    terni_ob_begin(o, &mark);
    terni_ob_map(o,
                 3 + (m->run >= 0) + (m->root != NULL) + (m->task != NULL) + (m->message != NULL));
    ob_field_text(o, "op", "erred");
    ob_field_text(o, "key", m->key);
    if (m->run >= 0)
        ob_field_int(o, "run", m->run);
    ob_field_int(o, "code", m->code);
    if (m->root)
        ob_field_text(o, "root", m->root);
    if (m->task)
        ob_field_text(o, "task", m->task);
    if (m->message)
        ob_field_text(o, "message", m->message);
    return terni_ob_end(o, mark);
}

tern_value *terni_enc_added(const terni_added *m)
{
    enc e = tree(TERNI_OP_ADDED);
    set_text(&e, "key", m->key);
    set(&e, "nbytes", tern_int(m->nbytes));
    return done(&e);
}

tern_value *terni_enc_plugin_failed(const terni_plugin_failed *m)
{
    enc e = tree(TERNI_OP_PLUGIN_FAILED);
    set_text(&e, "id", m->id);
    set_text(&e, "message", m->message);
    return done(&e);
}

/* ---- events ------------------------------------------------------------------------------ */

/* fn, op, key, run, args, deps?, take?, after?, plugin, priority?, timeout_ms?. */
bool terni_enc_compute(terni_outbox *o, const terni_compute *m)
{
    size_t ntake = 0, nafter = 0, mark;
    for (size_t i = 0; i < m->ndeps; i++) {
        ntake += m->deps[i].take;
        nafter += m->deps[i].after;
    }
    terni_ob_begin(o, &mark);
    terni_ob_map(o, 6 + (m->ndeps > 0) + (ntake > 0) + (nafter > 0) + (m->priority != 0) +
                        (m->timeout_ms > 0));
    ob_field_text(o, "fn", m->fn);
    ob_field_text(o, "op", "compute");
    ob_field_text(o, "key", m->key);
    ob_field_int(o, "run", m->run);
    terni_ob_text(o, "args");
    terni_ob_bytes(o, m->args, m->args_len);
    if (m->ndeps) {
        terni_ob_text(o, "deps");
        terni_ob_map(o, m->ndeps);
        for (size_t i = 0; i < m->ndeps; i++) {
            terni_ob_text(o, m->deps[i].key);
            ob_strs(o, &m->deps[i].at);
        }
    }
    if (ntake) {
        terni_ob_text(o, "take");
        terni_ob_list(o, ntake);
        for (size_t i = 0; i < m->ndeps; i++)
            if (m->deps[i].take)
                terni_ob_text(o, m->deps[i].key);
    }
    if (nafter) {
        terni_ob_text(o, "after");
        terni_ob_list(o, nafter);
        for (size_t i = 0; i < m->ndeps; i++)
            if (m->deps[i].after)
                terni_ob_text(o, m->deps[i].key);
    }
    ob_field_text(o, "plugin", m->plugin);
    if (m->priority)
        ob_field_int(o, "priority", m->priority);
    if (m->timeout_ms > 0)
        ob_field_int(o, "timeout_ms", m->timeout_ms);
    return terni_ob_end(o, mark);
}

/* op, key, who | value, nbytes: who only when the result is not inline. */
bool terni_enc_finished(terni_outbox *o, const terni_finished *m)
{
    size_t mark;
    terni_ob_begin(o, &mark);
    terni_ob_map(o, 4);
    ob_field_text(o, "op", "finished");
    ob_field_text(o, "key", m->key);
    if (m->value_len == 0) {
        terni_ob_text(o, "who");
        ob_strs(o, &m->who);
    } else {
        terni_ob_text(o, "value");
        terni_ob_bytes(o, m->value, m->value_len);
    }
    ob_field_int(o, "nbytes", m->nbytes);
    return terni_ob_end(o, mark);
}

tern_value *terni_enc_recomputing(const terni_recomputing *m)
{
    enc e = tree(TERNI_OP_RECOMPUTING);
    set_text(&e, "key", m->key);
    return done(&e);
}

/* id, op, name?, bytes?, tasks?, version?. */
bool terni_enc_plugin(terni_outbox *o, const terni_plugin_msg *m)
{
    size_t mark;
    terni_ob_begin(o, &mark);
    terni_ob_map(o, 2 + (m->name != NULL) + (m->bytes != NULL) + (m->tasks != NULL) +
                        (m->version != NULL));
    ob_field_text(o, "id", m->id);
    ob_field_text(o, "op", "plugin");
    if (m->name)
        ob_field_text(o, "name", m->name);
    if (m->bytes) {
        terni_ob_text(o, "bytes");
        terni_ob_bytes(o, m->bytes, m->len);
    }
    if (m->tasks)
        ob_field_text(o, "tasks", m->tasks);
    if (m->version)
        ob_field_text(o, "version", m->version);
    return terni_ob_end(o, mark);
}

/* ---- the data plane ---------------------------------------------------------------------- */

tern_value *terni_enc_get(const terni_get_msg *m)
{
    enc e = tree(TERNI_OP_GET);
    set(&e, "keys", list_of(&m->keys));
    set_text(&e, "host", m->host);
    return done(&e);
}

tern_value *terni_enc_put(const terni_put_msg *m)
{
    enc e = tree(TERNI_OP_PUT);
    set_text(&e, "key", m->key);
    set(&e, "value", m->value ? tern_value_ref((tern_value *)m->value) : NULL);
    return done(&e);
}

/* ---- the authentication handshake ----------------------------------------------------- */

tern_value *terni_enc_auth(const terni_auth_msg *m)
{
    enc e = tree(TERNI_OP_AUTH);
    set(&e, "wire", tern_int(m->wire));
    set_text(&e, "role", m->role);
    if (m->cnonce)
        set(&e, "cnonce", tern_bytes(m->cnonce, m->cnonce_len));
    return done(&e);
}

tern_value *terni_enc_challenge(const terni_challenge *m)
{
    enc e = tree(TERNI_OP_CHALLENGE);
    set(&e, "snonce", tern_bytes(m->snonce, m->snonce_len));
    set(&e, "proof", tern_bytes(m->proof, m->proof_len));
    return done(&e);
}

tern_value *terni_enc_auth_proof(const terni_auth_proof *m)
{
    enc e = tree(TERNI_OP_AUTH_PROOF);
    set(&e, "proof", tern_bytes(m->proof, m->proof_len));
    return done(&e);
}
