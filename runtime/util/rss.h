/* The resident memory of this process, for status reports (dashboard, /metrics). */
#ifndef TERNI_RSS_H
#define TERNI_RSS_H

#include <stdint.h>

/* Resident set size in bytes, read from /proc/self/statm at most every 100 ms (cached in
 * between, so it is cheap enough for a per-task report); 0 if /proc is unreadable.
 * Thread-safe. */
int64_t terni_rss_bytes(void);

#endif
