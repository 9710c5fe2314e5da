/* Process setup shared by the daemons (see daemon.h). */
#include "runtime/util/daemon.h"

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

/* Free heap memory a busy daemon keeps (M_TRIM_THRESHOLD; more than this is given back at once). */
#define KEEP_FREE_HEAP_BYTES (256 << 20)

void terni_daemon_init(bool exit_with_parent)
{
    /* No fastbins. The daemons free many small value nodes and then allocate a large message
     * buffer, which makes glibc consolidate every fastbin chunk (malloc_consolidate and
     * unlink_chunk were 19% of all CPU samples during throughput_100k). Without fastbins,
     * small frees go to the tcache and are coalesced at once: +25% tasks/s, measured. */
    mallopt(M_MXFAST, 0);
    /* Freed memory stays in the heap while the daemon is busy, and each daemon gives it back
     * itself once idle (malloc_trim: the scheduler after a burst of requests or a quiet wait,
     * the worker's watchdog after TRIM_IDLE_MS). By default glibc gives the top of a heap back
     * whenever more than 128 KiB of it is free, so each burst of tasks faulted its pages in
     * again, yet freed memory in the middle of the heap was never given back: an idle worker
     * kept 550-640 MB after a million tasks (tern-bench scale). With this: 8-9 MB, and a third
     * fewer page faults in throughput_100k (324-371k -> 194-256k; tasks/s the same within noise).
     */
    mallopt(M_TRIM_THRESHOLD, KEEP_FREE_HEAP_BYTES);
    /* One arena. Messages are decoded on nng's threads, each of which would otherwise get an
     * arena of its own; malloc_trim cannot give back the free top of such an arena, and with
     * the threshold above the freed requests stayed resident (tern-bench scale: 456-536 bytes
     * of scheduler RSS per task, 358 with one arena), and an idle scheduler kept 68 MB of the
     * 144 it had grown by for 10,000 results (test_cluster's idle_daemons_give_... test). */
    mallopt(M_ARENA_MAX, 1);
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
