/* A small vector of pointers for the graph's many short lists (a task's dependents, wanters,
 * holders). Most tasks have one of each, so the first lives in the record and only a second
 * one allocates. Not thread-safe; items keep no order under removal. */
#ifndef TERNI_SCHED_PTRS_H
#define TERNI_SCHED_PTRS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct terni_ptrs {
    uint32_t n, cap; /* cap <= 1: the inline slot u.one */
    union {
        void *one;
        void **many;
    } u;
} terni_ptrs;

/* The items (const a: for callers that only read them). */
static inline void **terni_ptrs_items(const terni_ptrs *a)
{
    return a->cap > 1 ? a->u.many : (void **)&a->u.one;
}

/* Appends p; false when out of memory (a unchanged). */
static inline bool terni_ptrs_push(terni_ptrs *a, void *p)
{
    if (a->n == a->cap) {
        if (a->cap > UINT32_MAX / 2)
            return false;
        if (a->cap == 0) {
            a->cap = 1;
        } else {
            uint32_t c = a->cap * 2;
            void **grown = realloc(a->cap > 1 ? a->u.many : NULL, c * sizeof(void *));
            if (!grown)
                return false;
            if (a->cap == 1)
                grown[0] = a->u.one;
            a->u.many = grown;
            a->cap = c;
        }
    }
    terni_ptrs_items(a)[a->n++] = p;
    return true;
}

static inline bool terni_ptrs_has(const terni_ptrs *a, const void *p)
{
    void **items = terni_ptrs_items(a);
    for (uint32_t i = 0; i < a->n; i++)
        if (items[i] == p)
            return true;
    return false;
}

/* Removes one p; false if it was not there. */
static inline bool terni_ptrs_remove(terni_ptrs *a, const void *p)
{
    void **items = terni_ptrs_items(a);
    for (uint32_t i = 0; i < a->n; i++)
        if (items[i] == p) {
            items[i] = items[--a->n];
            return true;
        }
    return false;
}

static inline void terni_ptrs_free(terni_ptrs *a)
{
    if (a->cap > 1)
        free(a->u.many);
    *a = (terni_ptrs){ 0 };
}

#endif
