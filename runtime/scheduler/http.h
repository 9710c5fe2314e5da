/* The scheduler's HTTP port: the dashboard page, /api/status (JSON) and /metrics
 * (Prometheus text), served by nng's HTTP server. See http.c for the threading contract. */
#ifndef TERNI_HTTP_H
#define TERNI_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <tern/value.h>

#define TERNI_HTTP_DEFAULT "127.0.0.1:7787"

typedef struct terni_http terni_http;

/* Starts serving on addr ("host:port", "http://host:port", port 0 for a free port). One
 * server per process at a time (TERN_EBUSY otherwise).
 * addr NULL means TERNI_HTTP_DEFAULT, and then an address in use is not an error: *out is
 * NULL and warn gets the reason. "none" also gives *out NULL. On success url gets
 * "http://host:port/" with the bound port. Returns a tern code; err gets the reason. */
int terni_http_start(const char *addr, terni_http **out, char *url, size_t urllen, char *warn,
                     size_t warnlen, char *err, size_t errlen);

/* True when a new snapshot is due (see terni_http_refresh). */
bool terni_http_due(const terni_http *h);

/* If a snapshot is due, builds one with build(arg) (a status map) and publishes it. Snapshots
 * are at least 250 ms apart and further apart when building them is slow (50 x the build
 * time), so the dashboard takes at most ~2 % of the scheduler's time. NULL h: nothing. */
void terni_http_refresh(terni_http *h, tern_value *(*build)(void *), void *arg);

/* Replaces the snapshot the handlers serve (a status map as built by the scheduler's
 * "status" op). Steals the reference; NULL is ignored. Called by the scheduler thread. */
void terni_http_publish(terni_http *h, tern_value *status);

/* Stops the server and drops the snapshot; a handler still running answers 503. NULL-safe.
 * Afterwards terni_http_start may be called again. */
void terni_http_stop(terni_http *h);

/* Renders a status map as JSON / Prometheus text (malloc'd, NUL-terminated), or NULL when
 * out of memory. Exposed for the unit tests. */
char *terni_http_status_json(const tern_value *status);
char *terni_http_metrics(const tern_value *status);

#endif
