/* What the worker's modules share (core.h). */
#include "runtime/worker/core.h"

#include "sdk/src/transport/auth.h"
#include "runtime/util/log.h"
#include "sdk/src/task_ctx.h"
#include "sdk/src/utf8.h"
#include "sdk/src/transport/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int terni_wcore_init(terni_wcore *c, const terni_worker_opts *opts, char *err, size_t errlen)
{
    *c = (terni_wcore){ .opts = opts };
    snprintf(err, errlen, "out of memory");
    if (terni_store_init(&c->store) != 0)
        return TERN_ENOMEM;
    if (terni_jobs_init(&c->jobs) != 0) {
        terni_store_free(&c->store);
        return TERN_ENOMEM;
    }
    int rc = terni_loader_open(opts->workdir, &c->loader, err, errlen);
    if (rc != TERN_OK) {
        terni_jobs_destroy(&c->jobs);
        terni_store_free(&c->store);
        return rc;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->link_lock, NULL);
    return TERN_OK;
}

void terni_wcore_destroy(terni_wcore *c)
{
    terni_jobs_destroy(&c->jobs);
    terni_store_free(&c->store);
    terni_loader_close(c->loader);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->link_lock);
}

tern_value *terni_wcore_get(terni_wcore *c, const char *key)
{
    pthread_mutex_lock(&c->lock);
    terni_stored *s = terni_store_find(&c->store, key);
    tern_value *v = s ? tern_value_ref(s->value) : NULL;
    pthread_mutex_unlock(&c->lock);
    return v;
}

bool terni_wcore_put(terni_wcore *c, const char *key, tern_value *v, int64_t nbytes)
{
    struct terni_push_item *pushes = NULL;
    pthread_mutex_lock(&c->lock);
    bool stored = !terni_store_find(&c->store, key) && terni_store_put(&c->store, key, v, nbytes);
    if (stored)
        terni_jobs_stored(&c->jobs, key);
    terni_stored *held = c->pusher ? terni_store_find(&c->store, key) : NULL;
    if (held) /* pushes asked for key go with the copy held (the same value, by its key) */
        pushes = terni_pusher_stored(c->pusher, key, held->value);
    pthread_mutex_unlock(&c->lock);
    if (pushes)
        terni_pusher_send(c->pusher, pushes);
    return stored;
}

void terni_wcore_put_added(terni_wcore *c, const char *key, tern_value *v)
{
    int64_t nbytes = (int64_t)tern_encoded_size(v);
    if (!terni_wcore_put(c, key, v, nbytes))
        return; /* held already (a push that came twice, or fetched meanwhile) */
    tern_value *op = terni_enc_added(&(terni_added){ .key = key, .nbytes = nbytes });
    if (op)
        terni_wcore_post(c, op);
}

void terni_wcore_forget(terni_wcore *c)
{
    pthread_mutex_lock(&c->lock);
    terni_jobs_forget(&c->jobs);
    terni_store_clear(&c->store);
    if (c->pusher)
        terni_pusher_forget(c->pusher);
    pthread_mutex_unlock(&c->lock);
}

int terni_wcore_post(terni_wcore *c, tern_value *op)
{
    int rc = TERN_ECLOSED;
    pthread_mutex_lock(&c->link_lock);
    if (c->link)
        rc = terni_link_post(c->link, op);
    else
        tern_value_unref(op);
    pthread_mutex_unlock(&c->link_lock);
    return rc;
}

int terni_wcore_post_outbox(terni_wcore *c, terni_outbox *o, bool built, terni_op_id op)
{
    if (!built) {
        terni_outbox_free(o);
        return TERN_ENOMEM;
    }
    int rc = TERN_ECLOSED;
    pthread_mutex_lock(&c->link_lock);
    if (c->link)
        rc = terni_link_post_encoded(c->link, o->buf, o->len, terni_ops[op].name); /* takes it */
    else
        free(o->buf);
    pthread_mutex_unlock(&c->link_lock);
    *o = (terni_outbox){ 0 };
    return rc;
}

/* The stand-in is written into a buffer allocated ahead, one per reporting thread, made again
 * after each use: it needs no memory but the link's own item. */
#define STANDIN_MAX (2 * TERNI_MAX_KEY + 256)
static __thread uint8_t *standin_buf;

void terni_wcore_standin_prepare(void)
{
    if (!standin_buf)
        standin_buf = malloc(STANDIN_MAX);
}

void terni_wcore_standin_release(void)
{
    free(standin_buf);
    standin_buf = NULL;
}

void terni_wcore_standin(terni_wcore *c, const char *key, int64_t run, int code)
{
    char k[TERNI_MAX_KEY + 1], msg[TERNI_MAX_KEY + 64];
    terni_utf8_copy(k, sizeof(k), key, strlen(key)); /* valid already (terni_valid_key) */
    snprintf(msg, sizeof(msg), "task %s erred; its message could not be encoded", k);
    terni_outbox o = { .buf = standin_buf, .cap = standin_buf ? STANDIN_MAX : 0 };
    standin_buf = NULL;
    bool built =
        terni_enc_erred(&o, &(terni_erred){ .key = k, .run = run, .code = code, .message = msg });
    int rc = terni_wcore_post_outbox(c, &o, built, TERNI_OP_ERRED);
    terni_log(rc == TERN_OK ? TERNI_LOG_WARN : TERNI_LOG_ERROR,
              "the report of task %s could not be built; %s", k,
              rc == TERN_OK ? "sent a stand-in" : "nor could its stand-in");
    terni_wcore_standin_prepare(); /* for the next time */
}

void terni_wcore_erred(terni_wcore *c, const char *key, const char *fn, int64_t run, int code,
                       const char *msg)
{
    char text[TERNI_TASK_MSG_MAX];
    size_t decoration = strlen(key) + strlen(fn) + strlen(c->opts->name) + 32;
    size_t cap = decoration + 64 < sizeof(text) ? sizeof(text) - decoration : 64;
    terni_utf8_copy(text, cap, msg, strlen(msg));
    /* Written straight into CBOR: no value tree to fail to build. */
    terni_outbox o = { 0 };
    bool built = terni_enc_erred(
        &o, &(terni_erred){ .key = key, .run = run, .code = code, .message = text });
    int rc = terni_wcore_post_outbox(c, &o, built, TERNI_OP_ERRED);
    if (rc != TERN_OK && rc != TERN_ECLOSED)
        terni_wcore_standin(c, key, run, code);
}

void terni_wcore_unreported(terni_wcore *c, const char *key, int64_t run)
{
    pthread_mutex_lock(&c->lock);
    terni_store_drop(&c->store, key);
    pthread_mutex_unlock(&c->lock);
    terni_wcore_standin(c, key, run, TERN_ENOMEM);
}
