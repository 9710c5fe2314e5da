/* libFuzzer target for every message handler of the scheduler, through its real dispatch.
 *
 * An input is a sequence of records: one control byte, a 16-bit little-endian length, and
 * that many bytes. Control bits 0-2 pick the connection (pipe 1..8); bit 7 set means "that
 * connection closed" (the bytes are skipped); otherwise the bytes are a request message,
 * decoded with the daemons' limits (terni_msg_decode) and handed to the scheduler exactly as
 * server.c would (terni_sched_fuzz_event -> handle_request -> dispatch -> op_*). Each input
 * starts from an empty scheduler and ends by freeing everything, so LeakSanitizer checks
 * every path. At the end every connection polls, and every reply and event the scheduler
 * sends must decode with its receiver's decoder (fake_server.c). Uploads use a stand-in for
 * the inspector child process (below): bytes starting "TPLG" are a plugin named "fz" with
 * tasks "inc echo"; anything else is refused. */
#include "runtime/scheduler/scheduler.h"
#include "runtime/scheduler/server.h"
#include "sdk/src/transport/wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

terni_request *fake_request_new(uint32_t pipe);

int terni_inspect_plugin(const char *inspector, const char *workdir, const void *bytes, size_t len,
                         const char *id, char **name, char **version, char **tasks, char *msg,
                         size_t msglen)
{
    if (len < 4 || memcmp(bytes, "TPLG", 4) != 0) {
        snprintf(msg, msglen, "not a plugin");
        return TERN_ENOTPLUGIN;
    }
    *name = strdup(len > 4 && ((const char *)bytes)[4] == '2' ? "fz2" : "fz");
    *version = strdup("1.0");
    *tasks = strdup("inc echo");
    return TERN_OK;
}

static const terni_sched_opts opts = { .listen = "inproc://fuzz",
                                       .workdir = "/nonexistent",
                                       .inspector = "/nonexistent",
                                       .quiet = true,
                                       .allow_upload = TERNI_UPLOAD_YES,
                                       .max_pending = 16 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The graph's invariants are checked after every event: a violation aborts (a finding). */
    setenv("TERN_SCHED_VALIDATE", "1", 0);
    void *sched = terni_sched_fuzz_begin(&opts);
    if (!sched)
        return 0;
    while (size >= 3) {
        uint8_t ctl = data[0];
        size_t len = (size_t)data[1] | (size_t)data[2] << 8;
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        terni_event ev = { .pipe = (uint32_t)(ctl & 7) + 1 };
        if (ctl & 0x80) {
            ev.kind = TERNI_EV_PEER_LOST;
        } else {
            nng_msg *m;
            if (nng_msg_alloc(&m, len) != 0)
                break;
            memcpy(nng_msg_body(m), data, len);
            ev.kind = TERNI_EV_REQUEST;
            ev.req = fake_request_new(ev.pipe);
            if (terni_msg_decode_slab(m, &ev.body, ev.error, sizeof(ev.error)) != TERN_OK)
                ev.body = NULL;
        }
        terni_sched_fuzz_event(sched, &ev);
        data += len;
        size -= len;
    }
    /* Every connection polls at the end, so that the events queued for it are sent, and
     * checked (fake_server.c: each must decode with its receiver's decoder). */
    for (uint32_t pipe = 1; pipe <= 8; pipe++) {
        tern_value *poll = tern_list_of(terni_op("poll"));
        nng_msg *m = NULL;
        terni_event ev = { .pipe = pipe, .kind = TERNI_EV_REQUEST };
        if (!poll || terni_msg_encode(poll, &m) != TERN_OK) {
            tern_value_unref(poll);
            break;
        }
        tern_value_unref(poll);
        ev.req = fake_request_new(pipe);
        if (terni_msg_decode_slab(m, &ev.body, ev.error, sizeof(ev.error)) != TERN_OK)
            ev.body = NULL;
        terni_sched_fuzz_event(sched, &ev);
    }
    terni_sched_fuzz_end(sched);
    return 0;
}
