/* Ops from peers: each request op decoded by its typed decoder (protocol.h) and handed to the
 * graph engine (graph.h) or the plugin registry. Dispatch goes through the op list: the op's
 * id, the roles that may send it (checked before any handler runs), and its handler. */
#include "runtime/scheduler/sched_internal.h"

#include "runtime/util/log.h"
#include "runtime/scheduler/placement.h"
#include "sdk/src/protocol/protocol.h"
#include "runtime/util/rss.h"
#include "sdk/src/utf8.h"
#include "sdk/src/transport/wire.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

/* An op that its typed decoder (protocol.h) refused: the error names the field. */
static tern_value *malformed(const char *err)
{
    return terni_error_result(TERN_EPROTO, "%s", err);
}

/* ---- clients: submit --------------------------------------------------------------------- */

/* One task of a submit op. Errors become an erred task (so the future errs), never a failed
 * request: other tasks of the batch are unaffected. */
static void submit_one(sched *S, session *s, const terni_submit *sub, size_t i)
{
    terni_task_spec sp;
    char err[256], msg[512];
    int rc = terni_dec_task_spec(sub, i, &sp, err, sizeof(err));
    graph_spec gs = { .key = sp.key };
    if (!terni_valid_key(sp.key))
        return; /* nothing to answer to (our client never sends such a key) */
    if (rc != TERN_OK) {
        terni_utf8_fmt(msg, sizeof(msg), "malformed submission for %s: %s", sp.key, err);
        gs.code = TERN_EPROTO;
        gs.msg = msg;
        graph_submit(&S->g, &s->c, &gs);
        return;
    }
    gs.fn = sp.fn;
    gs.plugin_id = sp.plugin;
    gs.args = sp.args;
    gs.args_len = sp.args_len;
    gs.priority = (int)sp.priority;
    if (sp.retries > 0)
        gs.retries = (int)(sp.retries > 1000 ? 1000 : sp.retries);
    /* out of range: no co-assignment */
    if (sp.gsize > 1 && sp.gsize <= UINT32_MAX && sp.gindex >= 0 && sp.gindex < sp.gsize) {
        gs.gindex = (uint32_t)sp.gindex;
        gs.gsize = (uint32_t)sp.gsize;
    }
    if (sp.timeout_ms > 0)
        gs.timeout_ms = sp.timeout_ms;
    if (gs.plugin_id && gs.fn && !sched_plugin(S, gs.plugin_id)) {
        gs.code = TERN_ENOTFOUND;
        terni_utf8_fmt(msg, sizeof(msg), "plugin %.16s... for %s is not uploaded", gs.plugin_id,
                       gs.fn);
        gs.msg = msg;
    }
    const char *deps_stack[8], *names_stack[4];
    const char **deps = sp.deps.n <= 8 ? deps_stack : malloc(sp.deps.n * sizeof(*deps));
    const char **names = sp.workers.n <= 4 ? names_stack : malloc(sp.workers.n * sizeof(*names));
    for (size_t k = 0; deps && k < sp.deps.n; k++)
        deps[k] = terni_strs_at(&sp.deps, k);
    for (size_t k = 0; names && k < sp.workers.n; k++)
        names[k] = terni_strs_at(&sp.workers, k);
    gs.deps = deps;
    gs.ndeps = sp.deps.n;
    gs.restrict_to = names;
    gs.nrestrict = sp.workers.n;
    if (deps && names && gs.ndeps < UINT32_MAX)
        graph_submit(&S->g, &s->c, &gs); /* out of memory: dropped, unanswered */
    if (deps != deps_stack)
        free(deps);
    if (names != names_stack)
        free(names);
}

size_t sched_submit_ntasks(const tern_value *op)
{
    terni_submit sub;
    return terni_dec_submit(op, &sub, NULL, 0) == TERN_OK ? sub.ntasks : 0;
}

void sched_submit_range(sched *S, session *s, const tern_value *op, size_t from, size_t to)
{
    terni_submit sub;
    if (terni_dec_submit(op, &sub, NULL, 0) != TERN_OK)
        return;
    for (size_t i = from; i < to && i < sub.ntasks; i++)
        submit_one(S, s, &sub, i);
}

static tern_value *op_submit(sched *S, session *s, const tern_value *op)
{
    terni_submit sub;
    char err[256];
    if (terni_dec_submit(op, &sub, err, sizeof(err)) != TERN_OK)
        return malformed(err);
    for (size_t i = 0; i < sub.ntasks; i++)
        submit_one(S, s, &sub, i);
    return tern_null();
}

/* ---- clients: the rest ------------------------------------------------------------------ */

typedef void (*key_fn)(graph *, client *, const char *);

static tern_value *each_key(sched *S, session *s, const tern_value *op, key_fn fn)
{
    terni_keys_msg m;
    char err[256];
    if (terni_dec_keys(op, &m, err, sizeof(err)) != TERN_OK)
        return malformed(err);
    for (size_t i = 0; i < m.keys.n; i++)
        fn(&S->g, &s->c, terni_strs_at(&m.keys, i));
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
    terni_who_has m;
    char err[256];
    if (terni_dec_who_has(op, &m, err, sizeof(err)) != TERN_OK)
        return malformed(err);
    tern_value *out = tern_map_new();
    for (size_t i = 0; out && i < m.keys.n; i++) {
        const char *k = terni_strs_at(&m.keys, i);
        task *t = graph_task(&S->g, k);
        tern_value *names = tern_list_new(0);
        for (size_t j = 0; t && names && j < t->who.n; j++)
            tern_list_append(names,
                             tern_text(m.addresses ? WHO_AT(t, j)->address : WHO_AT(t, j)->name));
        tern_map_set(out, k, names);
    }
    return out;
}

/* scatter {key}: choose a worker for data the client will put there itself. */
static tern_value *op_scatter(sched *S, session *s, const tern_value *op)
{
    terni_scatter m;
    char err[256];
    if (terni_dec_scatter(op, &m, err, sizeof(err)) != TERN_OK)
        return malformed(err);
    const char *key = m.key;
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
    terni_upload m;
    return sched_op_upload(S, s, terni_dec_upload(op, &m, NULL, 0) == TERN_OK ? &m : NULL);
}

static tern_value *op_plugins(sched *S, session *s, const tern_value *op)
{
    (void)s, (void)op;
    return sched_op_plugins(S);
}

/* ---- workers ---------------------------------------------------------------------------- */

static tern_value *op_done(sched *S, session *s, const tern_value *op)
{
    terni_done m;
    char err[256];
    if (terni_dec_done(op, &m, err, sizeof(err)) != TERN_OK)
        return malformed(err);
    if (m.rss_bytes >= 0)
        s->w->rss = m.rss_bytes;
    graph_done(&S->g, s->w, m.key, m.nbytes, m.value, m.value ? m.value_len : 0, m.duration_us);
    return tern_null();
}

static tern_value *op_erred(sched *S, session *s, const tern_value *op)
{
    terni_erred m;
    char err[256];
    if (terni_dec_erred(op, &m, err, sizeof(err)) != TERN_OK)
        return malformed(err);
    task *t = graph_task(&S->g, m.key);
    if (t && t->state == T_PROCESSING && t->on == s->w && m.code == TERN_ELOST)
        sched_log("%s could not fetch a dependency on %s: %s", m.key, s->w->name,
                  m.message ? m.message : "");
    else if (t && t->state == T_PROCESSING && t->on == s->w && t->retries > 0)
        sched_log("retrying %s after: %s", m.key, m.message ? m.message : "");
    graph_erred(&S->g, s->w, m.key,
                m.code > 0 && m.code < TERN_ERR_COUNT ? (int)m.code : TERN_ETASK, m.message, m.run);
    return tern_null();
}

static tern_value *op_added(sched *S, session *s, const tern_value *op)
{
    terni_added m;
    char err[256];
    if (terni_dec_added(op, &m, err, sizeof(err)) != TERN_OK)
        return malformed(err);
    graph_added(&S->g, s->w, m.key, m.nbytes);
    return tern_null();
}

static tern_value *op_plugin_failed(sched *S, session *s, const tern_value *op)
{
    (void)S;
    terni_plugin_failed m;
    char err[256];
    if (terni_dec_plugin_failed(op, &m, err, sizeof(err)) != TERN_OK)
        return malformed(err);
    sched_log("worker %s could not load plugin %.12s: %s", s->w->name, m.id,
              m.message ? m.message : "");
    return tern_null();
}

/* A restarted executor reports {why, keys} of its predecessor's crash: the tasks it was
 * running are suspects. One blamed --allowed-failures times errs with TERN_EKILLED. */
void sched_blame_crash(sched *S, worker *w, const terni_hello *h)
{
    if (!h->crashed)
        return;
    const char *why = h->crashed_why;
    sched_log("worker %s restarted after its executor %s", w->name, why ? why : "crashed");
    for (size_t i = 0; i < h->crashed_keys.n; i++)
        graph_blame(&S->g, w, terni_strs_at(&h->crashed_keys, i), why);
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
        !terni_set_int(out, "pushes", (int64_t)g->npushes) ||
        !terni_set_int(out, "early", (int64_t)g->nearly) ||
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

static tern_value *worker_hello(sched *S, session *s, const terni_hello *h)
{
    const char *name = h->name, *address = h->address;
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
    w->nthreads = h->nthreads > 0 && h->nthreads <= INT32_MAX ? (int)h->nthreads : 1;
    w->memory = h->memory;
    w->peer = s;
    w->last_ns = terni_now_ns();
    s->role = ROLE_WORKER;
    s->w = w;
    graph_worker_add(&S->g, w);
    sched_log("worker %s joined (%d threads, data at %s)", w->name, w->nthreads, w->address);
    sched_send_plugins(S, s);
    sched_blame_crash(S, w, h);
    graph_place_unassigned(&S->g);
    return NULL;
}

static tern_value *op_hello(sched *S, session *s, const tern_value *op)
{
    terni_hello h;
    char err[256];
    if (terni_dec_hello(op, &h, err, sizeof(err)) != TERN_OK)
        return malformed(err);
    if (h.wire != TERNI_WIRE_VERSION)
        return terni_error_result(TERN_EPROTO,
                                  "wire protocol version %lld is not supported: this scheduler "
                                  "speaks version %d; use matching tern versions",
                                  (long long)h.wire, TERNI_WIRE_VERSION);
    if (s->role != ROLE_NONE)
        return terni_error_result(TERN_EPROTO, "this connection already said hello");
    if (h.role && !strcmp(h.role, "worker")) {
        tern_value *refused = worker_hello(S, s, &h);
        if (refused)
            return refused;
    } else {
        s->role = ROLE_CLIENT;
    }
    tern_value *plugins = sched_op_plugins(S);
    terni_welcome wel = { .wire = TERNI_WIRE_VERSION,
                          .heartbeat_ms = S->opts->heartbeat_ms,
                          .death_timeout_ms = S->opts->death_timeout_ms,
                          .workers = (int64_t)HASH_COUNT(S->g.workers),
                          .plugins = plugins };
    tern_value *r = plugins ? terni_enc_welcome(&wel) : NULL;
    tern_value_unref(plugins);
    return r;
}

/* push_failed: the worker could not put a result it was to push; `to` names the target's data
 * server (a worker that left is no longer found: its tasks were requeued when it left). */
static tern_value *op_push_failed(sched *S, session *s, const tern_value *op)
{
    terni_push m;
    char err[256];
    if (terni_dec_push(op, &m, err, sizeof(err)) != TERN_OK)
        return malformed(err);
    for (size_t i = 0; i < m.to.n; i++) {
        const char *address = terni_strs_at(&m.to, i);
        worker *w, *tmp, *to = NULL;
        HASH_ITER(hh, S->g.workers, w, tmp)
        {
            if (!strcmp(w->address, address))
                to = w;
        }
        sched_log("worker %s could not push %s to %s: %s", s->w->name, m.key, address,
                  m.message ? m.message : "no reason given");
        graph_push_failed(&S->g, s->w, m.key, to);
    }
    return tern_null();
}

/* ---- dispatch ----------------------------------------------------------------------------- */

typedef tern_value *(*op_fn)(sched *, session *, const tern_value *);

/* The handler of each request op the scheduler serves; who may send which is the op list's
 * (protocol.h). "hello" is handled before the role check, "poll" by scheduler.c (a poll that
 * is not alone in its request has no handler here, so it is refused). */
static const op_fn handlers[TERNI_OP_COUNT] = {
    [TERNI_OP_ADDED] = op_added,
    [TERNI_OP_BYE] = op_bye,
    [TERNI_OP_CANCEL] = op_cancel,
    [TERNI_OP_DONE] = op_done,
    [TERNI_OP_ERRED] = op_erred,
    [TERNI_OP_HEARTBEAT] = op_heartbeat,
    [TERNI_OP_PLUGIN_FAILED] = op_plugin_failed,
    [TERNI_OP_PLUGINS] = op_plugins,
    [TERNI_OP_PUSH_FAILED] = op_push_failed,
    [TERNI_OP_RELEASE] = op_release,
    [TERNI_OP_SCATTER] = op_scatter,
    [TERNI_OP_STATUS] = op_status,
    [TERNI_OP_SUBMIT] = op_submit,
    [TERNI_OP_UPLOAD] = op_upload,
    [TERNI_OP_WHO_HAS] = op_who_has,
};

tern_value *sched_dispatch(sched *S, session *s, const tern_value *op)
{
    const char *name = terni_op_name(op);
    terni_op_id id = terni_op_lookup(name);
    if (id == TERNI_OP_HELLO)
        return op_hello(S, s, op);
    if (s->role == ROLE_NONE)
        return terni_error_result(TERN_EPROTO, "say hello first (op %s before hello)", name);
    int role = s->role == ROLE_CLIENT ? TERNI_BY_CLIENT : TERNI_BY_WORKER;
    if (id == TERNI_OP_NONE || !(terni_ops[id].dir & TERNI_DIR_REQUEST) ||
        !(terni_ops[id].roles & role) || !handlers[id])
        return terni_error_result(TERN_EPROTO, "unknown op \"%s\" for a %s", name,
                                  s->role == ROLE_CLIENT ? "client" : "worker");
    return handlers[id](S, s, op);
}
