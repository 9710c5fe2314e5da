/* The plugin registry: content-addressed plugins (SHA-256 of the bytes), checked on upload
 * (inspect.c), offered to every worker (also those that join later) and announced to
 * clients, so that their next submissions by name use the newest upload of a name. */
#include "runtime/scheduler/sched_internal.h"

#include "runtime/util/log.h"
#include "sdk/src/protocol/protocol.h"
#include "sdk/src/transport/wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha256.h>

plugin *sched_plugin(sched *S, const char *id)
{
    plugin *p;
    HASH_FIND_STR(S->plugins, id, p);
    return p;
}

/* The newest upload of a plugin name. */
static plugin *plugin_by_name(sched *S, const char *name)
{
    plugin *p, *tmp, *best = NULL;
    HASH_ITER(hh, S->plugins, p, tmp)
    {
        if (!strcmp(p->name, name) && (!best || p->seq > best->seq))
            best = p;
    }
    return best;
}

static tern_value *plugin_info(const plugin *p)
{
    return terni_enc_plugin_info(&(terni_plugin_info){
        .id = p->id, .name = p->name, .version = p->version, .tasks = p->tasks });
}

/* The plugin event: to a worker the file, to a client what it is (so its next submissions by
 * name use the newest version). */
static void send_plugin(session *s, const plugin *p)
{
    terni_plugin_msg ev = { .id = p->id };
    if (s->role == ROLE_WORKER) {
        if (tern_value_get_bytes(p->bytes, &ev.bytes, &ev.len) != TERN_OK)
            return;
    } else {
        ev.name = p->name;
        ev.version = p->version;
        ev.tasks = p->tasks;
    }
    if (!terni_enc_plugin(&s->ob, &ev))
        terni_log(TERNI_LOG_ERROR, "out of memory queueing an event");
}

void sched_send_plugins(sched *S, session *s)
{
    (void)S;
    plugin *p, *tmp;
    HASH_ITER(hh, S->plugins, p, tmp)
    send_plugin(s, p);
}

/* Checks and registers plugin bytes; *out gets the plugin (also when already known). */
static int add_plugin(sched *S, const void *data, size_t len, plugin **out, char *msg,
                      size_t msglen)
{
    unsigned char digest[32];
    char id[65];
    mbedtls_sha256_ret(data, len, digest, 0);
    for (int i = 0; i < 32; i++)
        snprintf(id + 2 * i, 3, "%02x", digest[i]);
    plugin *p = sched_plugin(S, id);
    if (p) {
        *out = p;
        return TERN_OK;
    }
    char *name = NULL, *version = NULL, *tasks = NULL;
    int rc = terni_inspect_plugin(S->opts->inspector, S->opts->workdir, data, len, id, &name,
                                  &version, &tasks, msg, msglen);
    if (rc != TERN_OK)
        return rc;
    p = calloc(1, sizeof(*p));
    if (!p || !(p->bytes = tern_bytes(data, len))) {
        free(p);
        free(name), free(version), free(tasks);
        snprintf(msg, msglen, "out of memory");
        return TERN_ENOMEM;
    }
    memcpy(p->id, id, sizeof(id));
    p->name = name;
    p->version = version;
    p->tasks = tasks;
    p->seq = ++S->plugin_seq;
    HASH_ADD_STR(S->plugins, id, p);
    sched_log("plugin %s %s (%.12s) with tasks: %s", name, version, id, tasks);
    session *s, *stmp;
    HASH_ITER(hh, S->sessions, s, stmp)
    {
        if (s->role != ROLE_NONE)
            send_plugin(s, p);
    }
    *out = p;
    return TERN_OK;
}

/* --allow-upload: an error result when this session may not upload, else NULL. */
static tern_value *upload_refusal(sched *S, const session *s)
{
    if (S->opts->allow_upload == TERNI_UPLOAD_NO)
        return terni_error_result(TERN_EAUTH, "plugin upload is disabled on this scheduler "
                                              "(--allow-upload no); ask its operator to "
                                              "--preload the plugin");
    if (S->opts->allow_upload == TERNI_UPLOAD_LOCAL && !terni_pipe_is_local(s->pipe))
        return terni_error_result(TERN_EAUTH, "this scheduler accepts plugin uploads only from "
                                              "clients on its own machine (--allow-upload local)");
    return NULL;
}

tern_value *sched_op_upload(sched *S, session *s, const terni_upload *m)
{
    tern_value *no = upload_refusal(S, s);
    if (no)
        return no;
    if (!m)
        return terni_error_result(TERN_EINVAL, "upload needs the plugin file as bytes");
    char msg[1024];
    plugin *p;
    int rc = add_plugin(S, m->bytes, m->len, &p, msg, sizeof(msg));
    if (rc != TERN_OK)
        return terni_error_result(rc, "%s", msg);
    return plugin_info(p);
}

tern_value *sched_op_plugins(sched *S)
{
    tern_value *l = tern_list_new(0);
    plugin *p, *tmp;
    HASH_ITER(hh, S->plugins, p, tmp)
    {
        if (plugin_by_name(S, p->name) == p)
            tern_list_append(l, plugin_info(p));
    }
    return l;
}

int sched_preload(sched *S, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        terni_log(TERNI_LOG_ERROR, "cannot open plugin %s: %s", path, strerror(errno));
        return TERN_ENOTFOUND;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = n > 0 ? malloc((size_t)n) : NULL;
    int rc = TERN_EIO;
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        char msg[1024];
        plugin *p;
        rc = add_plugin(S, buf, (size_t)n, &p, msg, sizeof(msg));
        if (rc != TERN_OK)
            terni_log(TERNI_LOG_ERROR, "plugin %s refused: %s", path, msg);
    }
    free(buf);
    fclose(f);
    return rc;
}

void sched_plugins_free(sched *S)
{
    plugin *p, *ptmp;
    HASH_ITER(hh, S->plugins, p, ptmp)
    {
        HASH_DEL(S->plugins, p);
        free(p->name);
        free(p->version);
        free(p->tasks);
        tern_value_unref(p->bytes);
        free(p);
    }
}
