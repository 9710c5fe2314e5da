/* The worker's job queue (jobs.h).
 *
 * Design notes
 *  - Ready jobs are in a heap keyed (INT_MAX - priority, arrival): the highest priority first,
 *    then first come, first served. The key is kept in the heap's own array (heap.h): with the
 *    job read at each comparison, nearly every read missed the cache (50,000 queued jobs in
 *    throughput_100k: popping was 15% of an executor's time). For the same reason the heap
 *    does not track the jobs' positions (an untracked heap: no write to a job per level of a
 *    pop); cancelling searches the heap's array for the key anyway and removes by slot.
 *  - The running list holds one job per busy executor thread, so a walk is cheaper than the
 *    hash table it replaced (whose insert and delete per task were 6% of a worker's time in
 *    throughput_100k).
 *  - Early placement: a job placed before its dependencies computed here finished waits in
 *    q->blocked, indexed by each awaited key in q->awaiting (uthash: few keys at a time), and
 *    joins the ready heap when the last of them is stored, with no message in between.
 *  - Cancelling a queued job searches the heap's array (O(queue)); a key that is stored here is
 *    finished, not queued, and its caller skips the search (terni_jobs_cancel's held).
 */
#include "runtime/worker/jobs.h"

#include "sdk/src/transport/wire.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

/* A result being computed here that blocked jobs wait for. */
typedef struct terni_awaited {
    char *key;
    terni_job **jobs;
    size_t n, cap;
    UT_hash_handle hh;
} terni_awaited;

static terni_job *job_of_ready(terni_heap_node *n)
{
    return TERNI_CONTAINER_OF(n, terni_job, in_ready);
}

static terni_job *job_of_list(terni_list *l)
{
    return TERNI_CONTAINER_OF(l, terni_job, in_list);
}

int terni_jobs_init(terni_jobs *q)
{
    *q = (terni_jobs){ .ready.untracked = true }; /* see the notes */
    terni_list_init(&q->running);
    terni_list_init(&q->blocked);
    return pthread_cond_init(&q->cond, NULL) == 0 ? 0 : -1;
}

terni_job *terni_job_new(const char *key, const char *fn, const char *plugin, size_t nafter)
{
    /* the job and its three strings in one allocation (terni_job_free) */
    size_t klen = strlen(key) + 1, flen = strlen(fn) + 1, plen = strlen(plugin) + 1;
    terni_job *j = calloc(1, sizeof(*j) + klen + flen + plen);
    if (!j)
        return NULL;
    j->key = memcpy((char *)(j + 1), key, klen);
    j->fn = memcpy(j->key + klen, fn, flen);
    j->plugin = memcpy(j->fn + flen, plugin, plen);
    terni_list_init(&j->in_list);
    if (nafter && !(j->after = calloc(nafter, sizeof(char *)))) {
        free(j);
        return NULL;
    }
    return j;
}

void terni_job_free(terni_job *j)
{
    tern_value_unref(j->args); /* key, fn and plugin live in the job's allocation */
    tern_value_unref(j->deps);
    tern_value_unref(j->taken);
    for (size_t i = 0; i < j->nafter; i++)
        free(j->after[i]);
    free(j->after);
    free(j);
}

/* ---- ready ------------------------------------------------------------------------ */

/* Out of memory, the job is lost: the scheduler sees no answer for it. */
static void make_ready(terni_jobs *q, terni_job *j)
{
    terni_heap_key order = { .hi = (uint64_t)((int64_t)INT_MAX - j->priority), .lo = j->seq };
    if (terni_heap_push(&q->ready, &j->in_ready, order) != 0) {
        terni_job_free(j);
        return;
    }
    pthread_cond_signal(&q->cond);
}

bool terni_jobs_any_ready(const terni_jobs *q)
{
    return terni_heap_count(&q->ready) > 0;
}

bool terni_jobs_busy(const terni_jobs *q)
{
    return terni_jobs_any_ready(q) || !terni_list_empty(&q->running);
}

terni_job *terni_jobs_start(terni_jobs *q)
{
    terni_heap_node *n = terni_heap_pop(&q->ready);
    if (!n)
        return NULL;
    terni_job *j = job_of_ready(n);
    j->start_ns = terni_now_ns();
    terni_list_push_front(&q->running, &j->in_list);
    return j;
}

void terni_jobs_finish(terni_jobs *q, terni_job *j)
{
    (void)q;
    terni_list_remove(&j->in_list);
}

/* Frees every ready job; each is taken from the last slot, which needs no sifting. */
static void free_ready(terni_jobs *q)
{
    while (terni_heap_count(&q->ready)) {
        size_t last = terni_heap_count(&q->ready) - 1;
        terni_job *j = job_of_ready(terni_heap_at(&q->ready, last));
        terni_heap_remove_at(&q->ready, last);
        terni_job_free(j);
    }
}

/* ---- blocked: placed early, waiting for results computed here ------------------------ */

/* Makes j wait for key; false if out of memory. */
static bool await_key(terni_jobs *q, terni_job *j, const char *key)
{
    terni_awaited *a;
    HASH_FIND_STR(q->awaiting, key, a);
    if (!a) {
        if (!(a = calloc(1, sizeof(*a))) || !(a->key = strdup(key))) {
            free(a);
            return false;
        }
        HASH_ADD_KEYPTR(hh, q->awaiting, a->key, strlen(a->key), a);
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 1;
        terni_job **grown = realloc(a->jobs, cap * sizeof(*grown));
        if (!grown)
            return false;
        a->jobs = grown;
        a->cap = cap;
    }
    a->jobs[a->n++] = j;
    return true;
}

static void awaited_free(terni_jobs *q, terni_awaited *a)
{
    HASH_DEL(q->awaiting, a);
    free(a->key);
    free(a->jobs);
    free(a);
}

/* "after": the job was placed before these dependencies, which run here, finished; it waits
 * for those s does not hold yet (see terni_jobs_add on running out of memory). */
static void wait_for(terni_jobs *q, terni_store *s, terni_job *j, const tern_value *keys)
{
    const tern_value *item;
    const char *key;
    for (size_t i = 0; j->after && tern_list_get(keys, i, &item) == TERN_OK; i++) {
        if (tern_value_get_text(item, &key, NULL) != TERN_OK)
            continue;
        if (terni_store_find(s, key) || !(j->after[j->nafter] = strdup(key)))
            continue;
        if (!await_key(q, j, key)) {
            free(j->after[j->nafter]);
            continue;
        }
        j->nafter++;
        j->nwait++;
    }
}

void terni_jobs_stored(terni_jobs *q, const char *key)
{
    terni_awaited *a;
    HASH_FIND_STR(q->awaiting, key, a);
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        terni_job *j = a->jobs[i];
        if (--j->nwait == 0) {
            terni_list_remove(&j->in_list);
            make_ready(q, j);
        }
    }
    awaited_free(q, a);
}

/* A blocked job cancelled or forgotten: out of the index, and freed. */
static void drop_blocked(terni_jobs *q, terni_job *j)
{
    for (size_t i = 0; i < j->nafter; i++) {
        terni_awaited *a;
        HASH_FIND_STR(q->awaiting, j->after[i], a);
        for (size_t k = 0; a && k < a->n; k++)
            if (a->jobs[k] == j)
                a->jobs[k--] = a->jobs[--a->n];
        if (a && !a->n)
            awaited_free(q, a);
    }
    terni_list_remove(&j->in_list);
    terni_job_free(j);
}

static void drop_all_blocked(terni_jobs *q)
{
    terni_list *l;
    while ((l = terni_list_first(&q->blocked)))
        drop_blocked(q, job_of_list(l));
}

/* ---- events ----------------------------------------------------------------------- */

/* "take": the scheduler hands these keys' data held here to the job, as its last reader: they
 * leave the store now (the scheduler no longer counts them as held here), so that no later
 * event finds them, and they are freed with the job. */
static void take_deps(terni_store *s, terni_job *j, const tern_value *keys)
{
    const tern_value *item;
    const char *key;
    for (size_t i = 0; tern_list_get(keys, i, &item) == TERN_OK; i++) {
        if (tern_value_get_text(item, &key, NULL) != TERN_OK)
            continue;
        tern_value *v = terni_store_take(s, key);
        if (!v)
            continue;
        if (!j->taken)
            j->taken = tern_map_new();
        /* Out of memory, the job does not find it: it reports TERN_ELOST, and the scheduler
         * computes the key again. */
        if (j->taken)
            tern_map_set(j->taken, key, v);
        else
            tern_value_unref(v);
    }
}

void terni_jobs_add(terni_jobs *q, terni_store *s, terni_job *j, const tern_value *take,
                    const tern_value *after)
{
    take_deps(s, j, take);
    j->seq = ++q->seq;
    wait_for(q, s, j, after);
    if (j->nwait)
        terni_list_push_front(&q->blocked, &j->in_list);
    else
        make_ready(q, j);
}

void terni_jobs_cancel(terni_jobs *q, const char *key, bool held)
{
    TERNI_LIST_EACH (&q->running, it)
        if (!strcmp(job_of_list(it)->key, key))
            __atomic_store_n(&job_of_list(it)->cancelled, 1, __ATOMIC_RELAXED);
    /* Held here: finished, not queued. (Were it queued again too, that run's report would be
     * stale, and the scheduler ignores stale reports.) */
    if (held)
        return;
    TERNI_LIST_EACH (&q->blocked, it)
        if (!strcmp(job_of_list(it)->key, key)) {
            drop_blocked(q, job_of_list(it));
            break;
        }
    for (size_t k = 0; k < terni_heap_count(&q->ready); k++) {
        terni_job *j = job_of_ready(terni_heap_at(&q->ready, k));
        if (!strcmp(j->key, key)) {
            terni_heap_remove_at(&q->ready, k);
            terni_job_free(j);
            break;
        }
    }
}

void terni_jobs_forget(terni_jobs *q)
{
    drop_all_blocked(q);
    free_ready(q);
    TERNI_LIST_EACH (&q->running, it)
        __atomic_store_n(&job_of_list(it)->cancelled, 1, __ATOMIC_RELAXED);
}

void terni_jobs_destroy(terni_jobs *q)
{
    drop_all_blocked(q);
    free_ready(q);
    terni_heap_free(&q->ready);
    pthread_cond_destroy(&q->cond);
}
