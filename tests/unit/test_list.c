/* The intrusive doubly-linked list (runtime/util/list.h): order of front and back insertion,
 * removal of any node (first, last, middle, twice), removal while iterating, and many random
 * operations checked against a plain array in list order. */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdlib.h>

#include "runtime/util/list.h"

typedef struct elem {
    int id;
    terni_list link;
} elem;

static int id_of(const terni_list *n)
{
    return TERNI_CONTAINER_OF(n, elem, link)->id;
}

/* The list's ids front to back equal want[0..n), and back to front too. */
static void check_order(const terni_list *head, const int *want, size_t n)
{
    size_t i = 0;
    TERNI_LIST_EACH (head, it) {
        cr_assert_lt(i, n, "more nodes than expected");
        cr_assert_eq(id_of(it), want[i], "node %zu", i);
        cr_assert_eq(it->next->prev, it);
        i++;
    }
    cr_assert_eq(i, n);
    for (const terni_list *it = head->prev; it != head; it = it->prev)
        cr_assert_eq(id_of(it), want[--i]);
    cr_assert_eq(terni_list_empty(head), n == 0);
}

/* head: a new list of e[0..n), with ids 0..n-1 in that order. */
static void fill(terni_list *head, elem *e, int n)
{
    terni_list_init(head);
    for (int i = 0; i < n; i++) {
        e[i].id = i;
        terni_list_push_back(head, &e[i].link);
        cr_assert(terni_list_linked(&e[i].link));
    }
}

Test(list, empty_list)
{
    terni_list head;
    terni_list_init(&head);
    cr_assert(terni_list_empty(&head));
    cr_assert_null(terni_list_first(&head));
    check_order(&head, NULL, 0);
}

Test(list, push_front_and_back_order)
{
    elem e[4] = { { .id = 0 }, { .id = 1 }, { .id = 2 }, { .id = 3 } };
    terni_list head;
    terni_list_init(&head);
    terni_list_push_front(&head, &e[1].link);
    terni_list_push_front(&head, &e[0].link);
    terni_list_push_back(&head, &e[2].link);
    terni_list_push_back(&head, &e[3].link);
    check_order(&head, (int[]){ 0, 1, 2, 3 }, 4);
    cr_assert_eq(terni_list_first(&head), &e[0].link);
}

Test(list, removes_first_last_and_middle_and_twice)
{
    elem e[5];
    terni_list head;
    fill(&head, e, 5);
    terni_list_remove(&e[0].link);
    check_order(&head, (int[]){ 1, 2, 3, 4 }, 4);
    terni_list_remove(&e[4].link);
    check_order(&head, (int[]){ 1, 2, 3 }, 3);
    terni_list_remove(&e[2].link);
    check_order(&head, (int[]){ 1, 3 }, 2);
    cr_assert(!terni_list_linked(&e[2].link));
    terni_list_remove(&e[2].link); /* harmless: it is in no list */
    check_order(&head, (int[]){ 1, 3 }, 2);
    terni_list_remove(&e[1].link);
    terni_list_remove(&e[3].link);
    check_order(&head, NULL, 0);
}

Test(list, safe_iteration_removes_as_it_goes)
{
    elem e[10];
    terni_list head;
    fill(&head, e, 10);
    TERNI_LIST_EACH_SAFE (&head, it, tmp)
        if (id_of(it) % 2)
            terni_list_remove(it);
    check_order(&head, (int[]){ 0, 2, 4, 6, 8 }, 5);
    TERNI_LIST_EACH_SAFE (&head, it, tmp)
        terni_list_remove(it);
    check_order(&head, NULL, 0);
}

Test(list, random_operations_agree_with_a_reference_model)
{
    enum { N = 64, OPS = 100000 };
    elem e[N];
    int model[N]; /* the ids in list order */
    size_t n = 0;
    terni_list head;
    terni_list_init(&head);
    for (int i = 0; i < N; i++) {
        e[i].id = i;
        terni_list_init(&e[i].link);
    }
    srand(4242);
    for (int op = 0; op < OPS; op++) {
        elem *x = &e[rand() % N];
        size_t at = 0;
        while (at < n && model[at] != x->id)
            at++;
        bool in = at < n;
        cr_assert_eq(terni_list_linked(&x->link), in, "op %d", op);
        int what = rand() % 3;
        if (in) { /* remove it (from wherever it is) */
            terni_list_remove(&x->link);
            for (size_t k = at; k + 1 < n; k++)
                model[k] = model[k + 1];
            n--;
        } else if (what == 0) {
            terni_list_push_front(&head, &x->link);
            for (size_t k = n; k > 0; k--)
                model[k] = model[k - 1];
            model[0] = x->id;
            n++;
        } else {
            terni_list_push_back(&head, &x->link);
            model[n++] = x->id;
        }
        if (op % 100 == 0 || n == 0)
            check_order(&head, model, n);
    }
    check_order(&head, model, n);
}
