/* What the worker's modules share (core.h). */
#include "core.h"

#include "wire.h"

#include <stdio.h>
#include <stdlib.h>

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

void terni_wcore_put(terni_wcore *c, const char *key, tern_value *v, int64_t nbytes)
{
    pthread_mutex_lock(&c->lock);
    if (terni_store_put(&c->store, key, v, nbytes))
        terni_jobs_stored(&c->jobs, key);
    pthread_mutex_unlock(&c->lock);
}

void terni_wcore_put_added(terni_wcore *c, const char *key, tern_value *v)
{
    int64_t nbytes = (int64_t)tern_encoded_size(v);
    terni_wcore_put(c, key, v, nbytes);
    tern_value *op = terni_op("added");
    if (op && terni_set_text(op, "key", key) && terni_set_int(op, "nbytes", nbytes))
        terni_wcore_post(c, op);
    else
        tern_value_unref(op);
}

void terni_wcore_forget(terni_wcore *c)
{
    pthread_mutex_lock(&c->lock);
    terni_jobs_forget(&c->jobs);
    terni_store_clear(&c->store);
    pthread_mutex_unlock(&c->lock);
}

void terni_wcore_post(terni_wcore *c, tern_value *op)
{
    pthread_mutex_lock(&c->link_lock);
    if (c->link)
        terni_link_post(c->link, op);
    else
        tern_value_unref(op);
    pthread_mutex_unlock(&c->link_lock);
}

void terni_wcore_post_encoded(terni_wcore *c, uint8_t *buf, size_t len, const char *name)
{
    pthread_mutex_lock(&c->link_lock);
    if (c->link)
        terni_link_post_encoded(c->link, buf, len, name); /* takes buf */
    else
        free(buf);
    pthread_mutex_unlock(&c->link_lock);
}

void terni_wcore_erred(terni_wcore *c, const char *key, int64_t run, int code, const char *msg)
{
    tern_value *op = terni_op("erred");
    if (op && terni_set_text(op, "key", key) && terni_set_int(op, "code", code) &&
        terni_set_text(op, "message", msg) && terni_set_int(op, "run", run))
        terni_wcore_post(c, op);
    else
        tern_value_unref(op);
}
