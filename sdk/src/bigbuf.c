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
 */
#include "bigbuf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CACHE_SLOTS      64
#define DEFAULT_CACHE_MB 256

typedef struct slot {
    void *p;
    size_t size;
} slot;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static slot cache[CACHE_SLOTS]; /* oldest first */
static size_t ncached, cached_bytes;
static size_t limit = (size_t)-1; /* bytes; (size_t)-1 until read from the environment */

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
            cached_bytes -= size;
            memmove(&cache[i], &cache[i + 1], (ncached - i - 1) * sizeof(slot));
            ncached--;
            break;
        }
    pthread_mutex_unlock(&lock);
    if (p)
        return p;
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void terni_bigbuf_free(void *p, size_t bytes)
{
    if (!p)
        return;
    size_t size = page_round(bytes);
    slot evicted[CACHE_SLOTS];
    size_t nevicted = 0;
    bool kept = false;
    pthread_mutex_lock(&lock);
    size_t max = cache_limit();
    if (size <= max) {
        while (ncached && (ncached == CACHE_SLOTS || cached_bytes + size > max)) {
            evicted[nevicted++] = cache[0];
            cached_bytes -= cache[0].size;
            memmove(&cache[0], &cache[1], (ncached - 1) * sizeof(slot));
            ncached--;
        }
        cache[ncached++] = (slot){ p, size };
        cached_bytes += size;
        kept = true;
    }
    pthread_mutex_unlock(&lock);
    for (size_t i = 0; i < nevicted; i++)
        munmap(evicted[i].p, evicted[i].size);
    if (!kept)
        munmap(p, size);
}
