/* Unit tests for the CBOR codec (<tern/codec.h>): exact encodings (RFC 8949 Appendix A where
 * it has examples), round trips, determinism, non-canonical input, borrowing decode. */
#include <criterion/criterion.h>

#include <tern/codec.h>
#include <tern/value.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leakcheck.h"
#include "sdk/src/value_internal.h" /* terni_decode_slab */

/* ---- helpers --------------------------------------------------------------------------- */

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
            continue; /* spaces separate bytes for readability */
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

/* Lowercase hex of at most 200 bytes (then "..."), in a static buffer. */
static const char *tohex(const uint8_t *b, size_t n)
{
    static char out[2][420];
    static int which;
    char *s = out[which ^= 1];
    size_t k = 0;
    for (size_t i = 0; i < n && i < 200; i++)
        k += (size_t)snprintf(s + k, 3, "%02x", b[i]);
    if (n > 200)
        strcpy(s + k, "...");
    else
        s[k] = '\0';
    return s;
}

static void count_release(void *arg)
{
    ++*(int *)arg;
}

/* Decodes enc with tern_decode, checks it equals v and re-encodes to the same bytes; the same
 * with tern_decode_borrow (release called exactly once in the end). */
static void check_decodes_back(const tern_value *v, const uint8_t *enc, size_t len,
                               const char *what)
{
    char err[128] = "";
    tern_value *d = NULL;
    cr_assert_eq(tern_decode(enc, len, NULL, &d, err, sizeof(err)), TERN_OK, "%s: %s", what, err);
    cr_assert(tern_value_equal(v, d), "%s: decoded value differs", what);
    uint8_t *again = NULL;
    size_t again_len = 0;
    cr_assert_eq(tern_encode(d, &again, &again_len), TERN_OK, "%s", what);
    cr_expect_eq(again_len, len, "%s: re-encoded length", what);
    cr_expect(again_len == len && memcmp(again, enc, len) == 0, "%s: re-encoding differs", what);
    free(again);
    tern_value_unref(d);

    int released = 0;
    d = NULL;
    cr_assert_eq(tern_decode_borrow(enc, len, NULL, count_release, &released, &d, err, sizeof(err)),
                 TERN_OK, "%s: %s", what, err);
    cr_assert(tern_value_equal(v, d), "%s: borrow-decoded value differs", what);
    tern_value_unref(d);
    cr_expect_eq(released, 1, "%s: release ran %d times", what, released);

    released = 0; /* as the daemons decode their messages */
    d = NULL;
    cr_assert_eq(terni_decode_slab(enc, len, NULL, count_release, &released, &d, err, sizeof(err)),
                 TERN_OK, "%s: %s", what, err);
    cr_assert(tern_value_equal(v, d), "%s: slab-decoded value differs", what);
    tern_value_unref(d);
    cr_expect_eq(released, 1, "%s: release ran %d times after a slab decode", what, released);
}

/* v must encode to exactly `hex`; encoded size, decode and re-encode must agree. Releases v. */
static void check_enc(tern_value *v, const char *hex, const char *what)
{
    uint8_t exp[512];
    size_t n = unhex(hex, exp, sizeof(exp));
    cr_assert_not_null(v, "%s: constructor failed", what);
    cr_expect_eq(tern_encoded_size(v), n, "%s: encoded size %zu, expected %zu", what,
                 tern_encoded_size(v), n);
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(tern_encode(v, &buf, &len), TERN_OK, "%s", what);
    cr_expect_str_eq(tohex(buf, len), tohex(exp, n), "%s", what);
    cr_assert_eq(len, n, "%s", what);
    check_decodes_back(v, buf, len, what);
    free(buf);
    tern_value_unref(v);
}

/* Encodes v, checks the size function, decodes both ways. Releases v. */
static void check_roundtrip(tern_value *v, const char *what)
{
    cr_assert_not_null(v, "%s: constructor failed", what);
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(tern_encode(v, &buf, &len), TERN_OK, "%s", what);
    cr_expect_eq(tern_encoded_size(v), len, "%s", what);
    check_decodes_back(v, buf, len, what);
    free(buf);
    tern_value_unref(v);
}

/* Decodes the hex input (which must succeed) and checks it re-encodes to `canon_hex`. */
static void check_canonicalises(const char *in_hex, const char *canon_hex, const char *what)
{
    uint8_t in[256], canon[256];
    size_t n = unhex(in_hex, in, sizeof(in)), cn = unhex(canon_hex, canon, sizeof(canon));
    char err[128] = "";
    tern_value *v = NULL;
    cr_assert_eq(tern_decode(in, n, NULL, &v, err, sizeof(err)), TERN_OK, "%s: %s", what, err);
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(tern_encode(v, &buf, &len), TERN_OK, "%s", what);
    cr_expect_str_eq(tohex(buf, len), tohex(canon, cn), "%s", what);
    tern_value *c = NULL;
    cr_assert_eq(tern_decode(canon, cn, NULL, &c, err, sizeof(err)), TERN_OK, "%s: %s", what, err);
    cr_expect(tern_value_equal(v, c), "%s", what);
    free(buf);
    tern_value_unref(v);
    tern_value_unref(c);
}

static double bits_to_double(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* ---- exact encodings: scalars (RFC 8949 Appendix A) ------------------------------------ */

LTest(encode, unsigned_ints)
{
    check_enc(tern_int(0), "00", "0");
    check_enc(tern_int(1), "01", "1");
    check_enc(tern_int(10), "0a", "10");
    check_enc(tern_int(23), "17", "23");
    check_enc(tern_int(24), "1818", "24");
    check_enc(tern_int(25), "1819", "25");
    check_enc(tern_int(100), "1864", "100");
    check_enc(tern_int(255), "18ff", "255");
    check_enc(tern_int(256), "190100", "256");
    check_enc(tern_int(1000), "1903e8", "1000");
    check_enc(tern_int(65535), "19ffff", "65535");
    check_enc(tern_int(65536), "1a00010000", "65536");
    check_enc(tern_int(1000000), "1a000f4240", "1000000");
    check_enc(tern_int(4294967295), "1affffffff", "2^32-1");
    check_enc(tern_int(4294967296), "1b0000000100000000", "2^32");
    check_enc(tern_int(1000000000000), "1b000000e8d4a51000", "10^12");
    check_enc(tern_int(INT64_MAX), "1b7fffffffffffffff", "INT64_MAX");
}

LTest(encode, negative_ints)
{
    check_enc(tern_int(-1), "20", "-1");
    check_enc(tern_int(-10), "29", "-10");
    check_enc(tern_int(-24), "37", "-24");
    check_enc(tern_int(-25), "3818", "-25");
    check_enc(tern_int(-100), "3863", "-100");
    check_enc(tern_int(-256), "38ff", "-256");
    check_enc(tern_int(-257), "390100", "-257");
    check_enc(tern_int(-1000), "3903e7", "-1000");
    check_enc(tern_int(-65536), "39ffff", "-65536");
    check_enc(tern_int(-65537), "3a00010000", "-65537");
    check_enc(tern_int(-4294967296), "3affffffff", "-2^32");
    check_enc(tern_int(-4294967297), "3b0000000100000000", "-2^32-1");
    check_enc(tern_int(INT64_MIN), "3b7fffffffffffffff", "INT64_MIN");
}

LTest(encode, simple_values)
{
    check_enc(tern_bool(false), "f4", "false");
    check_enc(tern_bool(true), "f5", "true");
    check_enc(tern_null(), "f6", "null");
}

LTest(encode, floats_rfc_examples)
{
    check_enc(tern_double(0.0), "f90000", "0.0");
    check_enc(tern_double(-0.0), "f98000", "-0.0");
    check_enc(tern_double(1.0), "f93c00", "1.0");
    check_enc(tern_double(1.1), "fb3ff199999999999a", "1.1");
    check_enc(tern_double(1.5), "f93e00", "1.5");
    check_enc(tern_double(65504.0), "f97bff", "65504.0");
    check_enc(tern_double(100000.0), "fa47c35000", "100000.0");
    check_enc(tern_double(3.4028234663852886e+38), "fa7f7fffff", "FLT_MAX");
    check_enc(tern_double(1.0e+300), "fb7e37e43c8800759c", "1.0e+300");
    check_enc(tern_double(5.960464477539063e-8), "f90001", "smallest half subnormal");
    check_enc(tern_double(0.00006103515625), "f90400", "smallest half normal");
    check_enc(tern_double(-4.0), "f9c400", "-4.0");
    check_enc(tern_double(-4.1), "fbc010666666666666", "-4.1");
    check_enc(tern_double(INFINITY), "f97c00", "Infinity");
    check_enc(tern_double(-INFINITY), "f9fc00", "-Infinity");
    check_enc(tern_double(NAN), "f97e00", "NaN");
}

LTest(encode, floats_shortest_width)
{
    check_enc(tern_double(ldexp(3, -24)), "f90003", "half subnormal 3*2^-24");
    check_enc(tern_double(ldexp(1023, -24)), "f903ff", "largest half subnormal");
    check_enc(tern_double(-ldexp(1, -24)), "f98001", "negative half subnormal");
    check_enc(tern_double(ldexp(1, -25)), "fa33000000", "2^-25: below half range");
    check_enc(tern_double(ldexp(3, -25)), "fa33c00000", "3*2^-25: not a half subnormal");
    check_enc(tern_double(1 + ldexp(1, -10)), "f93c01", "1+2^-10");
    check_enc(tern_double(1 + ldexp(1, -11)), "fa3f801000", "1+2^-11: needs single");
    check_enc(tern_double(32768.0), "f97800", "2^15");
    check_enc(tern_double(65505.0), "fa477fe100", "65505: above half max");
    check_enc(tern_double(65520.0), "fa477ff000", "65520: rounds to inf in half");
    check_enc(tern_double(131072.0), "fa48000000", "2^17");
    check_enc(tern_double((double)0.1f), "fa3dcccccd", "(double)0.1f");
    check_enc(tern_double(ldexp(1, -149)), "fa00000001", "smallest single subnormal");
    check_enc(tern_double(ldexp(1, -150)), "fb3690000000000000", "2^-150: below single range");
    check_enc(tern_double(1.7976931348623157e308), "fb7fefffffffffffff", "DBL_MAX");
    check_enc(tern_double(5e-324), "fb0000000000000001", "smallest double subnormal");
    check_enc(tern_double(0.1), "fb3fb999999999999a", "0.1");
    check_enc(tern_double(bits_to_double(0x7ff8000000000123ull)), "f97e00", "NaN with payload");
    check_enc(tern_double(bits_to_double(0xfff8000000000000ull)), "f97e00", "negative NaN");
    check_enc(tern_double(bits_to_double(0x7ff0000000000001ull)), "f97e00", "signalling NaN");
}

LTest(encode, strings)
{
    check_enc(tern_text(""), "60", "\"\"");
    check_enc(tern_text("a"), "6161", "\"a\"");
    check_enc(tern_text("IETF"), "6449455446", "\"IETF\"");
    check_enc(tern_text("\"\\"), "62225c", "quote backslash");
    check_enc(tern_text("\xc3\xbc"), "62c3bc", "u-umlaut");
    check_enc(tern_text("\xe6\xb0\xb4"), "63e6b0b4", "water");
    check_enc(tern_text("\xf0\x90\x85\x91"), "64f0908591", "U+10151");
    check_enc(tern_text_n("a\0b", 3), "63610062", "embedded NUL");
    check_enc(tern_text("abcdefghijklmnopqrstuvw"),
              "77 6162636465666768696a6b6c6d6e6f7071727374757677", "23 chars");
    check_enc(tern_text("abcdefghijklmnopqrstuvwx"),
              "7818 6162636465666768696a6b6c6d6e6f707172737475767778", "24 chars");
    check_enc(tern_bytes(NULL, 0), "40", "h''");
    check_enc(tern_bytes("\x01\x02\x03\x04", 4), "4401020304", "h'01020304'");
    check_enc(tern_keyref("k"), "da7465726e 616b", "ref(\"k\")");
    check_enc(tern_keyref("task/7"), "da7465726e 667461736b2f37", "ref(\"task/7\")");
}

LTest(encode, long_strings)
{
    /* 256 and 65536 byte payloads: 2- and 4-byte length heads */
    char *s = malloc(65536);
    memset(s, 'x', 65536);
    tern_value *v = tern_text_n(s, 256);
    cr_assert_eq(tern_encoded_size(v), 3 + 256);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(tern_encode(v, &buf, &len), TERN_OK);
    cr_expect_str_eq(tohex(buf, 3), "790100");
    free(buf);
    tern_value_unref(v);
    v = tern_bytes(s, 65536);
    cr_assert_eq(tern_encode(v, &buf, &len), TERN_OK);
    cr_expect_eq(len, 5 + 65536);
    cr_expect_str_eq(tohex(buf, 5), "5a00010000");
    check_decodes_back(v, buf, len, "64 KiB bytes");
    free(buf);
    tern_value_unref(v);
    free(s);
}

/* ---- exact encodings: containers ------------------------------------------------------- */

LTest(encode, lists)
{
    check_enc(tern_list_new(0), "80", "[]");
    check_enc(tern_list_of(tern_int(1), tern_int(2), tern_int(3)), "83010203", "[1,2,3]");
    check_enc(tern_list_of(tern_int(1), tern_list_of(tern_int(2), tern_int(3)),
                           tern_list_of(tern_int(4), tern_int(5))),
              "8301820203820405", "[1,[2,3],[4,5]]");
    tern_value *l = tern_list_new(0);
    for (int64_t i = 1; i <= 25; i++)
        cr_assert_eq(tern_list_append(l, tern_int(i)), TERN_OK);
    check_enc(l, "98190102030405060708090a0b0c0d0e0f101112131415161718181819", "[1..25]");
    check_enc(tern_list_of(tern_list_new(0), tern_map_new(), tern_text(""), tern_bytes(NULL, 0)),
              "84 80 a0 60 40", "empty containers");
}

LTest(encode, maps)
{
    check_enc(tern_map_new(), "a0", "{}");
    tern_value *m = tern_map_new();
    cr_assert_eq(tern_map_set(m, "b", tern_list_of(tern_int(2), tern_int(3))), TERN_OK);
    cr_assert_eq(tern_map_set(m, "a", tern_int(1)), TERN_OK);
    check_enc(m, "a26161016162820203", "{\"a\": 1, \"b\": [2, 3]}");

    m = tern_map_new();
    cr_assert_eq(tern_map_set(m, "b", tern_text("c")), TERN_OK);
    check_enc(tern_list_of(tern_text("a"), m), "826161a161626163", "[\"a\", {\"b\": \"c\"}]");

    m = tern_map_new();
    const char *keys[] = { "e", "d", "c", "b", "a" }, *vals[] = { "E", "D", "C", "B", "A" };
    for (int i = 0; i < 5; i++)
        cr_assert_eq(tern_map_set(m, keys[i], tern_text(vals[i])), TERN_OK);
    check_enc(m, "a56161614161626142616361436164614461656145", "five entries");

    /* shorter keys first: "b" < "aa" although 'a' < 'b' */
    m = tern_map_new();
    cr_assert_eq(tern_map_set(m, "b", tern_int(1)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "aa", tern_int(2)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "a", tern_int(3)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "", tern_null()), TERN_OK);
    check_enc(m, "a4 60f6 616103 616201 62616102", "length-first key order");
}

LTest(encode, typed_arrays_1d)
{
    double d[2] = { 1.0, 2.0 };
    check_enc(tern_f64_array(d, 2), "d856 50 000000000000f03f 0000000000000040", "f64 [1, 2]");
    int64_t i[2] = { 1, -1 };
    check_enc(tern_i64_array(i, 2), "d84f 50 0100000000000000 ffffffffffffffff", "i64 [1, -1]");
    int64_t i3[3] = { 0x0102030405060708, 0, INT64_MIN };
    check_enc(tern_i64_array(i3, 3), "d84f 5818 0807060504030201 0000000000000000 0000000000000080",
              "i64 3 elems");
    check_enc(tern_f64_array(NULL, 0), "d85640", "f64 []");
    check_enc(tern_i64_array(NULL, 0), "d84f40", "i64 []");
    size_t one[1] = { 1 };
    double nan[1] = { NAN };
    /* a 1-D array never uses tag 40, even when built with the shaped constructor; array
     * elements keep their bits (no float shortening, no NaN canonicalisation inside arrays) */
    check_enc(tern_f64_array_shaped(1, one, nan), "d856 48 000000000000f87f", "shaped [1]");
}

LTest(encode, typed_arrays_shaped)
{
    char hex[400];
    size_t s23[2] = { 2, 3 };
    int n = snprintf(hex, sizeof(hex), "d828 82 82 02 03 d856 5830 ");
    for (int k = 0; k < 48; k++)
        n += snprintf(hex + n, sizeof(hex) - (size_t)n, "00");
    check_enc(tern_f64_array_shaped(2, s23, NULL), hex, "f64 2x3 zeros");

    int64_t i6[6] = { 1, 2, 3, 4, 5, 6 };
    n = snprintf(hex, sizeof(hex), "d828 82 82 03 02 d84f 5830 ");
    for (int k = 0; k < 6; k++)
        n += snprintf(hex + n, sizeof(hex) - (size_t)n, "%02x00000000000000", k + 1);
    size_t s32[2] = { 3, 2 };
    check_enc(tern_i64_array_shaped(2, s32, i6), hex, "i64 3x2");

    size_t s204[3] = { 2, 0, 4 };
    check_enc(tern_i64_array_shaped(3, s204, NULL), "d828 82 83 02 00 04 d84f 40", "i64 2x0x4");
    size_t s300[2] = { 300, 0 };
    check_enc(tern_f64_array_shaped(2, s300, NULL), "d828 82 82 19012c 00 d856 40", "f64 300x0");
    size_t s8[8] = { 1, 1, 1, 1, 1, 1, 1, 1 };
    check_enc(tern_f64_array_shaped(8, s8, NULL),
              "d828 82 88 0101010101010101 d856 48 0000000000000000", "8 dims");
}

LTest(roundtrip, shaped_preserves_shape)
{
    size_t shape[4] = { 2, 3, 1, 4 };
    double *d;
    tern_value *v = tern_f64_array_new_shaped(4, shape, &d);
    for (int k = 0; k < 24; k++)
        d[k] = k * 1.25 - 7;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(tern_encode(v, &buf, &len), TERN_OK);
    tern_value *back = NULL;
    cr_assert_eq(tern_decode(buf, len, NULL, &back, NULL, 0), TERN_OK);
    size_t ndim;
    const size_t *s;
    cr_assert_eq(tern_array_shape(back, &ndim, &s), TERN_OK);
    cr_assert_eq(ndim, 4);
    for (size_t k = 0; k < 4; k++)
        cr_expect_eq(s[k], shape[k]);
    const double *bd;
    size_t n;
    cr_assert_eq(tern_value_get_f64_array(back, &bd, &n), TERN_OK);
    cr_assert_eq(n, 24);
    cr_expect(memcmp(bd, d, 24 * sizeof(double)) == 0);
    cr_expect(tern_value_equal(v, back));
    free(buf);
    tern_value_unref(back);
    tern_value_unref(v);
}

/* ---- round trips ----------------------------------------------------------------------- */

LTest(roundtrip, every_type)
{
    size_t s23[2] = { 2, 3 };
    double d6[6] = { 1.5, -0.0, INFINITY, NAN, 1e-310, 3 };
    int64_t i6[6] = { INT64_MIN, -1, 0, 1, INT64_MAX, 42 };
    tern_value *m = tern_map_new();
    cr_assert_eq(tern_map_set(m, "null", tern_null()), TERN_OK);
    cr_assert_eq(tern_map_set(m, "bool", tern_bool(true)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "int", tern_int(-123456789)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "double", tern_double(2.718281828459045)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "text", tern_text_n("t\0\xc3\xa9", 4)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "bytes", tern_bytes("\x00\xff", 2)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "ref", tern_keyref("k/1")), TERN_OK);
    cr_assert_eq(tern_map_set(m, "f64", tern_f64_array(d6, 6)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "i64", tern_i64_array(i6, 6)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "f64x", tern_f64_array_shaped(2, s23, d6)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "i64x", tern_i64_array_shaped(2, s23, i6)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "empty",
                              tern_list_of(tern_list_new(0), tern_map_new(),
                                           tern_f64_array(NULL, 0), tern_i64_array(NULL, 0))),
                 TERN_OK);
    cr_assert_eq(tern_map_set_n(m, "k\0ey", 4, tern_int(0)), TERN_OK);
    tern_value *inner = tern_map_new();
    cr_assert_eq(tern_map_set(inner, "deeper", tern_list_of(tern_map_new(), tern_text("x"))),
                 TERN_OK);
    tern_value *nest = tern_list_of(inner, tern_list_of(tern_list_of(tern_double(-0.5))));
    cr_assert_eq(tern_map_set(m, "nested", nest), TERN_OK);
    check_roundtrip(tern_value_ref(m), "composite map");
    check_roundtrip(tern_list_of(m, tern_int(1)), "composite in list");
}

LTest(roundtrip, scalars_each)
{
    const int64_t ints[] = { 0,
                             1,
                             23,
                             24,
                             255,
                             256,
                             65535,
                             65536,
                             4294967295,
                             4294967296,
                             INT64_MAX,
                             -1,
                             -24,
                             -25,
                             -256,
                             -257,
                             -65536,
                             -65537,
                             -4294967296,
                             -4294967297,
                             INT64_MIN,
                             INT64_MIN + 1,
                             INT64_MAX - 1 };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        check_roundtrip(tern_int(ints[i]), "int");
    const double dbls[] = { 0.0,
                            -0.0,
                            1.0,
                            -1.0,
                            0.5,
                            1e-310,
                            1e308,
                            65504.0,
                            65505.0,
                            INFINITY,
                            -INFINITY,
                            NAN,
                            0.1,
                            1.0 / 3,
                            ldexp(1, -24),
                            ldexp(1, -14),
                            ldexp(1, -126),
                            ldexp(1, -149),
                            ldexp(1, 127),
                            ldexp(1, 128) };
    for (size_t i = 0; i < sizeof(dbls) / sizeof(dbls[0]); i++)
        check_roundtrip(tern_double(dbls[i]), "double");
}

/* Values from a seeded PRNG: every one must survive encode -> decode -> encode unchanged. */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static tern_value *random_value(int depth)
{
    unsigned kind = (unsigned)(rnd() % (depth > 3 ? 9 : 12));
    char text[24];
    switch (kind) {
    case 0:
        return tern_null();
    case 1:
        return tern_bool(rnd() & 1);
    case 2:
        return tern_int((int64_t)rnd() >> (rnd() % 64));
    case 3: {
        uint64_t bits = rnd();
        if (rnd() & 1) /* small, exactly representable doubles too */
            return tern_double((double)(int)(rnd() % 2001 - 1000) / 8);
        return tern_double(bits_to_double(bits));
    }
    case 4: {
        size_t n = rnd() % sizeof(text);
        for (size_t i = 0; i < n; i++)
            text[i] = (char)(rnd() % 127); /* ASCII, NUL included */
        return tern_text_n(text, n);
    }
    case 5: {
        size_t n = rnd() % sizeof(text);
        for (size_t i = 0; i < n; i++)
            text[i] = (char)rnd();
        return tern_bytes(text, n);
    }
    case 6:
        snprintf(text, sizeof(text), "key%u", (unsigned)(rnd() % 1000));
        return tern_keyref(text);
    case 7: {
        size_t n = rnd() % 20;
        double *d;
        tern_value *v = tern_f64_array_new(n, &d);
        for (size_t i = 0; i < n; i++)
            d[i] = bits_to_double(rnd());
        return v;
    }
    case 8: {
        size_t shape[3] = { rnd() % 4, rnd() % 4, rnd() % 3 };
        int64_t *d;
        tern_value *v = tern_i64_array_new_shaped(1 + rnd() % 3, shape, &d);
        for (size_t i = 0; i < tern_array_len(v); i++)
            d[i] = (int64_t)rnd();
        return v;
    }
    case 9:
    case 10: {
        tern_value *l = tern_list_new(0);
        for (size_t n = rnd() % 6; n > 0; n--)
            tern_list_append(l, random_value(depth + 1));
        return l;
    }
    default: {
        tern_value *m = tern_map_new();
        for (size_t n = rnd() % 6; n > 0; n--) {
            snprintf(text, sizeof(text), "%.*s", (int)(rnd() % 4), &"abcd"[rnd() % 2]);
            tern_map_set(m, text, random_value(depth + 1));
        }
        return m;
    }
    }
}

LTest(roundtrip, random_values)
{
    rng_state = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 2000; i++) {
        char what[32];
        snprintf(what, sizeof(what), "random value %d", i);
        check_roundtrip(random_value(0), what);
    }
}

LTest(roundtrip, one_million_f64, .timeout = 60)
{
    enum { N = 1000000 };
    double *d;
    tern_value *v = tern_f64_array_new(N, &d);
    cr_assert_not_null(v);
    for (size_t i = 0; i < N; i++)
        d[i] = (double)i * 0.001 - 17.5;
    cr_assert_eq(tern_encoded_size(v), 2 + 5 + (size_t)N * 8);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(tern_encode(v, &buf, &len), TERN_OK);
    cr_assert_eq(len, 2 + 5 + (size_t)N * 8);
    cr_expect_str_eq(tohex(buf, 7), "d8565a007a1200");
    cr_expect(memcmp(buf + 7, d, (size_t)N * 8) == 0);

    tern_value *back = NULL;
    cr_assert_eq(tern_decode(buf, len, NULL, &back, NULL, 0), TERN_OK);
    cr_expect(tern_value_equal(v, back));
    cr_expect(!tern_value_is_borrowed(back));
    tern_value_unref(back);

    /* borrowing: payload at offset 7, so place the encoding at offset 1 of an aligned buffer */
    uint8_t *al = aligned_alloc(64, (len + 1 + 63) / 64 * 64);
    memcpy(al + 1, buf, len);
    int released = 0;
    cr_assert_eq(tern_decode_borrow(al + 1, len, NULL, count_release, &released, &back, NULL, 0),
                 TERN_OK);
    cr_expect(tern_value_is_borrowed(back));
    const double *bd;
    size_t n;
    cr_assert_eq(tern_value_get_f64_array(back, &bd, &n), TERN_OK);
    cr_expect_eq((const void *)bd, (const void *)(al + 8));
    cr_expect_eq(n, N);
    cr_expect(tern_value_equal(v, back));
    cr_expect_eq(released, 0);
    tern_value_unref(back);
    cr_expect_eq(released, 1);
    free(al);
    free(buf);
    tern_value_unref(v);
}

/* ---- determinism ----------------------------------------------------------------------- */

LTest(determinism, map_insertion_order)
{
    const char *keys[] = { "z",          "a",        "mm", "",
                           "longer key", "\xc3\xa9", "B",  "aaaaaaaaaaaaaaaaaaaaaaaaaa",
                           "ab",         "b",        "abc" };
    enum { NK = sizeof(keys) / sizeof(keys[0]) };
    uint8_t *first = NULL;
    size_t first_len = 0;
    rng_state = 42;
    for (int round = 0; round < 20; round++) {
        size_t order[NK];
        for (size_t i = 0; i < NK; i++)
            order[i] = i;
        if (round == 1) { /* reversed */
            for (size_t i = 0; i < NK; i++)
                order[i] = NK - 1 - i;
        } else if (round > 1) { /* shuffled */
            for (size_t i = NK - 1; i > 0; i--) {
                size_t j = rnd() % (i + 1), t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
        tern_value *m = tern_map_new();
        for (size_t i = 0; i < NK; i++) {
            tern_value *inner = tern_map_new(); /* nested maps too */
            cr_assert_eq(tern_map_set(inner, keys[(order[i] + 1) % NK], tern_int(1)), TERN_OK);
            cr_assert_eq(tern_map_set(inner, keys[order[i]], tern_int(2)), TERN_OK);
            cr_assert_eq(tern_map_set(m, keys[order[i]], inner), TERN_OK);
        }
        uint8_t *buf;
        size_t len;
        cr_assert_eq(tern_encode(m, &buf, &len), TERN_OK);
        if (!first) {
            first = buf;
            first_len = len;
        } else {
            cr_expect_eq(len, first_len);
            cr_expect(len == first_len && memcmp(buf, first, len) == 0, "round %d differs", round);
            free(buf);
        }
        tern_value_unref(m);
    }
    free(first);
}

LTest(determinism, equal_values_equal_bytes)
{
    /* values that compare equal must encode identically: NaNs of any payload */
    tern_value *a = tern_list_of(tern_double(bits_to_double(0x7ff0000000000001ull)));
    tern_value *b = tern_list_of(tern_double(NAN));
    cr_assert(tern_value_equal(a, b));
    uint8_t *ea, *eb;
    size_t la, lb;
    cr_assert_eq(tern_encode(a, &ea, &la), TERN_OK);
    cr_assert_eq(tern_encode(b, &eb, &lb), TERN_OK);
    cr_expect(la == lb && memcmp(ea, eb, la) == 0);
    free(ea);
    free(eb);
    tern_value_unref(a);
    tern_value_unref(b);
}

LTest(determinism, noncanonical_input_reencodes_canonically)
{
    check_canonicalises("a2 626161 02 6162 01", "a2 6162 01 626161 02", "keys out of order");
    check_canonicalises("a3 6163 03 6161 01 6162 02", "a3 6161 01 6162 02 6163 03",
                        "three keys reversed");
    check_canonicalises("a2 6161 a2 6179 01 6178 02 60 f6", "a2 60 f6 6161 a2 6178 02 6179 01",
                        "nested out of order");
    check_canonicalises("1805", "05", "non-shortest uint8");
    check_canonicalises("190005", "05", "non-shortest uint16");
    check_canonicalises("1a00000005", "05", "non-shortest uint32");
    check_canonicalises("1b0000000000000005", "05", "non-shortest uint64");
    check_canonicalises("3800", "20", "non-shortest -1");
    check_canonicalises("3b0000000000000000", "20", "non-shortest -1 (8 bytes)");
    check_canonicalises("fb3ff8000000000000", "f93e00", "1.5 as double");
    check_canonicalises("fa3fc00000", "f93e00", "1.5 as single");
    check_canonicalises("fb3ff199999999999a", "fb3ff199999999999a", "1.1 stays double");
    check_canonicalises("fa7f800000", "f97c00", "inf as single");
    check_canonicalises("fb8000000000000000", "f98000", "-0.0 as double");
    check_canonicalises("f97e01", "f97e00", "half NaN with payload");
    check_canonicalises("fa7fc00001", "f97e00", "single NaN with payload");
    check_canonicalises("fbfff8000000000001", "f97e00", "double NaN, negative, payload");
    check_canonicalises("980101", "8101", "non-shortest list head");
    check_canonicalises("b80161 6101", "a16161 01", "non-shortest map head");
    check_canonicalises("780161", "6161", "non-shortest text head");
    check_canonicalises("5900020102", "420102", "non-shortest bytes head");
    check_canonicalises("d856 5808 000000000000f03f", "d856 48 000000000000f03f",
                        "non-shortest typed-array length");
    check_canonicalises("d90056 48 000000000000f03f", "d856 48 000000000000f03f",
                        "non-shortest tag head");
    check_canonicalises("db000000007465726e 616b", "da7465726e 616b", "keyref 8-byte tag head");
    check_canonicalises("d828 82 81 01 d856 48 000000000000f03f", "d856 48 000000000000f03f",
                        "tag 40 around a 1-D array");
    check_canonicalises("d828 82 82 1801 190001 d84f 48 0700000000000000",
                        "d828 82 82 01 01 d84f 48 0700000000000000", "non-shortest dims");
}

/* ---- encode API ------------------------------------------------------------------------ */

LTest(encode_api, encode_into_capacity)
{
    tern_value *v = tern_list_of(tern_text("hello"), tern_int(70000), tern_f64_array(NULL, 3),
                                 tern_keyref("r"), tern_double(1.1));
    size_t need = tern_encoded_size(v);
    cr_assert_gt(need, 0);
    uint8_t *buf = malloc(need + 16);
    size_t written = 12345;
    for (size_t cap = 0; cap < need; cap++) {
        cr_expect_eq(tern_encode_into(v, buf, cap, &written), TERN_ETOOBIG, "cap %zu", cap);
        cr_expect_eq(written, 12345, "written changed on failure (cap %zu)", cap);
    }
    memset(buf, 0xAA, need + 16);
    cr_assert_eq(tern_encode_into(v, buf, need, &written), TERN_OK);
    cr_expect_eq(written, need);
    uint8_t *ref;
    size_t ref_len;
    cr_assert_eq(tern_encode(v, &ref, &ref_len), TERN_OK);
    cr_assert_eq(ref_len, need);
    cr_expect(memcmp(buf, ref, need) == 0);
    memset(buf, 0xAA, need + 16);
    cr_assert_eq(tern_encode_into(v, buf, need + 16, &written), TERN_OK);
    cr_expect_eq(written, need);
    cr_expect(memcmp(buf, ref, need) == 0);
    for (size_t i = need; i < need + 16; i++)
        cr_expect_eq(buf[i], 0xAA, "byte %zu past the encoding was written", i);
    free(ref);
    free(buf);
    tern_value_unref(v);
}

LTest(encode_api, bad_arguments)
{
    tern_value *v = tern_int(1);
    uint8_t buf[16];
    size_t written;
    cr_expect_eq(tern_encode_into(NULL, buf, sizeof(buf), &written), TERN_EINVAL);
    cr_expect_eq(tern_encode_into(v, NULL, sizeof(buf), &written), TERN_EINVAL);
    cr_expect_eq(tern_encode_into(v, buf, sizeof(buf), NULL), TERN_EINVAL);
    uint8_t *out = (uint8_t *)0x1;
    size_t len;
    cr_expect_eq(tern_encode(NULL, &out, &len), TERN_EINVAL);
    cr_expect_null(out);
    cr_expect_eq(tern_encode(v, NULL, &len), TERN_EINVAL);
    cr_expect_eq(tern_encode(v, &out, NULL), TERN_EINVAL);
    cr_expect_eq(tern_encoded_size(NULL), 0);
    tern_value_unref(v);
}

static tern_value *nested_lists(int levels, tern_value *leaf)
{
    tern_value *v = leaf;
    for (int i = 0; i < levels; i++)
        v = tern_list_of(v);
    return v;
}

LTest(encode_api, depth_limit)
{
    /* TERN_MAX_DEPTH lists around a scalar encode; one more does not */
    tern_value *ok = nested_lists(TERN_MAX_DEPTH, tern_int(0));
    cr_assert_eq(tern_encoded_size(ok), TERN_MAX_DEPTH + 1);
    check_roundtrip(ok, "max depth");

    tern_value *deep = nested_lists(TERN_MAX_DEPTH + 1, tern_int(0));
    cr_expect_eq(tern_encoded_size(deep), 0);
    uint8_t buf[256], *out = (uint8_t *)0x1;
    size_t len;
    cr_expect_eq(tern_encode_into(deep, buf, sizeof(buf), &len), TERN_ETOODEEP);
    cr_expect_eq(tern_encode(deep, &out, &len), TERN_ETOODEEP);
    cr_expect_null(out);
    tern_value_unref(deep);

    /* maps count the same way */
    tern_value *m = tern_int(0);
    for (int i = 0; i < TERN_MAX_DEPTH + 1; i++) {
        tern_value *outer = tern_map_new();
        cr_assert_eq(tern_map_set(outer, "k", m), TERN_OK);
        m = outer;
    }
    cr_expect_eq(tern_encoded_size(m), 0);
    cr_expect_eq(tern_encode(m, &out, &len), TERN_ETOODEEP);
    tern_value_unref(m);

    /* a shaped array is one level (tag 40 frame): fits inside MAX_DEPTH - 1 lists only */
    size_t shape[2] = { 1, 1 };
    check_roundtrip(nested_lists(TERN_MAX_DEPTH - 1, tern_f64_array_shaped(2, shape, NULL)),
                    "shaped array at max depth");
    deep = nested_lists(TERN_MAX_DEPTH, tern_f64_array_shaped(2, shape, NULL));
    cr_expect_eq(tern_encode(deep, &out, &len), TERN_ETOODEEP);
    tern_value_unref(deep);
    /* a 1-D array is a leaf */
    check_roundtrip(nested_lists(TERN_MAX_DEPTH, tern_f64_array(NULL, 1)), "1-D at max depth");
}

/* Whatever the encoder accepts at the depth limit, the decoder accepts too, and vice versa. */
LTest(encode_api, depth_limit_agrees_with_decoder)
{
    size_t shape[2] = { 1, 1 };
    for (int levels = TERN_MAX_DEPTH - 3; levels <= TERN_MAX_DEPTH + 3; levels++) {
        for (int leaf = 0; leaf < 4; leaf++) {
            tern_value *l = leaf == 0   ? tern_int(5)
                            : leaf == 1 ? tern_list_new(0)
                            : leaf == 2 ? tern_map_new()
                                        : tern_f64_array_shaped(2, shape, NULL);
            uint8_t leaf_enc[64];
            size_t leaf_len;
            cr_assert_eq(tern_encode_into(l, leaf_enc, sizeof(leaf_enc), &leaf_len), TERN_OK);
            tern_value *v = nested_lists(levels, l);
            uint8_t manual[256];
            memset(manual, 0x81, (size_t)levels);
            memcpy(manual + levels, leaf_enc, leaf_len);
            size_t mlen = (size_t)levels + leaf_len;
            uint8_t *enc = NULL;
            size_t len;
            int erc = tern_encode(v, &enc, &len);
            tern_value *d = NULL;
            int drc = tern_decode(manual, mlen, NULL, &d, NULL, 0);
            cr_expect_eq(erc == TERN_OK, drc == TERN_OK, "levels %d leaf %d: encode %d decode %d",
                         levels, leaf, erc, drc);
            if (erc == TERN_OK) {
                cr_expect(len == mlen && memcmp(enc, manual, len) == 0);
                cr_expect(tern_value_equal(v, d));
            } else {
                cr_expect_eq(erc, TERN_ETOODEEP);
                cr_expect_eq(drc, TERN_ETOODEEP);
            }
            free(enc);
            tern_value_unref(d);
            tern_value_unref(v);
        }
    }
}

/* ---- decode API ------------------------------------------------------------------------ */

LTest(decode_api, copy_decode_never_borrows)
{
    uint8_t *al = aligned_alloc(64, 128);
    /* f64 [4]: payload at offset 4; at al+4 it is 8-aligned */
    size_t enc_len = unhex("d856 5820 000000000000f03f 0000000000000040 0000000000000840"
                           " 0000000000001040",
                           al + 4, 124);
    tern_value *v = NULL;
    cr_assert_eq(tern_decode(al + 4, enc_len, NULL, &v, NULL, 0), TERN_OK);
    cr_expect(!tern_value_is_borrowed(v));
    const double *d;
    size_t n;
    cr_assert_eq(tern_value_get_f64_array(v, &d, &n), TERN_OK);
    cr_expect(n == 4 && d[0] == 1 && d[3] == 4);
    cr_expect((uintptr_t)d < (uintptr_t)al || (uintptr_t)d >= (uintptr_t)al + 128);
    cr_expect_eq((uintptr_t)d % 64, 0);
    free(al); /* the value no longer needs the input */
    cr_expect_eq(d[2], 3);
    tern_value_unref(v);
}

LTest(decode_api, borrow_aligned)
{
    uint8_t *al = aligned_alloc(64, 128);
    size_t enc_len = unhex("d856 5820 000000000000f03f 0000000000000040 0000000000000840"
                           " 0000000000001040",
                           al + 4, 124);
    int released = 0;
    tern_value *v = NULL;
    cr_assert_eq(tern_decode_borrow(al + 4, enc_len, NULL, count_release, &released, &v, NULL, 0),
                 TERN_OK);
    cr_expect(tern_value_is_borrowed(v));
    const double *d;
    size_t n;
    cr_assert_eq(tern_value_get_f64_array(v, &d, &n), TERN_OK);
    cr_expect_eq((const void *)d, (const void *)(al + 8), "data must point into the input");
    cr_expect(n == 4 && d[0] == 1 && d[3] == 4);
    /* a borrowed array is read-only */
    double *md = NULL;
    cr_expect_eq(tern_value_f64_data_mut(v, &md, &n), TERN_ESHARED);
    cr_expect_null(md);
    cr_expect_eq(released, 0, "released while still borrowed");
    tern_value_unref(v);
    cr_expect_eq(released, 1);
    free(al);
}

LTest(decode_api, borrow_unaligned_is_copied)
{
    uint8_t *al = aligned_alloc(64, 128);
    size_t enc_len = unhex("d84f 5820 0100000000000000 0200000000000000 0300000000000000"
                           " 0400000000000000",
                           al + 5, 123);
    int released = 0;
    tern_value *v = NULL;
    cr_assert_eq(tern_decode_borrow(al + 5, enc_len, NULL, count_release, &released, &v, NULL, 0),
                 TERN_OK);
    cr_expect(!tern_value_is_borrowed(v));
    cr_expect_eq(released, 1, "nothing borrowed: release runs before decode returns");
    const int64_t *d;
    size_t n;
    cr_assert_eq(tern_value_get_i64_array(v, &d, &n), TERN_OK);
    cr_expect_eq((uintptr_t)d % 64, 0, "copied data must be 64-byte aligned");
    cr_expect((uintptr_t)d < (uintptr_t)al || (uintptr_t)d >= (uintptr_t)al + 128);
    cr_expect(n == 4 && d[0] == 1 && d[3] == 4);
    memset(al, 0, 128);
    cr_expect_eq(d[3], 4);
    tern_value_unref(v);
    cr_expect_eq(released, 1);
    free(al);
}

LTest(decode_api, borrow_release_waits_for_last_value)
{
    /* [f64[4], 0, 0, 0, 0, i64[4]]: payloads at offsets 5 and 45 */
    uint8_t *al = aligned_alloc(64, 256);
    size_t enc_len = unhex("86 d856 5820 000000000000f03f 0000000000000040 0000000000000840"
                           " 0000000000001040 00 00 00 00 d84f 5820 0100000000000000"
                           " 0200000000000000 0300000000000000 0400000000000000",
                           al + 3, 253);
    int released = 0;
    tern_value *list = NULL;
    char err[128];
    cr_assert_eq(tern_decode_borrow(al + 3, enc_len, NULL, count_release, &released, &list, err,
                                    sizeof(err)),
                 TERN_OK, "%s", err);
    const tern_value *a, *b;
    cr_assert_eq(tern_list_get(list, 0, &a), TERN_OK);
    cr_assert_eq(tern_list_get(list, 5, &b), TERN_OK);
    cr_assert(tern_value_is_borrowed(a));
    cr_assert(tern_value_is_borrowed(b));
    const int64_t *bd;
    size_t n;
    cr_assert_eq(tern_value_get_i64_array(b, &bd, &n), TERN_OK);
    cr_expect_eq((const void *)bd, (const void *)(al + 48));
    tern_value *keep_a = tern_value_ref((tern_value *)a);
    tern_value *keep_b = tern_value_ref((tern_value *)b);
    tern_value_unref(list);
    cr_expect_eq(released, 0);
    tern_value_unref(keep_b);
    cr_expect_eq(released, 0, "one borrowing array is still alive");
    tern_value_unref(keep_a);
    cr_expect_eq(released, 1);
    free(al);
}

LTest(decode_api, borrow_shaped)
{
    /* tag 40 [[2, 2], f64[4]]: payload at offset 10 */
    uint8_t *al = aligned_alloc(64, 128);
    size_t enc_len = unhex("d828 82 82 02 02 d856 5820 000000000000f03f 0000000000000040"
                           " 0000000000000840 0000000000001040",
                           al + 6, 122);
    int released = 0;
    tern_value *v = NULL;
    cr_assert_eq(tern_decode_borrow(al + 6, enc_len, NULL, count_release, &released, &v, NULL, 0),
                 TERN_OK);
    cr_expect(tern_value_is_borrowed(v));
    size_t ndim;
    const size_t *shape;
    cr_assert_eq(tern_array_shape(v, &ndim, &shape), TERN_OK);
    cr_expect(ndim == 2 && shape[0] == 2 && shape[1] == 2);
    const double *d;
    size_t n;
    cr_assert_eq(tern_value_get_f64_array(v, &d, &n), TERN_OK);
    cr_expect_eq((const void *)d, (const void *)(al + 16));
    cr_expect_eq(released, 0);
    tern_value_unref(v);
    cr_expect_eq(released, 1);
    free(al);
}

LTest(decode_api, borrow_nothing_borrowed_releases_immediately)
{
    uint8_t in[] = { 0x82, 0x01, 0x61, 0x61 };
    int released = 0;
    tern_value *v = NULL;
    cr_assert_eq(tern_decode_borrow(in, sizeof(in), NULL, count_release, &released, &v, NULL, 0),
                 TERN_OK);
    cr_expect_eq(released, 1);
    tern_value_unref(v);
    cr_expect_eq(released, 1);
    /* an empty typed array has no data to borrow either way */
    uint8_t empty[] = { 0xd8, 0x56, 0x40 };
    cr_assert_eq(tern_decode_borrow(empty, 3, NULL, count_release, &released, &v, NULL, 0),
                 TERN_OK);
    tern_value_unref(v);
    cr_expect_eq(released, 2);
}

LTest(decode_api, borrow_error_releases_once)
{
    uint8_t *al = aligned_alloc(64, 128);
    /* an aligned, borrowed array followed by garbage: the array is dropped, then release */
    size_t enc_len = unhex("82 d856 5820 000000000000f03f 0000000000000040 0000000000000840"
                           " 0000000000001040 ff",
                           al + 3, 125);
    int released = 0;
    tern_value *v = (tern_value *)0x1;
    int rc = tern_decode_borrow(al + 3, enc_len, NULL, count_release, &released, &v, NULL, 0);
    cr_expect_neq(rc, TERN_OK);
    cr_expect_null(v);
    cr_expect_eq(released, 1);
    rc = tern_decode_borrow(al + 3, 10, NULL, count_release, &released, &v, NULL, 0);
    cr_expect_eq(rc, TERN_ETRUNCATED);
    cr_expect_eq(released, 2);
    /* bad arguments still release */
    rc = tern_decode_borrow(al, 1, NULL, count_release, &released, NULL, NULL, 0);
    cr_expect_eq(rc, TERN_EINVAL);
    cr_expect_eq(released, 3);
    rc = tern_decode_borrow(NULL, 4, NULL, count_release, &released, &v, NULL, 0);
    cr_expect_eq(rc, TERN_EINVAL);
    cr_expect_eq(released, 4);
    free(al);
}

LTest(decode_api, borrow_null_release)
{
    uint8_t *al = aligned_alloc(64, 128);
    size_t enc_len = unhex("d856 48 000000000000f03f", al + 5, 123);
    tern_value *v = NULL;
    cr_assert_eq(tern_decode_borrow(al + 5, enc_len, NULL, NULL, NULL, &v, NULL, 0), TERN_OK);
    cr_expect(tern_value_is_borrowed(v));
    tern_value_unref(v);
    free(al);
}

LTest(decode_api, borrowed_array_in_container_steal_releases)
{
    /* containers steal references even on failure: a borrowed array handed to a failing
     * append is released, and with it the decode buffer */
    uint8_t *al = aligned_alloc(64, 64);
    size_t enc_len = unhex("d856 48 000000000000f03f", al + 5, 59);
    int released = 0;
    tern_value *v = NULL;
    cr_assert_eq(tern_decode_borrow(al + 5, enc_len, NULL, count_release, &released, &v, NULL, 0),
                 TERN_OK);
    cr_assert(tern_value_is_borrowed(v));
    tern_value *not_list = tern_int(3);
    cr_expect_eq(tern_list_append(not_list, v), TERN_ETYPE);
    cr_expect_eq(released, 1);
    tern_value_unref(not_list);
    free(al);
}

LTest(decode_api, empty_and_null_input)
{
    tern_value *v = (tern_value *)0x1;
    cr_expect_eq(tern_decode(NULL, 0, NULL, &v, NULL, 0), TERN_ETRUNCATED);
    cr_expect_null(v);
    cr_expect_eq(tern_decode("", 0, NULL, &v, NULL, 0), TERN_ETRUNCATED);
    cr_expect_eq(tern_decode(NULL, 3, NULL, &v, NULL, 0), TERN_EINVAL);
    cr_expect_eq(tern_decode("\x00", 1, NULL, NULL, NULL, 0), TERN_EINVAL);
}

LTest(decode_api, errbuf_cleared_on_success)
{
    char err[32];
    memset(err, 'x', sizeof(err));
    tern_value *v = NULL;
    cr_assert_eq(tern_decode("\x01", 1, NULL, &v, err, sizeof(err)), TERN_OK);
    cr_expect_str_eq(err, "");
    tern_value_unref(v);
}
