/* tern — CBOR encoding and decoding of values (RFC 8949, RFC 8746 typed arrays).
 *
 * Mapping (docs/architecture.md has the full table):
 *   null, bool, int64, double        CBOR simple values, integers, floats
 *   text, bytes                      major types 3 and 2 (definite length)
 *   list, map                        major types 4 and 5 (map keys: text only)
 *   1-D float64 array                tag 86 (float64 little-endian) around a byte string
 *   1-D int64 array                  tag 79 (sint64 little-endian) around a byte string
 *   n-D array (ndim != 1)            tag 40 [[dim, ...], tag 86/79 byte string] (row-major)
 *   key reference                    tag TERN_CBOR_TAG_KEYREF around a text string
 *
 * Encoding is deterministic (RFC 8949 §4.2.1): shortest integer and length heads, no
 * indefinite lengths, map keys in bytewise order of their encoding, floats in the shortest
 * of half/single/double that keeps the value exactly. Equal values give equal bytes.
 *
 * Decoding accepts any definite-length CBOR that maps to a tern value (map keys in any order,
 * floats of any width, non-shortest heads) and rejects everything else with an error code
 * and a message naming the offset and the reason: truncated input, malformed heads,
 * indefinite lengths, unknown tags, non-text map keys, duplicate keys, invalid UTF-8,
 * integers outside int64, nesting deeper than TERN_MAX_DEPTH, lengths beyond the input.
 * It never reads outside [buf, buf + len) and never trusts a claimed length: memory grows
 * only with items actually present. Each decoded item costs about 100 bytes, so the item
 * count is capped too (tern_decode_opts.max_items), bounding a hostile input of many tiny
 * items.
 */
#ifndef TERN_CODEC_H
#define TERN_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <tern/value.h>

#ifdef __cplusplus
extern "C" {
#endif

/* RFC 8746 tags used by tern. */
#define TERN_CBOR_TAG_NDARRAY 40 /* multi-dimensional array, row-major */
#define TERN_CBOR_TAG_I64LE   79 /* sint64, little endian, typed array */
#define TERN_CBOR_TAG_F64LE   86 /* binary64, little endian, typed array */
/* tern's own tag for a key reference: the ASCII bytes "tern" as a 32-bit number, in IANA's
 * first-come-first-served range and not registered to anyone else. Its content is the key as
 * a text string. */
#define TERN_CBOR_TAG_KEYREF 0x7465726EULL

/* Bytes tern_encode_into() needs for v; 0 if v is NULL or nests deeper than TERN_MAX_DEPTH. */
TERN_API size_t tern_encoded_size(const tern_value *v);

/* Encodes v into buf (cap bytes); *written gets the length. Array data is copied once, with
 * memcpy. Errors: TERN_EINVAL (NULL argument), TERN_ETOOBIG (cap too small; nothing useful
 * is in buf), TERN_ETOODEEP (nesting beyond TERN_MAX_DEPTH). Does not allocate. */
TERN_API int tern_encode_into(const tern_value *v, uint8_t *buf, size_t cap, size_t *written);

/* Encodes v into a new malloc'd buffer of exactly the encoded size; the caller frees *buf
 * with free(). Errors as tern_encode_into, plus TERN_ENOMEM. On error *buf is NULL. */
TERN_API int tern_encode(const tern_value *v, uint8_t **buf, size_t *len);

/* Decoding limits; zero fields take the defaults. */
typedef struct tern_decode_opts {
    size_t max_depth; /* default and ceiling TERN_MAX_DEPTH */
    size_t max_len;   /* largest input accepted, bytes; default 1 GiB */
    size_t max_items; /* most items (scalars, containers, keys) accepted; default 1 << 24 */
} tern_decode_opts;

/* Decodes exactly one value filling all of buf[0, len) (trailing bytes are an error). The
 * result copies everything it needs: buf may be freed afterwards. opts may be NULL.
 * On error *out is NULL and, if errbuf is not NULL, a NUL-terminated message of at most
 * errlen bytes says what is wrong and at which offset. */
TERN_API int tern_decode(const void *buf, size_t len, const tern_decode_opts *opts,
                         tern_value **out, char *errbuf, size_t errlen);

/* Like tern_decode, but numeric arrays whose bytes in buf are aligned for their element
 * type borrow them instead of copying (unaligned ones are copied into aligned memory).
 * `release(arg)` is called exactly once, when no decoded value uses buf any more: possibly
 * before this call returns (nothing borrowed, or an error), possibly much later from
 * whichever thread drops the last borrowing array. The caller must keep buf unchanged and
 * alive until then. release may be NULL when buf outlives every decoded value. */
TERN_API int tern_decode_borrow(const void *buf, size_t len, const tern_decode_opts *opts,
                                void (*release)(void *arg), void *arg, tern_value **out,
                                char *errbuf, size_t errlen);

/* True if v's array data is borrowed from a decode buffer, or from a shared-memory mapping of
 * an array fetched from a process on the same host (for tests and diagnostics). */
TERN_API bool tern_value_is_borrowed(const tern_value *v);

#ifdef __cplusplus
}
#endif
#endif
