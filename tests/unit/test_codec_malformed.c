/* Decoder robustness: truncated, malformed, unsupported and hostile input. Every input is
 * copied into a malloc'd buffer of exactly its length, so the sanitizer build catches any read
 * past the end. Each input is decoded with tern_decode and tern_decode_borrow, which must agree
 * and must release the buffer exactly once. */
#include <criterion/criterion.h>

#include <tern/codec.h>
#include <tern/error.h>
#include <tern/value.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "leakcheck.h"

static void count_release(void *arg)
{
    ++*(int *)arg;
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = hex; *p; p++) {
        int v;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            v = *p - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            cr_assert_lt(n, cap, "hex literal too long");
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    cr_assert_eq(hi, -1, "odd number of hex digits in \"%s\"", hex);
    return n;
}

/* Decodes in[0, n) both ways from an exact-size copy; returns the code. On success the
 * decoded value must re-encode and decode to an equal value. */
static int dec_opts(const uint8_t *in, size_t n, const tern_decode_opts *opts, char *err,
                    size_t errlen)
{
    uint8_t *copy = malloc(n ? n : 1);
    cr_assert_not_null(copy);
    if (n)
        memcpy(copy, in, n);
    tern_value *v = (tern_value *)0x1;
    int rc = tern_decode(copy, n, opts, &v, err, errlen);
    if (rc == TERN_OK)
        cr_assert_not_null(v);
    else
        cr_assert_null(v, "*out must be NULL on error");

    int released = 0;
    tern_value *w = (tern_value *)0x1;
    int rc2 = tern_decode_borrow(copy, n, opts, count_release, &released, &w, NULL, 0);
    cr_assert_eq(rc2, rc, "tern_decode gave %s, tern_decode_borrow %s", tern_strerror_name(rc),
                 tern_strerror_name(rc2));
    if (rc == TERN_OK) {
        cr_assert(tern_value_equal(v, w));
        tern_value_unref(w);
        uint8_t *enc;
        size_t len;
        cr_assert_eq(tern_encode(v, &enc, &len), TERN_OK);
        tern_value *again = NULL;
        cr_assert_eq(tern_decode(enc, len, NULL, &again, NULL, 0), TERN_OK);
        cr_assert(tern_value_equal(v, again));
        tern_value_unref(again);
        free(enc);
    } else {
        cr_assert_null(w);
    }
    cr_assert_eq(released, 1, "release ran %d times", released);
    tern_value_unref(v);
    free(copy);
    return rc;
}

static int dec(const uint8_t *in, size_t n)
{
    return dec_opts(in, n, NULL, NULL, 0);
}

static int dec_hex(const char *hex)
{
    uint8_t buf[1024];
    return dec(buf, unhex(hex, buf, sizeof(buf)));
}

#define EXPECT_RC(hex, code)                                                                       \
    do {                                                                                           \
        int rc_ = dec_hex(hex);                                                                    \
        cr_expect_eq(rc_, (code), "%s: got %s, expected %s", (hex), tern_strerror_name(rc_),       \
                     tern_strerror_name(code));                                                    \
    } while (0)

#define F64_ONE "000000000000f03f" /* 1.0, little endian */

/* ---- truncation ------------------------------------------------------------------------ */

static void check_all_prefixes(const uint8_t *enc, size_t n, const char *what)
{
    cr_assert_eq(dec(enc, n), TERN_OK, "%s: the full encoding must decode", what);
    for (size_t k = 0; k < n; k++) {
        int rc = dec(enc, k);
        cr_expect_eq(rc, TERN_ETRUNCATED, "%s: prefix of %zu/%zu bytes gave %s", what, k, n,
                     tern_strerror_name(rc));
    }
}

static void check_all_prefixes_of(tern_value *v, const char *what)
{
    uint8_t *enc;
    size_t n;
    cr_assert_not_null(v);
    cr_assert_eq(tern_encode(v, &enc, &n), TERN_OK);
    check_all_prefixes(enc, n, what);
    free(enc);
    tern_value_unref(v);
}

LTest(truncated, every_prefix_of_nested_values)
{
    size_t s22[2] = { 2, 2 };
    int64_t i4[4] = { 1, -2, 3, INT64_MIN };
    double d3[3] = { 1.5, 1.1, -0.0 };
    tern_value *m = tern_map_new();
    cr_assert_eq(tern_map_set(m, "a", tern_list_of(tern_int(1), tern_int(70000), tern_map_new())),
                 TERN_OK);
    cr_assert_eq(tern_map_set(m, "bb", tern_bytes("\x01\x02\x03", 3)), TERN_OK);
    tern_value *inner = tern_map_new();
    cr_assert_eq(tern_map_set(inner, "deep", tern_list_of(tern_null(), tern_bool(false))), TERN_OK);
    cr_assert_eq(tern_map_set(m, "ccc", inner), TERN_OK);
    check_all_prefixes_of(tern_list_of(tern_int(1000), tern_text("h\xc3\xa9llo"), m,
                                       tern_f64_array(d3, 3), tern_i64_array_shaped(2, s22, i4),
                                       tern_keyref("task/1"), tern_double(1.1), tern_bool(true),
                                       tern_int(INT64_MIN), tern_list_new(0)),
                          "composite");
}

LTest(truncated, every_prefix_of_each_kind)
{
    size_t s23[2] = { 2, 3 };
    size_t s8[8] = { 1, 1, 1, 1, 1, 1, 1, 1 };
    check_all_prefixes_of(tern_int(INT64_MAX), "uint64");
    check_all_prefixes_of(tern_int(-70000), "negint32");
    check_all_prefixes_of(tern_double(1.1), "double");
    check_all_prefixes_of(tern_double(100000.0), "single");
    check_all_prefixes_of(tern_double(1.5), "half");
    check_all_prefixes_of(tern_text("a string of some length, longer than 24"), "text");
    check_all_prefixes_of(tern_bytes("0123456789012345678901234567890123456789", 40), "bytes");
    check_all_prefixes_of(tern_keyref("k/1"), "keyref");
    check_all_prefixes_of(tern_f64_array(NULL, 4), "f64 array");
    check_all_prefixes_of(tern_i64_array(NULL, 40), "i64 array, 1-byte length");
    check_all_prefixes_of(tern_f64_array_shaped(2, s23, NULL), "shaped f64");
    check_all_prefixes_of(tern_i64_array_shaped(8, s8, NULL), "shaped 8 dims");
    check_all_prefixes_of(tern_list_of(tern_list_of(tern_list_of(tern_int(1)))), "nested lists");
    tern_value *m = tern_map_new();
    cr_assert_eq(tern_map_set(m, "key", tern_map_new()), TERN_OK);
    cr_assert_eq(tern_map_set(m, "k", tern_text("v")), TERN_OK);
    check_all_prefixes_of(m, "map");
    /* non-canonical but valid input too */
    uint8_t nc[64];
    size_t n = unhex("a2 626161 1b0000000000000002 6162 fb3ff8000000000000", nc, sizeof(nc));
    check_all_prefixes(nc, n, "non-canonical map");
    n = unhex("d828 82 82 1801 02 d84f 5810" F64_ONE F64_ONE, nc, sizeof(nc));
    check_all_prefixes(nc, n, "non-canonical shaped");
}

/* ---- trailing data, depth -------------------------------------------------------------- */

LTest(structure, trailing_bytes)
{
    EXPECT_RC("00 00", TERN_EMALFORMED);
    EXPECT_RC("80 00", TERN_EMALFORMED);
    EXPECT_RC("a0 a0", TERN_EMALFORMED);
    EXPECT_RC("f6 ff", TERN_EMALFORMED);
    EXPECT_RC("6161 61", TERN_EMALFORMED);
    EXPECT_RC("81 01 02", TERN_EMALFORMED);
    EXPECT_RC("d856 48" F64_ONE "00", TERN_EMALFORMED);
    EXPECT_RC("01 1b", TERN_EMALFORMED); /* trailing garbage that is itself truncated */
}

static int nested(size_t levels, const char *head_hex, const char *leaf_hex,
                  const tern_decode_opts *opts)
{
    uint8_t head[16], leaf[64];
    size_t hn = unhex(head_hex, head, sizeof(head)), ln = unhex(leaf_hex, leaf, sizeof(leaf));
    size_t n = levels * hn + ln;
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < levels; i++)
        memcpy(buf + i * hn, head, hn);
    memcpy(buf + levels * hn, leaf, ln);
    int rc = dec_opts(buf, n, opts, NULL, 0);
    free(buf);
    return rc;
}

LTest(structure, depth_limit)
{
    cr_expect_eq(nested(100, "81", "00", NULL), TERN_ETOODEEP);
    cr_expect_eq(nested(TERN_MAX_DEPTH, "81", "00", NULL), TERN_OK);
    cr_expect_eq(nested(TERN_MAX_DEPTH + 1, "81", "00", NULL), TERN_ETOODEEP);
    cr_expect_eq(nested(TERN_MAX_DEPTH, "a1 6161", "00", NULL), TERN_OK);
    cr_expect_eq(nested(TERN_MAX_DEPTH + 1, "a1 6161", "00", NULL), TERN_ETOODEEP);
    cr_expect_eq(nested(TERN_MAX_DEPTH, "82 00", "00", NULL), TERN_OK);
    cr_expect_eq(nested(TERN_MAX_DEPTH + 1, "82 00", "00", NULL), TERN_ETOODEEP);
    /* a shaped array takes one level */
    const char *shaped = "d828 82 82 01 01 d856 48" F64_ONE;
    cr_expect_eq(nested(TERN_MAX_DEPTH - 1, "81", shaped, NULL), TERN_OK);
    cr_expect_eq(nested(TERN_MAX_DEPTH, "81", shaped, NULL), TERN_ETOODEEP);
    /* empty containers and 1-D arrays open no level */
    cr_expect_eq(nested(TERN_MAX_DEPTH, "81", "80", NULL), TERN_OK);
    cr_expect_eq(nested(TERN_MAX_DEPTH, "81", "a0", NULL), TERN_OK);
    cr_expect_eq(nested(TERN_MAX_DEPTH, "81", "d856 48" F64_ONE, NULL), TERN_OK);
    /* very deep input fails fast and cleanly */
    cr_expect_eq(nested(100000, "81", "00", NULL), TERN_ETOODEEP);
    cr_expect_eq(nested(100000, "a1 60", "00", NULL), TERN_ETOODEEP);
}

LTest(structure, max_depth_option)
{
    tern_decode_opts o1 = { .max_depth = 1 }, o2 = { .max_depth = 2 }, big = { .max_depth = 1000 },
                     zero = { .max_depth = 0 };
    cr_expect_eq(nested(1, "81", "00", &o1), TERN_OK);
    cr_expect_eq(nested(2, "81", "00", &o1), TERN_ETOODEEP);
    cr_expect_eq(nested(2, "81", "00", &o2), TERN_OK);
    cr_expect_eq(nested(3, "81", "00", &o2), TERN_ETOODEEP);
    cr_expect_eq(nested(1, "81", "d828 82 81 01 d856 48" F64_ONE, &o2), TERN_OK);
    cr_expect_eq(nested(1, "81", "d828 82 81 01 d856 48" F64_ONE, &o1), TERN_ETOODEEP);
    cr_expect_eq(nested(2, "a1 6161", "00", &o1), TERN_ETOODEEP);
    /* TERN_MAX_DEPTH is also the ceiling; 0 means the default */
    cr_expect_eq(nested(TERN_MAX_DEPTH, "81", "00", &big), TERN_OK);
    cr_expect_eq(nested(TERN_MAX_DEPTH + 1, "81", "00", &big), TERN_ETOODEEP);
    cr_expect_eq(nested(TERN_MAX_DEPTH, "81", "00", &zero), TERN_OK);
    cr_expect_eq(nested(TERN_MAX_DEPTH + 1, "81", "00", &zero), TERN_ETOODEEP);
}

LTest(structure, max_len_option)
{
    tern_decode_opts o3 = { .max_len = 3 };
    uint8_t in[4] = { 0x83, 0x01, 0x02, 0x03 };
    uint8_t ok[3] = { 0x82, 0x01, 0x02 };
    char err[128] = "";
    cr_expect_eq(dec_opts(in, 4, &o3, err, sizeof(err)), TERN_ETOOBIG);
    cr_expect(strstr(err, "limit") != NULL, "message: %s", err);
    cr_expect_eq(dec_opts(ok, 3, &o3, NULL, 0), TERN_OK);
    cr_expect_eq(dec_opts(in, 4, NULL, NULL, 0), TERN_OK);
    /* the default limit is 1 GiB; the length is checked before anything is read, so a
     * one-byte buffer with an oversized length is safe to pass here */
    tern_value *v = (tern_value *)0x1;
    cr_expect_eq(tern_decode(ok, ((size_t)1 << 30) + 1, NULL, &v, NULL, 0), TERN_ETOOBIG);
    cr_expect_null(v);
    tern_decode_opts huge = { .max_len = SIZE_MAX };
    cr_expect_eq(dec_opts(ok, 3, &huge, NULL, 0), TERN_OK);
}

LTest(structure, max_items_option)
{
    /* [1, 2, 3] is four items: the list and three ints. */
    uint8_t in[4] = { 0x83, 0x01, 0x02, 0x03 };
    tern_decode_opts three = { .max_items = 3 }, four = { .max_items = 4 };
    char err[128] = "";
    cr_expect_eq(dec_opts(in, 4, &three, err, sizeof(err)), TERN_ETOOBIG);
    cr_expect(strstr(err, "max_items") != NULL, "message: %s", err);
    cr_expect_eq(dec_opts(in, 4, &four, NULL, 0), TERN_OK);
    /* the default cap (1 << 24) stops a list of 17M one-byte ints without decoding them all */
    size_t n = ((size_t)1 << 24) + 1;
    uint8_t *big = calloc(n + 5, 1);
    big[0] = 0x9a; /* list, 4-byte length */
    big[1] = (uint8_t)(n >> 24), big[2] = (uint8_t)(n >> 16), big[3] = (uint8_t)(n >> 8);
    big[4] = (uint8_t)n;
    cr_expect_eq(dec_opts(big, n + 5, NULL, NULL, 0), TERN_ETOOBIG);
    free(big);
}

/* ---- unsupported CBOR ------------------------------------------------------------------ */

LTest(unsupported, indefinite_lengths)
{
    EXPECT_RC("9f ff", TERN_EUNSUPPORTED);
    EXPECT_RC("9f 01 02 ff", TERN_EUNSUPPORTED);
    EXPECT_RC("bf ff", TERN_EUNSUPPORTED);
    EXPECT_RC("bf 6161 01 ff", TERN_EUNSUPPORTED);
    EXPECT_RC("5f ff", TERN_EUNSUPPORTED);
    EXPECT_RC("5f 4100 ff", TERN_EUNSUPPORTED);
    EXPECT_RC("7f ff", TERN_EUNSUPPORTED);
    EXPECT_RC("7f 6161 ff", TERN_EUNSUPPORTED);
    EXPECT_RC("81 9f ff", TERN_EUNSUPPORTED);
    EXPECT_RC("a1 6161 bf ff", TERN_EUNSUPPORTED);
    EXPECT_RC("a1 7f ff 01", TERN_EUNSUPPORTED);
    EXPECT_RC("d856 5f ff", TERN_EUNSUPPORTED);
    EXPECT_RC("9f", TERN_EUNSUPPORTED);
}

LTest(unsupported, unknown_tags)
{
    EXPECT_RC("c0 74 323031332d30332d32315432303a30343a30305a", TERN_EUNSUPPORTED); /* tag 0 */
    EXPECT_RC("c1 1a514b67b0", TERN_EUNSUPPORTED);                                  /* tag 1 */
    EXPECT_RC("c2 49 010000000000000000", TERN_EUNSUPPORTED);                       /* bignum */
    EXPECT_RC("d7 44 01020304", TERN_EUNSUPPORTED);
    EXPECT_RC("d818 45 6449455446", TERN_EUNSUPPORTED); /* embedded CBOR */
    EXPECT_RC("d857 48" F64_ONE, TERN_EUNSUPPORTED);    /* tag 87 */
    EXPECT_RC("d855 48" F64_ONE, TERN_EUNSUPPORTED);    /* tag 85 (f64 big endian) */
    EXPECT_RC("d84e 48" F64_ONE, TERN_EUNSUPPORTED);    /* tag 78 */
    EXPECT_RC("d9d9f7 00", TERN_EUNSUPPORTED);          /* self-described CBOR */
    EXPECT_RC("da7465726f 616b", TERN_EUNSUPPORTED);    /* keyref tag + 1 */
    EXPECT_RC("db ffffffffffffffff 00", TERN_EUNSUPPORTED);
    EXPECT_RC("81 c1 00", TERN_EUNSUPPORTED);
    EXPECT_RC("a1 6161 c1 00", TERN_EUNSUPPORTED);
    /* nested tags, even known ones */
    EXPECT_RC("d856 d856 48" F64_ONE, TERN_EUNSUPPORTED);
    EXPECT_RC("da7465726e da7465726e 616b", TERN_EUNSUPPORTED);
    EXPECT_RC("d828 d828 82 81 01 d856 48" F64_ONE, TERN_EUNSUPPORTED);
}

LTest(unsupported, simple_values)
{
    EXPECT_RC("f7", TERN_EUNSUPPORTED); /* undefined */
    EXPECT_RC("81 f7", TERN_EUNSUPPORTED);
    EXPECT_RC("a1 6161 f7", TERN_EUNSUPPORTED);
    EXPECT_RC("ff", TERN_EMALFORMED); /* break outside an indefinite item */
    EXPECT_RC("81 ff", TERN_EMALFORMED);
    EXPECT_RC("a1 ff", TERN_EMALFORMED);
    EXPECT_RC("82 01 ff", TERN_EMALFORMED);
    /* unassigned / reserved simple values */
    const char *other[] = { "e0", "f0", "f3", "f8 20", "f8 ff", "f8 00", "fc", "fd", "fe" };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        int rc = dec_hex(other[i]);
        cr_expect_neq(rc, TERN_OK, "%s accepted", other[i]);
    }
}

LTest(unsupported, reserved_additional_info)
{
    static const uint8_t majors[] = { 0x00, 0x20, 0x40, 0x60, 0x80, 0xa0, 0xc0 };
    for (size_t m = 0; m < sizeof(majors); m++) {
        for (uint8_t ai = 28; ai <= 30; ai++) {
            uint8_t in[10] = { (uint8_t)(majors[m] | ai), 0, 0, 0, 0, 0, 0, 0, 0, 0 };
            int rc = dec(in, sizeof(in));
            cr_expect_eq(rc, TERN_EMALFORMED, "head 0x%02x gave %s", in[0], tern_strerror_name(rc));
        }
    }
    /* additional info 31 on integers and tags is not indefinite length: malformed */
    EXPECT_RC("1f", TERN_EMALFORMED);
    EXPECT_RC("3f", TERN_EMALFORMED);
    EXPECT_RC("df 00", TERN_EMALFORMED);
}

/* ---- typed arrays and tag 40 ----------------------------------------------------------- */

LTest(tags, typed_array_content)
{
    EXPECT_RC("d856 01", TERN_EMALFORMED);
    EXPECT_RC("d856 20", TERN_EMALFORMED);
    EXPECT_RC("d856 616b", TERN_EMALFORMED);
    EXPECT_RC("d856 80", TERN_EMALFORMED);
    EXPECT_RC("d856 a0", TERN_EMALFORMED);
    EXPECT_RC("d856 f6", TERN_EMALFORMED);
    EXPECT_RC("d856 f5", TERN_EMALFORMED);
    EXPECT_RC("d856 f93c00", TERN_EMALFORMED);
    EXPECT_RC("d84f 01", TERN_EMALFORMED);
    EXPECT_RC("d84f 81 01", TERN_EMALFORMED);
    /* length not a multiple of 8 */
    EXPECT_RC("d856 41 00", TERN_EMALFORMED);
    EXPECT_RC("d856 43 010203", TERN_EMALFORMED);
    EXPECT_RC("d856 47 00000000000000", TERN_EMALFORMED);
    EXPECT_RC("d856 49 000000000000000000", TERN_EMALFORMED);
    EXPECT_RC("d84f 4f 000000000000000000000000000000", TERN_EMALFORMED);
    /* a tag on a map key */
    EXPECT_RC("a1 d856 40 01", TERN_EMALFORMED);
    /* controls: well-formed */
    EXPECT_RC("d856 40", TERN_OK);
    EXPECT_RC("d84f 48 0100000000000000", TERN_OK);
    EXPECT_RC("d856 5810" F64_ONE F64_ONE, TERN_OK);
}

LTest(tags, keyref_content)
{
    EXPECT_RC("da7465726e 60", TERN_EMALFORMED);      /* empty key */
    EXPECT_RC("da7465726e 62 6b00", TERN_EMALFORMED); /* NUL inside */
    EXPECT_RC("da7465726e 41 6b", TERN_EMALFORMED);   /* bytes */
    EXPECT_RC("da7465726e 01", TERN_EMALFORMED);
    EXPECT_RC("da7465726e 81 616b", TERN_EMALFORMED);
    EXPECT_RC("da7465726e 62 c080", TERN_EMALFORMED); /* invalid UTF-8 */
    EXPECT_RC("a1 da7465726e 616b 01", TERN_EMALFORMED);
    EXPECT_RC("da7465726e 616b", TERN_OK);
}

LTest(tags, ndarray_structure)
{
    const char *data1 = "d856 48" F64_ONE;
    char in[256];
#define ND(fmt) (snprintf(in, sizeof(in), fmt, data1), in)
    EXPECT_RC("d828 01", TERN_EMALFORMED);                   /* not a list */
    EXPECT_RC("d828 6161", TERN_EMALFORMED);                 /* text */
    EXPECT_RC("d828 a0", TERN_EMALFORMED);                   /* map */
    EXPECT_RC("d828 80", TERN_EMALFORMED);                   /* 0 items */
    EXPECT_RC(ND("d828 81 %s"), TERN_EMALFORMED);            /* 1 item */
    EXPECT_RC(ND("d828 83 81 01 %s 00"), TERN_EMALFORMED);   /* 3 items */
    EXPECT_RC(ND("d828 82 01 %s"), TERN_EMALFORMED);         /* dims not a list */
    EXPECT_RC(ND("d828 82 %s 81 01"), TERN_EMALFORMED);      /* data first */
    EXPECT_RC(ND("d828 82 a0 %s"), TERN_EMALFORMED);         /* dims a map */
    EXPECT_RC(ND("d828 82 81 20 %s"), TERN_EMALFORMED);      /* negative dim */
    EXPECT_RC(ND("d828 82 81 6161 %s"), TERN_EMALFORMED);    /* text dim */
    EXPECT_RC(ND("d828 82 81 f93c00 %s"), TERN_EMALFORMED);  /* float dim */
    EXPECT_RC(ND("d828 82 81 f6 %s"), TERN_EMALFORMED);      /* null dim */
    EXPECT_RC(ND("d828 82 81 81 01 %s"), TERN_EMALFORMED);   /* list dim */
    EXPECT_RC(ND("d828 82 81 d856 40 %s"), TERN_EMALFORMED); /* tagged dim */
    EXPECT_RC(ND("d828 82 82 01 20 %s"), TERN_EMALFORMED);   /* second dim negative */
    /* number of dimensions: 1..8 */
    EXPECT_RC(ND("d828 82 80 %s"), TERN_EMALFORMED);
    EXPECT_RC(ND("d828 82 89 010101010101010101 %s"), TERN_ETOOBIG);
    EXPECT_RC(ND("d828 82 88 0101010101010101 %s"), TERN_OK);
    EXPECT_RC(ND("d828 82 81 01 %s"), TERN_OK);
    /* element count must match the shape */
    EXPECT_RC("d828 82 82 02 02 d856 5818" F64_ONE F64_ONE F64_ONE, TERN_EMALFORMED);
    EXPECT_RC("d828 82 82 02 02 d856 40", TERN_EMALFORMED);
    EXPECT_RC(ND("d828 82 81 00 %s"), TERN_EMALFORMED);
    EXPECT_RC(ND("d828 82 81 02 %s"), TERN_EMALFORMED);
    EXPECT_RC("d828 82 82 00 05 d856 40", TERN_OK);
    /* the elements must be a 1-D typed array */
    EXPECT_RC("d828 82 81 01 01", TERN_EUNSUPPORTED);
    EXPECT_RC("d828 82 81 01 81 01", TERN_EUNSUPPORTED);
    EXPECT_RC("d828 82 81 01 48" F64_ONE, TERN_EUNSUPPORTED);
    EXPECT_RC("d828 82 81 01 f93c00", TERN_EUNSUPPORTED);
    EXPECT_RC("d828 82 81 01 a1 6161 01", TERN_EUNSUPPORTED);
    EXPECT_RC(ND("d828 82 81 01 d828 82 82 01 01 %s"), TERN_EUNSUPPORTED);
    EXPECT_RC("d828 82 81 01 616b", TERN_EUNSUPPORTED);
    EXPECT_RC("d828 82 81 01 da7465726e 616b", TERN_EUNSUPPORTED);
    /* dimensions whose product overflows */
    EXPECT_RC("d828 82 82 1bffffffffffffffff 1bffffffffffffffff d856 40", TERN_ETOOBIG);
    EXPECT_RC("d828 82 82 1b0000000100000000 1b0000000100000000 d856 40", TERN_ETOOBIG);
    EXPECT_RC("d828 82 83 1a00100000 1a00100000 1a00200000 d856 40", TERN_ETOOBIG);
    /* tag 40 as a map key */
    EXPECT_RC(ND("a1 d828 82 81 01 %s 01"), TERN_EMALFORMED);
#undef ND
}

/* ---- maps, text, integers -------------------------------------------------------------- */

LTest(maps, non_text_keys)
{
    const char *bad[] = {
        "a1 01 01",         "a1 20 01",
        "a1 41 61 01",      "a1 80 01",
        "a1 a0 01",         "a1 f6 01",
        "a1 f5 01",         "a1 f93c00 01",
        "a1 81 01 01",      "a1 da7465726e 616b 01",
        "a2 6161 01 02 03", "a1 fb3ff8000000000000 01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        EXPECT_RC(bad[i], TERN_EMALFORMED);
}

LTest(maps, duplicate_keys)
{
    EXPECT_RC("a2 6161 01 6161 02", TERN_EMALFORMED);
    EXPECT_RC("a2 60 01 60 02", TERN_EMALFORMED);
    EXPECT_RC("a3 6162 01 6161 02 6162 03", TERN_EMALFORMED); /* not adjacent */
    EXPECT_RC("a3 6163 01 6161 02 6161 03", TERN_EMALFORMED);
    EXPECT_RC("81 a2 6161 01 6161 01", TERN_EMALFORMED);
    EXPECT_RC("a2 780161 01 6161 02", TERN_EMALFORMED); /* same key, different head */
    /* controls */
    EXPECT_RC("a2 6161 01 626161 02", TERN_OK);
    EXPECT_RC("a2 6162 01 6161 02", TERN_OK);
}

LTest(text, invalid_utf8)
{
    EXPECT_RC("62 c080", TERN_EMALFORMED);
    EXPECT_RC("63 eda080", TERN_EMALFORMED);
    EXPECT_RC("64 f4908080", TERN_EMALFORMED);
    EXPECT_RC("61 80", TERN_EMALFORMED);
    EXPECT_RC("61 c3", TERN_EMALFORMED);
    EXPECT_RC("62 61e2", TERN_EMALFORMED);
    EXPECT_RC("61 ff", TERN_EMALFORMED);
    EXPECT_RC("81 61 ff", TERN_EMALFORMED);
    EXPECT_RC("a1 62c080 01", TERN_EMALFORMED);
    EXPECT_RC("a1 6161 62c080", TERN_EMALFORMED);
    /* controls */
    EXPECT_RC("62 c3a9", TERN_OK);
    EXPECT_RC("42 c080", TERN_OK); /* byte strings are not UTF-8 */
    EXPECT_RC("63 610062", TERN_OK);
}

LTest(ints, out_of_int64_range)
{
    EXPECT_RC("1b 8000000000000000", TERN_ERANGE);
    EXPECT_RC("1b ffffffffffffffff", TERN_ERANGE);
    EXPECT_RC("3b 8000000000000000", TERN_ERANGE);
    EXPECT_RC("3b ffffffffffffffff", TERN_ERANGE);
    EXPECT_RC("82 01 1b ffffffffffffffff", TERN_ERANGE);
    EXPECT_RC("a1 6161 3b 8000000000000000", TERN_ERANGE);
    EXPECT_RC("1b 7fffffffffffffff", TERN_OK);
    EXPECT_RC("3b 7fffffffffffffff", TERN_OK);
}

/* ---- hostile lengths ------------------------------------------------------------------- */

LTest(hostile, huge_claimed_lengths)
{
    const char *inputs[] = {
        "9b 0000000100000000 010203", /* list of 2^32 items, 3 bytes follow */
        "9a ffffffff 00",
        "9b ffffffffffffffff",
        "9b 7fffffffffffffff 00",
        "bb 0000000100000000 6161 01",
        "bb ffffffffffffffff",
        "ba 80000000 6161 01 6162 02",
        "5b 8000000000000000",
        "5b ffffffffffffffff 00",
        "5b 7ffffffffffffff8 00",
        "7b 8000000000000000 61",
        "7b ffffffffffffffff",
        "d856 5b 8000000000000000",
        "d856 5b fffffffffffffff8 00000000",
        "d84f 5a fffffff8 00",
        "81 9b 0000000100000000 01",
        "a1 7b ffffffffffffffff",
    };
    clock_t start = clock();
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
        EXPECT_RC(inputs[i], TERN_ETRUNCATED);
    double secs = (double)(clock() - start) / CLOCKS_PER_SEC;
    cr_expect_lt(secs, 2.0, "took %.3f s", secs);
}

/* Peak virtual memory of this process, kB (Linux); -1 if it cannot be read. */
static long vm_peak_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmPeak:", 7) == 0)
            kb = atol(line + 7);
    fclose(f);
    return kb;
}

/* 64 nested lists, each claiming as many items as there are bytes left, then a 1 MB byte
 * string: every claim is plausible on its own, so only the end of input shows the lie. The
 * decoder must not reserve memory per claimed item at every level (that was 64 x 8 MB).
 * The decode runs in a forked child, which has one thread: in the test's own process another
 * thread's first malloc can map a new 64 MB arena (128 MB of address space while it aligns
 * it) during the decode, which once made VmPeak grow by 130 MB under a loaded CI run. */
LTest(hostile, nested_claims)
{
    enum { LEVELS = TERN_MAX_DEPTH, PAD = 1 << 20 };
    size_t n = LEVELS * 5 + 5 + PAD;
    uint8_t *buf = calloc(n, 1);
    cr_assert_not_null(buf);
    for (size_t i = 0; i <= LEVELS; i++) {
        uint32_t claim = i < LEVELS ? (uint32_t)(n - i * 5) : PAD;
        buf[i * 5] = i < LEVELS ? 0x9a : 0x5a; /* list heads, then the byte string's */
        buf[i * 5 + 1] = (uint8_t)(claim >> 24);
        buf[i * 5 + 2] = (uint8_t)(claim >> 16);
        buf[i * 5 + 3] = (uint8_t)(claim >> 8);
        buf[i * 5 + 4] = (uint8_t)claim;
    }
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) { /* the child: decode, report "rc grown_kb" */
        close(fds[0]);
        long before = vm_peak_kb();
        int rc = dec(buf, n);
        long after = vm_peak_kb();
        char out[64];
        int len = snprintf(out, sizeof(out), "%d %ld\n", rc,
                           before < 0 || after < 0 ? -1L : after - before);
        _exit(write(fds[1], out, (size_t)len) == len ? 0 : 1);
    }
    close(fds[1]);
    char in[64] = "";
    ssize_t got = read(fds[0], in, sizeof(in) - 1);
    close(fds[0]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0 && got > 0,
              "the decoding child failed");
    int rc = 0;
    long grown = -1;
    cr_assert_eq(sscanf(in, "%d %ld", &rc, &grown), 2);
    cr_expect_eq(rc, TERN_ETRUNCATED, "got %s", tern_strerror_name(rc));
    cr_assert_geq(grown, 0, "cannot read VmPeak");
    cr_expect_lt(grown, 64 * 1024, "peak virtual memory grew by %ld kB for %zu bytes of input",
                 grown, n);
    free(buf);
}

/* ---- random input ---------------------------------------------------------------------- */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

LTest(random, byte_strings_never_crash, .timeout = 120)
{
    rng_state = 0xC0FFEE1234567ull;
    uint8_t buf[64];
    int ok = 0;
    for (int i = 0; i < 10000; i++) {
        size_t n = (size_t)(rnd() % sizeof(buf));
        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)rnd();
        /* half the time, start with a container or tag head to get deeper */
        if (n && (rnd() & 1)) {
            static const uint8_t heads[] = { 0x82, 0x83, 0xa1, 0xa2, 0xd8, 0xda, 0x98 };
            buf[0] = heads[rnd() % sizeof(heads)];
        }
        if (dec(buf, n) == TERN_OK)
            ok++;
    }
    cr_expect_gt(ok, 0); /* some random inputs are valid (single-byte ints, for one) */
}

LTest(random, mutated_valid_encodings_never_crash, .timeout = 120)
{
    size_t s22[2] = { 2, 2 };
    tern_value *m = tern_map_new();
    cr_assert_eq(tern_map_set(m, "key", tern_list_of(tern_int(1), tern_text("x"))), TERN_OK);
    cr_assert_eq(tern_map_set(m, "arr", tern_f64_array_shaped(2, s22, NULL)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "ref", tern_keyref("k")), TERN_OK);
    cr_assert_eq(tern_map_set(m, "i", tern_i64_array(NULL, 2)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "d", tern_double(1.1)), TERN_OK);
    uint8_t *enc;
    size_t n;
    cr_assert_eq(tern_encode(m, &enc, &n), TERN_OK);
    tern_value_unref(m);
    rng_state = 0xBADC0DEull;
    uint8_t *buf = malloc(n + 8);
    for (int i = 0; i < 10000; i++) {
        memcpy(buf, enc, n);
        size_t len = n;
        for (int flips = 1 + (int)(rnd() % 3); flips > 0; flips--) {
            size_t at = (size_t)(rnd() % n);
            switch (rnd() % 3) {
            case 0:
                buf[at] = (uint8_t)rnd();
                break;
            case 1:
                buf[at] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            default:
                len = at; /* cut */
                break;
            }
        }
        (void)dec(buf, len);
    }
    free(buf);
    free(enc);
}

/* ---- error messages -------------------------------------------------------------------- */

static void expect_msg(const char *hex, int code, const char *prefix, const char *contains)
{
    uint8_t in[256];
    size_t n = unhex(hex, in, sizeof(in));
    char err[256];
    memset(err, 'x', sizeof(err));
    int rc = dec_opts(in, n, NULL, err, sizeof(err));
    cr_expect_eq(rc, code, "%s: %s", hex, tern_strerror_name(rc));
    cr_expect(memchr(err, '\0', sizeof(err)) != NULL, "message not terminated");
    cr_expect_eq(strncmp(err, prefix, strlen(prefix)), 0, "%s: message \"%s\"", hex, err);
    cr_expect(strstr(err, contains) != NULL, "%s: message \"%s\" lacks \"%s\"", hex, err, contains);
}

LTest(messages, name_the_offset)
{
    expect_msg("82 01 62 c080", TERN_EMALFORMED, "byte 2: ", "UTF-8");
    expect_msg("00 00", TERN_EMALFORMED, "byte 1: ", "trailing");
    expect_msg("83 01 02", TERN_ETRUNCATED, "byte 3: ", "");
    expect_msg("81 c1 00", TERN_EUNSUPPORTED, "byte 1: ", "tag 1");
    expect_msg("a2 6161 01 6161 02", TERN_EMALFORMED, "byte 6: ", "duplicate");
    expect_msg("a1 01 01", TERN_EMALFORMED, "byte 1: ", "map key");
    expect_msg("82 00 9f ff", TERN_EUNSUPPORTED, "byte 2: ", "indefinite");
    expect_msg("82 00 1bffffffffffffffff", TERN_ERANGE, "byte 2: ", "int64");
    expect_msg("d856 43 010203", TERN_EMALFORMED, "byte 2: ", "8-byte");
    expect_msg("", TERN_ETRUNCATED, "byte 0: ", "empty");
}

LTest(messages, small_buffers)
{
    uint8_t in[] = { 0x82, 0x01, 0x62, 0xc0, 0x80 };
    char err[8];
    memset(err, 'x', sizeof(err));
    tern_value *v;
    cr_expect_eq(tern_decode(in, sizeof(in), NULL, &v, err, sizeof(err)), TERN_EMALFORMED);
    cr_expect_str_eq(err, "byte 2:"); /* truncated to 7 characters + NUL */
    char one[1] = { 'x' };
    cr_expect_eq(tern_decode(in, sizeof(in), NULL, &v, one, 1), TERN_EMALFORMED);
    cr_expect_eq(one[0], '\0');
    char zero[1] = { 'x' };
    cr_expect_eq(tern_decode(in, sizeof(in), NULL, &v, zero, 0), TERN_EMALFORMED);
    cr_expect_eq(zero[0], 'x', "errlen 0: the buffer must not be touched");
    cr_expect_eq(tern_decode(in, sizeof(in), NULL, &v, NULL, 100), TERN_EMALFORMED);
}
