/* The scheduler's events (events.c): "compute" queues a job, "free" and "cancel" drop data and
 * jobs, "plugin" loads a plugin.
 *
 * Contract: called on the link's poll callback (an nng thread, link.h), which must not block:
 * events are only queued or applied, under core->lock; loading a plugin happens there too
 * (rare, short). Malformed events are ignored: they come from the network. */
#ifndef TERNI_WORKER_EVENTS_H
#define TERNI_WORKER_EVENTS_H

#include "runtime/worker/core.h"

/* Applies the events of one poll reply (a list, borrowed), in order. */
void terni_events_apply(terni_wcore *c, const tern_value *events);

#endif
