/* An append-only buffer of CBOR items written directly (no value tree): the scheduler keeps a
 * session's queued events in one (the reply to the peer's parked poll is the list of them),
 * and a worker writes its done reports with one. */
#ifndef TERNI_OUTBOX_H
#define TERNI_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <tern/value.h>

typedef struct terni_outbox {
    uint8_t *buf;
    size_t len, cap;
    size_t n;  /* complete events in buf */
    bool fail; /* out of memory while writing the current event: it is dropped */
} terni_outbox;

/* Appends an event given as a value (encoded now; v is not stolen). False if out of memory. */
bool terni_outbox_add(terni_outbox *o, const tern_value *v);

/* Writing an event directly: begin, then the items of one CBOR value (map and list heads give
 * their item counts; map keys are texts written with terni_ob_text, in CBOR's deterministic
 * order), then end. The caller passes only valid UTF-8 to terni_ob_text. end returns false,
 * and drops the partial event, if memory ran out meanwhile. */
void terni_ob_begin(terni_outbox *o, size_t *mark);
void terni_ob_map(terni_outbox *o, size_t n);
void terni_ob_list(terni_outbox *o, size_t n);
void terni_ob_text(terni_outbox *o, const char *s);
void terni_ob_int(terni_outbox *o, int64_t i);
void terni_ob_bytes(terni_outbox *o, const void *data, size_t len);
/* A byte string holding v's encoding, of `need` bytes (tern_encoded_size(v), non-zero). */
void terni_ob_bytes_of(terni_outbox *o, const tern_value *v, size_t need);
bool terni_ob_end(terni_outbox *o, size_t mark);

/* The events as one message (a CBOR list), and an empty outbox; NULL if there are none or if
 * out of memory (the events are then kept). */
nng_msg *terni_outbox_take(terni_outbox *o);

void terni_outbox_free(terni_outbox *o);

#endif
