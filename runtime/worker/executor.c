/* The executor threads (executor.h).
 *
 * Taking: a compute event may name dependencies held here whose last reader the task is
 * ("take", jobs.c). The task is called with them referenced once (call_task), so tern_arg_take
 * can let it compute in place (an add into an operand instead of a fresh 8 MB array). */
#include "runtime/worker/executor.h"

#include "sdk/src/transport/outbox.h"
#include "runtime/util/rss.h"
#include "sdk/src/task_ctx.h"
#include "sdk/src/utf8.h"
#include "sdk/src/transport/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INLINE_MAX                                                                                 \
    (64 * 1024) /* results up to this many encoded bytes ride with the done report                 \
                 */
#define FETCH_TIMEOUT_MS 60000

/* The done report (protocol.h), a small result's encoding inline, written straight into CBOR
 * and posted encoded: no value tree per task. Out of memory, the result is dropped and the
 * stand-in erred report goes instead (terni_wcore_unreported). */
static void report_done(terni_wcore *c, const terni_job *j, tern_value *result, int64_t duration_us)
{
    size_t nbytes = tern_encoded_size(result);
    bool inl = nbytes && nbytes <= INLINE_MAX;
    terni_outbox o = { 0 };
    bool built = terni_enc_done(&o, &(terni_done){ .key = j->key,
                                                   .run = j->run,
                                                   .nbytes = (int64_t)nbytes,
                                                   .rss_bytes = terni_rss_bytes(),
                                                   .duration_us = duration_us,
                                                   .result = inl ? result : NULL,
                                                   .value_len = inl ? nbytes : 0 });
    int rc = terni_wcore_post_outbox(c, &o, built, TERNI_OP_DONE);
    if (rc != TERN_OK && rc != TERN_ECLOSED)
        terni_wcore_unreported(c, j->key, j->run);
}

typedef struct depvals {
    tern_value *map;   /* key -> value */
    char missing[256]; /* a key reference with no dependency entry */
} depvals;

static tern_value *lookup_dep(void *arg, const char *key)
{
    depvals *dv = arg;
    const tern_value *v;
    if (tern_map_get(dv->map, key, &v) != TERN_OK) {
        terni_utf8_copy(dv->missing, sizeof(dv->missing), key, strlen(key));
        return NULL;
    }
    return tern_value_ref((tern_value *)v);
}

/* key from the peers listed in addrs (skipping ourselves), until one has it or the job is
 * cancelled; stored here and reported "added". NULL with err filled in if none could. */
static tern_value *fetch(terni_wcore *c, terni_job *j, const char *key, const tern_value *addrs,
                         char *err, size_t errlen)
{
    const tern_value *a;
    const char *addr;
    tern_value *v = NULL;
    for (size_t k = 0; !v && !__atomic_load_n(&j->cancelled, __ATOMIC_RELAXED) &&
                       tern_list_get(addrs, k, &a) == TERN_OK;
         k++) {
        if (tern_value_get_text(a, &addr, NULL) != TERN_OK || !strcmp(addr, c->address))
            continue;
        tern_value *keys = tern_list_of(tern_text(key)), *values = NULL;
        if (keys && terni_peers_get_cancellable(c->peers, addr, keys, FETCH_TIMEOUT_MS,
                                                &j->cancelled, &values, err, errlen) == TERN_OK) {
            const tern_value *got;
            if (tern_map_get(values, key, &got) == TERN_OK) {
                v = tern_value_ref((tern_value *)got);
                terni_wcore_put_added(c, key, v);
            } else {
                snprintf(err, errlen, "worker at %s no longer holds it", addr);
            }
        }
        tern_value_unref(keys);
        tern_value_unref(values);
    }
    return v;
}

/* Gets every dependency into dv->map: handed over to the job, else the local store, else a peer
 * that has it. */
static int gather(terni_wcore *c, terni_job *j, depvals *dv, char *msg, size_t msglen)
{
    const char *key;
    const tern_value *addrs;
    for (size_t i = 0; tern_map_entry(j->deps, i, &key, &addrs) == TERN_OK; i++) {
        const tern_value *mine;
        char err[512] = "no worker holds it";
        tern_value *v = j->taken && tern_map_get(j->taken, key, &mine) == TERN_OK
                            ? tern_value_ref((tern_value *)mine)
                            : terni_wcore_get(c, key);
        if (!v)
            v = fetch(c, j, key, addrs, err, sizeof(err));
        if (!v) {
            terni_utf8_fmt(msg, msglen, "cannot get dependency %s: %s", key, err);
            return TERN_ELOST;
        }
        if (tern_map_set(dv->map, key, v) != TERN_OK) {
            snprintf(msg, msglen, "out of memory");
            return TERN_ENOMEM;
        }
    }
    return TERN_OK;
}

/* Whether v is one of the values handed over to j. */
static bool was_taken(const terni_job *j, const tern_value *v)
{
    const char *key;
    const tern_value *t;
    for (size_t i = 0; tern_map_entry(j->taken, i, &key, &t) == TERN_OK; i++)
        if (t == v)
            return true;
    return false;
}

/* Calls the task on the items of *call_args. The arguments are first held only by the
 * array passed to the task, and *call_args, dv's map and the job's taken map are let go of:
 * a dependency handed over to this job (the scheduler's "take") is then referenced once, so
 * tern_arg_take can give it to the task to change in place. */
static int call_task(terni_job *j, tern_task_fn fn, const char *symbol, tern_value **call_args,
                     depvals *dv, tern_value **result, char *msg, size_t msglen)
{
    size_t n = tern_list_len(*call_args);
    tern_value **items = calloc(n ? n : 1, sizeof(*items));
    bool *takeable = j->taken ? calloc(n ? n : 1, sizeof(*takeable)) : NULL;
    if (!items || (j->taken && !takeable)) {
        free(items);
        free(takeable);
        snprintf(msg, msglen, "out of memory");
        return TERN_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const tern_value *item;
        tern_list_get(*call_args, i, &item);
        items[i] = tern_value_ref((tern_value *)item);
        if (takeable)
            takeable[i] = was_taken(j, item);
    }
    tern_value_unref(*call_args);
    *call_args = NULL;
    tern_value_unref(dv->map);
    dv->map = NULL;
    tern_value_unref(j->taken);
    j->taken = NULL;
    int rc = terni_task_call(fn, symbol, j->key, items, takeable, n, result, msg, msglen);
    for (size_t i = 0; i < n; i++)
        tern_value_unref(items[i]); /* NULL where the task took it */
    free(items);
    free(takeable);
    return rc;
}

/* The task's function (and its symbol): its plugin loaded here, its name plugin:symbol. */
static int resolve(terni_wcore *c, const terni_job *j, tern_task_fn *fn, const char **symbol,
                   char *msg, size_t msglen)
{
    const terni_plugin *p = terni_loader_get(c->loader, j->plugin);
    const char *colon = strchr(j->fn, ':');
    if (!p) {
        terni_utf8_fmt(msg, msglen, "plugin %.16s is not loaded on worker %s", j->plugin,
                       c->opts->name);
        return TERN_ENOTFOUND;
    }
    if (!colon) {
        terni_utf8_fmt(msg, msglen, "task name %s is not plugin:symbol", j->fn);
        return TERN_EINVAL;
    }
    *symbol = colon + 1;
    return terni_plugin_resolve(p, *symbol, fn, msg, msglen);
}

static void run_job(terni_executor *e, terni_job *j)
{
    terni_wcore *c = e->core;
    char msg[TERNI_TASK_MSG_MAX] = "";
    depvals dv = { .map = tern_map_new() };
    tern_value *args = NULL, *call_args = NULL, *result = NULL;
    const void *bytes;
    size_t len;
    tern_task_fn fn = NULL;
    const char *symbol = NULL;
    int rc = dv.map ? resolve(c, j, &fn, &symbol, msg, sizeof(msg)) : TERN_ENOMEM;
    if (rc == TERN_OK && tern_value_get_bytes(j->args, &bytes, &len) == TERN_OK)
        rc = tern_decode(bytes, len, NULL, &args, msg, sizeof(msg));
    if (rc == TERN_OK && tern_value_type(args) != TERN_T_LIST) {
        rc = TERN_EPROTO;
        snprintf(msg, sizeof(msg), "arguments are not a list");
    }
    if (rc == TERN_OK)
        rc = gather(c, j, &dv, msg, sizeof(msg));
    if (rc == TERN_OK) {
        call_args = terni_substitute_keyrefs(args, lookup_dep, &dv);
        if (!call_args && dv.missing[0]) {
            rc = TERN_EPROTO;
            terni_utf8_fmt(msg, sizeof(msg),
                           "argument refers to key %s, which is not among the task's dependencies",
                           dv.missing);
        } else if (!call_args) {
            rc = TERN_ENOMEM;
            snprintf(msg, sizeof(msg), "out of memory substituting arguments");
        }
    }
    uint64_t t0 = terni_now_ns();
    if (rc == TERN_OK)
        rc = call_task(j, fn, symbol, &call_args, &dv, &result, msg, sizeof(msg));
    int64_t duration_us = (int64_t)((terni_now_ns() - t0) / 1000);
    pthread_mutex_lock(&c->lock);
    bool cancelled = j->cancelled;
    terni_jobs_finish(&c->jobs, j);
    terni_slot_clear(j->slot); /* under the lock: see watchdog.h */
    /* No result to push. (A cancelled run's pushes went with the cancel event, and a push
     * asked since is for a later run of the key.) */
    if (!cancelled && rc != TERN_OK && c->pusher)
        terni_pusher_drop(c->pusher, j->key);
    pthread_mutex_unlock(&c->lock);
    if (cancelled) {
        /* nothing to report: the scheduler already forgot or cancelled it */
    } else if (rc == TERN_OK) {
        terni_wcore_put(c, j->key, result, (int64_t)tern_encoded_size(result));
        report_done(c, j, result, duration_us);
    } else {
        terni_wcore_erred(c, j->key, j->fn, j->run, rc, msg);
    }
    tern_value_unref(result);
    tern_value_unref(call_args);
    tern_value_unref(args);
    tern_value_unref(dv.map);
    terni_job_free(j);
}

static void *executor_main(void *arg)
{
    terni_executor *e = arg;
    terni_wcore *c = e->core;
    terni_wcore_standin_prepare();
    for (;;) {
        pthread_mutex_lock(&c->lock);
        while (!terni_jobs_any_ready(&c->jobs) && !c->stopping)
            pthread_cond_wait(&c->jobs.cond, &c->lock);
        if (c->stopping) {
            pthread_mutex_unlock(&c->lock);
            terni_wcore_standin_release();
            return NULL;
        }
        terni_job *j = terni_jobs_start(&c->jobs);
        j->slot = e->slot;
        terni_slot_set(e->slot, j->key); /* under the lock: see watchdog.h */
        pthread_mutex_unlock(&c->lock);
        run_job(e, j);
    }
}

void terni_executors_start(terni_executors *ex, terni_wcore *core, terni_watchdog *wd)
{
    int n = core->opts->nthreads;
    *ex = (terni_executors){ .each = calloc(n > 0 ? (size_t)n : 1, sizeof(terni_executor)) };
    if (!ex->each)
        return;
    ex->n = n;
    for (int i = 0; i < n; i++) {
        terni_executor *e = &ex->each[i];
        *e = (terni_executor){ .core = core, .slot = terni_watchdog_slot(wd, i) };
        e->started = pthread_create(&e->thread, NULL, executor_main, e) == 0;
    }
}

void terni_executors_join(terni_executors *ex)
{
    for (int i = 0; i < ex->n; i++)
        if (ex->each[i].started)
            pthread_join(ex->each[i].thread, NULL);
    free(ex->each);
    *ex = (terni_executors){ 0 };
}
