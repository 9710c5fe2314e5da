/* The client SDK (tern.h).
 *
 * Design notes
 *  - One future object per key per client, shared by every handle the caller gets for that
 *    key (submitting the same pure call twice returns the same object with one more
 *    reference). The object is freed, and the scheduler told to release the key, when the
 *    last reference goes.
 *  - All ops go through the link's single ordered, batching stream (link.h); events arrive in
 *    the link's poll callback (an nng thread), which updates futures under the client lock
 *    and broadcasts one condition variable that every waiter (result, wait, as_completed)
 *    sleeps on.
 *  - Keys are made here: pure keys hash the plugin's content id, the symbol and the
 *    canonical CBOR of the arguments (SHA-256, first 128 bits, like Dask's tokens), so a
 *    resent submission is idempotent; pure=false keys are random.
 *  - Small results arrive inline with "finished" and are decoded once and cached; large
 *    ones are fetched from a worker that holds them each time tern_result is called.
 *  - Lifetime: futures keep the client struct alive (a reference count), so a future used
 *    after tern_close reports TERN_ECLOSED instead of touching freed memory.
 */
#include <tern/tern.h>

#include "sdk/src/support/keytab.h"
#include "sdk/src/transport/link.h"
#include "sdk/src/local.h"
#include "sdk/src/protocol/protocol.h"
#include "sdk/src/transport/peers.h"
#include "sdk/src/transport/outbox.h"
#include "sdk/src/value_internal.h" /* terni_utf8_valid */
#include "sdk/src/transport/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>
#include <uthash.h>

#define DEFAULT_TIMEOUT_MS 10000
#define CALL_TIMEOUT_MS    60000
#define FETCH_TIMEOUT_MS   60000

typedef struct plugin_rec {
    char *name, *version, *id;
    size_t ntasks;
    uint64_t seq;
    UT_hash_handle hh; /* by id */
} plugin_rec;

struct tern_future {
    tern_client *c;
    char *key;
    size_t refs; /* guarded by c->lock */
    tern_status status;
    uint64_t done_seq; /* completion order, for as_completed */
    int64_t nbytes;
    tern_value *inline_bytes; /* CBOR of a small result */
    tern_value *value;        /* decoded inline result (cached) */
    tern_value *who;          /* list of worker addresses */
    bool recomputing;         /* its holders died; the cluster is computing it again */
    uint64_t who_seq;         /* bumped whenever who/recomputing/status changes */
    int err_code;
    char *err_msg, *err_task, *err_key;
};

struct tern_client {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t refs; /* the client itself + one per live future */
    bool closed;
    terni_link *link;
    terni_peers *peers;
    terni_local *local;
    terni_keytab futures; /* key -> tern_future (keytab.h: the daemons' tables too) */
    plugin_rec *plugins;
    uint64_t plugin_seq, done_seq, group_seq;
    uint64_t key_nonce[2]; /* random, per client: impure keys are the nonce plus a count */
    atomic_uint_fast64_t key_seq;
    char address[512];
};

static __thread char errmsg[1024];

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
    va_end(ap);
    return code;
}

const char *tern_client_errmsg(tern_client *c)
{
    (void)c;
    return errmsg;
}

const char *tern_client_address(tern_client *c)
{
    return c ? c->address : "";
}

static void client_unref_locked(tern_client *c, bool *freed)
{
    *freed = --c->refs == 0;
}

static void client_free(tern_client *c)
{
    plugin_rec *p, *tmp;
    HASH_ITER(hh, c->plugins, p, tmp)
    {
        HASH_DEL(c->plugins, p);
        free(p->name);
        free(p->version);
        free(p->id);
        free(p);
    }
    terni_keytab_free(&c->futures);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

/* ---- events ----------------------------------------------------------------------- */

static void set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = strdup(s ? s : "");
}

static void on_finished(tern_client *c, const tern_value *ev)
{
    terni_finished m;
    tern_future *f;
    if (terni_dec_finished(ev, &m, NULL, 0) != TERN_OK)
        return;
    f = terni_keytab_get(&c->futures, m.key);
    if (!f)
        return;
    f->nbytes = m.nbytes;
    /* kept beyond this poll reply, which was decoded into a slab (terni_link_slab_events) */
    tern_value_unref(f->who);
    f->who = terni_value_own(m.who.list);
    f->recomputing = false;
    f->who_seq++;
    if (m.value) {
        tern_value_unref(f->inline_bytes);
        f->inline_bytes = tern_bytes(m.value, m.value_len);
    }
    if (f->status == TERN_PENDING) {
        f->status = TERN_FINISHED;
        f->done_seq = ++c->done_seq;
    }
}

static void on_erred(tern_client *c, const tern_value *ev)
{
    terni_erred m;
    tern_future *f;
    if (terni_dec_erred(ev, &m, NULL, 0) != TERN_OK)
        return;
    f = terni_keytab_get(&c->futures, m.key);
    if (!f || (f->status != TERN_PENDING && f->status != TERN_FINISHED))
        return;
    f->err_code = m.code > 0 && m.code < TERN_ERR_COUNT ? (int)m.code : TERN_ETASK;
    set_str(&f->err_msg, m.message);
    set_str(&f->err_task, m.task);
    set_str(&f->err_key, m.root);
    f->status = f->err_code == TERN_ECANCELED ? TERN_CANCELLED
                : f->err_code == TERN_ELOST   ? TERN_LOST
                                              : TERN_ERROR;
    f->recomputing = false;
    f->who_seq++;
    if (!f->done_seq)
        f->done_seq = ++c->done_seq;
}

/* Every worker holding a finished future's data died; a new "finished" (or "erred") follows.
 * The future stays done (as_completed does not see it twice); tern_result waits for it. */
static void on_recomputing(tern_client *c, const tern_value *ev)
{
    terni_recomputing m;
    tern_future *f;
    if (terni_dec_recomputing(ev, &m, NULL, 0) != TERN_OK)
        return;
    f = terni_keytab_get(&c->futures, m.key);
    if (!f || f->status != TERN_FINISHED)
        return;
    tern_value_unref(f->who);
    f->who = NULL;
    f->recomputing = true;
    f->who_seq++;
}

static void remember_plugin(tern_client *c, const terni_plugin_info *info);

static void on_events(void *arg, const tern_value *events)
{
    tern_client *c = arg;
    const tern_value *ev;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; tern_list_get(events, i, &ev) == TERN_OK; i++) {
        switch (terni_op_of(ev)) {
        case TERNI_OP_FINISHED:
            on_finished(c, ev);
            break;
        case TERNI_OP_ERRED:
            on_erred(c, ev);
            break;
        case TERNI_OP_RECOMPUTING:
            on_recomputing(c, ev);
            break;
        case TERNI_OP_PLUGIN: { /* someone uploaded a (new version of a) plugin */
            terni_plugin_msg m;
            if (terni_dec_plugin(ev, &m, NULL, 0) == TERN_OK)
                remember_plugin(c, &(terni_plugin_info){ m.id, m.name, m.version, m.tasks });
            break;
        }
        default: /* not for a client: ignored */
            break;
        }
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void fail_pending_locked(tern_client *c, int code, const char *why)
{
    TERNI_KEYTAB_EACH (&c->futures, e) {
        tern_future *f = e->value;
        if (f->status == TERN_PENDING) {
            f->status = TERN_CANCELLED;
            f->err_code = code;
            set_str(&f->err_msg, why);
            set_str(&f->err_task, "");
            set_str(&f->err_key, f->key);
            f->done_seq = ++c->done_seq;
        }
    }
    pthread_cond_broadcast(&c->cond);
}

static void on_down(void *arg, const char *why)
{
    tern_client *c = arg;
    pthread_mutex_lock(&c->lock);
    fail_pending_locked(c, TERN_ECLOSED, why);
    pthread_mutex_unlock(&c->lock);
}

/* ---- connect / close -------------------------------------------------------------- */

/* The plugin an event or a result tells of (some fields may be NULL: a malformed one). */
static void remember_plugin(tern_client *c, const terni_plugin_info *info)
{
    const char *id = info->id, *name = info->name, *version = info->version, *tasks = info->tasks;
    if (!id || !name)
        return;
    plugin_rec *p;
    HASH_FIND_STR(c->plugins, id, p);
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p || !(p->id = strdup(id)) || !(p->name = strdup(name)) ||
            !(p->version = strdup(version ? version : ""))) {
            if (p) {
                free(p->id);
                free(p->name);
            }
            free(p);
            return;
        }
        size_t n = 0;
        for (const char *s = tasks ? tasks : ""; *s; s++)
            n += (s == tasks || s[-1] == ' ') && *s != ' ';
        p->ntasks = n;
        HASH_ADD_KEYPTR(hh, c->plugins, p->id, strlen(p->id), p);
    }
    p->seq = ++c->plugin_seq;
}

/* A plugin info result (upload, plugins, welcome.plugins); a malformed one is ignored. */
static void remember_plugin_result(tern_client *c, const tern_value *v)
{
    terni_plugin_info info;
    if (terni_dec_plugin_info(v, &info, NULL, 0) == TERN_OK)
        remember_plugin(c, &info);
}

static int wait_for_workers(tern_client *c, int n, int timeout_ms)
{
    uint64_t deadline = terni_now_ns() + (uint64_t)timeout_ms * 1000000u;
    char err[512];
    for (;;) {
        tern_value *st = NULL;
        int rc = terni_link_call(c->link, terni_enc_empty(TERNI_OP_STATUS), timeout_ms, &st, err,
                                 sizeof(err));
        if (rc != TERN_OK)
            return fail(rc, "local cluster: %s", err);
        size_t have = tern_list_len(terni_get(st, "workers"));
        tern_value_unref(st);
        if (have >= (size_t)n)
            return TERN_OK;
        if ((rc = terni_local_check(c->local, err, sizeof(err))) != TERN_OK)
            return fail(rc, "local cluster: %s", err);
        if (terni_now_ns() > deadline)
            return fail(TERN_ETIMEDOUT, "local cluster: %zu of %d workers registered within %d ms",
                        have, n, timeout_ms);
        struct timespec nap = { 0, 1000 * 1000 };
        nanosleep(&nap, NULL);
    }
}

int tern_connect(const char *address, const tern_connect_opts *opts, tern_client **out)
{
    if (!out)
        return fail(TERN_EINVAL, "tern_connect: out is NULL");
    *out = NULL;
    char fallback[64];
    if (!address || !*address) {
        address = getenv("TERN_SCHEDULER");
        if (!address || !*address) {
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            snprintf(fallback, sizeof(fallback), "local://%ld", cores > 0 ? cores : 1);
            address = fallback;
        }
    }
    int timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    tern_client *c = calloc(1, sizeof(*c));
    if (!c)
        return fail(TERN_ENOMEM, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->refs = 1;
    if (terni_keytab_init(&c->futures) != 0) {
        client_free(c);
        return fail(TERN_ENOMEM, "out of memory");
    }
    if (getrandom(c->key_nonce, sizeof(c->key_nonce), 0) != (ssize_t)sizeof(c->key_nonce)) {
        client_free(c);
        return fail(TERN_EIO, "getrandom failed");
    }
    char err[1024] = "";
    int rc = TERN_OK, nlocal = 0;
    terni_sec sec = { .tls_ca = opts ? opts->tls_ca_file : NULL,
                      .tls_cert = opts ? opts->tls_cert_file : NULL,
                      .tls_key = opts ? opts->tls_key_file : NULL };
    if ((rc = terni_token_load(opts ? opts->token_file : NULL, &sec.token, err, sizeof(err))) !=
        TERN_OK) {
        client_free(c);
        return fail(rc, "%s", err);
    }
    if (!strncmp(address, "local://", 8)) {
        char *end;
        long n = strtol(address + 8, &end, 10);
        if (*end || n < 1 || n > 256) {
            client_free(c);
            return fail(TERN_EINVAL, "local://N needs N between 1 and 256, not \"%s\"",
                        address + 8);
        }
        nlocal = (int)n;
        rc = terni_local_start(nlocal, opts ? opts->local_threads : 1, opts ? opts->bin_dir : NULL,
                               opts ? opts->token_file : NULL, timeout, &c->local, c->address,
                               sizeof(c->address), err, sizeof(err));
    } else if (strncmp(address, "tcp://", 6) && strncmp(address, "ipc://", 6) &&
               strncmp(address, "tls+tcp://", 10) && strncmp(address, "abstract://", 11)) {
        client_free(c);
        return fail(TERN_EINVAL,
                    "address \"%s\" must start with tcp://, ipc://, tls+tcp:// or local://",
                    address);
    } else {
        snprintf(c->address, sizeof(c->address), "%s", address);
    }
    if (rc == TERN_OK)
        rc = terni_peers_new(&sec, &c->peers);
    tern_value *hello =
        terni_enc_hello(&(terni_hello){ .wire = TERNI_WIRE_VERSION, .role = "client" });
    if (rc == TERN_OK && !hello)
        rc = TERN_ENOMEM;
    tern_value *welcome = NULL;
    if (rc == TERN_OK) {
        rc = terni_link_open(c->address, &sec, hello, timeout, on_events, on_down, c, &c->link,
                             &welcome, err, sizeof(err));
        hello = NULL;
    }
    tern_value_unref(hello);
    if (rc == TERN_OK) {
        terni_link_slab_events(c->link); /* on_finished keeps parts only as terni_value_own */
        terni_welcome w;
        const tern_value *p;
        if (terni_dec_welcome(welcome, &w, NULL, 0) == TERN_OK) /* the link checked it */
            for (size_t i = 0; tern_list_get(w.plugins, i, &p) == TERN_OK; i++)
                remember_plugin_result(c, p);
    }
    tern_value_unref(welcome);
    if (rc == TERN_OK && nlocal)
        rc = wait_for_workers(c, nlocal, timeout);
    else if (rc != TERN_OK)
        fail(rc, "%s", err);
    if (rc != TERN_OK) {
        terni_link_close(c->link);
        terni_peers_free(c->peers);
        terni_local_stop(c->local);
        client_free(c);
        return rc;
    }
    *out = c;
    return TERN_OK;
}

void tern_close(tern_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->closed) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    c->closed = true;
    fail_pending_locked(c, TERN_ECLOSED, "the client was closed");
    pthread_mutex_unlock(&c->lock);
    /* Closing the link ends our session: the scheduler releases every key we held. */
    terni_link_close(c->link);
    terni_peers_free(c->peers);
    terni_local_stop(c->local);
    pthread_mutex_lock(&c->lock);
    c->link = NULL;
    c->peers = NULL;
    c->local = NULL;
    bool freed;
    client_unref_locked(c, &freed);
    pthread_mutex_unlock(&c->lock);
    if (freed)
        client_free(c);
}

/* ---- plugins ---------------------------------------------------------------------- */

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(errno == ENOENT ? TERN_ENOTFOUND : TERN_EIO, "cannot open %s: %s", path,
                    strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
        close(fd);
        return fail(TERN_EIO, "%s is not a non-empty regular file", path);
    }
    *len = (size_t)st.st_size;
    *buf = malloc(*len);
    size_t got = 0;
    while (*buf && got < *len) {
        ssize_t r = read(fd, *buf + got, *len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!*buf || got != *len) {
        free(*buf);
        return fail(TERN_EIO, "cannot read %s", path);
    }
    return TERN_OK;
}

int tern_upload_plugin(tern_client *c, const char *path, tern_plugin_info *info)
{
    if (!c || !path)
        return fail(TERN_EINVAL, "tern_upload_plugin: NULL argument");
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len);
    if (rc != TERN_OK)
        return rc;
    tern_value *op = terni_enc_upload(&(terni_upload){ .bytes = buf, .len = len });
    free(buf);
    if (!op)
        return fail(TERN_ENOMEM, "out of memory");
    pthread_mutex_lock(&c->lock);
    terni_link *link = c->closed ? NULL : c->link;
    pthread_mutex_unlock(&c->lock);
    if (!link) {
        tern_value_unref(op);
        return fail(TERN_ECLOSED, "the client is closed");
    }
    tern_value *r;
    char err[1024];
    rc = terni_link_call(link, op, CALL_TIMEOUT_MS, &r, err, sizeof(err));
    if (rc != TERN_OK)
        return fail(rc, "uploading %s: %s", path, err);
    terni_plugin_info got;
    bool ok = terni_dec_plugin_info(r, &got, NULL, 0) == TERN_OK;
    plugin_rec *p = NULL;
    pthread_mutex_lock(&c->lock);
    if (ok) {
        remember_plugin(c, &got);
        HASH_FIND_STR(c->plugins, got.id, p);
    }
    if (info && p)
        *info = (tern_plugin_info){ p->id, p->name, p->version, p->ntasks };
    pthread_mutex_unlock(&c->lock);
    tern_value_unref(r);
    return p ? TERN_OK : fail(TERN_EPROTO, "the scheduler's upload reply lacks the plugin id");
}

/* The id of the newest plugin called `name`, asking the scheduler if we do not know it. */
static int plugin_id_for(tern_client *c, const char *name, char *id, size_t idlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&c->lock);
        plugin_rec *p, *tmp, *best = NULL;
        HASH_ITER(hh, c->plugins, p, tmp)
        {
            if (!strcmp(p->name, name) && (!best || p->seq > best->seq))
                best = p;
        }
        if (best)
            snprintf(id, idlen, "%s", best->id);
        terni_link *link = c->closed ? NULL : c->link;
        pthread_mutex_unlock(&c->lock);
        if (best)
            return TERN_OK;
        if (!link)
            return fail(TERN_ECLOSED, "the client is closed");
        if (attempt == 1)
            break;
        tern_value *r;
        char err[512];
        int rc = terni_link_call(link, terni_enc_empty(TERNI_OP_PLUGINS), CALL_TIMEOUT_MS, &r, err,
                                 sizeof(err));
        if (rc != TERN_OK)
            return fail(rc, "asking the scheduler for plugins: %s", err);
        pthread_mutex_lock(&c->lock);
        const tern_value *item;
        for (size_t i = 0; tern_list_get(r, i, &item) == TERN_OK; i++)
            remember_plugin_result(c, item);
        pthread_mutex_unlock(&c->lock);
        tern_value_unref(r);
    }
    return fail(TERN_ENOTFOUND,
                "no plugin named \"%s\" has been uploaded to the cluster; "
                "call tern_upload_plugin first",
                name);
}

/* ---- futures ---------------------------------------------------------------------- */

/* Finds or makes the future for key (lock held); one more reference for the caller. */
static tern_future *future_get_locked(tern_client *c, const char *key, bool *created)
{
    tern_future *f;
    f = terni_keytab_get(&c->futures, key);
    *created = false;
    if (f) {
        f->refs++;
        return f;
    }
    f = calloc(1, sizeof(*f));
    if (!f || !(f->key = strdup(key))) {
        free(f);
        return NULL;
    }
    if (terni_keytab_put(&c->futures, f->key, f) != 0) {
        free(f->key);
        free(f);
        return NULL;
    }
    f->c = c;
    f->refs = 1;
    f->status = TERN_PENDING;
    c->refs++;
    *created = true;
    return f;
}

static void future_free(tern_future *f)
{
    free(f->key);
    tern_value_unref(f->inline_bytes);
    tern_value_unref(f->value);
    tern_value_unref(f->who);
    free(f->err_msg);
    free(f->err_task);
    free(f->err_key);
    free(f);
}

/* Drops references to n futures of client c at once, releasing keys in one op. */
static void release_many(tern_client *c, tern_future **fs, size_t n)
{
    tern_value *keys = tern_list_new(0);
    bool freed = false;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < n; i++) {
        tern_future *f = fs[i];
        if (!f || --f->refs)
            continue;
        terni_keytab_pop(&c->futures, f->key);
        if (!c->closed && keys)
            tern_list_append(keys, tern_text(f->key));
        future_free(f);
        client_unref_locked(c, &freed);
    }
    terni_link *link = c->closed ? NULL : c->link;
    if (link && tern_list_len(keys)) {
        terni_outbox o = { 0 };
        terni_keys_msg m = { .keys = { .n = tern_list_len(keys), .list = keys } };
        if (terni_enc_keys(&o, TERNI_OP_RELEASE, &m))
            terni_link_post_encoded_lazy(link, o.buf, o.len, terni_ops[TERNI_OP_RELEASE].name);
        else
            terni_outbox_free(&o);
    }
    pthread_mutex_unlock(&c->lock);
    tern_value_unref(keys);
    if (freed)
        client_free(c);
}

void tern_future_release(tern_future *f)
{
    if (f)
        release_many(f->c, &f, 1);
}

tern_future *tern_future_dup(tern_future *f)
{
    if (!f)
        return NULL;
    pthread_mutex_lock(&f->c->lock);
    f->refs++;
    pthread_mutex_unlock(&f->c->lock);
    return f;
}

tern_value *tern_future_ref(tern_future *f)
{
    return f ? tern_keyref(f->key) : NULL;
}

const char *tern_future_key(tern_future *f)
{
    return f ? f->key : "";
}

tern_status tern_future_status(tern_future *f)
{
    if (!f)
        return TERN_CANCELLED;
    pthread_mutex_lock(&f->c->lock);
    tern_status s = f->status;
    pthread_mutex_unlock(&f->c->lock);
    return s;
}

int tern_future_error(tern_future *f, int *code, const char **message, const char **task,
                      const char **key)
{
    if (!f)
        return TERN_EINVAL;
    pthread_mutex_lock(&f->c->lock);
    bool erred = f->status != TERN_PENDING && f->status != TERN_FINISHED && f->err_msg;
    if (erred) {
        if (code)
            *code = f->err_code;
        if (message)
            *message = f->err_msg;
        if (task)
            *task = f->err_task;
        if (key)
            *key = f->err_key;
    }
    pthread_mutex_unlock(&f->c->lock);
    return erred ? TERN_OK : TERN_EINVAL;
}

/* ---- submitting ------------------------------------------------------------------- */

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static void add_dep(void *arg, const char *key)
{
    tern_value *deps = arg;
    const tern_value *item;
    const char *k;
    for (size_t i = 0; tern_list_get(deps, i, &item) == TERN_OK; i++)
        if (tern_value_get_text(item, &k, NULL) == TERN_OK && !strcmp(k, key))
            return;
    tern_list_append(deps, tern_text(key));
}

/* Writes the wire spec of one task into o (straight CBOR, no value tree) and makes its key.
 * fn, plugin, group and gsize are the op's (shared by every spec in it), not repeated here.
 * Map keys in CBOR's deterministic order: key, args, deps, gindex, retries, workers,
 * priority, timeout_ms (docs/protocol.md, task spec). */
/* Whether args can go in a spec: TERN_OK with their encoded size in *need, or an error. */
static int check_args(const char *fn, const tern_value *args, size_t *need)
{
    *need = tern_encoded_size(args);
    if (*need > TERNI_MAX_ARGS)
        return fail(TERN_ETOOBIG,
                    "the arguments of %s encode to %zu bytes, over the %zu-byte limit of one "
                    "task; put large data on the cluster with tern_scatter and pass the future",
                    fn, *need, (size_t)TERNI_MAX_ARGS);
    if (!*need)
        return fail(TERN_ETOODEEP, "cannot encode the arguments of %s: %s", fn,
                    tern_strerror(TERN_ETOODEEP));
    return TERN_OK;
}

/* One spec of the submit op sub (protocol.h); args passed check_args, which gave need. */
static int write_spec(tern_client *c, terni_outbox *o, const terni_submit *sub, const char *symbol,
                      const char *plugin_id, tern_value *args, size_t need,
                      const tern_submit_opts *opts, const char *explicit_key, size_t gindex,
                      size_t gsize, char *key, size_t keylen)
{
    /* encoded once, at the size checked (the key of a pure task hashes these bytes) */
    size_t len = need;
    uint8_t *buf = malloc(need);
    int rc = !buf ? TERN_ENOMEM : terni_encode_sized(args, need, buf);
    if (rc != TERN_OK) {
        free(buf);
        return fail(rc, "cannot encode the arguments of %s: %s", symbol, tern_strerror(rc));
    }
    if (explicit_key) {
        snprintf(key, keylen, "%s", explicit_key);
    } else if (opts && opts->impure) {
        /* unique without a system call per task: the client's random 128-bit nonce, the
         * low half advanced by a per-client count */
        uint64_t seq = atomic_fetch_add(&c->key_seq, 1);
        snprintf(key, keylen, "%s-%016" PRIx64 "%016" PRIx64, symbol, c->key_nonce[0],
                 c->key_nonce[1] + seq);
    } else {
        mbedtls_sha256_context ctx;
        unsigned char digest[32];
        mbedtls_sha256_init(&ctx);
        mbedtls_sha256_starts_ret(&ctx, 0);
        mbedtls_sha256_update_ret(&ctx, (const unsigned char *)plugin_id, strlen(plugin_id) + 1);
        mbedtls_sha256_update_ret(&ctx, (const unsigned char *)symbol, strlen(symbol) + 1);
        mbedtls_sha256_update_ret(&ctx, buf, len);
        mbedtls_sha256_finish_ret(&ctx, digest);
        mbedtls_sha256_free(&ctx);
        char h[33];
        hex(digest, 16, h);
        snprintf(key, keylen, "%s-%s", symbol, h);
    }
    tern_value *deps = tern_list_new(0);
    if (!deps) {
        free(buf);
        return fail(TERN_ENOMEM, "out of memory");
    }
    terni_walk_keyrefs(args, add_dep, deps);
    size_t nworkers = 0;
    for (const char **w = opts ? opts->workers : NULL; w && *w; w++)
        nworkers++;
    terni_enc_submit_spec(
        o, sub,
        &(terni_task_spec){ .key = key,
                            .args = buf,
                            .args_len = len,
                            .deps = { .n = tern_list_len(deps), .list = deps },
                            .gindex = (int64_t)gindex,
                            .gsize = (int64_t)gsize,
                            .priority = opts ? opts->priority : 0,
                            .retries = opts ? opts->retries : 0,
                            .timeout_ms = opts ? opts->timeout_ms : 0,
                            .workers = terni_strs_of(opts ? opts->workers : NULL, nworkers) });
    free(buf);
    tern_value_unref(deps);
    return TERN_OK;
}

static int parse_task_name(const char *task, char *plugin, size_t plen, const char **symbol)
{
    const char *colon = task ? strchr(task, ':') : NULL;
    if (!colon || colon == task || !colon[1] || (size_t)(colon - task) >= plen)
        return fail(TERN_EINVAL, "task \"%s\" must be named \"plugin:symbol\", e.g. \"arrays:add\"",
                    task ? task : "(null)");
    memcpy(plugin, task, (size_t)(colon - task));
    plugin[colon - task] = '\0';
    *symbol = colon + 1;
    return TERN_OK;
}

/* The texts a submit op carries as they are (it is written straight into CBOR): valid UTF-8,
 * and keys that fit. */
static int check_names(const char *task, const char *symbol, const tern_submit_opts *opts, size_t n)
{
    if (!terni_utf8_valid(task, strlen(task)))
        return fail(TERN_EINVAL, "task name is not valid UTF-8");
    if (strlen(symbol) > TERNI_MAX_KEY - 40)
        return fail(TERN_EINVAL, "task name \"%.40s...\" is too long for a key", task);
    if (opts && opts->key &&
        (!terni_utf8_valid(opts->key, strlen(opts->key)) || !terni_valid_key(opts->key) ||
         (n > 1 && strlen(opts->key) > TERNI_MAX_KEY - 24)))
        return fail(TERN_EINVAL,
                    "key must be 1 to %d bytes of UTF-8 without control characters (less 24 "
                    "for a map, whose keys get \"-<index>\" appended)",
                    TERNI_MAX_KEY);
    for (const char **w = opts ? opts->workers : NULL; w && *w; w++)
        if (!terni_utf8_valid(*w, strlen(*w)))
            return fail(TERN_EINVAL, "worker name is not valid UTF-8");
    return TERN_OK;
}

static void unref_all(tern_value **vs, size_t n)
{
    for (size_t i = 0; vs && i < n; i++)
        tern_value_unref(vs[i]);
}

/* Tasks per submit op of a large map: the scheduler decodes and places one part while the
 * client writes the next, instead of each of them alone in turn (docs/performance.md). */
#define MAP_PART 16384

/* Writes elements [lo, lo + count) of a map of n as one submit op, makes their futures in
 * out[lo...] and posts the op. On error no future of the part is left and nothing was posted. */
static int post_part(tern_client *c, const char *task, const char *symbol, const char *id,
                     tern_value **arglists, const size_t *need, size_t lo, size_t count, size_t n,
                     int64_t group, const tern_submit_opts *opts, tern_future **out)
{
    int rc = TERN_OK;
    /* written straight into CBOR (protocol.h) and posted encoded */
    terni_submit sub = { .fn = task, .plugin = id, .group = group, .gsize = (int64_t)n };
    terni_outbox o = { 0 };
    size_t mark;
    terni_enc_submit_begin(&o, &sub, count, &mark);
    char **keys = calloc(count ? count : 1, sizeof(char *));
    if (!keys)
        rc = fail(TERN_ENOMEM, "out of memory");
    for (size_t k = 0; rc == TERN_OK && k < count; k++) {
        size_t i = lo + k;
        char key[TERNI_MAX_KEY + 1], ekey[TERNI_MAX_KEY + 1];
        const char *explicit_key = NULL;
        if (opts && opts->key) {
            if (n == 1)
                explicit_key = opts->key;
            else {
                snprintf(ekey, sizeof(ekey), "%s-%zu", opts->key, i);
                explicit_key = ekey;
            }
        }
        rc = write_spec(c, &o, &sub, symbol, id, arglists[i], need[i], opts, explicit_key, i, n,
                        key, sizeof(key));
        if (rc == TERN_OK && !(keys[k] = strdup(key)))
            rc = fail(TERN_ENOMEM, "out of memory");
    }
    if (!terni_enc_submit_end(&o, &sub, mark) && rc == TERN_OK)
        rc = fail(TERN_ENOMEM, "out of memory");
    size_t made = 0; /* futures set in out[lo...] */
    if (rc == TERN_OK) {
        pthread_mutex_lock(&c->lock);
        if (c->closed) {
            rc = fail(TERN_ECLOSED, "the client is closed");
        } else {
            for (; made < count; made++) {
                bool created;
                if (!(out[lo + made] = future_get_locked(c, keys[made], &created))) {
                    rc = fail(TERN_ENOMEM, "out of memory");
                    break;
                }
            }
            /* Post under the lock: a release of any of these keys queued later by another
             * thread must reach the scheduler after this submission. */
            if (rc == TERN_OK) {
                rc =
                    terni_link_post_encoded(c->link, o.buf, o.len, terni_ops[TERNI_OP_SUBMIT].name);
                o = (terni_outbox){ 0 }; /* the link took the buffer */
            }
        }
        pthread_mutex_unlock(&c->lock);
        if (rc != TERN_OK) { /* only out[lo, lo + made) were set */
            for (size_t k = 0; k < made; k++) {
                tern_future_release(out[lo + k]);
                out[lo + k] = NULL;
            }
            if (rc == TERN_ECLOSED)
                fail(rc, "the connection to the scheduler is closed");
        }
    }
    terni_outbox_free(&o);
    for (size_t k = 0; keys && k < count; k++)
        free(keys[k]);
    free(keys);
    return rc;
}

int tern_map(tern_client *c, const char *task, tern_value **arglists, size_t n,
             const tern_submit_opts *opts, tern_future **out)
{
    char plugin[128], id[80];
    const char *symbol = NULL;
    int rc = TERN_OK;
    if (!c || !out || (n && !arglists))
        rc = fail(TERN_EINVAL, "tern_map: NULL argument");
    for (size_t i = 0; rc == TERN_OK && i < n; i++)
        if (tern_value_type(arglists[i]) != TERN_T_LIST || !arglists[i])
            rc = fail(TERN_EINVAL, "arguments %zu of %s are not a list (use tern_list_of)", i,
                      task ? task : "?");
    if (rc == TERN_OK)
        rc = parse_task_name(task, plugin, sizeof(plugin), &symbol);
    if (rc == TERN_OK)
        rc = check_names(task, symbol, opts, n);
    if (rc == TERN_OK)
        rc = plugin_id_for(c, plugin, id, sizeof(id));
    /* Every argument list is checked before any part is posted: after that only running out
     * of memory or a closed connection can fail a part, and the parts already posted are then
     * released, so the map is submitted whole or not at all. */
    size_t *need = rc == TERN_OK ? malloc((n ? n : 1) * sizeof(size_t)) : NULL;
    if (rc == TERN_OK && !need)
        rc = fail(TERN_ENOMEM, "out of memory");
    for (size_t i = 0; rc == TERN_OK && i < n; i++)
        rc = check_args(task, arglists[i], &need[i]);
    size_t posted = 0;
    if (rc == TERN_OK) {
        pthread_mutex_lock(&c->lock);
        int64_t group = (int64_t)++c->group_seq;
        pthread_mutex_unlock(&c->lock);
        do {
            size_t count = n - posted < MAP_PART ? n - posted : MAP_PART;
            rc = post_part(c, task, symbol, id, arglists, need, posted, count, n, group, opts, out);
            if (rc == TERN_OK)
                posted += count;
        } while (rc == TERN_OK && posted < n);
    }
    for (size_t i = 0; rc != TERN_OK && i < posted; i++) { /* parts posted before a failure */
        tern_future_release(out[i]);                       /* (keeps the failure's message) */
        out[i] = NULL;
    }
    free(need);
    unref_all(arglists, n);
    return rc;
}

int tern_submit(tern_client *c, const char *task, tern_value *args, const tern_submit_opts *opts,
                tern_future **out)
{
    if (!args)
        args = tern_list_new(0);
    if (out)
        *out = NULL;
    return tern_map(c, task, &args, 1, opts, out);
}

/* ---- results ---------------------------------------------------------------------- */

/* Waits on cond until the deadline (timeout_ms < 0: without one). False on timeout. */
static bool wait_deadline(pthread_cond_t *cond, pthread_mutex_t *lock, int timeout_ms,
                          const struct timespec *deadline)
{
    if (timeout_ms < 0) {
        pthread_cond_wait(cond, lock);
        return true;
    }
    return pthread_cond_timedwait(cond, lock, deadline) == 0;
}

static int error_of_locked(tern_future *f)
{
    switch (f->status) {
    case TERN_ERROR:
        return fail(f->err_code ? f->err_code : TERN_ETASK, "%s", f->err_msg ? f->err_msg : "");
    case TERN_CANCELLED:
        return fail(f->err_code == TERN_ECLOSED ? TERN_ECLOSED : TERN_ECANCELED, "%s: %s", f->key,
                    f->err_msg ? f->err_msg : "cancelled");
    case TERN_LOST:
        return fail(TERN_ELOST, "%s", f->err_msg ? f->err_msg : "lost");
    default:
        return TERN_OK;
    }
}

/* Fetches key from one of the addresses in who. TERN_ELOST when none has it. */
static int fetch_from(terni_peers *peers, const tern_value *who, const char *key, tern_value **out,
                      char *err, size_t errlen)
{
    int rc = TERN_ELOST;
    snprintf(err, errlen, "no worker holds it");
    const tern_value *a;
    const char *addr;
    tern_value *keys = tern_list_of(tern_text(key));
    for (size_t i = 0; keys && rc != TERN_OK && tern_list_get(who, i, &a) == TERN_OK; i++) {
        tern_value *values = NULL;
        if (tern_value_get_text(a, &addr, NULL) != TERN_OK ||
            terni_peers_get(peers, addr, keys, FETCH_TIMEOUT_MS, &values, err, errlen) != TERN_OK)
            continue;
        const tern_value *v;
        if (tern_map_get(values, key, &v) == TERN_OK) {
            *out = tern_value_ref((tern_value *)v);
            rc = TERN_OK;
        } else {
            snprintf(err, errlen, "worker at %s no longer holds it", addr);
        }
        tern_value_unref(values);
    }
    tern_value_unref(keys);
    return rc;
}

/* How long tern_result waits for news (a recompute, or the scheduler's word that the data is
 * lost) after a fetch failed because the holder died, before it reports TERN_ELOST. */
#define LOST_GRACE_MS 3000

static terni_link *link_of(tern_client *c)
{
    pthread_mutex_lock(&c->lock);
    terni_link *l = c->closed ? NULL : c->link;
    pthread_mutex_unlock(&c->lock);
    return l;
}

/* After the holders a future named could not give key: asks the scheduler where it is now (a
 * worker may hold a copy it fetched as a dependency, which no event tells us about) and
 * fetches it from the holders not tried yet. TERN_ELOST if there are none, or they fail. */
static int fetch_elsewhere(tern_client *c, const tern_value *tried, const char *key,
                           tern_value **out, char *err, size_t errlen)
{
    terni_link *link = link_of(c);
    tern_value *op =
        terni_enc_who_has(&(terni_who_has){ .keys = terni_strs_of(&key, 1), .addresses = true });
    tern_value *reply = NULL, *fresh = tern_list_new(0);
    char why[256];
    int rc = TERN_ELOST;
    if (link && op && fresh) {
        tern_value *call = op;
        op = NULL; /* terni_link_call takes it */
        if (terni_link_call(link, call, LOST_GRACE_MS, &reply, why, sizeof(why)) == TERN_OK) {
            const tern_value *now = terni_get(reply, key), *a;
            const char *addr;
            for (size_t i = 0; tern_list_get(now, i, &a) == TERN_OK; i++)
                if (tern_value_get_text(a, &addr, NULL) == TERN_OK &&
                    !terni_list_has_text(tried, addr))
                    tern_list_append(fresh, tern_text(addr));
        }
    }
    if (tern_list_len(fresh))
        rc = fetch_from(c->peers, fresh, key, out, err, errlen);
    tern_value_unref(op);
    tern_value_unref(reply);
    tern_value_unref(fresh);
    return rc;
}

int tern_result(tern_future *f, int timeout_ms, tern_value **out)
{
    if (!f || !out)
        return fail(TERN_EINVAL, "tern_result: NULL argument");
    *out = NULL;
    tern_client *c = f->c;
    struct timespec deadline;
    terni_deadline(&deadline, timeout_ms);
    char err[512] = "no worker holds it";
    pthread_mutex_lock(&c->lock);
    for (;;) {
        /* Done, and (unless the value is here already) not being recomputed. */
        while (f->status == TERN_PENDING ||
               (f->status == TERN_FINISHED && f->recomputing && !f->value && !f->inline_bytes)) {
            if (timeout_ms == 0 || !wait_deadline(&c->cond, &c->lock, timeout_ms, &deadline)) {
                if (f->status != TERN_PENDING && !f->recomputing)
                    break;
                pthread_mutex_unlock(&c->lock);
                return fail(TERN_ETIMEDOUT, "%s did not %s within %d ms", f->key,
                            f->recomputing ? "finish recomputing" : "finish", timeout_ms);
            }
        }
        int rc = error_of_locked(f);
        if (rc != TERN_OK) {
            pthread_mutex_unlock(&c->lock);
            return rc;
        }
        if (!f->value && f->inline_bytes) {
            const void *b;
            size_t len;
            if (tern_value_get_bytes(f->inline_bytes, &b, &len) == TERN_OK &&
                (rc = tern_decode(b, len, NULL, &f->value, err, sizeof(err))) != TERN_OK) {
                pthread_mutex_unlock(&c->lock);
                return fail(TERN_EPROTO, "result of %s is malformed: %s", f->key, err);
            }
        }
        if (f->value) {
            *out = tern_value_ref(f->value);
            pthread_mutex_unlock(&c->lock);
            return TERN_OK;
        }
        if (c->closed) {
            pthread_mutex_unlock(&c->lock);
            return fail(TERN_ECLOSED, "cannot fetch the result of %s: the client is closed",
                        f->key);
        }
        tern_value *who = tern_value_ref(f->who);
        uint64_t seq = f->who_seq;
        char *key = strdup(f->key);
        pthread_mutex_unlock(&c->lock);
        rc = key ? fetch_from(c->peers, who, key, out, err, sizeof(err)) : TERN_ENOMEM;
        if (rc == TERN_ELOST)
            rc = fetch_elsewhere(c, who, key, out, err, sizeof(err));
        tern_value_unref(who);
        free(key);
        if (rc == TERN_OK)
            return TERN_OK;
        /* The holder may have just died: the scheduler then says "recomputing" or "erred"
         * soon. Wait a little for such news before calling the data lost. */
        struct timespec grace;
        int grace_ms = timeout_ms >= 0 && timeout_ms < LOST_GRACE_MS ? timeout_ms : LOST_GRACE_MS;
        terni_deadline(&grace, grace_ms);
        pthread_mutex_lock(&c->lock);
        while (f->who_seq == seq && !c->closed && terni_link_alive(c->link) &&
               pthread_cond_timedwait(&c->cond, &c->lock, &grace) == 0)
            ;
        if (f->who_seq == seq) {
            pthread_mutex_unlock(&c->lock);
            return fail(TERN_ELOST, "cannot fetch the result of %s: %s", f->key, err);
        }
    }
}

int tern_gather(tern_future **fs, size_t n, int timeout_ms, tern_value **out)
{
    if (!out || (n && !fs))
        return fail(TERN_EINVAL, "tern_gather: NULL argument");
    uint64_t start = terni_now_ns();
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    for (size_t i = 0; i < n; i++) {
        int left = timeout_ms;
        if (timeout_ms > 0) {
            int64_t spent = (int64_t)((terni_now_ns() - start) / 1000000u);
            left = spent >= timeout_ms ? 0 : timeout_ms - (int)spent;
        }
        int rc = tern_result(fs[i], left, &out[i]);
        if (rc != TERN_OK) {
            for (size_t k = 0; k < n; k++) {
                tern_value_unref(out[k]);
                out[k] = NULL;
            }
            return rc;
        }
    }
    return TERN_OK;
}

static bool is_done(const tern_future *f)
{
    return f->status != TERN_PENDING;
}

int tern_wait(tern_future **fs, size_t n, int timeout_ms, tern_wait_mode mode)
{
    if (n == 0)
        return TERN_OK;
    if (!fs || !fs[0])
        return fail(TERN_EINVAL, "tern_wait: NULL argument");
    tern_client *c = fs[0]->c;
    for (size_t i = 0; i < n; i++)
        if (!fs[i] || fs[i]->c != c)
            return fail(TERN_EINVAL, "tern_wait: futures must all come from one client");
    struct timespec deadline;
    terni_deadline(&deadline, timeout_ms);
    /* ALL: futures stay done once done, so skip the prefix already seen done (each wake-up
     * then costs only the newly finished ones, not a rescan of all n). */
    size_t first_pending = 0;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        bool any = false;
        if (mode == TERN_WAIT_ANY) {
            for (size_t i = 0; i < n && !any; i++)
                any = is_done(fs[i]);
        } else {
            while (first_pending < n && is_done(fs[first_pending]))
                first_pending++;
        }
        if (mode == TERN_WAIT_ANY ? any : first_pending == n) {
            pthread_mutex_unlock(&c->lock);
            return TERN_OK;
        }
        if (timeout_ms == 0 || !wait_deadline(&c->cond, &c->lock, timeout_ms, &deadline)) {
            size_t done = 0;
            for (size_t i = 0; i < n; i++)
                done += is_done(fs[i]);
            pthread_mutex_unlock(&c->lock);
            if ((mode == TERN_WAIT_ANY && done > 0) || done == n)
                return TERN_OK;
            return fail(TERN_ETIMEDOUT, "%zu of %zu futures done after %d ms", done, n, timeout_ms);
        }
    }
}

int tern_cancel(tern_future **fs, size_t n)
{
    if (n == 0)
        return TERN_OK;
    if (!fs || !fs[0])
        return fail(TERN_EINVAL, "tern_cancel: NULL argument");
    tern_client *c = fs[0]->c;
    const char **keys = malloc(n * sizeof(*keys));
    size_t nkeys = 0;
    for (size_t i = 0; keys && i < n; i++)
        if (fs[i])
            keys[nkeys++] = fs[i]->key;
    terni_outbox o = { 0 };
    bool built = keys && terni_enc_keys(&o, TERNI_OP_CANCEL,
                                        &(terni_keys_msg){ .keys = terni_strs_of(keys, nkeys) });
    free(keys);
    if (!built) {
        terni_outbox_free(&o);
        return fail(TERN_ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&c->lock);
    int rc = c->closed ? TERN_ECLOSED
                       : terni_link_post_encoded(c->link, o.buf, o.len,
                                                 terni_ops[TERNI_OP_CANCEL].name); /* takes it */
    pthread_mutex_unlock(&c->lock);
    if (rc == TERN_ECLOSED)
        terni_outbox_free(&o);
    return rc == TERN_OK ? TERN_OK : fail(rc, "cannot cancel: %s", tern_strerror(rc));
}

/* ---- as_completed ----------------------------------------------------------------- */

struct tern_as_completed {
    tern_future **fs;
    bool *yielded;
    size_t n, left;
};

int tern_as_completed_new(tern_future **fs, size_t n, tern_as_completed **out)
{
    if (!out || (n && (!fs || !fs[0])))
        return fail(TERN_EINVAL, "tern_as_completed_new: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!fs[i] || fs[i]->c != fs[0]->c)
            return fail(TERN_EINVAL, "as_completed: futures must all come from one client");
    tern_as_completed *it = calloc(1, sizeof(*it));
    if (!it || !(it->fs = calloc(n ? n : 1, sizeof(*it->fs))) ||
        !(it->yielded = calloc(n ? n : 1, sizeof(bool)))) {
        if (it)
            free(it->fs);
        free(it);
        return fail(TERN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        it->fs[i] = tern_future_dup(fs[i]);
    it->n = it->left = n;
    *out = it;
    return TERN_OK;
}

int tern_as_completed_next(tern_as_completed *it, int timeout_ms, tern_future **out)
{
    if (!it || !out)
        return fail(TERN_EINVAL, "tern_as_completed_next: NULL argument");
    *out = NULL;
    if (it->left == 0)
        return TERN_ENOTFOUND;
    tern_client *c = it->fs[0]->c;
    struct timespec deadline;
    terni_deadline(&deadline, timeout_ms);
    pthread_mutex_lock(&c->lock);
    for (;;) {
        size_t best = it->n;
        for (size_t i = 0; i < it->n; i++)
            if (!it->yielded[i] && is_done(it->fs[i]) &&
                (best == it->n || it->fs[i]->done_seq < it->fs[best]->done_seq))
                best = i;
        if (best < it->n) {
            it->yielded[best] = true;
            it->left--;
            it->fs[best]->refs++;
            *out = it->fs[best];
            pthread_mutex_unlock(&c->lock);
            return TERN_OK;
        }
        if (timeout_ms == 0 || !wait_deadline(&c->cond, &c->lock, timeout_ms, &deadline)) {
            bool any = false;
            for (size_t i = 0; i < it->n; i++)
                any |= !it->yielded[i] && is_done(it->fs[i]);
            if (!any) {
                pthread_mutex_unlock(&c->lock);
                return fail(TERN_ETIMEDOUT, "no future finished within %d ms", timeout_ms);
            }
        }
    }
}

void tern_as_completed_free(tern_as_completed *it)
{
    if (!it)
        return;
    if (it->n)
        release_many(it->fs[0]->c, it->fs, it->n);
    free(it->fs);
    free(it->yielded);
    free(it);
}

/* ---- scatter and queries ---------------------------------------------------------- */

int tern_scatter(tern_client *c, tern_value *value, tern_future **out)
{
    if (!c || !value || !out) {
        tern_value_unref(value);
        return fail(TERN_EINVAL, "tern_scatter: NULL argument");
    }
    *out = NULL;
    uint8_t *buf;
    size_t len;
    int rc = tern_encode(value, &buf, &len);
    if (rc != TERN_OK) {
        tern_value_unref(value);
        return fail(rc, "cannot encode the value: %s", tern_strerror(rc));
    }
    unsigned char digest[32];
    mbedtls_sha256_ret(buf, len, digest, 0);
    free(buf);
    char key[64] = "scatter-";
    hex(digest, 16, key + 8);
    terni_link *link = link_of(c);
    if (!link) {
        tern_value_unref(value);
        return fail(TERN_ECLOSED, "the client is closed");
    }
    pthread_mutex_lock(&c->lock);
    bool created;
    tern_future *f = future_get_locked(c, key, &created);
    pthread_mutex_unlock(&c->lock);
    if (!f) {
        tern_value_unref(value);
        return fail(TERN_ENOMEM, "out of memory");
    }
    tern_value *op = terni_enc_scatter(&(terni_scatter){ .key = key }), *r = NULL;
    char err[512] = "out of memory";
    rc = op ? terni_link_call(link, op, CALL_TIMEOUT_MS, &r, err, sizeof(err)) : TERN_ENOMEM;
    const char *addr = rc == TERN_OK ? terni_get_text(r, "address") : NULL;
    if (rc == TERN_OK && !addr)
        rc = TERN_EPROTO, snprintf(err, sizeof(err), "the scheduler named no worker");
    if (rc == TERN_OK) {
        tern_value *put = terni_enc_put(&(terni_put_msg){ .key = key, .value = value }),
                   *ack = NULL;
        if (put)
            rc = terni_peers_request(c->peers, addr, put, FETCH_TIMEOUT_MS, &ack, err, sizeof(err));
        else
            rc = TERN_ENOMEM;
        tern_value_unref(put);
        tern_value_unref(ack);
    }
    tern_value_unref(r);
    tern_value_unref(value);
    if (rc != TERN_OK) {
        tern_future_release(f);
        return fail(rc, "scatter: %s", err);
    }
    *out = f;
    return TERN_OK;
}

int tern_who_has(tern_client *c, tern_future **fs, size_t n, tern_value **out)
{
    if (!c || !out || (n && !fs))
        return fail(TERN_EINVAL, "tern_who_has: NULL argument");
    terni_link *link = link_of(c);
    if (!link)
        return fail(TERN_ECLOSED, "the client is closed");
    const char **keys = malloc((n ? n : 1) * sizeof(*keys));
    size_t nkeys = 0;
    for (size_t i = 0; keys && i < n; i++)
        if (tern_future_key(fs[i])) /* a NULL future is skipped */
            keys[nkeys++] = tern_future_key(fs[i]);
    tern_value *op =
        keys ? terni_enc_who_has(&(terni_who_has){ .keys = terni_strs_of(keys, nkeys) }) : NULL;
    free(keys);
    if (!op)
        return fail(TERN_ENOMEM, "out of memory");
    char err[512];
    int rc = terni_link_call(link, op, CALL_TIMEOUT_MS, out, err, sizeof(err));
    return rc == TERN_OK ? TERN_OK : fail(rc, "who_has: %s", err);
}

int tern_status_info(tern_client *c, tern_value **out)
{
    if (!c || !out)
        return fail(TERN_EINVAL, "tern_status_info: NULL argument");
    terni_link *link = link_of(c);
    if (!link)
        return fail(TERN_ECLOSED, "the client is closed");
    char err[512];
    int rc = terni_link_call(link, terni_enc_empty(TERNI_OP_STATUS), CALL_TIMEOUT_MS, out, err,
                             sizeof(err));
    return rc == TERN_OK ? TERN_OK : fail(rc, "status: %s", err);
}

int tern_who_has_keys(tern_client *c, const char *const *keys, size_t n, tern_value **out)
{
    if (!c || !out || (n && !keys))
        return fail(TERN_EINVAL, "tern_who_has_keys: NULL argument");
    *out = NULL;
    terni_link *link = link_of(c);
    if (!link)
        return fail(TERN_ECLOSED, "the client is closed");
    for (size_t i = 0; i < n; i++)
        if (!keys[i] || !terni_utf8_valid(keys[i], strlen(keys[i])))
            return fail(TERN_EINVAL, "tern_who_has_keys: key %zu is %s", i,
                        keys[i] ? "not UTF-8 text" : "NULL");
    tern_value *op = terni_enc_who_has(&(terni_who_has){ .keys = terni_strs_of(keys, n) });
    if (!op)
        return fail(TERN_ENOMEM, "out of memory");
    char err[512];
    int rc = terni_link_call(link, op, CALL_TIMEOUT_MS, out, err, sizeof(err));
    return rc == TERN_OK ? TERN_OK : fail(rc, "who_has: %s", err);
}
