/* Process setup shared by the daemons (see daemon.h). */
#include "daemon.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Written by the SIGINT/SIGTERM handler and by the parent watcher thread, read by the daemon's
 * loop: a C11 atomic (a lock-free one, so the handler may store to it) rather than a volatile
 * sig_atomic_t, which is only safe between a handler and the thread it interrupts. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal handler needs a lock-free atomic_int");
atomic_int terni_stop;
static pid_t parent;

static void on_signal(int sig)
{
    (void)sig;
    terni_stop = 1;
}

static void *watch_parent(void *arg)
{
    (void)arg;
    while (!terni_stop) {
        if (getppid() != parent)
            terni_stop = 1;
        usleep(200 * 1000);
    }
    return NULL;
}

void terni_daemon_init(bool exit_with_parent)
{
    /* No fastbins. The daemons free many small value nodes and then allocate a large message
     * buffer, which makes glibc consolidate every fastbin chunk (malloc_consolidate and
     * unlink_chunk were 19% of all CPU samples during throughput_100k). Without fastbins,
     * small frees go to the tcache and are coalesced at once: +25% tasks/s, measured. */
    mallopt(M_MXFAST, 0);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (exit_with_parent) {
        parent = getppid();
        pthread_t t;
        if (pthread_create(&t, NULL, watch_parent, NULL) == 0)
            pthread_detach(t);
    }
}

bool terni_int_option(const char *prog, const char *flag, const char *text, long min, long max,
                      int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < min || v > max) {
        fprintf(stderr, "%s: %s must be %ld..%ld, not %s\n", prog, flag, min, max, text);
        return false;
    }
    *out = (int)v;
    return true;
}
