/* The scheduler's listening side: one nng rep socket, a pool of contexts receiving requests,
 * and one event queue that a single thread drains (requests, peer connect, peer loss).
 *
 * Every received request is handed over with its context; the owner answers it exactly once
 * with terni_server_reply() — at once for ordinary ops, or later for a parked long poll —
 * or drops it with terni_server_drop() (the peer is gone). Replies may be sent from any
 * thread. Connection identity is the nng pipe id: requests carry the id of the pipe they
 * came on, and a PEER_LOST event fires when that pipe closes (a killed process is noticed
 * within a millisecond on loopback). */
#ifndef TERNI_SERVER_H
#define TERNI_SERVER_H

#include <stdint.h>

#include <tern/value.h>

#include "sdk/src/transport/auth.h"

typedef struct terni_server terni_server;
typedef struct terni_request terni_request;

typedef enum terni_event_kind {
    TERNI_EV_REQUEST = 1, /* a request: ev.req, ev.body (decoded, owned by the event) */
    TERNI_EV_PEER_UP,     /* a connection opened: ev.pipe */
    TERNI_EV_PEER_LOST,   /* a connection closed: ev.pipe */
    TERNI_EV_WAKE,        /* terni_server_wake() was called */
} terni_event_kind;

typedef struct terni_event {
    terni_event_kind kind;
    uint32_t pipe;
    terni_request *req;
    tern_value *body; /* the decoded request; NULL when it could not be decoded */
    char error[256];  /* why body is NULL */
    uint64_t at_ns;   /* when the event was queued (terni_now_ns), for liveness checks */
    size_t bytes;     /* a request's encoded size */
} terni_event;

/* Listens on url (tcp://host:0 picks a port); tls+tcp:// uses sec's certificate (tls.h).
 * With sec->token set, only peers that prove the token (auth.h) get through: the others'
 * requests are answered here and never become events. sec may be NULL. bound receives the
 * real address. */
int terni_server_open(const char *url, const terni_sec *sec, terni_server **out, char *bound,
                      size_t boundlen, char *err, size_t errlen);
/* Stops listening, drops pending requests, frees everything. */
void terni_server_close(terni_server *s);

/* Waits up to timeout_ms (negative: forever) for the next event. TERN_ETIMEDOUT when none. */
int terni_server_next(terni_server *s, int timeout_ms, terni_event *ev);
/* Wakes terni_server_next with a TERNI_EV_WAKE event (thread-safe). */
void terni_server_wake(terni_server *s);

/* Answers a request with `reply` (not stolen) and recycles it. Returns a tern code. */
int terni_server_reply(terni_request *r, const tern_value *reply);
/* terni_server_reply with a message already encoded (taken; one CBOR value). */
void terni_server_reply_msg(terni_request *r, nng_msg *m);
/* Recycles a request without answering (its peer is gone). */
void terni_server_drop(terni_request *r);
/* The pipe a request arrived on. */
uint32_t terni_request_pipe(const terni_request *r);
/* Closes one peer's connection (a worker declared dead); its PEER_LOST event follows. */
void terni_server_close_pipe(terni_server *s, uint32_t pipe);

#endif
