/* A session's queued events, kept encoded.
 *
 * Design notes
 *  The scheduler used to queue each event as a tree of values and encode the whole list when
 *  the peer polled: ten or so allocations per event, a sizing walk, an encoding walk and a
 *  freeing walk, and, while a worker was busy, a backlog of trees (hundreds of bytes per
 *  queued task). Now an event is encoded when it is queued, into one growing buffer per
 *  session, and the hot ones (compute, finished, free) are written straight from the task
 *  record with libcbor's head encoders, without a tree. The poll's reply is the list head
 *  followed by the buffer. A failed allocation mid-event marks the outbox; the end of the
 *  event then rolls the buffer back to where the event began, so a partial event never goes
 *  out.
 */
#include "sdk/src/transport/outbox.h"

#include "sdk/src/value_internal.h" /* terni_encode_sized */

#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <tern/codec.h>

static bool reserve(terni_outbox *o, size_t more)
{
    if (o->fail)
        return false;
    if (o->cap - o->len >= more)
        return true;
    size_t cap = o->cap ? o->cap : 256; /* a worker's done report is one ~80-byte event */
    while (cap - o->len < more) {
        if (cap > SIZE_MAX / 2) {
            o->fail = true;
            return false;
        }
        cap *= 2;
    }
    uint8_t *b = realloc(o->buf, cap);
    if (!b) {
        o->fail = true;
        return false;
    }
    o->buf = b;
    o->cap = cap;
    return true;
}

/* Room for a CBOR head (at most 9 bytes) at the end of the buffer, or NULL. */
static uint8_t *head_room(terni_outbox *o)
{
    return reserve(o, 9) ? o->buf + o->len : NULL;
}

void terni_ob_begin(terni_outbox *o, size_t *mark)
{
    *mark = o->len;
    o->fail = false;
}

void terni_ob_map(terni_outbox *o, size_t n)
{
    uint8_t *p = head_room(o);
    if (p)
        o->len += cbor_encode_map_start(n, p, 9);
}

void terni_ob_list(terni_outbox *o, size_t n)
{
    uint8_t *p = head_room(o);
    if (p)
        o->len += cbor_encode_array_start(n, p, 9);
}

void terni_ob_int(terni_outbox *o, int64_t i)
{
    uint8_t *p = head_room(o);
    if (p)
        o->len += i >= 0 ? cbor_encode_uint((uint64_t)i, p, 9)
                         : cbor_encode_negint((uint64_t)(-(i + 1)), p, 9);
}

static void put_raw(terni_outbox *o, const void *data, size_t len)
{
    if (len && reserve(o, len)) {
        memcpy(o->buf + o->len, data, len);
        o->len += len;
    }
}

void terni_ob_text(terni_outbox *o, const char *s)
{
    size_t len = strlen(s);
    uint8_t *p = head_room(o);
    if (p)
        o->len += cbor_encode_string_start(len, p, 9);
    put_raw(o, s, len);
}

void terni_ob_bytes(terni_outbox *o, const void *data, size_t len)
{
    uint8_t *p = head_room(o);
    if (p)
        o->len += cbor_encode_bytestring_start(len, p, 9);
    put_raw(o, data, len);
}

/* v's encoding, whose size the caller has from tern_encoded_size (not sized again). */
static void put_encoded(terni_outbox *o, const tern_value *v, size_t need)
{
    if (!reserve(o, need))
        return;
    if (terni_encode_sized(v, need, o->buf + o->len) == TERN_OK)
        o->len += need;
    else
        o->fail = true;
}

void terni_ob_bytes_of(terni_outbox *o, const tern_value *v, size_t need)
{
    uint8_t *p = head_room(o);
    if (p)
        o->len += cbor_encode_bytestring_start(need, p, 9);
    put_encoded(o, v, need);
}

bool terni_ob_end(terni_outbox *o, size_t mark)
{
    if (o->fail) {
        o->len = mark;
        o->fail = false;
        return false;
    }
    o->n++;
    return true;
}

bool terni_outbox_add(terni_outbox *o, const tern_value *v)
{
    size_t need = tern_encoded_size(v), mark;
    if (!need)
        return false;
    terni_ob_begin(o, &mark);
    put_encoded(o, v, need);
    return terni_ob_end(o, mark);
}

nng_msg *terni_outbox_take(terni_outbox *o)
{
    if (!o->n)
        return NULL;
    uint8_t head[9];
    size_t hlen = cbor_encode_array_start(o->n, head, sizeof(head));
    nng_msg *m;
    if (!hlen || nng_msg_alloc(&m, hlen + o->len) != 0)
        return NULL;
    memcpy(nng_msg_body(m), head, hlen);
    memcpy((uint8_t *)nng_msg_body(m) + hlen, o->buf, o->len);
    o->n = 0;
    o->len = 0;
    if (o->cap > (1u << 20)) { /* give back what a burst grew */
        free(o->buf);
        o->buf = NULL;
        o->cap = 0;
    }
    return m;
}

void terni_outbox_free(terni_outbox *o)
{
    free(o->buf);
    *o = (terni_outbox){ 0 };
}
