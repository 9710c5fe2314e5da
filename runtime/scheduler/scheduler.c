/* The scheduler's loop: one thread, one event queue; sessions, and the order in which
 * requests are handled. What a request does is ops.c's; what it does to tasks is the graph
 * engine's (graph.h); what peers are told is events.c's.
 *
 * Design notes
 *  Sessions. A peer is identified by the nng pipe it talks on (server.h). "hello" turns a
 *  pipe into a client or worker session; losing the pipe ends it. Each session has an outbox
 *  of events and, usually, one parked "poll" request; after every event the loop answers
 *  parked polls whose outbox is non-empty, so events batch naturally while a peer is busy.
 *
 *  After every event: forgetting (graph_flush), held requests resumed, the graph's
 *  invariants checked in debug builds (graph_validate: after every event while the graph has
 *  up to VALIDATE_TASKS tasks, and every ntasks/VALIDATE_TASKS-th event beyond, so the check stays
 * O(1) amortized per event; a violation is logged and aborts: it is a bug here), outboxes flushed.
 *
 *  Long submit ops: a submit op of more than SUBMIT_SLICE tasks is placed a slice at a time
 *  from a cursor the loop keeps (S->cur). Between slices the parked polls are answered with
 *  what has been placed so far, the workers' requests and the clients' polls that arrived
 *  are handled (a poll parks, reports apply), and everything else is set aside, in order,
 *  until the op is done (S->later). So workers start on a large map's first tasks while the
 *  rest is placed. Each task before the cursor is complete, so a worker's request changes
 *  nothing it could not change between two submit ops. A session with an event set aside
 *  has its later ones set aside too, so every peer's requests are handled in the order they
 *  came; sessions are neither made nor lost while a cursor is active.
 *
 *  Security (docs/security.md): the server authenticates peers before any request reaches
 *  this file. Back-pressure: each client session counts the tasks it created that have not
 *  finished (client.npending); a request holding a submit from a client at or over
 *  max_pending is held (not answered) until the count drops, so the client's single
 *  op-stream request in flight stalls its sender and its further ops wait in its own memory.
 *  Requests without submits (release, cancel, polls) are never held.
 *
 *  Memory: requests are decoded on nng's threads and freed here; the daemon keeps freed
 *  pages resident while busy (daemon.c). After TRIM_AFTER_BYTES of requests the loop calls
 *  malloc_trim as soon as its queue is empty (a million tasks held: RSS 1,136 -> 673 bytes
 *  per task; a trim of a 1 GB heap takes milliseconds; at 16 MB tern-bench scale gave
 *  413-427 bytes of RSS per task against 534-568 at 64 MB, in the same time).
 */
#include "runtime/scheduler/sched_internal.h"

#include "runtime/util/log.h"
#include "sdk/src/transport/wire.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRIM_AFTER_BYTES (16u << 20)
/* After this many, or after any task was forgotten, a whole wait with no event trims too: what
 * the tail of a burst freed is given back, while heartbeats alone never trigger it. */
#define TRIM_IDLE_AFTER_BYTES (1u << 20)
/* A submit op of more tasks is placed a slice at a time (the cursor). */
#define SUBMIT_SLICE 2048
/* Debug builds validate after every event up to this many tasks (see the notes). */
#define VALIDATE_TASKS 256

void sched_log(const char *fmt, ...)
{
    if (!terni_log_enabled(TERNI_LOG_INFO))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    terni_log(TERNI_LOG_INFO, "%s", msg);
}

/* ---- requests ---------------------------------------------------------------------------- */

static bool is_op(const tern_value *op, terni_op_id id)
{
    return terni_op_of(op) == id;
}

/* A request holding a submit op, from a client over its pending-task limit. */
static bool must_hold(const sched *S, const session *s, const terni_event *ev)
{
    size_t cap = S->opts->max_pending ? S->opts->max_pending : TERNI_MAX_PENDING_DEFAULT;
    if (s->role != ROLE_CLIENT || s->c.npending < cap || tern_value_type(ev->body) != TERN_T_LIST)
        return false;
    const tern_value *op;
    for (size_t i = 0; tern_list_get(ev->body, i, &op) == TERN_OK; i++)
        if (is_op(op, TERNI_OP_SUBMIT))
            return true;
    return false;
}

static void reply_and_free(terni_event *ev, tern_value *reply)
{
    if (reply)
        terni_server_reply(ev->req, reply);
    else
        terni_server_drop(ev->req);
    tern_value_unref(reply);
    tern_value_unref(ev->body);
}

/* Runs the ops of ev's request from index `from`, appending their replies to reply; a long
 * submit op starts the cursor (which owns ev and reply until it is done), else the request
 * is answered. */
static void run_ops(sched *S, session *s, terni_event *ev, tern_value *reply, size_t from)
{
    size_t n = tern_list_len(ev->body);
    for (size_t i = from; reply && i < n; i++) {
        const tern_value *op;
        tern_list_get(ev->body, i, &op);
        size_t ntasks = is_op(op, TERNI_OP_SUBMIT) ? sched_submit_ntasks(op) : 0;
        if (ntasks > SUBMIT_SLICE && S->srv && s->role == ROLE_CLIENT) {
            sched_submit_range(S, s, op, 0, SUBMIT_SLICE);
            S->cur = (submit_cursor){ true, *ev, s, i, SUBMIT_SLICE, reply };
            return;
        }
        tern_value *r = sched_dispatch(S, s, op);
        if (tern_list_append(reply, r ? r : terni_error_result(TERN_ENOMEM, "out of memory")) !=
            TERN_OK) {
            tern_value_unref(reply);
            reply = NULL;
        }
    }
    reply_and_free(ev, reply);
}

static void handle_request(sched *S, terni_event *ev)
{
    session *s = sched_session_get(S, ev->pipe);
    if (!s) {
        terni_server_drop(ev->req);
        tern_value_unref(ev->body);
        return;
    }
    if (s->w && ev->at_ns > s->w->last_ns)
        s->w->last_ns = ev->at_ns;
    if (must_hold(S, s, ev)) {
        if (s->held.req) { /* our link never sends two; a hand-made client gets refused */
            reply_and_free(ev, tern_list_of(terni_error_result(
                                   TERN_EBUSY, "too many unfinished tasks; a submission is "
                                               "already waiting")));
            return;
        }
        s->held = *ev;
        S->nheld++;
        return;
    }
    const tern_value *first = NULL;
    if (!ev->body || tern_value_type(ev->body) != TERN_T_LIST) {
        reply_and_free(
            ev, tern_list_of(terni_error_result(TERN_EPROTO, "malformed request: %s",
                                                ev->body ? "not a list of ops" : ev->error)));
    } else if (tern_list_get(ev->body, 0, &first) == TERN_OK && is_op(first, TERNI_OP_POLL) &&
               tern_list_len(ev->body) > 1) {
        reply_and_free(ev, tern_list_of(terni_error_result(
                               TERN_EPROTO, "a poll request must hold only the poll op")));
    } else if (first && is_op(first, TERNI_OP_POLL) && s->role != ROLE_NONE) {
        if (s->bye) { /* sent before the peer's "bye" arrived: answered at once, not parked */
            reply_and_free(ev, tern_list_new(0));
        } else {
            sched_answer_poll_empty(s); /* one poll per peer: the older one goes empty */
            s->poll = ev->req;
            tern_value_unref(ev->body);
            sched_flush_session(s);
        }
    } else {
        run_ops(S, s, ev, tern_list_new(tern_list_len(ev->body)), 0);
    }
}

/* ---- the submit cursor and the events set aside meanwhile ------------------------------- */

static bool later_has_pipe(const sched *S, uint32_t pipe)
{
    for (size_t i = S->later_head; i < S->nlater; i++)
        if (S->later[i].pipe == pipe)
            return true;
    return false;
}

/* Room for one more event set aside; false if out of memory. */
static bool later_reserve(sched *S)
{
    if (S->nlater < S->later_cap)
        return true;
    size_t cap = S->later_cap ? S->later_cap * 2 : 64;
    terni_event *grown = realloc(S->later, cap * sizeof(*grown));
    if (!grown)
        return false;
    S->later = grown;
    S->later_cap = cap;
    return true;
}

/* The next event: those set aside come first, in order, then the server's queue. */
static int next_event(sched *S, int timeout_ms, terni_event *ev)
{
    if (S->later_head < S->nlater) {
        *ev = S->later[S->later_head++];
        if (S->later_head == S->nlater)
            S->later_head = S->nlater = 0;
        return TERN_OK;
    }
    return terni_server_next(S->srv, timeout_ms, ev);
}

/* A request that holds just a poll op: it only parks (handle_request). */
static bool is_poll(const terni_event *ev)
{
    const tern_value *op;
    return tern_list_len(ev->body) == 1 && tern_list_get(ev->body, 0, &op) == TERN_OK &&
           is_op(op, TERNI_OP_POLL);
}

/* Between two slices: the workers' requests and the clients' polls that arrived are handled,
 * anything else is set aside (see the notes). */
static void let_workers_in(sched *S)
{
    sched_flush_all(S);
    terni_event ev;
    while (later_reserve(S) && terni_server_next(S->srv, 0, &ev) == TERN_OK) {
        session *s = NULL;
        if (ev.kind == TERNI_EV_REQUEST)
            HASH_FIND(hh, S->sessions, &ev.pipe, sizeof(ev.pipe), s);
        if (s && (s->role == ROLE_WORKER || (s->role == ROLE_CLIENT && is_poll(&ev))) &&
            !later_has_pipe(S, ev.pipe)) {
            S->request_bytes += ev.bytes;
            handle_request(S, &ev);
            graph_flush(&S->g);
        } else {
            S->later[S->nlater++] = ev;
        }
    }
}

/* One more slice of the cursor's submit op; when it is done, the rest of its request. */
static void cursor_step(sched *S)
{
    submit_cursor c = S->cur;
    const tern_value *op;
    tern_list_get(c.ev.body, c.op, &op);
    size_t ntasks = sched_submit_ntasks(op);
    size_t to = c.next + SUBMIT_SLICE < ntasks ? c.next + SUBMIT_SLICE : ntasks;
    sched_submit_range(S, c.s, op, c.next, to);
    S->cur.next = to;
    if (to < ntasks)
        return;
    memset(&S->cur, 0, sizeof(S->cur));
    tern_value *reply = c.reply;
    if (tern_list_append(reply, tern_null()) != TERN_OK) {
        tern_value_unref(reply);
        reply = NULL;
    }
    run_ops(S, c.s, &c.ev, reply, c.op + 1);
}

/* Handles held requests whose client has dropped below its limit again. */
static void resume_held(sched *S)
{
    session *s, *tmp;
    HASH_ITER(hh, S->sessions, s, tmp)
    {
        if (!S->nheld || S->cur.active)
            return;
        if (!s->held.req || must_hold(S, s, &s->held))
            continue;
        terni_event ev = s->held;
        memset(&s->held, 0, sizeof(s->held));
        S->nheld--;
        handle_request(S, &ev);
    }
}

/* What follows every event (see the notes). */
static void after_event(sched *S)
{
    graph_flush(&S->g);
    if (S->nheld)
        resume_held(S);
    graph_flush(&S->g);
    if (S->validate) {
        size_t ntasks = terni_keytab_count(&S->g.tasks);
        char msg[512];
        if (++S->nevents % (ntasks / VALIDATE_TASKS + 1) == 0 &&
            !graph_validate(&S->g, msg, sizeof(msg))) {
            terni_log(TERNI_LOG_ERROR, "scheduler invariant broken: %s", msg);
            abort();
        }
    }
    sched_flush_all(S);
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void handle_event(sched *S, terni_event *ev)
{
    if (ev->kind == TERNI_EV_REQUEST)
        handle_request(S, ev);
    else if (ev->kind == TERNI_EV_PEER_LOST)
        sched_session_lost(S, ev->pipe, "connection lost");
}

static tern_value *status_of(void *arg)
{
    return sched_status(arg);
}

static void serve(sched *S, atomic_int *stop)
{
    uint64_t next_check = 0, check_every = (uint64_t)S->opts->heartbeat_ms * 1000000u / 2;
    int wait_ms = S->opts->heartbeat_ms < 200 ? S->opts->heartbeat_ms : 200;
    while (!*stop) {
        if (S->cur.active) {
            let_workers_in(S);
            cursor_step(S);
            after_event(S);
            continue;
        }
        terni_http_refresh(S->http, status_of, S);
        terni_event ev;
        bool trim = S->request_bytes >= TRIM_AFTER_BYTES;
        int got = next_event(S, trim ? 0 : wait_ms, &ev);
        /* The queue is empty after a burst, or quiet for a whole wait after some work. */
        if (got != TERN_OK &&
            (trim || S->request_bytes >= TRIM_IDLE_AFTER_BYTES || S->g.forgotten)) {
            malloc_trim(0);
            S->request_bytes = 0;
            S->g.forgotten = 0;
            if (trim)
                continue;
        }
        if (got == TERN_OK && ev.kind == TERNI_EV_REQUEST)
            S->request_bytes += ev.bytes;
        uint64_t now = terni_now_ns();
        /* Idle, or the event just taken is fresh (the queue is not backed up). */
        if (now >= next_check && (got != TERN_OK || now - ev.at_ns < check_every)) {
            sched_check_liveness(S, now);
            after_event(S);
            next_check = now + check_every;
        }
        if (got != TERN_OK)
            continue;
        handle_event(S, &ev);
        after_event(S);
    }
}

/* Frees the sessions (their parked requests belong to the server), the graph, plugins. */
static void sched_free(sched *S)
{
    sched_sessions_free(S);
    if (S->cur.active) {
        tern_value_unref(S->cur.ev.body);
        tern_value_unref(S->cur.reply);
    }
    for (size_t i = S->later_head; i < S->nlater; i++)
        tern_value_unref(S->later[i].body); /* their requests belong to the server too */
    free(S->later);
    graph_free(&S->g);
    sched_plugins_free(S);
}

static int sched_init(sched *S, const terni_sched_opts *opts)
{
    memset(S, 0, sizeof(*S));
    S->opts = opts;
#ifndef NDEBUG
    S->validate = true;
#endif
    const char *v = getenv("TERN_SCHED_VALIDATE");
    if (v && *v)
        S->validate = strcmp(v, "0") != 0;
    if (graph_init(&S->g, &terni_sched_effects, S) != 0)
        return TERN_ENOMEM;
    S->g.allowed_failures = opts->allowed_failures;
    return TERN_OK;
}

/* The address file goes out before the preloads: checking a plugin starts a process
 * (tern-plugin-info), and peers that dial meanwhile simply wait in nng until the loop runs,
 * which is after every preload, so no hello is answered without them. */
static bool write_address(const char *path, const char *bound)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%s\n", bound) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        terni_log(TERNI_LOG_ERROR, "cannot write %s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

int terni_sched_run(const terni_sched_opts *opts, atomic_int *stop)
{
    sched *S = malloc(sizeof(*S));
    if (!S || sched_init(S, opts) != TERN_OK) {
        terni_log(TERNI_LOG_ERROR, "out of memory");
        free(S);
        return 1;
    }
    char bound[512], err[512], warn[512];
    terni_sec sec = { .tls_cert = opts->tls_cert,
                      .tls_key = opts->tls_key,
                      .tls_ca = opts->tls_ca,
                      .tls_verify_clients = opts->tls_verify_clients,
                      .token = opts->token };
    int rc = terni_server_open(opts->listen, &sec, &S->srv, bound, sizeof(bound), err, sizeof(err));
    memset(&sec.token, 0, sizeof(sec.token));
    if (rc == TERN_OK) {
        rc = terni_http_start(opts->http, &S->http, S->http_url, sizeof(S->http_url), warn,
                              sizeof(warn), err, sizeof(err));
        if (rc != TERN_OK)
            terni_server_close(S->srv);
    }
    if (rc != TERN_OK) {
        terni_log(TERNI_LOG_ERROR, "%s", err);
        graph_free(&S->g);
        free(S);
        return 1;
    }
    if (warn[0])
        terni_log(TERNI_LOG_WARN, "%s", warn);
    int status = 0;
    if (!opts->address_file || write_address(opts->address_file, bound)) {
        for (const char **p = opts->preload; p && *p; p++)
            sched_preload(S, *p);
        sched_log("listening on %s", bound);
        if (S->http)
            sched_log("dashboard at %s", S->http_url);
        serve(S, stop);
        sched_log("shutting down");
    } else {
        status = 1;
    }
    terni_http_stop(S->http);
    S->http = NULL;
    terni_server_close(S->srv); /* drops parked requests */
    S->srv = NULL;
    sched_free(S);
    free(S);
    return status;
}

/* ---- fuzzing entry (tests/fuzz/fuzz_scheduler.c) ------------------------------------------ */

void *terni_sched_fuzz_begin(const terni_sched_opts *opts)
{
    sched *S = malloc(sizeof(*S));
    if (S && sched_init(S, opts) != TERN_OK) {
        free(S);
        S = NULL;
    }
    return S;
}

void terni_sched_fuzz_event(void *arg, terni_event *ev)
{
    sched *S = arg;
    handle_event(S, ev);
    after_event(S);
}

void terni_sched_fuzz_end(void *arg)
{
    sched *S = arg;
    session *s, *tmp;
    HASH_ITER(hh, S->sessions, s, tmp)
    {
        if (s->poll)
            terni_server_drop(s->poll);
        if (s->held.req)
            terni_server_drop(s->held.req);
    }
    sched_free(S);
    free(S);
}
