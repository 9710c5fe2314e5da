/* hello: the seed's first example, in C.
 *
 *     x = executor.submit(inc, 1)      ->  x.result() == 2
 *     y = executor.submit(inc, x)      ->  y.result() == 3, computed where x lives
 *
 * Usage: hello [SCHEDULER_ADDRESS [PLUGIN.so]]   (default local://2 and the built seed plugin)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

#ifndef HELLO_PLUGIN
#define HELLO_PLUGIN "seed.so"
#endif

static int check(int rc, tern_client *c, const char *what)
{
    if (rc != TERN_OK)
        fprintf(stderr, "hello: %s failed: %s: %s\n", what, tern_strerror(rc),
                tern_client_errmsg(c));
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: hello [SCHEDULER_ADDRESS [PLUGIN.so]]\n"
               "Uploads the seed plugin and computes inc(1), then inc(of that future).\n"
               "SCHEDULER_ADDRESS defaults to local://2 (a scheduler and two workers started\n"
               "for this run); PLUGIN.so defaults to the seed plugin built with the sample.\n");
        return 0;
    }
    const char *address = argc > 1 ? argv[1] : "local://2";
    const char *plugin = argc > 2 ? argv[2] : HELLO_PLUGIN;
    tern_client *c;
    if (check(tern_connect(address, NULL, &c), NULL, "connect"))
        return 1;
    tern_plugin_info info;
    tern_future *x = NULL, *y = NULL;
    tern_value *vx = NULL, *vy = NULL;
    int rc = check(tern_upload_plugin(c, plugin, &info), c, "upload");
    if (!rc)
        rc = check(tern_submit(c, "seed:inc", tern_list_of(tern_int(1)), NULL, &x), c, "submit");
    if (!rc)
        printf("x = submit(inc, 1)  -> future %s\n", tern_future_key(x));
    if (!rc)
        rc = check(tern_result(x, 10000, &vx), c, "result of x");
    /* A future as an argument: y runs where x's data is; x never comes back to us. */
    if (!rc)
        rc = check(tern_submit(c, "seed:inc", tern_list_of(tern_future_ref(x)), NULL, &y), c,
                   "submit");
    if (!rc)
        rc = check(tern_result(y, 10000, &vy), c, "result of y");
    int64_t a = 0, b = 0;
    if (!rc && (tern_value_get_int(vx, &a) || tern_value_get_int(vy, &b)))
        rc = TERN_ETYPE;
    if (!rc)
        printf("x.result() = %lld\ny = submit(inc, x)  -> y.result() = %lld\n", (long long)a,
               (long long)b);
    tern_value_unref(vx);
    tern_value_unref(vy);
    tern_future_release(x);
    tern_future_release(y);
    tern_close(c);
    return rc == TERN_OK && a == 2 && b == 3 ? 0 : 1;
}
