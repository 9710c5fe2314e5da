/* Pushing results to the workers that need them (pusher.c).
 *
 * The scheduler places a task early on worker W before its dependency D, running here, has
 * finished, and sends us "push D to W". When D is stored here (or at once, if it is already),
 * the pusher thread puts D's value on W's data server, where it is stored, unblocks the task
 * waiting for it and is reported "added" by W. No scheduler round trip is on that edge.
 *
 * Contract
 *  - terni_pusher_want, _stored and _drop are called with core->lock held (they read and
 *    change the targets awaiting results, which must change atomically with the store: a
 *    "push" event and the storing of its result may race). They take the pusher's own lock
 *    for the queue: the order is core->lock, then the pusher's.
 *  - Puts are posted by the thread that stored the result (terni_pusher_send): their replies
 *    are handled by nng callbacks. The pusher thread makes the puts that must wait: those
 *    asked for a result already stored (a "push" event), and those whose connection must
 *    first be authenticated.
 *  - The pusher thread never holds core->lock. A put that fails (the target left, or did not
 *    answer within TERNI_PUSH_TIMEOUT_MS) is reported to the scheduler ("push_failed"), which
 *    places what waited for it again. An address that could not be reached is not tried again
 *    for UNREACHABLE_MS (its puts fail at once): a dead target must not hold up the pushes
 *    queued behind it.
 *  - Values are immutable once stored: the queue holds a reference, and the put encodes it
 *    outside every lock.
 */
#ifndef TERNI_WORKER_PUSHER_H
#define TERNI_WORKER_PUSHER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tern/value.h>

struct terni_wcore;

#define TERNI_PUSH_TIMEOUT_MS 10000

#define UNREACHABLE_SLOTS 8
#define UNREACHABLE_MS    30000

typedef struct terni_pusher {
    struct terni_wcore *core;
    struct terni_push_wanted *wanted; /* key -> addresses (under core->lock) */
    pthread_mutex_t lock;             /* the queue and stopping */
    pthread_cond_t cond;
    struct terni_push_item *head, *tail;
    bool stopping, started;
    pthread_t thread;
    unsigned long pushed, failed; /* under lock: counts (logs, tests) */
    struct {
        char address[256];
        uint64_t until_ns;
    } unreachable[UNREACHABLE_SLOTS]; /* the pusher thread's: addresses that failed lately */
} terni_pusher;

/* An idle pusher for core (no thread yet). 0, or -1 if out of resources. */
int terni_pusher_init(terni_pusher *p, struct terni_wcore *core);
/* Starts its thread (after core->peers exists). TERN_OK or TERN_ENOMEM. */
int terni_pusher_start(terni_pusher *p);
/* Stops the thread (puts in progress end within their timeout), drops what is queued and
 * wanted, and frees everything. */
void terni_pusher_destroy(terni_pusher *p);

/* Under core->lock. key's result is to go to the data server at address: queued now if v (the
 * stored value, or NULL) is given, else when key is stored (terni_pusher_stored). */
void terni_pusher_want(terni_pusher *p, const char *key, const char *address, tern_value *v);
/* Under core->lock: key was stored as v. Returns the puts that waited for it (NULL: none),
 * for terni_pusher_send once the lock is released. */
struct terni_push_item *terni_pusher_stored(terni_pusher *p, const char *key, tern_value *v);
/* Not under core->lock: sends items (taken), each put posted without waiting (its reply is
 * handled by an nng callback, terni_peers_post), so the thread that stored the result goes
 * on at once and no thread wakes on the way. A put whose connection must authenticate first
 * goes to the pusher thread. */
void terni_pusher_send(terni_pusher *p, struct terni_push_item *items);
/* Under core->lock: key was freed or cancelled here; nothing waits to push it any more. */
void terni_pusher_drop(terni_pusher *p, const char *key);
/* Under core->lock: the scheduler was lost; every wanted push and queued put goes. */
void terni_pusher_forget(terni_pusher *p);

#endif
