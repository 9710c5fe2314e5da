/* tern — the plugin ABI: how task code is written, compiled and found.
 *
 * A plugin is a shared object built against this header and linked with libtern:
 *
 *     #include <tern/plugin.h>
 *     TERN_PLUGIN("kernels", "1.0.0");
 *
 *     TERN_TASK(scale)                 // callable as "kernels:scale"
 *     {
 *         const double *x; size_t n; double a; double *y;
 *         if (tern_arg_f64_array(ctx, 0, &x, &n) || tern_arg_double(ctx, 1, &a))
 *             return tern_fail(ctx, TERN_EINVAL, "scale(array, factor)");
 *         tern_value *r = tern_f64_array_new(n, &y);
 *         if (!r)
 *             return tern_fail(ctx, TERN_ENOMEM, "scale: out of memory");
 *         for (size_t i = 0; i < n; i++) y[i] = a * x[i];
 *         return r;
 *     }
 *
 *     cc -shared -fPIC -o libkernels.so kernels.c $(pkg-config --cflags --libs tern)
 *
 * Contract:
 *  - TERN_PLUGIN(name, version) appears once per plugin. It exports `tern_plugin`, a
 *    descriptor carrying TERN_ABI_VERSION, the name and the version; the loader refuses a
 *    shared object without it or with another ABI version.
 *  - TERN_TASK(sym) defines and exports the task function `tern_task_<sym>` and declares it
 *    in the plugin's task table (ELF section "tern_tasks"). The loader resolves "name:sym"
 *    by dlsym() of `tern_task_<sym>` and calls it only if the table declares it.
 *  - A task gets a context with its arguments (borrowed; valid during the call). It returns a
 *    new value (ownership passes to the runtime), or calls tern_fail() and returns NULL
 *    (tern_fail returns NULL so `return tern_fail(...)` reads well). Returning NULL without
 *    tern_fail is reported as a task failure too. If a task calls tern_fail and also returns
 *    a value, the failure wins and the value is released.
 *  - Tasks may run concurrently on several threads of one process: keep them reentrant.
 *    They must not keep borrowed argument pointers after returning; to keep a value, take a
 *    reference with tern_value_ref().
 */
#ifndef TERN_PLUGIN_H
#define TERN_PLUGIN_H

#include <stdarg.h>

#include <tern/error.h>
#include <tern/export.h>
#include <tern/value.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Plugin ABI version. Bumped whenever the descriptor layout, the task signature or the
 * meaning of a function a plugin calls changes incompatibly. */
#define TERN_ABI_VERSION 1
/* First field of every descriptor: lets the loader tell a tern plugin from a stray symbol. */
#define TERN_PLUGIN_MAGIC 0x6e726574u /* "tern" little-endian */

typedef struct tern_ctx tern_ctx;
typedef tern_value *(*tern_task_fn)(tern_ctx *ctx);

/* One entry of the task table. Layout is part of the ABI. */
typedef struct tern_task_decl {
    const char *symbol; /* task name as callers write it, without the tern_task_ prefix */
    tern_task_fn fn;
} tern_task_decl;

/* What TERN_PLUGIN exports. Layout is part of the ABI. */
typedef struct tern_plugin_desc {
    uint32_t magic;       /* TERN_PLUGIN_MAGIC */
    uint32_t abi_version; /* TERN_ABI_VERSION the plugin was compiled with */
    const char *name;     /* plugin name: [A-Za-z0-9_.-]+ */
    const char *version;  /* free-form version text */
    /* The task table: fills *begin and *end with the bounds of the "tern_tasks" section. */
    void (*tasks)(const tern_task_decl **begin, const tern_task_decl **end);
} tern_plugin_desc;

#define TERN_PLUGIN_EXPORT __attribute__((visibility("default")))

#define TERN_PLUGIN(name_, version_)                                                               \
    extern const tern_task_decl __start_tern_tasks[] __attribute__((weak, visibility("hidden")));  \
    extern const tern_task_decl __stop_tern_tasks[] __attribute__((weak, visibility("hidden")));   \
    static void tern_plugin_tasks_(const tern_task_decl **b, const tern_task_decl **e)             \
    {                                                                                              \
        *b = __start_tern_tasks;                                                                   \
        *e = __stop_tern_tasks;                                                                    \
    }                                                                                              \
    TERN_PLUGIN_EXPORT const tern_plugin_desc tern_plugin = { TERN_PLUGIN_MAGIC, TERN_ABI_VERSION, \
                                                              (name_), (version_),                 \
                                                              tern_plugin_tasks_ }

#define TERN_TASK(sym)                                                                             \
    TERN_PLUGIN_EXPORT tern_value *tern_task_##sym(tern_ctx *ctx);                                 \
    static const tern_task_decl tern_task_decl_##sym __attribute__((                               \
        used, section("tern_tasks"), aligned(sizeof(void *)))) = { #sym, tern_task_##sym };        \
    TERN_PLUGIN_EXPORT tern_value *tern_task_##sym(tern_ctx *ctx)

/* ---- inside a task ----------------------------------------------------------------- */

/* Number of arguments. */
TERN_API size_t tern_nargs(const tern_ctx *ctx);
/* Borrowed argument i, or NULL if i >= tern_nargs(ctx). */
TERN_API const tern_value *tern_arg(const tern_ctx *ctx, size_t i);

/* Typed argument accessors: TERN_OK, TERN_ERANGE (no argument i) or TERN_ETYPE. Borrowed
 * pointers stay valid for the call. tern_arg_double accepts an int argument too. */
TERN_API int tern_arg_int(const tern_ctx *ctx, size_t i, int64_t *out);
TERN_API int tern_arg_double(const tern_ctx *ctx, size_t i, double *out);
TERN_API int tern_arg_bool(const tern_ctx *ctx, size_t i, bool *out);
TERN_API int tern_arg_text(const tern_ctx *ctx, size_t i, const char **s, size_t *len);
TERN_API int tern_arg_f64_array(const tern_ctx *ctx, size_t i, const double **data, size_t *n);
TERN_API int tern_arg_i64_array(const tern_ctx *ctx, size_t i, const int64_t **data, size_t *n);

/* Takes argument i, so that the task may change it in place and, typically, return it as its
 * result (an add that writes its sum into one of its operands instead of into new memory).
 * It succeeds only for a value that nothing else can read again: the scheduler sent this
 * task as the last reader of that dependency (no client holds a future of it, no other
 * unfinished task needs it, and only this worker held it), this process holds no other
 * reference to it, and an array's memory is private and writable. Values written into the
 * submission itself, and results a client still holds a future of, are never taken.
 * Returns the value with its only reference, which the task now owns (return it, or
 * tern_value_unref it); tern_arg(ctx, i) returns NULL from then on, so read what you need
 * first or through the returned value. Returns NULL when the argument cannot be taken (the
 * usual case; nothing changes, allocate the result as usual) or i is out of range. If the
 * task then fails, or its worker is lost, the scheduler computes the dependency again from
 * its lineage should it be needed. Never blocks. */
TERN_API tern_value *tern_arg_take(tern_ctx *ctx, size_t i);

/* Marks the task failed with an error code (TERN_ETASK if code is TERN_OK) and a printf-style
 * message (truncated to 1 KiB). Returns NULL. Only the first call counts. */
TERN_API tern_value *tern_fail(tern_ctx *ctx, int code, const char *fmt, ...) TERN_PRINTF(3, 4);
TERN_API tern_value *tern_failv(tern_ctx *ctx, int code, const char *fmt, va_list ap);

/* The symbol being run ("scale") and the task's key (empty when run outside a cluster). */
TERN_API const char *tern_task_symbol(const tern_ctx *ctx);
TERN_API const char *tern_task_key(const tern_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
