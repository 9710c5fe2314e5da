/* The resident memory of this process, for status reports (dashboard, /metrics). */
#ifndef TERNI_RSS_H
#define TERNI_RSS_H

#include <stdint.h>

/* Resident set size in bytes, read from /proc/self/statm at most every 100 ms (cached in
 * between, so it is cheap enough for a per-task report); 0 if /proc is unreadable.
 * Thread-safe. */
int64_t terni_rss_bytes(void);

/* The same, read now (no cache): for a report that must be current (the scheduler's status,
 * from which the benchmarks take memory per task). Thread-safe. */
int64_t terni_rss_bytes_now(void);

#endif
