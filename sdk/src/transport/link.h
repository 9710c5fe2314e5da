/* The peer side of a scheduler connection, used by clients and workers.
 *
 * One nng req socket with two contexts:
 *  - the op stream: every op (terni_link_post, terni_link_call) joins one queue; everything
 *    queued goes as one request (a list of ops), and the next request only after the list
 *    of results came back, so ops are never reordered and many small ops cost one message;
 *  - the long poll: one "poll" request stays parked at the scheduler; its reply is the batch
 *    of events the scheduler has for us, handed to on_events.
 * Both run as nng aio callbacks (no thread of ours on the message path; see link.c).
 * Loss of the connection (peer closed, process killed) is seen through nng's pipe events;
 * on_down is called once and every pending and later call fails with TERN_ECLOSED. */
#ifndef TERNI_LINK_H
#define TERNI_LINK_H

#include <tern/value.h>

#include "sdk/src/transport/auth.h"

typedef struct terni_link terni_link;

/* Called on an nng task thread with the list of events of one poll reply (borrowed). It must
 * not block: queue work and signal. */
typedef void (*terni_events_fn)(void *arg, const tern_value *events);
/* Called once when the connection is lost (not on terni_link_close). */
typedef void (*terni_down_fn)(void *arg, const char *why);

/* Dials url, sends `hello` (stolen) and waits up to timeout_ms for the answer. On success
 * *welcome (may be NULL) gets the scheduler's welcome map and the poll thread starts. Errors:
 * TERN_ECONNREFUSED, TERN_ETIMEDOUT, TERN_EPROTO (the scheduler refused the hello; the
 * message says why), TERN_ENOMEM. When the welcome names heartbeat_ms and death_timeout_ms,
 * liveness is turned on with them (terni_link_liveness). */
/* sec (may be NULL): TLS files for tls+tcp:// URLs (tls.h) and the cluster token, proven
 * before the hello when set (auth.h; TERN_EAUTH when either side cannot prove it). */
int terni_link_open(const char *url, const terni_sec *sec, tern_value *hello, int timeout_ms,
                    terni_events_fn on_events, terni_down_fn on_down, void *arg, terni_link **out,
                    tern_value **welcome, char *err, size_t errlen);

/* Stops the threads, fails pending calls with TERN_ECLOSED, closes the socket. */
void terni_link_close(terni_link *l);

/* Queues op (stolen) for sending; does not wait. An error result for it is logged. */
int terni_link_post(terni_link *l, tern_value *op);

/* terni_link_post for an op already encoded: enc (malloc'd, taken; freed by the link, also on
 * error) holds one CBOR map of len bytes; name is the op's name, for the log. */
int terni_link_post_encoded(terni_link *l, uint8_t *enc, size_t len, const char *name);
/* terni_link_post_encoded for an op nobody waits on (a release): on an idle link it is not
 * sent at once but with the next op, or by the link's ticker thread a wake-up later. A release
 * right after a result then rides with the next submit instead of delaying it by a round trip. */
int terni_link_post_encoded_lazy(terni_link *l, uint8_t *enc, size_t len, const char *name);

/* Queues op (stolen) and waits up to timeout_ms (negative: forever) for its result, given
 * to the caller in *result. An error result becomes the return code, with its message. */
int terni_link_call(terni_link *l, tern_value *op, int timeout_ms, tern_value **result, char *err,
                    size_t errlen);

/* Turns on heartbeats: an "heartbeat" op whenever nothing was sent for heartbeat_ms, and the
 * link goes down (on_down, pending calls fail with TERN_ECLOSED) when a request stays
 * unanswered for timeout_ms. Zero turns either off. Thread-safe. */
void terni_link_liveness(terni_link *l, int heartbeat_ms, int timeout_ms);

/* Decodes later poll replies into one slab each (value_internal.h): cheaper, but a value of
 * the events that on_events keeps keeps the whole reply's memory. For a peer that keeps
 * parts of its events only until it has acted on them (a worker: a task's arguments until it
 * ran), or copies what it keeps for longer out of the slab (a client: terni_value_own). */
void terni_link_slab_events(terni_link *l);

/* False once the connection is lost or closed. */
bool terni_link_alive(terni_link *l);

#endif
