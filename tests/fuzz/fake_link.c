/* A stand-in for sdk/src/transport/link.c in fuzz_worker: the worker's posts to the scheduler are
 * encoded (as the real link would) and discarded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sdk/src/transport/link.h"

#include "sdk/src/transport/wire.h"

int terni_link_open(const char *url, const terni_sec *sec, tern_value *hello, int timeout_ms,
                    terni_events_fn on_events, terni_down_fn on_down, void *arg, terni_link **out,
                    tern_value **welcome, char *err, size_t errlen)
{
    tern_value_unref(hello);
    return TERN_ECLOSED;
}

void terni_link_close(terni_link *l) {}

void terni_link_slab_events(terni_link *l)
{
    (void)l;
}

int terni_link_post(terni_link *l, tern_value *op)
{
    nng_msg *m;
    if (terni_msg_encode(op, &m) == TERN_OK)
        nng_msg_free(m);
    tern_value_unref(op);
    return TERN_OK;
}

/* The worker writes its done reports straight into CBOR (outbox.h): each must decode to an op
 * map, or the fuzzer stops here. */
int terni_link_post_encoded(terni_link *l, uint8_t *enc, size_t len, const char *name)
{
    (void)l;
    tern_value *v = NULL;
    char err[256];
    if (tern_decode(enc, len, NULL, &v, err, sizeof(err)) != TERN_OK ||
        strcmp(terni_op_name(v), name) != 0) {
        fprintf(stderr, "the worker posted a %s op that does not decode: %s\n", name, err);
        abort();
    }
    tern_value_unref(v);
    free(enc);
    return TERN_OK;
}

int terni_link_call(terni_link *l, tern_value *op, int timeout_ms, tern_value **result, char *err,
                    size_t errlen)
{
    tern_value_unref(op);
    *result = NULL;
    return TERN_ECLOSED;
}

bool terni_link_alive(terni_link *l)
{
    return false;
}

void terni_link_liveness(terni_link *l, int heartbeat_ms, int timeout_ms) {}
