/* A stand-in for runtime/scheduler/server.c in fuzz_scheduler: requests are heap objects the
 * harness makes; a reply is encoded (as the real server would) and discarded. */
#include "runtime/scheduler/server.h"

#include "sdk/src/transport/wire.h"

#include <stdio.h>
#include <stdlib.h>

struct terni_request {
    uint32_t pipe;
};

terni_request *fake_request_new(uint32_t pipe);
terni_request *fake_request_new(uint32_t pipe)
{
    terni_request *r = calloc(1, sizeof(*r));
    if (r)
        r->pipe = pipe;
    return r;
}

int terni_server_open(const char *url, const terni_sec *sec, terni_server **out, char *bound,
                      size_t boundlen, char *err, size_t errlen)
{
    return TERN_EINVAL;
}

void terni_server_close(terni_server *s) {}

int terni_server_next(terni_server *s, int timeout_ms, terni_event *ev)
{
    return TERN_ETIMEDOUT;
}

void terni_server_wake(terni_server *s) {}

/* Every reply and every event the scheduler sends must decode with the decoder its receiver
 * uses (terni_msg_decode, as link.c does: the same limits and checks, UTF-8 included), or the
 * fuzzer stops here: a message its receiver cannot decode is a message lost, and a future that
 * waits for ever. Consumes m. */
static void must_decode(nng_msg *m, const char *what)
{
    tern_value *v = NULL;
    char err[256];
    if (terni_msg_decode(m, &v, err, sizeof(err)) != TERN_OK) {
        fprintf(stderr, "the scheduler sent %s that its receiver cannot decode: %s\n", what, err);
        abort();
    }
    tern_value_unref(v);
}

int terni_server_reply(terni_request *r, const tern_value *reply)
{
    nng_msg *m;
    int rc = terni_msg_encode(reply, &m);
    if (rc == TERN_OK)
        must_decode(m, "a reply");
    free(r);
    return TERN_OK;
}

/* The scheduler writes its frequent events straight into CBOR (outbox.c). */
void terni_server_reply_msg(terni_request *r, nng_msg *m)
{
    must_decode(m, "events");
    free(r);
}

void terni_server_drop(terni_request *r)
{
    free(r);
}

uint32_t terni_request_pipe(const terni_request *r)
{
    return r->pipe;
}

void terni_server_close_pipe(terni_server *s, uint32_t pipe) {}

/* The dashboard (http.c) is not part of the fuzzed paths: the scheduler only starts it in
 * terni_sched_run, so these stand-ins are never called with a server. */
#include "runtime/scheduler/http.h"

int terni_http_start(const char *addr, terni_http **out, char *url, size_t urllen, char *warn,
                     size_t warnlen, char *err, size_t errlen)
{
    *out = NULL;
    return TERN_OK;
}

void terni_http_refresh(terni_http *h, tern_value *(*build)(void *), void *arg) {}

void terni_http_stop(terni_http *h) {}
