/* The task context: how the runtime calls a plugin task (internal). */
#ifndef TERNI_TASK_CTX_H
#define TERNI_TASK_CTX_H

#include <tern/plugin.h>

#define TERNI_TASK_MSG_MAX 1024

struct tern_ctx {
    tern_value **args;    /* the caller's references; tern_arg_take moves one out (NULL here) */
    const bool *takeable; /* NULL, or per argument: the runtime lets the task take it */
    size_t nargs;
    const char *symbol;
    const char *key;
    int err;                      /* TERN_OK until tern_fail */
    char msg[TERNI_TASK_MSG_MAX]; /* tern_fail's message */
};

/* Runs fn with the given arguments: the caller's references, which stay the caller's, except
 * that where takeable[i] is true (takeable may be NULL: none) the task may take args[i]
 * (tern_arg_take); args[i] is then NULL on return and the reference the task's. On success
 * *result owns the task's value. On failure returns the task's error code, *result is NULL
 * and msg (msglen bytes) holds the message. Exported for the worker, the loader tests and
 * the demo; not in the public SDK. */
__attribute__((visibility("default"))) int
terni_task_call(tern_task_fn fn, const char *symbol, const char *key, tern_value **args,
                const bool *takeable, size_t nargs, tern_value **result, char *msg, size_t msglen);

#endif
