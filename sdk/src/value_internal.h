/* Internal layout of tern_value, shared by value.c, codec.c and print.c. Not installed. */
#ifndef TERNI_VALUE_INTERNAL_H
#define TERNI_VALUE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tern/codec.h>
#include <tern/value.h>

#include "sdk/src/utf8.h" /* terni_utf8_valid */

/* Keeps a decode buffer alive while arrays borrow from it (see tern_decode_borrow). */
typedef struct terni_borrow {
    atomic_size_t refs;
    void (*release)(void *arg);
    void *arg;
} terni_borrow;

typedef struct terni_map_entry {
    char *key; /* NUL-terminated, owned */
    size_t key_len;
    tern_value *val;
} terni_map_entry;

/* tern_value.flags: where the value's memory came from (see terni_slab_begin). */
enum {
    TERNI_V_SLAB = 1,       /* the value itself lives in a slab */
    TERNI_V_SLAB_ITEMS = 2, /* its list items or map entries do */
};

struct tern_value {
    atomic_uint refs;
    uint8_t type;  /* tern_type */
    uint8_t flags; /* TERNI_V_* */
    union {
        bool b;
        int64_t i;
        double d;
        struct { /* text, bytes, keyref: bytes follow the struct, NUL-terminated */
            char *data;
            size_t len;
        } str;
        struct {
            tern_value **items;
            size_t len, cap;
        } list;
        struct { /* entries sorted by (key_len, key bytes): CBOR deterministic order */
            terni_map_entry *entries;
            size_t len, cap;
        } map;
        struct {
            void *data;           /* aligned for the element type */
            size_t n;             /* element count = product of shape */
            terni_borrow *borrow; /* non-NULL: data lives in a decode buffer */
            size_t *shape;        /* TERN_MAX_DIMS slots after the struct, ndim used */
            uint8_t ndim;
        } arr; /* the largest member: the shape lives outside, so that every value is small */
    } u;
};

/* Slabs: the values a decoder builds from one message, carved from a few large blocks
 * instead of one malloc each (see value.c). terni_slab_begin makes the calling thread's value
 * constructors allocate from a new slab, sized for a message of about msg_len bytes, until
 * terni_slab_end; NULL (and plain malloc) if out of memory. Each value still has its own
 * reference count and may outlive the rest: a slab's blocks are freed when its last value is.
 * So a slab suits a message whose values are dropped together; a part to keep for long goes
 * through terni_value_own (one kept value would keep its whole slab). */
typedef struct terni_slab terni_slab;
terni_slab *terni_slab_begin(size_t msg_len);
void terni_slab_end(terni_slab *slab);

/* v to keep for longer than the message it was decoded from: v itself (one more reference)
 * when no part of it is in a slab, else a copy made of plain allocations, sharing the parts
 * that are not. NULL if v is NULL or out of memory. */
__attribute__((visibility("default"))) tern_value *terni_value_own(const tern_value *v);

/* tern_decode_borrow into a slab (above). Exported for the runtime's own programs: the
 * scheduler decodes its requests so; not part of the SDK. */
__attribute__((visibility("default"))) int terni_decode_slab(const void *buf, size_t len,
                                                             const tern_decode_opts *opts,
                                                             void (*release)(void *arg), void *arg,
                                                             tern_value **out, char *errbuf,
                                                             size_t errlen);

/* Element size of an array type (8 for both kinds today). */
#define TERNI_ELEM_SIZE 8

/* Bytewise deterministic key order: shorter first, then memcmp. */
int terni_key_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* A new array value of `type` whose data points into a borrowed buffer (no copy). Takes one
 * reference on `borrow`. NULL if out of memory. Exported for the runtime's own programs
 * (sdk/src/transport/shm.c maps arrays from other processes); not part of the SDK. */
__attribute__((visibility("default"))) tern_value *terni_array_borrowed(tern_type type, size_t ndim,
                                                                        const size_t *shape,
                                                                        size_t n, void *data,
                                                                        terni_borrow *borrow);
/* True if the caller may change v in place: it holds v's only reference and, for an array,
 * the data is not borrowed (from a receive buffer or another process's memory). */
bool terni_value_writable(const tern_value *v);

/* A new array of `type` with uninitialised aligned data. */
tern_value *terni_array_alloc(tern_type type, size_t ndim, const size_t *shape, void **data);

/* Adds a new key to a map (the decoder's insert): O(1) when the key sorts after every existing
 * key, as in canonical input. Steals val. TERN_EINVAL if the key is already present. */
int terni_map_add_unique(tern_value *map, const char *key, size_t key_len, tern_value *val);

/* Makes room for n entries in a map (the decoder knows a map's size before its entries). */
int terni_map_reserve(tern_value *map, size_t n);

void terni_borrow_unref(terni_borrow *b);

/* Encodes v into buf, whose size `need` the caller got from tern_encoded_size(v): saves the
 * second sizing walk of tern_encode_into on hot paths (message framing). Exported for the
 * runtime's own programs; not part of the SDK. */
__attribute__((visibility("default"))) int terni_encode_sized(const tern_value *v, size_t need,
                                                              uint8_t *buf);

#endif
