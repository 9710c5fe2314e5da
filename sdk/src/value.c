/* Values: construction, reference counting, accessors, containers, equality.
 *
 * Design notes
 *  - One allocation per scalar and per text/bytes/keyref (the bytes follow the header).
 *    Arrays allocate their data separately, 64-byte aligned, so kernels get vector-friendly
 *    memory and a decoded array can point into a receive buffer instead (borrow).
 *  - Reference counts are atomic: a result may be read by a task thread while the worker's
 *    network thread sends it. Mutation is allowed only with a single reference (ESHARED
 *    otherwise), so shared values are effectively immutable and need no locks.
 *  - Maps keep entries sorted in CBOR deterministic key order; lookups are binary searches,
 *    encoding needs no sort, and decoding canonical input appends in O(1).
 *  - Functions that insert into a container steal the item's reference even on failure, so
 *    nested constructor expressions never leak and can be checked once.
 */
#include "sdk/src/value_internal.h"

#include "sdk/src/bigbuf.h"

#include <tern/codec.h> /* tern_value_is_borrowed is declared there */

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {
    [TERN_T_NULL] = "null",
    [TERN_T_BOOL] = "bool",
    [TERN_T_INT] = "int",
    [TERN_T_DOUBLE] = "double",
    [TERN_T_TEXT] = "text",
    [TERN_T_BYTES] = "bytes",
    [TERN_T_LIST] = "list",
    [TERN_T_MAP] = "map",
    [TERN_T_F64_ARRAY] = "f64 array",
    [TERN_T_I64_ARRAY] = "i64 array",
    [TERN_T_KEYREF] = "key reference",
};

const char *tern_type_name(tern_type type)
{
    if ((unsigned)type >= sizeof(type_names) / sizeof(type_names[0]))
        return "unknown type";
    return type_names[type];
}

/* ---- slabs ------------------------------------------------------------------------- */

/* A slab is a list of blocks, filled front to back by the one thread that decodes into it;
 * every object carved from it starts with a header naming the slab (and its size, for
 * AddressSanitizer's poisoning). `live` counts the objects not yet freed (see FILLING_BIAS
 * for while the slab is filled); whichever thread frees the last object frees the blocks. Objects
 * too large for a block come from malloc as usual. Measured on the scheduler's requests (a submit
 * op of 100,000 tasks decodes into about 700,000 values, freed together after it is handled):
 * see docs/performance.md, change 24. */
#define SLAB_BLOCK     (64u * 1024) /* below glibc's mmap threshold: blocks are reused */
#define SLAB_FIRST_MIN 512u         /* the first block: 8 bytes per message byte, within these */
#define SLAB_BIG       (SLAB_BLOCK / 8u) /* larger objects come from malloc */

typedef struct slab_block {
    struct slab_block *next;
    size_t size;
    max_align_t data[];
} slab_block;

struct terni_slab {
    atomic_size_t live; /* while filling: FILLING_BIAS minus the objects freed so far */
    slab_block *blocks; /* newest first */
    size_t used;        /* bytes used in blocks->data */
    size_t carved;      /* objects carved, counted by the filling thread without atomics */
};

/* live's start: larger than any number of objects, so that frees during filling (a decode
 * that fails half-way) never bring it to zero; terni_slab_end trades it for `carved`. */
#define FILLING_BIAS (SIZE_MAX / 2)

typedef struct slab_head {
    terni_slab *slab;
    size_t size; /* of the object after the header */
} slab_head;

static _Thread_local terni_slab *filling; /* the slab this thread's constructors carve from */

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SLAB_POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define SLAB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define SLAB_POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define SLAB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#endif
#endif
#ifndef SLAB_POISON
#define SLAB_POISON(p, n)   ((void)(p), (void)(n))
#define SLAB_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static bool slab_add_block(terni_slab *s, size_t size)
{
    slab_block *b = malloc(sizeof(*b) + size);
    if (!b)
        return false;
    b->next = s->blocks;
    b->size = size;
    SLAB_POISON(b->data, size);
    s->blocks = b;
    s->used = 0;
    return true;
}

terni_slab *terni_slab_begin(size_t msg_len)
{
    terni_slab *s = malloc(sizeof(*s));
    size_t first = msg_len < SLAB_BLOCK / 8 ? msg_len * 8 : SLAB_BLOCK;
    if (!s)
        return NULL;
    s->blocks = NULL;
    if (!slab_add_block(s, first < SLAB_FIRST_MIN ? SLAB_FIRST_MIN : first)) {
        free(s);
        return NULL;
    }
    s->carved = 0;
    atomic_init(&s->live, FILLING_BIAS);
    filling = s;
    return s;
}

/* Drops n from the count of live objects; the last one frees the blocks. */
static void slab_unref(terni_slab *s, size_t n)
{
    if (atomic_fetch_sub_explicit(&s->live, n, memory_order_acq_rel) != n)
        return;
    for (slab_block *b = s->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(s);
}

void terni_slab_end(terni_slab *slab)
{
    if (!slab)
        return;
    filling = NULL;
    slab_unref(slab, FILLING_BIAS - slab->carved); /* live becomes: carved minus freed */
}

/* size bytes from the filling slab (with *from_slab true), or from malloc. */
static void *obj_alloc(size_t size, bool *from_slab)
{
    terni_slab *s = filling;
    *from_slab = false;
    if (!s || size > SLAB_BIG)
        return malloc(size);
    size_t need = sizeof(slab_head) + ((size + 15) & ~(size_t)15);
    if (s->used + need > s->blocks->size && !slab_add_block(s, SLAB_BLOCK))
        return malloc(size);
    slab_head *h = (slab_head *)((char *)s->blocks->data + s->used);
    s->used += need;
    SLAB_UNPOISON(h, sizeof(*h) + size);
    h->slab = s;
    h->size = size;
    s->carved++;
    *from_slab = true;
    return h + 1;
}

static void obj_free(void *p, bool from_slab)
{
    if (!from_slab) {
        free(p);
        return;
    }
    slab_head *h = (slab_head *)p - 1;
    terni_slab *s = h->slab;
    SLAB_POISON(h, sizeof(*h) + h->size);
    slab_unref(s, 1);
}

/* ---- allocation and reference counting --------------------------------------------- */

static void entry_key_free(char *k); /* maps, below */

static tern_value *value_alloc(tern_type type, size_t extra)
{
    if (extra > SIZE_MAX - sizeof(tern_value))
        return NULL;
    bool from_slab;
    tern_value *v = obj_alloc(sizeof(tern_value) + extra, &from_slab);
    if (!v)
        return NULL;
    atomic_init(&v->refs, 1);
    v->type = (uint8_t)type;
    v->flags = from_slab ? TERNI_V_SLAB : 0;
    return v;
}

/* Frees the value's own memory (not its items, entries or data). */
static void value_free_shell(tern_value *v)
{
    obj_free(v, v->flags & TERNI_V_SLAB);
}

/* Frees a list's items or a map's entries array. */
static void items_free(tern_value *v, void *items)
{
    obj_free(items, v->flags & TERNI_V_SLAB_ITEMS);
}

/* Resizes a list's items or a map's entries array to `bytes` (old_bytes of it in use); an
 * array in a slab moves to malloc. NULL if out of memory (the old one is kept). */
static void *items_resize(tern_value *v, void *items, size_t old_bytes, size_t bytes)
{
    if (!(v->flags & TERNI_V_SLAB_ITEMS))
        return realloc(items, bytes);
    void *grown = malloc(bytes);
    if (!grown)
        return NULL;
    memcpy(grown, items, old_bytes);
    items_free(v, items);
    v->flags &= (uint8_t)~TERNI_V_SLAB_ITEMS;
    return grown;
}

tern_value *tern_value_ref(tern_value *v)
{
    if (v)
        atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    return v;
}

void terni_borrow_unref(terni_borrow *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        if (b->release)
            b->release(b->arg);
        free(b);
    }
}

void tern_value_unref(tern_value *v)
{
    if (!v || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
        return;
    switch ((tern_type)v->type) {
    case TERN_T_LIST:
        for (size_t i = 0; i < v->u.list.len; i++)
            tern_value_unref(v->u.list.items[i]);
        items_free(v, v->u.list.items);
        break;
    case TERN_T_MAP:
        for (size_t i = 0; i < v->u.map.len; i++) {
            entry_key_free(v->u.map.entries[i].key);
            tern_value_unref(v->u.map.entries[i].val);
        }
        items_free(v, v->u.map.entries);
        break;
    case TERN_T_F64_ARRAY:
    case TERN_T_I64_ARRAY:
        if (v->u.arr.borrow)
            terni_borrow_unref(v->u.arr.borrow);
        else if (terni_bigbuf_wants(v->u.arr.n * TERNI_ELEM_SIZE)) /* as terni_array_alloc */
            terni_bigbuf_free(v->u.arr.data, v->u.arr.n * TERNI_ELEM_SIZE);
        else
            free(v->u.arr.data);
        break;
    default:
        break;
    }
    value_free_shell(v);
}

static bool shared(const tern_value *v)
{
    return atomic_load_explicit(&v->refs, memory_order_acquire) > 1;
}

static bool is_array(const tern_value *v)
{
    return v && (v->type == TERN_T_F64_ARRAY || v->type == TERN_T_I64_ARRAY);
}

bool terni_value_writable(const tern_value *v)
{
    if (!v || shared(v))
        return false;
    if (!is_array(v))
        return true;
    /* a forsaken buffer may be mapped by a reader that can no longer say it is done (bigbuf.h) */
    return !v->u.arr.borrow && !(v->u.arr.n * TERNI_ELEM_SIZE >= TERNI_BIGBUF_MIN &&
                                 terni_bigbuf_forsaken(v->u.arr.data));
}

tern_type tern_value_type(const tern_value *v)
{
    return v ? (tern_type)v->type : TERN_T_NULL;
}

/* ---- scalars ----------------------------------------------------------------------- */

tern_value *tern_null(void)
{
    return value_alloc(TERN_T_NULL, 0);
}

tern_value *tern_bool(bool b)
{
    tern_value *v = value_alloc(TERN_T_BOOL, 0);
    if (v)
        v->u.b = b;
    return v;
}

tern_value *tern_int(int64_t i)
{
    tern_value *v = value_alloc(TERN_T_INT, 0);
    if (v)
        v->u.i = i;
    return v;
}

tern_value *tern_double(double d)
{
    tern_value *v = value_alloc(TERN_T_DOUBLE, 0);
    if (v)
        v->u.d = d;
    return v;
}

static tern_value *str_new(tern_type type, const void *data, size_t len)
{
    if (len == SIZE_MAX || (len && !data))
        return NULL;
    tern_value *v = value_alloc(type, len + 1);
    if (!v)
        return NULL;
    v->u.str.data = (char *)(v + 1);
    v->u.str.len = len;
    if (len)
        memcpy(v->u.str.data, data, len);
    v->u.str.data[len] = '\0';
    return v;
}

tern_value *tern_text_n(const char *s, size_t len)
{
    if ((len && !s) || !terni_utf8_valid(s, len))
        return NULL;
    return str_new(TERN_T_TEXT, s, len);
}

tern_value *tern_text(const char *s)
{
    return s ? tern_text_n(s, strlen(s)) : NULL;
}

tern_value *tern_bytes(const void *data, size_t len)
{
    return str_new(TERN_T_BYTES, data, len);
}

tern_value *tern_keyref(const char *key)
{
    if (!key || !*key || !terni_utf8_valid(key, strlen(key)))
        return NULL;
    return str_new(TERN_T_KEYREF, key, strlen(key));
}

#define CHECK_TYPE(v, t, out)                                                                      \
    do {                                                                                           \
        if (!(v) || !(out))                                                                        \
            return TERN_EINVAL;                                                                    \
        if ((v)->type != (t))                                                                      \
            return TERN_ETYPE;                                                                     \
    } while (0)

int tern_value_get_bool(const tern_value *v, bool *out)
{
    CHECK_TYPE(v, TERN_T_BOOL, out);
    *out = v->u.b;
    return TERN_OK;
}

int tern_value_get_int(const tern_value *v, int64_t *out)
{
    CHECK_TYPE(v, TERN_T_INT, out);
    *out = v->u.i;
    return TERN_OK;
}

int tern_value_get_double(const tern_value *v, double *out)
{
    CHECK_TYPE(v, TERN_T_DOUBLE, out);
    *out = v->u.d;
    return TERN_OK;
}

int tern_value_get_number(const tern_value *v, double *out)
{
    if (!v || !out)
        return TERN_EINVAL;
    if (v->type == TERN_T_INT) {
        *out = (double)v->u.i;
        return TERN_OK;
    }
    return tern_value_get_double(v, out);
}

int tern_value_get_text(const tern_value *v, const char **s, size_t *len)
{
    CHECK_TYPE(v, TERN_T_TEXT, s);
    *s = v->u.str.data;
    if (len)
        *len = v->u.str.len;
    return TERN_OK;
}

int tern_value_get_bytes(const tern_value *v, const void **data, size_t *len)
{
    CHECK_TYPE(v, TERN_T_BYTES, data);
    if (!len)
        return TERN_EINVAL;
    *data = v->u.str.data;
    *len = v->u.str.len;
    return TERN_OK;
}

int tern_value_get_keyref(const tern_value *v, const char **key)
{
    CHECK_TYPE(v, TERN_T_KEYREF, key);
    *key = v->u.str.data;
    return TERN_OK;
}

/* ---- lists ------------------------------------------------------------------------- */

tern_value *tern_list_new(size_t capacity)
{
    tern_value *v = value_alloc(TERN_T_LIST, 0);
    if (!v)
        return NULL;
    v->u.list.items = NULL;
    v->u.list.len = 0;
    v->u.list.cap = 0;
    if (capacity) {
        bool from_slab = false;
        if (capacity > SIZE_MAX / sizeof(tern_value *) ||
            !(v->u.list.items = obj_alloc(capacity * sizeof(tern_value *), &from_slab))) {
            value_free_shell(v);
            return NULL;
        }
        v->u.list.cap = capacity;
        if (from_slab)
            v->flags |= TERNI_V_SLAB_ITEMS;
    }
    return v;
}

tern_value *tern_list_from(tern_value *const *items, size_t n)
{
    tern_value *list = NULL;
    bool ok = items || n == 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = items[i] != NULL;
    if (ok)
        list = tern_list_new(n);
    if (!list) {
        for (size_t i = 0; items && i < n; i++)
            tern_value_unref(items[i]);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        list->u.list.items[i] = items[i];
    list->u.list.len = n;
    return list;
}

int tern_list_append(tern_value *list, tern_value *item)
{
    int rc = TERN_OK;
    if (!list || !item)
        rc = TERN_EINVAL;
    else if (list->type != TERN_T_LIST)
        rc = TERN_ETYPE;
    else if (shared(list) || item == list)
        rc = TERN_ESHARED;
    else if (list->u.list.len == list->u.list.cap) {
        size_t cap = list->u.list.cap ? list->u.list.cap * 2 : 4;
        tern_value **grown =
            cap <= SIZE_MAX / sizeof(*grown)
                ? items_resize(list, list->u.list.items, list->u.list.len * sizeof(*grown),
                               cap * sizeof(*grown))
                : NULL;
        if (!grown)
            rc = TERN_ENOMEM;
        else {
            list->u.list.items = grown;
            list->u.list.cap = cap;
        }
    }
    if (rc != TERN_OK) {
        tern_value_unref(item);
        return rc;
    }
    list->u.list.items[list->u.list.len++] = item;
    return TERN_OK;
}

size_t tern_list_len(const tern_value *list)
{
    return list && list->type == TERN_T_LIST ? list->u.list.len : 0;
}

int tern_list_get(const tern_value *list, size_t i, const tern_value **item)
{
    CHECK_TYPE(list, TERN_T_LIST, item);
    if (i >= list->u.list.len)
        return TERN_ERANGE;
    *item = list->u.list.items[i];
    return TERN_OK;
}

/* ---- maps -------------------------------------------------------------------------- */

tern_value *tern_map_new(void)
{
    tern_value *v = value_alloc(TERN_T_MAP, 0);
    if (v) {
        v->u.map.entries = NULL;
        v->u.map.len = 0;
        v->u.map.cap = 0;
    }
    return v;
}

int terni_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

/* Index of key, or of where it would go (with *found false). */
static size_t map_find(const tern_value *map, const char *key, size_t key_len, bool *found)
{
    size_t lo = 0, hi = map->u.map.len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const terni_map_entry *e = &map->u.map.entries[mid];
        int c = terni_key_cmp(e->key, e->key_len, key, key_len);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Map keys that the runtime's messages carry for every task. An entry with one of these keys
 * points into this pool instead of owning a copy: a malloc and a free fewer per entry (a task
 * crosses three processes as maps of about eight entries, several times). One array, so that
 * a key can be recognised as the pool's by its address. Most frequent first. */
#define POOL_KEY_MAX 16
static const char key_pool[][POOL_KEY_MAX] = {
    "op",       "key",     "fn",         "plugin",      "args",         "deps",   "run",
    "priority", "tasks",   "value",      "nbytes",      "group",        "gindex", "gsize",
    "retries",  "workers", "timeout_ms", "duration_us", "rss_bytes",    "values", "keys",
    "error",    "code",    "message",    "worker",      "who",          "task",   "root",
    "events",   "ops",     "id",         "name",        "result_bytes",
};

#define POOL_KEYS (sizeof(key_pool) / sizeof(key_pool[0]))

/* The pool's keys of each length, in the pool's order (index_pool): a lookup compares only
 * those, not all of them (decoding a 100,000-task op looks up about 600,000 keys). */
static uint8_t pool_by_len[POOL_KEY_MAX][POOL_KEYS];
static uint8_t pool_nby_len[POOL_KEY_MAX];

__attribute__((constructor)) static void index_pool(void)
{
    for (size_t i = 0; i < POOL_KEYS; i++) {
        size_t len = strlen(key_pool[i]);
        pool_by_len[len][pool_nby_len[len]++] = (uint8_t)i;
    }
}

static const char *pool_key(const char *key, size_t key_len)
{
    if (key_len >= POOL_KEY_MAX)
        return NULL;
    for (size_t k = 0; k < pool_nby_len[key_len]; k++) {
        const char *p = key_pool[pool_by_len[key_len][k]];
        if (!memcmp(p, key, key_len))
            return p;
    }
    return NULL;
}

static bool is_pool_key(const char *k)
{
    uintptr_t p = (uintptr_t)k, lo = (uintptr_t)key_pool;
    return p >= lo && p < lo + sizeof(key_pool);
}

static void entry_key_free(char *k)
{
    if (!is_pool_key(k))
        free(k);
}

int terni_map_reserve(tern_value *map, size_t n)
{
    if (!map || map->type != TERN_T_MAP)
        return TERN_EINVAL;
    if (n <= map->u.map.cap)
        return TERN_OK;
    if (n > SIZE_MAX / sizeof(terni_map_entry))
        return TERN_ENOMEM;
    terni_map_entry *grown;
    if (map->u.map.cap == 0) { /* the first array may come from the filling slab */
        bool from_slab;
        if ((grown = obj_alloc(n * sizeof(*grown), &from_slab)) && from_slab)
            map->flags |= TERNI_V_SLAB_ITEMS;
    } else {
        grown = items_resize(map, map->u.map.entries, map->u.map.len * sizeof(*grown),
                             n * sizeof(*grown));
    }
    if (!grown)
        return TERN_ENOMEM;
    map->u.map.entries = grown;
    map->u.map.cap = n;
    return TERN_OK;
}

/* Room for one more entry (doubling). */
static int map_grow(tern_value *map)
{
    if (map->u.map.len < map->u.map.cap)
        return TERN_OK;
    size_t cap = map->u.map.cap;
    return cap > SIZE_MAX / 2 ? TERN_ENOMEM : terni_map_reserve(map, cap ? cap * 2 : 4);
}

static int map_insert_at(tern_value *map, size_t at, const char *key, size_t key_len,
                         tern_value *val)
{
    char *k = (char *)pool_key(key, key_len);
    bool own = !k;
    if (own && key_len < SIZE_MAX && (k = malloc(key_len + 1))) {
        memcpy(k, key, key_len);
        k[key_len] = '\0';
    }
    if (!k || map_grow(map) != TERN_OK) {
        if (own)
            free(k);
        tern_value_unref(val);
        return TERN_ENOMEM;
    }
    terni_map_entry *e = map->u.map.entries;
    memmove(&e[at + 1], &e[at], (map->u.map.len - at) * sizeof(*e));
    e[at] = (terni_map_entry){ .key = k, .key_len = key_len, .val = val };
    map->u.map.len++;
    return TERN_OK;
}

int tern_map_set_n(tern_value *map, const char *key, size_t key_len, tern_value *val)
{
    int rc = TERN_OK;
    if (!map || !key || !val)
        rc = TERN_EINVAL;
    else if (map->type != TERN_T_MAP)
        rc = TERN_ETYPE;
    else if (shared(map) || val == map)
        rc = TERN_ESHARED;
    else if (!terni_utf8_valid(key, key_len))
        rc = TERN_EINVAL;
    if (rc != TERN_OK) {
        tern_value_unref(val);
        return rc;
    }
    bool found;
    size_t at = map_find(map, key, key_len, &found);
    if (found) {
        tern_value_unref(map->u.map.entries[at].val);
        map->u.map.entries[at].val = val;
        return TERN_OK;
    }
    return map_insert_at(map, at, key, key_len, val);
}

int tern_map_set(tern_value *map, const char *key, tern_value *val)
{
    if (!key) {
        tern_value_unref(val);
        return TERN_EINVAL;
    }
    return tern_map_set_n(map, key, strlen(key), val);
}

int terni_map_add_unique(tern_value *map, const char *key, size_t key_len, tern_value *val)
{
    size_t len = map->u.map.len;
    if (len == 0 || terni_key_cmp(map->u.map.entries[len - 1].key,
                                  map->u.map.entries[len - 1].key_len, key, key_len) < 0)
        return map_insert_at(map, len, key, key_len, val);
    bool found;
    size_t at = map_find(map, key, key_len, &found);
    if (found) {
        tern_value_unref(val);
        return TERN_EINVAL;
    }
    return map_insert_at(map, at, key, key_len, val);
}

int tern_map_get(const tern_value *map, const char *key, const tern_value **val)
{
    CHECK_TYPE(map, TERN_T_MAP, val);
    if (!key)
        return TERN_EINVAL;
    bool found;
    size_t at = map_find(map, key, strlen(key), &found);
    if (!found)
        return TERN_ENOTFOUND;
    *val = map->u.map.entries[at].val;
    return TERN_OK;
}

size_t tern_map_len(const tern_value *map)
{
    return map && map->type == TERN_T_MAP ? map->u.map.len : 0;
}

int tern_map_entry(const tern_value *map, size_t i, const char **key, const tern_value **val)
{
    if (!map)
        return TERN_EINVAL;
    if (map->type != TERN_T_MAP)
        return TERN_ETYPE;
    if (i >= map->u.map.len)
        return TERN_ERANGE;
    if (key)
        *key = map->u.map.entries[i].key;
    if (val)
        *val = map->u.map.entries[i].val;
    return TERN_OK;
}

/* ---- arrays ------------------------------------------------------------------------ */

/* Element count for a shape, or false on bad ndim or overflow of n * element size. */
static bool shape_count(size_t ndim, const size_t *shape, size_t *n)
{
    if (ndim < 1 || ndim > TERN_MAX_DIMS || !shape)
        return false;
    size_t count = 1;
    for (size_t d = 0; d < ndim; d++) {
        if (shape[d] && count > SIZE_MAX / TERNI_ELEM_SIZE / shape[d])
            return false;
        count *= shape[d];
    }
    *n = count;
    return true;
}

static tern_value *array_header(tern_type type, size_t ndim, const size_t *shape, size_t n)
{
    /* the shape follows, with room for every dimension: the decoder reshapes a 1-D array
     * in place when it meets a tag 40 around it */
    tern_value *v = value_alloc(type, TERN_MAX_DIMS * sizeof(size_t));
    if (!v)
        return NULL;
    v->u.arr.data = NULL;
    v->u.arr.n = n;
    v->u.arr.borrow = NULL;
    v->u.arr.ndim = (uint8_t)ndim;
    v->u.arr.shape = (size_t *)(v + 1);
    memset(v->u.arr.shape, 0, TERN_MAX_DIMS * sizeof(size_t));
    memcpy(v->u.arr.shape, shape, ndim * sizeof(size_t));
    return v;
}

tern_value *terni_array_alloc(tern_type type, size_t ndim, const size_t *shape, void **data)
{
    size_t n;
    if (!shape_count(ndim, shape, &n))
        return NULL;
    tern_value *v = array_header(type, ndim, shape, n);
    if (!v)
        return NULL;
    /* aligned_alloc needs a size that is a multiple of the alignment; large arrays come
     * page-aligned from bigbuf.c, which reuses freed ones */
    size_t bytes = n * TERNI_ELEM_SIZE;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes)
        v->u.arr.data = NULL;
    else if (terni_bigbuf_wants(bytes))
        v->u.arr.data = terni_bigbuf_alloc(bytes);
    else
        v->u.arr.data = aligned_alloc(64, rounded ? rounded : 64);
    if (!v->u.arr.data) {
        value_free_shell(v);
        return NULL;
    }
    *data = v->u.arr.data;
    return v;
}

tern_value *terni_array_borrowed(tern_type type, size_t ndim, const size_t *shape, size_t n,
                                 void *data, terni_borrow *borrow)
{
    tern_value *v = array_header(type, ndim, shape, n);
    if (!v)
        return NULL;
    v->u.arr.data = data;
    v->u.arr.borrow = borrow;
    atomic_fetch_add_explicit(&borrow->refs, 1, memory_order_relaxed);
    return v;
}

static tern_value *array_copy(tern_type type, size_t ndim, const size_t *shape, const void *src)
{
    void *data;
    tern_value *v = terni_array_alloc(type, ndim, shape, &data);
    if (!v)
        return NULL;
    size_t bytes = v->u.arr.n * TERNI_ELEM_SIZE;
    if (src)
        memcpy(data, src, bytes);
    else
        memset(data, 0, bytes);
    return v;
}

tern_value *tern_f64_array(const double *data, size_t n)
{
    return array_copy(TERN_T_F64_ARRAY, 1, &n, data);
}

tern_value *tern_i64_array(const int64_t *data, size_t n)
{
    return array_copy(TERN_T_I64_ARRAY, 1, &n, data);
}

tern_value *tern_f64_array_shaped(size_t ndim, const size_t *shape, const double *data)
{
    return array_copy(TERN_T_F64_ARRAY, ndim, shape, data);
}

tern_value *tern_i64_array_shaped(size_t ndim, const size_t *shape, const int64_t *data)
{
    return array_copy(TERN_T_I64_ARRAY, ndim, shape, data);
}

tern_value *tern_f64_array_new(size_t n, double **data)
{
    return data ? terni_array_alloc(TERN_T_F64_ARRAY, 1, &n, (void **)data) : NULL;
}

tern_value *tern_i64_array_new(size_t n, int64_t **data)
{
    return data ? terni_array_alloc(TERN_T_I64_ARRAY, 1, &n, (void **)data) : NULL;
}

tern_value *tern_f64_array_new_shaped(size_t ndim, const size_t *shape, double **data)
{
    return data ? terni_array_alloc(TERN_T_F64_ARRAY, ndim, shape, (void **)data) : NULL;
}

tern_value *tern_i64_array_new_shaped(size_t ndim, const size_t *shape, int64_t **data)
{
    return data ? terni_array_alloc(TERN_T_I64_ARRAY, ndim, shape, (void **)data) : NULL;
}

int tern_value_get_f64_array(const tern_value *v, const double **data, size_t *n)
{
    CHECK_TYPE(v, TERN_T_F64_ARRAY, data);
    if (!n)
        return TERN_EINVAL;
    *data = v->u.arr.data;
    *n = v->u.arr.n;
    return TERN_OK;
}

int tern_value_get_i64_array(const tern_value *v, const int64_t **data, size_t *n)
{
    CHECK_TYPE(v, TERN_T_I64_ARRAY, data);
    if (!n)
        return TERN_EINVAL;
    *data = v->u.arr.data;
    *n = v->u.arr.n;
    return TERN_OK;
}

int tern_value_f64_data_mut(tern_value *v, double **data, size_t *n)
{
    CHECK_TYPE(v, TERN_T_F64_ARRAY, data);
    if (!n)
        return TERN_EINVAL;
    if (!terni_value_writable(v))
        return TERN_ESHARED;
    *data = v->u.arr.data;
    *n = v->u.arr.n;
    return TERN_OK;
}

int tern_array_shape(const tern_value *v, size_t *ndim, const size_t **shape)
{
    if (!v || !ndim || !shape)
        return TERN_EINVAL;
    if (!is_array(v))
        return TERN_ETYPE;
    *ndim = v->u.arr.ndim;
    *shape = v->u.arr.shape;
    return TERN_OK;
}

size_t tern_array_len(const tern_value *v)
{
    return is_array(v) ? v->u.arr.n : 0;
}

bool tern_value_is_borrowed(const tern_value *v)
{
    return is_array(v) && v->u.arr.borrow != NULL;
}

/* ---- equality ---------------------------------------------------------------------- */

static bool equal_depth(const tern_value *a, const tern_value *b, int depth)
{
    if (a == b)
        return true;
    if (!a || !b || a->type != b->type || depth > TERN_MAX_DEPTH)
        return false;
    switch ((tern_type)a->type) {
    case TERN_T_NULL:
        return true;
    case TERN_T_BOOL:
        return a->u.b == b->u.b;
    case TERN_T_INT:
        return a->u.i == b->u.i;
    case TERN_T_DOUBLE:
        return memcmp(&a->u.d, &b->u.d, sizeof(double)) == 0 || (isnan(a->u.d) && isnan(b->u.d));
    case TERN_T_TEXT:
    case TERN_T_BYTES:
    case TERN_T_KEYREF:
        return a->u.str.len == b->u.str.len &&
               memcmp(a->u.str.data, b->u.str.data, a->u.str.len) == 0;
    case TERN_T_LIST:
        if (a->u.list.len != b->u.list.len)
            return false;
        for (size_t i = 0; i < a->u.list.len; i++)
            if (!equal_depth(a->u.list.items[i], b->u.list.items[i], depth + 1))
                return false;
        return true;
    case TERN_T_MAP:
        if (a->u.map.len != b->u.map.len)
            return false;
        for (size_t i = 0; i < a->u.map.len; i++) {
            const terni_map_entry *x = &a->u.map.entries[i], *y = &b->u.map.entries[i];
            if (terni_key_cmp(x->key, x->key_len, y->key, y->key_len) != 0 ||
                !equal_depth(x->val, y->val, depth + 1))
                return false;
        }
        return true;
    case TERN_T_F64_ARRAY:
    case TERN_T_I64_ARRAY:
        if (a->u.arr.ndim != b->u.arr.ndim ||
            memcmp(a->u.arr.shape, b->u.arr.shape, a->u.arr.ndim * sizeof(size_t)) != 0)
            return false;
        return a->u.arr.n == 0 ||
               memcmp(a->u.arr.data, b->u.arr.data, a->u.arr.n * TERNI_ELEM_SIZE) == 0;
    }
    return false;
}

bool tern_value_equal(const tern_value *a, const tern_value *b)
{
    return equal_depth(a, b, 0);
}

/* ---- leaving a slab ----------------------------------------------------------------- */

static bool has_slab_parts(const tern_value *v)
{
    if (v->flags)
        return true;
    if (v->type == TERN_T_LIST) {
        for (size_t i = 0; i < v->u.list.len; i++)
            if (has_slab_parts(v->u.list.items[i]))
                return true;
    } else if (v->type == TERN_T_MAP) {
        for (size_t i = 0; i < v->u.map.len; i++)
            if (has_slab_parts(v->u.map.entries[i].val))
                return true;
    }
    return false;
}

/* A copy of v, which has parts in a slab, made of plain allocations; parts without slab
 * memory are shared (referenced), not copied. */
static tern_value *copy_out(const tern_value *v)
{
    if (!has_slab_parts(v))
        return tern_value_ref((tern_value *)v);
    switch ((tern_type)v->type) {
    case TERN_T_NULL:
        return tern_null();
    case TERN_T_BOOL:
        return tern_bool(v->u.b);
    case TERN_T_INT:
        return tern_int(v->u.i);
    case TERN_T_DOUBLE:
        return tern_double(v->u.d);
    case TERN_T_TEXT:
    case TERN_T_BYTES:
    case TERN_T_KEYREF:
        return str_new((tern_type)v->type, v->u.str.data, v->u.str.len);
    case TERN_T_LIST: {
        tern_value *l = tern_list_new(v->u.list.len);
        for (size_t i = 0; l && i < v->u.list.len; i++) {
            tern_value *item = copy_out(v->u.list.items[i]);
            if (!item || tern_list_append(l, item) != TERN_OK) {
                tern_value_unref(l);
                l = NULL;
            }
        }
        return l;
    }
    case TERN_T_MAP: {
        tern_value *m = tern_map_new();
        if (m && terni_map_reserve(m, v->u.map.len) != TERN_OK) {
            tern_value_unref(m);
            m = NULL;
        }
        for (size_t i = 0; m && i < v->u.map.len; i++) {
            const terni_map_entry *e = &v->u.map.entries[i];
            tern_value *val = copy_out(e->val);
            if (!val || terni_map_add_unique(m, e->key, e->key_len, val) != TERN_OK) {
                tern_value_unref(m);
                m = NULL;
            }
        }
        return m;
    }
    case TERN_T_F64_ARRAY:
    case TERN_T_I64_ARRAY:
        if (v->u.arr.borrow) /* a new header borrowing the same data */
            return terni_array_borrowed((tern_type)v->type, v->u.arr.ndim, v->u.arr.shape,
                                        v->u.arr.n, v->u.arr.data, v->u.arr.borrow);
        return array_copy((tern_type)v->type, v->u.arr.ndim, v->u.arr.shape, v->u.arr.data);
    }
    return NULL;
}

tern_value *terni_value_own(const tern_value *v)
{
    if (!v)
        return NULL;
    terni_slab *was = filling; /* never into a slab being filled on this thread */
    filling = NULL;
    tern_value *out = copy_out(v);
    filling = was;
    return out;
}
