/* Peer sessions: a session per nng pipe, made by its first request and ended by the pipe's
 * loss (or by a worker's silence: sched_check_liveness). Ending a worker's session hands the
 * loss to the graph engine (graph_worker_lost); a client's releases what it wanted. Pipes
 * already lost are remembered, so that a request queued before the loss was seen cannot
 * revive its session. */
#include "runtime/scheduler/sched_internal.h"

#include "runtime/util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sessions --------------------------------------------------------------------------- */

static void free_worker(worker *w)
{
    free(w->name);
    free(w->address);
    free(w);
}

void sched_session_lost(sched *S, uint32_t pipe, const char *why)
{
    dead_pipe *d;
    HASH_FIND(hh, S->dead, &pipe, sizeof(pipe), d);
    if (!d && (d = calloc(1, sizeof(*d)))) {
        d->pipe = pipe;
        HASH_ADD(hh, S->dead, pipe, sizeof(pipe), d);
    }
    session *s;
    HASH_FIND(hh, S->sessions, &pipe, sizeof(pipe), s);
    if (!s)
        return;
    HASH_DEL(S->sessions, s);
    if (s->poll)
        terni_server_drop(s->poll);
    if (s->role == ROLE_WORKER && s->w) {
        sched_log("worker %s left: %s", s->w->name, why);
        graph_worker_lost(&S->g, s->w, why);
        free_worker(s->w);
    }
    if (s->role == ROLE_CLIENT)
        graph_client_gone(&S->g, &s->c);
    if (s->held.req) {
        terni_server_drop(s->held.req);
        tern_value_unref(s->held.body);
        S->nheld--;
    }
    terni_outbox_free(&s->ob);
    free(s);
}

session *sched_session_get(sched *S, uint32_t pipe)
{
    session *s;
    HASH_FIND(hh, S->sessions, &pipe, sizeof(pipe), s);
    if (s)
        return s;
    dead_pipe *d;
    HASH_FIND(hh, S->dead, &pipe, sizeof(pipe), d);
    if (d) /* a request that was queued before its connection's loss was seen */
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->pipe = pipe;
    HASH_ADD(hh, S->sessions, pipe, sizeof(pipe), s);
    return s;
}

/* Declares dead the workers silent for longer than --death-timeout-ms (a host that hangs or
 * is cut off keeps its TCP connection open). Only called when the event queue is not backed
 * up, so a busy scheduler never mistakes its own delay for a worker's silence. */
void sched_check_liveness(sched *S, uint64_t now)
{
    uint64_t limit = (uint64_t)S->opts->death_timeout_ms * 1000000u;
    worker *w, *tmp;
    HASH_ITER(hh, S->g.workers, w, tmp)
    {
        if (now <= w->last_ns || now - w->last_ns <= limit)
            continue;
        char why[200];
        snprintf(why, sizeof(why), "no heartbeat for %.1f s (--death-timeout-ms %d)",
                 (double)(now - w->last_ns) / 1e9, S->opts->death_timeout_ms);
        uint32_t pipe = ((session *)w->peer)->pipe;
        sched_session_lost(S, pipe, why); /* frees w */
        terni_server_close_pipe(S->srv, pipe);
    }
}

void sched_sessions_free(sched *S)
{
    session *s, *stmp;
    HASH_ITER(hh, S->sessions, s, stmp)
    {
        HASH_DEL(S->sessions, s);
        terni_outbox_free(&s->ob);
        tern_value_unref(s->held.body);
        if (s->w) {
            HASH_DEL(S->g.workers, s->w);
            free_worker(s->w);
        }
        free(s);
    }
    dead_pipe *d, *dtmp;
    HASH_ITER(hh, S->dead, d, dtmp)
    {
        HASH_DEL(S->dead, d);
        free(d);
    }
}
