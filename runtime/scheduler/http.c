/* The scheduler's HTTP port (see http.h).
 *
 * Design notes
 *  Threads. The scheduler is a single-threaded state machine; nng runs HTTP handlers on its
 *  own threads. Handlers therefore never touch scheduler state. The scheduler thread builds
 *  the same status map the "status" op returns (at most every 250 ms, and less often when
 *  building it is slow; only while HTTP is on) and publishes it here under a mutex; a handler takes
 * a reference to the current snapshot under the mutex and renders it outside. Values with more than
 * one reference are immutable and their counts are atomic (value.h), so rendering needs no further
 * locking. What a page shows is at most one publishing interval old.
 *
 *  Ports. The default address is a convenience: many schedulers on one host (tests,
 *  local:// clusters) must not fail because another one holds 7787, so a busy default is a
 *  warning and the scheduler runs without a dashboard (Dask does the same). An address the
 *  operator asked for (--http, $TERN_HTTP) that cannot be bound is an error.
 *
 *  Lifetime. nng_http_server_stop does not wait for a handler that is already running, so
 *  the state handlers reach (mutex, snapshot) lives in static storage and is never freed:
 *  stopping drops the snapshot under the mutex, and a handler that runs late answers 503.
 *  Hence one server per process at a time (the scheduler has one).
 *
 *  The page is static HTML with a small script that polls /api/status and writes the numbers
 *  into the DOM (no build step, no external resources). */
#include "runtime/scheduler/http.h"

#include <tern/error.h>

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Snapshots are made at most every MIN_INTERVAL, and never more often than COST_FACTOR times
 * what the last one took to build, so the dashboard costs the scheduler at most ~1/COST_FACTOR
 * of its time however big the task table is (100k tasks: a few ms per snapshot). */
#define MIN_INTERVAL_NS (250 * 1000 * 1000LL)
#define COST_FACTOR     50

extern const char terni_dashboard_html[];
extern const unsigned long terni_dashboard_html_len;

struct terni_http {
    nng_http_server *srv;
    pthread_mutex_t lock;
    tern_value *snapshot; /* guarded by lock */
    int64_t next_ns;      /* scheduler thread only: when the next snapshot is due */
};

static terni_http the_http = { .lock = PTHREAD_MUTEX_INITIALIZER }; /* see "Lifetime" */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- rendering ------------------------------------------------------------------------ */

static json_t *to_json(const tern_value *v, int depth)
{
    if (!v || depth > 32)
        return json_null();
    bool b;
    int64_t i;
    double d;
    const char *s;
    size_t len;
    switch (tern_value_type(v)) {
    case TERN_T_BOOL:
        tern_value_get_bool(v, &b);
        return json_boolean(b);
    case TERN_T_INT:
        tern_value_get_int(v, &i);
        return json_integer(i);
    case TERN_T_DOUBLE:
        tern_value_get_double(v, &d);
        return isfinite(d) ? json_real(d) : json_null();
    case TERN_T_TEXT:
        tern_value_get_text(v, &s, &len);
        return json_stringn(s, len);
    case TERN_T_KEYREF:
        tern_value_get_keyref(v, &s);
        return json_string(s);
    case TERN_T_LIST: {
        json_t *a = json_array();
        for (size_t k = 0; a && k < tern_list_len(v); k++) {
            const tern_value *item;
            tern_list_get(v, k, &item);
            json_array_append_new(a, to_json(item, depth + 1));
        }
        return a;
    }
    case TERN_T_MAP: {
        json_t *o = json_object();
        const char *key;
        const tern_value *item;
        for (size_t k = 0; o && tern_map_entry(v, k, &key, &item) == TERN_OK; k++)
            json_object_set_new(o, key, to_json(item, depth + 1));
        return o;
    }
    default:
        return json_null();
    }
}

char *terni_http_status_json(const tern_value *status)
{
    json_t *j = to_json(status, 0);
    char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return out;
}

/* A growing text buffer for the metrics page. */
typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *grown = realloc(b->p, cap);
        if (!grown) {
            b->oom = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
}

static int64_t get_int(const tern_value *m, const char *key)
{
    const tern_value *v;
    int64_t i = 0;
    double d;
    if (tern_map_get(m, key, &v) != TERN_OK)
        return 0;
    if (tern_value_get_int(v, &i) == TERN_OK)
        return i;
    if (tern_value_get_double(v, &d) == TERN_OK)
        return (int64_t)d;
    return 0;
}

static double get_double(const tern_value *m, const char *key)
{
    const tern_value *v;
    int64_t i;
    double d = 0;
    if (tern_map_get(m, key, &v) != TERN_OK)
        return 0;
    if (tern_value_get_int(v, &i) == TERN_OK)
        return (double)i;
    tern_value_get_double(v, &d);
    return d;
}

/* A label value with Prometheus escaping (backslash, quote, newline). */
static void put_label(buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            put(b, "\\%c", *s);
        else if (*s == '\n')
            put(b, "\\n");
        else
            put(b, "%c", *s);
    }
}

static void help(buf *b, const char *name, const char *type, const char *text)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

char *terni_http_metrics(const tern_value *st)
{
    buf b = { 0 };
    const tern_value *tasks = NULL, *workers = NULL, *symbols = NULL, *hist = NULL, *v;
    const char *key;
    tern_map_get(st, "tasks", &tasks);
    tern_map_get(st, "workers", &workers);
    tern_map_get(st, "symbols", &symbols);
    tern_map_get(st, "duration_histogram", &hist);

    help(&b, "tern_tasks", "gauge", "Tasks in the scheduler's table by state.");
    for (size_t k = 0; tern_map_entry(tasks, k, &key, &v) == TERN_OK; k++) {
        put(&b, "tern_tasks{state=\"");
        put_label(&b, key);
        put(&b, "\"} %" PRId64 "\n", get_int(tasks, key));
    }
    help(&b, "tern_tasks_done_total", "counter", "Tasks that finished on a worker.");
    put(&b, "tern_tasks_done_total %" PRId64 "\n", get_int(st, "tasks_done"));
    help(&b, "tern_tasks_erred_total", "counter", "Tasks that failed on a worker.");
    put(&b, "tern_tasks_erred_total %" PRId64 "\n", get_int(st, "tasks_erred"));
    help(&b, "tern_symbol_tasks_done_total", "counter", "Tasks finished, by task symbol.");
    for (size_t k = 0; tern_map_entry(symbols, k, &key, &v) == TERN_OK; k++) {
        put(&b, "tern_symbol_tasks_done_total{symbol=\"");
        put_label(&b, key);
        put(&b, "\"} %" PRId64 "\n", get_int(v, "done"));
    }
    help(&b, "tern_workers_lost_total", "counter",
         "Workers lost (connection dropped or silent past the death timeout).");
    put(&b, "tern_workers_lost_total %" PRId64 "\n", get_int(st, "workers_lost"));
    help(&b, "tern_recomputed_total", "counter",
         "Tasks recomputed because their results were lost.");
    put(&b, "tern_recomputed_total %" PRId64 "\n", get_int(st, "recomputed"));
    help(&b, "tern_pushes_total", "counter",
         "Results workers were asked to push to the worker of a task placed early after them.");
    put(&b, "tern_pushes_total %" PRId64 "\n", get_int(st, "pushes"));
    help(&b, "tern_workers", "gauge", "Connected workers.");
    put(&b, "tern_workers %zu\n", tern_list_len(workers));
    help(&b, "tern_clients", "gauge", "Connected clients.");
    put(&b, "tern_clients %" PRId64 "\n", get_int(st, "clients"));

    static const struct {
        const char *field, *metric, *help;
    } per_worker[] = {
        { "memory", "tern_worker_memory_bytes", "Memory of the worker's host (bytes)." },
        { "rss_bytes", "tern_worker_rss_bytes",
          "Resident memory of the worker process that runs tasks, as of its last result." },
        { "bytes", "tern_worker_stored_bytes", "Bytes of results held by the worker." },
        { "keys", "tern_worker_keys", "Keys held by the worker." },
        { "processing", "tern_worker_processing", "Tasks queued or running on the worker." },
        { "nthreads", "tern_worker_threads", "Executor threads of the worker." },
    };
    for (size_t f = 0; f < sizeof(per_worker) / sizeof(per_worker[0]); f++) {
        help(&b, per_worker[f].metric, "gauge", per_worker[f].help);
        for (size_t k = 0; k < tern_list_len(workers); k++) {
            const tern_value *w, *name;
            const char *s = "?";
            tern_list_get(workers, k, &w);
            if (tern_map_get(w, "name", &name) == TERN_OK)
                tern_value_get_text(name, &s, NULL);
            put(&b, "%s{worker=\"", per_worker[f].metric);
            put_label(&b, s);
            put(&b, "\"} %" PRId64 "\n", get_int(w, per_worker[f].field));
        }
    }

    help(&b, "tern_task_duration_seconds", "histogram",
         "Task run time on the worker (as the worker measured it).");
    const tern_value *bounds = NULL, *counts = NULL;
    tern_map_get(hist, "bounds_s", &bounds);
    tern_map_get(hist, "counts", &counts);
    int64_t cum = 0;
    for (size_t k = 0; k < tern_list_len(counts); k++) {
        const tern_value *c, *bound;
        int64_t n = 0;
        double le = 0;
        tern_list_get(counts, k, &c);
        tern_value_get_int(c, &n);
        cum += n;
        if (tern_list_get(bounds, k, &bound) == TERN_OK && tern_value_get_double(bound, &le) == 0)
            put(&b, "tern_task_duration_seconds_bucket{le=\"%g\"} %" PRId64 "\n", le, cum);
        else
            put(&b, "tern_task_duration_seconds_bucket{le=\"+Inf\"} %" PRId64 "\n", cum);
    }
    put(&b, "tern_task_duration_seconds_sum %.9g\n", get_double(hist, "sum_s"));
    put(&b, "tern_task_duration_seconds_count %" PRId64 "\n", get_int(hist, "count"));

    help(&b, "tern_transfer_bytes_total", "counter",
         "Dependency bytes moved between workers (counted at placement: bytes of dependencies "
         "the chosen worker did not hold).");
    put(&b, "tern_transfer_bytes_total %" PRId64 "\n", get_int(st, "transfer_bytes"));
    help(&b, "tern_result_bytes_total", "counter", "Bytes of task results produced.");
    put(&b, "tern_result_bytes_total %" PRId64 "\n", get_int(st, "result_bytes"));
    help(&b, "tern_scheduler_rss_bytes", "gauge", "Resident memory of the scheduler process.");
    put(&b, "tern_scheduler_rss_bytes %" PRId64 "\n", get_int(st, "rss_bytes"));
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- handlers ------------------------------------------------------------------------- */

static tern_value *current(terni_http *h)
{
    pthread_mutex_lock(&h->lock);
    tern_value *v = tern_value_ref(h->snapshot);
    pthread_mutex_unlock(&h->lock);
    return v;
}

static void respond(nng_aio *aio, char *body, const char *type)
{
    nng_http_res *res = NULL;
    int rv = nng_http_res_alloc(&res);
    if (rv == 0 && body) {
        rv = nng_http_res_copy_data(res, body, strlen(body));
        if (rv == 0)
            rv = nng_http_res_set_header(res, "Content-Type", type);
        if (rv == 0)
            rv = nng_http_res_set_header(res, "Cache-Control", "no-store");
    } else if (rv == 0) {
        rv = nng_http_res_set_status(res, NNG_HTTP_STATUS_SERVICE_UNAVAILABLE);
    }
    free(body);
    if (rv != 0) {
        nng_http_res_free(res);
        nng_aio_finish(aio, rv);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

/* Answers with the current snapshot rendered by render (a malloc'd body, or NULL). */
static void respond_snapshot(nng_aio *aio, char *(*render)(const tern_value *), const char *type)
{
    nng_http_handler *hd = nng_aio_get_input(aio, 1);
    terni_http *h = nng_http_handler_get_data(hd);
    tern_value *st = current(h);
    char *body = st ? render(st) : NULL;
    tern_value_unref(st);
    respond(aio, body, type);
}

static void on_status(nng_aio *aio)
{
    respond_snapshot(aio, terni_http_status_json, "application/json");
}

static void on_metrics(nng_aio *aio)
{
    respond_snapshot(aio, terni_http_metrics, "text/plain; version=0.0.4; charset=utf-8");
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static int add(terni_http *h, const char *path, void (*cb)(nng_aio *))
{
    nng_http_handler *hd;
    int rv = nng_http_handler_alloc(&hd, path, cb);
    if (rv == 0 && (rv = nng_http_handler_set_data(hd, h, NULL)) == 0 &&
        (rv = nng_http_server_add_handler(h->srv, hd)) == 0)
        return 0;
    nng_http_handler_free(hd);
    return rv;
}

int terni_http_start(const char *addr, terni_http **out, char *url, size_t urllen, char *warn,
                     size_t warnlen, char *err, size_t errlen)
{
    *out = NULL;
    url[0] = warn[0] = err[0] = '\0';
    bool is_default = addr == NULL;
    if (is_default)
        addr = TERNI_HTTP_DEFAULT;
    if (!strcmp(addr, "none") || !strcmp(addr, "off"))
        return TERN_OK;
    char full[512];
    snprintf(full, sizeof(full), "%s%s", strncmp(addr, "http://", 7) ? "http://" : "", addr);
    const char *colon = strrchr(full + 7, ':'), *end = full + strlen(full);
    if (end > full + 7 && end[-1] == '/')
        end--;
    bool port_ok =
        colon && colon + 1 < end && strspn(colon + 1, "0123456789") == (size_t)(end - colon - 1);
    nng_url *u = NULL;
    if (!port_ok || nng_url_parse(&u, full) != 0 || !u->u_port || !*u->u_port) {
        nng_url_free(u);
        snprintf(err, errlen, "--http %s: expected HOST:PORT (e.g. 127.0.0.1:7787) or none", addr);
        return TERN_EINVAL;
    }
    terni_http *h = &the_http;
    if (h->srv) {
        nng_url_free(u);
        snprintf(err, errlen, "a dashboard is already being served by this process");
        return TERN_EBUSY;
    }
    int rv = nng_http_server_hold(&h->srv, u);
    nng_http_handler *page = NULL;
    if (rv == 0)
        rv = nng_http_handler_alloc_static(&page, "/", terni_dashboard_html,
                                           terni_dashboard_html_len, "text/html; charset=utf-8");
    if (rv == 0 && (rv = nng_http_server_add_handler(h->srv, page)) != 0)
        nng_http_handler_free(page);
    if (rv == 0)
        rv = add(h, "/api/status", on_status);
    if (rv == 0)
        rv = add(h, "/metrics", on_metrics);
    if (rv == 0)
        rv = nng_http_server_start(h->srv);
    nng_sockaddr sa;
    if (rv == 0 && nng_http_server_get_addr(h->srv, &sa) == 0 && sa.s_family == NNG_AF_INET) {
        const unsigned char *ip = (const unsigned char *)&sa.s_in.sa_addr;
        unsigned port = ((sa.s_in.sa_port & 0xff) << 8) | (sa.s_in.sa_port >> 8);
        snprintf(url, urllen, "http://%u.%u.%u.%u:%u/", ip[0], ip[1], ip[2], ip[3], port);
    } else if (rv == 0) {
        snprintf(url, urllen, "http://%s:%s/", u->u_hostname, u->u_port);
    }
    nng_url_free(u);
    if (rv != 0) {
        if (h->srv)
            nng_http_server_release(h->srv);
        h->srv = NULL;
        if (is_default && (rv == NNG_EADDRINUSE || rv == NNG_EADDRINVAL || rv == NNG_EPERM)) {
            snprintf(warn, warnlen,
                     "dashboard not started: %s is not available (%s); choose another with "
                     "--http HOST:PORT, or --http none",
                     addr, nng_strerror(rv));
            return TERN_OK;
        }
        snprintf(err, errlen, "cannot serve the dashboard on --http %s: %s", addr,
                 nng_strerror(rv));
        return rv == NNG_EADDRINUSE ? TERN_EBUSY : TERN_EINVAL;
    }
    h->next_ns = 0;
    *out = h;
    return TERN_OK;
}

bool terni_http_due(const terni_http *h)
{
    return h && mono_ns() >= h->next_ns;
}

void terni_http_refresh(terni_http *h, tern_value *(*build)(void *), void *arg)
{
    if (!terni_http_due(h))
        return;
    int64_t t0 = mono_ns();
    tern_value *st = build(arg);
    int64_t cost = mono_ns() - t0;
    terni_http_publish(h, st);
    h->next_ns = t0 + (cost * COST_FACTOR > MIN_INTERVAL_NS ? cost * COST_FACTOR : MIN_INTERVAL_NS);
}

void terni_http_publish(terni_http *h, tern_value *status)
{
    if (!h || !status) {
        tern_value_unref(status);
        return;
    }
    h->next_ns = mono_ns() + MIN_INTERVAL_NS;
    pthread_mutex_lock(&h->lock);
    tern_value *old = h->snapshot;
    h->snapshot = status;
    pthread_mutex_unlock(&h->lock);
    tern_value_unref(old);
}

void terni_http_stop(terni_http *h)
{
    if (!h)
        return;
    nng_http_server_stop(h->srv);
    nng_http_server_release(h->srv);
    h->srv = NULL;
    pthread_mutex_lock(&h->lock);
    tern_value *old = h->snapshot;
    h->snapshot = NULL;
    pthread_mutex_unlock(&h->lock);
    tern_value_unref(old);
}
