/* The worker's results (store.c): key -> value, with each value's size and, once a peer on this
 * host asked for it, the memfd its bytes are served from (shm.h).
 *
 * Contract: not thread-safe. Every call is made under the worker's one lock (core.h), which
 * also guards the job queue: storing a key and waking the jobs waiting for it is one step
 * (terni_wcore_put). Values are immutable once stored, so a reader takes a reference and lets
 * go of the lock at once. */
#ifndef TERNI_WORKER_STORE_H
#define TERNI_WORKER_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <tern/value.h>

#include "sdk/src/support/keytab.h"
#include "sdk/src/transport/shm.h"

/* A result held here, under its key, which it owns (allocated with it). */
typedef struct terni_stored {
    tern_value *value;
    int64_t nbytes;
    terni_shm_file shm; /* the value's bytes in a memfd, made on first use (dataserver.c) */
    char key[];
} terni_stored;

typedef struct terni_store {
    terni_keytab tab; /* key -> terni_stored */
    uint64_t changes; /* keys stored and dropped so far: the watchdog's idle trim */
} terni_store;

/* An empty store; 0, or -1 when out of memory. */
int terni_store_init(terni_store *s);

/* Frees every record and the table (the worker is ending). */
void terni_store_free(terni_store *s);

/* The record held under key, or NULL; valid until the key is dropped or taken. */
terni_stored *terni_store_find(terni_store *s, const char *key);

/* Stores v (reference taken) under key unless the key is held already. Returns whether the key
 * is held now: false only when out of memory (then it is not stored, and a dependent's fetch
 * fails with TERN_ELOST). */
bool terni_store_put(terni_store *s, const char *key, tern_value *v, int64_t nbytes);

/* Drops key; whether it was held. */
bool terni_store_drop(terni_store *s, const char *key);

/* Drops every key (the scheduler was lost). */
void terni_store_clear(terni_store *s);

/* Removes key and returns its value (the caller's reference), or NULL if it was not held: a
 * job takes over a dependency it is the last reader of ("take", jobs.c). Not counted as a change
 * (as before the split; the job that took it frees it). */
tern_value *terni_store_take(terni_store *s, const char *key);

#endif
