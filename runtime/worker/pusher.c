/* Pushing results to the workers that need them (pusher.h).
 *
 * Design notes
 *  - Wanted pushes (a "push" event for a key not stored yet) are a uthash table key ->
 *    addresses, guarded by core->lock like the store, so that "stored" and "wanted" cannot
 *    miss each other: the executor stores a result and takes its targets in one critical
 *    section (terni_wcore_put), and the event handler checks the store and records a target
 *    in another.
 *  - Queued puts are a FIFO of items (key, value reference, address), handed to one thread.
 *    One thread suffices for the dependency edges of a step (one put per edge, each a round
 *    trip of the data plane); a put is at most TERNI_PUSH_TIMEOUT_MS.
 *  - The put is the data plane's "put" (protocol.h): the receiver stores the value unless it
 *    holds it already (a push that arrives twice changes nothing) and reports "added".
 */
#include "runtime/worker/pusher.h"

#include "runtime/util/log.h"
#include "runtime/worker/core.h"
#include "sdk/src/protocol/protocol.h"
#include "sdk/src/transport/peers.h"

#include "sdk/src/transport/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

typedef struct terni_push_wanted {
    char *key;
    char **addresses;
    size_t n;
    UT_hash_handle hh;
} terni_push_wanted;

typedef struct terni_push_item {
    struct terni_push_item *next;
    terni_pusher *pusher;
    tern_value *value;
    char *address; /* after the key, in the item's allocation */
    char key[];
} terni_push_item;

int terni_pusher_init(terni_pusher *p, struct terni_wcore *core)
{
    *p = (terni_pusher){ .core = core };
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        return -1;
    if (pthread_cond_init(&p->cond, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        return -1;
    }
    return 0;
}

static void item_free(terni_push_item *it)
{
    tern_value_unref(it->value);
    free(it);
}

/* A put of v (a new reference is taken) to address. Out of memory, the push is lost: logged,
 * and the consumer's task waits until its worker or ours is lost (then placed again). */
static terni_push_item *item_new(terni_pusher *p, const char *key, const char *address,
                                 tern_value *v)
{
    size_t klen = strlen(key) + 1, alen = strlen(address) + 1;
    terni_push_item *it = malloc(sizeof(*it) + klen + alen);
    if (!it) {
        terni_log(TERNI_LOG_ERROR, "out of memory queueing the push of %s to %s", key, address);
        return NULL;
    }
    memcpy(it->key, key, klen);
    it->address = it->key + klen;
    memcpy(it->address, address, alen);
    it->value = tern_value_ref(v);
    it->next = NULL;
    it->pusher = p;
    return it;
}

/* Hands it to the pusher thread. */
static void enqueue_item(terni_pusher *p, terni_push_item *it)
{
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = it;
    else
        p->head = it;
    p->tail = it;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void enqueue(terni_pusher *p, const char *key, const char *address, tern_value *v)
{
    terni_push_item *it = item_new(p, key, address, v);
    if (it)
        enqueue_item(p, it);
}

static void wanted_free(terni_pusher *p, terni_push_wanted *w)
{
    HASH_DEL(p->wanted, w);
    for (size_t i = 0; i < w->n; i++)
        free(w->addresses[i]);
    free(w->addresses);
    free(w->key);
    free(w);
}

void terni_pusher_want(terni_pusher *p, const char *key, const char *address, tern_value *v)
{
    if (v) {
        enqueue(p, key, address, v);
        return;
    }
    terni_push_wanted *w;
    HASH_FIND_STR(p->wanted, key, w);
    if (!w) {
        if (!(w = calloc(1, sizeof(*w))) || !(w->key = strdup(key))) {
            free(w);
            terni_log(TERNI_LOG_ERROR, "out of memory recording the push of %s", key);
            return;
        }
        HASH_ADD_KEYPTR(hh, p->wanted, w->key, strlen(w->key), w);
    }
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->addresses[i], address))
            return; /* asked twice */
    char **grown = realloc(w->addresses, (w->n + 1) * sizeof(*grown));
    char *a = strdup(address);
    if (!grown || !a) {
        free(a);
        if (grown)
            w->addresses = grown;
        terni_log(TERNI_LOG_ERROR, "out of memory recording the push of %s", key);
        return;
    }
    w->addresses = grown;
    w->addresses[w->n++] = a;
}

terni_push_item *terni_pusher_stored(terni_pusher *p, const char *key, tern_value *v)
{
    terni_push_wanted *w;
    HASH_FIND_STR(p->wanted, key, w);
    if (!w)
        return NULL;
    terni_push_item *items = NULL;
    for (size_t i = w->n; i-- > 0;) {
        terni_push_item *it = item_new(p, key, w->addresses[i], v);
        if (it) {
            it->next = items;
            items = it;
        }
    }
    wanted_free(p, w);
    return items;
}

void terni_pusher_drop(terni_pusher *p, const char *key)
{
    terni_push_wanted *w;
    HASH_FIND_STR(p->wanted, key, w);
    if (w)
        wanted_free(p, w);
}

static void drop_queue(terni_pusher *p)
{
    pthread_mutex_lock(&p->lock);
    terni_push_item *it = p->head;
    p->head = p->tail = NULL;
    pthread_mutex_unlock(&p->lock);
    while (it) {
        terni_push_item *next = it->next;
        item_free(it);
        it = next;
    }
}

void terni_pusher_forget(terni_pusher *p)
{
    terni_push_wanted *w, *tmp;
    HASH_ITER(hh, p->wanted, w, tmp)
    wanted_free(p, w);
    drop_queue(p);
}

/* Whether a put to address failed to connect or timed out less than UNREACHABLE_MS ago: the
 * worker there is most likely dead (a restarted worker listens on a new port), and each put
 * would wait CONNECT_MS again, holding up the pushes queued behind it. (pusher thread only) */
static bool known_unreachable(terni_pusher *p, const char *address, uint64_t now)
{
    bool known = false;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < UNREACHABLE_SLOTS && !known; i++)
        known = p->unreachable[i].until_ns > now && !strcmp(p->unreachable[i].address, address);
    pthread_mutex_unlock(&p->lock);
    return known;
}

/* Under p->lock. */
static void mark_unreachable(terni_pusher *p, const char *address, uint64_t now)
{
    size_t slot = 0;
    for (size_t i = 0; i < UNREACHABLE_SLOTS; i++)
        if (p->unreachable[i].until_ns < p->unreachable[slot].until_ns)
            slot = i;
    snprintf(p->unreachable[slot].address, sizeof(p->unreachable[slot].address), "%s", address);
    p->unreachable[slot].until_ns = now + (uint64_t)UNREACHABLE_MS * 1000000u;
}

/* A put's outcome: counted; a failure is reported to the scheduler ("push_failed"), which
 * places what waited for it again. */
static void finished(terni_pusher *p, const terni_push_item *it, int rc, const char *err)
{
    pthread_mutex_lock(&p->lock);
    if (rc == TERN_OK)
        p->pushed++;
    else
        p->failed++;
    if (rc == TERN_ECONNREFUSED || rc == TERN_ETIMEDOUT)
        mark_unreachable(p, it->address, terni_now_ns());
    pthread_mutex_unlock(&p->lock);
    if (rc == TERN_OK)
        return;
    terni_log(TERNI_LOG_INFO, "cannot push %s to %s: %s", it->key, it->address, err);
    const char *to = it->address;
    terni_outbox o = { 0 };
    bool built = terni_enc_push(
        &o, TERNI_OP_PUSH_FAILED,
        &(terni_push){ .key = it->key, .to = terni_strs_of(&to, 1), .message = err });
    terni_wcore_post_outbox(p->core, &o, built, TERNI_OP_PUSH_FAILED);
}

/* terni_peers_post's end (an nng thread). A connection that must authenticate again (nng
 * reconnected) goes to the pusher thread, which does that. */
static void posted(void *arg, int rc, const char *err)
{
    terni_push_item *it = arg;
    if (rc == TERN_EAUTH) {
        enqueue_item(it->pusher, it);
        return;
    }
    finished(it->pusher, it, rc, err);
    item_free(it);
}

void terni_pusher_send(terni_pusher *p, terni_push_item *items)
{
    while (items) {
        terni_push_item *it = items;
        items = it->next;
        it->next = NULL;
        tern_value *req = NULL;
        int rc = TERN_EBUSY;
        if (!known_unreachable(p, it->address, terni_now_ns()) &&
            (req = terni_enc_put(&(terni_put_msg){ .key = it->key, .value = it->value })))
            rc = terni_peers_post(p->core->peers, it->address, req, TERNI_PUSH_TIMEOUT_MS, posted,
                                  it);
        tern_value_unref(req);
        if (rc != TERN_OK) /* the thread authenticates first, or reports the failure */
            enqueue_item(p, it);
    }
}

/* One put, waited for (the pusher thread). */
static void push_one(terni_pusher *p, terni_push_item *it)
{
    terni_wcore *c = p->core;
    char err[512] = "out of memory";
    tern_value *req = NULL, *reply = NULL;
    int rc;
    uint64_t now = terni_now_ns();
    if (known_unreachable(p, it->address, now)) {
        rc = TERN_ECONNREFUSED;
        snprintf(err, sizeof(err), "worker at %s was unreachable moments ago", it->address);
    } else if (!(req = terni_enc_put(&(terni_put_msg){ .key = it->key, .value = it->value }))) {
        rc = TERN_ENOMEM;
    } else {
        rc = terni_peers_request(c->peers, it->address, req, TERNI_PUSH_TIMEOUT_MS, &reply, err,
                                 sizeof(err));
    }
    tern_value_unref(req);
    tern_value_unref(reply);
    finished(p, it, rc, err);
}

static void *pusher_main(void *arg)
{
    terni_pusher *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->stopping) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        terni_push_item *it = p->head;
        p->head = it->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->lock);
        push_one(p, it);
        item_free(it);
    }
}

int terni_pusher_start(terni_pusher *p)
{
    p->started = pthread_create(&p->thread, NULL, pusher_main, p) == 0;
    return p->started ? TERN_OK : TERN_ENOMEM;
}

void terni_pusher_destroy(terni_pusher *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (p->started)
        pthread_join(p->thread, NULL);
    terni_pusher_forget(p);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
}
