/* The graph engine's effects (graph.h) as events in the peers' outboxes, and the flushing of
 * outboxes into parked polls. The frequent events (compute, free, cancel, finished) are
 * written straight into the outbox (outbox.h): no value tree; map keys go in CBOR's
 * deterministic order (shorter first, then bytewise), as our encoder writes them. See
 * docs/protocol.md for each event. */
#include "sched_internal.h"

#include "log.h"
#include "placement.h"
#include "wire.h"

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

static bool ob_done(session *s, size_t mark)
{
    if (terni_ob_end(&s->ob, mark))
        return true;
    terni_log(TERNI_LOG_ERROR, "out of memory queueing an event");
    return false;
}

/* {"op": op, "keys": [key]} for a worker (free, cancel). */
static void send_key_event(session *s, const char *op, const char *key)
{
    if (!can_send(s))
        return;
    size_t mark;
    terni_ob_begin(&s->ob, &mark);
    terni_ob_map(&s->ob, 2);
    terni_ob_text(&s->ob, "op");
    terni_ob_text(&s->ob, op);
    terni_ob_text(&s->ob, "keys");
    terni_ob_list(&s->ob, 1);
    terni_ob_text(&s->ob, key);
    ob_done(s, mark);
}

static void ob_addresses(terni_outbox *o, const task *t)
{
    terni_ob_list(o, t->who.n);
    for (size_t i = 0; i < t->who.n; i++)
        terni_ob_text(o, WHO_AT(t, i)->address);
}

static int cmp_key_order(const void *a, const void *b)
{
    const task *x = *(task *const *)a, *y = *(task *const *)b;
    size_t lx = strlen(x->key), ly = strlen(y->key); /* CBOR order: shorter first */
    return lx != ly ? (lx < ly ? -1 : 1) : memcmp(x->key, y->key, lx);
}

/* {"op": "compute", "key", "fn", "plugin", "args", "run", "deps"?: {key: [addresses]},
 * "take"?: [key], "after"?: [key], "priority"?, "timeout_ms"?}: deps, take, after, priority
 * and timeout_ms only when there are any / non-zero. take lists the deps that
 * placement_may_take allows; when early, after lists the deps not present, and nothing is
 * taken. */
static bool fx_compute(void *ctx, worker *w, const task *t, bool early)
{
    (void)ctx;
    session *s = w->peer;
    if (!can_send(s) || !t->args)
        return false;
    task *one, **deps = t->ndeps == 1 ? &one : NULL;
    size_t ntake = 0, nafter = 0;
    for (size_t i = 0; i < t->ndeps; i++) {
        ntake += !early && placement_may_take(t->deps[i], w);
        nafter += early && !graph_present(t->deps[i]);
    }
    if (t->ndeps == 1)
        one = t->deps[0];
    else if (t->ndeps > 1) {
        if (!(deps = malloc(t->ndeps * sizeof(*deps))))
            return false;
        memcpy(deps, t->deps, t->ndeps * sizeof(*deps));
        qsort(deps, t->ndeps, sizeof(*deps), cmp_key_order);
    }
    size_t mark;
    terni_outbox *o = &s->ob;
    terni_ob_begin(o, &mark);
    terni_ob_map(o, 6 + (t->ndeps > 0) + (ntake > 0) + (nafter > 0) + (t->priority != 0) +
                        (t->timeout_ms > 0));
    terni_ob_text(o, "fn");
    terni_ob_text(o, t->fn);
    terni_ob_text(o, "op");
    terni_ob_text(o, "compute");
    terni_ob_text(o, "key");
    terni_ob_text(o, t->key);
    terni_ob_text(o, "run");
    terni_ob_int(o, t->attempt);
    terni_ob_text(o, "args");
    terni_ob_bytes(o, t->args, t->args_len);
    if (t->ndeps) {
        terni_ob_text(o, "deps");
        terni_ob_map(o, t->ndeps);
        for (size_t i = 0; i < t->ndeps; i++) {
            terni_ob_text(o, deps[i]->key);
            ob_addresses(o, deps[i]);
        }
    }
    if (ntake) {
        terni_ob_text(o, "take");
        terni_ob_list(o, ntake);
        for (size_t i = 0; i < t->ndeps; i++)
            if (placement_may_take(deps[i], w))
                terni_ob_text(o, deps[i]->key);
    }
    if (nafter) {
        terni_ob_text(o, "after");
        terni_ob_list(o, nafter);
        for (size_t i = 0; i < t->ndeps; i++)
            if (!graph_present(deps[i]))
                terni_ob_text(o, deps[i]->key);
    }
    terni_ob_text(o, "plugin");
    terni_ob_text(o, t->plugin_id);
    if (t->priority) {
        terni_ob_text(o, "priority");
        terni_ob_int(o, t->priority);
    }
    if (t->timeout_ms > 0) {
        terni_ob_text(o, "timeout_ms");
        terni_ob_int(o, t->timeout_ms);
    }
    if (deps != &one)
        free(deps);
    bool ok = ob_done(s, mark);
    if (ok && terni_log_enabled(TERNI_LOG_DEBUG))
        terni_log(TERNI_LOG_DEBUG, "task %s (%s) placed on %s", t->key, t->fn, w->name);
    return ok;
}

static void fx_free(void *ctx, worker *w, const char *key)
{
    (void)ctx;
    send_key_event(w->peer, "free", key);
}

static void fx_cancel(void *ctx, worker *w, const char *key)
{
    (void)ctx;
    send_key_event(w->peer, "cancel", key);
}

/* {"op": "finished", "key", "who"?: [addresses], "value"?: bytes, "nbytes"}: who only when
 * the result is not inline (the client needs it only to fetch). */
static void fx_finished(void *ctx, client *c, const task *t)
{
    (void)ctx;
    session *s = session_of_client(c);
    if (!can_send(s))
        return;
    size_t mark;
    terni_ob_begin(&s->ob, &mark);
    terni_ob_map(&s->ob, 4);
    terni_ob_text(&s->ob, "op");
    terni_ob_text(&s->ob, "finished");
    terni_ob_text(&s->ob, "key");
    terni_ob_text(&s->ob, t->key);
    if (t->inl_len == 0) {
        terni_ob_text(&s->ob, "who");
        ob_addresses(&s->ob, t);
    } else {
        terni_ob_text(&s->ob, "value");
        terni_ob_bytes(&s->ob, graph_inline_bytes(t), t->inl_len);
    }
    terni_ob_text(&s->ob, "nbytes");
    terni_ob_int(&s->ob, t->nbytes);
    ob_done(s, mark);
}

/* {"op": "erred", "key", "code", "root", "task", "message"}: task and root name the root
 * cause; the message is the root's own, once, with the dependency named when key is not the
 * root itself. Written straight into the outbox: no value tree to fail to build (every text
 * here is valid UTF-8: keys and names were checked on the way in, and the engine cuts its
 * messages between characters). */
static void fx_erred(void *ctx, client *c, const char *key, const task_error *e)
{
    (void)ctx;
    session *s = session_of_client(c);
    if (!can_send(s))
        return;
    char *msg = NULL;
    if (strcmp(key, e->key)) {
        size_t n = strlen(e->key) + strlen(e->task) + strlen(e->msg) + 64;
        if ((msg = malloc(n)))
            snprintf(msg, n, "dependency %s (%s) failed: %s", e->key, e->task[0] ? e->task : "data",
                     e->msg);
    }
    size_t mark;
    terni_outbox *o = &s->ob;
    terni_ob_begin(o, &mark);
    terni_ob_map(o, 6);
    terni_ob_text(o, "op");
    terni_ob_text(o, "erred");
    terni_ob_text(o, "key");
    terni_ob_text(o, key);
    terni_ob_text(o, "code");
    terni_ob_int(o, e->code);
    terni_ob_text(o, "root");
    terni_ob_text(o, e->key);
    terni_ob_text(o, "task");
    terni_ob_text(o, e->task);
    terni_ob_text(o, "message");
    terni_ob_text(o, msg ? msg : e->msg);
    ob_done(s, mark);
    free(msg);
}

static void fx_recomputing(void *ctx, client *c, const task *t)
{
    (void)ctx;
    tern_value *ev = terni_op("recomputing");
    if (ev && terni_set_text(ev, "key", t->key))
        sched_send(session_of_client(c), ev);
    else
        tern_value_unref(ev);
}

const graph_effects terni_sched_effects = { fx_compute,  fx_free,  fx_cancel,
                                            fx_finished, fx_erred, fx_recomputing };

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
