/* An intrusive binary min-heap (the idea of libuv's src/heap-inl.h): each element embeds a
 * terni_heap_node, which the heap keeps informed of the element's place, so any element can be
 * removed in O(log n) without a search, and the heap never allocates per element.
 *
 *     typedef struct job { ...; terni_heap_node in_ready; } job;
 *     terni_heap ready = { 0 };
 *     terni_heap_push(&ready, &j->in_ready, (terni_heap_key){ .hi = prio, .lo = seq });
 *     job *first = TERNI_CONTAINER_OF(terni_heap_pop(&ready), job, in_ready);  (NULL: empty)
 *     terni_heap_remove(&ready, &j->in_ready);
 *
 * Design notes
 *  - Unlike libuv's heap (a tree of nodes linked by pointers, compared through a function), this
 *    one is an array of slots, each holding its element's key inline: sifting compares and moves
 *    slots within the array and never reads an element. With the worker's 50,000 queued jobs
 *    (throughput_100k) a heap that read each job at each comparison missed the cache at nearly
 *    every step.
 *  - Keeping each node's position is a write to every element a sift moves, each a cache line
 *    of its own: 50,000 pushes and pops of jobs took 25 ms with it, against 14 ms for the
 *    worker's former hand-written heap, which an untracked heap matches (~140 ns per pop). A
 *    heap whose elements are only ever removed by their slot (terni_heap_remove_at, after a
 *    search with terni_heap_at) sets untracked and does without: its nodes are never written,
 *    and terni_heap_remove is not available.
 *  - The key is two 64-bit words compared in turn, smallest first: for "highest priority first,
 *    then first come" use hi = (maximum priority - priority), lo = arrival sequence. Elements
 *    with equal keys pop in no particular order.
 *  - Contract: a zeroed terni_heap is empty and valid, and keeps positions; untracked is set (if
 *    at all) while it is empty. A node is in at most one heap, and is pushed only when in none.
 *    Not thread-safe: callers lock.
 */
#ifndef TERNI_HEAP_H
#define TERNI_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/util/container_of.h"

typedef struct terni_heap_node {
    size_t pos; /* the heap's: the element's slot while it is in a tracked heap */
} terni_heap_node;

typedef struct terni_heap_key {
    uint64_t hi, lo; /* ordered by hi, then lo; smallest first */
} terni_heap_key;

typedef struct terni_heap_slot {
    terni_heap_key key;
    terni_heap_node *node;
} terni_heap_slot;

typedef struct terni_heap {
    terni_heap_slot *slots;
    size_t n, cap;
    bool untracked; /* nodes' positions are not kept (see the notes) */
} terni_heap;

/* Frees the heap's array (not the elements) and leaves it empty (untracked unchanged). */
void terni_heap_free(terni_heap *h);

/* Adds node with key. Returns 0, or -1 when out of memory (the heap is unchanged). */
int terni_heap_push(terni_heap *h, terni_heap_node *node, terni_heap_key key);

/* The node with the smallest key, or NULL if the heap is empty; it stays in the heap. */
terni_heap_node *terni_heap_top(const terni_heap *h);

/* Removes and returns the node with the smallest key, or NULL if the heap is empty. */
terni_heap_node *terni_heap_pop(terni_heap *h);

/* Removes node, which is in h (a tracked heap). O(log n). */
void terni_heap_remove(terni_heap *h, terni_heap_node *node);

/* Removes the node in slot i (i < terni_heap_count). O(log n); O(1) for the last slot. */
void terni_heap_remove_at(terni_heap *h, size_t i);

static inline size_t terni_heap_count(const terni_heap *h)
{
    return h->n;
}

/* The node in slot i (i < terni_heap_count), in array order: for visiting every element. */
static inline terni_heap_node *terni_heap_at(const terni_heap *h, size_t i)
{
    return h->slots[i].node;
}

#endif
