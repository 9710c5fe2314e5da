/* hostile: attacks every listening port of a running cluster while a well-behaved client
 * runs a workload, and checks that the client gets every correct result and that each
 * attack got the refusal it deserves (or a closed connection), never a crash.
 *
 *   hostile SCHEDULER_URL TOKEN_FILE TESTPLUG.so [SECONDS]
 *
 * Targets: the scheduler and every worker's data server (addresses from tern_status_info).
 * Attacks, each on a fresh connection: random bytes; truncated and oversized messages
 * (including a CBOR header claiming 2^40 bytes); out-of-order ops (auth_proof before auth,
 * poll/done/get before authenticating); a wrong wire version; a wrong token (a made-up
 * proof after a real challenge); a server proof check with a wrong token; and, after a
 * correct authentication, malformed ops of every name the daemons handle.
 *
 * When the scheduler serves its dashboard (the status map's "dashboard" URL), a third thread
 * attacks that HTTP port over raw TCP: random bytes, a truncated request, a 1 MiB header and a
 * 1 MiB request line, a POST claiming a 100 GB body, unknown paths and methods, and slow
 * requests that stop mid-header and are held open (up to 64 at a time), then abandoned; between
 * rounds a well-formed GET /api/status must answer 200 with a JSON object. After the attack,
 * /api/status must still answer 200 with valid JSON listing the workers, and /metrics 200.
 *
 * Exit status 0 only if every check held. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <tern/tern.h>

#include "sdk/src/transport/auth.h"
#include "sdk/src/transport/wire.h"

static atomic_int failures;
static atomic_long attacks, refusals, closed_conns, http_attacks, http_ok;
static atomic_bool stop_attack;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "hostile: FAIL %s:%d: ", __FILE__, __LINE__);                          \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            atomic_fetch_add(&failures, 1);                                                        \
        }                                                                                          \
    } while (0)

static unsigned rnd(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

typedef struct conn {
    nng_socket s;
    bool ok;
} conn;

static conn dial(const char *url)
{
    conn c = { .ok = false };
    if (nng_req0_open(&c.s) != 0)
        return c;
    nng_socket_set_ms(c.s, NNG_OPT_RECVTIMEO, 5000);
    nng_socket_set_ms(c.s, NNG_OPT_SENDTIMEO, 5000);
    nng_socket_set_ms(c.s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_size(c.s, NNG_OPT_RECVMAXSZ, 1 << 20);
    c.ok = nng_dial(c.s, url, NULL, 0) == 0;
    if (!c.ok)
        nng_close(c.s);
    return c;
}

/* Sends raw bytes; returns the decoded answer, or NULL when the connection closed or timed
 * out (a refusal that closes the pipe may arrive either way). */
static tern_value *send_raw(conn *c, const void *buf, size_t len)
{
    atomic_fetch_add(&attacks, 1);
    if (nng_send(c->s, (void *)buf, len, 0) != 0) {
        atomic_fetch_add(&closed_conns, 1);
        return NULL;
    }
    nng_msg *m;
    if (nng_recvmsg(c->s, &m, 0) != 0) {
        atomic_fetch_add(&closed_conns, 1);
        return NULL;
    }
    tern_value *v = NULL;
    char err[256];
    if (terni_msg_decode(m, &v, err, sizeof(err)) != TERN_OK)
        return NULL;
    return v;
}

static tern_value *send_value(conn *c, const tern_value *v)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    tern_value *r = NULL;
    if (tern_encode(v, &buf, &n) == TERN_OK)
        r = send_raw(c, buf, n);
    free(buf);
    return r;
}

/* The first result of a scheduler reply (a list) or the data plane's answer (a map). */
static const tern_value *answer(const tern_value *r, bool sched)
{
    const tern_value *a = NULL;
    if (!sched)
        return r;
    tern_list_get(r, 0, &a);
    return a;
}

/* An answer (if any) must be an error with one of the codes given (0-terminated list). */
static void expect_refusal(const tern_value *r, bool sched, const char *what, ...)
{
    if (!r)
        return; /* closed: also a refusal */
    int code = terni_result_error(answer(r, sched), NULL);
    CHECK(code != TERN_OK, "%s was not refused", what);
    if (code != TERN_OK)
        atomic_fetch_add(&refusals, 1);
}

static tern_value *wrap(tern_value *op, bool sched)
{
    return sched ? tern_list_of(op) : op;
}

static tern_value *auth_op(int wire, const char *role)
{
    unsigned char nonce[32] = { 1, 2, 3 };
    tern_value *op = terni_op("auth");
    terni_set_int(op, "wire", wire);
    terni_set_text(op, "role", role);
    terni_set(op, "cnonce", tern_bytes(nonce, sizeof(nonce)));
    return op;
}

typedef struct target {
    char url[256];
    bool sched;
} target;

static terni_token good_token;

typedef struct rt_arg {
    conn *c;
    bool sched;
} rt_arg;

static int rt(void *arg, const tern_value *op, tern_value **reply, char *err, size_t errlen)
{
    rt_arg *a = arg;
    tern_value *req = wrap(tern_value_ref((tern_value *)op), a->sched);
    tern_value *r = send_value(a->c, req);
    tern_value_unref(req);
    if (!r) {
        snprintf(err, errlen, "no answer");
        return TERN_ECLOSED;
    }
    *reply = tern_value_ref((tern_value *)answer(r, a->sched));
    tern_value_unref(r);
    return TERN_OK;
}

/* One round of every attack against t. */
static void attack_once(const target *t, unsigned *seed)
{
    bool sched = t->sched;
    /* random bytes */
    {
        conn c = dial(t->url);
        if (c.ok) {
            unsigned char buf[3000];
            size_t n = rnd(seed) % sizeof(buf);
            for (size_t i = 0; i < n; i++)
                buf[i] = (unsigned char)rnd(seed);
            tern_value *r = send_raw(&c, buf, n);
            expect_refusal(r, sched, "random bytes");
            tern_value_unref(r);
            nng_close(c.s);
        }
    }
    /* truncated hello */
    {
        tern_value *hello = terni_op("hello");
        terni_set_int(hello, "wire", 1);
        terni_set_text(hello, "role", "client");
        tern_value *req = wrap(hello, sched);
        uint8_t *buf = NULL;
        size_t n = 0;
        tern_encode(req, &buf, &n);
        conn c = dial(t->url);
        if (c.ok) {
            tern_value *r = send_raw(&c, buf, rnd(seed) % n);
            expect_refusal(r, sched, "truncated hello");
            tern_value_unref(r);
            nng_close(c.s);
        }
        free(buf);
        tern_value_unref(req);
    }
    /* oversized for an unauthenticated peer, and a header claiming 2^40 bytes */
    {
        conn c = dial(t->url);
        if (c.ok) {
            size_t n = 64 * 1024;
            unsigned char *buf = calloc(1, n);
            buf[0] = 0x9f;
            tern_value *r = send_raw(&c, buf, n);
            expect_refusal(r, sched, "64 KiB unauthenticated");
            tern_value_unref(r);
            free(buf);
            nng_close(c.s);
        }
        c = dial(t->url);
        if (c.ok) {
            unsigned char huge[] = { 0x81, 0x5b, 0, 0, 1, 0, 0, 0, 0, 0, 'x' };
            tern_value *r = send_raw(&c, huge, sizeof(huge));
            expect_refusal(r, sched, "2^40-byte header");
            tern_value_unref(r);
            nng_close(c.s);
        }
    }
    /* out of order: proof before auth, and ops before authenticating */
    static const char *const early[] = { "auth_proof", "poll",   "done", "get",
                                         "put",        "submit", "hello" };
    for (size_t i = 0; i < sizeof(early) / sizeof(*early); i++) {
        conn c = dial(t->url);
        if (!c.ok)
            continue;
        tern_value *op = terni_op(early[i]);
        terni_set(op, "proof", tern_bytes("0123456789abcdef0123456789abcdef", 32));
        terni_set_text(op, "key", "k");
        terni_set_int(op, "wire", 1);
        tern_value *req = wrap(op, sched);
        tern_value *r = send_value(&c, req);
        char what[64];
        snprintf(what, sizeof(what), "%s before auth", early[i]);
        expect_refusal(r, sched, "%s", what);
        if (r)
            CHECK(terni_result_error(answer(r, sched), NULL) == TERN_EAUTH, "%s: not TERN_EAUTH",
                  what);
        tern_value_unref(r);
        tern_value_unref(req);
        nng_close(c.s);
    }
    /* wrong wire version */
    {
        conn c = dial(t->url);
        if (c.ok) {
            tern_value *req = wrap(auth_op(99, "client"), sched);
            tern_value *r = send_value(&c, req);
            expect_refusal(r, sched, "wire 99");
            if (r)
                CHECK(terni_result_error(answer(r, sched), NULL) == TERN_EPROTO,
                      "wire 99: not TERN_EPROTO");
            tern_value_unref(r);
            tern_value_unref(req);
            nng_close(c.s);
        }
    }
    /* wrong token: a made-up proof after a real challenge */
    {
        conn c = dial(t->url);
        if (c.ok) {
            tern_value *req = wrap(auth_op(1, "client"), sched);
            tern_value *r = send_value(&c, req);
            CHECK(r && !strcmp(terni_op_name(answer(r, sched)), "challenge"),
                  "auth got no challenge");
            tern_value_unref(r);
            tern_value_unref(req);
            tern_value *proof = terni_op("auth_proof");
            unsigned char bad[32];
            for (int i = 0; i < 32; i++)
                bad[i] = (unsigned char)rnd(seed);
            terni_set(proof, "proof", tern_bytes(bad, sizeof(bad)));
            req = wrap(proof, sched);
            r = send_value(&c, req);
            CHECK(r && terni_result_error(answer(r, sched), NULL) == TERN_EAUTH,
                  "a wrong proof was not refused with TERN_EAUTH");
            tern_value_unref(r);
            tern_value_unref(req);
            nng_close(c.s);
        }
    }
    /* a dialer with another token refuses the server (its proof does not check out) */
    {
        conn c = dial(t->url);
        if (c.ok) {
            terni_token other = good_token;
            other.bytes[0] ^= 1;
            rt_arg a = { &c, sched };
            char err[512];
            int rc = terni_auth_client(&other, "client", rt, &a, err, sizeof(err));
            CHECK(rc == TERN_EAUTH, "another token: %s", tern_strerror_name(rc));
            nng_close(c.s);
        }
    }
    /* authenticated, then malformed ops of every name */
    {
        conn c = dial(t->url);
        if (!c.ok)
            return;
        rt_arg a = { &c, sched };
        char err[512];
        int rc =
            terni_auth_client(&good_token, sched ? "client" : "peer", rt, &a, err, sizeof(err));
        CHECK(rc == TERN_OK, "good token refused: %s", err);
        if (rc != TERN_OK) {
            nng_close(c.s);
            return;
        }
        if (sched) {
            tern_value *hello = terni_op("hello");
            terni_set_int(hello, "wire", 1);
            terni_set_text(hello, "role", "client");
            tern_value *req = tern_list_of(hello), *r = send_value(&c, req);
            tern_value_unref(r);
            tern_value_unref(req);
        }
        static const char *const names[] = { "submit",  "release", "cancel", "scatter",
                                             "who_has", "status",  "get",    "put",
                                             "hello",   "auth",    "done",   "nonsense" };
        for (int k = 0; k < 24; k++) {
            tern_value *op = terni_op(names[rnd(seed) % (sizeof(names) / sizeof(*names))]);
            switch (rnd(seed) % 4) {
            case 0:
                terni_set_int(op, "tasks", 7);
                terni_set_int(op, "keys", -1);
                terni_set_int(op, "key", 3);
                break;
            case 1: {
                tern_value *spec = tern_map_new();
                terni_set_text(spec, "key", "hostile-k");
                terni_set_int(spec, "deps", 1);
                terni_set(spec, "args", tern_text("not bytes"));
                terni_set(op, "tasks", tern_list_of(spec));
                terni_set(op, "keys", tern_list_of(tern_int(5)));
                break;
            }
            case 2:
                terni_set(op, "keys", tern_list_of(tern_text("no-such-key")));
                terni_set_text(op, "key", "");
                terni_set(op, "value", tern_null());
                break;
            default:
                break;
            }
            tern_value *req = wrap(op, sched), *r = send_value(&c, req);
            tern_value_unref(r);
            tern_value_unref(req);
        }
        nng_close(c.s);
    }
}

typedef struct attacker {
    target *targets;
    size_t ntargets;
    unsigned seed;
    pthread_t thread;
} attacker;

static void *attacker_main(void *arg)
{
    attacker *a = arg;
    while (!atomic_load(&stop_attack))
        for (size_t i = 0; i < a->ntargets && !atomic_load(&stop_attack); i++)
            attack_once(&a->targets[i], &a->seed);
    return NULL;
}

/* ---- the HTTP port ---------------------------------------------------------------- */

static struct sockaddr_in http_sa;

/* A TCP connection to the dashboard with 5 s send/receive timeouts, or -1. */
static int http_dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&http_sa, sizeof(http_sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends everything it can (the server may close or reset early: that is a refusal). */
static bool http_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads one response: its status code (0 when the connection closed, was reset or timed out
 * before a status line) and, if body is given, its body (Content-Length bytes, NUL-terminated,
 * malloc'd) */
static int http_read(int fd, char **body)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    int status = 0;
    if (body)
        *body = NULL;
    if (!buf)
        return 0;
    char *eoh = NULL;
    for (;;) {
        if (len == cap) {
            if (cap >= (8u << 20))
                break;
            char *grown = realloc(buf, 2 * cap + 1);
            if (!grown)
                break;
            buf = grown;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (!eoh && (eoh = strstr(buf, "\r\n\r\n")) != NULL) {
            if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
                status = -1; /* not HTTP at all */
            if (!body)
                break;
        }
        if (eoh) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t want = cl && cl < eoh ? strtoul(cl + 17, NULL, 10) : 0;
            if (len >= (size_t)(eoh + 4 - buf) + want) {
                buf[(eoh + 4 - buf) + want] = '\0';
                break;
            }
        }
    }
    if (body && eoh && status > 0) {
        size_t off = (size_t)(eoh + 4 - buf);
        memmove(buf, buf + off, len - off + 1);
        *body = buf;
        return status;
    }
    free(buf);
    return eoh ? status : 0;
}

/* One request on a fresh connection: sends req (len bytes) and returns the status code (0 if
 * the server closed without one). */
static int http_raw(const void *req, size_t len, char **body)
{
    atomic_fetch_add(&http_attacks, 1);
    int fd = http_dial();
    if (fd < 0)
        return 0;
    int status = http_send(fd, req, len) ? http_read(fd, body) : 0;
    close(fd);
    return status;
}

static int http_get(const char *path, char **body)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    int status = http_raw(req, (size_t)n, body);
    atomic_fetch_sub(&http_attacks, 1); /* not an attack */
    return status;
}

/* GET /api/status answers 200 with a JSON object that has a "workers" list; returns the
 * number of workers in it, or -1 (having counted a failure). */
static long check_api_status(const char *when)
{
    char *body = NULL;
    int status = http_get("/api/status", &body);
    CHECK(status == 200, "%s: GET /api/status answered %d", when, status);
    long nw = -1;
    if (status == 200) {
        json_error_t jerr;
        json_t *j = json_loads(body ? body : "", 0, &jerr);
        CHECK(j && json_is_object(j), "%s: /api/status is not a JSON object: %s", when, jerr.text);
        json_t *ws = j ? json_object_get(j, "workers") : NULL;
        CHECK(json_is_array(ws), "%s: /api/status has no workers list", when);
        if (json_is_array(ws))
            nw = (long)json_array_size(ws);
        json_decref(j);
        atomic_fetch_add(&http_ok, 1);
    }
    free(body);
    return nw;
}

/* An answer to a malformed or refused request: a closed connection or an error status. */
static void expect_http_refusal(int status, const char *what)
{
    CHECK(status == 0 || status >= 400 || status == -1, "HTTP %s answered %d", what, status);
}

enum { HELD_MAX = 64 };

static void *http_attacker_main(void *arg)
{
    unsigned seed = 99u, *s = &seed;
    (void)arg;
    int held[HELD_MAX];
    size_t nheld = 0;
    size_t big = 1u << 20;
    char *huge = malloc(big + 256);
    if (!huge)
        return NULL;
    while (!atomic_load(&stop_attack)) {
        /* random bytes */
        char rb[3000];
        size_t n = rnd(s) % sizeof(rb);
        for (size_t i = 0; i < n; i++)
            rb[i] = (char)rnd(s);
        int st = http_raw(rb, n, NULL);
        CHECK(st != 200, "random bytes answered 200");
        /* a truncated request, abandoned at once */
        static const char trunc[] = "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAcc";
        int fd = http_dial();
        if (fd >= 0) {
            atomic_fetch_add(&http_attacks, 1);
            http_send(fd, trunc, rnd(s) % (sizeof(trunc) - 1));
            close(fd);
        }
        /* a 1 MiB header, and a 1 MiB request line */
        int k = snprintf(huge, 256, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ");
        memset(huge + k, 'a', big);
        memcpy(huge + k + big, "\r\n\r\n", 4);
        expect_http_refusal(http_raw(huge, (size_t)k + big + 4, NULL), "1 MiB header");
        k = snprintf(huge, 256, "GET /");
        memset(huge + k, 'b', big);
        memcpy(huge + k + big, " HTTP/1.1\r\n\r\n", 13);
        expect_http_refusal(http_raw(huge, (size_t)k + big + 13, NULL), "1 MiB request line");
        /* a POST claiming a 100 GB body (a few bytes of it sent) */
        static const char *const posts[] = {
            "POST /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
            "100000000000\r\n\r\nabc",
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000000\r\n\r\n{\"x\":",
            "PUT /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
            ("POST /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
             "FFFFFFFFFFFF\r\nabc"),
        };
        for (size_t i = 0; i < sizeof(posts) / sizeof(*posts); i++)
            expect_http_refusal(http_raw(posts[i], strlen(posts[i]), NULL), posts[i]);
        /* unknown paths and methods */
        static const char *const odd[] = {
            "GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "GET /../../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "GET /api/status/../../x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "BREW /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "DELETE /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "GET /api/status HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
            "GET\r\n\r\n",
            "\r\n\r\n\r\n",
        };
        for (size_t i = 0; i < sizeof(odd) / sizeof(*odd); i++)
            expect_http_refusal(http_raw(odd[i], strlen(odd[i]), NULL), odd[i]);
        /* slow requests: a few more connections stopped mid-header, held; the oldest
         * abandoned once HELD_MAX are open */
        for (int i = 0; i < 4; i++) {
            if (nheld == HELD_MAX) {
                close(held[0]);
                memmove(held, held + 1, (HELD_MAX - 1) * sizeof(int));
                nheld--;
            }
            fd = http_dial();
            if (fd < 0)
                continue;
            atomic_fetch_add(&http_attacks, 1);
            http_send(fd, trunc, sizeof(trunc) - 1);
            held[nheld++] = fd;
        }
        /* the port still serves a well-formed request */
        check_api_status("during the attack");
    }
    /* one last check with the slow connections still open, then abandon them */
    check_api_status("with slow connections held");
    for (size_t i = 0; i < nheld; i++)
        close(held[i]);
    free(huge);
    return NULL;
}

/* "http://127.0.0.1:PORT/" into http_sa; false for anything else. */
static bool parse_dashboard(const char *url)
{
    char host[64];
    unsigned port;
    if (!url || sscanf(url, "http://%63[0-9.]:%u", host, &port) != 2 || port == 0 || port > 65535)
        return false;
    memset(&http_sa, 0, sizeof(http_sa));
    http_sa.sin_family = AF_INET;
    http_sa.sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &http_sa.sin_addr) == 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: hostile SCHEDULER_URL TOKEN_FILE TESTPLUG.so [SECONDS]\n");
        return 2;
    }
    const char *url = argv[1], *token_file = argv[2], *plugin = argv[3];
    double seconds = argc > 4 ? atof(argv[4]) : 5;
    char err[512];
    if (terni_token_load(token_file, &good_token, err, sizeof(err)) != TERN_OK) {
        fprintf(stderr, "hostile: %s\n", err);
        return 2;
    }
    tern_connect_opts o = { .timeout_ms = 20000, .token_file = token_file };
    tern_client *c;
    int rc = tern_connect(url, &o, &c);
    if (rc != TERN_OK) {
        fprintf(stderr, "hostile: connect: %s\n", tern_client_errmsg(NULL));
        return 1;
    }
    if (tern_upload_plugin(c, plugin, NULL) != TERN_OK) {
        fprintf(stderr, "hostile: upload: %s\n", tern_client_errmsg(c));
        return 1;
    }
    /* targets: the scheduler and every worker's data server */
    target targets[16];
    char names[2][160] = { "", "" };
    size_t nt = 0;
    snprintf(targets[nt].url, sizeof(targets[nt].url), "%s", url);
    targets[nt++].sched = true;
    tern_value *st = NULL;
    const tern_value *ws = NULL, *w;
    if (tern_status_info(c, &st) == TERN_OK)
        tern_map_get(st, "workers", &ws);
    bool http = parse_dashboard(terni_get_text(st, "dashboard"));
    for (size_t i = 0; nt < 16 && tern_list_get(ws, i, &w) == TERN_OK; i++) {
        const char *addr = terni_get_text(w, "address"), *name = terni_get_text(w, "name");
        if (name && i < 2)
            snprintf(names[i], sizeof(names[i]), "%s", name);
        if (addr) {
            snprintf(targets[nt].url, sizeof(targets[nt].url), "%s", addr);
            targets[nt++].sched = false;
        }
    }
    size_t nworkers = nt - 1;
    tern_value_unref(st);
    CHECK(nworkers >= 1, "no worker to attack");

    attacker att[2];
    for (int i = 0; i < 2; i++) {
        att[i] = (attacker){ .targets = targets, .ntargets = nt, .seed = 1234u + (unsigned)i };
        pthread_create(&att[i].thread, NULL, attacker_main, &att[i]);
    }
    pthread_t http_thread;
    if (http)
        pthread_create(&http_thread, NULL, http_attacker_main, NULL);
    /* The workload: chains x -> inc(x) -> inc(inc(x)), checked exactly, until time is up;
     * with two workers the first step runs on one and the second on the other, so every
     * chain moves data between workers over their data plane. */
    const char *on0[] = { names[0], NULL }, *on1[] = { names[1], NULL };
    bool split = names[0][0] && names[1][0];
    long rounds = 0, results = 0;
    double end = now_s() + seconds;
    while (now_s() < end && !atomic_load(&failures)) {
        enum { N = 20 };
        tern_future *a[N], *b[N];
        for (int i = 0; i < N; i++) {
            rc = tern_submit(c, "testplug:inc", tern_list_of(tern_int(rounds * N + i)),
                             &(tern_submit_opts){ .impure = true, .workers = split ? on0 : NULL },
                             &a[i]);
            CHECK(rc == TERN_OK, "submit: %s", tern_client_errmsg(c));
            rc = tern_submit(c, "testplug:inc", tern_list_of(tern_future_ref(a[i])),
                             &(tern_submit_opts){ .impure = true, .workers = split ? on1 : NULL },
                             &b[i]);
            CHECK(rc == TERN_OK, "submit: %s", tern_client_errmsg(c));
        }
        for (int i = 0; i < N; i++) {
            tern_value *v = NULL;
            int64_t got = -1;
            rc = tern_result(b[i], 20000, &v);
            CHECK(rc == TERN_OK, "result: %s: %s", tern_strerror_name(rc), tern_client_errmsg(c));
            if (rc == TERN_OK && tern_value_get_int(v, &got) == TERN_OK)
                results++;
            CHECK(rc != TERN_OK || got == rounds * N + i + 2, "wrong result %lld", (long long)got);
            tern_value_unref(v);
            tern_future_release(a[i]);
            tern_future_release(b[i]);
        }
        rounds++;
    }
    atomic_store(&stop_attack, true);
    for (int i = 0; i < 2; i++)
        pthread_join(att[i].thread, NULL);
    if (http) {
        pthread_join(http_thread, NULL);
        /* the dashboard survived: a fresh snapshot (published at most every 250 ms) lists
         * every worker, and /metrics answers */
        long nw = -1;
        for (int i = 0; i < 40 && nw != (long)nworkers; i++) {
            nw = check_api_status("after the attack");
            if (nw != (long)nworkers)
                nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
        }
        CHECK(nw == (long)nworkers, "/api/status lists %ld workers after the attack, not %zu", nw,
              nworkers);
        char *body = NULL;
        int status = http_get("/metrics", &body);
        CHECK(status == 200 && body && strstr(body, "tern_workers "),
              "GET /metrics after the attack: %d", status);
        free(body);
    }
    /* every daemon still up: the workers are all still registered */
    st = NULL;
    ws = NULL;
    rc = tern_status_info(c, &st);
    CHECK(rc == TERN_OK, "status after the attack: %s", tern_client_errmsg(c));
    if (rc == TERN_OK)
        tern_map_get(st, "workers", &ws);
    CHECK(tern_list_len(ws) == nworkers, "%zu workers after the attack, %zu before",
          tern_list_len(ws), nworkers);
    tern_value_unref(st);
    tern_close(c);
    printf("hostile: %ld correct results in %ld rounds; %ld attack messages on %zu ports, "
           "%ld refused with an error, %ld answered by closing; %s%ld HTTP attacks, %ld good "
           "/api/status answers; %d failures\n",
           results, rounds, atomic_load(&attacks), nt, atomic_load(&refusals),
           atomic_load(&closed_conns), http ? "" : "no dashboard: ", atomic_load(&http_attacks),
           atomic_load(&http_ok), atomic_load(&failures));
    CHECK(results > 0, "no workload result");
    CHECK(!http || atomic_load(&http_ok) > 1, "no good /api/status answer during the attack");
    return atomic_load(&failures) ? 1 : 0;
}
