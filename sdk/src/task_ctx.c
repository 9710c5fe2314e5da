/* Task context accessors (the plugin side of <tern/plugin.h>) and terni_task_call. */
#include "sdk/src/task_ctx.h"

#include "sdk/src/utf8.h"
#include "sdk/src/value_internal.h" /* terni_value_writable */

#include <stdio.h>
#include <string.h>

size_t tern_nargs(const tern_ctx *ctx)
{
    return ctx ? ctx->nargs : 0;
}

const tern_value *tern_arg(const tern_ctx *ctx, size_t i)
{
    return ctx && i < ctx->nargs ? ctx->args[i] : NULL;
}

tern_value *tern_arg_take(tern_ctx *ctx, size_t i)
{
    if (!ctx || i >= ctx->nargs || !ctx->takeable || !ctx->takeable[i] ||
        !terni_value_writable(ctx->args[i]))
        return NULL;
    tern_value *v = ctx->args[i];
    ctx->args[i] = NULL;
    return v;
}

#define ARG(ctx, i)                                                                                \
    const tern_value *a = tern_arg(ctx, i);                                                        \
    if (!a)                                                                                        \
    return ctx ? TERN_ERANGE : TERN_EINVAL

int tern_arg_int(const tern_ctx *ctx, size_t i, int64_t *out)
{
    ARG(ctx, i);
    return tern_value_get_int(a, out);
}

int tern_arg_double(const tern_ctx *ctx, size_t i, double *out)
{
    ARG(ctx, i);
    return tern_value_get_number(a, out);
}

int tern_arg_bool(const tern_ctx *ctx, size_t i, bool *out)
{
    ARG(ctx, i);
    return tern_value_get_bool(a, out);
}

int tern_arg_text(const tern_ctx *ctx, size_t i, const char **s, size_t *len)
{
    ARG(ctx, i);
    return tern_value_get_text(a, s, len);
}

int tern_arg_f64_array(const tern_ctx *ctx, size_t i, const double **data, size_t *n)
{
    ARG(ctx, i);
    return tern_value_get_f64_array(a, data, n);
}

int tern_arg_i64_array(const tern_ctx *ctx, size_t i, const int64_t **data, size_t *n)
{
    ARG(ctx, i);
    return tern_value_get_i64_array(a, data, n);
}

tern_value *tern_failv(tern_ctx *ctx, int code, const char *fmt, va_list ap)
{
    if (!ctx || ctx->err)
        return NULL;
    ctx->err = code == TERN_OK ? TERN_ETASK : code;
    if (fmt) /* what a plugin prints may be any bytes: kept as valid UTF-8 (utf8.h) */
        terni_utf8_vfmt(ctx->msg, sizeof(ctx->msg), fmt, ap);
    else
        snprintf(ctx->msg, sizeof(ctx->msg), "%s", tern_strerror(ctx->err));
    return NULL;
}

tern_value *tern_fail(tern_ctx *ctx, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tern_failv(ctx, code, fmt, ap);
    va_end(ap);
    return NULL;
}

const char *tern_task_symbol(const tern_ctx *ctx)
{
    return ctx && ctx->symbol ? ctx->symbol : "";
}

const char *tern_task_key(const tern_ctx *ctx)
{
    return ctx && ctx->key ? ctx->key : "";
}

int terni_task_call(tern_task_fn fn, const char *symbol, const char *key, tern_value **args,
                    const bool *takeable, size_t nargs, tern_value **result, char *msg,
                    size_t msglen)
{
    if (!fn || !result || (nargs && !args))
        return TERN_EINVAL;
    tern_ctx ctx = {
        .args = args, .takeable = takeable, .nargs = nargs, .symbol = symbol, .key = key
    };
    ctx.msg[0] = '\0';
    tern_value *r = fn(&ctx);
    if (!ctx.err && !r) {
        ctx.err = TERN_ETASK;
        terni_utf8_fmt(ctx.msg, sizeof(ctx.msg),
                       "task %s returned no value and did not call tern_fail",
                       symbol ? symbol : "?");
    }
    if (ctx.err) {
        tern_value_unref(r);
        *result = NULL;
        if (msg && msglen) /* cut at a character if msglen is the shorter */
            terni_utf8_copy(msg, msglen, ctx.msg, strlen(ctx.msg));
        return ctx.err;
    }
    *result = r;
    if (msg && msglen)
        msg[0] = '\0';
    return TERN_OK;
}
