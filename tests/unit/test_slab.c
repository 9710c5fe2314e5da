/* Values decoded into a slab (terni_decode_slab, value.c), as the scheduler decodes its requests
 * and a worker its events: the same values as a plain decode; parts kept after the rest was
 * dropped stay intact; decoded containers grow out of their slab; values freed on other
 * threads; failed decodes free what they built; terni_value_own copies a part out. The sanitizer
 * build checks every byte of it: freed slab objects are poisoned, and each test ends with a leak
 * check. */
#include <criterion/criterion.h>

#include <tern/codec.h>
#include <tern/value.h>

#include "sdk/src/value_internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leakcheck.h"

static void count_release(void *arg)
{
    ++*(int *)arg;
}

/* A submit op of n tasks shaped like the client's, with a few large arguments (past a slab
 * block's share, so from malloc) and an array. */
static tern_value *make_op(size_t n)
{
    tern_value *tasks = tern_list_new(0);
    cr_assert_not_null(tasks);
    for (size_t i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof(key), "noop-%016zx", i);
        size_t alen = i % 1000 == 7 ? 20000 : 1 + i % 40;
        uint8_t *args = malloc(alen);
        cr_assert_not_null(args);
        memset(args, (int)(i & 0xFF), alen);
        tern_value *spec = tern_map_new();
        tern_value *deps = tern_list_new(0);
        for (size_t d = 0; d < i % 3; d++)
            cr_assert_eq(tern_list_append(deps, tern_text(key)), TERN_OK);
        cr_assert_eq(tern_map_set(spec, "key", tern_text(key)), TERN_OK);
        cr_assert_eq(tern_map_set(spec, "args", tern_bytes(args, alen)), TERN_OK);
        cr_assert_eq(tern_map_set(spec, "gindex", tern_int((int64_t)i)), TERN_OK);
        cr_assert_eq(tern_map_set(spec, "deps", deps), TERN_OK);
        cr_assert_eq(tern_list_append(tasks, spec), TERN_OK);
        free(args);
    }
    double xs[5] = { 1, 2, 3, 4, 5 };
    tern_value *op = tern_map_new();
    cr_assert_eq(tern_map_set(op, "op", tern_text("submit")), TERN_OK);
    cr_assert_eq(tern_map_set(op, "tasks", tasks), TERN_OK);
    cr_assert_eq(tern_map_set(op, "value", tern_f64_array(xs, 5)), TERN_OK);
    cr_assert_eq(tern_map_set(op, "note", tern_text("a key outside the pool")), TERN_OK);
    return op;
}

/* v encoded into a buffer placed so that make_op's array payload is 8-byte aligned, and so
 * borrowed by the decoder. *base gets what to free. */
static uint8_t *encode_aligned(const tern_value *v, size_t *len, void **base)
{
    uint8_t *enc = NULL;
    cr_assert_eq(tern_encode(v, &enc, len), TERN_OK);
    const double one = 1.0;
    size_t off = 0;
    for (size_t i = 0; i + sizeof(one) <= *len; i++)
        if (!memcmp(enc + i, &one, sizeof(one))) {
            off = i;
            break;
        }
    size_t shift = (8 - off % 8) % 8;
    uint8_t *al = aligned_alloc(64, (*len + shift + 63) / 64 * 64);
    cr_assert_not_null(al);
    memcpy(al + shift, enc, *len);
    free(enc);
    *base = al;
    return al + shift;
}

/* A value and its encoding, placed by encode_aligned. */
typedef struct msg {
    tern_value *op;
    uint8_t *enc;
    size_t len;
    void *base;
} msg;

static msg msg_of(tern_value *op)
{
    msg m = { .op = op };
    m.enc = encode_aligned(op, &m.len, &m.base);
    return m;
}

static void msg_free(msg *m)
{
    free(m->base);
    tern_value_unref(m->op);
}

static tern_value *decode_slab(const uint8_t *enc, size_t len, int *released)
{
    tern_value *v = NULL;
    char err[256] = "";
    cr_assert_eq(terni_decode_slab(enc, len, NULL, count_release, released, &v, err, sizeof(err)),
                 TERN_OK, "%s", err);
    return v;
}

static const tern_value *at(const tern_value *list, size_t i)
{
    const tern_value *item = NULL;
    cr_assert_eq(tern_list_get(list, i, &item), TERN_OK);
    return item;
}

static const tern_value *get(const tern_value *map, const char *key)
{
    const tern_value *v = NULL;
    cr_assert_eq(tern_map_get(map, key, &v), TERN_OK, "no %s", key);
    return v;
}

LTest(slab, decodes_the_same_values_as_a_plain_decode)
{
    msg m = msg_of(make_op(5000));
    int released = 0;
    tern_value *v = decode_slab(m.enc, m.len, &released);
    cr_assert(tern_value_equal(m.op, v), "the slab-decoded op differs");
    /* the small values really come from the slab, the large argument from malloc */
    const tern_value *tasks = get(v, "tasks");
    cr_assert(v->flags & TERNI_V_SLAB, "the root map is not in the slab");
    cr_assert(at(tasks, 0)->flags & TERNI_V_SLAB, "a spec is not in the slab");
    cr_assert(get(at(tasks, 0), "key")->flags & TERNI_V_SLAB, "a key is not in the slab");
    cr_assert(at(tasks, 0)->flags & TERNI_V_SLAB_ITEMS, "a spec's entries are not in the slab");
    cr_assert_not(get(at(tasks, 7), "args")->flags & TERNI_V_SLAB,
                  "a 20000-byte argument was carved from a slab block");
    cr_assert(tern_value_is_borrowed(get(v, "value")), "the array was copied");
    tern_value_unref(v);
    cr_assert_eq(released, 1, "the receive buffer was released %d times", released);
    msg_free(&m);
}

LTest(slab, a_part_kept_outlives_the_rest)
{
    msg m = msg_of(make_op(300));
    int released = 0;
    tern_value *v = decode_slab(m.enc, m.len, &released);
    tern_value *spec = tern_value_ref((tern_value *)at(get(v, "tasks"), 123));
    tern_value *key = tern_value_ref((tern_value *)get(spec, "key"));
    tern_value *arr = tern_value_ref((tern_value *)get(v, "value"));
    tern_value_unref(v); /* the rest of the slab goes; these three stay */
    cr_assert_eq(released, 0, "the buffer went while an array still borrows it");
    const char *s;
    cr_assert_eq(tern_value_get_text(key, &s, NULL), TERN_OK);
    cr_assert_str_eq(s, "noop-000000000000007b");
    int64_t gi = 0;
    cr_assert_eq(tern_value_get_int(get(spec, "gindex"), &gi), TERN_OK);
    cr_assert_eq(gi, 123);
    cr_assert(tern_value_equal(spec, at(get(m.op, "tasks"), 123)));
    tern_value_unref(spec);
    const double *xs;
    size_t n;
    cr_assert_eq(tern_value_get_f64_array(arr, &xs, &n), TERN_OK);
    cr_assert(n == 5 && xs[4] == 5.0);
    tern_value_unref(arr);
    cr_assert_eq(released, 1);
    cr_assert_eq(tern_value_get_text(key, &s, NULL), TERN_OK); /* the last one of its slab */
    cr_assert_str_eq(s, "noop-000000000000007b");
    tern_value_unref(key);
    msg_free(&m);
}

LTest(slab, decoded_containers_grow_out_of_their_slab)
{
    tern_value *small = tern_map_new();
    cr_assert_eq(tern_map_set(small, "list", tern_list_of(tern_int(1), tern_int(2))), TERN_OK);
    cr_assert_eq(tern_map_set(small, "key", tern_text("k")), TERN_OK);
    msg m = msg_of(small);
    int released = 0;
    tern_value *v = decode_slab(m.enc, m.len, &released);
    tern_value *list = tern_value_ref((tern_value *)get(v, "list"));
    cr_assert(list->flags & TERNI_V_SLAB_ITEMS);
    cr_assert(v->flags & TERNI_V_SLAB_ITEMS);
    cr_assert_eq(tern_map_set(v, "list", tern_int(0)), TERN_OK); /* drops v's reference */
    for (int i = 3; i <= 1000; i++)
        cr_assert_eq(tern_list_append(list, tern_int(i)), TERN_OK);
    cr_assert_not(list->flags & TERNI_V_SLAB_ITEMS, "the grown items stayed in the slab");
    cr_assert_eq(tern_list_len(list), 1000);
    for (size_t i = 0; i < 1000; i++) {
        int64_t x = 0;
        cr_assert_eq(tern_value_get_int(at(list, i), &x), TERN_OK);
        cr_assert_eq(x, (int64_t)i + 1, "item %zu is %lld", i, (long long)x);
    }
    for (int i = 0; i < 100; i++) {
        char k[32];
        snprintf(k, sizeof(k), "added-%03d", i);
        cr_assert_eq(tern_map_set(v, k, tern_int(i)), TERN_OK);
    }
    cr_assert_not(v->flags & TERNI_V_SLAB_ITEMS, "the grown entries stayed in the slab");
    cr_assert_eq(tern_map_len(v), 102);
    const char *s;
    cr_assert_eq(tern_value_get_text(get(v, "key"), &s, NULL), TERN_OK);
    cr_assert_str_eq(s, "k");
    int64_t x = -1;
    cr_assert_eq(tern_value_get_int(get(v, "added-099"), &x), TERN_OK);
    cr_assert_eq(x, 99);
    tern_value_unref(v);
    tern_value_unref(list);
    msg_free(&m);
}

typedef struct dropper {
    tern_value **parts;
    size_t n;
} dropper;

static void *drop_parts(void *arg)
{
    dropper *d = arg;
    for (size_t i = 0; i < d->n; i++)
        tern_value_unref(d->parts[i]);
    return NULL;
}

/* Each of four threads drops its share of every message's specs while the main thread drops
 * the messages: the last reference, wherever it goes, frees each slab once. */
LTest(slab, values_are_freed_on_other_threads)
{
    enum { MSGS = 16, SPECS = 400, THREADS = 4 };
    msg op = msg_of(make_op(SPECS));
    int released[MSGS] = { 0 };
    dropper d[THREADS];
    for (int t = 0; t < THREADS; t++) {
        d[t].parts = calloc(MSGS * SPECS, sizeof(tern_value *));
        d[t].n = 0;
        cr_assert_not_null(d[t].parts);
    }
    tern_value *msgs[MSGS];
    for (int m = 0; m < MSGS; m++) {
        msgs[m] = decode_slab(op.enc, op.len, &released[m]);
        const tern_value *tasks = get(msgs[m], "tasks");
        for (size_t i = 0; i < SPECS; i++)
            d[i % THREADS].parts[d[i % THREADS].n++] = tern_value_ref((tern_value *)at(tasks, i));
    }
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, drop_parts, &d[t]), 0);
    for (int m = 0; m < MSGS; m++)
        tern_value_unref(msgs[m]);
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        free(d[t].parts);
    }
    for (int m = 0; m < MSGS; m++)
        cr_assert_eq(released[m], 1, "message %d's buffer released %d times", m, released[m]);
    msg_free(&op);
}

/* Every proper prefix of a message fails to decode; what was built before the failure is freed
 * (the sanitizer build's leak check) and the buffer released once. */
LTest(slab, a_failed_decode_frees_what_it_built)
{
    msg m = msg_of(make_op(40));
    for (size_t cut = 0; cut < m.len; cut += 1 + cut / 64) {
        int released = 0;
        tern_value *v = (tern_value *)&released;
        char err[256] = "";
        int rc =
            terni_decode_slab(m.enc, cut, NULL, count_release, &released, &v, err, sizeof(err));
        cr_assert_neq(rc, TERN_OK, "a %zu-byte prefix of %zu decoded", cut, m.len);
        cr_assert_null(v);
        cr_assert_eq(released, 1, "prefix %zu: released %d times", cut, released);
        cr_assert(strlen(err) > 0, "prefix %zu: no message", cut);
    }
    msg_free(&m);
}

static bool no_slab_parts(const tern_value *v)
{
    if (v->flags)
        return false;
    const tern_value *item;
    for (size_t i = 0; tern_list_get(v, i, &item) == TERN_OK; i++)
        if (!no_slab_parts(item))
            return false;
    for (size_t i = 0; tern_map_entry(v, i, NULL, &item) == TERN_OK; i++)
        if (!no_slab_parts(item))
            return false;
    return true;
}

/* What a client keeps of its events (a result's bytes, the holders' addresses) is copied out
 * of the reply's slab; a value with no slab memory is only referenced. */
LTest(slab, own_copies_a_part_out_of_its_slab)
{
    msg m = msg_of(make_op(50));
    int released = 0;
    tern_value *v = decode_slab(m.enc, m.len, &released);
    const tern_value *spec = at(get(v, "tasks"), 7);
    tern_value *own = terni_value_own(spec);
    tern_value *arr = terni_value_own(get(v, "value"));
    cr_assert_not_null(own);
    cr_assert_neq(own, spec, "a part in a slab was shared, not copied");
    cr_assert(no_slab_parts(own), "the copy still has slab memory");
    cr_assert(no_slab_parts(arr), "the array's copy still has slab memory");
    tern_value_unref(v);
    cr_assert(tern_value_equal(own, at(get(m.op, "tasks"), 7)));
    cr_assert(tern_value_equal(arr, get(m.op, "value")));
    tern_value *again = terni_value_own(own);
    cr_assert_eq(again, own, "a value without slab memory was copied");
    tern_value_unref(again);
    tern_value_unref(own);
    tern_value_unref(arr);
    cr_assert_eq(released, 1);
    msg_free(&m);
}
