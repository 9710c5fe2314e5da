/* Dashboard counters (stats.h). */
#include "runtime/scheduler/stats.h"

#include "sdk/src/transport/wire.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double hist_bounds[STATS_NBUCKETS - 1] = { 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10, 60 };

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

symstat *stats_symbol(stats *st, const char *fn)
{
    if (!fn || !*fn)
        return NULL;
    symstat *s;
    HASH_FIND_STR(st->symbols, fn, s);
    if (s)
        return s;
    s = calloc(1, sizeof(*s));
    if (!s || !(s->fn = strdup(fn))) {
        free(s);
        return NULL;
    }
    HASH_ADD_KEYPTR(hh, st->symbols, s->fn, strlen(s->fn), s);
    return s;
}

/* Copies s into dst[cap], cut before the first character that does not fit (UTF-8). */
static void stats_copy_cut(char *dst, size_t cap, const char *s)
{
    size_t n = strnlen(s, cap - 1);
    if (s[n] != '\0')
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) /* inside a character */
            n--;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

void stats_finished(stats *st, symstat *sym, const char *key, const char *fn, const char *worker,
                    int64_t duration_us, int64_t nbytes, bool erred)
{
    if (sym) {
        sym->done += !erred;
        sym->erred += erred;
        sym->large += !erred && nbytes >= STATS_LARGE_BYTES;
    }
    st->nerred += erred;
    if (!erred)
        st->result_bytes += nbytes > 0 ? nbytes : 0;
    double secs = duration_us > 0 ? (double)duration_us * 1e-6 : 0;
    if (duration_us >= 0 && !erred) {
        size_t b = 0;
        while (b < STATS_NBUCKETS - 1 && secs > hist_bounds[b])
            b++;
        st->hist[b]++;
        st->nhist++;
        st->hist_sum += secs;
    }
    completion *c = &st->stream[st->nstream++ % STATS_STREAM_LEN];
    stats_copy_cut(c->key, sizeof(c->key), key);
    stats_copy_cut(c->fn, sizeof(c->fn), fn ? fn : "");
    stats_copy_cut(c->worker, sizeof(c->worker), worker);
    c->stop_ms = now_ms();
    c->start_ms = c->stop_ms - secs * 1e3;
    c->erred = erred;
}

void stats_begin(stats *st)
{
    symstat *s, *tmp;
    HASH_ITER(hh, st->symbols, s, tmp)
    memset(s->now, 0, sizeof(s->now));
}

void stats_free(stats *st)
{
    symstat *s, *tmp;
    HASH_ITER(hh, st->symbols, s, tmp)
    {
        HASH_DEL(st->symbols, s);
        free(s->fn);
        free(s);
    }
    memset(st, 0, sizeof(*st));
}

static bool set_double(tern_value *m, const char *k, double d)
{
    return terni_set(m, k, tern_double(d));
}

bool stats_to_status(const stats *st, tern_value *out, const char *dashboard)
{
    symstat *s, *stmp;
    tern_value *symbols = tern_map_new();
    HASH_ITER(hh, st->symbols, s, stmp)
    {
        tern_value *m = tern_map_new();
        bool ok = m && terni_set_int(m, "done", (int64_t)s->done) &&
                  terni_set_int(m, "failed", (int64_t)s->erred);
        for (int i = 0; ok && i < T_NSTATES; i++)
            ok = terni_set_int(m, graph_state_names[i], (int64_t)s->now[i]);
        if (!ok)
            tern_value_unref(m);
        if (!ok || tern_map_set(symbols, s->fn, m) != TERN_OK) {
            tern_value_unref(symbols);
            return false;
        }
    }
    tern_value *stream = tern_list_new(STATS_STREAM_LEN);
    uint64_t first = st->nstream > STATS_STREAM_LEN ? st->nstream - STATS_STREAM_LEN : 0;
    for (uint64_t i = first; stream && i < st->nstream; i++) {
        const completion *c = &st->stream[i % STATS_STREAM_LEN];
        tern_value *m = tern_map_new();
        if (!m || !terni_set_text(m, "key", c->key) || !terni_set_text(m, "fn", c->fn) ||
            !terni_set_text(m, "worker", c->worker) || !set_double(m, "start_ms", c->start_ms) ||
            !set_double(m, "stop_ms", c->stop_ms) || !terni_set(m, "erred", tern_bool(c->erred)) ||
            tern_list_append(stream, m) != TERN_OK) {
            tern_value_unref(stream);
            stream = NULL;
        }
    }
    tern_value *hist = tern_map_new(), *bounds = tern_list_new(STATS_NBUCKETS),
               *counts = tern_list_new(STATS_NBUCKETS);
    for (size_t b = 0; b < STATS_NBUCKETS; b++) {
        if (b + 1 < STATS_NBUCKETS)
            tern_list_append(bounds, tern_double(hist_bounds[b]));
        tern_list_append(counts, tern_int((int64_t)st->hist[b]));
    }
    /* terni_set steals its value even when it fails, so every one is called */
    bool ok = hist != NULL;
    ok &= terni_set(hist, "bounds_s", bounds);
    ok &= terni_set(hist, "counts", counts);
    if (!ok || !set_double(hist, "sum_s", st->hist_sum) ||
        !terni_set_int(hist, "count", (int64_t)st->nhist)) {
        tern_value_unref(hist);
        hist = NULL;
    }
    ok = terni_set(out, "symbols", symbols);
    ok &= terni_set(out, "stream", stream);
    ok &= terni_set(out, "duration_histogram", hist);
    return ok && terni_set_int(out, "tasks_erred", (int64_t)st->nerred) &&
           terni_set_int(out, "transfer_bytes", st->transfer_bytes) &&
           terni_set_int(out, "result_bytes", st->result_bytes) &&
           set_double(out, "time_ms", now_ms()) &&
           (!dashboard || !dashboard[0] || terni_set_text(out, "dashboard", dashboard));
}
