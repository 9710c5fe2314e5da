/* Crash forensics and task timeouts (watchdog.h). */
#include "runtime/worker/watchdog.h"

#include "runtime/util/log.h"
#include "sdk/src/transport/wire.h"
#include "runtime/worker/worker.h" /* terni_nanny_announce_exit */

#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define WATCHDOG_MS  20  /* how often the watchdog checks timeouts and idleness */
#define TRIM_IDLE_MS 200 /* idle this long after the store changed, the heap is trimmed */

tern_value *terni_watchdog_open(terni_watchdog *wd, terni_wcore *core)
{
    *wd = (terni_watchdog){ .core = core };
    pthread_cond_init(&wd->cond, NULL);
    tern_value *left = tern_list_new(0);
    char path[4096];
    snprintf(path, sizeof(path), "%s/running", core->opts->workdir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return left;
    struct stat st;
    size_t old = fstat(fd, &st) == 0 ? (size_t)st.st_size : 0;
    size_t need = (size_t)core->opts->nthreads * TERNI_SLOT_SIZE;
    size_t len = old > need ? old : need;
    if (ftruncate(fd, (off_t)len) == 0) {
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) {
            for (size_t off = 0; left && off + TERNI_SLOT_SIZE <= old; off += TERNI_SLOT_SIZE)
                if (m[off] && memchr(m + off, '\0', TERNI_SLOT_SIZE))
                    tern_list_append(left, tern_text(m + off));
            memset(m, 0, len);
            wd->slots = m;
            wd->slots_len = len;
        }
    }
    close(fd);
    return left;
}

char *terni_watchdog_slot(terni_watchdog *wd, int i)
{
    return wd->slots ? wd->slots + (size_t)i * TERNI_SLOT_SIZE : NULL;
}

/* Key first, then its terminator: a torn slot reads as another key. Not snprintf: a printf per
 * task was 2% of an executor's time. */
void terni_slot_set(char *slot, const char *key)
{
    if (!slot)
        return;
    size_t n = strnlen(key, TERNI_SLOT_SIZE - 1);
    memcpy(slot, key, n);
    slot[n] = '\0';
}

void terni_slot_clear(char *slot)
{
    if (slot)
        slot[0] = '\0';
}

/* A task ran past its timeout: report it, make sure the report left, and end this process
 * so the nanny starts a fresh one (exit status TERNI_EXIT_RESTART, announced: not a crash). */
static void timed_out(terni_watchdog *wd, const char *key, const char *fn, int64_t run,
                      int64_t timeout_ms)
{
    terni_wcore *c = wd->core;
    char msg[512];
    snprintf(msg, sizeof(msg),
             "task ran longer than its timeout of %lld ms; worker %s restarted its executor "
             "to stop it",
             (long long)timeout_ms, c->opts->name);
    terni_log(TERNI_LOG_INFO, "%s: %s", key, msg);
    terni_wcore_erred(c, key, fn, run, TERN_ETIMEDOUT, msg);
    pthread_mutex_lock(&c->link_lock);
    if (c->link) { /* ops are sent in order: once this answers, the report is there */
        tern_value *r = NULL;
        char err[256];
        terni_link_call(c->link, terni_enc_empty(TERNI_OP_HEARTBEAT), 2000, &r, err, sizeof(err));
        tern_value_unref(r);
    }
    pthread_mutex_unlock(&c->link_lock);
    /* A deliberate restart: blame no task. Under the lock, held until _exit, so no executor
     * writes its slot after the clearing (found by make tsan: a data race with the executors'
     * writes, which could leave a running task's key behind to be blamed for a crash). */
    pthread_mutex_lock(&c->lock);
    if (wd->slots)
        memset(wd->slots, 0, wd->slots_len);
    terni_nanny_announce_exit(TERNI_EXIT_RESTART); /* any exit not announced is a crash */
    _exit(TERNI_EXIT_RESTART);
}

/* Every WATCHDOG_MS it ends a task past its timeout (timed_out), and once the worker has been
 * idle for TRIM_IDLE_MS after its store changed, it gives the free heap back to the system
 * (malloc_trim): the daemons keep freed memory while busy (daemon.c). */
static void *watchdog_main(void *arg)
{
    terni_watchdog *wd = arg;
    terni_wcore *c = wd->core;
    uint64_t seen = 0, trimmed = 0; /* store changes at the last tick, and at the last trim */
    uint64_t busy_ns = 0;           /* when the worker was last seen busy or changing */
    terni_wcore_standin_prepare();
    for (;;) {
        char key[TERNI_MAX_KEY + 1] = "", fn[256] = ""; /* fn: for its length (timed_out) */
        int64_t run = 0, timeout_ms = 0;
        struct timespec ts;
        terni_deadline(&ts, WATCHDOG_MS);
        pthread_mutex_lock(&c->lock);
        while (!c->stopping && pthread_cond_timedwait(&wd->cond, &c->lock, &ts) == 0)
            ;
        if (c->stopping) {
            pthread_mutex_unlock(&c->lock);
            terni_wcore_standin_release();
            return NULL;
        }
        uint64_t now = terni_now_ns();
        TERNI_LIST_EACH (&c->jobs.running, it) {
            terni_job *j = TERNI_CONTAINER_OF(it, terni_job, in_list);
            if (j->timeout_ms > 0 && !j->cancelled &&
                now - j->start_ns > (uint64_t)j->timeout_ms * 1000000u) {
                snprintf(key, sizeof(key), "%s", j->key); /* whole: at most TERNI_MAX_KEY */
                snprintf(fn, sizeof(fn), "%s", j->fn);
                run = j->run;
                timeout_ms = j->timeout_ms;
                break;
            }
        }
        if (terni_jobs_busy(&c->jobs) || c->store.changes != seen)
            busy_ns = now;
        seen = c->store.changes;
        bool quiet = seen != trimmed && now - busy_ns >= TRIM_IDLE_MS * 1000000u;
        pthread_mutex_unlock(&c->lock);
        if (key[0])
            timed_out(wd, key, fn, run, timeout_ms);
        if (quiet) {
            malloc_trim(0);
            trimmed = seen;
        }
    }
}

bool terni_watchdog_start(terni_watchdog *wd)
{
    wd->started = pthread_create(&wd->thread, NULL, watchdog_main, wd) == 0;
    return wd->started;
}

void terni_watchdog_wake(terni_watchdog *wd)
{
    pthread_cond_broadcast(&wd->cond);
}

void terni_watchdog_close(terni_watchdog *wd)
{
    if (wd->started)
        pthread_join(wd->thread, NULL);
    wd->started = false;
    if (wd->slots)
        munmap(wd->slots, wd->slots_len);
    wd->slots = NULL;
    pthread_cond_destroy(&wd->cond);
}
