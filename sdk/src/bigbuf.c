/* Memory for large arrays, with a cache of freed mappings.
 *
 * Design notes
 *  A kernel's result array is new memory: an 8 MB array is 2,048 pages that the kernel must
 *  fault in and clear on first touch, which cost more than the arithmetic in the tree
 *  reduction (the C floor's 16 x 1M tree takes 15 ms on reused pages and 42 ms on fresh
 *  ones). glibc serves such sizes with mmap and gives them back at free, or trims them off a
 *  thread arena's heap, so every array paid the faults again. Here freed mappings are kept,
 *  up to a byte limit, and handed out again for the same page-rounded size; a long-running
 *  worker then computes into pages it has touched before. The cache is per process, guarded
 *  by one mutex (allocations of this size are rare next to the work done on them); the
 *  oldest mapping is unmapped when a new one does not fit. Memory from the cache is not
 *  cleared: callers that promise zeros (tern_f64_array with NULL data) clear it themselves.
 *
 *  Shared-memory backing (terni_bigbuf_use_memfd; the worker turns it on): new buffers are
 *  then shared mappings of their own memfd, so that a process on this host can read an array
 *  straight from its buffer. terni_bigbuf_lend hands out a descriptor of the memfd, sealed
 *  against shrinking and growing only (so that the file a reader checked cannot shrink under
 *  it); the buffer stays writable and is cached again when freed, so the pages are reused.
 *  The lender must keep the array alive, unchanged, for as long as the reader maps it (shm.c,
 *  dataserver.c's pins). A buffer whose reader can no longer tell the lender that it is done (its
 *  connection closed while it may still map the buffer) is forsaken: it is never written
 *  again (terni_value_writable asks terni_bigbuf_forsaken) nor cached, only unmapped and
 *  closed when freed, and the reader's mapping keeps its pages. Before, a served buffer was
 *  sealed read-only in place and could never be reused: every served array cost a fresh
 *  buffer later (6 ms and more for 8 MB of new shared memory, more than a copy). Each
 *  memfd-backed buffer, live or cached, holds a descriptor, so at most MEMFD_MAX of them exist
 *  at once (and at most a quarter of RLIMIT_NOFILE); past that, and if memfd_create fails,
 *  buffers are anonymous as before and served by copying. Live memfd buffers are found by
 *  address in a small array (there are at most MEMFD_MAX, each of at least 1 MB). A shared
 *  mapping stays shared across fork(): plugin code that forks must not let its child write to
 *  arrays.
 */
#include "sdk/src/bigbuf.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CACHE_SLOTS      64
#define DEFAULT_CACHE_MB 256

#define MEMFD_MAX  512
#define LEND_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

typedef struct slot {
    void *p;
    size_t size;
    int fd; /* its memfd, or -1: anonymous */
} slot;

typedef struct live_buf {
    void *p;
    size_t size;
    int fd;
    bool forsaken; /* a reader may map it for good: never written or cached again */
} live_buf;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static slot cache[CACHE_SLOTS]; /* oldest first */
static size_t ncached, cached_bytes;
static size_t limit = (size_t)-1; /* bytes; (size_t)-1 until read from the environment */
static bool use_memfd;
static size_t memfd_max;         /* descriptors we may hold: live + cached */
static size_t nmemfd;            /* held now */
static live_buf live[MEMFD_MAX]; /* memfd-backed buffers handed out, unordered */
static size_t nlive;

static size_t page_round(size_t bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return bytes > (size_t)-1 - page ? 0 : (bytes + page - 1) & ~(page - 1);
}

static size_t cache_limit(void) /* under lock */
{
    if (limit == (size_t)-1) {
        const char *env = getenv("TERN_ARRAY_CACHE_MB");
        char *end = NULL;
        unsigned long long mb = env && *env ? strtoull(env, &end, 10) : DEFAULT_CACHE_MB;
        if (env && *env && (*end || mb > ((size_t)-1 >> 21)))
            mb = DEFAULT_CACHE_MB; /* not a number: the default */
        limit = (size_t)mb << 20;
    }
    return limit;
}

bool terni_bigbuf_wants(size_t bytes)
{
    if (bytes < TERNI_BIGBUF_MIN)
        return false;
    pthread_mutex_lock(&lock);
    size_t max = cache_limit();
    pthread_mutex_unlock(&lock);
    return max > 0;
}

void terni_bigbuf_use_memfd(void)
{
    struct rlimit r;
    size_t max = MEMFD_MAX;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != RLIM_INFINITY && r.rlim_cur / 4 < max)
        max = (size_t)r.rlim_cur / 4;
    pthread_mutex_lock(&lock);
    use_memfd = TERNI_BIGBUF_MIN != (size_t)-1;
    memfd_max = max;
    pthread_mutex_unlock(&lock);
}

/* A new shared mapping of a new memfd of `size` bytes, recorded in live[]; NULL (nothing
 * held) if memfd backing is off, at its descriptor budget, or any step fails. */
static void *memfd_map(size_t size)
{
    pthread_mutex_lock(&lock);
    bool ok = use_memfd && nmemfd < memfd_max;
    if (ok)
        nmemfd++; /* reserved; given back below on failure */
    pthread_mutex_unlock(&lock);
    if (!ok)
        return NULL;
    void *p = MAP_FAILED;
    int fd = memfd_create("tern-array", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd >= 0 && ftruncate(fd, (off_t)size) == 0)
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    pthread_mutex_lock(&lock);
    if (p != MAP_FAILED)
        live[nlive++] = (live_buf){ p, size, fd, false }; /* nlive <= nmemfd <= MAX */
    else
        nmemfd--;
    pthread_mutex_unlock(&lock);
    if (p != MAP_FAILED)
        return p;
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* The index in live[] of the buffer at p, or nlive. Under lock. */
static size_t live_find(const void *p)
{
    size_t i = 0;
    while (i < nlive && live[i].p != p)
        i++;
    return i;
}

void *terni_bigbuf_alloc(size_t bytes)
{
    size_t size = page_round(bytes);
    if (!size)
        return NULL;
    void *p = NULL;
    pthread_mutex_lock(&lock);
    for (size_t i = ncached; i-- > 0;) /* newest first: the most recently touched pages */
        if (cache[i].size == size) {
            p = cache[i].p;
            if (cache[i].fd >= 0)
                live[nlive++] = (live_buf){ p, size, cache[i].fd, false };
            cached_bytes -= size;
            memmove(&cache[i], &cache[i + 1], (ncached - i - 1) * sizeof(slot));
            ncached--;
            break;
        }
    pthread_mutex_unlock(&lock);
    if (p)
        return p;
    if ((p = memfd_map(size)))
        return p;
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Unmaps a buffer and closes its memfd (fd -1: anonymous). Not under lock. */
static void release(void *p, size_t size, int fd)
{
    munmap(p, size);
    if (fd >= 0) {
        close(fd);
        pthread_mutex_lock(&lock);
        nmemfd--;
        pthread_mutex_unlock(&lock);
    }
}

int terni_bigbuf_lend(const void *p, size_t bytes)
{
    size_t size = page_round(bytes);
    int fd = -1;
    pthread_mutex_lock(&lock);
    size_t i = live_find(p);
    if (i < nlive && live[i].size == size) {
        int seals = fcntl(live[i].fd, F_GET_SEALS);
        if (seals >= 0 &&
            ((seals & LEND_SEALS) == LEND_SEALS || fcntl(live[i].fd, F_ADD_SEALS, LEND_SEALS) == 0))
            fd = fcntl(live[i].fd, F_DUPFD_CLOEXEC, 0);
    }
    pthread_mutex_unlock(&lock);
    return fd;
}

void terni_bigbuf_forsake(const void *p)
{
    pthread_mutex_lock(&lock);
    size_t i = live_find(p);
    if (i < nlive)
        live[i].forsaken = true;
    pthread_mutex_unlock(&lock);
}

bool terni_bigbuf_forsaken(const void *p)
{
    pthread_mutex_lock(&lock);
    size_t i = live_find(p);
    bool forsaken = i < nlive && live[i].forsaken;
    pthread_mutex_unlock(&lock);
    return forsaken;
}

void terni_bigbuf_free(void *p, size_t bytes)
{
    if (!p)
        return;
    size_t size = page_round(bytes);
    slot evicted[CACHE_SLOTS];
    size_t nevicted = 0;
    bool kept = false, forsaken = false;
    int fd = -1;
    pthread_mutex_lock(&lock);
    size_t i = live_find(p);
    if (i < nlive) {
        fd = live[i].fd;
        forsaken = live[i].forsaken;
        live[i] = live[--nlive];
    }
    size_t max = cache_limit();
    if (size <= max && !forsaken) {
        while (ncached && (ncached == CACHE_SLOTS || cached_bytes + size > max)) {
            evicted[nevicted++] = cache[0];
            cached_bytes -= cache[0].size;
            memmove(&cache[0], &cache[1], (ncached - 1) * sizeof(slot));
            ncached--;
        }
        cache[ncached++] = (slot){ p, size, fd };
        cached_bytes += size;
        kept = true;
    }
    pthread_mutex_unlock(&lock);
    for (size_t k = 0; k < nevicted; k++)
        release(evicted[k].p, evicted[k].size, evicted[k].fd);
    if (!kept)
        release(p, size, fd);
}
