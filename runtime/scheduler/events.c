/* The graph engine's effects (graph.h) as events in the peers' outboxes, and the flushing of
 * outboxes into parked polls. Every event is encoded by its typed encoder (protocol.h); the
 * frequent ones (compute, free, cancel, finished) go straight into the outbox, without a value
 * tree. See docs/protocol.md for each event. */
#include "runtime/scheduler/sched_internal.h"

#include "runtime/util/log.h"
#include "runtime/scheduler/placement.h"
#include "sdk/src/protocol/protocol.h"
#include "sdk/src/transport/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool can_send(const session *s)
{
    return s && s->role != ROLE_NONE;
}

void sched_send(session *s, tern_value *ev)
{
    if (ev && can_send(s) && !terni_outbox_add(&s->ob, ev))
        terni_log(TERNI_LOG_ERROR, "out of memory queueing an event");
    tern_value_unref(ev);
}

/* {"op": op, "keys": [key]} for a worker (free, cancel). */
static void send_key_event(session *s, terni_op_id op, const char *key)
{
    if (can_send(s) && !terni_enc_keys(&s->ob, op, &(terni_keys_msg){ terni_strs_of(&key, 1) }))
        terni_log(TERNI_LOG_ERROR, "out of memory queueing an event");
}

static const char *address_of(const void *w)
{
    return ((const worker *)w)->address;
}

/* The addresses of t's holders, read from the task record (no copy). */
static terni_strs holders(const task *t)
{
    return (terni_strs){ .n = t->who.n, .items = terni_ptrs_items(&t->who), .text_of = address_of };
}

static int cmp_dep_order(const void *a, const void *b)
{
    return terni_cbor_key_cmp(((const terni_dep *)a)->key, ((const terni_dep *)b)->key);
}

/* compute: deps (in CBOR key order) with their holders' addresses; take lists the deps that
 * placement_may_take allows; when early, after lists the deps not present, and nothing is
 * taken. */
static bool fx_compute(void *ctx, worker *w, const task *t, bool early)
{
    (void)ctx;
    session *s = w->peer;
    if (!can_send(s) || !t->args)
        return false;
    terni_dep one, *deps = t->ndeps <= 1 ? &one : malloc(t->ndeps * sizeof(*deps));
    if (!deps)
        return false;
    for (size_t i = 0; i < t->ndeps; i++) {
        const task *d = t->deps[i];
        deps[i] = (terni_dep){ .key = d->key,
                               .at = holders(d),
                               .take = !early && placement_may_take(d, w),
                               .after = early && !graph_present(d) };
    }
    if (t->ndeps > 1)
        qsort(deps, t->ndeps, sizeof(*deps), cmp_dep_order);
    terni_compute m = { .key = t->key,
                        .fn = t->fn,
                        .plugin = t->plugin_id,
                        .args = t->args,
                        .args_len = t->args_len,
                        .run = t->attempt,
                        .priority = t->priority,
                        .timeout_ms = t->timeout_ms,
                        .deps = deps,
                        .ndeps = t->ndeps };
    bool ok = terni_enc_compute(&s->ob, &m);
    if (deps != &one)
        free(deps);
    if (!ok)
        terni_log(TERNI_LOG_ERROR, "out of memory queueing an event");
    else if (terni_log_enabled(TERNI_LOG_DEBUG))
        terni_log(TERNI_LOG_DEBUG, "task %s (%s) placed on %s", t->key, t->fn, w->name);
    return ok;
}

static void fx_free(void *ctx, worker *w, const char *key)
{
    (void)ctx;
    send_key_event(w->peer, TERNI_OP_FREE, key);
}

static void fx_cancel(void *ctx, worker *w, const char *key)
{
    (void)ctx;
    send_key_event(w->peer, TERNI_OP_CANCEL, key);
}

/* finished: who (the holders) only when the result is not inline (the client needs it only to
 * fetch). */
static void fx_finished(void *ctx, client *c, const task *t)
{
    (void)ctx;
    session *s = session_of_client(c);
    if (!can_send(s))
        return;
    terni_finished m = { .key = t->key,
                         .nbytes = t->nbytes,
                         .value = t->inl_len ? graph_inline_bytes(t) : NULL,
                         .value_len = t->inl_len,
                         .who = holders(t) };
    if (!terni_enc_finished(&s->ob, &m))
        terni_log(TERNI_LOG_ERROR, "out of memory queueing an event");
}

/* erred: task and root name the root cause; the message is the root's own, once, with the
 * dependency named when key is not the root itself. Written straight into the outbox: no
 * value tree to fail to build (every text here is valid UTF-8: keys and names were checked on
 * the way in, and the engine cuts its messages between characters). */
static void fx_erred(void *ctx, client *c, const char *key, const task_error *e)
{
    (void)ctx;
    session *s = session_of_client(c);
    if (!can_send(s))
        return;
    char *msg = NULL;
    const char *text = e->msg;
    if (strcmp(key, e->key)) {
        size_t n = strlen(e->key) + strlen(e->task) + strlen(e->msg) + 64;
        if ((msg = malloc(n))) {
            snprintf(msg, n, "dependency %s (%s) failed: %s", e->key, e->task[0] ? e->task : "data",
                     e->msg);
            text = msg;
        }
    }
    terni_erred m = {
        .key = key, .code = e->code, .message = text, .run = -1, .task = e->task, .root = e->key
    };
    if (!terni_enc_erred(&s->ob, &m))
        terni_log(TERNI_LOG_ERROR, "out of memory queueing an event");
    free(msg);
}

static void fx_recomputing(void *ctx, client *c, const task *t)
{
    (void)ctx;
    sched_send(session_of_client(c), terni_enc_recomputing(&(terni_recomputing){ t->key }));
}

/* push: to the worker running (or holding) t, the data server to put t's result on. */
static void fx_push(void *ctx, worker *from, const task *t, worker *to)
{
    (void)ctx;
    session *s = from->peer;
    const char *address = to->address;
    if (can_send(s) &&
        !terni_enc_push(&s->ob, TERNI_OP_PUSH,
                        &(terni_push){ .key = t->key, .to = terni_strs_of(&address, 1) }))
        terni_log(TERNI_LOG_ERROR, "out of memory queueing an event");
}

const graph_effects terni_sched_effects = { fx_compute, fx_free,        fx_cancel, fx_finished,
                                            fx_erred,   fx_recomputing, fx_push };

void sched_flush_session(session *s)
{
    if (s->poll && s->ob.n) {
        nng_msg *m = terni_outbox_take(&s->ob);
        if (m) {
            terni_server_reply_msg(s->poll, m);
            s->poll = NULL;
        }
    }
}

void sched_flush_all(sched *S)
{
    session *s, *tmp;
    HASH_ITER(hh, S->sessions, s, tmp)
    sched_flush_session(s);
}

void sched_answer_poll_empty(session *s)
{
    if (!s->poll)
        return;
    tern_value *empty = tern_list_new(0);
    if (!empty || terni_server_reply(s->poll, empty) != TERN_OK)
        terni_server_drop(s->poll);
    tern_value_unref(empty);
    s->poll = NULL;
}
