/* See rss.h. The cache is two atomics: a racing refresh by two threads only reads the file
 * twice, and any value read is a real recent reading. */
#include "runtime/util/rss.h"

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define REFRESH_NS (100 * 1000 * 1000LL)

static atomic_llong cached, read_at_ns;

int64_t terni_rss_bytes_now(void)
{
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%*d %ld", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (int64_t)pages * sysconf(_SC_PAGESIZE);
}

int64_t terni_rss_bytes(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    long long at = atomic_load(&read_at_ns);
    if (at && now - at < REFRESH_NS)
        return atomic_load(&cached);
    long long bytes = terni_rss_bytes_now();
    atomic_store(&cached, bytes);
    atomic_store(&read_at_ns, now);
    return bytes;
}
