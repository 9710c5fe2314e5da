/* Helpers shared by the unit tests: scratch directories and calling plugin tasks. */
#ifndef TERN_TESTUTIL_H
#define TERN_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/worker/loader.h"
#include "sdk/src/task_ctx.h"

static inline int testutil_rm_entry(const char *path, const struct stat *st, int flag,
                                    struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* A fresh directory under $TMPDIR (or /tmp); caller frees and removes it with rm_tree. */
static inline char *make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = malloc(4096);
    snprintf(path, 4096, "%s/tern-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static inline void rm_tree(char *path)
{
    if (path)
        nftw(path, testutil_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}

/* Path of a built plugin: TERN_TEST_PLUGIN_DIR/<name>.so (static buffer per call site). */
#define PLUGIN_PATH(name) (TERN_TEST_PLUGIN_DIR "/" name ".so")

/* Calls plugin:symbol through the loader with the items of `args` (a list, stolen), the way
 * the worker does: the items are held only by the array passed to the task, and where
 * takeable[i] is true (takeable may be NULL) the task may take item i (tern_arg_take).
 * Returns the task's code; *out gets the result (or NULL) and msg the failure message. */
static inline int call_task_takeable(terni_loader *l, const char *qualified, tern_value *args,
                                     const bool *takeable, tern_value **out, char *msg,
                                     size_t msglen)
{
    tern_task_fn fn;
    const terni_plugin *p;
    *out = NULL;
    int rc = terni_loader_resolve(l, qualified, &p, &fn, msg, msglen);
    size_t n = tern_list_len(args) < 16 ? tern_list_len(args) : 16;
    tern_value *items[16];
    for (size_t i = 0; i < n; i++) {
        const tern_value *item;
        tern_list_get(args, i, &item);
        items[i] = tern_value_ref((tern_value *)item);
    }
    tern_value_unref(args);
    if (rc == TERN_OK)
        rc = terni_task_call(fn, strchr(qualified, ':') + 1, "", items, takeable, n, out, msg,
                             msglen);
    for (size_t i = 0; i < n; i++)
        tern_value_unref(items[i]);
    return rc;
}

/* The same, no argument takeable. */
static inline int call_task(terni_loader *l, const char *qualified, tern_value *args,
                            tern_value **out, char *msg, size_t msglen)
{
    return call_task_takeable(l, qualified, args, NULL, out, msg, msglen);
}

#endif
