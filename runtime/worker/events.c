/* The scheduler's events (events.h).
 *
 * Cancellation: "free"/"cancel" for a key that is queued or blocked removes it; for a running
 * task it marks the key so its result is dropped when the task returns (jobs.h). "free" also
 * drops the key's data. */
#include "runtime/worker/events.h"

#include "runtime/util/log.h"
#include "sdk/src/transport/wire.h"

#include <string.h>

static void on_compute(terni_wcore *c, const tern_value *ev)
{
    const char *key = terni_get_text(ev, "key"), *fn = terni_get_text(ev, "fn"),
               *plugin = terni_get_text(ev, "plugin");
    const tern_value *args = terni_get(ev, "args"), *deps = terni_get(ev, "deps");
    const tern_value *take = terni_get(ev, "take"), *after = terni_get(ev, "after");
    int64_t prio = 0, run = 0, timeout_ms = 0;
    terni_get_int(ev, "priority", &prio);
    terni_get_int(ev, "run", &run);
    terni_get_int(ev, "timeout_ms", &timeout_ms);
    if (!key || !fn || !plugin || !args || (deps && tern_value_type(deps) != TERN_T_MAP)) {
        terni_log(TERNI_LOG_INFO, "ignoring a malformed compute event");
        return;
    }
    terni_job *j = terni_job_new(key, fn, plugin, tern_list_len(after));
    if (!j)
        return;
    j->args = tern_value_ref((tern_value *)args);
    j->deps = deps ? tern_value_ref((tern_value *)deps) : NULL; /* absent: none */
    j->priority = (int)prio;
    j->run = run;
    j->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    pthread_mutex_lock(&c->lock);
    terni_jobs_add(&c->jobs, &c->store, j, take, after);
    pthread_mutex_unlock(&c->lock);
}

/* free/cancel: drop stored data, queued jobs, and results of running jobs for these keys. */
static void on_drop(terni_wcore *c, const tern_value *ev, bool drop_data)
{
    const tern_value *keys = terni_get(ev, "keys"), *item;
    const char *key;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; tern_list_get(keys, i, &item) == TERN_OK; i++) {
        if (tern_value_get_text(item, &key, NULL) != TERN_OK)
            continue;
        /* A key held here is finished, not queued: the queue is not searched, which made every
         * free cost O(queue) while a long queue waited. */
        bool held = drop_data && terni_store_drop(&c->store, key);
        terni_jobs_cancel(&c->jobs, key, held);
    }
    pthread_mutex_unlock(&c->lock);
}

static void on_plugin(terni_wcore *c, const tern_value *ev)
{
    const void *bytes;
    size_t len;
    const char *id = terni_get_text(ev, "id");
    if (!id || tern_value_get_bytes(terni_get(ev, "bytes"), &bytes, &len) != TERN_OK)
        return;
    const terni_plugin *p;
    char msg[1024];
    int rc = terni_loader_load(c->loader, bytes, len, &p, msg, sizeof(msg));
    if (rc == TERN_OK) {
        terni_log(TERNI_LOG_INFO, "loaded plugin %s %s", terni_plugin_name(p),
                  terni_plugin_version(p));
        return;
    }
    terni_log(TERNI_LOG_INFO, "cannot load plugin %.12s: %s", id, msg);
    tern_value *op = terni_op("plugin_failed");
    if (op && terni_set_text(op, "id", id) && terni_set_text(op, "message", msg))
        terni_wcore_post(c, op);
    else
        tern_value_unref(op);
}

void terni_events_apply(terni_wcore *c, const tern_value *events)
{
    const tern_value *ev;
    for (size_t i = 0; tern_list_get(events, i, &ev) == TERN_OK; i++) {
        const char *op = terni_op_name(ev);
        if (!strcmp(op, "compute"))
            on_compute(c, ev);
        else if (!strcmp(op, "free"))
            on_drop(c, ev, true);
        else if (!strcmp(op, "cancel"))
            on_drop(c, ev, false);
        else if (!strcmp(op, "plugin"))
            on_plugin(c, ev);
    }
}
