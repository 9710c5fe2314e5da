/* The scheduler's internal state and the modules around the graph engine that share it:
 * sessions (scheduler.c), events to peers (events.c), ops from peers (ops.c), plugins
 * (plugins.c). One struct, passed to each; no globals.
 *
 * Which module may call which (one way):
 *   scheduler.c (the loop) -> ops.c -> graph.h (engine), plugins.c, events.c
 *   graph.h's effects -> events.c (encodes into session outboxes)
 */
#ifndef TERNI_SCHED_INTERNAL_H
#define TERNI_SCHED_INTERNAL_H

#include "runtime/scheduler/graph.h"
#include "runtime/scheduler/http.h"
#include "sdk/src/transport/outbox.h"
#include "sdk/src/protocol/protocol.h"
#include "runtime/scheduler/scheduler.h"
#include "runtime/scheduler/server.h"

#include <tern/value.h>
#include <uthash.h>

enum { ROLE_NONE, ROLE_CLIENT, ROLE_WORKER };

typedef struct session {
    uint32_t pipe;
    int role;
    terni_request *poll;
    terni_outbox ob;         /* queued events, encoded (outbox.h) */
    worker *w;               /* ROLE_WORKER: its record (w->peer is this session) */
    client c;                /* ROLE_CLIENT: what the graph knows of it (npending) */
    terni_event held;        /* a request held back by the pending-task limit (held.req != NULL) */
    bool bye;                /* said "bye": polls are answered at once, never parked */
    tern_value *status_keys; /* sched_status only: keys processing on its worker */
    UT_hash_handle hh;
} session;

typedef struct plugin {
    char id[65];
    char *name, *version, *tasks;
    tern_value *bytes;
    uint64_t seq;
    UT_hash_handle hh;
} plugin;

typedef struct dead_pipe {
    uint32_t pipe;
    UT_hash_handle hh;
} dead_pipe;

/* A submit op too long to place in one go (scheduler.c): placed a slice at a time, with the
 * workers' requests and the clients' polls handled in between. */
typedef struct submit_cursor {
    bool active;
    terni_event ev; /* the request holding it (its body and req are ours until done) */
    session *s;
    size_t op, next;   /* the op's index in the request, and its next task */
    tern_value *reply; /* replies to the ops before it */
} submit_cursor;

typedef struct sched {
    terni_server *srv; /* NULL: the fuzzing entry */
    const terni_sched_opts *opts;
    graph g;
    dead_pipe *dead; /* pipes already lost: their late requests must not revive a session */
    session *sessions;
    plugin *plugins;
    uint64_t plugin_seq;
    size_t nheld; /* sessions with a held request */
    terni_http *http;
    char http_url[256];
    size_t request_bytes; /* decoded since the last malloc_trim */
    terni_event *later;   /* events set aside while a submit cursor is active */
    size_t later_head, nlater, later_cap;
    submit_cursor cur;
    uint64_t nevents; /* handled (after_event) */
    bool validate;    /* check the graph's invariants after every event (debug builds) */
} sched;

/* sessions.c */
session *sched_session_get(sched *S, uint32_t pipe); /* NULL: a lost pipe, or out of memory */
void sched_session_lost(sched *S, uint32_t pipe, const char *why);
void sched_check_liveness(sched *S, uint64_t now_ns); /* declares silent workers dead */
void sched_sessions_free(sched *S);

/* events.c: the graph's effects, encoded into the peers' outboxes. */
extern const graph_effects terni_sched_effects;
void sched_send(session *s, tern_value *ev); /* takes ev */
void sched_flush_session(session *s);
void sched_flush_all(sched *S);
void sched_answer_poll_empty(session *s); /* its parked poll, if any, answered with none */
static inline session *session_of_client(client *c)
{
    return (session *)((char *)c - offsetof(session, c));
}

/* ops.c: one op of a request from s; returns its reply (NULL: out of memory). */
tern_value *sched_dispatch(sched *S, session *s, const tern_value *op);
/* ops.c: the number of tasks of a submit op (0 when malformed: dispatch answers it). */
size_t sched_submit_ntasks(const tern_value *op);
/* ops.c: places tasks [from, to) of a submit op for s. */
void sched_submit_range(sched *S, session *s, const tern_value *op, size_t from, size_t to);
/* ops.c: the worker's executor restarted after a crash: blame what it was running. */
void sched_blame_crash(sched *S, worker *w, const terni_hello *h);
tern_value *sched_status(sched *S);

/* plugins.c */
/* m: the decoded upload, NULL when it was malformed. */
tern_value *sched_op_upload(sched *S, session *s, const terni_upload *m);
tern_value *sched_op_plugins(sched *S);
plugin *sched_plugin(sched *S, const char *id);
void sched_send_plugins(sched *S, session *s); /* every plugin, to a worker that joined */
int sched_preload(sched *S, const char *path);
void sched_plugins_free(sched *S);

void sched_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
