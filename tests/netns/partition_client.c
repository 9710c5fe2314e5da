/* partition_client: the workload of the network-partition test (test_partition.sh).
 *
 *     partition_client SCHEDULER_URL FAULTPLUG_SO N
 *
 * Uploads faultplug, submits N tasks that each take 25 ms — chains of four, so results
 * must move between workers — prints "submitted" once they are all queued, then waits for
 * every result and checks it against a local computation. Prints "ok N results" and exits
 * 0, or names the first wrong or missing result and exits 1. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <tern/tern.h>

#define MOD ((((uint64_t)1) << 61) - 1)

static int64_t mix(int64_t i, const int64_t *dep)
{
    uint64_t acc = ((uint64_t)i * 1000003u) % MOD;
    if (dep)
        acc = (acc + ((uint64_t)*dep % MOD)) % MOD;
    return (int64_t)acc;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "partition_client: %s: %s: %s\n", what, tern_strerror_name(rc),
            tern_client_errmsg(NULL));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: partition_client SCHEDULER_URL FAULTPLUG_SO N\n");
        return 2;
    }
    int n = atoi(argv[3]);
    if (n < 4 || n > 100000) {
        fprintf(stderr, "partition_client: N must be 4..100000\n");
        return 2;
    }
    tern_client *c;
    tern_connect_opts o = { .timeout_ms = 20000 };
    int rc = tern_connect(argv[1], &o, &c);
    if (rc != TERN_OK)
        return fail("connect", rc);
    if ((rc = tern_upload_plugin(c, argv[2], NULL)) != TERN_OK)
        return fail("upload", rc);
    tern_future **fs = calloc((size_t)n, sizeof(*fs));
    int64_t *expect = calloc((size_t)n, sizeof(*expect));
    if (!fs || !expect)
        return fail("calloc", TERN_ENOMEM);
    for (int i = 0; i < n; i++) {
        tern_value *args = tern_list_of(tern_int(i), tern_int(25000));
        bool chained = i % 4 != 0;
        if (chained)
            tern_list_append(args, tern_future_ref(fs[i - 1]));
        expect[i] = mix(i, chained ? &expect[i - 1] : NULL);
        if ((rc = tern_submit(c, "faultplug:mix", args, NULL, &fs[i])) != TERN_OK)
            return fail("submit", rc);
    }
    printf("submitted\n");
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        tern_value *v = NULL;
        int64_t got = 0;
        if ((rc = tern_result(fs[i], 120000, &v)) != TERN_OK)
            return fail("result", rc);
        tern_value_get_int(v, &got);
        tern_value_unref(v);
        if (got != expect[i]) {
            fprintf(stderr, "partition_client: task %d: %lld, expected %lld\n", i, (long long)got,
                    (long long)expect[i]);
            return 1;
        }
        tern_future_release(fs[i]);
    }
    printf("ok %d results\n", n);
    free(fs);
    free(expect);
    tern_close(c);
    return 0;
}
