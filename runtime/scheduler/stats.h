/* Counters for the dashboard and /metrics: per-symbol totals, a ring of recent completions
 * (the task stream), a duration histogram and byte counters. Only the status op reads them;
 * recording a completion allocates nothing (it happens for every task). Single-threaded: the
 * scheduler's thread. */
#ifndef TERNI_SCHED_STATS_H
#define TERNI_SCHED_STATS_H

#include "runtime/scheduler/states.h"

#include <stdbool.h>
#include <stdint.h>

#include <tern/value.h>
#include <uthash.h>

#define STATS_STREAM_LEN 256
/* Results of this many bytes and more count as large (placement's early placement). */
#define STATS_LARGE_BYTES (64 * 1024)

typedef struct symstat {
    char *fn;
    uint64_t done, erred;
    uint64_t large;        /* results of STATS_LARGE_BYTES and more */
    size_t now[T_NSTATES]; /* stats_begin/stats_count: tasks of this symbol by state */
    UT_hash_handle hh;
} symstat;

/* The task stream keeps the recent completions' names in place, cut to these sizes. */
typedef struct completion {
    char key[128], fn[96], worker[64];
    double start_ms, stop_ms; /* Unix time; start = stop - the worker's measured run time */
    bool erred;
} completion;

#define STATS_NBUCKETS 9

typedef struct stats {
    symstat *symbols;
    completion stream[STATS_STREAM_LEN];
    uint64_t nstream; /* completions ever recorded; the newest is stream[(nstream-1) % LEN] */
    uint64_t hist[STATS_NBUCKETS], nhist, nerred;
    double hist_sum;
    int64_t transfer_bytes, result_bytes;
} stats;

/* fn's counters, made on first use; NULL for "" or when out of memory. */
symstat *stats_symbol(stats *st, const char *fn);
/* A task of sym (may be NULL) finished on a worker: counted, and added to the stream. */
void stats_finished(stats *st, symstat *sym, const char *key, const char *fn, const char *worker,
                    int64_t duration_us, int64_t nbytes, bool erred);
/* The status op counts tasks by symbol in one walk: stats_begin, then stats_count each. */
void stats_begin(stats *st);
static inline void stats_count(symstat *sym, int state)
{
    if (sym)
        sym->now[state]++;
}
/* Adds symbols, stream, duration_histogram and the counters to a status map; dashboard: its
 * URL or "" (docs/protocol.md, "status"). False when out of memory. */
bool stats_to_status(const stats *st, tern_value *out, const char *dashboard);
void stats_free(stats *st);

#endif
