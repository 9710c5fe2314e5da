/* The worker's results (store.h): a key table (keytab.h) of records that own their keys. */
#include "runtime/worker/store.h"

#include <stdlib.h>
#include <string.h>

static void stored_free(terni_stored *r)
{
    terni_shm_file_close(&r->shm);
    tern_value_unref(r->value);
    free(r);
}

int terni_store_init(terni_store *s)
{
    s->changes = 0;
    return terni_keytab_init(&s->tab);
}

void terni_store_free(terni_store *s)
{
    TERNI_KEYTAB_EACH (&s->tab, e)
        stored_free(e->value);
    terni_keytab_free(&s->tab);
}

terni_stored *terni_store_find(terni_store *s, const char *key)
{
    return terni_keytab_get(&s->tab, key);
}

bool terni_store_put(terni_store *s, const char *key, tern_value *v, int64_t nbytes)
{
    if (terni_keytab_get(&s->tab, key))
        return true;
    size_t len = strlen(key) + 1;
    terni_stored *r = calloc(1, sizeof(*r) + len);
    if (!r)
        return false;
    memcpy(r->key, key, len);
    r->shm.fd = -1;
    if (terni_keytab_put(&s->tab, r->key, r) != 0) {
        free(r);
        return false;
    }
    r->value = tern_value_ref(v);
    r->nbytes = nbytes;
    s->changes++;
    return true;
}

bool terni_store_drop(terni_store *s, const char *key)
{
    terni_stored *r = terni_keytab_pop(&s->tab, key);
    if (r) {
        stored_free(r);
        s->changes++;
    }
    return r != NULL;
}

void terni_store_clear(terni_store *s)
{
    TERNI_KEYTAB_EACH (&s->tab, e) /* dropping removes only e: safe while iterating */
        terni_store_drop(s, e->key);
}

tern_value *terni_store_take(terni_store *s, const char *key)
{
    terni_stored *r = terni_keytab_pop(&s->tab, key);
    if (!r)
        return NULL;
    tern_value *v = tern_value_ref(r->value);
    stored_free(r);
    return v;
}
