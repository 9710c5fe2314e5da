/* CBOR codec for tern values.
 *
 * Design notes
 *  Encoding is two passes over the value: encoded_size() computes the exact length, then
 *  encode() writes heads with libcbor's low-level encoders (which always pick the shortest
 *  head) and copies string and array payloads with one memcpy each. No item tree is built;
 *  a 1M-element array costs one memcpy. Maps are already in deterministic key order (see
 *  value.c), so the output is canonical without sorting.
 *
 *  Decoding drives cbor_stream_decode() one head at a time over the input. libcbor hands
 *  string payloads as pointers into the input (zero copy) and checks every length against
 *  the bytes that remain, so nothing is read out of bounds. We keep our own stack of open
 *  containers (frames) and a pending tag:
 *    F_LIST / F_MAP    an open list or map and how many items it still expects
 *    F_ND              tag 40 seen; its nd_state walks [dims..., typed array]:
 *                      ND_EXPECT_DIMS -> ND_IN_DIMS (unsigned ints) -> ND_EXPECT_DATA
 *  A completed value is handed to the top frame by emit(). Tags 86/79 are resolved in the
 *  byte-string callback (so an aligned payload can be borrowed, not copied) and the key-ref
 *  tag in the text callback; any other use of a pending tag is an error.
 *  Claimed lengths never drive allocation beyond what the remaining input can hold: a list
 *  claiming more items than bytes remain is rejected, and at most LIST_PREALLOC items are
 *  preallocated (nested lists each claiming every remaining byte would otherwise reserve
 *  8 bytes per input byte at every level, 512 x len at depth 64); longer lists grow as
 *  their items arrive.
 */
#include <tern/codec.h>

#include "sdk/src/value_internal.h"

#include <cbor.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tern's typed arrays are little-endian; big-endian hosts need byte swapping here"
#endif

/* ---- encoding ---------------------------------------------------------------------- */

static size_t head_size(uint64_t n)
{
    return n < 24 ? 1 : n <= 0xFF ? 2 : n <= 0xFFFF ? 3 : n <= 0xFFFFFFFFu ? 5 : 9;
}

static double half_to_double(uint16_t h)
{
    int exp = (h >> 10) & 0x1F;
    int mant = h & 0x3FF;
    double v;
    if (exp == 0)
        v = ldexp(mant, -24);
    else if (exp != 31)
        v = ldexp(mant + 1024, exp - 25);
    else
        v = mant == 0 ? INFINITY : NAN;
    return (h & 0x8000) ? -v : v;
}

/* Width (2, 4 or 8 bytes) of the shortest float that holds d exactly; *half gets the bits
 * when the answer is 2. All NaNs become the canonical half NaN 0x7e00. */
static int float_width(double d, uint16_t *half)
{
    if (isnan(d)) {
        *half = 0x7E00;
        return 2;
    }
    if ((double)(float)d != d)
        return 8;
    double a = fabs(d);
    uint16_t sign = signbit(d) ? 0x8000 : 0;
    uint16_t h;
    if (isinf(d)) {
        h = sign | 0x7C00;
    } else if (a == 0) {
        h = sign;
    } else {
        int e;
        double m = frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
        int biased = e + 14;
        double f;
        if (biased >= 31)
            return 4;
        if (biased >= 1)
            f = (m * 2 - 1) * 1024;
        else
            f = ldexp(a, 24), biased = 0;
        if (f != floor(f) || f >= 1024)
            return 4;
        h = sign | (uint16_t)(biased << 10) | (uint16_t)f;
    }
    if (half_to_double(h) != d)
        return 4;
    *half = h;
    return 2;
}

static size_t array_payload_head(const tern_value *v)
{
    size_t bytes = v->u.arr.n * TERNI_ELEM_SIZE;
    size_t s = head_size(v->type == TERN_T_F64_ARRAY ? TERN_CBOR_TAG_F64LE : TERN_CBOR_TAG_I64LE) +
               head_size(bytes);
    if (v->u.arr.ndim != 1) {
        s += head_size(TERN_CBOR_TAG_NDARRAY) + 1 /* [dims, data] */ + head_size(v->u.arr.ndim);
        for (size_t d = 0; d < v->u.arr.ndim; d++)
            s += head_size(v->u.arr.shape[d]);
    }
    return s;
}

static size_t encoded_size(const tern_value *v, int depth)
{
    if (depth > TERN_MAX_DEPTH)
        return 0;
    switch ((tern_type)v->type) {
    case TERN_T_NULL:
    case TERN_T_BOOL:
        return 1;
    case TERN_T_INT:
        return head_size(v->u.i >= 0 ? (uint64_t)v->u.i : (uint64_t)(-1 - v->u.i));
    case TERN_T_DOUBLE: {
        uint16_t h;
        return 1 + (size_t)float_width(v->u.d, &h);
    }
    case TERN_T_TEXT:
    case TERN_T_BYTES:
        return head_size(v->u.str.len) + v->u.str.len;
    case TERN_T_KEYREF:
        return head_size(TERN_CBOR_TAG_KEYREF) + head_size(v->u.str.len) + v->u.str.len;
    case TERN_T_LIST: {
        size_t s = head_size(v->u.list.len);
        for (size_t i = 0; i < v->u.list.len; i++) {
            size_t item = encoded_size(v->u.list.items[i], depth + 1);
            if (!item)
                return 0;
            s += item;
        }
        return s;
    }
    case TERN_T_MAP: {
        size_t s = head_size(v->u.map.len);
        for (size_t i = 0; i < v->u.map.len; i++) {
            const terni_map_entry *e = &v->u.map.entries[i];
            size_t item = encoded_size(e->val, depth + 1);
            if (!item)
                return 0;
            s += head_size(e->key_len) + e->key_len + item;
        }
        return s;
    }
    case TERN_T_F64_ARRAY:
    case TERN_T_I64_ARRAY:
        if (v->u.arr.ndim != 1 && depth + 1 > TERN_MAX_DEPTH)
            return 0;
        return array_payload_head(v) + v->u.arr.n * TERNI_ELEM_SIZE;
    }
    return 0;
}

size_t tern_encoded_size(const tern_value *v)
{
    return v ? encoded_size(v, 0) : 0;
}

typedef struct writer {
    uint8_t *p, *end;
} writer;

/* Each put_* returns false when the buffer is too small. */
static bool put(writer *w, size_t written)
{
    if (!written)
        return false;
    w->p += written;
    return true;
}

static bool put_bytes(writer *w, const void *data, size_t len)
{
    if ((size_t)(w->end - w->p) < len)
        return false;
    if (len)
        memcpy(w->p, data, len);
    w->p += len;
    return true;
}

static bool put_text(writer *w, const char *s, size_t len)
{
    return put(w, cbor_encode_string_start(len, w->p, (size_t)(w->end - w->p))) &&
           put_bytes(w, s, len);
}

static bool put_double(writer *w, double d)
{
    uint16_t h;
    size_t room = (size_t)(w->end - w->p);
    switch (float_width(d, &h)) {
    case 2: {
        uint8_t b[3] = { 0xF9, (uint8_t)(h >> 8), (uint8_t)h };
        return put_bytes(w, b, 3);
    }
    case 4:
        return put(w, cbor_encode_single((float)d, w->p, room));
    default:
        return put(w, cbor_encode_double(d, w->p, room));
    }
}

static bool put_array(writer *w, const tern_value *v)
{
    size_t room;
#define ROOM (room = (size_t)(w->end - w->p))
    if (v->u.arr.ndim != 1) {
        if (!put(w, cbor_encode_tag(TERN_CBOR_TAG_NDARRAY, w->p, ROOM)) ||
            !put(w, cbor_encode_array_start(2, w->p, ROOM)) ||
            !put(w, cbor_encode_array_start(v->u.arr.ndim, w->p, ROOM)))
            return false;
        for (size_t d = 0; d < v->u.arr.ndim; d++)
            if (!put(w, cbor_encode_uint(v->u.arr.shape[d], w->p, ROOM)))
                return false;
    }
    uint64_t tag = v->type == TERN_T_F64_ARRAY ? TERN_CBOR_TAG_F64LE : TERN_CBOR_TAG_I64LE;
    size_t bytes = v->u.arr.n * TERNI_ELEM_SIZE;
    return put(w, cbor_encode_tag(tag, w->p, ROOM)) &&
           put(w, cbor_encode_bytestring_start(bytes, w->p, ROOM)) &&
           put_bytes(w, v->u.arr.data, bytes);
#undef ROOM
}

static bool encode(writer *w, const tern_value *v)
{
    size_t room = (size_t)(w->end - w->p);
    switch ((tern_type)v->type) {
    case TERN_T_NULL:
        return put(w, cbor_encode_null(w->p, room));
    case TERN_T_BOOL:
        return put(w, cbor_encode_bool(v->u.b, w->p, room));
    case TERN_T_INT:
        if (v->u.i >= 0)
            return put(w, cbor_encode_uint((uint64_t)v->u.i, w->p, room));
        return put(w, cbor_encode_negint((uint64_t)(-1 - v->u.i), w->p, room));
    case TERN_T_DOUBLE:
        return put_double(w, v->u.d);
    case TERN_T_TEXT:
        return put_text(w, v->u.str.data, v->u.str.len);
    case TERN_T_BYTES:
        return put(w, cbor_encode_bytestring_start(v->u.str.len, w->p, room)) &&
               put_bytes(w, v->u.str.data, v->u.str.len);
    case TERN_T_KEYREF:
        return put(w, cbor_encode_tag(TERN_CBOR_TAG_KEYREF, w->p, room)) &&
               put_text(w, v->u.str.data, v->u.str.len);
    case TERN_T_LIST:
        if (!put(w, cbor_encode_array_start(v->u.list.len, w->p, room)))
            return false;
        for (size_t i = 0; i < v->u.list.len; i++)
            if (!encode(w, v->u.list.items[i]))
                return false;
        return true;
    case TERN_T_MAP:
        if (!put(w, cbor_encode_map_start(v->u.map.len, w->p, room)))
            return false;
        for (size_t i = 0; i < v->u.map.len; i++) {
            const terni_map_entry *e = &v->u.map.entries[i];
            if (!put_text(w, e->key, e->key_len) || !encode(w, e->val))
                return false;
        }
        return true;
    case TERN_T_F64_ARRAY:
    case TERN_T_I64_ARRAY:
        return put_array(w, v);
    }
    return false;
}

int terni_encode_sized(const tern_value *v, size_t need, uint8_t *buf)
{
    writer w = { buf, buf + need };
    return encode(&w, v) && w.p == buf + need ? TERN_OK : TERN_ETOOBIG;
}

int tern_encode_into(const tern_value *v, uint8_t *buf, size_t cap, size_t *written)
{
    if (!v || !buf || !written)
        return TERN_EINVAL;
    size_t need = encoded_size(v, 0);
    if (!need)
        return TERN_ETOODEEP;
    if (need > cap)
        return TERN_ETOOBIG;
    writer w = { buf, buf + need };
    if (!encode(&w, v) || w.p != buf + need)
        return TERN_ETOOBIG; /* unreachable unless size and encode disagree */
    *written = need;
    return TERN_OK;
}

int tern_encode(const tern_value *v, uint8_t **buf, size_t *len)
{
    if (!buf || !len)
        return TERN_EINVAL;
    *buf = NULL;
    if (!v)
        return TERN_EINVAL;
    size_t need = encoded_size(v, 0);
    if (!need)
        return TERN_ETOODEEP;
    uint8_t *out = malloc(need);
    if (!out)
        return TERN_ENOMEM;
    int rc = tern_encode_into(v, out, need, len);
    if (rc != TERN_OK) {
        free(out);
        return rc;
    }
    *buf = out;
    return TERN_OK;
}

/* ---- decoding ---------------------------------------------------------------------- */

/* Most list items preallocated on a list head (see the note at the top). */
#define LIST_PREALLOC 512

enum frame_kind { F_LIST, F_MAP, F_ND };
enum nd_state { ND_EXPECT_DIMS, ND_IN_DIMS, ND_EXPECT_DATA };

typedef struct frame {
    uint8_t kind;
    tern_value *val;  /* F_LIST, F_MAP: the container being filled */
    size_t remaining; /* items still expected (a map counts keys and values) */
    const char *key;  /* F_MAP: pending key, pointing into the input */
    size_t key_len;
    uint8_t nd_state; /* F_ND: enum nd_state */
    size_t ndim;      /* F_ND: dims read so far */
    size_t shape[TERN_MAX_DIMS];
} frame;

typedef struct decoder {
    const uint8_t *buf;
    size_t len, pos; /* pos: offset of the head being decoded */
    frame stack[TERN_MAX_DEPTH + 1];
    size_t depth, max_depth;
    size_t items, max_items; /* items decoded so far, and the cap */
    bool has_tag;
    uint64_t tag;
    tern_value *result;
    terni_borrow *borrow; /* NULL: copy arrays */
    int err;
    char *errbuf;
    size_t errlen;
} decoder;

static void fail(decoder *d, int code, const char *fmt, ...) TERN_PRINTF(3, 4);
static void fail(decoder *d, int code, const char *fmt, ...)
{
    if (d->err)
        return;
    d->err = code;
    if (d->errbuf && d->errlen) {
        int n = snprintf(d->errbuf, d->errlen, "byte %zu: ", d->pos);
        if (n >= 0 && (size_t)n < d->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(d->errbuf + n, d->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
}

static frame *top(decoder *d)
{
    return d->depth ? &d->stack[d->depth - 1] : NULL;
}

/* Rejects a pending tag for an item that cannot carry it. */
static bool no_tag(decoder *d, const char *what)
{
    if (!d->has_tag)
        return true;
    fail(d,
         d->tag == TERN_CBOR_TAG_F64LE || d->tag == TERN_CBOR_TAG_I64LE ||
                 d->tag == TERN_CBOR_TAG_NDARRAY || d->tag == TERN_CBOR_TAG_KEYREF
             ? TERN_EMALFORMED
             : TERN_EUNSUPPORTED,
         "tag %llu cannot wrap %s", (unsigned long long)d->tag, what);
    return false;
}

/* A map expecting a key accepts only text. */
static bool not_key(decoder *d, const char *what)
{
    frame *f = top(d);
    if (f && f->kind == F_MAP && !f->key) {
        fail(d, TERN_EMALFORMED, "map key is %s; tern map keys must be text", what);
        return false;
    }
    if (f && f->kind == F_ND && f->nd_state != ND_EXPECT_DATA) {
        fail(d, TERN_EMALFORMED, "tag 40 %s is %s; it must be a list of unsigned integers",
             f->nd_state == ND_IN_DIMS ? "dimension" : "first element", what);
        return false;
    }
    return true;
}

static void emit(decoder *d, tern_value *v);

/* Completes frames whose item count reached zero. */
static void close_frames(decoder *d)
{
    while (!d->err && d->depth) {
        frame *f = top(d);
        if (f->remaining || f->kind == F_ND) /* F_ND ends when its typed array arrives */
            return;
        tern_value *v = f->val;
        d->depth--;
        emit(d, v);
    }
}

static void emit(decoder *d, tern_value *v)
{
    if (!v) {
        tern_value_unref(v);
        fail(d, TERN_ENOMEM, "out of memory");
        return;
    }
    if (d->err) {
        tern_value_unref(v);
        return;
    }
    frame *f = top(d);
    if (!f) {
        d->result = v;
        return;
    }
    switch (f->kind) {
    case F_LIST: {
        int rc = tern_list_append(f->val, v);
        if (rc)
            fail(d, rc, "cannot add list item: %s", tern_strerror(rc));
        break;
    }
    case F_MAP: {
        int rc = terni_map_add_unique(f->val, f->key, f->key_len, v);
        if (rc == TERN_EINVAL)
            fail(d, TERN_EMALFORMED, "duplicate map key \"%.*s\"",
                 (int)(f->key_len > 64 ? 64 : f->key_len), f->key);
        else if (rc)
            fail(d, rc, "cannot add map entry: %s", tern_strerror(rc));
        f->key = NULL;
        break;
    }
    case F_ND: {
        /* The second element of tag 40: must be the typed array, with a matching count. */
        if (f->nd_state != ND_EXPECT_DATA) {
            tern_value_unref(v);
            fail(d, TERN_EMALFORMED, "tag 40 must start with its list of dimensions");
            return;
        }
        size_t n = 1;
        for (size_t i = 0; i < f->ndim; i++)
            n *= f->shape[i]; /* cannot overflow: checked as dims arrived */
        if ((v->type != TERN_T_F64_ARRAY && v->type != TERN_T_I64_ARRAY) || v->u.arr.ndim != 1) {
            fail(d, TERN_EUNSUPPORTED,
                 "tag 40 elements must be a typed array (tag 86 or 79), not %s",
                 tern_type_name((tern_type)v->type));
        } else if (v->u.arr.n != n) {
            fail(d, TERN_EMALFORMED, "tag 40 shape holds %zu elements but the data has %zu", n,
                 v->u.arr.n);
        } else {
            v->u.arr.ndim = (uint8_t)f->ndim;
            memcpy(v->u.arr.shape, f->shape, sizeof(f->shape));
            d->depth--;
            emit(d, v);
            return;
        }
        tern_value_unref(v);
        return;
    }
    default:
        tern_value_unref(v);
        fail(d, TERN_EMALFORMED, "unexpected item");
        return;
    }
    f->remaining--;
    close_frames(d);
}

static frame *push(decoder *d, uint8_t kind, size_t remaining)
{
    if (d->depth >= d->max_depth) {
        fail(d, TERN_ETOODEEP, "nesting deeper than %zu levels", d->max_depth);
        return NULL;
    }
    frame *f = &d->stack[d->depth++];
    memset(f, 0, sizeof(*f));
    f->kind = kind;
    f->remaining = remaining;
    return f;
}

static void on_uint(decoder *d, uint64_t x)
{
    frame *f = top(d);
    if (d->err || !no_tag(d, "an integer"))
        return;
    if (f && f->kind == F_ND && f->nd_state == ND_IN_DIMS) {
        size_t n = 1;
        for (size_t i = 0; i < f->ndim; i++)
            n *= f->shape[i];
        if (x > SIZE_MAX || (x && n > SIZE_MAX / TERNI_ELEM_SIZE / x)) {
            fail(d, TERN_ETOOBIG, "tag 40 dimension %llu makes the array too large",
                 (unsigned long long)x);
            return;
        }
        f->shape[f->ndim++] = (size_t)x;
        if (--f->remaining == 0)
            f->nd_state = ND_EXPECT_DATA;
        return;
    }
    if (!not_key(d, "an integer"))
        return;
    if (x > INT64_MAX) {
        fail(d, TERN_ERANGE, "integer %llu does not fit int64", (unsigned long long)x);
        return;
    }
    emit(d, tern_int((int64_t)x));
}

static void on_negint(decoder *d, uint64_t x)
{
    if (d->err || !no_tag(d, "an integer") || !not_key(d, "an integer"))
        return;
    if (x > INT64_MAX) {
        fail(d, TERN_ERANGE, "integer -1-%llu does not fit int64", (unsigned long long)x);
        return;
    }
    emit(d, tern_int(-1 - (int64_t)x));
}

static void cb_uint8(void *c, uint8_t x)
{
    on_uint(c, x);
}
static void cb_uint16(void *c, uint16_t x)
{
    on_uint(c, x);
}
static void cb_uint32(void *c, uint32_t x)
{
    on_uint(c, x);
}
static void cb_uint64(void *c, uint64_t x)
{
    on_uint(c, x);
}
static void cb_negint8(void *c, uint8_t x)
{
    on_negint(c, x);
}
static void cb_negint16(void *c, uint16_t x)
{
    on_negint(c, x);
}
static void cb_negint32(void *c, uint32_t x)
{
    on_negint(c, x);
}
static void cb_negint64(void *c, uint64_t x)
{
    on_negint(c, x);
}

static void cb_bytes(void *c, cbor_data data, size_t len)
{
    decoder *d = c;
    if (d->err || !not_key(d, "a byte string"))
        return;
    if (!d->has_tag) {
        emit(d, tern_bytes(data, len));
        return;
    }
    if (d->tag != TERN_CBOR_TAG_F64LE && d->tag != TERN_CBOR_TAG_I64LE) {
        no_tag(d, "a byte string");
        return;
    }
    tern_type type = d->tag == TERN_CBOR_TAG_F64LE ? TERN_T_F64_ARRAY : TERN_T_I64_ARRAY;
    d->has_tag = false;
    if (len % TERNI_ELEM_SIZE) {
        fail(d, TERN_EMALFORMED,
             "typed array of %zu bytes is not a whole number of 8-byte elements", len);
        return;
    }
    size_t n = len / TERNI_ELEM_SIZE;
    if (d->borrow && ((uintptr_t)data % TERNI_ELEM_SIZE) == 0) {
        emit(d, terni_array_borrowed(type, 1, &n, n, (void *)data, d->borrow));
        return;
    }
    void *copy;
    tern_value *v = terni_array_alloc(type, 1, &n, &copy);
    if (v && len)
        memcpy(copy, data, len);
    emit(d, v);
}

static void cb_text(void *c, cbor_data data, size_t len)
{
    decoder *d = c;
    if (d->err)
        return;
    const char *s = (const char *)data;
    if (!terni_utf8_valid(s, len)) {
        fail(d, TERN_EMALFORMED, "text string is not valid UTF-8");
        return;
    }
    frame *f = top(d);
    if (f && f->kind == F_MAP && !f->key) {
        if (!no_tag(d, "a map key"))
            return;
        f->key = s;
        f->key_len = len;
        f->remaining--;
        return;
    }
    if (!not_key(d, "text"))
        return;
    if (d->has_tag && d->tag == TERN_CBOR_TAG_KEYREF) {
        d->has_tag = false;
        if (len == 0 || memchr(s, 0, len)) {
            fail(d, TERN_EMALFORMED, "key reference must be non-empty text without NUL");
            return;
        }
        tern_value *v = tern_text_n(s, len);
        if (v)
            v->type = TERN_T_KEYREF; /* same layout as text */
        emit(d, v);
        return;
    }
    if (!no_tag(d, "text"))
        return;
    emit(d, tern_text_n(s, len));
}

static void cb_array_start(void *c, size_t size)
{
    decoder *d = c;
    if (d->err)
        return;
    frame *f = top(d);
    if (f && f->kind == F_ND && f->nd_state == ND_EXPECT_DIMS && !d->has_tag) {
        if (size < 1 || size > TERN_MAX_DIMS) {
            fail(d, size ? TERN_ETOOBIG : TERN_EMALFORMED,
                 "tag 40 array has %zu dimensions; tern accepts 1 to %d", size, TERN_MAX_DIMS);
            return;
        }
        f->nd_state = ND_IN_DIMS;
        f->remaining = size;
        return;
    }
    if (!not_key(d, "a list"))
        return;
    if (d->has_tag && d->tag == TERN_CBOR_TAG_NDARRAY) {
        d->has_tag = false;
        if (size != 2) {
            fail(d, TERN_EMALFORMED, "tag 40 must wrap [dimensions, elements], not %zu items",
                 size);
            return;
        }
        push(d, F_ND, 0);
        return;
    }
    if (!no_tag(d, "a list"))
        return;
    size_t room = d->len - d->pos; /* each item takes at least one byte */
    if (size > room) {
        fail(d, TERN_ETRUNCATED, "list claims %zu items but only %zu bytes remain", size, room);
        return;
    }
    tern_value *list = tern_list_new(size < LIST_PREALLOC ? size : LIST_PREALLOC);
    if (!list) {
        fail(d, TERN_ENOMEM, "out of memory");
        return;
    }
    if (size == 0) {
        emit(d, list);
        return;
    }
    frame *nf = push(d, F_LIST, size);
    if (!nf) {
        tern_value_unref(list);
        return;
    }
    nf->val = list;
}

static void cb_map_start(void *c, size_t size)
{
    decoder *d = c;
    if (d->err || !not_key(d, "a map") || !no_tag(d, "a map"))
        return;
    size_t room = d->len - d->pos;
    if (size > room / 2) {
        fail(d, TERN_ETRUNCATED, "map claims %zu entries but only %zu bytes remain", size, room);
        return;
    }
    tern_value *map = tern_map_new();
    /* room for the claimed entries, up to a few dozen: enough for every protocol message,
     * and a map that claims more than it holds cannot make us reserve much */
    if (!map || terni_map_reserve(map, size < 32 ? size : 32) != TERN_OK) {
        tern_value_unref(map);
        fail(d, TERN_ENOMEM, "out of memory");
        return;
    }
    if (size == 0) {
        emit(d, map);
        return;
    }
    frame *f = push(d, F_MAP, size * 2);
    if (!f) {
        tern_value_unref(map);
        return;
    }
    f->val = map;
}

static void cb_tag(void *c, uint64_t tag)
{
    decoder *d = c;
    if (d->err || !not_key(d, "a tagged item"))
        return;
    if (d->has_tag) {
        fail(d, TERN_EUNSUPPORTED, "nested tags (%llu inside %llu) are not accepted",
             (unsigned long long)tag, (unsigned long long)d->tag);
        return;
    }
    if (tag != TERN_CBOR_TAG_F64LE && tag != TERN_CBOR_TAG_I64LE && tag != TERN_CBOR_TAG_NDARRAY &&
        tag != TERN_CBOR_TAG_KEYREF) {
        fail(d, TERN_EUNSUPPORTED,
             "CBOR tag %llu is not supported (tern accepts 40, 79, 86 and %llu)",
             (unsigned long long)tag, (unsigned long long)TERN_CBOR_TAG_KEYREF);
        return;
    }
    d->has_tag = true;
    d->tag = tag;
}

static void on_double(decoder *d, double x)
{
    if (d->err || !no_tag(d, "a float") || !not_key(d, "a float"))
        return;
    emit(d, tern_double(isnan(x) ? NAN : x));
}

static void cb_float(void *c, float x)
{
    on_double(c, x);
}
static void cb_double(void *c, double x)
{
    on_double(c, x);
}

static void cb_null(void *c)
{
    decoder *d = c;
    if (d->err || !no_tag(d, "null") || !not_key(d, "null"))
        return;
    emit(d, tern_null());
}

static void cb_bool(void *c, bool b)
{
    decoder *d = c;
    if (d->err || !no_tag(d, "a bool") || !not_key(d, "a bool"))
        return;
    emit(d, tern_bool(b));
}

static void cb_undefined(void *c)
{
    fail(c, TERN_EUNSUPPORTED, "CBOR undefined is not a tern value");
}

static void cb_indefinite(void *c)
{
    fail(c, TERN_EUNSUPPORTED,
         "indefinite-length items are not accepted (use definite lengths, RFC 8949 4.2)");
}

static void cb_break(void *c)
{
    fail(c, TERN_EMALFORMED, "break byte outside an indefinite-length item");
}

static const struct cbor_callbacks callbacks = {
    .uint8 = cb_uint8,
    .uint16 = cb_uint16,
    .uint32 = cb_uint32,
    .uint64 = cb_uint64,
    .negint8 = cb_negint8,
    .negint16 = cb_negint16,
    .negint32 = cb_negint32,
    .negint64 = cb_negint64,
    .byte_string_start = cb_indefinite,
    .byte_string = cb_bytes,
    .string = cb_text,
    .string_start = cb_indefinite,
    .indef_array_start = cb_indefinite,
    .array_start = cb_array_start,
    .indef_map_start = cb_indefinite,
    .map_start = cb_map_start,
    .tag = cb_tag,
    .float2 = cb_float,
    .float4 = cb_float,
    .float8 = cb_double,
    .undefined = cb_undefined,
    .null = cb_null,
    .boolean = cb_bool,
    .indef_break = cb_break,
};

static void unwind(decoder *d)
{
    while (d->depth) {
        frame *f = &d->stack[--d->depth];
        if (f->kind == F_LIST || f->kind == F_MAP)
            tern_value_unref(f->val);
    }
    tern_value_unref(d->result);
    d->result = NULL;
}

static int decode(const void *buf, size_t len, const tern_decode_opts *opts, terni_borrow *borrow,
                  tern_value **out, char *errbuf, size_t errlen)
{
    decoder d;
    memset(&d, 0, sizeof(d));
    d.buf = buf;
    d.len = len;
    d.borrow = borrow;
    d.errbuf = errbuf;
    d.errlen = errlen;
    d.max_depth = opts && opts->max_depth && opts->max_depth < TERN_MAX_DEPTH ? opts->max_depth
                                                                              : TERN_MAX_DEPTH;
    size_t max_len = opts && opts->max_len ? opts->max_len : (size_t)1 << 30;
    d.max_items = opts && opts->max_items ? opts->max_items : (size_t)1 << 24;
    if (errbuf && errlen)
        errbuf[0] = '\0';

    if (!out || (!buf && len)) {
        fail(&d, TERN_EINVAL, "NULL argument");
        return d.err;
    }
    *out = NULL;
    if (len > max_len)
        fail(&d, TERN_ETOOBIG, "input of %zu bytes exceeds the %zu-byte limit", len, max_len);
    else if (len == 0)
        fail(&d, TERN_ETRUNCATED, "empty input");

    while (!d.err && !d.result && d.pos < len) {
        if (++d.items > d.max_items) {
            fail(&d, TERN_ETOOBIG, "more than %zu items; raise tern_decode_opts.max_items",
                 d.max_items);
            break;
        }
        struct cbor_decoder_result r =
            cbor_stream_decode(d.buf + d.pos, len - d.pos, &callbacks, &d);
        if (d.err)
            break;
        if (r.status == CBOR_DECODER_NEDATA) {
            fail(&d, TERN_ETRUNCATED, "input ends inside an item (%zu more bytes needed)",
                 r.required);
        } else if (r.status != CBOR_DECODER_FINISHED || r.read == 0) {
            fail(&d, TERN_EMALFORMED, "malformed CBOR head 0x%02x", d.buf[d.pos]);
        } else {
            d.pos += r.read;
        }
    }
    if (!d.err && !d.result) {
        if (d.has_tag)
            fail(&d, TERN_ETRUNCATED, "input ends after tag %llu", (unsigned long long)d.tag);
        else
            fail(&d, TERN_ETRUNCATED, "input ends inside %zu open container(s)", d.depth);
    }
    if (!d.err && d.pos != len)
        fail(&d, TERN_EMALFORMED, "%zu bytes of trailing data after the value", len - d.pos);
    if (d.err) {
        unwind(&d);
        return d.err;
    }
    *out = d.result;
    return TERN_OK;
}

int tern_decode(const void *buf, size_t len, const tern_decode_opts *opts, tern_value **out,
                char *errbuf, size_t errlen)
{
    return decode(buf, len, opts, NULL, out, errbuf, errlen);
}

int tern_decode_borrow(const void *buf, size_t len, const tern_decode_opts *opts,
                       void (*release)(void *arg), void *arg, tern_value **out, char *errbuf,
                       size_t errlen)
{
    terni_borrow *b = malloc(sizeof(*b));
    if (!b) {
        if (release)
            release(arg);
        if (out)
            *out = NULL;
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "out of memory");
        return TERN_ENOMEM;
    }
    atomic_init(&b->refs, 1); /* the decoder's own reference, dropped below */
    b->release = release;
    b->arg = arg;
    int rc = decode(buf, len, opts, b, out, errbuf, errlen);
    terni_borrow_unref(b);
    return rc;
}

int terni_decode_slab(const void *buf, size_t len, const tern_decode_opts *opts,
                      void (*release)(void *arg), void *arg, tern_value **out, char *errbuf,
                      size_t errlen)
{
    terni_slab *slab = terni_slab_begin(len); /* NULL: out of memory, plain allocations */
    int rc = tern_decode_borrow(buf, len, opts, release, arg, out, errbuf, errlen);
    terni_slab_end(slab);
    return rc;
}
