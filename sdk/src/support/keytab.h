/* A table from text keys to records, for the largest tables (the scheduler's tasks, the
 * worker's stored results, the client's futures): genht's open-addressing string table (htsp,
 * Debian's libgenht1-dev), whose slots keep each key's hash beside the key and value
 * pointers. libtern compiles this file in too, with genht's symbols kept inside it.
 *
 * Design notes
 *  - Why not uthash, which the smaller tables use: uthash chains records through a handle in
 *    each record, and grows its bucket array only when one chain reaches ten entries, so a
 *    lookup walks two to four records, each a cache miss, and a delete also touches the two
 *    records beside it in insertion order. With 100,000 tasks those walks were most of the
 *    scheduler's submit, done and release handling (docs/performance.md). Here a lookup
 *    reads one slot (24 bytes, probing in the same array) and then the one record whose hash
 *    matches.
 *  - Keys are borrowed: each key stays valid and unchanged while its record is in the table
 *    (the records own them). Not thread-safe: callers lock.
 *  - genht grows the table inside an insert and ignores a failed allocation; terni_keytab_put
 *    grows it first, exactly when genht would, so that running out of memory is reported and
 *    the table never fills up (a full table would make every later lookup probe for ever).
 *  - Iteration (TERNI_KEYTAB_EACH) is in slot order, not insertion order. Removing entries
 *    during it is safe; adding is not (a put may move every slot).
 */
#ifndef TERNI_KEYTAB_H
#define TERNI_KEYTAB_H

#include <genht/htsp.h>
#include <stddef.h>

typedef htsp_t terni_keytab;

/* An empty table. Returns 0, or -1 when out of memory. Until it succeeds (and for a zeroed
 * terni_keytab) the table is empty and every put fails. */
int terni_keytab_init(terni_keytab *t);

/* Frees the table itself, not the records or keys it points to. */
void terni_keytab_free(terni_keytab *t);

/* The value stored under key, or NULL. */
void *terni_keytab_get(terni_keytab *t, const char *key);

/* Stores value under key, which must not be in the table yet (terni_keytab_get first).
 * Returns 0, or -1 when out of memory, with the table unchanged. */
int terni_keytab_put(terni_keytab *t, const char *key, void *value);

/* Removes key; returns its value, or NULL if it was not there. */
void *terni_keytab_pop(terni_keytab *t, const char *key);

/* The number of keys in the table. */
size_t terni_keytab_count(const terni_keytab *t);

/* for (each entry e of t): e->key, e->value; see the notes on changing t meanwhile. A zeroed
 * or empty table has no entries (genht's first entry of a table with none is NULL). */
#define TERNI_KEYTAB_EACH(t, e) for (htsp_entry_t *e = htsp_first(t); e; e = htsp_next((t), e))

#endif
