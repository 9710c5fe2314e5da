/* tern-plugin-info: load a plugin the way a worker does and describe it, or explain why it
 * cannot be loaded. Optionally call one task with integer/float/text arguments.
 *
 *     tern-plugin-info PLUGIN.so [SYMBOL [ARG...]]
 *     tern-plugin-info --describe PLUGIN.so
 *
 * --describe is the machine form the scheduler uses to check an upload without loading plugin
 * code into itself: one line, "ok<TAB>name<TAB>version<TAB>task task ..." or
 * "error<TAB>CODE<TAB>message" (CODE is the numeric tern_err).
 *
 * Arguments parse as int, then double, else text. Exit status: 0 on success, 1 when the
 * plugin or the task fails (the message says why), 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/worker/loader.h"
#include "sdk/src/support/rmtree.h"
#include "sdk/src/task_ctx.h"

static tern_value *parse_arg(const char *s)
{
    char *end;
    long long i = strtoll(s, &end, 10);
    if (*s && *end == '\0')
        return tern_int(i);
    double d = strtod(s, &end);
    if (*s && *end == '\0')
        return tern_double(d);
    return tern_text(s);
}

static int describe(const char *path)
{
    char dir[] = "/tmp/tern-plugin-info-XXXXXX", msg[1024];
    if (!mkdtemp(dir)) {
        printf("error\t%d\tcannot create a scratch directory\n", TERN_EIO);
        return 1;
    }
    terni_loader *l = NULL;
    const terni_plugin *p = NULL;
    int rc = terni_loader_open(dir, &l, msg, sizeof(msg));
    if (rc == TERN_OK)
        rc = terni_loader_load_file(l, path, &p, msg, sizeof(msg));
    if (rc == TERN_OK) {
        printf("ok\t%s\t%s\t", terni_plugin_name(p), terni_plugin_version(p));
        for (size_t i = 0; i < terni_plugin_task_count(p); i++)
            printf(i ? " %s" : "%s", terni_plugin_task_name(p, i));
        printf("\n");
    } else {
        for (char *c = msg; *c; c++)
            if (*c == '\t' || *c == '\n')
                *c = ' ';
        printf("error\t%d\t%s\n", rc, msg);
    }
    terni_loader_close(l);
    if (!terni_rmtree(dir))
        fprintf(stderr, "tern-plugin-info: could not remove %s\n", dir);
    return rc == TERN_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--describe"))
        return describe(argv[2]);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: tern-plugin-info PLUGIN.so [SYMBOL [ARG...]]\n"
               "       tern-plugin-info --describe PLUGIN.so\n"
               "Loads a plugin the way a worker does and prints its name, version and tasks,\n"
               "or why it cannot be loaded. With SYMBOL, calls that task with the arguments\n"
               "(each parsed as an integer, else a double, else text) and prints the result.\n"
               "--describe prints one machine-readable line (what the scheduler uses).\n"
               "exit status: 0 success, 1 the plugin or task failed, 2 usage error\n");
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: tern-plugin-info PLUGIN.so [SYMBOL [ARG...]]\n");
        return 2;
    }
    char dir[] = "/tmp/tern-plugin-info-XXXXXX", msg[1024];
    if (!mkdtemp(dir)) {
        perror("tern-plugin-info: mkdtemp");
        return 1;
    }
    terni_loader *l = NULL;
    const terni_plugin *p = NULL;
    int rc = terni_loader_open(dir, &l, msg, sizeof(msg));
    if (rc == TERN_OK)
        rc = terni_loader_load_file(l, argv[1], &p, msg, sizeof(msg));
    if (rc == TERN_OK) {
        printf("plugin  %s %s\nid      %s\ntasks  ", terni_plugin_name(p), terni_plugin_version(p),
               terni_plugin_id(p));
        for (size_t i = 0; i < terni_plugin_task_count(p); i++)
            printf(" %s", terni_plugin_task_name(p, i));
        printf("\n");
    } else {
        fprintf(stderr, "tern-plugin-info: %s: %s\n", tern_strerror_name(rc), msg);
    }
    if (rc == TERN_OK && argc > 2) {
        tern_task_fn fn;
        rc = terni_plugin_resolve(p, argv[2], &fn, msg, sizeof(msg));
        size_t nargs = (size_t)argc - 3;
        tern_value **args = calloc(nargs ? nargs : 1, sizeof(*args));
        for (size_t i = 0; i < nargs; i++)
            args[i] = parse_arg(argv[3 + i]);
        tern_value *out = NULL;
        if (rc == TERN_OK)
            rc = terni_task_call(fn, argv[2], "", args, NULL, nargs, &out, msg, sizeof(msg));
        if (rc == TERN_OK) {
            char *s = tern_value_to_string(out, 0);
            printf("result  %s\n", s ? s : "(out of memory)");
            free(s);
        } else {
            fprintf(stderr, "tern-plugin-info: %s: %s\n", tern_strerror_name(rc), msg);
        }
        tern_value_unref(out);
        for (size_t i = 0; i < nargs; i++)
            tern_value_unref(args[i]);
        free(args);
    }
    terni_loader_close(l);
    if (!terni_rmtree(dir))
        fprintf(stderr, "tern-plugin-info: could not remove %s\n", dir);
    return rc == TERN_OK ? 0 : 1;
}
