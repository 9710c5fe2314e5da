/* Wire format helpers: every tern message is one CBOR value (our codec), and every request
 * is a list of ops, each a map with an "op" text field; docs/protocol.md lists them all.
 * Replies to a request are a list of results, one per op, in order. */
#ifndef TERNI_WIRE_H
#define TERNI_WIRE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <nng/nng.h>
#include <tern/codec.h>

/* Wire protocol version, checked in the hello handshake. */
#define TERNI_WIRE_VERSION 1
/* Largest message accepted on any tern socket (NNG_OPT_RECVMAXSZ). A larger one would make
 * nng drop the connection, so senders stay below it: */
#define TERNI_MAX_MSG ((size_t)1 << 30)
/* Every message is decoded with these limits too (nesting depth: TERN_MAX_DEPTH, 64): */
#define TERNI_MAX_ITEMS ((size_t)1 << 24)
/* ... one op stream request carries at most this many bytes of ops (unless one op is bigger) */
#define TERNI_MAX_BATCH_BYTES ((size_t)64 << 20)
/* ... and one task's encoded arguments are at most this large. */
#define TERNI_MAX_ARGS ((size_t)256 << 20)

/* A new op map {"op": name}, or NULL if out of memory. */
tern_value *terni_op(const char *name);
/* Sets a field; steals val (NULL val: the map is left unchanged and false is returned). */
bool terni_set(tern_value *m, const char *key, tern_value *val);
bool terni_set_text(tern_value *m, const char *key, const char *s);
bool terni_set_int(tern_value *m, const char *key, int64_t i);

/* Field access: NULL / false when absent or of another type. */
const tern_value *terni_get(const tern_value *m, const char *key);
const char *terni_get_text(const tern_value *m, const char *key);
bool terni_get_int(const tern_value *m, const char *key, int64_t *out);
bool terni_get_bool(const tern_value *m, const char *key);
/* The op's name, or "" when m is not an op map. */
const char *terni_op_name(const tern_value *m);
/* True if list (a list; anything else holds nothing) has an item equal to the text s. */
bool terni_list_has_text(const tern_value *list, const char *s);

/* An error result {"error": code, "message": text}. */
tern_value *terni_error_result(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* If r is an error result, returns its code and sets *msg; else TERN_OK. */
int terni_result_error(const tern_value *r, const char **msg);

/* Encodes v into a new nng message (one copy of the encoded bytes). */
int terni_msg_encode(const tern_value *v, nng_msg **out);
/* Decodes a message into a value; arrays borrow the message body, which is freed when the
 * last of them goes (the message is consumed in every case). */
int terni_msg_decode(nng_msg *m, tern_value **out, char *err, size_t errlen);
/* terni_msg_decode into one slab (value_internal.h): for a message whose values are all
 * dropped together soon, as the scheduler's requests are. */
int terni_msg_decode_slab(nng_msg *m, tern_value **out, char *err, size_t errlen);

/* nng_close(s), but gives up waiting after timeout_ms and returns false. nng 1.5.2 (Debian 12)
 * can deadlock in nng_close while it reaps a pipe (upstream issues #1543/#1813, fixed by PR
 * #1824 in 1.8); the close then goes on in a detached thread and the caller continues. */
bool terni_close_bounded(nng_socket s, int timeout_ms);

/* Maps an nng error to a tern code. */
int terni_nng_err(int nng_rv);

/* Calls fn(key) for every key reference inside v (depth-first). */
void terni_walk_keyrefs(const tern_value *v, void (*fn)(void *arg, const char *key), void *arg);

/* A copy of v where every key reference is replaced by lookup(key) (a new reference, or NULL
 * to fail). Unchanged subtrees are shared, not copied. NULL on failure. */
tern_value *terni_substitute_keyrefs(const tern_value *v,
                                     tern_value *(*lookup)(void *arg, const char *key), void *arg);

/* *ts = now (CLOCK_REALTIME, for pthread timed waits) + ms; ms <= 0 gives now. */
void terni_deadline(struct timespec *ts, int ms);

/* Monotonic clock in nanoseconds. */
uint64_t terni_now_ns(void);

#endif
