/* The daemons' key tables (sdk/src/support/keytab.c over genht): lookups through growth, removal
 * with reinsertion over the deleted slots, iteration that removes, and a zeroed table. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdk/src/support/keytab.h"

enum { N = 200000 }; /* several growths; past genht's switch from x4 to x2 at 65,536 */

static char (*keys)[48];

static void make_keys(void)
{
    keys = calloc(N, sizeof(*keys));
    cr_assert_not_null(keys);
    for (int i = 0; i < N; i++) /* the shape of an impure task's key */
        snprintf(keys[i], sizeof(keys[i]), "noop-%016llx%016llx", 0x1234567890abcdefULL,
                 0xfedcba0987654321ULL + (unsigned long long)i);
}

static void free_keys(void)
{
    free(keys);
}

Test(keytab, finds_every_key_through_growth_and_none_other, .init = make_keys, .fini = free_keys)
{
    terni_keytab t;
    cr_assert_eq(terni_keytab_init(&t), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_null(terni_keytab_get(&t, keys[i]), "%s found before it was put", keys[i]);
        cr_assert_eq(terni_keytab_put(&t, keys[i], &keys[i]), 0);
    }
    cr_assert_eq(terni_keytab_count(&t), N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(terni_keytab_get(&t, keys[i]), &keys[i], "%s", keys[i]);
    cr_assert_null(terni_keytab_get(&t, "noop-"));
    cr_assert_null(terni_keytab_get(&t, "noop-1234567890abcdeffedcba0987654321x"));
    /* a copy of the text finds the entry: keys compare by content, not by pointer */
    char copy[48];
    memcpy(copy, keys[N / 2], sizeof(copy));
    cr_assert_eq(terni_keytab_get(&t, copy), &keys[N / 2]);
    terni_keytab_free(&t);
}

Test(keytab, removed_keys_are_gone_and_their_slots_serve_again, .init = make_keys,
     .fini = free_keys)
{
    terni_keytab t;
    cr_assert_eq(terni_keytab_init(&t), 0);
    /* a steady churn as in a long run: put a window of keys, then drop the oldest, many times
     * over the table's size, so that deleted slots accumulate and are cleaned by regrowth */
    enum { WINDOW = 1000 };
    for (int i = 0; i < N; i++) {
        cr_assert_eq(terni_keytab_put(&t, keys[i], &keys[i]), 0);
        if (i >= WINDOW) {
            cr_assert_eq(terni_keytab_pop(&t, keys[i - WINDOW]), &keys[i - WINDOW]);
            cr_assert_null(terni_keytab_get(&t, keys[i - WINDOW]));
        }
    }
    cr_assert_eq(terni_keytab_count(&t), WINDOW);
    cr_assert_leq(t.mask + 1, 16 * WINDOW, "the table grew to %u slots for %d keys", t.mask + 1,
                  WINDOW);
    for (int i = N - WINDOW; i < N; i++)
        cr_assert_eq(terni_keytab_get(&t, keys[i]), &keys[i]);
    cr_assert_null(terni_keytab_pop(&t, keys[0]), "a key popped twice");
    terni_keytab_free(&t);
}

Test(keytab, iteration_visits_each_key_once_and_may_remove_it, .init = make_keys, .fini = free_keys)
{
    enum { M = 5000 };
    terni_keytab t;
    cr_assert_eq(terni_keytab_init(&t), 0);
    for (int i = 0; i < M; i++)
        cr_assert_eq(terni_keytab_put(&t, keys[i], &keys[i]), 0);
    char *seen = calloc(M, 1);
    cr_assert_not_null(seen);
    size_t visits = 0;
    TERNI_KEYTAB_EACH (&t, e) {
        int i = (int)((char(*)[48])e->value - keys);
        cr_assert(i >= 0 && i < M && !seen[i], "entry %d visited twice or unknown", i);
        seen[i] = 1;
        visits++;
        if (i % 2 == 0) /* removing the entry being visited */
            cr_assert_eq(terni_keytab_pop(&t, e->key), &keys[i]);
    }
    cr_assert_eq(visits, M);
    cr_assert_eq(terni_keytab_count(&t), M / 2);
    for (int i = 0; i < M; i++)
        cr_assert_eq(terni_keytab_get(&t, keys[i]), i % 2 ? &keys[i] : NULL, "%s", keys[i]);
    free(seen);
    terni_keytab_free(&t);
}

Test(keytab, a_zeroed_table_is_empty_and_freeing_it_is_harmless)
{
    terni_keytab t;
    memset(&t, 0, sizeof(t));
    cr_assert_null(terni_keytab_get(&t, "x"));
    cr_assert_null(terni_keytab_pop(&t, "x"));
    cr_assert_eq(terni_keytab_count(&t), 0);
    terni_keytab_free(&t);
    terni_keytab_free(&t);
}
