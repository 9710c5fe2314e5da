/* tern_progress: a progress bar over futures (see tern.h).
 *
 * Design notes: built on the public future calls only (tern_future_status, tern_wait), so
 * it needs no client internals and no extra thread. Futures only ever go from pending to
 * done, so the pending ones are kept in a private array that is compacted each tick and
 * waited on with tern_wait(ALL) for at most one tick: the wait returns as soon as everything
 * is done, and each tick costs O(pending), not O(n). The rate counts only futures that
 * finished during the call, so a half-done set does not produce a wild estimate. */
#include <tern/tern.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TTY_TICK_MS   100
#define PLAIN_TICK_MS 250
#define PLAIN_EVERY_S 1.0
#define BAR_WIDTH     30

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void duration(char *out, size_t len, double s)
{
    if (!isfinite(s) || s < 0)
        snprintf(out, len, "?");
    else if (s < 10)
        snprintf(out, len, "%.1fs", s);
    else if (s < 60)
        snprintf(out, len, "%.0fs", s);
    else if (s < 3600)
        snprintf(out, len, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(out, len, "%dh%02dm", (int)(s / 3600), (int)s % 3600 / 60);
}

static void draw(FILE *f, bool tty, size_t done, size_t total, size_t failed, size_t progressed,
                 double elapsed)
{
    double rate = elapsed > 0 ? (double)progressed / elapsed : 0;
    char eta[32], took[32];
    if (done == total)
        snprintf(eta, sizeof(eta), "0s");
    else
        duration(eta, sizeof(eta), rate > 0 ? (double)(total - done) / rate : NAN);
    duration(took, sizeof(took), elapsed);
    double frac = total ? (double)done / (double)total : 1;
    char fail[48] = "";
    if (failed)
        snprintf(fail, sizeof(fail), ", %zu failed", failed);
    if (tty) {
        char bar[BAR_WIDTH + 1];
        size_t fill = (size_t)(frac * BAR_WIDTH);
        for (size_t i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[BAR_WIDTH] = '\0';
        fprintf(f, "\r[%s] %zu/%zu %3.0f%%  %.1f tasks/s  %s %s%s\033[K", bar, done, total,
                frac * 100, rate, done == total ? "took" : "eta", done == total ? took : eta, fail);
        if (done == total)
            fputc('\n', f);
    } else {
        fprintf(f, "progress %zu/%zu (%.0f%%), %.1f tasks/s, %s %s%s\n", done, total, frac * 100,
                rate, done == total ? "took" : "eta", done == total ? took : eta, fail);
    }
    fflush(f);
}

int tern_progress(tern_client *c, tern_future **fs, size_t n, FILE *stream)
{
    if (!c || (n && !fs))
        return TERN_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return TERN_EINVAL;
    if (n == 0)
        return TERN_OK;
    FILE *f = stream ? stream : stderr;
    int fd = fileno(f);
    bool tty = fd >= 0 && isatty(fd);
    tern_future **pending = malloc(n * sizeof(*pending));
    if (!pending)
        return TERN_ENOMEM;
    memcpy(pending, fs, n * sizeof(*pending));
    size_t npending = n, failed = 0, start_done = SIZE_MAX, last_done = SIZE_MAX;
    double t0 = now_s(), last_draw = -1e9;
    int rc = TERN_OK;
    for (;;) {
        size_t k = 0;
        for (size_t i = 0; i < npending; i++) {
            tern_status st = tern_future_status(pending[i]);
            if (st == TERN_PENDING)
                pending[k++] = pending[i];
            else
                failed += st != TERN_FINISHED;
        }
        npending = k;
        size_t done = n - npending;
        if (start_done == SIZE_MAX)
            start_done = done;
        double t = now_s();
        bool all = npending == 0;
        if (all || (tty && (t - last_draw) * 1e3 >= TTY_TICK_MS) ||
            (!tty && done != last_done && t - last_draw >= PLAIN_EVERY_S)) {
            draw(f, tty, done, n, failed, done - start_done, t - t0);
            last_draw = t;
            last_done = done;
        }
        if (all)
            break;
        rc = tern_wait(pending, npending, tty ? TTY_TICK_MS : PLAIN_TICK_MS, TERN_WAIT_ALL);
        if (rc != TERN_OK && rc != TERN_ETIMEDOUT)
            break;
        rc = TERN_OK;
    }
    free(pending);
    return rc;
}
