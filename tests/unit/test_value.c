/* Unit tests for the value model (<tern/value.h>) and the error table (<tern/error.h>).
 *
 * Reference counts are checked through the internal layout (value_internal.h), so stolen and
 * released references are verified directly, without valgrind; the sanitizer build adds
 * LeakSanitizer on top. */
#include <criterion/criterion.h>

#include <tern/codec.h>
#include <tern/error.h>
#include <tern/value.h>

#include "sdk/src/value_internal.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leakcheck.h"

static unsigned refs(const tern_value *v)
{
    return atomic_load(&((tern_value *)v)->refs);
}

static bool aligned64(const void *p)
{
    return ((uintptr_t)p % 64) == 0;
}

static double bits_to_double(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* Checks tern_value_to_string(v, flags) == expected, then releases v. */
static void expect_str(tern_value *v, unsigned flags, const char *expected)
{
    char *s = tern_value_to_string(v, flags);
    cr_assert_not_null(s);
    cr_expect_str_eq(s, expected);
    free(s);
    tern_value_unref(v);
}

/* ---- type names, reference counting --------------------------------------------------- */

LTest(types, names)
{
    cr_expect_str_eq(tern_type_name(TERN_T_NULL), "null");
    cr_expect_str_eq(tern_type_name(TERN_T_BOOL), "bool");
    cr_expect_str_eq(tern_type_name(TERN_T_INT), "int");
    cr_expect_str_eq(tern_type_name(TERN_T_DOUBLE), "double");
    cr_expect_str_eq(tern_type_name(TERN_T_TEXT), "text");
    cr_expect_str_eq(tern_type_name(TERN_T_BYTES), "bytes");
    cr_expect_str_eq(tern_type_name(TERN_T_LIST), "list");
    cr_expect_str_eq(tern_type_name(TERN_T_MAP), "map");
    cr_expect_str_eq(tern_type_name(TERN_T_F64_ARRAY), "f64 array");
    cr_expect_str_eq(tern_type_name(TERN_T_I64_ARRAY), "i64 array");
    cr_expect_str_eq(tern_type_name(TERN_T_KEYREF), "key reference");
    cr_expect_str_eq(tern_type_name((tern_type)11), "unknown type");
    cr_expect_str_eq(tern_type_name((tern_type)-1), "unknown type");
}

LTest(types, constructors_set_type)
{
    size_t shape[2] = { 2, 2 };
    double *fd;
    int64_t *id;
    struct {
        tern_value *v;
        tern_type t;
    } cases[] = {
        { tern_null(), TERN_T_NULL },
        { tern_bool(true), TERN_T_BOOL },
        { tern_int(1), TERN_T_INT },
        { tern_double(1.0), TERN_T_DOUBLE },
        { tern_text("x"), TERN_T_TEXT },
        { tern_text_n("x\0y", 3), TERN_T_TEXT },
        { tern_bytes("x", 1), TERN_T_BYTES },
        { tern_keyref("k"), TERN_T_KEYREF },
        { tern_list_new(0), TERN_T_LIST },
        { tern_list_of(tern_int(1)), TERN_T_LIST },
        { tern_map_new(), TERN_T_MAP },
        { tern_f64_array(NULL, 2), TERN_T_F64_ARRAY },
        { tern_i64_array(NULL, 2), TERN_T_I64_ARRAY },
        { tern_f64_array_new(2, &fd), TERN_T_F64_ARRAY },
        { tern_i64_array_new(2, &id), TERN_T_I64_ARRAY },
        { tern_f64_array_shaped(2, shape, NULL), TERN_T_F64_ARRAY },
        { tern_i64_array_shaped(2, shape, NULL), TERN_T_I64_ARRAY },
        { tern_f64_array_new_shaped(2, shape, &fd), TERN_T_F64_ARRAY },
        { tern_i64_array_new_shaped(2, shape, &id), TERN_T_I64_ARRAY },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_not_null(cases[i].v, "case %zu", i);
        cr_expect_eq(tern_value_type(cases[i].v), cases[i].t, "case %zu", i);
        cr_expect_eq(refs(cases[i].v), 1, "case %zu", i);
        tern_value_unref(cases[i].v);
    }
    cr_expect_eq(tern_value_type(NULL), TERN_T_NULL);
}

LTest(ref, ref_unref)
{
    tern_value *v = tern_int(5);
    cr_assert_eq(refs(v), 1);
    cr_assert_eq(tern_value_ref(v), v);
    cr_assert_eq(refs(v), 2);
    tern_value_unref(v);
    cr_assert_eq(refs(v), 1);
    int64_t i = 0;
    cr_assert_eq(tern_value_get_int(v, &i), TERN_OK);
    cr_assert_eq(i, 5);
    tern_value_unref(v);
    cr_assert_null(tern_value_ref(NULL));
    tern_value_unref(NULL); /* must be a no-op */
}

LTest(ref, container_releases_items)
{
    tern_value *item = tern_text("shared item");
    tern_value *list = tern_list_new(0);
    tern_value *map = tern_map_new();
    cr_assert_eq(tern_list_append(list, tern_value_ref(item)), TERN_OK);
    cr_assert_eq(tern_map_set(map, "k", tern_value_ref(item)), TERN_OK);
    cr_assert_eq(refs(item), 3);
    tern_value_unref(list);
    cr_assert_eq(refs(item), 2);
    tern_value_unref(map);
    cr_assert_eq(refs(item), 1);
    tern_value_unref(item);
}

LTest(ref, nested_unref_frees_everything)
{
    /* Under the sanitizer build LeakSanitizer checks that this frees every node. */
    tern_value *m = tern_map_new();
    cr_assert_eq(tern_map_set(m, "l",
                              tern_list_of(tern_int(1), tern_text("a"), tern_map_new(),
                                           tern_f64_array(NULL, 3), tern_keyref("k"))),
                 TERN_OK);
    cr_assert_eq(tern_map_set(m, "b", tern_bytes("abc", 3)), TERN_OK);
    tern_value_unref(m);
}

/* ---- scalars and accessors ------------------------------------------------------------- */

LTest(scalar, null_value)
{
    tern_value *v = tern_null();
    cr_assert_not_null(v);
    cr_expect_eq(tern_value_type(v), TERN_T_NULL);
    tern_value_unref(v);
}

LTest(scalar, bool_value)
{
    bool b = false;
    tern_value *t = tern_bool(true), *f = tern_bool(false);
    cr_assert_eq(tern_value_get_bool(t, &b), TERN_OK);
    cr_expect(b);
    cr_assert_eq(tern_value_get_bool(f, &b), TERN_OK);
    cr_expect(!b);
    tern_value_unref(t);
    tern_value_unref(f);
}

LTest(scalar, int_values)
{
    const int64_t cases[] = { 0, 1, -1, 23, 24, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tern_value *v = tern_int(cases[i]);
        int64_t out = 12345;
        cr_assert_eq(tern_value_get_int(v, &out), TERN_OK);
        cr_expect_eq(out, cases[i]);
        tern_value_unref(v);
    }
}

LTest(scalar, double_values)
{
    const double cases[] = { 0.0, 1.5, -2.25, 1e300, 5e-324, INFINITY, -INFINITY };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tern_value *v = tern_double(cases[i]);
        double out = 0;
        cr_assert_eq(tern_value_get_double(v, &out), TERN_OK);
        cr_expect(memcmp(&out, &cases[i], sizeof(double)) == 0, "case %zu", i);
        tern_value_unref(v);
    }
    double out = 1;
    tern_value *nz = tern_double(-0.0);
    cr_assert_eq(tern_value_get_double(nz, &out), TERN_OK);
    cr_expect(out == 0 && signbit(out));
    tern_value_unref(nz);
    tern_value *nan = tern_double(NAN);
    cr_assert_eq(tern_value_get_double(nan, &out), TERN_OK);
    cr_expect(isnan(out));
    tern_value_unref(nan);
}

LTest(scalar, get_number)
{
    double d = 0;
    tern_value *i = tern_int(-7), *f = tern_double(2.5), *t = tern_text("7");
    cr_assert_eq(tern_value_get_number(i, &d), TERN_OK);
    cr_expect_eq(d, -7.0);
    cr_assert_eq(tern_value_get_number(f, &d), TERN_OK);
    cr_expect_eq(d, 2.5);
    d = 99;
    cr_expect_eq(tern_value_get_number(t, &d), TERN_ETYPE);
    cr_expect_eq(d, 99);
    cr_expect_eq(tern_value_get_number(NULL, &d), TERN_EINVAL);
    cr_expect_eq(tern_value_get_number(i, NULL), TERN_EINVAL);
    /* get_double is strict: an int is not a double */
    cr_expect_eq(tern_value_get_double(i, &d), TERN_ETYPE);
    tern_value_unref(i);
    tern_value_unref(f);
    tern_value_unref(t);
}

/* Every accessor on every type: only the matching one succeeds, the rest give TERN_ETYPE and
 * leave the output untouched. */
LTest(scalar, wrong_type_accessors)
{
    size_t shape[2] = { 1, 1 };
    tern_value *vals[] = {
        tern_null(),
        tern_bool(true),
        tern_int(1),
        tern_double(1.0),
        tern_text("t"),
        tern_bytes("b", 1),
        tern_list_of(tern_int(1)),
        tern_map_new(),
        tern_f64_array(NULL, 1),
        tern_i64_array_shaped(2, shape, NULL),
        tern_keyref("k"),
    };
    cr_assert_eq(tern_map_set(vals[7], "a", tern_int(1)), TERN_OK);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        tern_value *v = vals[i];
        tern_type t = tern_value_type(v);
        cr_assert_eq(t, (tern_type)i);
        bool b = false;
        int64_t n = 42;
        double d = 4.5;
        const char *s = "untouched";
        size_t len = 77;
        const void *data = "untouched";
        const tern_value *item = NULL;
        const double *fd = NULL;
        const int64_t *id = NULL;
        double *md = NULL;
        size_t ndim = 0;
        const size_t *shp = NULL;
#define EXPECT_ACC(call, want)                                                                     \
    cr_expect_eq((call), (t == (want)) ? TERN_OK : TERN_ETYPE, "%s on %s", #call, tern_type_name(t))
        EXPECT_ACC(tern_value_get_bool(v, &b), TERN_T_BOOL);
        EXPECT_ACC(tern_value_get_int(v, &n), TERN_T_INT);
        EXPECT_ACC(tern_value_get_double(v, &d), TERN_T_DOUBLE);
        EXPECT_ACC(tern_value_get_text(v, &s, &len), TERN_T_TEXT);
        EXPECT_ACC(tern_value_get_keyref(v, &s), TERN_T_KEYREF);
        EXPECT_ACC(tern_list_get(v, 0, &item), TERN_T_LIST);
        EXPECT_ACC(tern_map_get(v, "a", &item), TERN_T_MAP);
        EXPECT_ACC(tern_map_entry(v, 0, NULL, NULL), TERN_T_MAP);
        EXPECT_ACC(tern_value_get_f64_array(v, &fd, &len), TERN_T_F64_ARRAY);
        EXPECT_ACC(tern_value_get_i64_array(v, &id, &len), TERN_T_I64_ARRAY);
        EXPECT_ACC(tern_value_f64_data_mut(v, &md, &len), TERN_T_F64_ARRAY);
        cr_expect_eq(tern_value_get_bytes(v, &data, &len),
                     t == TERN_T_BYTES ? TERN_OK : TERN_ETYPE);
        cr_expect_eq(tern_array_shape(v, &ndim, &shp),
                     t == TERN_T_F64_ARRAY || t == TERN_T_I64_ARRAY ? TERN_OK : TERN_ETYPE);
        cr_expect_eq(tern_value_get_number(v, &d),
                     t == TERN_T_INT || t == TERN_T_DOUBLE ? TERN_OK : TERN_ETYPE);
#undef EXPECT_ACC
        /* outputs of the failing accessors are untouched */
        if (t != TERN_T_BOOL)
            cr_expect(!b);
        if (t != TERN_T_INT)
            cr_expect_eq(n, 42);
        if (t != TERN_T_DOUBLE && t != TERN_T_INT)
            cr_expect_eq(d, 4.5);
        if (t != TERN_T_TEXT && t != TERN_T_KEYREF)
            cr_expect_str_eq(s, "untouched");
        cr_expect_eq(tern_list_len(v), t == TERN_T_LIST ? 1u : 0u);
        cr_expect_eq(tern_map_len(v), t == TERN_T_MAP ? 1u : 0u);
        cr_expect_eq(tern_array_len(v), t == TERN_T_F64_ARRAY || t == TERN_T_I64_ARRAY ? 1 : 0);
        cr_expect(!tern_value_is_borrowed(v));
        tern_value_unref(v);
    }
}

LTest(scalar, null_arguments)
{
    bool b;
    int64_t n;
    double d;
    const char *s;
    size_t len;
    const void *data;
    const tern_value *item;
    const double *fd;
    const int64_t *id;
    double *md;
    size_t ndim;
    const size_t *shp;
    /* NULL value */
    cr_expect_eq(tern_value_get_bool(NULL, &b), TERN_EINVAL);
    cr_expect_eq(tern_value_get_int(NULL, &n), TERN_EINVAL);
    cr_expect_eq(tern_value_get_double(NULL, &d), TERN_EINVAL);
    cr_expect_eq(tern_value_get_number(NULL, &d), TERN_EINVAL);
    cr_expect_eq(tern_value_get_text(NULL, &s, &len), TERN_EINVAL);
    cr_expect_eq(tern_value_get_bytes(NULL, &data, &len), TERN_EINVAL);
    cr_expect_eq(tern_value_get_keyref(NULL, &s), TERN_EINVAL);
    cr_expect_eq(tern_list_get(NULL, 0, &item), TERN_EINVAL);
    cr_expect_eq(tern_map_get(NULL, "a", &item), TERN_EINVAL);
    cr_expect_eq(tern_map_entry(NULL, 0, &s, &item), TERN_EINVAL);
    cr_expect_eq(tern_value_get_f64_array(NULL, &fd, &len), TERN_EINVAL);
    cr_expect_eq(tern_value_get_i64_array(NULL, &id, &len), TERN_EINVAL);
    cr_expect_eq(tern_value_f64_data_mut(NULL, &md, &len), TERN_EINVAL);
    cr_expect_eq(tern_array_shape(NULL, &ndim, &shp), TERN_EINVAL);
    cr_expect_eq(tern_list_len(NULL), 0);
    cr_expect_eq(tern_map_len(NULL), 0);
    cr_expect_eq(tern_array_len(NULL), 0);
    cr_expect(!tern_value_is_borrowed(NULL));

    /* NULL output pointers, on values of the right type */
    tern_value *vb = tern_bool(true), *vi = tern_int(1), *vd = tern_double(1), *vt = tern_text("x"),
               *vy = tern_bytes("y", 1), *vk = tern_keyref("k"), *vl = tern_list_of(tern_int(1)),
               *vm = tern_map_new(), *vf = tern_f64_array(NULL, 1), *vj = tern_i64_array(NULL, 1);
    cr_expect_eq(tern_value_get_bool(vb, NULL), TERN_EINVAL);
    cr_expect_eq(tern_value_get_int(vi, NULL), TERN_EINVAL);
    cr_expect_eq(tern_value_get_double(vd, NULL), TERN_EINVAL);
    cr_expect_eq(tern_value_get_text(vt, NULL, &len), TERN_EINVAL);
    cr_expect_eq(tern_value_get_bytes(vy, NULL, &len), TERN_EINVAL);
    cr_expect_eq(tern_value_get_bytes(vy, &data, NULL), TERN_EINVAL);
    cr_expect_eq(tern_value_get_keyref(vk, NULL), TERN_EINVAL);
    cr_expect_eq(tern_list_get(vl, 0, NULL), TERN_EINVAL);
    cr_expect_eq(tern_map_get(vm, "a", NULL), TERN_EINVAL);
    cr_expect_eq(tern_map_get(vm, NULL, &item), TERN_EINVAL);
    cr_expect_eq(tern_value_get_f64_array(vf, NULL, &len), TERN_EINVAL);
    cr_expect_eq(tern_value_get_f64_array(vf, &fd, NULL), TERN_EINVAL);
    cr_expect_eq(tern_value_get_i64_array(vj, NULL, &len), TERN_EINVAL);
    cr_expect_eq(tern_value_get_i64_array(vj, &id, NULL), TERN_EINVAL);
    cr_expect_eq(tern_value_f64_data_mut(vf, NULL, &len), TERN_EINVAL);
    cr_expect_eq(tern_value_f64_data_mut(vf, &md, NULL), TERN_EINVAL);
    cr_expect_eq(tern_array_shape(vf, NULL, &shp), TERN_EINVAL);
    cr_expect_eq(tern_array_shape(vf, &ndim, NULL), TERN_EINVAL);
    tern_value *all[] = { vb, vi, vd, vt, vy, vk, vl, vm, vf, vj };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        tern_value_unref(all[i]);
}

/* ---- text, bytes, key references ------------------------------------------------------- */

LTest(text, basic)
{
    const char *s = NULL;
    size_t len = 0;
    tern_value *v = tern_text("h\xc3\xa9llo");
    cr_assert_not_null(v);
    cr_assert_eq(tern_value_get_text(v, &s, &len), TERN_OK);
    cr_expect_str_eq(s, "h\xc3\xa9llo");
    cr_expect_eq(len, 6);
    s = NULL;
    cr_assert_eq(tern_value_get_text(v, &s, NULL), TERN_OK); /* len may be NULL */
    cr_expect_str_eq(s, "h\xc3\xa9llo");
    tern_value_unref(v);

    v = tern_text("");
    cr_assert_not_null(v);
    cr_assert_eq(tern_value_get_text(v, &s, &len), TERN_OK);
    cr_expect_str_eq(s, "");
    cr_expect_eq(len, 0);
    tern_value_unref(v);

    cr_expect_null(tern_text(NULL));
    cr_expect_null(tern_text_n(NULL, 3));
    v = tern_text_n(NULL, 0);
    cr_assert_not_null(v);
    cr_expect_eq(tern_value_get_text(v, &s, &len), TERN_OK);
    cr_expect_eq(len, 0);
    tern_value_unref(v);
}

LTest(text, copies_input)
{
    char buf[] = "mutable";
    tern_value *v = tern_text(buf);
    buf[0] = 'X';
    const char *s;
    cr_assert_eq(tern_value_get_text(v, &s, NULL), TERN_OK);
    cr_expect_str_eq(s, "mutable");
    cr_expect_neq(s, buf);
    tern_value_unref(v);
}

LTest(text, embedded_nul)
{
    const char *s = NULL;
    size_t len = 0;
    tern_value *v = tern_text_n("a\0b\0", 4);
    cr_assert_not_null(v);
    cr_assert_eq(tern_value_get_text(v, &s, &len), TERN_OK);
    cr_expect_eq(len, 4);
    cr_expect(memcmp(s, "a\0b\0", 5) == 0); /* plus the terminating NUL */
    tern_value_unref(v);
    /* tern_text_n takes only len bytes and terminates them */
    v = tern_text_n("abcdef", 3);
    cr_assert_eq(tern_value_get_text(v, &s, &len), TERN_OK);
    cr_expect_str_eq(s, "abc");
    cr_expect_eq(len, 3);
    tern_value_unref(v);
}

LTest(text, rejects_invalid_utf8)
{
    static const struct {
        const char *s;
        size_t len;
        const char *what;
    } bad[] = {
        { "\xc0\x80", 2, "overlong NUL" },
        { "\xc1\xbf", 2, "overlong 2-byte" },
        { "\xe0\x80\xaf", 3, "overlong 3-byte" },
        { "\xe0\x9f\xbf", 3, "overlong 3-byte (max)" },
        { "\xf0\x80\x80\xaf", 4, "overlong 4-byte" },
        { "\xf0\x8f\xbf\xbf", 4, "overlong 4-byte (max)" },
        { "\xed\xa0\x80", 3, "high surrogate U+D800" },
        { "\xed\xbf\xbf", 3, "low surrogate U+DFFF" },
        { "\xf4\x90\x80\x80", 4, "above U+10FFFF" },
        { "\xf5\x80\x80\x80", 4, "lead byte F5" },
        { "\xf8\x88\x80\x80\x80", 5, "5-byte form" },
        { "\xff", 1, "byte FF" },
        { "\x80", 1, "lone continuation" },
        { "a\xbf", 2, "continuation after ASCII" },
        { "\xc3", 1, "truncated 2-byte" },
        { "\xe2\x82", 2, "truncated 3-byte" },
        { "\xf0\x9f\x98", 3, "truncated 4-byte" },
        { "ab\xe2\x82", 4, "truncated at end" },
        { "\xc3\xa9", 1, "2-byte sequence cut by len" },
        { "\xe2\x82\xac", 2, "3-byte sequence cut by len" },
        { "\xf0\x9f\x98\x80", 3, "4-byte sequence cut by len" },
        { "\xc3(", 2, "bad continuation" },
        { "\xe2(\xa1", 3, "bad continuation 3-byte" },
        { "\xe2\x82\x00", 3, "NUL as continuation" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_null(tern_text_n(bad[i].s, bad[i].len), "%s accepted", bad[i].what);
    }
    cr_expect_null(tern_text("ok\xc0\x80"));
    cr_expect_null(tern_text("\xed\xa0\x80"));
}

LTest(text, accepts_valid_utf8_edges)
{
    static const char *const good[] = {
        "\x7f",             /* U+007F */
        "\xc2\x80",         /* U+0080 */
        "\xdf\xbf",         /* U+07FF */
        "\xe0\xa0\x80",     /* U+0800 */
        "\xed\x9f\xbf",     /* U+D7FF */
        "\xee\x80\x80",     /* U+E000 */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf0\x90\x80\x80", /* U+10000 */
        "\xf0\x9f\x98\x80", /* emoji */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF */
        "mixed \xc3\xa9\xe6\xb0\xb4\xf0\x90\x85\x91 text",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        tern_value *v = tern_text(good[i]);
        cr_expect_not_null(v, "case %zu rejected", i);
        tern_value_unref(v);
    }
}

LTest(bytes, basic)
{
    const void *data = NULL;
    size_t len = 0;
    const uint8_t raw[] = { 0x00, 0xff, 0xc0, 0x80, 0x00 }; /* not UTF-8: fine for bytes */
    tern_value *v = tern_bytes(raw, sizeof(raw));
    cr_assert_not_null(v);
    cr_assert_eq(tern_value_get_bytes(v, &data, &len), TERN_OK);
    cr_expect_eq(len, sizeof(raw));
    cr_expect(memcmp(data, raw, sizeof(raw)) == 0);
    cr_expect_neq(data, (const void *)raw);
    tern_value_unref(v);

    v = tern_bytes(NULL, 0);
    cr_assert_not_null(v);
    cr_assert_eq(tern_value_get_bytes(v, &data, &len), TERN_OK);
    cr_expect_eq(len, 0);
    tern_value_unref(v);
    cr_expect_null(tern_bytes(NULL, 4));
}

LTest(keyref, basic)
{
    const char *k = NULL;
    tern_value *v = tern_keyref("task-1/result");
    cr_assert_not_null(v);
    cr_assert_eq(tern_value_get_keyref(v, &k), TERN_OK);
    cr_expect_str_eq(k, "task-1/result");
    /* a key reference is not text */
    size_t len;
    cr_expect_eq(tern_value_get_text(v, &k, &len), TERN_ETYPE);
    tern_value_unref(v);
    cr_expect_null(tern_keyref(""));
    cr_expect_null(tern_keyref(NULL));
    cr_expect_null(tern_keyref("bad\xc0\x80"));
    v = tern_keyref("\xe6\xb0\xb4");
    cr_expect_not_null(v);
    tern_value_unref(v);
}

/* ---- lists ----------------------------------------------------------------------------- */

LTest(list, empty)
{
    for (size_t cap = 0; cap < 3; cap++) {
        tern_value *l = tern_list_new(cap);
        cr_assert_not_null(l);
        cr_expect_eq(tern_list_len(l), 0);
        const tern_value *item = (const tern_value *)0x1;
        cr_expect_eq(tern_list_get(l, 0, &item), TERN_ERANGE);
        cr_expect_eq(item, (const tern_value *)0x1);
        tern_value_unref(l);
    }
    cr_expect_null(tern_list_new(SIZE_MAX)); /* capacity * sizeof(ptr) overflows */
}

LTest(list, append_and_get)
{
    tern_value *l = tern_list_new(1);
    for (int64_t i = 0; i < 100; i++) /* grows past the initial capacity */
        cr_assert_eq(tern_list_append(l, tern_int(i * 3)), TERN_OK);
    cr_assert_eq(tern_list_len(l), 100);
    for (size_t i = 0; i < 100; i++) {
        const tern_value *item = NULL;
        int64_t n;
        cr_assert_eq(tern_list_get(l, i, &item), TERN_OK);
        cr_assert_eq(tern_value_get_int(item, &n), TERN_OK);
        cr_expect_eq(n, (int64_t)i * 3);
    }
    const tern_value *item = NULL;
    cr_expect_eq(tern_list_get(l, 100, &item), TERN_ERANGE);
    cr_expect_eq(tern_list_get(l, SIZE_MAX, &item), TERN_ERANGE);
    cr_expect_null(item);
    tern_value_unref(l);
}

LTest(list, list_of)
{
    tern_value *l = tern_list_of(tern_int(1), tern_text("x"), tern_null());
    cr_assert_not_null(l);
    cr_assert_eq(tern_list_len(l), 3);
    const tern_value *item;
    cr_assert_eq(tern_list_get(l, 1, &item), TERN_OK);
    cr_expect_eq(tern_value_type(item), TERN_T_TEXT);
    cr_assert_eq(tern_list_get(l, 2, &item), TERN_OK);
    cr_expect_eq(tern_value_type(item), TERN_T_NULL);
    tern_value_unref(l);

    l = tern_list_from(NULL, 0);
    cr_assert_not_null(l);
    cr_expect_eq(tern_list_len(l), 0);
    tern_value_unref(l);
    cr_expect_null(tern_list_from(NULL, 2));
}

LTest(list, list_of_with_null_item_releases_all)
{
    tern_value *a = tern_int(1), *b = tern_text("b");
    tern_value_ref(a);
    tern_value_ref(b);
    tern_value *l = tern_list_of(a, NULL, b);
    cr_expect_null(l);
    cr_expect_eq(refs(a), 1); /* the list's stolen references were dropped */
    cr_expect_eq(refs(b), 1);
    tern_value_unref(a);
    tern_value_unref(b);
    /* the NULL-from-failed-constructor idiom: no leak, NULL result */
    cr_expect_null(tern_list_of(tern_int(1), tern_text("\xff"), tern_int(3)));
}

LTest(list, append_steals_on_failure)
{
    tern_value *item = tern_int(7);
    tern_value *not_list = tern_map_new();
    tern_value_ref(item); /* keep our own reference to observe the stolen one */
    cr_expect_eq(tern_list_append(not_list, item), TERN_ETYPE);
    cr_expect_eq(refs(item), 1);
    cr_expect_eq(tern_map_len(not_list), 0);

    tern_value_ref(item);
    cr_expect_eq(tern_list_append(NULL, item), TERN_EINVAL);
    cr_expect_eq(refs(item), 1);

    tern_value *l = tern_list_new(0);
    cr_expect_eq(tern_list_append(l, NULL), TERN_EINVAL);
    cr_expect_eq(tern_list_len(l), 0);

    tern_value_unref(item);
    tern_value_unref(not_list);
    tern_value_unref(l);
}

LTest(list, shared_list_is_frozen)
{
    tern_value *l = tern_list_of(tern_int(1));
    tern_value *item = tern_int(2);
    tern_value_ref(l); /* now shared */
    tern_value_ref(item);
    cr_expect_eq(tern_list_append(l, item), TERN_ESHARED);
    cr_expect_eq(refs(item), 1);
    cr_expect_eq(tern_list_len(l), 1);
    tern_value_unref(l); /* back to one owner: modifiable again */
    cr_expect_eq(tern_list_append(l, item), TERN_OK);
    cr_expect_eq(tern_list_len(l), 2);
    tern_value_unref(l);
}

LTest(list, append_self_refused)
{
    tern_value *l = tern_list_new(0);
    tern_value_ref(l);
    /* l is shared by the time it is passed, and a list may not contain itself */
    cr_expect_eq(tern_list_append(l, l), TERN_ESHARED);
    cr_expect_eq(refs(l), 1);
    cr_expect_eq(tern_list_len(l), 0);
    tern_value_unref(l);
}

/* ---- maps ------------------------------------------------------------------------------ */

LTest(map, set_get_replace)
{
    tern_value *m = tern_map_new();
    cr_assert_not_null(m);
    cr_expect_eq(tern_map_len(m), 0);
    cr_assert_eq(tern_map_set(m, "alpha", tern_int(1)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "beta", tern_text("two")), TERN_OK);
    cr_expect_eq(tern_map_len(m), 2);
    const tern_value *v = NULL;
    int64_t n;
    cr_assert_eq(tern_map_get(m, "alpha", &v), TERN_OK);
    cr_assert_eq(tern_value_get_int(v, &n), TERN_OK);
    cr_expect_eq(n, 1);

    tern_value *old = NULL;
    cr_assert_eq(tern_map_get(m, "alpha", (const tern_value **)&old), TERN_OK);
    tern_value_ref(old);
    cr_assert_eq(tern_map_set(m, "alpha", tern_int(10)), TERN_OK); /* replace */
    cr_expect_eq(refs(old), 1, "the replaced value must be released");
    tern_value_unref(old);
    cr_expect_eq(tern_map_len(m), 2);
    cr_assert_eq(tern_map_get(m, "alpha", &v), TERN_OK);
    cr_assert_eq(tern_value_get_int(v, &n), TERN_OK);
    cr_expect_eq(n, 10);

    v = (const tern_value *)0x1;
    cr_expect_eq(tern_map_get(m, "gamma", &v), TERN_ENOTFOUND);
    cr_expect_eq(tern_map_get(m, "", &v), TERN_ENOTFOUND);
    cr_expect_eq(tern_map_get(m, "alph", &v), TERN_ENOTFOUND);
    cr_expect_eq(v, (const tern_value *)0x1);
    tern_value_unref(m);
}

LTest(map, deterministic_order)
{
    /* shorter keys first, then bytewise (unsigned) */
    const char *insert[] = { "bb", "a", "\xc3\xa9", "", "zz", "c", "aa", "b", "abc", "B" };
    const char *expect[] = { "", "B", "a", "b", "c", "aa", "bb", "zz", "\xc3\xa9", "abc" };
    tern_value *m = tern_map_new();
    for (size_t i = 0; i < 10; i++)
        cr_assert_eq(tern_map_set(m, insert[i], tern_int((int64_t)i)), TERN_OK);
    cr_assert_eq(tern_map_len(m), 10);
    for (size_t i = 0; i < 10; i++) {
        const char *k = NULL;
        const tern_value *v = NULL;
        cr_assert_eq(tern_map_entry(m, i, &k, &v), TERN_OK);
        cr_expect_str_eq(k, expect[i], "entry %zu", i);
        cr_expect_not_null(v);
        const tern_value *g = NULL;
        cr_assert_eq(tern_map_get(m, expect[i], &g), TERN_OK);
        cr_expect_eq(g, v);
    }
    const char *k = NULL;
    cr_expect_eq(tern_map_entry(m, 10, &k, NULL), TERN_ERANGE);
    cr_expect_null(k);
    cr_expect_eq(tern_map_entry(m, 0, NULL, NULL), TERN_OK);
    tern_value_unref(m);
}

static int key_order(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t lx = strlen(x), ly = strlen(y);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return memcmp(x, y, lx);
}

LTest(map, many_keys_sorted)
{
    enum { N = 300 };
    char *keys[N];
    tern_value *m = tern_map_new();
    uint32_t seed = 12345;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        keys[i] = malloc(16);
        snprintf(keys[i], 16, "k%u", (unsigned)(seed >> 8) % 100000u + (unsigned)i * 100000u);
        cr_assert_eq(tern_map_set(m, keys[i], tern_int(i)), TERN_OK);
    }
    cr_assert_eq(tern_map_len(m), N);
    qsort(keys, N, sizeof(keys[0]), key_order);
    for (int i = 0; i < N; i++) {
        const char *k;
        cr_assert_eq(tern_map_entry(m, (size_t)i, &k, NULL), TERN_OK);
        cr_expect_str_eq(k, keys[i]);
        free(keys[i]);
    }
    tern_value_unref(m);
}

LTest(map, keys_with_nul)
{
    tern_value *m = tern_map_new();
    cr_assert_eq(tern_map_set_n(m, "a\0b", 3, tern_int(1)), TERN_OK);
    cr_assert_eq(tern_map_set_n(m, "a", 1, tern_int(2)), TERN_OK);
    cr_assert_eq(tern_map_set_n(m, "a\0c", 3, tern_int(3)), TERN_OK);
    cr_expect_eq(tern_map_len(m), 3);
    const tern_value *v;
    int64_t n;
    cr_assert_eq(tern_map_get(m, "a", &v), TERN_OK); /* strlen key: "a" */
    cr_assert_eq(tern_value_get_int(v, &n), TERN_OK);
    cr_expect_eq(n, 2);
    const char *k;
    cr_assert_eq(tern_map_entry(m, 1, &k, &v), TERN_OK);
    cr_expect(memcmp(k, "a\0b", 4) == 0);
    cr_assert_eq(tern_map_entry(m, 2, &k, &v), TERN_OK);
    cr_expect(memcmp(k, "a\0c", 4) == 0);
    /* set_n copies exactly key_len bytes */
    cr_assert_eq(tern_map_set_n(m, "xyz", 2, tern_int(4)), TERN_OK);
    cr_expect_eq(tern_map_get(m, "xy", &v), TERN_OK);
    cr_expect_eq(tern_map_get(m, "xyz", &v), TERN_ENOTFOUND);
    tern_value_unref(m);
}

LTest(map, set_steals_on_failure)
{
    tern_value *m = tern_map_new();
    tern_value *val = tern_int(1);
    tern_value *not_map = tern_list_new(0);

    tern_value_ref(val);
    cr_expect_eq(tern_map_set(not_map, "k", val), TERN_ETYPE);
    cr_expect_eq(refs(val), 1);
    tern_value_ref(val);
    cr_expect_eq(tern_map_set(NULL, "k", val), TERN_EINVAL);
    cr_expect_eq(refs(val), 1);
    tern_value_ref(val);
    cr_expect_eq(tern_map_set(m, NULL, val), TERN_EINVAL);
    cr_expect_eq(refs(val), 1);
    tern_value_ref(val);
    cr_expect_eq(tern_map_set_n(m, NULL, 1, val), TERN_EINVAL);
    cr_expect_eq(refs(val), 1);
    tern_value_ref(val);
    cr_expect_eq(tern_map_set(m, "bad\xff", val), TERN_EINVAL);
    cr_expect_eq(refs(val), 1);
    tern_value_ref(val);
    cr_expect_eq(tern_map_set_n(m, "\xed\xa0\x80", 3, val), TERN_EINVAL);
    cr_expect_eq(refs(val), 1);
    cr_expect_eq(tern_map_set(m, "k", NULL), TERN_EINVAL);
    cr_expect_eq(tern_map_len(m), 0);

    tern_value_ref(m); /* shared */
    tern_value_ref(val);
    cr_expect_eq(tern_map_set(m, "k", val), TERN_ESHARED);
    cr_expect_eq(refs(val), 1);
    cr_expect_eq(tern_map_len(m), 0);
    tern_value_unref(m);
    cr_expect_eq(tern_map_set(m, "k", val), TERN_OK); /* sole owner again */
    cr_expect_eq(tern_map_len(m), 1);

    tern_value_ref(m);
    cr_expect_eq(tern_map_set(m, "self", m), TERN_ESHARED);
    cr_expect_eq(refs(m), 1);
    tern_value_unref(m);
    tern_value_unref(not_map);
}

LTest(map, replace_on_shared_map_refused)
{
    tern_value *m = tern_map_new();
    cr_assert_eq(tern_map_set(m, "k", tern_int(1)), TERN_OK);
    tern_value *reader = tern_value_ref(m);
    cr_expect_eq(tern_map_set(m, "k", tern_int(2)), TERN_ESHARED);
    const tern_value *v;
    int64_t n;
    cr_assert_eq(tern_map_get(reader, "k", &v), TERN_OK);
    cr_assert_eq(tern_value_get_int(v, &n), TERN_OK);
    cr_expect_eq(n, 1);
    tern_value_unref(reader);
    tern_value_unref(m);
}

/* ---- arrays ---------------------------------------------------------------------------- */

LTest(array, f64_1d)
{
    double src[5] = { 1.5, -2, 0, 1e300, -0.0 };
    tern_value *v = tern_f64_array(src, 5);
    cr_assert_not_null(v);
    src[0] = 99; /* copied at construction */
    const double *d = NULL;
    size_t n = 0;
    cr_assert_eq(tern_value_get_f64_array(v, &d, &n), TERN_OK);
    cr_expect_eq(n, 5);
    cr_expect(aligned64(d));
    cr_expect_eq(d[0], 1.5);
    cr_expect_eq(d[3], 1e300);
    cr_expect(signbit(d[4]));
    cr_expect_eq(tern_array_len(v), 5);
    size_t ndim = 0;
    const size_t *shape = NULL;
    cr_assert_eq(tern_array_shape(v, &ndim, &shape), TERN_OK);
    cr_expect_eq(ndim, 1);
    cr_expect_eq(shape[0], 5);
    const int64_t *id;
    cr_expect_eq(tern_value_get_i64_array(v, &id, &n), TERN_ETYPE);
    tern_value_unref(v);
}

LTest(array, i64_1d)
{
    int64_t src[3] = { INT64_MIN, 0, INT64_MAX };
    tern_value *v = tern_i64_array(src, 3);
    cr_assert_not_null(v);
    const int64_t *d = NULL;
    size_t n = 0;
    cr_assert_eq(tern_value_get_i64_array(v, &d, &n), TERN_OK);
    cr_expect_eq(n, 3);
    cr_expect(aligned64(d));
    cr_expect_eq(d[0], INT64_MIN);
    cr_expect_eq(d[2], INT64_MAX);
    const double *fd;
    cr_expect_eq(tern_value_get_f64_array(v, &fd, &n), TERN_ETYPE);
    double *md;
    cr_expect_eq(tern_value_f64_data_mut(v, &md, &n), TERN_ETYPE);
    tern_value_unref(v);
}

LTest(array, null_data_gives_zeros)
{
    tern_value *f = tern_f64_array(NULL, 17);
    tern_value *i = tern_i64_array(NULL, 17);
    const double *fd;
    const int64_t *id;
    size_t n;
    cr_assert_eq(tern_value_get_f64_array(f, &fd, &n), TERN_OK);
    cr_assert_eq(n, 17);
    cr_assert_eq(tern_value_get_i64_array(i, &id, &n), TERN_OK);
    for (size_t k = 0; k < 17; k++) {
        cr_expect_eq(fd[k], 0.0);
        cr_expect(!signbit(fd[k]));
        cr_expect_eq(id[k], 0);
    }
    tern_value_unref(f);
    tern_value_unref(i);
}

LTest(array, zero_length)
{
    tern_value *f = tern_f64_array(NULL, 0);
    tern_value *i = tern_i64_array(NULL, 0);
    cr_assert_not_null(f);
    cr_assert_not_null(i);
    const double *fd = NULL;
    size_t n = 99;
    cr_assert_eq(tern_value_get_f64_array(f, &fd, &n), TERN_OK);
    cr_expect_eq(n, 0);
    cr_expect_eq(tern_array_len(f), 0);
    cr_expect_eq(tern_array_len(i), 0);
    size_t ndim;
    const size_t *shape;
    cr_assert_eq(tern_array_shape(f, &ndim, &shape), TERN_OK);
    cr_expect_eq(ndim, 1);
    cr_expect_eq(shape[0], 0);
    tern_value_unref(f);
    tern_value_unref(i);
}

LTest(array, new_forms_writable)
{
    double *fd = NULL;
    int64_t *id = NULL;
    tern_value *f = tern_f64_array_new(9, &fd);
    tern_value *i = tern_i64_array_new(9, &id);
    cr_assert_not_null(f);
    cr_assert_not_null(i);
    cr_expect(aligned64(fd));
    cr_expect(aligned64(id));
    for (int k = 0; k < 9; k++) {
        fd[k] = k * 0.5;
        id[k] = -k;
    }
    const double *rf;
    const int64_t *ri;
    size_t n;
    cr_assert_eq(tern_value_get_f64_array(f, &rf, &n), TERN_OK);
    cr_expect_eq(rf, fd);
    cr_expect_eq(n, 9);
    cr_expect_eq(rf[8], 4.0);
    cr_assert_eq(tern_value_get_i64_array(i, &ri, &n), TERN_OK);
    cr_expect_eq(ri[8], -8);
    tern_value_unref(f);
    tern_value_unref(i);
    cr_expect_null(tern_f64_array_new(3, NULL));
    cr_expect_null(tern_i64_array_new(3, NULL));
    size_t shape[1] = { 3 };
    cr_expect_null(tern_f64_array_new_shaped(1, shape, NULL));
    cr_expect_null(tern_i64_array_new_shaped(1, shape, NULL));
}

LTest(array, shaped)
{
    size_t shape[2] = { 2, 3 };
    double src[6] = { 0, 1, 2, 10, 11, 12 };
    tern_value *v = tern_f64_array_shaped(2, shape, src);
    cr_assert_not_null(v);
    shape[0] = 7; /* copied */
    size_t ndim = 0;
    const size_t *s = NULL;
    cr_assert_eq(tern_array_shape(v, &ndim, &s), TERN_OK);
    cr_expect_eq(ndim, 2);
    cr_expect_eq(s[0], 2);
    cr_expect_eq(s[1], 3);
    cr_expect_eq(tern_array_len(v), 6);
    const double *d;
    size_t n;
    cr_assert_eq(tern_value_get_f64_array(v, &d, &n), TERN_OK);
    cr_expect_eq(n, 6);
    cr_expect_eq(d[1 * 3 + 2], 12); /* row-major */
    cr_expect(aligned64(d));
    tern_value_unref(v);

    size_t shape3[3] = { 2, 2, 2 };
    int64_t *id = NULL;
    v = tern_i64_array_new_shaped(3, shape3, &id);
    cr_assert_not_null(v);
    cr_expect(aligned64(id));
    for (int k = 0; k < 8; k++)
        id[k] = k;
    const int64_t *ri;
    cr_assert_eq(tern_value_get_i64_array(v, &ri, &n), TERN_OK);
    cr_expect_eq(n, 8);
    cr_expect_eq(ri[7], 7);
    cr_assert_eq(tern_array_shape(v, &ndim, &s), TERN_OK);
    cr_expect_eq(ndim, 3);
    tern_value_unref(v);

    int64_t isrc[4] = { 1, 2, 3, 4 };
    size_t shape4[1] = { 4 };
    v = tern_i64_array_shaped(1, shape4, isrc);
    cr_assert_eq(tern_value_get_i64_array(v, &ri, &n), TERN_OK);
    cr_expect_eq(ri[3], 4);
    tern_value_unref(v);

    double *fd = NULL;
    v = tern_f64_array_new_shaped(2, shape3, &fd);
    cr_assert_not_null(v);
    cr_expect(aligned64(fd));
    cr_expect_eq(tern_array_len(v), 4);
    tern_value_unref(v);
}

LTest(array, shaped_zero_extent)
{
    size_t shape[3] = { 3, 0, 2 };
    tern_value *v = tern_f64_array_shaped(3, shape, NULL);
    cr_assert_not_null(v);
    cr_expect_eq(tern_array_len(v), 0);
    size_t ndim;
    const size_t *s;
    cr_assert_eq(tern_array_shape(v, &ndim, &s), TERN_OK);
    cr_expect_eq(ndim, 3);
    cr_expect_eq(s[0], 3);
    cr_expect_eq(s[1], 0);
    cr_expect_eq(s[2], 2);
    tern_value_unref(v);
}

LTest(array, bad_ndim_rejected)
{
    size_t shape[TERN_MAX_DIMS + 1];
    for (size_t i = 0; i <= TERN_MAX_DIMS; i++)
        shape[i] = 1;
    double *fd;
    int64_t *id;
    cr_expect_null(tern_f64_array_shaped(0, shape, NULL));
    cr_expect_null(tern_i64_array_shaped(0, shape, NULL));
    cr_expect_null(tern_f64_array_new_shaped(0, shape, &fd));
    cr_expect_null(tern_i64_array_new_shaped(0, shape, &id));
    cr_expect_null(tern_f64_array_shaped(TERN_MAX_DIMS + 1, shape, NULL));
    cr_expect_null(tern_i64_array_shaped(TERN_MAX_DIMS + 1, shape, NULL));
    cr_expect_null(tern_f64_array_new_shaped(TERN_MAX_DIMS + 1, shape, &fd));
    cr_expect_null(tern_i64_array_new_shaped(TERN_MAX_DIMS + 1, shape, &id));
    cr_expect_null(tern_f64_array_shaped(2, NULL, NULL));
    tern_value *v = tern_f64_array_shaped(TERN_MAX_DIMS, shape, NULL);
    cr_assert_not_null(v, "TERN_MAX_DIMS dimensions must be accepted");
    cr_expect_eq(tern_array_len(v), 1);
    tern_value_unref(v);
}

LTest(array, size_overflow_rejected)
{
    double *fd;
    int64_t *id;
    cr_expect_null(tern_f64_array(NULL, SIZE_MAX / 8 + 1));
    cr_expect_null(tern_i64_array(NULL, SIZE_MAX / 8 + 1));
    cr_expect_null(tern_f64_array_new(SIZE_MAX, &fd));
    cr_expect_null(tern_i64_array_new(SIZE_MAX / 4, &id));
    size_t big[2] = { (size_t)1 << 32, (size_t)1 << 32 };
    cr_expect_null(tern_f64_array_shaped(2, big, NULL));
    cr_expect_null(tern_i64_array_new_shaped(2, big, &id));
    size_t edge[3] = { (size_t)1 << 20, (size_t)1 << 20, (size_t)1 << 21 }; /* 2^61 * 8 */
    cr_expect_null(tern_f64_array_shaped(3, edge, NULL));
    size_t wrap[2] = { SIZE_MAX / 2 + 2, 2 }; /* product wraps to a small number */
    cr_expect_null(tern_f64_array_new_shaped(2, wrap, &fd));
}

LTest(array, alignment_all_sizes)
{
    for (size_t n = 0; n < 70; n++) {
        const double *fd;
        const int64_t *id;
        size_t got;
        tern_value *f = tern_f64_array(NULL, n);
        tern_value *i = tern_i64_array(NULL, n);
        cr_assert_eq(tern_value_get_f64_array(f, &fd, &got), TERN_OK);
        cr_assert_eq(got, n);
        cr_expect(aligned64(fd), "f64 n=%zu", n);
        cr_assert_eq(tern_value_get_i64_array(i, &id, &got), TERN_OK);
        cr_expect(aligned64(id), "i64 n=%zu", n);
        tern_value_unref(f);
        tern_value_unref(i);
    }
}

LTest(array, data_mut)
{
    tern_value *v = tern_f64_array(NULL, 4);
    double *d = NULL;
    size_t n = 0;
    cr_assert_eq(tern_value_f64_data_mut(v, &d, &n), TERN_OK);
    cr_expect_eq(n, 4);
    d[2] = 3.25;
    const double *r;
    cr_assert_eq(tern_value_get_f64_array(v, &r, &n), TERN_OK);
    cr_expect_eq(r[2], 3.25);

    tern_value_ref(v); /* shared: no writable access */
    d = NULL;
    cr_expect_eq(tern_value_f64_data_mut(v, &d, &n), TERN_ESHARED);
    cr_expect_null(d);
    tern_value_unref(v);
    cr_expect_eq(tern_value_f64_data_mut(v, &d, &n), TERN_OK);
    tern_value_unref(v);
}

/* ---- equality -------------------------------------------------------------------------- */

static void expect_eq_pair(tern_value *a, tern_value *b, bool equal, const char *what)
{
    cr_assert_not_null(a, "%s", what);
    cr_assert_not_null(b, "%s", what);
    cr_expect_eq(tern_value_equal(a, b), equal, "%s", what);
    cr_expect_eq(tern_value_equal(b, a), equal, "%s (swapped)", what);
    cr_expect(tern_value_equal(a, a), "%s (reflexive)", what);
    tern_value_unref(a);
    tern_value_unref(b);
}

LTest(equal, scalars)
{
    cr_expect(tern_value_equal(NULL, NULL));
    tern_value *x = tern_null();
    cr_expect(!tern_value_equal(x, NULL));
    cr_expect(!tern_value_equal(NULL, x));
    tern_value_unref(x);
    expect_eq_pair(tern_null(), tern_null(), true, "null");
    expect_eq_pair(tern_bool(true), tern_bool(true), true, "true");
    expect_eq_pair(tern_bool(true), tern_bool(false), false, "true/false");
    expect_eq_pair(tern_int(5), tern_int(5), true, "int");
    expect_eq_pair(tern_int(5), tern_int(6), false, "int/int");
    expect_eq_pair(tern_int(INT64_MIN), tern_int(INT64_MAX), false, "int extremes");
    expect_eq_pair(tern_int(1), tern_double(1.0), false, "int/double");
    expect_eq_pair(tern_int(0), tern_bool(false), false, "int/bool");
    expect_eq_pair(tern_null(), tern_bool(false), false, "null/bool");
    expect_eq_pair(tern_double(1.5), tern_double(1.5), true, "double");
    expect_eq_pair(tern_double(1.5), tern_double(1.25), false, "double/double");
}

LTest(equal, doubles_special)
{
    expect_eq_pair(tern_double(NAN), tern_double(NAN), true, "NaN == NaN");
    expect_eq_pair(tern_double(bits_to_double(0x7ff8000000000001ull)),
                   tern_double(bits_to_double(0xfff0000000000123ull)), true,
                   "NaNs with different payloads and signs");
    expect_eq_pair(tern_double(NAN), tern_double(INFINITY), false, "NaN/inf");
    expect_eq_pair(tern_double(0.0), tern_double(-0.0), false, "0.0 vs -0.0");
    expect_eq_pair(tern_double(-0.0), tern_double(-0.0), true, "-0.0");
    expect_eq_pair(tern_double(INFINITY), tern_double(INFINITY), true, "inf");
    expect_eq_pair(tern_double(INFINITY), tern_double(-INFINITY), false, "inf/-inf");
}

LTest(equal, strings)
{
    expect_eq_pair(tern_text("abc"), tern_text("abc"), true, "text");
    expect_eq_pair(tern_text("abc"), tern_text("abd"), false, "text/text");
    expect_eq_pair(tern_text("ab"), tern_text("abc"), false, "prefix");
    expect_eq_pair(tern_text(""), tern_text(""), true, "empty text");
    expect_eq_pair(tern_text_n("a\0b", 3), tern_text_n("a\0c", 3), false, "after NUL");
    expect_eq_pair(tern_text_n("a\0b", 3), tern_text_n("a\0b", 3), true, "with NUL");
    expect_eq_pair(tern_text_n("a\0", 2), tern_text("a"), false, "trailing NUL");
    expect_eq_pair(tern_text("abc"), tern_bytes("abc", 3), false, "text/bytes");
    expect_eq_pair(tern_text("abc"), tern_keyref("abc"), false, "text/keyref");
    expect_eq_pair(tern_bytes("\0\1", 2), tern_bytes("\0\1", 2), true, "bytes");
    expect_eq_pair(tern_bytes("\0\1", 2), tern_bytes("\0\2", 2), false, "bytes/bytes");
    expect_eq_pair(tern_bytes(NULL, 0), tern_bytes("", 0), true, "empty bytes");
    expect_eq_pair(tern_keyref("k1"), tern_keyref("k1"), true, "keyref");
    expect_eq_pair(tern_keyref("k1"), tern_keyref("k2"), false, "keyref/keyref");
}

LTest(equal, containers)
{
    expect_eq_pair(tern_list_new(0), tern_list_new(5), true, "empty lists");
    expect_eq_pair(tern_list_new(0), tern_map_new(), false, "list/map");
    expect_eq_pair(tern_list_of(tern_int(1), tern_list_of(tern_text("x"))),
                   tern_list_of(tern_int(1), tern_list_of(tern_text("x"))), true, "nested lists");
    expect_eq_pair(tern_list_of(tern_int(1), tern_list_of(tern_text("x"))),
                   tern_list_of(tern_int(1), tern_list_of(tern_text("y"))), false,
                   "nested difference");
    expect_eq_pair(tern_list_of(tern_int(1)), tern_list_of(tern_int(1), tern_int(2)), false,
                   "list length");
    expect_eq_pair(tern_list_of(tern_int(1), tern_int(2)), tern_list_of(tern_int(2), tern_int(1)),
                   false, "list order");

    tern_value *a = tern_map_new(), *b = tern_map_new();
    cr_assert_eq(tern_map_set(a, "x", tern_int(1)), TERN_OK);
    cr_assert_eq(tern_map_set(a, "yy", tern_list_of(tern_null())), TERN_OK);
    cr_assert_eq(tern_map_set(b, "yy", tern_list_of(tern_null())), TERN_OK);
    cr_assert_eq(tern_map_set(b, "x", tern_int(1)), TERN_OK);
    cr_expect(tern_value_equal(a, b), "insertion order must not matter");
    cr_assert_eq(tern_map_set(b, "x", tern_int(2)), TERN_OK);
    cr_expect(!tern_value_equal(a, b), "different value");
    cr_assert_eq(tern_map_set(b, "x", tern_int(1)), TERN_OK);
    cr_expect(tern_value_equal(a, b));
    cr_assert_eq(tern_map_set(b, "z", tern_int(1)), TERN_OK);
    cr_expect(!tern_value_equal(a, b), "extra key");
    cr_expect(!tern_value_equal(b, a));
    tern_value_unref(a);
    tern_value_unref(b);

    a = tern_map_new();
    b = tern_map_new();
    cr_assert_eq(tern_map_set(a, "k1", tern_int(1)), TERN_OK);
    cr_assert_eq(tern_map_set(b, "k2", tern_int(1)), TERN_OK);
    expect_eq_pair(a, b, false, "different key, same value");
    expect_eq_pair(tern_map_new(), tern_map_new(), true, "empty maps");
}

LTest(equal, arrays)
{
    double d6[6] = { 1, 2, 3, 4, 5, 6 };
    int64_t i6[6] = { 1, 2, 3, 4, 5, 6 };
    size_t s23[2] = { 2, 3 }, s32[2] = { 3, 2 }, s6[1] = { 6 };
    expect_eq_pair(tern_f64_array(d6, 6), tern_f64_array(d6, 6), true, "f64");
    expect_eq_pair(tern_f64_array(d6, 6), tern_f64_array_shaped(1, s6, d6), true,
                   "1-D vs shaped [6]");
    expect_eq_pair(tern_f64_array(d6, 6), tern_f64_array(d6, 5), false, "length");
    expect_eq_pair(tern_f64_array_shaped(2, s23, d6), tern_f64_array_shaped(2, s23, d6), true,
                   "2x3");
    expect_eq_pair(tern_f64_array_shaped(2, s23, d6), tern_f64_array_shaped(2, s32, d6), false,
                   "2x3 vs 3x2");
    expect_eq_pair(tern_f64_array_shaped(2, s23, d6), tern_f64_array(d6, 6), false, "2x3 vs 6");
    expect_eq_pair(tern_i64_array(i6, 6), tern_i64_array(i6, 6), true, "i64");
    double bits_as_double[6];
    memcpy(bits_as_double, i6, sizeof(i6));
    expect_eq_pair(tern_i64_array(i6, 6), tern_f64_array(bits_as_double, 6), false,
                   "i64 vs f64 with the same bits");
    double e[6];
    memcpy(e, d6, sizeof(e));
    e[5] = 6.5;
    expect_eq_pair(tern_f64_array(d6, 6), tern_f64_array(e, 6), false, "last element");
    double z[1] = { 0.0 }, nz[1] = { -0.0 };
    expect_eq_pair(tern_f64_array(z, 1), tern_f64_array(nz, 1), false, "0.0 vs -0.0 element");
    expect_eq_pair(tern_f64_array(NULL, 0), tern_f64_array(NULL, 0), true, "empty");
    expect_eq_pair(tern_f64_array(NULL, 0), tern_i64_array(NULL, 0), false, "empty f64/i64");
    size_t s30[2] = { 3, 0 }, s03[2] = { 0, 3 };
    expect_eq_pair(tern_f64_array_shaped(2, s30, NULL), tern_f64_array_shaped(2, s03, NULL), false,
                   "3x0 vs 0x3");
    expect_eq_pair(tern_f64_array_shaped(2, s30, NULL), tern_f64_array(NULL, 0), false,
                   "3x0 vs [0]");
}

/* ---- printing -------------------------------------------------------------------------- */

LTest(print, scalars)
{
    expect_str(tern_null(), 0, "null");
    expect_str(NULL, 0, "null");
    expect_str(tern_bool(true), 0, "true");
    expect_str(tern_bool(false), 0, "false");
    expect_str(tern_int(-42), 0, "-42");
    expect_str(tern_int(INT64_MIN), 0, "-9223372036854775808");
    expect_str(tern_int(INT64_MAX), 0, "9223372036854775807");
    expect_str(tern_double(1.5), 0, "1.5");
    expect_str(tern_double(2), 0, "2.0");
    expect_str(tern_double(-0.0), 0, "-0.0");
    expect_str(tern_double(0.1), 0, "0.10000000000000001");
    expect_str(tern_double(1e20), 0, "1e+20");
    expect_str(tern_double(NAN), 0, "NaN");
    expect_str(tern_double(INFINITY), 0, "Infinity");
    expect_str(tern_double(-INFINITY), 0, "-Infinity");
}

LTest(print, strings)
{
    expect_str(tern_text("plain"), 0, "\"plain\"");
    expect_str(tern_text(""), 0, "\"\"");
    expect_str(tern_text("a\"b\\c\nd\te\rf\x01g"), 0, "\"a\\\"b\\\\c\\nd\\te\\rf\\u0001g\"");
    expect_str(tern_text_n("x\0y", 3), 0, "\"x\\u0000y\"");
    expect_str(tern_text("\xc3\xa9"), 0, "\"\xc3\xa9\"");
    expect_str(tern_bytes("\x00\xff\x10", 3), 0, "h'00ff10'");
    expect_str(tern_bytes(NULL, 0), 0, "h''");
    expect_str(tern_keyref("task/1"), 0, "ref(\"task/1\")");
}

LTest(print, containers)
{
    expect_str(tern_list_new(0), 0, "[]");
    expect_str(tern_map_new(), 0, "{}");
    expect_str(tern_list_of(tern_int(1), tern_text("a"), tern_null()), 0, "[1, \"a\", null]");
    tern_value *m = tern_map_new();
    cr_assert_eq(tern_map_set(m, "bb", tern_list_of(tern_bool(true))), TERN_OK);
    cr_assert_eq(tern_map_set(m, "a", tern_int(1)), TERN_OK);
    expect_str(m, 0, "{\"a\": 1, \"bb\": [true]}");
}

LTest(print, pretty)
{
    expect_str(tern_list_of(tern_int(1), tern_list_of(tern_int(2))), TERN_PRINT_PRETTY,
               "[\n  1,\n  [\n    2\n  ]\n]");
    tern_value *m = tern_map_new();
    cr_assert_eq(tern_map_set(m, "a", tern_int(1)), TERN_OK);
    cr_assert_eq(tern_map_set(m, "b", tern_list_new(0)), TERN_OK);
    expect_str(m, TERN_PRINT_PRETTY, "{\n  \"a\": 1,\n  \"b\": []\n}");
    expect_str(tern_list_new(0), TERN_PRINT_PRETTY, "[]");
}

LTest(print, arrays)
{
    double d[3] = { 1, 2.5, -3 };
    expect_str(tern_f64_array(d, 3), 0, "f64[3]:[1.0, 2.5, -3.0]");
    int64_t i[2] = { 1, -2 };
    expect_str(tern_i64_array(i, 2), 0, "i64[2]:[1, -2]");
    expect_str(tern_f64_array(NULL, 0), 0, "f64[0]:[]");
    size_t s23[2] = { 2, 3 };
    int64_t i6[6] = { 1, 2, 3, 4, 5, 6 };
    expect_str(tern_i64_array_shaped(2, s23, i6), 0, "i64[2,3]:[1, 2, 3, 4, 5, 6]");
    double sp[3] = { NAN, INFINITY, 0.1 };
    expect_str(tern_f64_array(sp, 3), 0, "f64[3]:[NaN, Infinity, 0.10000000000000001]");
}

LTest(print, array_truncation)
{
    int64_t v[10];
    for (int k = 0; k < 10; k++)
        v[k] = k;
    expect_str(tern_i64_array(v, 8), 0, "i64[8]:[0, 1, 2, 3, 4, 5, 6, 7]");
    expect_str(tern_i64_array(v, 9), 0, "i64[9]:[0, 1, 2, 3, 4, 5, 6, 7, ...]");
    expect_str(tern_i64_array(v, 10), 0, "i64[10]:[0, 1, 2, 3, 4, 5, 6, 7, ...]");
    expect_str(tern_i64_array(v, 10), TERN_PRINT_FULL, "i64[10]:[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]");
    expect_str(tern_f64_array(NULL, 9), 0, "f64[9]:[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, ...]");
    size_t shape[2] = { 5, 2 };
    expect_str(tern_i64_array_shaped(2, shape, v), 0, "i64[5,2]:[0, 1, 2, 3, 4, 5, 6, 7, ...]");
}

LTest(print, large_array_full)
{
    enum { N = 10000 };
    tern_value *v = tern_i64_array(NULL, N);
    char *s = tern_value_to_string(v, TERN_PRINT_FULL);
    cr_assert_not_null(s);
    /* "i64[10000]:[" + N "0" separated by ", " + "]" */
    cr_expect_eq(strlen(s), strlen("i64[10000]:[") + N + 2 * (N - 1) + 1);
    free(s);
    s = tern_value_to_string(v, 0);
    cr_expect_str_eq(s, "i64[10000]:[0, 0, 0, 0, 0, 0, 0, 0, ...]");
    free(s);
    tern_value_unref(v);
}

/* ---- error table ----------------------------------------------------------------------- */

LTest(error, every_code)
{
    static const char *const names[TERN_ERR_COUNT] = {
        "TERN_OK",       "TERN_EINVAL",       "TERN_ENOMEM",       "TERN_ETYPE",
        "TERN_ERANGE",   "TERN_ENOTFOUND",    "TERN_EMALFORMED",   "TERN_ETRUNCATED",
        "TERN_ETOODEEP", "TERN_ETOOBIG",      "TERN_EUNSUPPORTED", "TERN_ESHARED",
        "TERN_ESHAPE",   "TERN_EIO",          "TERN_ENOTPLUGIN",   "TERN_EABI",
        "TERN_EDLOPEN",  "TERN_ENOTTASK",     "TERN_ETASK",        "TERN_ETIMEDOUT",
        "TERN_ECLOSED",  "TERN_ECONNREFUSED", "TERN_EPROTO",       "TERN_ECANCELED",
        "TERN_ELOST",    "TERN_EAUTH",        "TERN_EBUSY",        "TERN_ENOWORKERS",
        "TERN_EKILLED",
    };
    for (int c = 0; c < TERN_ERR_COUNT; c++) {
        const char *text = tern_strerror(c);
        const char *name = tern_strerror_name(c);
        cr_assert_not_null(text);
        cr_assert_not_null(name);
        cr_expect_str_eq(name, names[c], "code %d", c);
        cr_expect_gt(strlen(text), 0, "code %d", c);
        cr_expect_str_neq(text, "unknown tern error code", "code %d", c);
        for (int o = 0; o < c; o++)
            cr_expect_str_neq(text, tern_strerror(o), "codes %d and %d share a text", o, c);
    }
    cr_expect_str_eq(tern_strerror(TERN_OK), "success");
    cr_expect_str_eq(tern_strerror(TERN_EINVAL), "invalid argument");
    cr_expect_eq(TERN_EKILLED, TERN_ERR_COUNT - 1);
}

LTest(error, unknown_codes)
{
    const int unknown[] = { -1, TERN_ERR_COUNT, TERN_ERR_COUNT + 1, 1000, INT_MIN, INT_MAX };
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        cr_expect_str_eq(tern_strerror(unknown[i]), "unknown tern error code");
        cr_expect_str_eq(tern_strerror_name(unknown[i]), "TERN_E?");
    }
}
