/* tern — values: what task arguments and results are made of.
 *
 * A tern_value is one of: null, bool, int (int64), double, text (UTF-8), bytes, list, map
 * (text keys, kept sorted), float64 array, int64 array (1-D or shaped n-D, row-major), and
 * key reference (how a future appears inside arguments).
 *
 * Ownership: values are reference counted (thread-safe counts).
 *  - Every constructor returns a new value holding one reference, or NULL when it fails
 *    (out of memory, or invalid input such as text that is not UTF-8).
 *  - tern_value_ref() adds a reference; tern_value_unref() drops one and frees the value
 *    when none remain. Both accept NULL.
 *  - Functions that put a value into a container STEAL the caller's reference to it, also
 *    when they fail (so `tern_list_append(l, tern_int(1))` never leaks). A NULL item makes
 *    them fail with TERN_EINVAL (or TERN_ENOMEM where NULL came from a failed constructor
 *    further in), which lets a whole expression be checked once at the end.
 *  - Accessors return borrowed pointers, valid while the caller holds its reference.
 *  - A value with more than one reference is shared and frozen: calls that modify a list or
 *    map return TERN_ESHARED. Values are never modified behind a reader's back.
 *
 * Errors: accessors return TERN_ETYPE for a value of another type, TERN_ERANGE for an index
 * out of range, TERN_EINVAL for a NULL value or output pointer; they never crash on a wrong
 * type. Nothing here blocks.
 */
#ifndef TERN_VALUE_H
#define TERN_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tern/error.h>
#include <tern/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_value tern_value;

typedef enum tern_type {
    TERN_T_NULL = 0,
    TERN_T_BOOL = 1,
    TERN_T_INT = 2,
    TERN_T_DOUBLE = 3,
    TERN_T_TEXT = 4,
    TERN_T_BYTES = 5,
    TERN_T_LIST = 6,
    TERN_T_MAP = 7,
    TERN_T_F64_ARRAY = 8,
    TERN_T_I64_ARRAY = 9,
    TERN_T_KEYREF = 10,
} tern_type;

/* Most dimensions an array may have. */
#define TERN_MAX_DIMS 8
/* Deepest nesting of lists, maps and shaped arrays that encoding and decoding accept. */
#define TERN_MAX_DEPTH 64

/* The type's name ("null", "f64 array", ...): static, never NULL. */
TERN_API const char *tern_type_name(tern_type type);

/* ---- reference counting ------------------------------------------------------------ */

/* Adds a reference to v and returns v (NULL gives NULL). */
TERN_API tern_value *tern_value_ref(tern_value *v);
/* Drops a reference; the last one frees v and the references it holds. NULL is ignored. */
TERN_API void tern_value_unref(tern_value *v);
/* The value's type; TERN_T_NULL for a NULL pointer. */
TERN_API tern_type tern_value_type(const tern_value *v);

/* ---- scalars ----------------------------------------------------------------------- */

/* Constructors. Each returns a new value (one reference) or NULL if out of memory. */
TERN_API tern_value *tern_null(void);
TERN_API tern_value *tern_bool(bool b);
TERN_API tern_value *tern_int(int64_t i);
TERN_API tern_value *tern_double(double d);
/* Copies the NUL-terminated UTF-8 string s. NULL if s is NULL or not valid UTF-8. */
TERN_API tern_value *tern_text(const char *s);
/* Copies len bytes of UTF-8 (which may contain NUL). NULL if not valid UTF-8. */
TERN_API tern_value *tern_text_n(const char *s, size_t len);
/* Copies len bytes (data may be NULL when len is 0). */
TERN_API tern_value *tern_bytes(const void *data, size_t len);
/* A reference to the result stored under `key` (a task key, see <tern/tern.h>). The key is
 * copied; it must be non-empty UTF-8 text. */
TERN_API tern_value *tern_keyref(const char *key);

/* Accessors. On success they write *out and return TERN_OK; otherwise *out is untouched. */
TERN_API int tern_value_get_bool(const tern_value *v, bool *out);
TERN_API int tern_value_get_int(const tern_value *v, int64_t *out);
/* Strictly a double; see tern_value_get_number for int-or-double. */
TERN_API int tern_value_get_double(const tern_value *v, double *out);
/* A double, or an int converted to double. */
TERN_API int tern_value_get_number(const tern_value *v, double *out);
/* Text: *s is NUL-terminated (and may hold NUL bytes before len); len may be NULL. */
TERN_API int tern_value_get_text(const tern_value *v, const char **s, size_t *len);
TERN_API int tern_value_get_bytes(const tern_value *v, const void **data, size_t *len);
/* The key a key reference names (NUL-terminated). */
TERN_API int tern_value_get_keyref(const tern_value *v, const char **key);

/* ---- lists ------------------------------------------------------------------------- */

/* An empty list with room for `capacity` items (0 is fine). */
TERN_API tern_value *tern_list_new(size_t capacity);
/* A list of n items, stealing a reference to each. If any item is NULL or memory runs out,
 * all items are released and NULL is returned. See tern_list_of for the usual spelling. */
TERN_API tern_value *tern_list_from(tern_value *const *items, size_t n);
/* `tern_list_of(tern_int(1), tern_text("x"))`: a list of the given items (references stolen). */
#define tern_list_of(...)                                                                          \
    tern_list_from((tern_value *[]){ __VA_ARGS__ },                                                \
                   sizeof((tern_value *[]){ __VA_ARGS__ }) / sizeof(tern_value *))
/* Appends item (reference stolen, also on failure). TERN_ESHARED if list is shared. */
TERN_API int tern_list_append(tern_value *list, tern_value *item);
/* Number of items; 0 for a value that is not a list. */
TERN_API size_t tern_list_len(const tern_value *list);
/* Borrowed item i. */
TERN_API int tern_list_get(const tern_value *list, size_t i, const tern_value **item);

/* ---- maps -------------------------------------------------------------------------- */

/* An empty map. Keys are UTF-8 text, unique, kept in CBOR deterministic order (shorter keys
 * first, then bytewise), so iteration order is the encoding order. */
TERN_API tern_value *tern_map_new(void);
/* Sets key (copied; NUL-terminated UTF-8) to val (reference stolen, also on failure),
 * replacing an existing entry. TERN_ESHARED if the map is shared. */
TERN_API int tern_map_set(tern_value *map, const char *key, tern_value *val);
/* Same with an explicit key length. */
TERN_API int tern_map_set_n(tern_value *map, const char *key, size_t key_len, tern_value *val);
/* Borrowed value for key; TERN_ENOTFOUND if absent. */
TERN_API int tern_map_get(const tern_value *map, const char *key, const tern_value **val);
/* Number of entries; 0 for a value that is not a map. */
TERN_API size_t tern_map_len(const tern_value *map);
/* Entry i in key order: borrowed key (NUL-terminated) and value; either out may be NULL. */
TERN_API int tern_map_entry(const tern_value *map, size_t i, const char **key,
                            const tern_value **val);

/* ---- numeric arrays ---------------------------------------------------------------- */

/* A 1-D float64 array of n elements copied from data (NULL data gives zeros). The data of
 * every array this library allocates is 64-byte aligned. NULL if out of memory or if
 * n * 8 overflows. */
TERN_API tern_value *tern_f64_array(const double *data, size_t n);
TERN_API tern_value *tern_i64_array(const int64_t *data, size_t n);
/* An uninitialised 1-D array of n elements; *data receives the writable element pointer.
 * This is how a task builds its result without an extra copy. The caller must fill the
 * data before sharing the value. */
TERN_API tern_value *tern_f64_array_new(size_t n, double **data);
TERN_API tern_value *tern_i64_array_new(size_t n, int64_t **data);
/* Shaped (n-D, row-major) arrays: ndim in 1..TERN_MAX_DIMS, element count = product of
 * shape (0 allowed). data may be NULL for zeros (copying forms) and receives the writable
 * pointer (new forms). NULL on bad ndim, overflow or out of memory. */
TERN_API tern_value *tern_f64_array_shaped(size_t ndim, const size_t *shape, const double *data);
TERN_API tern_value *tern_i64_array_shaped(size_t ndim, const size_t *shape, const int64_t *data);
TERN_API tern_value *tern_f64_array_new_shaped(size_t ndim, const size_t *shape, double **data);
TERN_API tern_value *tern_i64_array_new_shaped(size_t ndim, const size_t *shape, int64_t **data);

/* Element data and total element count (product of the shape). The pointer is aligned for
 * the element type (decoded arrays are copied when their bytes are not aligned). */
TERN_API int tern_value_get_f64_array(const tern_value *v, const double **data, size_t *n);
TERN_API int tern_value_get_i64_array(const tern_value *v, const int64_t **data, size_t *n);
/* Writable data of an array the caller owns alone (TERN_ESHARED otherwise). */
TERN_API int tern_value_f64_data_mut(tern_value *v, double **data, size_t *n);
/* Shape of either array type: *ndim dimensions, *shape borrowed (ndim entries). */
TERN_API int tern_array_shape(const tern_value *v, size_t *ndim, const size_t **shape);
/* Total elements of either array type; 0 for other types. */
TERN_API size_t tern_array_len(const tern_value *v);

/* ---- comparison and printing ------------------------------------------------------- */

/* Deep equality: same type, same contents. Doubles compare by bit pattern, except that all
 * NaNs are equal (0.0 differs from -0.0), matching the canonical encoding: equal values encode
 * to equal bytes. Arrays compare shape and elements bit by bit. Two NULLs are equal. */
TERN_API bool tern_value_equal(const tern_value *a, const tern_value *b);

/* Printing flags. */
#define TERN_PRINT_FULL   1u /* print every array element (default: the first 8) */
#define TERN_PRINT_PRETTY 2u /* newlines and two-space indentation */

/* A JSON-like rendering for debugging and the CLI, as a malloc'd NUL-terminated string the
 * caller frees with free(). Text is JSON-escaped; bytes print as h'0a1b'; arrays print as
 * f64[2,3]:[1, 2, ...]; key references as ref("key"); non-finite doubles as NaN, Infinity.
 * NULL if out of memory. A NULL value prints as "null". */
TERN_API char *tern_value_to_string(const tern_value *v, unsigned flags);

#ifdef __cplusplus
}
#endif
#endif
