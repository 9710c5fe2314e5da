/* libFuzzer target for every message handler of the worker, through its real code paths.
 *
 * An input is a sequence of records: one control byte, a 16-bit little-endian length, and
 * that many bytes. Control bit 7 set: the bytes are a poll reply from the scheduler (a list
 * of events), decoded as link.c does and handed to on_events (compute, free, cancel); clear:
 * they are a data-plane message, handed to data_request (the cluster token gate, decoding
 * with the daemons' limits, then serve: get, put). Bit 6 picks a worker that requires a
 * cluster token (so the gate's refusals and the auth ops are exercised) instead of one that
 * does not. Each input starts from empty workers and frees everything at the end.
 *
 * Not covered here: "plugin" events are filtered out, because loading one writes the bytes
 * to the work directory and dlopen()s them (the loader has its own tests, tests/unit/
 * test_loader.c, including malformed objects). No executor threads run, so queued compute
 * jobs are only queued and freed. */
#include "sdk/src/transport/wire.h"
#include "runtime/worker/worker.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static terni_worker_opts open_opts, token_opts;
static char workdir[64];

static void remove_workdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_worker: cannot remove %s\n", workdir);
}

static void setup(void)
{
    if (workdir[0])
        return;
    snprintf(workdir, sizeof(workdir), "/tmp/tern-fuzz-worker-XXXXXX");
    if (!mkdtemp(workdir))
        abort();
    atexit(remove_workdir);
    open_opts = (terni_worker_opts){
        .scheduler = "inproc://none", .name = "fz", .workdir = workdir, .nthreads = 1, .quiet = true
    };
    token_opts = open_opts;
    memcpy(token_opts.token.bytes, "fuzzing-token-0123456789", 24);
    token_opts.token.len = 24;
}

/* The events list without "plugin" events (see above); a new reference. */
static tern_value *without_plugins(tern_value *events)
{
    if (tern_value_type(events) != TERN_T_LIST)
        return tern_value_ref(events);
    tern_value *out = tern_list_new(0);
    const tern_value *ev;
    for (size_t i = 0; out && tern_list_get(events, i, &ev) == TERN_OK; i++)
        if (strcmp(terni_op_name(ev), "plugin") != 0)
            tern_list_append(out, tern_value_ref((tern_value *)ev));
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    void *open_w = terni_worker_fuzz_new(&open_opts), *token_w = terni_worker_fuzz_new(&token_opts);
    while (size >= 3) {
        uint8_t ctl = data[0];
        size_t len = (size_t)data[1] | (size_t)data[2] << 8;
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        void *w = ctl & 0x40 ? token_w : open_w;
        if (ctl & 0x80) {
            nng_msg *m;
            tern_value *events = NULL;
            char err[256];
            if (nng_msg_alloc(&m, len) == 0) {
                memcpy(nng_msg_body(m), data, len);
                if (terni_msg_decode_slab(m, &events, err, sizeof(err)) == TERN_OK) {
                    tern_value *kept = without_plugins(events);
                    terni_worker_fuzz_events(w, kept);
                    tern_value_unref(kept);
                    tern_value_unref(events);
                }
            }
        } else {
            terni_worker_fuzz_data(w, data, len, 0);
        }
        data += len;
        size -= len;
    }
    terni_worker_fuzz_free(open_w);
    terni_worker_fuzz_free(token_w);
    return 0;
}
