/* The client is thread-safe: several host threads submit, wait and release at once on one
 * client, including the same pure keys from different threads. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>

#include <tern/tern.h>

#include "../unit/leakcheck.h"

enum { THREADS = 4, PER_THREAD = 300 };

static tern_client *client;
static char plugin[4096];

static void setup(void)
{
    snprintf(plugin, sizeof(plugin), "%s/testplug.so", TERN_TEST_PLUGIN_DIR);
    int rc = tern_connect("local://2", NULL, &client);
    cr_assert_eq(rc, TERN_OK, "connect: %s", tern_client_errmsg(client));
    rc = tern_upload_plugin(client, plugin, NULL);
    cr_assert_eq(rc, TERN_OK, "upload: %s", tern_client_errmsg(client));
}

static void teardown(void)
{
    tern_close(client);
}

typedef struct {
    int id;
    int errors;
    char why[256];
} worker_arg;

static void *submitter(void *p)
{
    worker_arg *a = p;
    tern_future *fs[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        /* Half the keys are shared by every thread (same pure call), half are this thread's. */
        int64_t n = i % 2 ? i : 100000 * (a->id + 1) + i;
        if (tern_submit(client, "testplug:inc", tern_list_of(tern_int(n)), NULL, &fs[i]) !=
            TERN_OK) {
            snprintf(a->why, sizeof(a->why), "submit: %s", tern_client_errmsg(client));
            a->errors++;
            fs[i] = NULL;
        }
    }
    for (int i = 0; i < PER_THREAD; i++) {
        if (!fs[i])
            continue;
        tern_value *v = NULL;
        int64_t got = -1, n = i % 2 ? i : 100000 * (a->id + 1) + i;
        if (tern_result(fs[i], 30000, &v) != TERN_OK || tern_value_get_int(v, &got) != TERN_OK ||
            got != n + 1) {
            snprintf(a->why, sizeof(a->why), "inc(%lld) gave %lld: %s", (long long)n,
                     (long long)got, tern_client_errmsg(client));
            a->errors++;
        }
        tern_value_unref(v);
        tern_future_release(fs[i]);
    }
    return NULL;
}

static void *observer(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < 50; i++) {
        tern_value *st = NULL;
        if (tern_status_info(client, &st) != TERN_OK) {
            snprintf(a->why, sizeof(a->why), "status: %s", tern_client_errmsg(client));
            a->errors++;
        }
        tern_value_unref(st);
    }
    return NULL;
}

LTest(threads, submit_wait_release_from_many_threads, .init = setup, .fini = teardown,
      .timeout = 120)
{
    pthread_t t[THREADS + 1];
    worker_arg args[THREADS + 1];
    for (int i = 0; i <= THREADS; i++) {
        args[i] = (worker_arg){ .id = i };
        pthread_create(&t[i], NULL, i < THREADS ? submitter : observer, &args[i]);
    }
    for (int i = 0; i <= THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(args[i].errors, 0, "thread %d: %d errors, last: %s", i, args[i].errors,
                     args[i].why);
    }
    /* Every future was released by every thread: the cluster forgets all of them. */
    tern_value *st = NULL;
    int64_t in_memory = -1;
    for (int tries = 0; tries < 200; tries++) {
        cr_assert_eq(tern_status_info(client, &st), TERN_OK);
        const tern_value *v;
        tern_map_get(st, "keys_in_memory", &v);
        tern_value_get_int(v, &in_memory);
        tern_value_unref(st);
        if (in_memory == 0)
            break;
        struct timespec nap = { 0, 10 * 1000 * 1000 };
        nanosleep(&nap, NULL);
    }
    cr_expect_eq(in_memory, 0, "%lld keys still in memory after every release",
                 (long long)in_memory);
}
