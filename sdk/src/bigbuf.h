/* Memory for large arrays, with a cache of freed mappings (not installed; the two functions
 * the worker and its shm.c call are exported from libtern like value_internal.h's). */
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

/* From now on, new buffers in this process are shared mappings of their own memfd (up to a
 * budget of descriptors; anonymous past it), which terni_bigbuf_lend can show to another
 * process without a copy. For the worker; a client's arrays stay anonymous, so that a program
 * with many large arrays does not spend its file descriptors on them. Thread-safe. */
__attribute__((visibility("default"))) void terni_bigbuf_use_memfd(void);

/* If p (bytes long) is a memfd-backed buffer from terni_bigbuf_alloc: seals its memfd against
 * shrinking and growing (once) and returns a new descriptor of it (O_CLOEXEC; the caller
 * closes it), through which another process may map and read it. The buffer stays writable
 * and is cached again when freed: the caller must keep its contents unchanged, and the
 * buffer allocated, for as long as a reader may read it (or map it: terni_bigbuf_forsake). -1 if p
 * is not such a buffer (anonymous, borrowed, from malloc) or a step failed: the caller copies
 * instead. Thread-safe. */
__attribute__((visibility("default"))) int terni_bigbuf_lend(const void *p, size_t bytes);

/* Marks the memfd-backed buffer at p (live, from terni_bigbuf_alloc; anything else is ignored)
 * as forsaken: a reader on this host may map it for as long as it likes and can no longer say
 * when it is done. It is then never cached again (terni_bigbuf_free unmaps and closes it), and
 * terni_bigbuf_forsaken tells writers to keep off. Thread-safe. */
__attribute__((visibility("default"))) void terni_bigbuf_forsake(const void *p);

/* True if the buffer at p was forsaken (terni_bigbuf_forsake) and is still allocated. */
bool terni_bigbuf_forsaken(const void *p);

/* Gives back p from terni_bigbuf_alloc(bytes): cached for reuse while the cache holds less
 * than its limit (TERN_ARRAY_CACHE_MB, default 256) and p was not forsaken, else unmapped. */
void terni_bigbuf_free(void *p, size_t bytes);

#endif
