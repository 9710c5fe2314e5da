/* hold_key: a client that keeps one key on the cluster for the CLI test (a key lives only
 * while some client wants it, and every `tern` command releases its keys on exit).
 *
 *     hold_key SCHEDULER_URL
 *
 * Computes testplug:inc(1), prints its key on stdout, and holds the future until stdin
 * closes. Exit status 0, or 1 with the reason on stderr. */
#include <stdio.h>

#include <tern/tern.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hold_key SCHEDULER_URL\n");
        return 2;
    }
    tern_client *c;
    int rc = tern_connect(argv[1], NULL, &c);
    if (rc != TERN_OK) {
        fprintf(stderr, "hold_key: %s: %s\n", tern_strerror(rc), tern_client_errmsg(NULL));
        return 1;
    }
    tern_future *f = NULL;
    tern_value *v = NULL;
    rc = tern_submit(c, "testplug:inc", tern_list_of(tern_int(1)), NULL, &f);
    if (rc == TERN_OK)
        rc = tern_result(f, 30000, &v);
    if (rc == TERN_OK) {
        printf("%s\n", tern_future_key(f));
        fflush(stdout);
        while (getchar() != EOF)
            ;
    } else {
        fprintf(stderr, "hold_key: %s: %s\n", tern_strerror(rc), tern_client_errmsg(c));
    }
    tern_value_unref(v);
    tern_close(c); /* releases the key; the future stays valid until released */
    tern_future_release(f);
    return rc == TERN_OK ? 0 : 1;
}
