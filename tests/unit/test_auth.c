/* Unit tests of sdk/src/transport/auth.c: token files, the challenge-response between a dialer and
 * a gate (driven in-process: the dialer's round trip calls the gate directly), replays,
 * the safe-default address rules and name validation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sdk/src/transport/auth.h"
#include "sdk/src/transport/wire.h"

static terni_token tok(const char *s)
{
    terni_token t = { .len = strlen(s) };
    memcpy(t.bytes, s, t.len);
    return t;
}

typedef struct conn {
    terni_gate *g;
    uint32_t pipe;
    int closes;            /* verdicts asking to close the pipe */
    tern_value *last_auth; /* the last auth_proof op sent, for replay */
} conn;

static int rt(void *arg, const tern_value *op, tern_value **reply, char *err, size_t errlen)
{
    conn *c = arg;
    if (!strcmp(terni_op_name(op), "auth_proof")) {
        tern_value_unref(c->last_auth);
        c->last_auth = tern_value_ref((tern_value *)op);
    }
    terni_gate_verdict v = terni_gate_check(c->g, c->pipe, op, reply);
    cr_assert_neq(v, TERNI_GATE_PASS, "an auth op passed the gate");
    cr_assert_not_null(*reply);
    c->closes += v == TERNI_GATE_REPLY_CLOSE;
    return TERN_OK;
}

Test(auth, good_token_authenticates_the_pipe_only)
{
    terni_token t = tok("0123456789abcdef-cluster");
    terni_gate *g;
    cr_assert_eq(terni_gate_new(&t, &g), TERN_OK);
    conn c = { .g = g, .pipe = 7 };
    char err[512];
    cr_assert(!terni_gate_authed(g, 7));
    cr_assert_eq(terni_auth_client(&t, "client", rt, &c, err, sizeof(err)), TERN_OK, "%s", err);
    cr_assert(terni_gate_authed(g, 7));
    cr_assert(!terni_gate_authed(g, 8), "another pipe is not authenticated");
    cr_assert_eq(c.closes, 0);
    /* ordinary ops pass on the authenticated pipe, and are refused (with a close) elsewhere */
    tern_value *get = terni_op("get"), *reply = NULL;
    cr_assert_eq(terni_gate_check(g, 7, get, &reply), TERNI_GATE_PASS);
    cr_assert_eq(terni_gate_check(g, 8, get, &reply), TERNI_GATE_REPLY_CLOSE);
    cr_assert_eq(terni_result_error(reply, NULL), TERN_EAUTH);
    tern_value_unref(reply);
    /* a closed pipe forgets its state */
    terni_gate_pipe_gone(g, 7);
    cr_assert(!terni_gate_authed(g, 7));
    tern_value_unref(get);
    tern_value_unref(c.last_auth);
    terni_gate_free(g);
}

Test(auth, wrong_token_is_refused_both_ways)
{
    terni_token server = tok("0123456789abcdef-cluster"), other = tok("0123456789abcdef-clustex");
    terni_gate *g;
    cr_assert_eq(terni_gate_new(&server, &g), TERN_OK);
    conn c = { .g = g, .pipe = 1 };
    char err[512];
    /* the dialer notices first: the server's proof does not check out */
    cr_assert_eq(terni_auth_client(&other, "worker", rt, &c, err, sizeof(err)), TERN_EAUTH);
    cr_assert(strstr(err, "could not prove"), "%s", err);
    cr_assert(!terni_gate_authed(g, 1));
    /* the server refuses a made-up proof after a real challenge, and closes */
    terni_gate_pipe_gone(g, 1);
    tern_value *auth = terni_op("auth"), *reply = NULL;
    unsigned char n[32] = { 0 };
    terni_set_int(auth, "wire", TERNI_WIRE_VERSION);
    terni_set_text(auth, "role", "client");
    terni_set(auth, "cnonce", tern_bytes(n, sizeof(n)));
    cr_assert_eq(terni_gate_check(g, 1, auth, &reply), TERNI_GATE_REPLY);
    cr_assert_str_eq(terni_op_name(reply), "challenge");
    tern_value_unref(reply);
    tern_value *proof = terni_op("auth_proof");
    terni_set(proof, "proof", tern_bytes(n, sizeof(n)));
    cr_assert_eq(terni_gate_check(g, 1, proof, &reply), TERNI_GATE_REPLY_CLOSE);
    cr_assert_eq(terni_result_error(reply, NULL), TERN_EAUTH);
    cr_assert(!terni_gate_authed(g, 1));
    tern_value_unref(reply);
    tern_value_unref(auth);
    tern_value_unref(proof);
    terni_gate_free(g);
}

Test(auth, a_recorded_proof_does_not_replay)
{
    terni_token t = tok("0123456789abcdef-cluster");
    terni_gate *g;
    cr_assert_eq(terni_gate_new(&t, &g), TERN_OK);
    conn c = { .g = g, .pipe = 3 };
    char err[512];
    cr_assert_eq(terni_auth_client(&t, "client", rt, &c, err, sizeof(err)), TERN_OK, "%s", err);
    /* an eavesdropper replays the same auth op and proof on its own connection */
    tern_value *auth = terni_op("auth"), *reply = NULL;
    unsigned char n[32] = { 9 };
    terni_set_int(auth, "wire", TERNI_WIRE_VERSION);
    terni_set_text(auth, "role", "client");
    terni_set(auth, "cnonce", tern_bytes(n, sizeof(n)));
    cr_assert_eq(terni_gate_check(g, 4, auth, &reply), TERNI_GATE_REPLY);
    tern_value_unref(reply);
    cr_assert_eq(terni_gate_check(g, 4, c.last_auth, &reply), TERNI_GATE_REPLY_CLOSE);
    cr_assert_eq(terni_result_error(reply, NULL), TERN_EAUTH);
    cr_assert(!terni_gate_authed(g, 4));
    tern_value_unref(reply);
    tern_value_unref(auth);
    tern_value_unref(c.last_auth);
    terni_gate_free(g);
}

Test(auth, server_without_token_cannot_prove_itself)
{
    terni_token t = tok("0123456789abcdef-cluster");
    terni_gate *g;
    cr_assert_eq(terni_gate_new(NULL, &g), TERN_OK);
    conn c = { .g = g, .pipe = 1 };
    char err[512];
    cr_assert_eq(terni_auth_client(&t, "client", rt, &c, err, sizeof(err)), TERN_EAUTH);
    cr_assert(strstr(err, "no cluster token"), "%s", err);
    cr_assert(terni_gate_authed(g, 1), "a gate without a token lets everything through");
    terni_gate_free(g);
}

Test(auth, wrong_wire_version_is_eproto)
{
    terni_token t = tok("0123456789abcdef-cluster");
    terni_gate *g;
    cr_assert_eq(terni_gate_new(&t, &g), TERN_OK);
    tern_value *auth = terni_op("auth"), *reply = NULL;
    terni_set_int(auth, "wire", 99);
    cr_assert_eq(terni_gate_check(g, 1, auth, &reply), TERNI_GATE_REPLY_CLOSE);
    cr_assert_eq(terni_result_error(reply, NULL), TERN_EPROTO);
    tern_value_unref(reply);
    cr_assert_eq(terni_gate_check(g, 1, NULL, &reply), TERNI_GATE_REPLY_CLOSE,
                 "an undecodable message is refused");
    tern_value_unref(reply);
    tern_value_unref(auth);
    terni_gate_free(g);
}

Test(auth, token_files)
{
    char path[] = "/tmp/tern-token-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "0123456789abcdef\n\n", 18), 18);
    close(fd);
    terni_token t;
    char err[512];
    cr_assert_eq(terni_token_load(path, &t, err, sizeof(err)), TERN_OK, "%s", err);
    cr_assert_eq(t.len, 16, "trailing whitespace is stripped");
    FILE *f = fopen(path, "w");
    fputs("short\n", f);
    fclose(f);
    cr_assert_eq(terni_token_load(path, &t, err, sizeof(err)), TERN_EINVAL);
    unlink(path);
    cr_assert_eq(terni_token_load(path, &t, err, sizeof(err)), TERN_EIO);
    unsetenv("TERN_TOKEN_FILE");
    cr_assert_eq(terni_token_load(NULL, &t, err, sizeof(err)), TERN_OK);
    cr_assert_eq(t.len, 0, "no file: no token");
}

Test(auth, loopback_addresses)
{
    cr_assert(terni_url_is_loopback("tcp://127.0.0.1:7786"));
    cr_assert(terni_url_is_loopback("tcp://127.1.2.3:0"));
    cr_assert(terni_url_is_loopback("tcp://localhost:1"));
    cr_assert(terni_url_is_loopback("tcp://[::1]:7786"));
    cr_assert(terni_url_is_loopback("tls+tcp://localhost:7786"));
    cr_assert(terni_url_is_loopback("ipc:///tmp/x.ipc"));
    cr_assert(terni_url_is_loopback("abstract://tern"));
    cr_assert(!terni_url_is_loopback("tcp://0.0.0.0:7786"));
    cr_assert(!terni_url_is_loopback("tcp://*:7786"));
    cr_assert(!terni_url_is_loopback("tcp://10.0.0.5:7786"));
    cr_assert(!terni_url_is_loopback("tcp://[::]:7786"));
    cr_assert(!terni_url_is_loopback("tcp://example.org:7786"));
    cr_assert(!terni_url_is_loopback("ws://127.0.0.1:1"));
    terni_sec none = { 0 }, with_token = { .token = tok("0123456789abcdef") };
    char err[512];
    cr_assert_eq(terni_listen_policy("t", "tcp://0.0.0.0:1", &none, false, err, sizeof(err)),
                 TERN_EAUTH);
    cr_assert_eq(terni_listen_policy("t", "tcp://0.0.0.0:1", &with_token, false, err, sizeof(err)),
                 TERN_OK);
    cr_assert_eq(terni_listen_policy("t", "tcp://127.0.0.1:1", &none, false, err, sizeof(err)),
                 TERN_OK);
}

Test(auth, names_from_the_wire)
{
    cr_assert(terni_valid_worker_name("host-1234"));
    cr_assert(terni_valid_worker_name("w1.example.org:a@b+c_d"));
    cr_assert(!terni_valid_worker_name(""));
    cr_assert(!terni_valid_worker_name("a b"));
    cr_assert(!terni_valid_worker_name("../etc"));
    cr_assert(!terni_valid_worker_name("x\n"));
    cr_assert(terni_valid_address("tcp://10.0.0.1:7787"));
    cr_assert(terni_valid_address("ipc:///tmp/a.ipc"));
    cr_assert(!terni_valid_address("file:///etc/passwd"));
    cr_assert(!terni_valid_address("tcp://a b:1"));
    cr_assert(terni_valid_key("inc-0123456789abcdef"));
    cr_assert(!terni_valid_key(""));
    cr_assert(!terni_valid_key("a\tb"));
    char big[TERNI_MAX_KEY + 2];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert(!terni_valid_key(big));
}
