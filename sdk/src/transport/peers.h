/* Requests to worker data servers (get/put of values), with one cached nng req socket per
 * address. Used by workers to fetch dependencies from peers and by clients to fetch large
 * results and to scatter data. Thread-safe. */
#ifndef TERNI_PEERS_H
#define TERNI_PEERS_H

#include <tern/value.h>

#include "sdk/src/transport/auth.h"

typedef struct terni_peers terni_peers;

/* sec (copied; may be NULL): TLS files for tls+tcp:// peers (tls.h) and the cluster token,
 * proven on each connection before its first request (auth.h). */
int terni_peers_new(const terni_sec *sec, terni_peers **out);
void terni_peers_free(terni_peers *p);

/* Sends `req` (not stolen) to the data server at address and waits up to timeout_ms for the
 * reply, given to the caller in *reply. An error reply becomes the return code and message.
 * Errors: TERN_ECONNREFUSED, TERN_ETIMEDOUT, TERN_EPROTO, TERN_EAUTH, TERN_ENOMEM, or the
 * server's code. */
int terni_peers_request(terni_peers *p, const char *address, const tern_value *req, int timeout_ms,
                        tern_value **reply, char *err, size_t errlen);

/* The end of a terni_peers_post: rc TERN_OK (the server answered with a result that is not an
 * error), or the error with err saying why. Runs on an nng thread: it must not block. */
typedef void (*terni_peers_done)(void *arg, int rc, const char *err);

/* Sends `req` (not stolen) to the data server at address without waiting: the reply is awaited
 * by nng callbacks, and done(arg, ...) is called exactly once when it arrives, fails, or after
 * timeout_ms. Returns TERN_OK when sent (done will run), TERN_EBUSY when the connection must
 * first be authenticated (the caller uses terni_peers_request, which does that), or another
 * error (done will not run). For pushes (runtime/worker/pusher.h): no thread waits for the
 * round trip. terni_peers_free waits (bounded) for posts in flight. */
int terni_peers_post(terni_peers *p, const char *address, const tern_value *req, int timeout_ms,
                     terni_peers_done done, void *arg);

/* get {keys} -> {"values": {key: value}}: the values found at address for `keys` (a list of
 * text). Keys the peer does not hold are absent from *values (a map, caller unrefs). */
int terni_peers_get(terni_peers *p, const char *address, const tern_value *keys, int timeout_ms,
                    tern_value **values, char *err, size_t errlen);

/* terni_peers_get that gives up (TERN_ECANCELED) soon after *cancel becomes non-zero (read
 * atomically; another thread sets it), e.g. when the task that needs the data is cancelled
 * because its holder died. */
int terni_peers_get_cancellable(terni_peers *p, const char *address, const tern_value *keys,
                                int timeout_ms, const int *cancel, tern_value **values, char *err,
                                size_t errlen);

#endif
