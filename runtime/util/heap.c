/* The intrusive binary min-heap (heap.h). Slot i's children are 2i+1 and 2i+2. Sifting moves a
 * hole rather than swapping: each slot moved is written once, and so is its node's position
 * (in a tracked heap). */
#include "runtime/util/heap.h"

#include <assert.h>
#include <stdlib.h>

static bool key_less(terni_heap_key a, terni_heap_key b)
{
    return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo;
}

static void place(terni_heap *h, size_t i, terni_heap_slot s)
{
    h->slots[i] = s;
    if (!h->untracked)
        s.node->pos = i;
}

/* Puts s at slot i or above it. */
static void sift_up(terni_heap *h, size_t i, terni_heap_slot s)
{
    while (i && key_less(s.key, h->slots[(i - 1) / 2].key)) {
        place(h, i, h->slots[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    place(h, i, s);
}

/* Puts s at slot i or below it. */
static void sift_down(terni_heap *h, size_t i, terni_heap_slot s)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = l;
        if (l >= h->n)
            break;
        if (r < h->n && key_less(h->slots[r].key, h->slots[l].key))
            m = r;
        if (!key_less(h->slots[m].key, s.key))
            break;
        place(h, i, h->slots[m]);
        i = m;
    }
    place(h, i, s);
}

void terni_heap_free(terni_heap *h)
{
    free(h->slots);
    *h = (terni_heap){ .untracked = h->untracked };
}

int terni_heap_push(terni_heap *h, terni_heap_node *node, terni_heap_key key)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        terni_heap_slot *grown = realloc(h->slots, cap * sizeof(*grown));
        if (!grown)
            return -1;
        h->slots = grown;
        h->cap = cap;
    }
    sift_up(h, h->n++, (terni_heap_slot){ .key = key, .node = node });
    return 0;
}

terni_heap_node *terni_heap_top(const terni_heap *h)
{
    return h->n ? h->slots[0].node : NULL;
}

/* The last slot's node fills the hole, and moves up or down. */
void terni_heap_remove_at(terni_heap *h, size_t i)
{
    assert(i < h->n); /* a bug in the caller */
    terni_heap_slot last = h->slots[--h->n];
    if (i == h->n) /* it was the last slot */
        return;
    if (i && key_less(last.key, h->slots[(i - 1) / 2].key))
        sift_up(h, i, last);
    else
        sift_down(h, i, last);
}

terni_heap_node *terni_heap_pop(terni_heap *h)
{
    terni_heap_node *top = terni_heap_top(h);
    if (top) /* the node itself is not read: its slot is known */
        terni_heap_remove_at(h, 0);
    return top;
}

void terni_heap_remove(terni_heap *h, terni_heap_node *node)
{
    size_t i = node->pos;
    /* a bug in the caller: untracked, or node not in this heap */
    assert(!h->untracked && i < h->n && h->slots[i].node == node);
    terni_heap_remove_at(h, i);
}
