/* libFuzzer target: every typed decoder of the protocol module (sdk/src/protocol/protocol.h) on
 * arbitrary input. The first byte chooses the op whose decoder runs first (modulo the op
 * count); the rest is decoded as CBOR and, when that succeeds, given to that decoder and then
 * to every other one, and a submit's task specs each to the spec decoder. A decoder must
 * either succeed or fail with TERN_EPROTO and a message; what succeeds must be readable: every
 * text list it returned is walked. The seed corpus (tests/fuzz/corpus/protocol) is one
 * encoding of every message, written by test_protocol_msgs with TERN_PROTOCOL_CORPUS set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tern/codec.h>
#include <tern/error.h>

#include "sdk/src/protocol/protocol.h"

static void walk(const terni_strs *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (!terni_strs_at(s, i))
            abort(); /* a decoder let a non-text item through */
}

static void check(terni_op_id id, const tern_value *v)
{
    terni_msg m;
    char err[256] = "";
    int rc = terni_msg_dec(id, v, &m, err, sizeof(err));
    if (rc != TERN_OK) {
        if (rc != TERN_EPROTO || !err[0])
            abort();
        return;
    }
    switch (id) {
    case TERNI_OP_SUBMIT:
        for (size_t i = 0; i < m.submit.ntasks; i++) {
            terni_task_spec sp;
            if (terni_dec_task_spec(&m.submit, i, &sp, err, sizeof(err)) == TERN_OK) {
                walk(&sp.deps);
                walk(&sp.workers);
                if (!sp.key)
                    abort();
            }
        }
        break;
    case TERNI_OP_RELEASE:
    case TERNI_OP_CANCEL:
    case TERNI_OP_FREE:
    case TERNI_OP_UNPIN:
        walk(&m.keys.keys);
        break;
    case TERNI_OP_COMPUTE:
        walk(&m.compute.take);
        walk(&m.compute.after);
        if (!m.compute.key || !m.compute.fn || !m.compute.plugin)
            abort();
        break;
    case TERNI_OP_FINISHED:
        walk(&m.finished.who);
        break;
    case TERNI_OP_HELLO:
        walk(&m.hello.crashed_keys);
        break;
    case TERNI_OP_WHO_HAS:
        walk(&m.who_has.keys);
        break;
    case TERNI_OP_GET:
        walk(&m.get.keys);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    terni_op_id first = (terni_op_id)(data[0] % TERNI_OP_COUNT);
    tern_value *v = NULL;
    tern_decode_opts opts = { .max_items = 1 << 16 };
    if (tern_decode(data + 1, size - 1, &opts, &v, NULL, 0) != TERN_OK)
        return 0;
    check(first, v);
    check(terni_op_of(v), v);
    for (int id = 0; id < TERNI_OP_COUNT; id++)
        check((terni_op_id)id, v);
    tern_value_unref(v);
    return 0;
}
