/* Ops from peers: each request op decoded and handed to the graph engine (graph.h) or the
 * plugin registry. Dispatch is a table: each op's name, the roles that may send it, and its
 * handler; the role is checked before any handler runs (docs/protocol.md lists the ops). */
#include "sched_internal.h"

#include "log.h"
#include "placement.h"
#include "rss.h"
#include "utf8.h"
#include "wire.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

/* ---- clients: submit --------------------------------------------------------------------- */

/* A field of a task spec, or the submit op's when the spec has none (fn, plugin, group and
 * gsize are sent once per op by our client). */
static const tern_value *spec_get(const tern_value *spec, const tern_value *op, const char *k)
{
    const tern_value *v = terni_get(spec, k);
    return v ? v : terni_get(op, k);
}

static const char *spec_text(const tern_value *spec, const tern_value *op, const char *k)
{
    const char *s = NULL;
    return tern_value_get_text(spec_get(spec, op, k), &s, NULL) == TERN_OK ? s : NULL;
}

/* The texts of a list (NULL for items that are not text) into out[n] (malloc'd when more than
 * fit in `stack`). NULL when out of memory. */
static const char **texts_of(const tern_value *list, size_t *n, const char **stack, size_t cap)
{
    *n = tern_list_len(list);
    const char **out = *n <= cap ? stack : malloc(*n * sizeof(*out));
    for (size_t i = 0; out && i < *n; i++) {
        const tern_value *item;
        out[i] = NULL;
        if (tern_list_get(list, i, &item) == TERN_OK)
            tern_value_get_text(item, &out[i], NULL);
    }
    return out;
}

/* One task of a submit op. Errors become an erred task (so the future errs), never a failed
 * request: other tasks of the batch are unaffected. */
static void submit_one(sched *S, session *s, const tern_value *spec, const tern_value *op)
{
    graph_spec gs = { .key = terni_get_text(spec, "key"),
                      .fn = spec_text(spec, op, "fn"),
                      .plugin_id = spec_text(spec, op, "plugin") };
    if (!terni_valid_key(gs.key))
        return; /* nothing to answer to (our client never sends such a key) */
    const tern_value *args = terni_get(spec, "args");
    if (tern_value_get_bytes(args, &gs.args, &gs.args_len) != TERN_OK)
        gs.args = NULL;
    int64_t v, gi = 0, gsize = 0;
    if (terni_get_int(spec, "priority", &v))
        gs.priority = (int)v;
    if (terni_get_int(spec, "retries", &v) && v > 0)
        gs.retries = (int)(v > 1000 ? 1000 : v);
    terni_get_int(spec, "gindex", &gi); /* absent: 0; out of range: no co-assignment */
    if (tern_value_get_int(spec_get(spec, op, "gsize"), &gsize) == TERN_OK && gsize > 1 &&
        gsize <= UINT32_MAX && gi >= 0 && gi < gsize) {
        gs.gindex = (uint32_t)gi;
        gs.gsize = (uint32_t)gsize;
    }
    if (terni_get_int(spec, "timeout_ms", &v) && v > 0)
        gs.timeout_ms = v;
    char msg[512];
    if (gs.plugin_id && gs.fn && !sched_plugin(S, gs.plugin_id)) {
        gs.code = TERN_ENOTFOUND;
        terni_utf8_fmt(msg, sizeof(msg), "plugin %.16s... for %s is not uploaded", gs.plugin_id,
                       gs.fn);
        gs.msg = msg;
    }
    const char *deps_stack[8], *names_stack[4];
    const char **deps = texts_of(terni_get(spec, "deps"), &gs.ndeps, deps_stack, 8);
    const char **names = texts_of(terni_get(spec, "workers"), &gs.nrestrict, names_stack, 4);
    gs.deps = deps;
    gs.restrict_to = names;
    if (deps && names && gs.ndeps < UINT32_MAX)
        graph_submit(&S->g, &s->c, &gs); /* out of memory: dropped, unanswered */
    if (deps != deps_stack)
        free(deps);
    if (names != names_stack)
        free(names);
}

void sched_submit_range(sched *S, session *s, const tern_value *op, size_t from, size_t to)
{
    const tern_value *tasks = terni_get(op, "tasks"), *spec;
    for (size_t i = from; i < to && tern_list_get(tasks, i, &spec) == TERN_OK; i++)
        submit_one(S, s, spec, op);
}

static tern_value *op_submit(sched *S, session *s, const tern_value *op)
{
    sched_submit_range(S, s, op, 0, tern_list_len(terni_get(op, "tasks")));
    return tern_null();
}

/* ---- clients: the rest ------------------------------------------------------------------ */

typedef void (*key_fn)(graph *, client *, const char *);

static tern_value *each_key(sched *S, session *s, const tern_value *op, key_fn fn)
{
    const tern_value *keys = terni_get(op, "keys"), *item;
    const char *k;
    for (size_t i = 0; tern_list_get(keys, i, &item) == TERN_OK; i++)
        if (tern_value_get_text(item, &k, NULL) == TERN_OK)
            fn(&S->g, &s->c, k);
    return tern_null();
}

static tern_value *op_release(sched *S, session *s, const tern_value *op)
{
    return each_key(S, s, op, graph_release);
}

static tern_value *op_cancel(sched *S, session *s, const tern_value *op)
{
    return each_key(S, s, op, graph_cancel);
}

/* {"keys": [...], "addresses"?: bool} -> key -> the names (or, with addresses, the data-server
 * addresses) of the workers holding it. */
static tern_value *op_who_has(sched *S, session *s, const tern_value *op)
{
    (void)s;
    tern_value *out = tern_map_new();
    const tern_value *keys = terni_get(op, "keys"), *item;
    bool addresses = terni_get_bool(op, "addresses");
    const char *k;
    for (size_t i = 0; out && tern_list_get(keys, i, &item) == TERN_OK; i++) {
        if (tern_value_get_text(item, &k, NULL) != TERN_OK)
            continue;
        task *t = graph_task(&S->g, k);
        tern_value *names = tern_list_new(0);
        for (size_t j = 0; t && names && j < t->who.n; j++)
            tern_list_append(names,
                             tern_text(addresses ? WHO_AT(t, j)->address : WHO_AT(t, j)->name));
        tern_map_set(out, k, names);
    }
    return out;
}

/* scatter {key}: choose a worker for data the client will put there itself. */
static tern_value *op_scatter(sched *S, session *s, const tern_value *op)
{
    const char *key = terni_get_text(op, "key");
    if (!terni_valid_key(key))
        return terni_error_result(TERN_EINVAL,
                                  "scatter needs a key (1 to %d bytes, no control characters)",
                                  TERNI_MAX_KEY);
    worker *best = placement_scatter_target(&S->g);
    if (!best) {
        if (graph_task(&S->g, key))
            graph_scatter(&S->g, &s->c, key); /* known: one more wanter, told if finished */
        return terni_error_result(TERN_ENOWORKERS, "no worker is connected to hold the data");
    }
    if (!graph_scatter(&S->g, &s->c, key))
        return terni_error_result(TERN_ENOMEM, "out of memory");
    tern_value *r = tern_map_new();
    if (r && terni_set_text(r, "worker", best->name) && terni_set_text(r, "address", best->address))
        return r;
    tern_value_unref(r);
    return NULL;
}

static tern_value *op_upload(sched *S, session *s, const tern_value *op)
{
    return sched_op_upload(S, s, op);
}

static tern_value *op_plugins(sched *S, session *s, const tern_value *op)
{
    (void)s, (void)op;
    return sched_op_plugins(S);
}

/* ---- workers ---------------------------------------------------------------------------- */

static tern_value *op_done(sched *S, session *s, const tern_value *op)
{
    const char *key = terni_get_text(op, "key");
    int64_t nbytes = 0, duration_us = -1;
    terni_get_int(op, "nbytes", &nbytes);
    terni_get_int(op, "rss_bytes", &s->w->rss); /* optional */
    if (!terni_get_int(op, "duration_us", &duration_us) || duration_us < 0)
        duration_us = -1;
    const void *inl = NULL;
    size_t inl_len = 0;
    if (tern_value_get_bytes(terni_get(op, "value"), &inl, &inl_len) != TERN_OK)
        inl = NULL, inl_len = 0;
    if (key)
        graph_done(&S->g, s->w, key, nbytes, inl, inl_len, duration_us);
    return tern_null();
}

static tern_value *op_erred(sched *S, session *s, const tern_value *op)
{
    const char *key = terni_get_text(op, "key"), *msg = terni_get_text(op, "message");
    int64_t code = TERN_ETASK, run = -1;
    terni_get_int(op, "code", &code);
    terni_get_int(op, "run", &run);
    if (!key)
        return tern_null();
    task *t = graph_task(&S->g, key);
    if (t && t->state == T_PROCESSING && t->on == s->w && code == TERN_ELOST)
        sched_log("%s could not fetch a dependency on %s: %s", key, s->w->name, msg ? msg : "");
    else if (t && t->state == T_PROCESSING && t->on == s->w && t->retries > 0)
        sched_log("retrying %s after: %s", key, msg ? msg : "");
    graph_erred(&S->g, s->w, key, code > 0 && code < TERN_ERR_COUNT ? (int)code : TERN_ETASK, msg,
                run);
    return tern_null();
}

static tern_value *op_added(sched *S, session *s, const tern_value *op)
{
    const char *key = terni_get_text(op, "key");
    int64_t nbytes = 0;
    terni_get_int(op, "nbytes", &nbytes);
    if (key)
        graph_added(&S->g, s->w, key, nbytes);
    return tern_null();
}

static tern_value *op_plugin_failed(sched *S, session *s, const tern_value *op)
{
    (void)S;
    const char *id = terni_get_text(op, "id"), *msg = terni_get_text(op, "message");
    sched_log("worker %s could not load plugin %.12s: %s", s->w->name, id ? id : "?",
              msg ? msg : "");
    return tern_null();
}

/* A restarted executor reports {why, keys} of its predecessor's crash: the tasks it was
 * running are suspects. One blamed --allowed-failures times errs with TERN_EKILLED. */
void sched_blame_crash(sched *S, worker *w, const tern_value *crashed)
{
    if (!crashed)
        return;
    const char *why = terni_get_text(crashed, "why"), *key;
    const tern_value *keys = terni_get(crashed, "keys"), *item;
    sched_log("worker %s restarted after its executor %s", w->name, why ? why : "crashed");
    for (size_t i = 0; tern_list_get(keys, i, &item) == TERN_OK; i++)
        if (tern_value_get_text(item, &key, NULL) == TERN_OK)
            graph_blame(&S->g, w, key, why);
}

/* ---- either ---------------------------------------------------------------------------- */

static tern_value *op_heartbeat(sched *S, session *s, const tern_value *op)
{
    (void)S, (void)s, (void)op;
    return tern_null(); /* its arrival is the point (liveness) */
}

/* The peer is about to close its connection: its parked poll is answered now (empty; events
 * queued for it stay queued) and any later one at once, so that nothing is sent to it while it
 * closes (nng 1.5.2's close can deadlock when a reply lands then: link.c, say_bye). */
static tern_value *op_bye(sched *S, session *s, const tern_value *op)
{
    (void)S, (void)op;
    s->bye = true;
    sched_answer_poll_empty(s);
    return tern_null();
}

static tern_value *op_status(sched *S, session *s, const tern_value *op)
{
    (void)s, (void)op;
    return sched_status(S);
}

/* Bytes malloc has handed out and not had back (all arenas): the live part of the RSS. */
static int64_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (int64_t)(mi.uordblks + mi.hblkhd);
}

#define RUNNING_SHOWN 32 /* keys listed per worker in status (the count is exact) */

static tern_value *worker_status(const worker *w, tern_value *running)
{
    tern_value *m = tern_map_new();
    if (!m) {
        tern_value_unref(running);
        return NULL;
    }
    if (terni_set(m, "running", running) && terni_set_text(m, "name", w->name) &&
        terni_set_text(m, "address", w->address) && terni_set_int(m, "nthreads", w->nthreads) &&
        terni_set_int(m, "memory", w->memory) && terni_set_int(m, "keys", (int64_t)w->nkeys) &&
        terni_set_int(m, "bytes", w->nbytes) &&
        terni_set_int(m, "processing", (int64_t)w->nprocessing) &&
        terni_set_int(m, "tasks_done", (int64_t)w->ndone) && terni_set_int(m, "rss_bytes", w->rss))
        return m;
    tern_value_unref(m);
    return NULL;
}

tern_value *sched_status(sched *S)
{
    graph *g = &S->g;
    tern_value *out = tern_map_new(), *workers = tern_list_new(0), *states = tern_map_new();
    worker *w, *wtmp;
    HASH_ITER(hh, g->workers, w, wtmp)
    ((session *)w->peer)->status_keys = tern_list_new(0);
    stats_begin(&g->st);
    TERNI_KEYTAB_EACH (&g->tasks, e) {
        task *t = e->value;
        stats_count(t->sym, t->state);
        tern_value *keys = t->on ? ((session *)t->on->peer)->status_keys : NULL;
        if (t->state == T_PROCESSING && keys && tern_list_len(keys) < RUNNING_SHOWN)
            tern_list_append(keys, tern_text(t->key));
    }
    for (int i = 0; states && i < T_NSTATES; i++)
        tern_map_set(states, graph_state_names[i], tern_int((int64_t)g->nstate[i]));
    HASH_ITER(hh, g->workers, w, wtmp)
    {
        session *ws = w->peer;
        tern_value *m = worker_status(w, ws->status_keys);
        ws->status_keys = NULL;
        if (m)
            tern_list_append(workers, m);
    }
    size_t nclients = 0;
    session *s, *stmp;
    HASH_ITER(hh, S->sessions, s, stmp)
    nclients += s->role == ROLE_CLIENT;
    if (!out || !terni_set(out, "workers", workers) || !terni_set(out, "tasks", states) ||
        !terni_set_int(out, "keys_in_memory", (int64_t)g->nstate[T_MEMORY]) ||
        !terni_set_int(out, "clients", (int64_t)nclients) ||
        !terni_set_int(out, "plugins", (int64_t)HASH_COUNT(S->plugins)) ||
        !terni_set_int(out, "tasks_done", (int64_t)g->ntasks_done) ||
        !terni_set_int(out, "workers_lost", (int64_t)g->nworkers_lost) ||
        !terni_set_int(out, "recomputed", (int64_t)g->nrecomputed) ||
        !terni_set_int(out, "rss_bytes", terni_rss_bytes_now()) ||
        !terni_set_int(out, "heap_bytes", heap_in_use()) ||
        !terni_set_int(out, "held_requests", (int64_t)S->nheld) ||
        !stats_to_status(&g->st, out, S->http_url)) {
        tern_value_unref(out);
        return NULL;
    }
    return out;
}

/* ---- hello ------------------------------------------------------------------------------ */

static tern_value *worker_hello(sched *S, session *s, const tern_value *op)
{
    const char *name = terni_get_text(op, "name"), *address = terni_get_text(op, "address");
    int64_t nthreads = 1, memory = 0;
    terni_get_int(op, "nthreads", &nthreads);
    terni_get_int(op, "memory", &memory);
    if (!name || !*name || !address || !*address)
        return terni_error_result(TERN_EINVAL, "a worker must give a name and an address");
    if (!terni_valid_worker_name(name) || !terni_valid_address(address))
        return terni_error_result(TERN_EINVAL,
                                  "a worker name is 1 to 128 of A-Z a-z 0-9 . _ : @ + -, "
                                  "and its address a tcp://, tls+tcp:// or ipc:// URL");
    worker *w;
    HASH_FIND_STR(S->g.workers, name, w);
    if (w)
        return terni_error_result(TERN_EINVAL,
                                  "a worker named %s is already connected; names must be "
                                  "unique (--name)",
                                  name);
    w = calloc(1, sizeof(*w));
    if (!w || !(w->name = strdup(name)) || !(w->address = strdup(address))) {
        if (w)
            free(w->name);
        free(w);
        return terni_error_result(TERN_ENOMEM, "out of memory");
    }
    w->nthreads = nthreads > 0 ? (int)nthreads : 1;
    w->memory = memory;
    w->peer = s;
    w->last_ns = terni_now_ns();
    s->role = ROLE_WORKER;
    s->w = w;
    graph_worker_add(&S->g, w);
    sched_log("worker %s joined (%d threads, data at %s)", w->name, w->nthreads, w->address);
    sched_send_plugins(S, s);
    sched_blame_crash(S, w, terni_get(op, "crashed"));
    graph_place_unassigned(&S->g);
    return NULL;
}

static tern_value *op_hello(sched *S, session *s, const tern_value *op)
{
    int64_t wire = 0;
    terni_get_int(op, "wire", &wire);
    if (wire != TERNI_WIRE_VERSION)
        return terni_error_result(TERN_EPROTO,
                                  "wire protocol version %lld is not supported: this scheduler "
                                  "speaks version %d; use matching tern versions",
                                  (long long)wire, TERNI_WIRE_VERSION);
    if (s->role != ROLE_NONE)
        return terni_error_result(TERN_EPROTO, "this connection already said hello");
    const char *role = terni_get_text(op, "role");
    if (role && !strcmp(role, "worker")) {
        tern_value *refused = worker_hello(S, s, op);
        if (refused)
            return refused;
    } else {
        s->role = ROLE_CLIENT;
    }
    tern_value *r = terni_op("welcome");
    if (r && terni_set_int(r, "wire", TERNI_WIRE_VERSION) &&
        terni_set_int(r, "heartbeat_ms", S->opts->heartbeat_ms) &&
        terni_set_int(r, "death_timeout_ms", S->opts->death_timeout_ms) &&
        terni_set_int(r, "workers", (int64_t)HASH_COUNT(S->g.workers)) &&
        terni_set(r, "plugins", sched_op_plugins(S)))
        return r;
    tern_value_unref(r);
    return NULL;
}

/* ---- the table ---------------------------------------------------------------------------- */

enum { BY_CLIENT = 1, BY_WORKER = 2, BY_ANY = 3 };

typedef struct op_entry {
    const char *name;
    int roles;
    tern_value *(*fn)(sched *, session *, const tern_value *);
} op_entry;

/* Sorted by name (bsearch). "hello" and "poll" are handled before the table (scheduler.c and
 * sched_dispatch). */
static const op_entry op_table[] = {
    { "added", BY_WORKER, op_added },
    { "bye", BY_ANY, op_bye },
    { "cancel", BY_CLIENT, op_cancel },
    { "done", BY_WORKER, op_done },
    { "erred", BY_WORKER, op_erred },
    { "heartbeat", BY_ANY, op_heartbeat },
    { "plugin_failed", BY_WORKER, op_plugin_failed },
    { "plugins", BY_CLIENT, op_plugins },
    { "release", BY_CLIENT, op_release },
    { "scatter", BY_CLIENT, op_scatter },
    { "status", BY_ANY, op_status },
    { "submit", BY_CLIENT, op_submit },
    { "upload", BY_CLIENT, op_upload },
    { "who_has", BY_ANY, op_who_has },
};

static int cmp_entry(const void *key, const void *e)
{
    return strcmp(key, ((const op_entry *)e)->name);
}

tern_value *sched_dispatch(sched *S, session *s, const tern_value *op)
{
    const char *name = terni_op_name(op);
    if (!strcmp(name, "hello"))
        return op_hello(S, s, op);
    if (s->role == ROLE_NONE)
        return terni_error_result(TERN_EPROTO, "say hello first (op %s before hello)", name);
    const op_entry *e = bsearch(name, op_table, sizeof(op_table) / sizeof(op_table[0]),
                                sizeof(op_table[0]), cmp_entry);
    int role = s->role == ROLE_CLIENT ? BY_CLIENT : BY_WORKER;
    if (!e || !(e->roles & role))
        return terni_error_result(TERN_EPROTO, "unknown op \"%s\" for a %s", name,
                                  s->role == ROLE_CLIENT ? "client" : "worker");
    return e->fn(S, s, op);
}
