/* tern — the client SDK: connect to a cluster, upload plugins, submit tasks, use futures.
 *
 *     tern_client *c;
 *     tern_connect("local://2", NULL, &c);            // or tcp://host:7786, ipc://..., NULL
 *     tern_future *x, *y;
 *     tern_submit(c, "testplug:inc", tern_list_of(tern_int(1)), NULL, &x);
 *     tern_submit(c, "testplug:inc", tern_list_of(tern_future_ref(x)), NULL, &y);
 *     tern_value *v;
 *     tern_result(y, -1, &v);                          // 3
 *     tern_value_unref(v);
 *     tern_future_release(x); tern_future_release(y);
 *     tern_close(c);
 *
 * Threads: every function here may be called from several threads at once, on the same
 * client and the same futures — except tern_close, which must not race with other calls on
 * its client (futures stay usable afterwards and report TERN_ECLOSED). Blocking calls say so and
 * take a timeout in milliseconds (negative = wait forever, 0 = do not wait).
 *
 * Ownership: futures are reference counted handles. Every call that returns a future gives
 * the caller one reference, to be dropped with tern_future_release(). A key stays on the
 * cluster while any future (of any client) or any pending dependent task refers to it.
 * Arguments passed as tern_value lists are stolen (released by the call, also on failure).
 *
 * Errors: every function returns TERN_OK or a tern_err code; see tern_strerror(). A failed
 * call changes nothing on the cluster and never invalidates futures obtained earlier.
 */
#ifndef TERN_TERN_H
#define TERN_TERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <tern/codec.h>
#include <tern/error.h>
#include <tern/export.h>
#include <tern/value.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_client tern_client;
typedef struct tern_future tern_future;

/* ---- connecting -------------------------------------------------------------------- */

/* Connection options; zero-initialise and set what you need. NULL means all defaults. */
typedef struct tern_connect_opts {
    int timeout_ms;          /* connect and handshake timeout; 0 = 10000 */
    int local_threads;       /* local://N: threads per worker; 0 = 1 */
    const char *bin_dir;     /* local://N: where tern-scheduler and tern-worker are; NULL = find */
    const char *tls_ca_file; /* tls+tcp://: CA certificate(s) that signed the scheduler's and
                                workers' certificates (PEM); NULL = $TERN_TLS_CA */
    const char *token_file;  /* the cluster token, proven to the scheduler and every worker by
                                HMAC challenge-response (never sent); NULL = $TERN_TOKEN_FILE,
                                neither = no token. local://N passes it to its processes */
    const char *tls_cert_file; /* tls+tcp:// to servers that verify clients: our certificate
                                  (PEM, may hold the key too); NULL = $TERN_TLS_CERT */
    const char *tls_key_file;  /* its private key when not in tls_cert_file; NULL =
                                  $TERN_TLS_KEY */
} tern_connect_opts;

/* Connects to a scheduler. `address` is tcp://host:port, ipc:///path, or local://N, which
 * starts a tern-scheduler and N tern-worker processes (on ipc:// sockets) for the lifetime of the
 * client (found in opts->bin_dir, $TERN_BIN_DIR, next to libtern's ../bin, or on PATH) and
 * stops them in tern_close. NULL means $TERN_SCHEDULER, else local://<number of cores>.
 * Blocks until the handshake completes (local://N: until N workers have registered).
 * On success *out owns a client for tern_close. Errors: TERN_EINVAL (bad address),
 * TERN_ECONNREFUSED, TERN_ETIMEDOUT, TERN_EPROTO (wire version mismatch; the message
 * says which), TERN_EAUTH (the scheduler wants a token we do not have, or has another one,
 * or cannot prove it has ours), TERN_EIO (the token file is unreadable), TERN_ENOTFOUND
 * (local:// binaries missing), TERN_ENOMEM. */
TERN_API int tern_connect(const char *address, const tern_connect_opts *opts, tern_client **out);

/* Releases every future's cluster reference, disconnects, and for local:// stops the
 * processes. Futures the caller still holds stay valid until tern_future_release: pending
 * ones become TERN_CANCELLED (tern_result gives TERN_ECLOSED); finished ones keep a result
 * that already arrived inline, while fetching a large one gives TERN_ECLOSED. Blocks briefly
 * (a few seconds at most: children get 2 s to exit before SIGKILL). NULL is ignored. */
TERN_API void tern_close(tern_client *c);

/* The last error message of this thread for calls on `c` (a static empty string if none).
 * Valid until the next call on the same thread. */
TERN_API const char *tern_client_errmsg(tern_client *c);

/* The scheduler address the client is connected to (for local://N, the real tcp:// one). */
TERN_API const char *tern_client_address(tern_client *c);

/* ---- plugins ----------------------------------------------------------------------- */

/* What tern_upload_plugin learned about the plugin. Strings are owned by the client and live
 * until tern_close. */
typedef struct tern_plugin_info {
    const char *id;      /* SHA-256 of the file, hex */
    const char *name;    /* TERN_PLUGIN name */
    const char *version; /* TERN_PLUGIN version */
    size_t ntasks;
} tern_plugin_info;

/* Uploads the plugin file at `path` to the scheduler, which checks it and sends it to every
 * current worker and every worker that joins later. Content-addressed and idempotent:
 * uploading the same bytes again is a no-op. A new version under an existing name makes
 * later submissions use it. Blocks until the scheduler has checked the plugin. info may be
 * NULL. Errors: TERN_ENOTFOUND/TERN_EIO (file), TERN_ENOTPLUGIN, TERN_EABI, TERN_EDLOPEN
 * (the plugin cannot be loaded; message says why), TERN_ECLOSED. */
TERN_API int tern_upload_plugin(tern_client *c, const char *path, tern_plugin_info *info);

/* ---- submitting -------------------------------------------------------------------- */

/* Submission options; zero-initialised means defaults. Use TERN_SUBMIT_OPTS for pure=true. */
typedef struct tern_submit_opts {
    bool impure;          /* true = pure=false: a fresh random key, never deduplicated */
    const char *key;      /* explicit key (tern_map: used as a prefix "<key>-<i>"): 1 to 1024
                           * bytes of UTF-8 without control characters (1000 for a map) */
    int priority;         /* higher runs first among ready tasks; default 0 */
    const char **workers; /* NULL-terminated worker names the task may run on; NULL = any */
    int retries;          /* re-run a failing task up to this many times; default 0 */
    int timeout_ms;       /* > 0: a run longer than this is stopped by restarting the worker's
                           * executor, and the task errs with TERN_ETIMEDOUT; 0 = no limit */
} tern_submit_opts;

/* Submits one call of "plugin:symbol" with `args`, a list value (stolen, also on failure;
 * NULL means no arguments). A future anywhere in args — as tern_future_ref(f) at top level
 * or nested in lists and maps — is a dependency: the task runs once the futures' results
 * exist, on a worker that receives their values from the workers holding them.
 * Pure tasks (the default) get the key "<symbol>-<digest of plugin id, symbol, arguments>",
 * so the same call twice is one task. Does not block on the cluster (the submission is
 * queued and sent in a batch). Errors: TERN_EINVAL (args not a list, bad name, a task name,
 * key or worker name that is not valid UTF-8, a bad key),
 * TERN_ENOTFOUND (no plugin of that name has been uploaded), TERN_ECLOSED. */
TERN_API int tern_submit(tern_client *c, const char *task, tern_value *args,
                         const tern_submit_opts *opts, tern_future **out);

/* Submits n calls of the same task; arglists[i] is a list value (stolen, all of them, also on
 * failure). out[0..n) receives the futures. Sibling tasks are placed in contiguous blocks
 * per worker (blocks of at most 1,024 dealt round the workers). A large map goes to the
 * scheduler in parts of 16,384 tasks, each posted as soon as it is written, so the cluster
 * starts on the first part while the rest is written; every argument list is checked first.
 * Errors as tern_submit, plus TERN_ETOOBIG and TERN_ETOODEEP for arguments that cannot be
 * encoded; on error no future is returned and any part already posted is released. */
TERN_API int tern_map(tern_client *c, const char *task, tern_value **arglists, size_t n,
                      const tern_submit_opts *opts, tern_future **out);

/* Stores `value` (stolen) on a worker and returns a future for it (pure: keyed by content).
 * Blocks until the worker holds it. */
TERN_API int tern_scatter(tern_client *c, tern_value *value, tern_future **out);

/* A value that stands for the future inside arguments (a key reference). Does not take over
 * the future; returns NULL if out of memory. */
TERN_API tern_value *tern_future_ref(tern_future *f);

/* ---- futures ----------------------------------------------------------------------- */

typedef enum tern_status {
    TERN_PENDING = 0,   /* submitted, not finished */
    TERN_FINISHED = 1,  /* the result exists on the cluster */
    TERN_ERROR = 2,     /* the task (or one it depends on) failed */
    TERN_CANCELLED = 3, /* cancelled, or the client was closed */
    TERN_LOST = 4,      /* the data is gone and cannot be recomputed */
} tern_status;

TERN_API tern_status tern_future_status(tern_future *f);
/* The key, owned by the future. */
TERN_API const char *tern_future_key(tern_future *f);

/* The failure of an erred future: code, message, and the task ("plugin:symbol") and key
 * where it started (a dependent's error names its root cause). Strings are owned by the
 * future. Returns TERN_OK with *code set, or TERN_EINVAL if the future has not erred. */
TERN_API int tern_future_error(tern_future *f, int *code, const char **message, const char **task,
                               const char **key);

/* Waits up to timeout_ms for the result and gives the caller a reference to it in *out.
 * Small results arrive with the completion notice; large ones are fetched from a worker
 * holding them (if the holders named at completion have died, from any other copy the
 * scheduler knows of). Errors: TERN_ETIMEDOUT, TERN_ETASK or the task's own code (see
 * tern_future_error), TERN_ECANCELED, TERN_ELOST, TERN_ECLOSED. */
TERN_API int tern_result(tern_future *f, int timeout_ms, tern_value **out);

/* tern_result for n futures into out[0..n) (all or nothing: on error every out[i] is NULL). */
TERN_API int tern_gather(tern_future **fs, size_t n, int timeout_ms, tern_value **out);

typedef enum tern_wait_mode { TERN_WAIT_ALL = 0, TERN_WAIT_ANY = 1 } tern_wait_mode;

/* Waits until all (or any) of the futures are done (finished, erred, cancelled or lost).
 * TERN_OK, or TERN_ETIMEDOUT. */
TERN_API int tern_wait(tern_future **fs, size_t n, int timeout_ms, tern_wait_mode mode);

/* This client no longer wants the futures' results, nor those of its unfinished futures that
 * depend on them: each of them that is not done becomes TERN_CANCELLED (tern_result gives
 * TERN_ECANCELED, and tern_future_error names the cancelled future as the root). A task stops
 * only when no one wants or needs it any more: the same pure task submitted by another
 * client, or needed by another client's task, still runs for them. Done futures are
 * unaffected. Does not block (the request is posted); does not release the futures.
 * TERN_EINVAL for a NULL array or first future, TERN_ECLOSED after tern_close. */
TERN_API int tern_cancel(tern_future **fs, size_t n);

/* A new reference to f. */
TERN_API tern_future *tern_future_dup(tern_future *f);
/* Drops a reference; with the last one of the last client, the cluster forgets the key and
 * the worker frees the data. NULL is ignored. */
TERN_API void tern_future_release(tern_future *f);

/* ---- as_completed ------------------------------------------------------------------ */

typedef struct tern_as_completed tern_as_completed;

/* An iterator yielding the futures in the order they finish (any outcome). Takes its own
 * references to the futures. */
TERN_API int tern_as_completed_new(tern_future **fs, size_t n, tern_as_completed **out);
/* The next done future (a new reference for the caller) in *out. TERN_ENOTFOUND when every
 * future has been yielded; TERN_ETIMEDOUT. */
TERN_API int tern_as_completed_next(tern_as_completed *it, int timeout_ms, tern_future **out);
TERN_API void tern_as_completed_free(tern_as_completed *it);

/* ---- progress ---------------------------------------------------------------------- */

/* Shows the progress of n futures on `stream` and returns once every one of them is done
 * (finished, erred, cancelled or lost). On a terminal it redraws one line about ten times a
 * second: a bar, done/total, the completion rate, the estimated time left and the number
 * that failed; on anything else (a file, a pipe) it writes a plain line at most once a second
 * when the count changes, and a last line when all are done. stream NULL means stderr.
 *
 * Blocks until all futures are done — there is no timeout; use tern_wait first if you need
 * one. Several threads may call it at once. It neither releases nor keeps references: fs and
 * the futures stay the caller's (they must stay valid during the call); `stream` is written,
 * never closed. The outcome of each future is not an error of this call: check the futures
 * (tern_future_status, tern_result) afterwards.
 *
 * Returns TERN_OK once all are done; TERN_EINVAL (c NULL, fs NULL with n > 0, a NULL
 * future), TERN_ENOMEM. With n == 0 it prints nothing and returns TERN_OK. */
TERN_API int tern_progress(tern_client *c, tern_future **fs, size_t n, FILE *stream);

/* ---- cluster information ----------------------------------------------------------- */

/* Which workers hold each key: *out is a map {key: [worker name, ...]} (caller unrefs). */
TERN_API int tern_who_has(tern_client *c, tern_future **fs, size_t n, tern_value **out);

/* tern_who_has for keys given as text, such as keys another client holds (a key is known
 * to the cluster while some client or pending task wants it): *out is a map
 * {key: [worker name, ...]} (caller unrefs); a key the cluster does not have maps to an empty
 * list. Blocks for one round trip to the scheduler (at most 60 s). keys and the strings stay
 * the caller's. Errors: TERN_EINVAL (NULL argument, a key that is NULL or not UTF-8),
 * TERN_ECLOSED, TERN_ETIMEDOUT, TERN_ENOMEM. */
TERN_API int tern_who_has_keys(tern_client *c, const char *const *keys, size_t n, tern_value **out);

/* The scheduler's status as a map: {"workers": [{"name", "address", "nthreads", "keys",
 * "bytes", "processing"}...], "tasks": {state: count}, "keys_in_memory": n, ...}. */
TERN_API int tern_status_info(tern_client *c, tern_value **out);

#ifdef __cplusplus
}
#endif
#endif
