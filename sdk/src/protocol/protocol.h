/* The wire protocol's messages: one list of ops, and one typed struct with exactly one encoder
 * and one decoder per op. docs/protocol.md describes each field; this header is its reference.
 *
 * The op list. TERNI_OPS below gives every op name that travels in an "op" field, its
 * direction and the roles that may send it. It is sorted by name: the enum of op ids follows
 * it, and terni_op_lookup is a binary search of the names (tests/unit/test_protocol_msgs.c
 * checks the order, and that docs/protocol.md documents every op).
 *
 * One struct per op name. Where an op name travels in two directions with two shapes (erred:
 * a worker's report and the scheduler's event to a client; plugin: code to a worker and
 * plugin info to a client; cancel: a client's request and an event to a worker), the struct
 * holds the union of the fields, optional ones marked below, so that there is still one
 * encoder and one decoder per name.
 *
 * Decoders take an op map as tern_decode gave it and fill the struct. They never allocate:
 * strings, byte strings and lists in the struct BORROW from the map, and are valid for as
 * long as the map is (the caller keeps its reference). Every field is checked against its
 * type; a required field that is missing, or any field of another type, gives TERN_EPROTO
 * with a message naming the op and the field (err, errlen; may be NULL). Fields not listed are
 * ignored. Optional fields that are absent get the default given in their comment.
 *
 * Encoders: the hot ones (compute, free/cancel/release, finished, erred, done, plugin, submit)
 * write one event straight into a terni_outbox (outbox.h) with no value tree, map keys in CBOR's
 * deterministic order, so the bytes are those the value tree would encode to; they return false
 * when out of memory (the partial event is dropped). The others return a new tern_value op map
 * (NULL when out of memory). Either way the bytes are identical to what tern's encoder writes for
 * the same map, so old and new code interoperate.
 */
#ifndef TERNI_PROTOCOL_H
#define TERNI_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tern/value.h>

#include "sdk/src/transport/outbox.h"

/* Directions (bits: an op name may travel in more than one). */
enum {
    TERNI_DIR_REQUEST = 1, /* an op of a request to the scheduler (op stream) */
    TERNI_DIR_EVENT = 2,   /* an event from the scheduler, in a poll reply */
    TERNI_DIR_DATA = 4,    /* a request to a worker's data server */
    TERNI_DIR_AUTH = 8,    /* the authentication handshake (auth.c), any listener */
    TERNI_DIR_REPLY = 16,  /* a result that is an op map (welcome) */
};

/* Roles that may send an op (bits). */
enum {
    TERNI_BY_CLIENT = 1,
    TERNI_BY_WORKER = 2,
    TERNI_BY_SCHEDULER = 4,
    TERNI_BY_PEER = TERNI_BY_CLIENT | TERNI_BY_WORKER,
    TERNI_BY_SERVER = TERNI_BY_SCHEDULER | TERNI_BY_WORKER, /* whoever listens */
};

/* X(ID, "name", directions, roles), sorted by name (bytewise). */
#define TERNI_OPS(X)                                                                               \
    X(ADDED, "added", TERNI_DIR_REQUEST, TERNI_BY_WORKER)                                          \
    X(AUTH, "auth", TERNI_DIR_AUTH, TERNI_BY_PEER)                                                 \
    X(AUTH_PROOF, "auth_proof", TERNI_DIR_AUTH, TERNI_BY_PEER)                                     \
    X(AUTHENTICATED, "authenticated", TERNI_DIR_AUTH, TERNI_BY_SERVER)                             \
    X(BYE, "bye", TERNI_DIR_REQUEST, TERNI_BY_PEER)                                                \
    X(CANCEL, "cancel", TERNI_DIR_REQUEST | TERNI_DIR_EVENT, TERNI_BY_CLIENT | TERNI_BY_SCHEDULER) \
    X(CHALLENGE, "challenge", TERNI_DIR_AUTH, TERNI_BY_SERVER)                                     \
    X(COMPUTE, "compute", TERNI_DIR_EVENT, TERNI_BY_SCHEDULER)                                     \
    X(DONE, "done", TERNI_DIR_REQUEST, TERNI_BY_WORKER)                                            \
    X(ERRED, "erred", TERNI_DIR_REQUEST | TERNI_DIR_EVENT, TERNI_BY_WORKER | TERNI_BY_SCHEDULER)   \
    X(FINISHED, "finished", TERNI_DIR_EVENT, TERNI_BY_SCHEDULER)                                   \
    X(FREE, "free", TERNI_DIR_EVENT, TERNI_BY_SCHEDULER)                                           \
    X(GET, "get", TERNI_DIR_DATA, TERNI_BY_PEER)                                                   \
    X(HEARTBEAT, "heartbeat", TERNI_DIR_REQUEST, TERNI_BY_PEER)                                    \
    X(HELLO, "hello", TERNI_DIR_REQUEST, TERNI_BY_PEER)                                            \
    X(PLUGIN, "plugin", TERNI_DIR_EVENT, TERNI_BY_SCHEDULER)                                       \
    X(PLUGIN_FAILED, "plugin_failed", TERNI_DIR_REQUEST, TERNI_BY_WORKER)                          \
    X(PLUGINS, "plugins", TERNI_DIR_REQUEST, TERNI_BY_CLIENT)                                      \
    X(POLL, "poll", TERNI_DIR_REQUEST, TERNI_BY_PEER)                                              \
    X(PUSH, "push", TERNI_DIR_EVENT, TERNI_BY_SCHEDULER)                                           \
    X(PUSH_FAILED, "push_failed", TERNI_DIR_REQUEST, TERNI_BY_WORKER)                              \
    X(PUT, "put", TERNI_DIR_DATA, TERNI_BY_PEER)                                                   \
    X(RECOMPUTING, "recomputing", TERNI_DIR_EVENT, TERNI_BY_SCHEDULER)                             \
    X(RELEASE, "release", TERNI_DIR_REQUEST, TERNI_BY_CLIENT)                                      \
    X(SCATTER, "scatter", TERNI_DIR_REQUEST, TERNI_BY_CLIENT)                                      \
    X(STATUS, "status", TERNI_DIR_REQUEST, TERNI_BY_PEER)                                          \
    X(SUBMIT, "submit", TERNI_DIR_REQUEST, TERNI_BY_CLIENT)                                        \
    X(UNPIN, "unpin", TERNI_DIR_DATA, TERNI_BY_PEER)                                               \
    X(UPLOAD, "upload", TERNI_DIR_REQUEST, TERNI_BY_CLIENT)                                        \
    X(WELCOME, "welcome", TERNI_DIR_REPLY, TERNI_BY_SCHEDULER)                                     \
    X(WHO_HAS, "who_has", TERNI_DIR_REQUEST, TERNI_BY_PEER)

typedef enum terni_op_id {
    TERNI_OP_NONE = -1, /* not an op of the list */
#define TERNI_OP_ENUM(id, name, dir, roles) TERNI_OP_##id,
    TERNI_OPS(TERNI_OP_ENUM)
#undef TERNI_OP_ENUM
        TERNI_OP_COUNT
} terni_op_id;

typedef struct terni_op_info {
    const char *name;
    int dir;   /* TERNI_DIR_* bits */
    int roles; /* TERNI_BY_* bits */
} terni_op_info;

/* The list, indexed by terni_op_id. */
extern const terni_op_info terni_ops[TERNI_OP_COUNT];

/* The id of the op named name (NULL: none), or TERNI_OP_NONE. A binary search. */
terni_op_id terni_op_lookup(const char *name);
/* The id of an op map's "op" field, or TERNI_OP_NONE (not a map, no op, unknown). */
terni_op_id terni_op_of(const tern_value *m);
/* Whether id is an op of the list that travels in direction dir (TERNI_DIR_* bits). */
static inline bool terni_op_in(terni_op_id id, int dir)
{
    return id > TERNI_OP_NONE && id < TERNI_OP_COUNT && (terni_ops[id].dir & dir);
}

/* ---- lists of texts -------------------------------------------------------------------- */

/* A list of texts (keys, addresses, names) as a message holds it: decoded, a borrowed tern
 * list whose items are all texts (the decoder checked); to encode, also an array of strings,
 * or an array of records with an accessor (the scheduler's task holders: no copy). */
typedef struct terni_strs {
    size_t n;
    const tern_value *list;                   /* decoded: a list of n texts */
    const char *const *v;                     /* or n strings */
    void *const *items;                       /* or n records, */
    const char *(*text_of)(const void *item); /* each one's text */
} terni_strs;

/* The i-th text (i < s->n). */
const char *terni_strs_at(const terni_strs *s, size_t i);
static inline terni_strs terni_strs_of(const char *const *v, size_t n)
{
    return (terni_strs){ .n = n, .v = v };
}

/* CBOR's deterministic order of map keys (shorter first, then bytewise): < 0, 0, > 0. */
int terni_cbor_key_cmp(const char *a, const char *b);

/* ---- requests to the scheduler ---------------------------------------------------------- */

/* hello: the first op of a connection. */
typedef struct terni_hello {
    int64_t wire;            /* 0 when absent (refused by the scheduler) */
    const char *role;        /* ? "client" | "worker"; NULL: a client */
    const char *name;        /* ? worker: unique name */
    const char *address;     /* ? worker: its data server */
    int64_t nthreads;        /* ? default 1 */
    int64_t memory;          /* ? bytes of RAM, default 0 */
    const char *crashed_why; /* ? worker restarted after a crash: how (crashed.why) */
    bool crashed;            /* crashed map present */
    terni_strs crashed_keys; /* ? what it was running (crashed.keys) */
} terni_hello;
tern_value *terni_enc_hello(const terni_hello *m);
int terni_dec_hello(const tern_value *op, terni_hello *out, char *err, size_t errlen);

/* Plugin info: a result (upload, plugins, welcome.plugins) and, with op "plugin", the event
 * to a client. */
typedef struct terni_plugin_info {
    const char *id, *name, *version, *tasks;
} terni_plugin_info;
tern_value *terni_enc_plugin_info(const terni_plugin_info *m); /* no "op" field */
int terni_dec_plugin_info(const tern_value *m, terni_plugin_info *out, char *err, size_t errlen);

/* welcome: the result of hello. */
typedef struct terni_welcome {
    int64_t wire, heartbeat_ms, death_timeout_ms, workers;
    const tern_value *plugins; /* list of plugin info maps (the encoder takes a reference) */
} terni_welcome;
tern_value *terni_enc_welcome(const terni_welcome *m);
int terni_dec_welcome(const tern_value *op, terni_welcome *out, char *err, size_t errlen);

/* One task of a submit. fn, plugin and gsize fall back to the op's (the decoder applies it). */
typedef struct terni_task_spec {
    const char *key;         /* the decoder refuses a spec without one */
    const char *fn, *plugin; /* ? NULL: absent here and on the op (malformed submission) */
    const void *args;        /* ? bytes(CBOR); NULL: absent (malformed submission) */
    size_t args_len;
    terni_strs deps;       /* ? default none */
    int64_t priority;      /* ? default 0 */
    int64_t retries;       /* ? default 0 */
    int64_t gindex, gsize; /* ? default 0 */
    int64_t timeout_ms;    /* ? default 0 */
    terni_strs workers;    /* ? names allowed to run it; default none (any) */
} terni_task_spec;

/* submit: the specs stay in the op (a submit may hold a million); terni_dec_task_spec decodes
 * the i-th. fn, plugin, group and gsize are defaults for specs that lack them. */
typedef struct terni_submit {
    const tern_value *tasks; /* decoded: the list of spec maps */
    size_t ntasks;
    const char *fn, *plugin; /* ? */
    int64_t group, gsize;    /* ? default 0 */
} terni_submit;
int terni_dec_submit(const tern_value *op, terni_submit *out, char *err, size_t errlen);
/* The i-th spec of a decoded submit (i < sub->ntasks), with the op's defaults applied. */
int terni_dec_task_spec(const terni_submit *sub, size_t i, terni_task_spec *out, char *err,
                        size_t errlen);
/* A submit of n specs. A spec's fn and plugin are written only when they differ from the
 * op's, gsize only when it differs and gindex only when gsize > 1 (as the client does). */
bool terni_enc_submit(terni_outbox *o, const terni_submit *m, const terni_task_spec *specs,
                      size_t n);
/* The same in steps, for a writer that makes each spec as it goes (the client): begin (the op
 * with its list of n specs), then n times spec, then end (false: out of memory, the op is
 * dropped). terni_enc_submit is these three. */
void terni_enc_submit_begin(terni_outbox *o, const terni_submit *m, size_t n, size_t *mark);
void terni_enc_submit_spec(terni_outbox *o, const terni_submit *m, const terni_task_spec *s);
bool terni_enc_submit_end(terni_outbox *o, const terni_submit *m, size_t mark);

/* release, cancel (request and event), free, unpin: {"op", "keys"}. */
typedef struct terni_keys_msg {
    terni_strs keys;
} terni_keys_msg;
bool terni_enc_keys(terni_outbox *o, terni_op_id op, const terni_keys_msg *m);
int terni_dec_keys(const tern_value *op, terni_keys_msg *out, char *err, size_t errlen);

/* upload */
typedef struct terni_upload {
    const void *bytes; /* the plugin file */
    size_t len;
} terni_upload;
tern_value *terni_enc_upload(const terni_upload *m);
int terni_dec_upload(const tern_value *op, terni_upload *out, char *err, size_t errlen);

/* scatter: key is optional here so that the scheduler can give its own message. */
typedef struct terni_scatter {
    const char *key; /* ? */
} terni_scatter;
tern_value *terni_enc_scatter(const terni_scatter *m);
int terni_dec_scatter(const tern_value *op, terni_scatter *out, char *err, size_t errlen);

/* who_has */
typedef struct terni_who_has {
    terni_strs keys;
    bool addresses; /* ? default false: worker names */
} terni_who_has;
tern_value *terni_enc_who_has(const terni_who_has *m);
int terni_dec_who_has(const tern_value *op, terni_who_has *out, char *err, size_t errlen);

/* Ops without fields: heartbeat, bye, poll, plugins, status, authenticated. */
tern_value *terni_enc_empty(terni_op_id op);
int terni_dec_empty(const tern_value *op, char *err, size_t errlen); /* checks it is a map */

/* done: a worker's result. */
typedef struct terni_done {
    const char *key;
    int64_t run;         /* ? the compute event's; default -1 */
    int64_t nbytes;      /* size of the result's encoding */
    int64_t rss_bytes;   /* ? default -1 (absent; the encoder writes it when >= 0) */
    int64_t duration_us; /* ? default -1 (absent; the encoder writes it when >= 0) */
    const void *value;   /* ? the result's CBOR, inline (NULL: absent) */
    size_t value_len;
    const tern_value *result; /* encoder only: instead of value, encode this value inline */
} terni_done;
bool terni_enc_done(terni_outbox *o, const terni_done *m);
int terni_dec_done(const tern_value *op, terni_done *out, char *err, size_t errlen);

/* erred: a worker's report (run) or the scheduler's event to a client (task, root). */
typedef struct terni_erred {
    const char *key;
    int64_t code;        /* ? a tern_err; default TERN_ETASK */
    const char *message; /* ? default NULL */
    int64_t run;         /* ? report only; default -1 (absent) */
    const char *task;    /* ? event only: the root cause's "plugin:symbol" */
    const char *root;    /* ? event only: the root cause's key */
} terni_erred;
bool terni_enc_erred(terni_outbox *o, const terni_erred *m);
int terni_dec_erred(const tern_value *op, terni_erred *out, char *err, size_t errlen);

/* added: a worker holds a copy it did not compute. */
typedef struct terni_added {
    const char *key;
    int64_t nbytes; /* ? default 0 */
} terni_added;
tern_value *terni_enc_added(const terni_added *m);
int terni_dec_added(const tern_value *op, terni_added *out, char *err, size_t errlen);

/* plugin_failed */
typedef struct terni_plugin_failed {
    const char *id;
    const char *message; /* ? */
} terni_plugin_failed;
tern_value *terni_enc_plugin_failed(const terni_plugin_failed *m);
int terni_dec_plugin_failed(const tern_value *op, terni_plugin_failed *out, char *err,
                            size_t errlen);

/* ---- events from the scheduler ---------------------------------------------------------- */

/* One dependency of a compute event, to encode: the addresses holding it, and whether the
 * task takes it or waits for it. */
typedef struct terni_dep {
    const char *key;
    terni_strs at;
    bool take, after;
} terni_dep;

/* compute. To encode, deps/ndeps (sorted by terni_cbor_key_cmp of their keys) give deps, take
 * and after; decoded, deps_map is the map key -> list of addresses (each checked) and take and
 * after the lists. */
typedef struct terni_compute {
    const char *key, *fn, *plugin;
    const void *args; /* bytes(CBOR) */
    size_t args_len;
    const tern_value *args_value; /* decoder: the bytes value itself (to keep a reference) */
    int64_t run;
    int64_t priority;      /* ? default 0 (written when non-zero) */
    int64_t timeout_ms;    /* ? default 0 (written when > 0) */
    const terni_dep *deps; /* encoder */
    size_t ndeps;
    const tern_value *deps_map; /* decoder: ? NULL when absent */
    terni_strs take, after;     /* decoder: ? */
} terni_compute;
bool terni_enc_compute(terni_outbox *o, const terni_compute *m);
int terni_dec_compute(const tern_value *op, terni_compute *out, char *err, size_t errlen);

/* finished: value inline, or else who (the holders' addresses). */
typedef struct terni_finished {
    const char *key;
    int64_t nbytes;
    const void *value; /* ? NULL/0: absent, who is sent */
    size_t value_len;
    terni_strs who; /* ? */
} terni_finished;
bool terni_enc_finished(terni_outbox *o, const terni_finished *m);
int terni_dec_finished(const tern_value *op, terni_finished *out, char *err, size_t errlen);

/* recomputing */
typedef struct terni_recomputing {
    const char *key;
} terni_recomputing;
tern_value *terni_enc_recomputing(const terni_recomputing *m);
int terni_dec_recomputing(const tern_value *op, terni_recomputing *out, char *err, size_t errlen);

/* plugin: to a worker {id, bytes}; to a client {id, name, version, tasks}. */
typedef struct terni_plugin_msg {
    const char *id;
    const void *bytes; /* ? the file (to a worker) */
    size_t len;
    const char *name, *version, *tasks; /* ? (to a client) */
} terni_plugin_msg;
/* Into an outbox: with bytes, {id, op, bytes}; else the plugin info with op. */
bool terni_enc_plugin(terni_outbox *o, const terni_plugin_msg *m);
int terni_dec_plugin(const tern_value *op, terni_plugin_msg *out, char *err, size_t errlen);

/* push (event): send key's result, once you have it, to the data servers at `to` (a "put" each).
 * push_failed (a worker's report): the put of key to `to` failed (message says why). */
typedef struct terni_push {
    const char *key;
    terni_strs to;
    const char *message; /* ? push_failed only; default NULL */
} terni_push;
bool terni_enc_push(terni_outbox *o, terni_op_id op, const terni_push *m);
int terni_dec_push(const tern_value *op, terni_push *out, char *err, size_t errlen);

/* ---- the data plane ---------------------------------------------------------------------- */

typedef struct terni_get_msg {
    terni_strs keys;
    const char *host; /* ? the requester's host identity (shm.h) */
} terni_get_msg;
tern_value *terni_enc_get(const terni_get_msg *m);
int terni_dec_get(const tern_value *op, terni_get_msg *out, char *err, size_t errlen);

typedef struct terni_put_msg {
    const char *key;
    const tern_value *value; /* any (the encoder takes a reference) */
} terni_put_msg;
tern_value *terni_enc_put(const terni_put_msg *m);
int terni_dec_put(const tern_value *op, terni_put_msg *out, char *err, size_t errlen);

/* ---- the authentication handshake (auth.c) ---------------------------------------------- */

/* auth: the dialer's first message. Every field is optional here, so that the gate can tell a
 * wrong wire version (refused with TERN_EPROTO) from a malformed request (TERN_EAUTH); unlike
 * the other decoders', this one's struct is specified after an error too: a field of another
 * type is left at its default. */
typedef struct terni_auth_msg {
    int64_t wire;       /* ? default 0 */
    const char *role;   /* ? */
    const void *cnonce; /* ? the dialer's nonce */
    size_t cnonce_len;
} terni_auth_msg;
tern_value *terni_enc_auth(const terni_auth_msg *m);
int terni_dec_auth(const tern_value *op, terni_auth_msg *out, char *err, size_t errlen);

/* challenge: the server's nonce and its proof. */
typedef struct terni_challenge {
    const void *snonce, *proof;
    size_t snonce_len, proof_len;
} terni_challenge;
tern_value *terni_enc_challenge(const terni_challenge *m);
int terni_dec_challenge(const tern_value *op, terni_challenge *out, char *err, size_t errlen);

/* auth_proof: the dialer's proof. authenticated has no fields (terni_enc_empty). */
typedef struct terni_auth_proof {
    const void *proof;
    size_t proof_len;
} terni_auth_proof;
tern_value *terni_enc_auth_proof(const terni_auth_proof *m);
int terni_dec_auth_proof(const tern_value *op, terni_auth_proof *out, char *err, size_t errlen);

/* ---- any message ---------------------------------------------------------------------- */

/* Every decoded message (by op id; the empty ops have none). */
typedef union terni_msg {
    terni_hello hello;
    terni_welcome welcome;
    terni_submit submit;
    terni_keys_msg keys; /* release, cancel, free, unpin */
    terni_upload upload;
    terni_scatter scatter;
    terni_who_has who_has;
    terni_done done;
    terni_erred erred;
    terni_added added;
    terni_plugin_failed plugin_failed;
    terni_compute compute;
    terni_finished finished;
    terni_recomputing recomputing;
    terni_plugin_msg plugin;
    terni_push push; /* push, push_failed */
    terni_get_msg get;
    terni_put_msg put;
    terni_auth_msg auth;
    terni_challenge challenge;
    terni_auth_proof auth_proof;
} terni_msg;

/* Decodes op as the message `id` names (its "op" field is not checked). */
int terni_msg_dec(terni_op_id id, const tern_value *op, terni_msg *out, char *err, size_t errlen);

#endif
