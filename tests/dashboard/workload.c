/* workload: the known workload the dashboard test checks the page against.
 *
 *     workload SCHEDULER_URL
 *
 * Submits 12 arrays:arange(i) (i = 1..12, one tern_map), 12 arrays:sum over them (futures as
 * arguments) and one arrays:sum that fails (its argument is text): 25 tasks, 24 finish and 1
 * fails. Waits with tern_progress on stderr, checks every outcome, prints "ready" and holds the
 * futures (so their keys stay in memory) until stdin closes. Exit status 0, or 1 with the
 * reason on stderr. */
#include <stdio.h>

#include <tern/tern.h>

#define N 12

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: workload SCHEDULER_URL\n");
        return 2;
    }
    tern_client *c;
    int rc = tern_connect(argv[1], NULL, &c);
    if (rc != TERN_OK) {
        fprintf(stderr, "workload: %s: %s\n", tern_strerror(rc), tern_client_errmsg(NULL));
        return 1;
    }
    tern_future *fs[2 * N + 1] = { 0 };
    tern_value *args[N];
    for (int i = 0; i < N; i++)
        args[i] = tern_list_of(tern_int(i + 1));
    rc = tern_map(c, "arrays:arange", args, N, NULL, fs);
    for (int i = 0; rc == TERN_OK && i < N; i++)
        rc = tern_submit(c, "arrays:sum", tern_list_of(tern_future_ref(fs[i])), NULL, &fs[N + i]);
    if (rc == TERN_OK)
        rc =
            tern_submit(c, "arrays:sum", tern_list_of(tern_text("not an array")), NULL, &fs[2 * N]);
    if (rc == TERN_OK)
        rc = tern_progress(c, fs, 2 * N + 1, stderr);
    int bad = 0;
    for (int i = 0; rc == TERN_OK && i < 2 * N + 1; i++)
        bad += tern_future_status(fs[i]) != (i < 2 * N ? TERN_FINISHED : TERN_ERROR);
    for (int i = 0; rc == TERN_OK && !bad && i < N; i++) { /* sum(arange(i + 1)) */
        tern_value *v = NULL;
        double d = -1;
        if (tern_result(fs[N + i], 10000, &v) != TERN_OK || tern_value_get_double(v, &d) != 0 ||
            d != (double)i * (i + 1) / 2)
            bad++;
        tern_value_unref(v);
    }
    if (rc == TERN_OK && !bad) {
        printf("ready\n");
        fflush(stdout);
        while (getchar() != EOF)
            ;
    } else if (rc != TERN_OK) {
        fprintf(stderr, "workload: %s: %s\n", tern_strerror(rc), tern_client_errmsg(c));
    } else {
        fprintf(stderr, "workload: %d futures did not end as expected\n", bad);
    }
    tern_close(c);
    for (int i = 0; i < 2 * N + 1; i++)
        tern_future_release(fs[i]);
    return rc == TERN_OK && !bad ? 0 : 1;
}
