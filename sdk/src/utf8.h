/* UTF-8 for texts built from untrusted bytes (internal): task messages, keys, plugin names and
 * versions. Every text value on the wire must be valid UTF-8 (the decoder refuses anything
 * else), so a text made from such bytes goes through terni_utf8_copy or terni_utf8_fmt before
 * it becomes a value: a message is then never lost for a bad byte or for a cut inside a
 * character. Exported from libtern for the runtime's own modules; not in the public SDK. */
#ifndef TERNI_UTF8_H
#define TERNI_UTF8_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Copies src[0..len) into dst[cap] as valid UTF-8: each invalid byte or
 * truncated/overlong/surrogate sequence becomes U+FFFD; the copy is cut at a character boundary so
 * that it fits in cap-1 bytes; always NUL-terminates (cap >= 1). Returns the bytes written, not
 * counting the NUL.
 *
 * Replacement follows Unicode's "maximal subpart" practice (as the WHATWG decoder does): a
 * lead byte followed by some but not all of its continuation bytes is one U+FFFD; a byte that
 * cannot start a character here (a stray continuation byte, C0, C1, F5..FF, or a lead whose
 * next byte would make an overlong, a surrogate or a code point above U+10FFFF) is one U+FFFD
 * each. A NUL in src ends the copy (dst is a C string). dst and src must not overlap. */
__attribute__((visibility("default"))) size_t terni_utf8_copy(char *dst, size_t cap,
                                                              const char *src, size_t len);

/* vsnprintf into dst[cap], then made valid UTF-8 and cut at a character boundary as terni_utf8_copy
 * does. */
__attribute__((visibility("default"))) size_t terni_utf8_fmt(char *dst, size_t cap, const char *fmt,
                                                             ...)
    __attribute__((format(printf, 3, 4)));

/* terni_utf8_fmt with a va_list (for functions that take a format of their own). */
__attribute__((visibility("default"))) size_t terni_utf8_vfmt(char *dst, size_t cap,
                                                              const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Whether s[0..len) is valid UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
__attribute__((visibility("default"))) bool terni_utf8_valid(const char *s, size_t len);

#endif
