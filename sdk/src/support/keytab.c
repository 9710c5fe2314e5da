/* Large key tables over genht's htsp (keytab.h). */
#include "sdk/src/support/keytab.h"

#include <genht/hash.h>
#include <string.h>

static unsigned key_hash(const char *key)
{
    return murmurhash(key, (unsigned)strlen(key));
}

static int key_equal(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

int terni_keytab_init(terni_keytab *t)
{
    return htsp_init(t, key_hash, key_equal) == 0 ? 0 : -1;
}

void terni_keytab_free(terni_keytab *t)
{
    if (t->table)
        htsp_uninit(t);
}

void *terni_keytab_get(terni_keytab *t, const char *key)
{
    return t->table ? htsp_get(t, key) : NULL;
}

/* Grows the table before an insert exactly when genht's insert would grow it afterwards (its
 * checkfill, with the counts an insert into an empty slot gives), so that the insert itself
 * never resizes and a failed allocation is seen here. */
static int make_room(terni_keytab *t)
{
    unsigned fill = t->fill + 1, used = t->used + 1;
    if (fill <= t->mask - (t->mask >> 2) && fill <= used << 2)
        return 0;
    return htsp_resize(t, used << (used > 1u << 16 ? 1 : 2)) == 0 ? 0 : -1;
}

int terni_keytab_put(terni_keytab *t, const char *key, void *value)
{
    if (!t->table || make_room(t) != 0) /* not initialised: as out of memory */
        return -1;
    htsp_insert(t, (char *)key, value); /* genht's keys are not const; it never writes them */
    return 0;
}

void *terni_keytab_pop(terni_keytab *t, const char *key)
{
    return t->table ? htsp_pop(t, key) : NULL;
}

size_t terni_keytab_count(const terni_keytab *t)
{
    return t->used;
}
