/* The protocol module (sdk/src/protocol/protocol.h): every message round-trips through its encoder,
 * the codec and its decoder; what the outbox encoders write is exactly what tern_encode writes for
 * the same map; every decoder survives every prefix, mutation and random input (errors, never
 * crashes: run under ASan too); a decoder names the field it refuses; and docs/protocol.md's op
 * list matches the code's. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/codec.h>
#include <tern/error.h>

#include "leakcheck.h"
#include "sdk/src/protocol/protocol.h"

typedef struct sample {
    terni_op_id id;
    const char *what;
    uint8_t *buf;
    size_t len;
} sample;

enum { MAX_SAMPLES = 64 };
static sample samples[MAX_SAMPLES];
static size_t nsamples;

static void add_bytes(terni_op_id id, const char *what, const uint8_t *buf, size_t len)
{
    cr_assert_lt(nsamples, MAX_SAMPLES);
    uint8_t *copy = malloc(len);
    cr_assert_not_null(copy);
    memcpy(copy, buf, len);
    samples[nsamples++] = (sample){ id, what, copy, len };
}

/* One event from an outbox encoder. */
static void add_ob(terni_op_id id, const char *what, terni_outbox *o, bool ok)
{
    cr_assert(ok, "%s: encoder failed", what);
    cr_assert_eq(o->n, 1, "%s", what);
    add_bytes(id, what, o->buf, o->len);
    terni_outbox_free(o);
}

static void add_tree(terni_op_id id, const char *what, tern_value *v)
{
    cr_assert_not_null(v, "%s: encoder failed", what);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(tern_encode(v, &buf, &len), TERN_OK, "%s", what);
    add_bytes(id, what, buf, len);
    free(buf);
    tern_value_unref(v);
}

static const char *K3[] = { "a-1", "bb-22", "c" };
static const char *ADDR[] = { "tcp://127.0.0.1:1", "ipc:///tmp/w2" };
static const uint8_t ARGS[] = { 0x82, 0x01, 0xd8, 0x27, 0x61, 0x78 }; /* any bytes */

typedef struct rec {
    const char *addr;
} rec;
static const rec RECS[] = { { "tcp://h:1" }, { "tcp://h:2" }, { "tcp://h:3" } };
static const rec *RECP[] = { &RECS[0], &RECS[1], &RECS[2] };
static const char *rec_addr(const void *r)
{
    return ((const rec *)r)->addr;
}

/* Every message, in its usual shapes (and the corner ones: optional fields absent). */
static void make_samples(void)
{
    terni_outbox o = { 0 };
    nsamples = 0;
    /* requests */
    add_tree(TERNI_OP_HELLO, "hello client",
             terni_enc_hello(&(terni_hello){ .wire = 1, .role = "client", .nthreads = 1 }));
    add_tree(TERNI_OP_HELLO, "hello worker",
             terni_enc_hello(&(terni_hello){ .wire = 1,
                                             .role = "worker",
                                             .name = "w1",
                                             .address = "tcp://127.0.0.1:5",
                                             .nthreads = 4,
                                             .memory = 1 << 30,
                                             .crashed = true,
                                             .crashed_why = "was killed by signal 9",
                                             .crashed_keys = terni_strs_of(K3, 3) }));
    tern_value *plugins = tern_list_new(0);
    tern_list_append(
        plugins, terni_enc_plugin_info(&(terni_plugin_info){ "0123", "seed", "1.0", "inc add" }));
    add_tree(TERNI_OP_WELCOME, "welcome",
             terni_enc_welcome(&(terni_welcome){ 1, 1000, 30000, 2, plugins }));
    tern_value_unref(plugins);
    terni_task_spec specs[3] = {
        { .key = "inc-1",
          .fn = "seed:inc",
          .plugin = "pid",
          .args = ARGS,
          .args_len = 6,
          .gindex = 0,
          .gsize = 3 },
        { .key = "inc-2",
          .fn = "seed:inc",
          .plugin = "pid",
          .args = ARGS,
          .args_len = 6,
          .deps = terni_strs_of(K3, 2),
          .gindex = 1,
          .gsize = 3,
          .priority = -2,
          .retries = 3,
          .timeout_ms = 500,
          .workers = terni_strs_of(K3 + 2, 1) },
        { .key = "other", .fn = "x:y", .plugin = "pid2", .args = ARGS, .args_len = 1, .gsize = 1 },
    };
    add_ob(TERNI_OP_SUBMIT, "submit map", &o,
           terni_enc_submit(
               &o, &(terni_submit){ .fn = "seed:inc", .plugin = "pid", .group = 7, .gsize = 3 },
               specs, 3));
    terni_task_spec lone = { .key = "k", .fn = "a:b", .plugin = "p", .args = ARGS, .args_len = 6 };
    add_ob(TERNI_OP_SUBMIT, "submit one", &o,
           terni_enc_submit(&o, &(terni_submit){ .fn = "a:b", .plugin = "p" }, &lone, 1));
    add_ob(TERNI_OP_RELEASE, "release", &o,
           terni_enc_keys(&o, TERNI_OP_RELEASE, &(terni_keys_msg){ terni_strs_of(K3, 3) }));
    add_ob(TERNI_OP_CANCEL, "cancel", &o,
           terni_enc_keys(&o, TERNI_OP_CANCEL, &(terni_keys_msg){ terni_strs_of(K3, 1) }));
    add_ob(TERNI_OP_FREE, "free", &o,
           terni_enc_keys(&o, TERNI_OP_FREE, &(terni_keys_msg){ terni_strs_of(K3, 1) }));
    add_ob(TERNI_OP_UNPIN, "unpin", &o,
           terni_enc_keys(&o, TERNI_OP_UNPIN, &(terni_keys_msg){ terni_strs_of(K3, 0) }));
    add_tree(TERNI_OP_UPLOAD, "upload", terni_enc_upload(&(terni_upload){ ARGS, 6 }));
    add_tree(TERNI_OP_SCATTER, "scatter", terni_enc_scatter(&(terni_scatter){ "scatter-00" }));
    add_tree(TERNI_OP_WHO_HAS, "who_has names",
             terni_enc_who_has(&(terni_who_has){ terni_strs_of(K3, 3), false }));
    add_tree(TERNI_OP_WHO_HAS, "who_has addresses",
             terni_enc_who_has(&(terni_who_has){ terni_strs_of(K3, 2), true }));
    terni_op_id empty[] = { TERNI_OP_HEARTBEAT, TERNI_OP_BYE,    TERNI_OP_POLL,
                            TERNI_OP_PLUGINS,   TERNI_OP_STATUS, TERNI_OP_AUTHENTICATED };
    for (size_t i = 0; i < sizeof(empty) / sizeof(*empty); i++)
        add_tree(empty[i], terni_ops[empty[i]].name, terni_enc_empty(empty[i]));
    add_ob(TERNI_OP_DONE, "done inline", &o,
           terni_enc_done(&o, &(terni_done){ .key = "inc-1",
                                             .run = 2,
                                             .nbytes = 6,
                                             .rss_bytes = 1,
                                             .duration_us = 12,
                                             .value = ARGS,
                                             .value_len = 6 }));
    tern_value *result = tern_int(300);
    add_ob(TERNI_OP_DONE, "done result", &o,
           terni_enc_done(&o, &(terni_done){ .key = "inc-1",
                                             .run = 0,
                                             .nbytes = 3,
                                             .rss_bytes = 0,
                                             .duration_us = 0,
                                             .result = result,
                                             .value_len = tern_encoded_size(result) }));
    tern_value_unref(result);
    add_ob(TERNI_OP_DONE, "done large", &o,
           terni_enc_done(&o, &(terni_done){ .key = "inc-1",
                                             .run = 1,
                                             .nbytes = 1 << 20,
                                             .rss_bytes = -1,
                                             .duration_us = -1 }));
    add_ob(TERNI_OP_ERRED, "erred report", &o,
           terni_enc_erred(&o, &(terni_erred){ "inc-1", TERN_ETASK, "boom", 3, NULL, NULL }));
    add_ob(TERNI_OP_ERRED, "erred event", &o,
           terni_enc_erred(&o, &(terni_erred){ "inc-2", TERN_ELOST, "dependency ...", -1,
                                               "seed:inc", "inc-1" }));
    add_tree(TERNI_OP_ADDED, "added", terni_enc_added(&(terni_added){ "inc-1", 9 }));
    add_tree(TERNI_OP_PLUGIN_FAILED, "plugin_failed",
             terni_enc_plugin_failed(&(terni_plugin_failed){ "0123", "dlopen failed" }));
    add_ob(TERNI_OP_PUSH_FAILED, "push_failed", &o,
           terni_enc_push(&o, TERNI_OP_PUSH_FAILED,
                          &(terni_push){ "inc-1", terni_strs_of(K3, 1), "connection refused" }));
    add_ob(TERNI_OP_PUSH, "push", &o,
           terni_enc_push(&o, TERNI_OP_PUSH, &(terni_push){ "inc-1", terni_strs_of(K3, 2), NULL }));
    /* events */
    terni_dep deps[3] = {
        { "c", { .n = 1, .items = (void *const *)RECP, .text_of = rec_addr }, true, false },
        { "a-1", terni_strs_of(ADDR, 2), false, true },
        { "bb-22", terni_strs_of(ADDR, 0), true, true },
    };
    add_ob(TERNI_OP_COMPUTE, "compute full", &o,
           terni_enc_compute(&o, &(terni_compute){ .key = "inc-3",
                                                   .fn = "seed:inc",
                                                   .plugin = "pid",
                                                   .args = ARGS,
                                                   .args_len = 6,
                                                   .run = 4,
                                                   .priority = 5,
                                                   .timeout_ms = 100,
                                                   .deps = deps,
                                                   .ndeps = 3 }));
    add_ob(TERNI_OP_COMPUTE, "compute bare", &o,
           terni_enc_compute(
               &o, &(terni_compute){
                       .key = "k", .fn = "a:b", .plugin = "p", .args = ARGS, .args_len = 1 }));
    add_ob(TERNI_OP_FINISHED, "finished inline", &o,
           terni_enc_finished(
               &o, &(terni_finished){ .key = "k", .nbytes = 6, .value = ARGS, .value_len = 6 }));
    add_ob(TERNI_OP_FINISHED, "finished who", &o,
           terni_enc_finished(
               &o, &(terni_finished){
                       .key = "k",
                       .nbytes = 1 << 20,
                       .who = { .n = 3, .items = (void *const *)RECP, .text_of = rec_addr } }));
    add_tree(TERNI_OP_RECOMPUTING, "recomputing",
             terni_enc_recomputing(&(terni_recomputing){ "inc-1" }));
    add_ob(TERNI_OP_PLUGIN, "plugin to a worker", &o,
           terni_enc_plugin(&o, &(terni_plugin_msg){ .id = "0123", .bytes = ARGS, .len = 6 }));
    add_ob(TERNI_OP_PLUGIN, "plugin to a client", &o,
           terni_enc_plugin(
               &o, &(terni_plugin_msg){
                       .id = "0123", .name = "seed", .version = "1.0", .tasks = "inc add" }));
    /* data plane */
    add_tree(TERNI_OP_GET, "get", terni_enc_get(&(terni_get_msg){ terni_strs_of(K3, 3), "h" }));
    add_tree(TERNI_OP_GET, "get no host",
             terni_enc_get(&(terni_get_msg){ terni_strs_of(K3, 1), NULL }));
    tern_value *arr = tern_f64_array((double[]){ 1, 2, 3 }, 3);
    add_tree(TERNI_OP_PUT, "put", terni_enc_put(&(terni_put_msg){ "scatter-1", arr }));
    tern_value_unref(arr);
    /* the authentication handshake */
    static const uint8_t NONCE[16] = { 1, 2, 3 }, PROOF[32] = { 9, 8, 7 };
    add_tree(TERNI_OP_AUTH, "auth",
             terni_enc_auth(&(terni_auth_msg){ 1, "client", NONCE, sizeof(NONCE) }));
    add_tree(TERNI_OP_CHALLENGE, "challenge",
             terni_enc_challenge(&(terni_challenge){ .snonce = NONCE,
                                                     .snonce_len = sizeof(NONCE),
                                                     .proof = PROOF,
                                                     .proof_len = sizeof(PROOF) }));
    add_tree(TERNI_OP_AUTH_PROOF, "auth_proof",
             terni_enc_auth_proof(&(terni_auth_proof){ PROOF, sizeof(PROOF) }));
}

static void free_samples(void)
{
    for (size_t i = 0; i < nsamples; i++)
        free(samples[i].buf);
    nsamples = 0;
}

/* Encodes a decoded message again, with the same encoder, into buf (malloc'd). */
static void reencode(terni_op_id id, const terni_msg *m, uint8_t **buf, size_t *len)
{
    terni_outbox o = { 0 };
    tern_value *v = NULL;
    bool ob = false, ok = true;
    switch (id) {
    case TERNI_OP_HELLO:
        v = terni_enc_hello(&m->hello);
        break;
    case TERNI_OP_WELCOME:
        v = terni_enc_welcome(&m->welcome);
        break;
    case TERNI_OP_SUBMIT: {
        terni_task_spec *specs = calloc(m->submit.ntasks + 1, sizeof(*specs));
        char err[256];
        for (size_t i = 0; i < m->submit.ntasks; i++)
            cr_assert_eq(terni_dec_task_spec(&m->submit, i, &specs[i], err, sizeof(err)), TERN_OK,
                         "%s", err);
        ok = terni_enc_submit(&o, &m->submit, specs, m->submit.ntasks), ob = true;
        free(specs);
        break;
    }
    case TERNI_OP_RELEASE:
    case TERNI_OP_CANCEL:
    case TERNI_OP_FREE:
    case TERNI_OP_UNPIN:
        ok = terni_enc_keys(&o, id, &m->keys), ob = true;
        break;
    case TERNI_OP_UPLOAD:
        v = terni_enc_upload(&m->upload);
        break;
    case TERNI_OP_SCATTER:
        v = terni_enc_scatter(&m->scatter);
        break;
    case TERNI_OP_WHO_HAS:
        v = terni_enc_who_has(&m->who_has);
        break;
    case TERNI_OP_DONE:
        ok = terni_enc_done(&o, &m->done), ob = true;
        break;
    case TERNI_OP_ERRED:
        ok = terni_enc_erred(&o, &m->erred), ob = true;
        break;
    case TERNI_OP_ADDED:
        v = terni_enc_added(&m->added);
        break;
    case TERNI_OP_PLUGIN_FAILED:
        v = terni_enc_plugin_failed(&m->plugin_failed);
        break;
    case TERNI_OP_PUSH:
    case TERNI_OP_PUSH_FAILED:
        ok = terni_enc_push(&o, id, &m->push), ob = true;
        break;
    case TERNI_OP_COMPUTE: { /* the decoded deps map and lists as the encoder's deps */
        const terni_compute *c = &m->compute;
        size_t n = tern_map_len(c->deps_map);
        terni_dep *deps = calloc(n + 1, sizeof(*deps));
        for (size_t i = 0; i < n; i++) {
            const tern_value *at;
            cr_assert_eq(tern_map_entry(c->deps_map, i, &deps[i].key, &at), TERN_OK);
            deps[i].at = (terni_strs){ .n = tern_list_len(at), .list = at };
            for (size_t k = 0; k < c->take.n; k++)
                deps[i].take |= !strcmp(terni_strs_at(&c->take, k), deps[i].key);
            for (size_t k = 0; k < c->after.n; k++)
                deps[i].after |= !strcmp(terni_strs_at(&c->after, k), deps[i].key);
        }
        terni_compute again = *c;
        again.deps = deps;
        again.ndeps = n;
        ok = terni_enc_compute(&o, &again), ob = true;
        free(deps);
        break;
    }
    case TERNI_OP_FINISHED:
        ok = terni_enc_finished(&o, &m->finished), ob = true;
        break;
    case TERNI_OP_RECOMPUTING:
        v = terni_enc_recomputing(&m->recomputing);
        break;
    case TERNI_OP_PLUGIN:
        ok = terni_enc_plugin(&o, &m->plugin), ob = true;
        break;
    case TERNI_OP_GET:
        v = terni_enc_get(&m->get);
        break;
    case TERNI_OP_PUT:
        v = terni_enc_put(&m->put);
        break;
    case TERNI_OP_AUTH:
        v = terni_enc_auth(&m->auth);
        break;
    case TERNI_OP_CHALLENGE:
        v = terni_enc_challenge(&m->challenge);
        break;
    case TERNI_OP_AUTH_PROOF:
        v = terni_enc_auth_proof(&m->auth_proof);
        break;
    default:
        v = terni_enc_empty(id);
    }
    cr_assert(ok && (ob || v), "%s: encoding again failed", terni_ops[id].name);
    if (ob) {
        *buf = o.buf, *len = o.len;
    } else {
        cr_assert_eq(tern_encode(v, buf, len), TERN_OK);
        tern_value_unref(v);
    }
}

static bool has_decoder(terni_op_id id)
{
    terni_msg m;
    tern_value *v = tern_map_new();
    char err[128] = "";
    int rc = terni_msg_dec(id, v, &m, err, sizeof(err));
    tern_value_unref(v);
    return rc == TERN_OK || !strstr(err, "no typed decoder");
}

LTest(protocol_msgs, op_list_is_sorted_and_looked_up)
{
    for (int i = 0; i < TERNI_OP_COUNT; i++) {
        if (i > 0)
            cr_assert_lt(strcmp(terni_ops[i - 1].name, terni_ops[i].name), 0, "%s before %s",
                         terni_ops[i - 1].name, terni_ops[i].name);
        cr_assert_eq(terni_op_lookup(terni_ops[i].name), i, "%s", terni_ops[i].name);
        cr_assert(terni_ops[i].dir && terni_ops[i].roles, "%s", terni_ops[i].name);
    }
    cr_assert_eq(terni_op_lookup("nonsense"), TERNI_OP_NONE);
    cr_assert_eq(terni_op_lookup(""), TERNI_OP_NONE);
    cr_assert_eq(terni_op_lookup(NULL), TERNI_OP_NONE);
    cr_assert_eq(terni_op_lookup("submi"), TERNI_OP_NONE);
    cr_assert_eq(terni_op_lookup("submitt"), TERNI_OP_NONE);
    tern_value *m = terni_enc_empty(TERNI_OP_STATUS);
    cr_assert_eq(terni_op_of(m), TERNI_OP_STATUS);
    tern_value_unref(m);
    cr_assert_eq(terni_op_of(NULL), TERNI_OP_NONE);
}

/* Every message: canonical bytes (what tern_encode writes for the decoded map), decoded by
 * its decoder, encoded again to the same bytes (so every field came through). */
LTest(protocol_msgs, every_message_round_trips, .init = make_samples, .fini = free_samples)
{
    bool covered[TERNI_OP_COUNT] = { false };
    for (size_t i = 0; i < nsamples; i++) {
        const sample *s = &samples[i];
        tern_value *v;
        char err[256];
        cr_assert_eq(tern_decode(s->buf, s->len, NULL, &v, err, sizeof(err)), TERN_OK, "%s: %s",
                     s->what, err);
        cr_assert_eq(terni_op_of(v), s->id, "%s", s->what);
        uint8_t *canon;
        size_t clen;
        cr_assert_eq(tern_encode(v, &canon, &clen), TERN_OK);
        cr_assert(clen == s->len && !memcmp(canon, s->buf, clen),
                  "%s: the encoder's bytes are not tern_encode's of the same map", s->what);
        free(canon);
        terni_msg m;
        cr_assert_eq(terni_msg_dec(s->id, v, &m, err, sizeof(err)), TERN_OK, "%s: %s", s->what,
                     err);
        uint8_t *again;
        size_t alen;
        reencode(s->id, &m, &again, &alen);
        cr_assert(alen == s->len && !memcmp(again, s->buf, alen),
                  "%s: decoding and encoding again changed the message", s->what);
        free(again);
        covered[s->id] = true;
        tern_value_unref(v);
        const char *dir = getenv("TERN_PROTOCOL_CORPUS"); /* fuzz_protocol's seeds */
        if (dir) {
            char path[512];
            snprintf(path, sizeof(path), "%s/%s.cbor", dir, s->what);
            for (char *c = path + strlen(dir) + 1; *c; c++)
                *c = *c == ' ' ? '-' : *c;
            FILE *f = fopen(path, "wb");
            cr_assert_not_null(f, "%s", path);
            fputc((int)s->id, f);
            fwrite(s->buf, 1, s->len, f);
            fclose(f);
        }
    }
    for (int id = 0; id < TERNI_OP_COUNT; id++)
        cr_assert(covered[id] || !has_decoder(id), "no sample of %s", terni_ops[id].name);
}

/* A few fields read back explicitly (the round trip above compares them all through bytes). */
LTest(protocol_msgs, fields_and_defaults, .init = make_samples, .fini = free_samples)
{
    tern_value *v;
    char err[256];
    for (size_t i = 0; i < nsamples; i++) {
        cr_assert_eq(tern_decode(samples[i].buf, samples[i].len, NULL, &v, NULL, 0), TERN_OK);
        terni_msg m;
        cr_assert_eq(terni_msg_dec(samples[i].id, v, &m, err, sizeof(err)), TERN_OK);
        if (!strcmp(samples[i].what, "submit map")) {
            cr_assert_eq(m.submit.ntasks, 3);
            terni_task_spec sp;
            cr_assert_eq(terni_dec_task_spec(&m.submit, 1, &sp, err, sizeof(err)), TERN_OK);
            cr_assert_str_eq(sp.fn, "seed:inc"); /* the op's default */
            cr_assert_eq(sp.gsize, 3);
            cr_assert_eq(sp.gindex, 1);
            cr_assert_eq(sp.deps.n, 2);
            cr_assert_str_eq(terni_strs_at(&sp.deps, 1), "bb-22");
            cr_assert_eq(terni_dec_task_spec(&m.submit, 2, &sp, err, sizeof(err)), TERN_OK);
            cr_assert_str_eq(sp.fn, "x:y"); /* its own */
            cr_assert_eq(sp.gsize, 1);
        } else if (!strcmp(samples[i].what, "compute full")) {
            cr_assert_str_eq(m.compute.key, "inc-3");
            cr_assert_eq(m.compute.run, 4);
            cr_assert_eq(tern_map_len(m.compute.deps_map), 3);
            cr_assert_eq(m.compute.take.n, 2);
            cr_assert_eq(m.compute.after.n, 2);
            cr_assert_str_eq(terni_strs_at(&m.compute.after, 0), "a-1");
        } else if (!strcmp(samples[i].what, "done large")) {
            cr_assert_eq(m.done.rss_bytes, -1);
            cr_assert_eq(m.done.duration_us, -1);
            cr_assert_null(m.done.value);
        } else if (!strcmp(samples[i].what, "finished who")) {
            cr_assert_eq(m.finished.who.n, 3);
            cr_assert_str_eq(terni_strs_at(&m.finished.who, 2), "tcp://h:3");
        } else if (!strcmp(samples[i].what, "challenge")) {
            cr_assert_eq(m.challenge.snonce_len, 16);
            cr_assert_eq(m.challenge.proof_len, 32);
        } else if (!strcmp(samples[i].what, "hello client")) {
            cr_assert_eq(m.hello.nthreads, 1);
            cr_assert_null(m.hello.name);
            cr_assert(!m.hello.crashed);
        }
        tern_value_unref(v);
    }
}

/* Runs every decoder on v: each either succeeds or fails with a message. */
static void decode_with_all(const tern_value *v)
{
    for (int id = 0; id < TERNI_OP_COUNT; id++) {
        terni_msg m;
        char err[128] = "";
        int rc = terni_msg_dec(id, v, &m, err, sizeof(err));
        cr_assert(rc == TERN_OK || (rc == TERN_EPROTO && err[0]), "%s: rc %d without a message",
                  terni_ops[id].name, rc);
        if (rc == TERN_OK && id == TERNI_OP_SUBMIT)
            for (size_t i = 0; i < m.submit.ntasks; i++) {
                terni_task_spec sp;
                terni_dec_task_spec(&m.submit, i, &sp, err, sizeof(err));
            }
    }
}

LTest(protocol_msgs, prefixes_mutations_and_random_bytes, .init = make_samples,
      .fini = free_samples)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < nsamples; i++) {
        const sample *s = &samples[i];
        for (size_t n = 0; n <= s->len; n++) { /* every prefix (and the whole) */
            tern_value *v = NULL;
            if (tern_decode(s->buf, n, NULL, &v, NULL, 0) == TERN_OK)
                decode_with_all(v);
            tern_value_unref(v);
        }
        uint8_t *mut = malloc(s->len);
        for (int round = 0; round < 300; round++) { /* one to three bytes changed */
            memcpy(mut, s->buf, s->len);
            for (int k = 0; k <= round % 3; k++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                mut[(seed >> 33) % s->len] = (uint8_t)(seed >> 13);
            }
            tern_value *v = NULL;
            if (tern_decode(mut, s->len, NULL, &v, NULL, 0) == TERN_OK)
                decode_with_all(v);
            tern_value_unref(v);
        }
        free(mut);
    }
    uint8_t rnd[64];
    for (int round = 0; round < 20000; round++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t n = (seed >> 40) % sizeof(rnd);
        for (size_t k = 0; k < n; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            rnd[k] = (uint8_t)(seed >> 33);
        }
        if (n)
            rnd[0] = 0xa0 | (rnd[0] & 0x07); /* mostly small maps, so decoders get to read */
        tern_value *v = NULL;
        if (tern_decode(rnd, n, NULL, &v, NULL, 0) == TERN_OK)
            decode_with_all(v);
        tern_value_unref(v);
    }
}

/* Each field of each sample in turn given another type, or removed: the decoder either
 * ignores it (optional) or refuses naming it. */
LTest(protocol_msgs, a_refusal_names_the_field, .init = make_samples, .fini = free_samples)
{
    for (size_t i = 0; i < nsamples; i++) {
        tern_value *v;
        cr_assert_eq(tern_decode(samples[i].buf, samples[i].len, NULL, &v, NULL, 0), TERN_OK);
        for (size_t f = 0; f < tern_map_len(v); f++) {
            const char *k;
            const tern_value *val;
            tern_map_entry(v, f, &k, &val);
            if (!strcmp(k, "op"))
                continue;
            tern_value *bad = tern_map_new();
            for (size_t g = 0; g < tern_map_len(v); g++) {
                const char *k2;
                const tern_value *v2;
                tern_map_entry(v, g, &k2, &v2);
                tern_map_set(bad, k2,
                             g == f ? (tern_value_type(v2) == TERN_T_DOUBLE ? tern_text("x")
                                                                            : tern_double(0.5))
                                    : tern_value_ref((tern_value *)v2));
            }
            terni_msg m;
            char err[256] = "", want[64];
            int rc = terni_msg_dec(samples[i].id, bad, &m, err, sizeof(err));
            snprintf(want, sizeof(want), "\"%s\"", k);
            if (strcmp(k, "value") || samples[i].id == TERNI_OP_DONE ||
                samples[i].id == TERNI_OP_FINISHED) /* put's value is any */
                cr_assert(rc == TERN_EPROTO && strstr(err, want), "%s with %s a double: %d %s",
                          samples[i].what, k, rc, err);
            tern_value_unref(bad);
        }
        tern_value_unref(v);
    }
    terni_done d;
    char err[256];
    tern_value *m = tern_map_new();
    tern_map_set(m, "key", tern_text("k"));
    cr_assert_eq(terni_dec_done(m, &d, err, sizeof(err)), TERN_EPROTO);
    cr_assert_str_eq(err, "done: field \"nbytes\" is missing");
    tern_map_set(m, "nbytes", tern_int(1));
    tern_map_set(m, "value", tern_list_new(0));
    cr_assert_eq(terni_dec_done(m, &d, err, sizeof(err)), TERN_EPROTO);
    cr_assert_str_eq(err, "done: field \"value\" must be bytes");
    tern_value_unref(m);
    m = tern_map_new();
    tern_value *keys = tern_list_new(0);
    tern_list_append(keys, tern_text("a"));
    tern_list_append(keys, tern_int(1));
    tern_map_set(m, "op", tern_text("release"));
    tern_map_set(m, "keys", keys);
    terni_keys_msg km;
    cr_assert_eq(terni_dec_keys(m, &km, err, sizeof(err)), TERN_EPROTO);
    cr_assert_str_eq(err, "release: field \"keys\" must be a list of texts (item 1 is not)");
    tern_value_unref(m);
    cr_assert_eq(terni_dec_done(NULL, &d, err, sizeof(err)), TERN_EPROTO);
    cr_assert_str_eq(err, "done: not a map");
    /* auth's struct is specified after an error too: a field of another type at its default
     * (the gate refuses a wrong version and a malformed request differently) */
    m = tern_map_new();
    tern_map_set(m, "wire", tern_text("1"));
    tern_map_set(m, "role", tern_text("client"));
    tern_map_set(m, "cnonce", tern_int(7));
    terni_auth_msg am;
    cr_assert_eq(terni_dec_auth(m, &am, err, sizeof(err)), TERN_EPROTO);
    cr_assert_str_eq(err, "auth: field \"wire\" must be an int");
    cr_assert_eq(am.wire, 0);
    cr_assert_str_eq(am.role, "client");
    cr_assert_null(am.cnonce);
    tern_value_unref(m);
}

/* docs/protocol.md's op list ("## Op list": one table row per op, "| `name` | directions |
 * roles |") is the code's: every op has its row, with the same directions and roles, and
 * there is no row for an op the code does not have. */
static void names_of(int bits, const char *const *names, int n, char *out, size_t cap)
{
    out[0] = 0;
    for (int i = 0; i < n; i++)
        if (bits & (1 << i))
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? ", " : "", names[i]);
}

LTest(protocol_msgs, docs_describe_every_op)
{
    static const char *const dirs[] = { "request", "event", "data", "auth", "reply" };
    static const char *const roles[] = { "client", "worker", "scheduler" };
    FILE *f = fopen(TERN_SOURCE_DIR "/docs/protocol.md", "r");
    cr_assert_not_null(f, "cannot open %s/docs/protocol.md", TERN_SOURCE_DIR);
    char line[1024];
    bool in_list = false, seen[TERNI_OP_COUNT] = { false };
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "## ", 3)) {
            in_list = strstr(line, "Op list") != NULL;
            continue;
        }
        if (!in_list || strncmp(line, "| `", 3))
            continue;
        char name[64], dir[128], who[128];
        cr_assert_eq(sscanf(line, "| `%63[^`]` | %127[^|]| %127[^|]|", name, dir, who), 3,
                     "op list row: %s", line);
        for (char *e = dir + strlen(dir); e > dir && e[-1] == ' '; *--e = 0) {
        }
        for (char *e = who + strlen(who); e > who && e[-1] == ' '; *--e = 0) {
        }
        terni_op_id id = terni_op_lookup(name);
        cr_assert_neq(id, TERNI_OP_NONE, "docs/protocol.md lists `%s`, which is not an op", name);
        char want_dir[128], want_who[128];
        names_of(terni_ops[id].dir, dirs, 5, want_dir, sizeof(want_dir));
        names_of(terni_ops[id].roles, roles, 3, want_who, sizeof(want_who));
        cr_assert_str_eq(dir, want_dir, "`%s`'s directions in docs/protocol.md", name);
        cr_assert_str_eq(who, want_who, "`%s`'s roles in docs/protocol.md", name);
        seen[id] = true;
    }
    fclose(f);
    for (int id = 0; id < TERNI_OP_COUNT; id++)
        cr_assert(seen[id], "docs/protocol.md's op list does not describe `%s`",
                  terni_ops[id].name);
}
