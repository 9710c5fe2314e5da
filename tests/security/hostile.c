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
 * correct authentication, malformed ops of every name the daemons handle. Exit status 0 only
 * if every check held. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <tern/tern.h>

#include "auth.h"
#include "wire.h"

static atomic_int failures;
static atomic_long attacks, refusals, closed_conns;
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
           "%ld refused with an error, %ld answered by closing; %d failures\n",
           results, rounds, atomic_load(&attacks), nt, atomic_load(&refusals),
           atomic_load(&closed_conns), atomic_load(&failures));
    CHECK(results > 0, "no workload result");
    return atomic_load(&failures) ? 1 : 0;
}
