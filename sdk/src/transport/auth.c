/* Cluster token authentication (see auth.h).
 *
 * Design notes
 *  Protocol (both proofs are HMAC-SHA256 keyed with the token; nonces are 32 random bytes):
 *    dialer -> {"op": "auth", "wire": 1, "role": R, "cnonce": Nc}
 *    server <- {"op": "challenge", "snonce": Ns, "proof": HMAC(tok, "tern-auth-1 server" 0 R 0
 *                                                            Nc Ns)}
 *    dialer checks the server's proof (so it never talks to a server without the token:
 *    a worker must not take plugins, i.e. code, from an impostor), then
 *    dialer -> {"op": "auth_proof", "proof": HMAC(tok, "tern-auth-1 client" 0 R 0 Nc Ns)}
 *    server <- {"op": "authenticated"}, or an error result TERN_EAUTH and the pipe is closed.
 *  The two proofs carry different labels, so neither can be replayed as the other, and the
 *  server's fresh nonce makes every connection's proof different.
 *  Binding: the authenticated state belongs to the nng pipe (one transport connection). A
 *  gate keeps a table pipe -> state under its own mutex, so nng callback threads can consult
 *  it before the message is even decoded; an unauthenticated pipe may only send small auth
 *  messages, anything else is refused and the pipe closed (after a short delay, so that the
 *  refusal is delivered: nng_pipe_close would discard the queued reply).
 *  Request/reply framing differs between the scheduler (lists of ops) and the data plane
 *  (single ops), so the gate judges one op and the caller wraps its answer.
 */
#include "sdk/src/transport/auth.h"

#include "sdk/src/protocol/protocol.h"

#include "sdk/src/transport/wire.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <mbedtls/md.h>
#include <uthash.h>

#define NONCE_LEN   32
#define PROOF_LEN   32
#define ROLE_MAX    16
#define CLOSE_DELAY 150 /* ms between a refusal and closing its pipe */

/* ---- token ----------------------------------------------------------------------- */

int terni_token_load(const char *path, terni_token *tok, char *err, size_t errlen)
{
    memset(tok, 0, sizeof(*tok));
    if (!path || !*path)
        path = getenv("TERN_TOKEN_FILE");
    if (!path || !*path)
        return TERN_OK;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read the token file %s: %s", path, strerror(errno));
        return TERN_EIO;
    }
    unsigned char buf[TERNI_TOKEN_MAX + 2];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    while (n && isspace(buf[n - 1]))
        n--;
    if (n < TERNI_TOKEN_MIN || n > TERNI_TOKEN_MAX) {
        snprintf(err, errlen,
                 "the token in %s must be %d to %d bytes (make one with: head -c 32 /dev/urandom "
                 "| base64 > %s; chmod 600 %s)",
                 path, TERNI_TOKEN_MIN, TERNI_TOKEN_MAX, path, path);
        return TERN_EINVAL;
    }
    memcpy(tok->bytes, buf, n);
    tok->len = n;
    return TERN_OK;
}

/* ---- proofs ---------------------------------------------------------------------- */

static int proof(const terni_token *tok, const char *label, const char *role,
                 const unsigned char *cnonce, const unsigned char *snonce,
                 unsigned char out[PROOF_LEN])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    int rv = mbedtls_md_setup(&ctx, md, 1);
    if (rv == 0)
        rv = mbedtls_md_hmac_starts(&ctx, tok->bytes, tok->len);
    if (rv == 0)
        rv = mbedtls_md_hmac_update(&ctx, (const unsigned char *)label, strlen(label) + 1);
    if (rv == 0)
        rv = mbedtls_md_hmac_update(&ctx, (const unsigned char *)role, strlen(role) + 1);
    if (rv == 0)
        rv = mbedtls_md_hmac_update(&ctx, cnonce, NONCE_LEN);
    if (rv == 0)
        rv = mbedtls_md_hmac_update(&ctx, snonce, NONCE_LEN);
    if (rv == 0)
        rv = mbedtls_md_hmac_finish(&ctx, out);
    mbedtls_md_free(&ctx);
    return rv == 0 ? TERN_OK : TERN_ENOMEM;
}

static bool same(const unsigned char *a, const unsigned char *b, size_t n)
{
    unsigned char d = 0; /* constant time */
    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

static bool fill_random(unsigned char *buf, size_t n)
{
    return getrandom(buf, n, 0) == (ssize_t)n;
}

/* ---- dialer ---------------------------------------------------------------------- */

int terni_auth_client(const terni_token *tok, const char *role, terni_auth_rt rt, void *arg,
                      char *err, size_t errlen)
{
    unsigned char cnonce[NONCE_LEN], want[PROOF_LEN], mine[PROOF_LEN];
    const unsigned char *snonce, *sproof;
    terni_challenge ch;
    if (!fill_random(cnonce, sizeof(cnonce))) {
        snprintf(err, errlen, "getrandom failed: %s", strerror(errno));
        return TERN_EIO;
    }
    tern_value *op = terni_enc_auth(&(terni_auth_msg){ .wire = TERNI_WIRE_VERSION,
                                                       .role = role,
                                                       .cnonce = cnonce,
                                                       .cnonce_len = sizeof(cnonce) }),
               *reply = NULL;
    if (!op) {
        snprintf(err, errlen, "out of memory");
        return TERN_ENOMEM;
    }
    int rc = rt(arg, op, &reply, err, errlen);
    tern_value_unref(op);
    if (rc != TERN_OK)
        return rc;
    const char *msg = NULL;
    int code = terni_result_error(reply, &msg);
    if (code != TERN_OK) {
        /* A server without a token answers TERN_EAUTH; an older one, "say hello first". */
        snprintf(err, errlen, "%s", msg);
        tern_value_unref(reply);
        return code == TERN_EPROTO && !strstr(err, "wire") ? TERN_EAUTH : code;
    }
    if (terni_op_of(reply) != TERNI_OP_CHALLENGE ||
        terni_dec_challenge(reply, &ch, NULL, 0) != TERN_OK || ch.snonce_len != NONCE_LEN ||
        ch.proof_len != PROOF_LEN) {
        tern_value_unref(reply);
        snprintf(err, errlen, "malformed authentication challenge");
        return TERN_EPROTO;
    }
    snonce = ch.snonce;
    sproof = ch.proof;
    if (proof(tok, "tern-auth-1 server", role, cnonce, snonce, want) != TERN_OK ||
        !same(want, sproof, PROOF_LEN)) {
        tern_value_unref(reply);
        snprintf(err, errlen,
                 "the server could not prove it holds our cluster token (a different token, or "
                 "not our cluster); not connecting");
        return TERN_EAUTH;
    }
    rc = proof(tok, "tern-auth-1 client", role, cnonce, snonce, mine);
    tern_value_unref(reply);
    reply = NULL;
    op = rc == TERN_OK
             ? terni_enc_auth_proof(&(terni_auth_proof){ .proof = mine, .proof_len = sizeof(mine) })
             : NULL;
    if (!op) {
        tern_value_unref(op);
        snprintf(err, errlen, "out of memory");
        return TERN_ENOMEM;
    }
    rc = rt(arg, op, &reply, err, errlen);
    tern_value_unref(op);
    if (rc != TERN_OK)
        return rc;
    code = terni_result_error(reply, &msg);
    if (code != TERN_OK)
        snprintf(err, errlen, "%s", msg);
    else if (terni_op_of(reply) != TERNI_OP_AUTHENTICATED) {
        code = TERN_EPROTO;
        snprintf(err, errlen, "malformed authentication answer");
    }
    tern_value_unref(reply);
    return code;
}

/* ---- gate ------------------------------------------------------------------------ */

enum { P_CHALLENGED = 1, P_AUTHED };

typedef struct pipe_state {
    uint32_t pipe;
    int state;
    char role[ROLE_MAX + 1];
    unsigned char cnonce[NONCE_LEN], snonce[NONCE_LEN];
    UT_hash_handle hh;
} pipe_state;

typedef struct doomed {
    uint32_t pipe;
    uint64_t due_ns;
    struct doomed *next;
} doomed;

struct terni_gate {
    terni_token tok;
    pthread_mutex_t lock;
    pipe_state *pipes;
    doomed *doomed;
    nng_aio *reaper;
    bool reaper_armed, closing;
};

static void reap_cb(void *arg);

int terni_gate_new(const terni_token *tok, terni_gate **out)
{
    terni_gate *g = calloc(1, sizeof(*g));
    if (!g)
        return TERN_ENOMEM;
    if (tok)
        g->tok = *tok;
    if (nng_aio_alloc(&g->reaper, reap_cb, g) != 0) {
        free(g);
        return TERN_ENOMEM;
    }
    pthread_mutex_init(&g->lock, NULL);
    *out = g;
    return TERN_OK;
}

void terni_gate_free(terni_gate *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    g->closing = true;
    pthread_mutex_unlock(&g->lock);
    nng_aio_stop(g->reaper);
    nng_aio_free(g->reaper);
    pipe_state *p, *tmp;
    HASH_ITER(hh, g->pipes, p, tmp)
    {
        HASH_DEL(g->pipes, p);
        free(p);
    }
    while (g->doomed) {
        doomed *d = g->doomed;
        g->doomed = d->next;
        free(d);
    }
    pthread_mutex_destroy(&g->lock);
    memset(&g->tok, 0, sizeof(g->tok));
    free(g);
}

bool terni_gate_authed(terni_gate *g, uint32_t pipe)
{
    if (!g || !g->tok.len)
        return true;
    pthread_mutex_lock(&g->lock);
    pipe_state *p;
    HASH_FIND(hh, g->pipes, &pipe, sizeof(pipe), p);
    bool ok = p && p->state == P_AUTHED;
    pthread_mutex_unlock(&g->lock);
    return ok;
}

static terni_gate_verdict refuse(tern_value **reply, int code, const char *msg)
{
    *reply = terni_error_result(code, "%s", msg);
    return TERNI_GATE_REPLY_CLOSE;
}

terni_gate_verdict terni_gate_check(terni_gate *g, uint32_t pipe, const tern_value *op,
                                    tern_value **reply)
{
    *reply = NULL;
    terni_op_id id = op ? terni_op_of(op) : TERNI_OP_NONE;
    bool auth_op = id == TERNI_OP_AUTH || id == TERNI_OP_AUTH_PROOF;
    if (!g || !g->tok.len) {
        if (!auth_op)
            return TERNI_GATE_PASS;
        return refuse(reply, TERN_EAUTH,
                      "this server has no cluster token, so it cannot prove it belongs to your "
                      "cluster; start it with --token-file (or TERN_TOKEN_FILE)");
    }
    pthread_mutex_lock(&g->lock);
    pipe_state *p;
    HASH_FIND(hh, g->pipes, &pipe, sizeof(pipe), p);
    if (p && p->state == P_AUTHED) {
        pthread_mutex_unlock(&g->lock);
        if (!auth_op)
            return TERNI_GATE_PASS;
        *reply = terni_error_result(TERN_EPROTO, "this connection is already authenticated");
        return TERNI_GATE_REPLY;
    }
    terni_gate_verdict v = TERNI_GATE_REPLY_CLOSE;
    if (id == TERNI_OP_AUTH) {
        terni_auth_msg m;
        unsigned char sproof[PROOF_LEN];
        /* a field of another type is left at its default (protocol.h): checked here */
        terni_dec_auth(op, &m, NULL, 0);
        int64_t wire = m.wire;
        const char *role = m.role;
        const unsigned char *cnonce = m.cnonce;
        if (wire != TERNI_WIRE_VERSION) {
            *reply = terni_error_result(TERN_EPROTO,
                                        "wire protocol version %lld is not supported: this "
                                        "server speaks version %d; use matching tern versions",
                                        (long long)wire, TERNI_WIRE_VERSION);
        } else if (p || !role || strlen(role) > ROLE_MAX || !cnonce || m.cnonce_len != NONCE_LEN) {
            *reply = terni_error_result(TERN_EAUTH, "malformed or repeated auth request");
        } else if (!(p = calloc(1, sizeof(*p)))) {
            *reply = NULL;
        } else {
            p->pipe = pipe;
            p->state = P_CHALLENGED;
            snprintf(p->role, sizeof(p->role), "%s", role);
            memcpy(p->cnonce, cnonce, NONCE_LEN);
            tern_value *r = NULL;
            if (fill_random(p->snonce, NONCE_LEN) &&
                proof(&g->tok, "tern-auth-1 server", p->role, p->cnonce, p->snonce, sproof) ==
                    TERN_OK &&
                (r = terni_enc_challenge(&(terni_challenge){ .snonce = p->snonce,
                                                             .snonce_len = NONCE_LEN,
                                                             .proof = sproof,
                                                             .proof_len = PROOF_LEN }))) {
                HASH_ADD(hh, g->pipes, pipe, sizeof(p->pipe), p);
                *reply = r;
                v = TERNI_GATE_REPLY;
            } else {
                tern_value_unref(r);
                free(p);
                *reply = terni_error_result(TERN_EIO, "cannot make a challenge");
            }
        }
    } else if (id == TERNI_OP_AUTH_PROOF) {
        terni_auth_proof m;
        unsigned char want[PROOF_LEN];
        const unsigned char *got = NULL;
        if (terni_dec_auth_proof(op, &m, NULL, 0) == TERN_OK && m.proof_len == PROOF_LEN)
            got = m.proof;
        if (p && p->state == P_CHALLENGED && got &&
            proof(&g->tok, "tern-auth-1 client", p->role, p->cnonce, p->snonce, want) == TERN_OK &&
            same(want, got, PROOF_LEN)) {
            p->state = P_AUTHED;
            *reply = terni_enc_empty(TERNI_OP_AUTHENTICATED);
            v = TERNI_GATE_REPLY;
        } else {
            *reply = terni_error_result(TERN_EAUTH, "authentication failed: wrong cluster token");
        }
    } else {
        *reply = terni_error_result(
            TERN_EAUTH, "this cluster requires a token: give the same token file as the "
                        "scheduler's (--token-file, TERN_TOKEN_FILE, or the token_file option)");
    }
    pthread_mutex_unlock(&g->lock);
    return v;
}

void terni_gate_pipe_gone(terni_gate *g, uint32_t pipe)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    pipe_state *p;
    HASH_FIND(hh, g->pipes, &pipe, sizeof(pipe), p);
    if (p) {
        HASH_DEL(g->pipes, p);
        free(p);
    }
    pthread_mutex_unlock(&g->lock);
}

static void close_pipe(uint32_t id)
{
    nng_pipe p = NNG_PIPE_INITIALIZER;
    p.id = id;
    nng_pipe_close(p);
}

static void reap_cb(void *arg)
{
    terni_gate *g = arg;
    if (nng_aio_result(g->reaper) != 0)
        return; /* stopped */
    uint64_t now = terni_now_ns();
    pthread_mutex_lock(&g->lock);
    doomed **pp = &g->doomed, *due = NULL;
    while (*pp) {
        doomed *d = *pp;
        if (d->due_ns <= now) {
            *pp = d->next;
            d->next = due;
            due = d;
        } else {
            pp = &d->next;
        }
    }
    g->reaper_armed = g->doomed && !g->closing;
    if (g->reaper_armed)
        nng_sleep_aio(CLOSE_DELAY / 3, g->reaper);
    pthread_mutex_unlock(&g->lock);
    while (due) {
        doomed *d = due;
        due = d->next;
        close_pipe(d->pipe);
        free(d);
    }
}

void terni_gate_close_later(terni_gate *g, uint32_t pipe)
{
    doomed *d = g ? malloc(sizeof(*d)) : NULL;
    if (!d) {
        close_pipe(pipe);
        return;
    }
    d->pipe = pipe;
    d->due_ns = terni_now_ns() + (uint64_t)CLOSE_DELAY * 1000000u;
    pthread_mutex_lock(&g->lock);
    if (g->closing) {
        pthread_mutex_unlock(&g->lock);
        free(d);
        return;
    }
    d->next = g->doomed;
    g->doomed = d;
    if (!g->reaper_armed) {
        g->reaper_armed = true;
        nng_sleep_aio(CLOSE_DELAY, g->reaper);
    }
    pthread_mutex_unlock(&g->lock);
}

/* ---- locality -------------------------------------------------------------------- */

bool terni_url_is_loopback(const char *url)
{
    if (!url)
        return false;
    if (!strncmp(url, "ipc://", 6) || !strncmp(url, "abstract://", 11) ||
        !strncmp(url, "inproc://", 9))
        return true;
    const char *h;
    if (!strncmp(url, "tcp://", 6))
        h = url + 6;
    else if (!strncmp(url, "tls+tcp://", 10))
        h = url + 10;
    else
        return false;
    char host[256];
    const char *end;
    if (*h == '[') { /* [v6]:port */
        end = strchr(h, ']');
        if (!end)
            return false;
        h++;
    } else {
        end = strrchr(h, ':');
        if (!end)
            end = h + strlen(h);
    }
    size_t n = (size_t)(end - h);
    if (n >= sizeof(host))
        return false;
    memcpy(host, h, n);
    host[n] = '\0';
    if (!strcmp(host, "localhost"))
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

bool terni_valid_worker_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 128)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._:@+-", *s))
            return false;
    return true;
}

bool terni_valid_address(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 255)
        return false;
    if (strncmp(s, "tcp://", 6) && strncmp(s, "tls+tcp://", 10) && strncmp(s, "ipc://", 6) &&
        strncmp(s, "abstract://", 11) && strncmp(s, "inproc://", 9))
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

bool terni_valid_key(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > TERNI_MAX_KEY)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || *s == 0x7f)
            return false;
    return true;
}

int terni_listen_policy(const char *prog, const char *url, const terni_sec *sec, bool insecure,
                        char *err, size_t errlen)
{
    bool tls_clients = url && !strncmp(url, "tls+tcp://", 10) && sec && sec->tls_verify_clients;
    if (terni_url_is_loopback(url) || (sec && sec->token.len) || tls_clients)
        return TERN_OK;
    if (!insecure) {
        snprintf(err, errlen,
                 "refusing to listen on %s without protection: anyone who can reach it could "
                 "run code on the cluster. Give a cluster token (--token-file FILE or "
                 "TERN_TOKEN_FILE), or tls+tcp:// with --tls-verify-clients, or listen on "
                 "loopback; --insecure overrides this (see docs/security.md)",
                 url ? url : "(null)");
        return TERN_EAUTH;
    }
    fprintf(stderr,
            "%s: WARNING: --insecure: listening on %s WITHOUT AUTHENTICATION. Anyone who can "
            "reach this address can run arbitrary code on every worker of this cluster.\n",
            prog, url);
    return TERN_OK;
}

bool terni_pipe_is_local(uint32_t id)
{
    nng_pipe p = NNG_PIPE_INITIALIZER;
    p.id = id;
    nng_sockaddr sa;
    if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
        return false;
    switch (sa.s_family) {
    case NNG_AF_IPC:
    case NNG_AF_INPROC:
    case NNG_AF_ABSTRACT:
        return true;
    case NNG_AF_INET:
        return (ntohl(sa.s_in.sa_addr) >> 24) == 127;
    case NNG_AF_INET6: {
        static const uint8_t lo[16] = { [15] = 1 };
        return !memcmp(sa.s_in6.sa_addr, lo, 16);
    }
    default:
        return false;
    }
}
