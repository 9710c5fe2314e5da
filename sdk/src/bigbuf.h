/* Memory for large arrays, with a cache of freed mappings (not installed). */
#ifndef TERNI_BIGBUF_H
#define TERNI_BIGBUF_H

#include <stdbool.h>
#include <stddef.h>

/* Arrays of at least this many bytes are allocated here. Not under AddressSanitizer, which
 * cannot see overruns inside a mapping: there every array stays on its heap. */
#if defined(__SANITIZE_ADDRESS__)
#define TERNI_BIGBUF_MIN ((size_t)-1)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TERNI_BIGBUF_MIN ((size_t)-1)
#endif
#endif
#ifndef TERNI_BIGBUF_MIN
#define TERNI_BIGBUF_MIN ((size_t)1 << 20)
#endif

/* True if an array of `bytes` is allocated here: at least TERNI_BIGBUF_MIN and the cache is
 * on (TERN_ARRAY_CACHE_MB, read once, is not 0). The answer never changes for a size, so the
 * free path asks again to know which allocator to give the memory back to. */
bool terni_bigbuf_wants(size_t bytes);

/* Page-aligned memory for `bytes` (terni_bigbuf_wants(bytes)), uninitialised: a cached mapping of
 * the same page-rounded size when there is one, else a new anonymous mapping. NULL if out of
 * memory. Thread-safe. */
void *terni_bigbuf_alloc(size_t bytes);

/* Gives back p from terni_bigbuf_alloc(bytes): cached for reuse while the cache holds less
 * than its limit (TERN_ARRAY_CACHE_MB, default 256), else unmapped. */
void terni_bigbuf_free(void *p, size_t bytes);

#endif
