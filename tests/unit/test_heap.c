/* The intrusive binary heap (runtime/util/heap.c): pops in key order, ties broken by the second
 * word, removal of any element (the top, the last slot, the middle), and many random pushes,
 * pops and removals checked against a plain reference model. */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "runtime/util/heap.h"
#include "leakcheck.h"

typedef struct elem {
    terni_heap_key key;
    bool in; /* in the heap, according to the reference model */
    terni_heap_node node;
} elem;

static elem *elem_of(terni_heap_node *n)
{
    return n ? TERNI_CONTAINER_OF(n, elem, node) : NULL;
}

static bool before(const elem *a, const elem *b)
{
    return a->key.hi != b->key.hi ? a->key.hi < b->key.hi : a->key.lo < b->key.lo;
}

/* Every node's position names its own slot (if tracked), and no slot is before its parent. */
static void check_invariants(const terni_heap *h)
{
    for (size_t i = 0; i < terni_heap_count(h); i++) {
        if (!h->untracked)
            cr_assert_eq(terni_heap_at(h, i)->pos, i);
        if (i)
            cr_assert(!before(elem_of(terni_heap_at(h, i)), elem_of(terni_heap_at(h, (i - 1) / 2))),
                      "slot %zu is before its parent", i);
    }
}

LTest(heap, empty_heap_has_no_top)
{
    terni_heap h = { 0 };
    cr_assert_null(terni_heap_top(&h));
    cr_assert_null(terni_heap_pop(&h));
    cr_assert_eq(terni_heap_count(&h), 0);
    terni_heap_free(&h);
}

LTest(heap, pops_in_key_order_hi_then_lo)
{
    enum { N = 1000 };
    elem *e = calloc(N, sizeof(*e));
    cr_assert_not_null(e);
    terni_heap h = { 0 };
    for (int i = 0; i < N; i++) { /* ten values of hi, lo unique, pushed in a shuffled order */
        int k = (i * 7919) % N;
        e[k].key = (terni_heap_key){ .hi = (uint64_t)(k % 10), .lo = (uint64_t)(N - k) };
        cr_assert_eq(terni_heap_push(&h, &e[k].node, e[k].key), 0);
    }
    check_invariants(&h);
    cr_assert_eq(terni_heap_count(&h), N);
    const elem *prev = NULL;
    for (int i = 0; i < N; i++) {
        elem *top = elem_of(terni_heap_top(&h));
        cr_assert_eq(elem_of(terni_heap_pop(&h)), top);
        cr_assert(!prev || before(prev, top), "pop %d is out of order", i);
        prev = top;
    }
    cr_assert_null(terni_heap_pop(&h));
    terni_heap_free(&h);
    free(e);
}

LTest(heap, the_largest_and_smallest_keys_order_correctly)
{
    elem e[4] = { { .key = { UINT64_MAX, UINT64_MAX } },
                  { .key = { 0, 0 } },
                  { .key = { 0, UINT64_MAX } },
                  { .key = { UINT64_MAX, 0 } } };
    terni_heap h = { 0 };
    for (int i = 0; i < 4; i++)
        cr_assert_eq(terni_heap_push(&h, &e[i].node, e[i].key), 0);
    cr_assert_eq(elem_of(terni_heap_pop(&h)), &e[1]);
    cr_assert_eq(elem_of(terni_heap_pop(&h)), &e[2]);
    cr_assert_eq(elem_of(terni_heap_pop(&h)), &e[3]);
    cr_assert_eq(elem_of(terni_heap_pop(&h)), &e[0]);
    terni_heap_free(&h);
}

LTest(heap, removes_the_top_the_last_slot_and_the_middle)
{
    enum { N = 100 };
    elem e[N] = { 0 };
    terni_heap h = { 0 };
    for (int i = 0; i < N; i++) {
        e[i].key = (terni_heap_key){ .hi = (uint64_t)((i * 37) % N) };
        cr_assert_eq(terni_heap_push(&h, &e[i].node, e[i].key), 0);
        e[i].in = true;
    }
    /* the top, the element in the last slot, and every third remaining one */
    elem *top = elem_of(terni_heap_top(&h));
    terni_heap_remove(&h, &top->node);
    top->in = false;
    elem *last = elem_of(terni_heap_at(&h, terni_heap_count(&h) - 1));
    terni_heap_remove(&h, &last->node);
    last->in = false;
    check_invariants(&h);
    for (int i = 0; i < N; i += 3)
        if (e[i].in) {
            terni_heap_remove(&h, &e[i].node);
            e[i].in = false;
            check_invariants(&h);
        }
    size_t left = 0;
    for (int i = 0; i < N; i++)
        left += e[i].in;
    cr_assert_eq(terni_heap_count(&h), left);
    const elem *prev = NULL;
    for (elem *x; (x = elem_of(terni_heap_pop(&h))); prev = x) {
        cr_assert(x->in, "a removed element came back");
        cr_assert(!prev || before(prev, x));
        x->in = false;
    }
    for (int i = 0; i < N; i++)
        cr_assert(!e[i].in, "element %d was lost", i);
    terni_heap_free(&h);
}

/* The reference model: the elements flagged `in`; its smallest is found by a scan. */
static elem *model_min(elem *e, size_t n)
{
    elem *m = NULL;
    for (size_t i = 0; i < n; i++)
        if (e[i].in && (!m || before(&e[i], m)))
            m = &e[i];
    return m;
}

/* The slot of x, found by a search (for an untracked heap). */
static size_t slot_of(const terni_heap *h, const elem *x)
{
    for (size_t i = 0; i < terni_heap_count(h); i++)
        if (terni_heap_at(h, i) == &x->node)
            return i;
    cr_assert_fail("element not in the heap");
    return 0;
}

/* Removes x: by its node (a tracked heap), or by its slot. */
static void remove_elem(terni_heap *h, elem *x, bool by_slot)
{
    if (by_slot || h->untracked)
        terni_heap_remove_at(h, slot_of(h, x));
    else
        terni_heap_remove(h, &x->node);
}

/* Many random pushes, pops and removals, each checked against the reference model. */
static void random_operations(bool untracked)
{
    enum { N = 512, OPS = 200000 };
    elem *e = calloc(N, sizeof(*e));
    cr_assert_not_null(e);
    terni_heap h = { .untracked = untracked };
    size_t count = 0;
    uint64_t seq = 0;
    srand(12345);
    for (int op = 0; op < OPS; op++) {
        elem *x = &e[rand() % N];
        switch (rand() % 4) {
        case 0:
        case 1: /* push (an element already in: remove it first, as a re-prioritisation) */
            if (x->in) {
                remove_elem(&h, x, op % 2);
                count--;
            }
            /* few distinct hi values, so that lo decides often */
            x->key = (terni_heap_key){ .hi = (uint64_t)(rand() % 8), .lo = seq++ };
            cr_assert_eq(terni_heap_push(&h, &x->node, x->key), 0);
            x->in = true;
            count++;
            break;
        case 2: { /* pop */
            elem *want = model_min(e, N);
            cr_assert_eq(elem_of(terni_heap_pop(&h)), want, "op %d: pop", op);
            if (want) {
                want->in = false;
                count--;
            }
            break;
        }
        default: /* remove an arbitrary element */
            if (x->in) {
                remove_elem(&h, x, op % 2);
                x->in = false;
                count--;
            }
        }
        cr_assert_eq(terni_heap_count(&h), count, "op %d: count", op);
        cr_assert_eq(elem_of(terni_heap_top(&h)), model_min(e, N), "op %d: top", op);
        if (op % 1000 == 0)
            check_invariants(&h);
    }
    check_invariants(&h);
    while (terni_heap_count(&h)) /* emptying from the last slot: each removal is O(1) */
        terni_heap_remove_at(&h, terni_heap_count(&h) - 1);
    terni_heap_free(&h);
    cr_assert_eq(h.untracked, untracked);
    free(e);
}

LTest(heap, random_operations_agree_with_a_reference_model)
{
    random_operations(false);
}

LTest(heap, random_operations_agree_with_a_reference_model_untracked)
{
    random_operations(true);
}

LTest(heap, an_untracked_heap_never_writes_its_nodes)
{
    enum { N = 300 };
    elem e[N] = { 0 };
    terni_heap h = { .untracked = true };
    for (int i = 0; i < N; i++) {
        e[i].node.pos = 12345;
        e[i].key = (terni_heap_key){ .hi = (uint64_t)((i * 101) % N) };
        cr_assert_eq(terni_heap_push(&h, &e[i].node, e[i].key), 0);
    }
    terni_heap_remove_at(&h, N / 2);
    for (size_t n = terni_heap_count(&h); n; n--)
        terni_heap_pop(&h);
    for (int i = 0; i < N; i++)
        cr_assert_eq(e[i].node.pos, 12345);
    terni_heap_free(&h);
}
