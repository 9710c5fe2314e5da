/* The scheduler's HTTP module (runtime/scheduler/http.c): rendering a status map as JSON and
 * Prometheus text, serving the snapshot, and the port rules (default busy = warning,
 * explicit busy = error, "none" = off). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/scheduler/http.h"

/* A status map shaped like the scheduler's, with awkward names. */
static tern_value *sample_status(void)
{
    tern_value *w = tern_map_new();
    cr_assert(tern_map_set(w, "name", tern_text("w\"1\\")) == TERN_OK);
    tern_map_set(w, "nthreads", tern_int(4));
    tern_map_set(w, "memory", tern_int(1 << 30));
    tern_map_set(w, "keys", tern_int(3));
    tern_map_set(w, "bytes", tern_int(300));
    tern_map_set(w, "processing", tern_int(1));
    tern_value *tasks = tern_map_new();
    tern_map_set(tasks, "memory", tern_int(3));
    tern_map_set(tasks, "erred", tern_int(1));
    tern_value *sym = tern_map_new();
    tern_map_set(sym, "done", tern_int(5));
    tern_map_set(sym, "failed", tern_int(1));
    tern_value *symbols = tern_map_new();
    tern_map_set(symbols, "p:f", sym);
    tern_value *hist = tern_map_new();
    tern_map_set(hist, "bounds_s", tern_list_of(tern_double(0.001), tern_double(1)));
    tern_map_set(hist, "counts", tern_list_of(tern_int(2), tern_int(3), tern_int(1)));
    tern_map_set(hist, "sum_s", tern_double(70.5));
    tern_map_set(hist, "count", tern_int(6));
    tern_value *st = tern_map_new();
    tern_map_set(st, "workers", tern_list_of(w));
    tern_map_set(st, "tasks", tasks);
    tern_map_set(st, "symbols", symbols);
    tern_map_set(st, "duration_histogram", hist);
    tern_map_set(st, "tasks_done", tern_int(6));
    tern_map_set(st, "transfer_bytes", tern_int(4096));
    tern_map_set(st, "not_finite", tern_double(0.0 / 0.0));
    tern_map_set(st, "bytes_field", tern_bytes("\x00\x01", 2));
    return st;
}

Test(http, status_json_is_valid_json_with_the_same_numbers)
{
    tern_value *st = sample_status();
    char *s = terni_http_status_json(st);
    cr_assert_not_null(s);
    json_error_t err;
    json_t *j = json_loads(s, 0, &err);
    cr_assert_not_null(j, "not JSON: %s: %s", err.text, s);
    cr_assert_eq(json_integer_value(json_object_get(j, "tasks_done")), 6);
    json_t *w = json_array_get(json_object_get(j, "workers"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(w, "name")), "w\"1\\");
    cr_assert(json_is_null(json_object_get(j, "not_finite")), "NaN must become null");
    cr_assert(json_is_null(json_object_get(j, "bytes_field")));
    json_decref(j);
    free(s);
    tern_value_unref(st);
}

Test(http, metrics_are_prometheus_text)
{
    tern_value *st = sample_status();
    char *m = terni_http_metrics(st);
    cr_assert_not_null(m);
    const char *want[] = {
        "# TYPE tern_tasks gauge\n",
        "tern_tasks{state=\"memory\"} 3\n",
        "tern_tasks{state=\"erred\"} 1\n",
        "tern_tasks_done_total 6\n",
        "tern_symbol_tasks_done_total{symbol=\"p:f\"} 5\n",
        "tern_worker_threads{worker=\"w\\\"1\\\\\"} 4\n", /* quote and backslash escaped */
        "tern_worker_memory_bytes{worker=\"w\\\"1\\\\\"} 1073741824\n",
        "# TYPE tern_task_duration_seconds histogram\n",
        "tern_task_duration_seconds_bucket{le=\"0.001\"} 2\n", /* cumulative */
        "tern_task_duration_seconds_bucket{le=\"1\"} 5\n",
        "tern_task_duration_seconds_bucket{le=\"+Inf\"} 6\n",
        "tern_task_duration_seconds_sum 70.5\n",
        "tern_task_duration_seconds_count 6\n",
        "tern_transfer_bytes_total 4096\n",
        "tern_workers 1\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert_not_null(strstr(m, want[i]), "missing %s in:\n%s", want[i], m);
    free(m);
    tern_value_unref(st);
}

Test(http, an_empty_map_renders)
{
    tern_value *st = tern_map_new();
    char *m = terni_http_metrics(st), *j = terni_http_status_json(st);
    cr_assert_not_null(m);
    cr_assert_str_eq(j, "{}");
    free(m);
    free(j);
    tern_value_unref(st);
}

/* GET path from 127.0.0.1:port; returns the whole response (malloc'd). */
static char *get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char req[256];
    int n =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

static int port_of(const char *url)
{
    const char *colon = strrchr(url, ':');
    cr_assert_not_null(colon);
    return atoi(colon + 1);
}

Test(http, serves_the_page_the_snapshot_and_metrics)
{
    terni_http *h = NULL;
    char url[256], warn[256], err[256];
    cr_assert_eq(
        terni_http_start("127.0.0.1:0", &h, url, sizeof(url), warn, sizeof(warn), err, sizeof(err)),
        TERN_OK, "%s", err);
    cr_assert_not_null(h);
    cr_assert_str_empty(warn);
    int port = port_of(url);
    cr_assert_gt(port, 0, "%s", url);

    char *r = get(port, "/api/status"); /* nothing published yet */
    cr_assert_not_null(strstr(r, " 503 "), "%s", r);
    free(r);

    cr_assert(terni_http_due(h));
    terni_http_publish(h, sample_status());
    cr_assert_not(terni_http_due(h), "just published");
    r = get(port, "/api/status");
    cr_assert_not_null(strstr(r, " 200 "), "%s", r);
    cr_assert_not_null(strstr(r, "application/json"));
    cr_assert_not_null(strstr(r, "\"tasks_done\":6"), "%s", r);
    free(r);
    r = get(port, "/metrics");
    cr_assert_not_null(strstr(r, "tern_tasks_done_total 6"), "%s", r);
    free(r);
    r = get(port, "/");
    cr_assert_not_null(strstr(r, "text/html"));
    cr_assert_not_null(strstr(r, "/api/status"), "the page polls /api/status");
    free(r);
    r = get(port, "/nope");
    cr_assert_not_null(strstr(r, " 404 "), "%s", r);
    free(r);
    terni_http *second = NULL;
    cr_assert_eq(terni_http_start("127.0.0.1:0", &second, url, sizeof(url), warn, sizeof(warn), err,
                                  sizeof(err)),
                 TERN_EBUSY, "one server per process");
    cr_assert_null(second);
    terni_http_stop(h);
    /* and again after a stop */
    cr_assert_eq(
        terni_http_start("127.0.0.1:0", &h, url, sizeof(url), warn, sizeof(warn), err, sizeof(err)),
        TERN_OK, "%s", err);
    r = get(port_of(url), "/api/status"); /* the old snapshot is gone */
    cr_assert_not_null(strstr(r, " 503 "), "%s", r);
    free(r);
    terni_http_stop(h);
}

/* A TCP port held by a plain socket. */
static int hold_port(int port, int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(*fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(*fd, 1) != 0)
        return -1;
    socklen_t len = sizeof(sa);
    getsockname(*fd, (struct sockaddr *)&sa, &len);
    return ntohs(sa.sin_port);
}

Test(http, an_explicit_address_in_use_is_an_error)
{
    int fd, port = hold_port(0, &fd);
    cr_assert_gt(port, 0);
    char addr[64], url[256], warn[256], err[256];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    terni_http *h = (terni_http *)1;
    int rc = terni_http_start(addr, &h, url, sizeof(url), warn, sizeof(warn), err, sizeof(err));
    cr_assert_eq(rc, TERN_EBUSY, "rc %d: %s", rc, err);
    cr_assert_null(h);
    cr_assert_not_null(strstr(err, addr), "%s", err);
    close(fd);
}

Test(http, the_default_address_in_use_is_a_warning)
{
    int fd = -1;
    hold_port(7787, &fd); /* ours, or someone else's: busy either way */
    terni_http *h = (terni_http *)1;
    char url[256], warn[256], err[256];
    int rc = terni_http_start(NULL, &h, url, sizeof(url), warn, sizeof(warn), err, sizeof(err));
    cr_assert_eq(rc, TERN_OK, "%s", err);
    cr_assert_null(h);
    cr_assert_not_null(strstr(warn, TERNI_HTTP_DEFAULT), "%s", warn);
    cr_assert_not_null(strstr(warn, "--http"), "the warning says what to do: %s", warn);
    close(fd);
}

Test(http, none_turns_it_off_and_bad_addresses_are_refused)
{
    terni_http *h = (terni_http *)1;
    char url[256], warn[256], err[256];
    cr_assert_eq(
        terni_http_start("none", &h, url, sizeof(url), warn, sizeof(warn), err, sizeof(err)),
        TERN_OK);
    cr_assert_null(h);
    cr_assert_eq(terni_http_start("no port here", &h, url, sizeof(url), warn, sizeof(warn), err,
                                  sizeof(err)),
                 TERN_EINVAL);
    cr_assert_not_null(strstr(err, "HOST:PORT"), "%s", err);
    terni_http_stop(NULL);
    terni_http_publish(NULL, tern_int(1)); /* released, not leaked */
}
