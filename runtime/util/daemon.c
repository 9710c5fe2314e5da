/* Process setup shared by the daemons (see daemon.h). */
#include "daemon.h"

#include <pthread.h>
#include <unistd.h>

volatile sig_atomic_t terni_stop;
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
