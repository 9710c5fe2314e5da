/* Cluster authentication: a shared token proven by HMAC challenge-response on every
 * connection (client and worker to scheduler, worker and client to a worker's data server),
 * plus the security settings every link carries (TLS files, the token). The token never
 * crosses the wire; see docs/security.md and docs/protocol.md §2. */
#ifndef TERNI_AUTH_H
#define TERNI_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <tern/value.h>

#define TERNI_TOKEN_MIN 16  /* bytes; shorter tokens are refused */
#define TERNI_TOKEN_MAX 256 /* bytes */
/* An unauthenticated connection may send messages up to this size (the auth ops are tiny);
 * larger ones are refused without being decoded. */
#define TERNI_AUTH_MAX_MSG 4096

typedef struct terni_token {
    unsigned char bytes[TERNI_TOKEN_MAX];
    size_t len; /* 0: no token */
} terni_token;

/* What a process needs to open or accept links securely. Strings are borrowed. */
typedef struct terni_sec {
    const char *tls_ca;      /* CA that signed the servers' (and, with tls_verify_clients, the
                                clients') certificates; NULL: $TERN_TLS_CA */
    const char *tls_cert;    /* certificate PEM (NULL: $TERN_TLS_CERT); may also hold the key */
    const char *tls_key;     /* private key PEM (NULL: $TERN_TLS_KEY, else in tls_cert) */
    bool tls_verify_clients; /* listeners: require a client certificate signed by tls_ca */
    terni_token token;       /* the cluster token; len 0: none */
} terni_sec;

/* Reads the token from path (NULL or "": $TERN_TOKEN_FILE; neither set: no token, TERN_OK).
 * Trailing whitespace is stripped. Errors: TERN_EIO (unreadable), TERN_EINVAL (shorter than
 * TERNI_TOKEN_MIN or longer than TERNI_TOKEN_MAX bytes); err says which file and why. */
int terni_token_load(const char *path, terni_token *tok, char *err, size_t errlen);

/* ---- the dialing side ------------------------------------------------------------- */

/* Sends one op (not stolen) and returns the peer's answer to it (one value, caller unrefs). */
typedef int (*terni_auth_rt)(void *arg, const tern_value *op, tern_value **reply, char *err,
                             size_t errlen);

/* Runs the challenge-response over rt as `role` ("client", "worker", "peer"): sends auth
 * with a fresh client nonce, checks the server's proof, answers with ours. Errors: TERN_EAUTH
 * (the server has no token, or another one, or refused ours; err says which), TERN_EPROTO
 * (the server speaks another wire version), or rt's error. */
int terni_auth_client(const terni_token *tok, const char *role, terni_auth_rt rt, void *arg,
                      char *err, size_t errlen);

/* ---- the listening side: a gate in front of a rep socket --------------------------- */

typedef struct terni_gate terni_gate;

typedef enum terni_gate_verdict {
    TERNI_GATE_PASS = 0,    /* authenticated (or no token required): handle the message */
    TERNI_GATE_REPLY,       /* send *reply (an auth answer) instead of handling it */
    TERNI_GATE_REPLY_CLOSE, /* send *reply (a refusal), then terni_gate_close_later(pipe) */
} terni_gate_verdict;

/* A gate requiring tok (NULL or empty: everything passes, and auth requests are answered
 * with a refusal saying this server has no token). */
int terni_gate_new(const terni_token *tok, terni_gate **out);
void terni_gate_free(terni_gate *g);

/* True when the pipe has authenticated (or the gate requires nothing). */
bool terni_gate_authed(terni_gate *g, uint32_t pipe);
/* Judges one op (NULL: the message could not be decoded, or was too large to decode
 * unauthenticated) arriving on pipe. For a verdict other than PASS, *reply gets the answer
 * (an op map or an error result; never NULL unless out of memory). Thread-safe. */
terni_gate_verdict terni_gate_check(terni_gate *g, uint32_t pipe, const tern_value *op,
                                    tern_value **reply);
/* Forgets a closed pipe's state (call from NNG_PIPE_EV_REM_POST). */
void terni_gate_pipe_gone(terni_gate *g, uint32_t pipe);
/* Closes the pipe after a short delay, so that the refusal sent on it arrives first. */
void terni_gate_close_later(terni_gate *g, uint32_t pipe);

/* True for addresses only this machine can reach: ipc://, abstract://, inproc://, and
 * tcp:// or tls+tcp:// on 127.0.0.0/8, ::1 or "localhost". */
bool terni_url_is_loopback(const char *url);
/* Names from the wire: a worker name is 1..128 of [A-Za-z0-9._:@+-]; a data-server address
 * is a tcp://, tls+tcp://, ipc://, abstract:// or inproc:// URL of at most 255 printable
 * characters; a key is 1..TERNI_MAX_KEY bytes without control characters. */
#define TERNI_MAX_KEY 1024
bool terni_valid_worker_name(const char *s);
bool terni_valid_address(const char *s);
bool terni_valid_key(const char *s);

/* Safe defaults for a daemon about to listen on url: fine on a loopback address, with a
 * cluster token, or with tls+tcp:// and verified client certificates. Otherwise TERN_EAUTH
 * with err saying what to do, unless insecure, which prints a loud warning (prog: the
 * daemon's name) and returns TERN_OK. */
int terni_listen_policy(const char *prog, const char *url, const terni_sec *sec, bool insecure,
                        char *err, size_t errlen);
/* True when the pipe's remote end is on this machine (ipc, or a loopback TCP address). */
bool terni_pipe_is_local(uint32_t pipe);

#endif
