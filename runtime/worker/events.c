/* The scheduler's events (events.h).
 *
 * Cancellation: "free"/"cancel" for a key that is queued or blocked removes it; for a running
 * task it marks the key so its result is dropped when the task returns (jobs.h). "free" also
 * drops the key's data. */
#include "runtime/worker/events.h"

#include "runtime/util/log.h"
#include "sdk/src/protocol/protocol.h"
#include "sdk/src/transport/wire.h"

static void on_compute(terni_wcore *c, const tern_value *ev)
{
    terni_compute m;
    if (terni_dec_compute(ev, &m, NULL, 0) != TERN_OK) {
        terni_log(TERNI_LOG_INFO, "ignoring a malformed compute event");
        return;
    }
    terni_job *j = terni_job_new(m.key, m.fn, m.plugin, m.after.n);
    if (!j)
        return;
    j->args = tern_value_ref((tern_value *)m.args_value);
    j->deps = m.deps_map ? tern_value_ref((tern_value *)m.deps_map) : NULL; /* absent: none */
    j->priority = (int)m.priority;
    j->run = m.run;
    j->timeout_ms = m.timeout_ms > 0 ? m.timeout_ms : 0;
    pthread_mutex_lock(&c->lock);
    terni_jobs_add(&c->jobs, &c->store, j, m.take.list, m.after.list);
    pthread_mutex_unlock(&c->lock);
}

/* push: send key's result to the data servers listed, now if it is stored here, else when it
 * is (pusher.h). */
static void on_push(terni_wcore *c, const tern_value *ev)
{
    terni_push m;
    if (!c->pusher) /* the fuzzing worker: no pushes */
        return;
    if (terni_dec_push(ev, &m, NULL, 0) != TERN_OK) {
        terni_log(TERNI_LOG_INFO, "ignoring a malformed push event");
        return;
    }
    pthread_mutex_lock(&c->lock);
    terni_stored *s = terni_store_find(&c->store, m.key);
    for (size_t i = 0; i < m.to.n; i++)
        terni_pusher_want(c->pusher, m.key, terni_strs_at(&m.to, i), s ? s->value : NULL);
    pthread_mutex_unlock(&c->lock);
}

/* free/cancel: drop stored data, queued jobs, and results of running jobs for these keys. */
static void on_drop(terni_wcore *c, const tern_value *ev, bool drop_data)
{
    terni_keys_msg m;
    if (terni_dec_keys(ev, &m, NULL, 0) != TERN_OK)
        return;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < m.keys.n; i++) {
        const char *key = terni_strs_at(&m.keys, i);
        /* A key held here is finished, not queued: the queue is not searched, which made every
         * free cost O(queue) while a long queue waited. */
        bool held = drop_data && terni_store_drop(&c->store, key);
        terni_jobs_cancel(&c->jobs, key, held);
        if (c->pusher)
            terni_pusher_drop(c->pusher, key);
    }
    pthread_mutex_unlock(&c->lock);
}

static void on_plugin(terni_wcore *c, const tern_value *ev)
{
    terni_plugin_msg m;
    if (terni_dec_plugin(ev, &m, NULL, 0) != TERN_OK || !m.bytes)
        return;
    const terni_plugin *p;
    char msg[1024];
    int rc = terni_loader_load(c->loader, m.bytes, m.len, &p, msg, sizeof(msg));
    if (rc == TERN_OK) {
        terni_log(TERNI_LOG_INFO, "loaded plugin %s %s", terni_plugin_name(p),
                  terni_plugin_version(p));
        return;
    }
    terni_log(TERNI_LOG_INFO, "cannot load plugin %.12s: %s", m.id, msg);
    tern_value *op = terni_enc_plugin_failed(&(terni_plugin_failed){ .id = m.id, .message = msg });
    if (op)
        terni_wcore_post(c, op);
}

void terni_events_apply(terni_wcore *c, const tern_value *events)
{
    const tern_value *ev;
    for (size_t i = 0; tern_list_get(events, i, &ev) == TERN_OK; i++) {
        switch (terni_op_of(ev)) {
        case TERNI_OP_COMPUTE:
            on_compute(c, ev);
            break;
        case TERNI_OP_FREE:
            on_drop(c, ev, true);
            break;
        case TERNI_OP_CANCEL:
            on_drop(c, ev, false);
            break;
        case TERNI_OP_PLUGIN:
            on_plugin(c, ev);
            break;
        case TERNI_OP_PUSH:
            on_push(c, ev);
            break;
        default: /* not for a worker: ignored */
            break;
        }
    }
}
