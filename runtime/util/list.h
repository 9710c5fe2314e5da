/* An intrusive doubly-linked list (the idea of libuv's src/queue.h): each element embeds a
 * terni_list node, and a list is a terni_list head linked in a ring with its elements, so
 * insertion and removal are a few pointer writes, need no allocation and cannot fail.
 *
 *     typedef struct job { ...; terni_list in_running; } job;
 *     terni_list running;                   terni_list_init(&running);
 *     terni_list_push_front(&running, &j->in_running);
 *     TERNI_LIST_EACH (&running, it) { job *r = TERNI_CONTAINER_OF(it, job, in_running); ... }
 *     terni_list_remove(&j->in_running);
 *
 * Contract: a head is initialised (terni_list_init) before use; a node is in at most one list
 * at a time through that member. Removing a node leaves it linked to itself, so removing it
 * again is harmless and terni_list_linked tells whether it is in a list (a node never inserted
 * must be initialised first for that). Not thread-safe: callers lock. During TERNI_LIST_EACH the
 * current node may be removed only if the loop stops right after; TERNI_LIST_EACH_SAFE allows it
 * and continues. */
#ifndef TERNI_LIST_H
#define TERNI_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/util/container_of.h"

typedef struct terni_list {
    struct terni_list *next, *prev;
} terni_list;

/* An empty list (for a head), or a node in no list. */
static inline void terni_list_init(terni_list *l)
{
    l->next = l->prev = l;
}

static inline bool terni_list_empty(const terni_list *head)
{
    return head->next == head;
}

/* Whether node is in a list (it was inserted and not removed since). */
static inline bool terni_list_linked(const terni_list *node)
{
    return node->next != node;
}

/* Links node in between prev and next, which are adjacent. */
static inline void terni_list_link_(terni_list *node, terni_list *prev, terni_list *next)
{
    node->prev = prev;
    node->next = next;
    prev->next = node;
    next->prev = node;
}

static inline void terni_list_push_front(terni_list *head, terni_list *node)
{
    terni_list_link_(node, head, head->next);
}

static inline void terni_list_push_back(terni_list *head, terni_list *node)
{
    terni_list_link_(node, head->prev, head);
}

/* Unlinks node from its list and leaves it in none. */
static inline void terni_list_remove(terni_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    terni_list_init(node);
}

/* The first node of the list, or NULL when it is empty. */
static inline terni_list *terni_list_first(const terni_list *head)
{
    return terni_list_empty(head) ? NULL : head->next;
}

/* for (each node `it` of head, front to back) */
#define TERNI_LIST_EACH(head, it) for (terni_list *it = (head)->next; it != (head); it = it->next)

/* The same, where the body may remove `it` (the next node is read before the body runs). */
#define TERNI_LIST_EACH_SAFE(head, it, tmp)                                                        \
    for (terni_list *it = (head)->next, *tmp = it->next; it != (head); it = tmp, tmp = it->next)

#endif
