/* sdk/src/utf8.c: validation against a reference decoder, and copies that are always valid
 * UTF-8: bad bytes, every truncation of multi-byte characters, overlongs, surrogates, code
 * points past U+10FFFF, and cuts at every capacity. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdk/src/utf8.h"

#define FFFD "\xEF\xBF\xBD"

/* The code points of a valid character of each length, at the edges of the ranges. */
static const char *const valid_chars[] = {
    "\x7F",
    "\xC2\x80",
    "\xC3\xA9", /* é */
    "\xDF\xBF",
    "\xE0\xA0\x80",
    "\xE2\x82\xAC", /* € */
    "\xED\x9F\xBF",
    "\xEE\x80\x80",
    "\xEF\xBF\xBF",
    "\xF0\x90\x80\x80",
    "\xF0\x9F\x98\x80", /* 😀 */
    "\xF4\x8F\xBF\xBF",
};

/* Reference: RFC 3629 by decoding the code point (a different method from utf8.c's). */
static bool ref_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!n || i + n > len)
            return false;
        uint32_t cp = n == 1 ? c : c & (0x7Fu >> n);
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n;
    }
    return true;
}

static void expect_copy(const char *src, size_t len, size_t cap, const char *want)
{
    char dst[256];
    cr_assert_leq(cap, sizeof(dst));
    memset(dst, 'Z', sizeof(dst));
    size_t n = terni_utf8_copy(dst, cap, src, len);
    cr_assert_eq(n, strlen(want), "copy of %zu bytes into %zu: %zu bytes, want %zu", len, cap, n,
                 strlen(want));
    cr_assert_str_eq(dst, want);
    cr_assert(terni_utf8_valid(dst, n));
    cr_assert_lt(n, cap);
    for (size_t i = cap; i < sizeof(dst); i++)
        cr_assert_eq(dst[i], 'Z', "wrote past cap %zu at %zu", cap, i);
}

Test(utf8, valid_text_is_copied_unchanged)
{
    expect_copy("", 0, 1, "");
    expect_copy("hello", 5, 64, "hello");
    for (size_t i = 0; i < sizeof(valid_chars) / sizeof(*valid_chars); i++) {
        char s[16];
        snprintf(s, sizeof(s), "a%sb", valid_chars[i]);
        cr_assert(terni_utf8_valid(s, strlen(s)), "char %zu", i);
        expect_copy(s, strlen(s), 64, s);
    }
}

Test(utf8, bad_bytes_become_replacement_characters)
{
    expect_copy("a\xFF"
                "b",
                3, 64, "a" FFFD "b");
    expect_copy("\x80", 1, 64, FFFD);
    expect_copy("\x80\xBF", 2, 64, FFFD FFFD);
    expect_copy("\xFE\xFF", 2, 64, FFFD FFFD);
    expect_copy("\xF5\x80\x80\x80", 4, 64, FFFD FFFD FFFD FFFD);
    cr_assert_not(terni_utf8_valid("a\xFF", 2));
    cr_assert_not(terni_utf8_valid("\x80", 1));
}

Test(utf8, every_truncation_of_a_multibyte_character_is_one_replacement)
{
    for (size_t i = 0; i < sizeof(valid_chars) / sizeof(*valid_chars); i++) {
        const char *c = valid_chars[i];
        for (size_t k = 1; k < strlen(c); k++) {
            char s[16], want[16];
            /* in the middle, then at the end of the text */
            snprintf(s, sizeof(s), "x%.*sy", (int)k, c);
            cr_assert_not(terni_utf8_valid(s, strlen(s)), "char %zu cut at %zu", i, k);
            expect_copy(s, strlen(s), 64, "x" FFFD "y");
            snprintf(want, sizeof(want), "x%s", FFFD);
            expect_copy(s, 1 + k, 64, want);
            cr_assert_not(terni_utf8_valid(s, 1 + k));
            /* a cut inside the character by len, with the rest of the bytes after it */
            snprintf(s, sizeof(s), "x%s", c);
            expect_copy(s, 1 + k, 64, want);
        }
    }
}

Test(utf8, overlongs_surrogates_and_past_10ffff_are_replaced)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "\xC0\x80", FFFD FFFD },                                     /* NUL, overlong */
        { "\xC1\xBF", FFFD FFFD },                                     /* U+007F, overlong */
        { "\xE0\x80\x80", FFFD FFFD FFFD },                            /* overlong */
        { "\xE0\x9F\xBF", FFFD FFFD FFFD },                            /* U+07FF, overlong */
        { "\xF0\x80\x80\x80", FFFD FFFD FFFD FFFD },                   /* overlong */
        { "\xF0\x8F\xBF\xBF", FFFD FFFD FFFD FFFD },                   /* U+FFFF, overlong */
        { "\xED\xA0\x80", FFFD FFFD FFFD },                            /* U+D800 */
        { "\xED\xBF\xBF", FFFD FFFD FFFD },                            /* U+DFFF */
        { "\xED\xA0\xBD\xED\xB8\x80", FFFD FFFD FFFD FFFD FFFD FFFD }, /* CESU-8 pair */
        { "\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD },                   /* U+110000 */
        { "\xF7\xBF\xBF\xBF", FFFD FFFD FFFD FFFD },                   /* U+1FFFFF */
        { "\xE2\x82"
          "a",
          FFFD "a" },                                    /* truncated, then ASCII */
        { "\xE2\x82\xE2\x82\xAC", FFFD "\xE2\x82\xAC" }, /* truncated, then a whole € */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        cr_assert_not(terni_utf8_valid(cases[i].in, strlen(cases[i].in)), "case %zu", i);
        expect_copy(cases[i].in, strlen(cases[i].in), 64, cases[i].out);
    }
}

Test(utf8, cut_at_a_character_boundary_for_every_capacity)
{
    const char *s = "ab\xE2\x82\xAC"
                    "c\xF0\x9F\x98\x80"
                    "\xFF"
                    "d"; /* ab € c 😀 <bad> d */
    /* the longest prefix of these units that fits in cap-1 bytes */
    static const size_t ends[] = { 0, 1, 2, 5, 6, 10, 13, 14 };
    char full[64];
    snprintf(full, sizeof(full),
             "ab\xE2\x82\xAC"
             "c\xF0\x9F\x98\x80" FFFD "d");
    for (size_t cap = 1; cap <= 20; cap++) {
        size_t want = 0;
        for (size_t k = 0; k < sizeof(ends) / sizeof(*ends); k++)
            if (ends[k] <= cap - 1)
                want = ends[k];
        char w[64];
        snprintf(w, sizeof(w), "%.*s", (int)want, full);
        expect_copy(s, strlen(s), cap, w);
    }
    /* a NUL ends the copy; len 0 and a NULL source give "" */
    expect_copy("ab\0cd", 5, 64, "ab");
    char d[4] = "xyz";
    cr_assert_eq(terni_utf8_copy(d, 4, NULL, 0), 0);
    cr_assert_str_eq(d, "");
    cr_assert_eq(terni_utf8_copy(d, 1, "abc", 3), 0);
    cr_assert_str_eq(d, "");
}

Test(utf8, a_1023_byte_cut_inside_a_character_drops_it)
{
    char src[1100], dst[1024];
    memset(src, 'a', 1021);
    memcpy(src + 1021,
           "\xE2\x82\xAC"
           "tail",
           8);
    size_t n = terni_utf8_copy(dst, sizeof(dst), src, 1029);
    cr_assert_eq(n, 1021);
    cr_assert(terni_utf8_valid(dst, n));
    /* what a cut at 1,023 bytes leaves: the character cut after its first two bytes */
    cr_assert_not(terni_utf8_valid(src, 1023));
    n = terni_utf8_fmt(dst, sizeof(dst), "%.*s", 1029, src);
    cr_assert_eq(n, 1021, "fmt drops the character vsnprintf would have cut: %zu", n);
}

Test(utf8, fmt_formats_then_makes_valid)
{
    char d[64];
    cr_assert_eq(terni_utf8_fmt(d, sizeof(d), "task %s failed: %d", "k\xC3\xA9", 7), 18);
    cr_assert_str_eq(d, "task k\xC3\xA9 failed: 7");
    terni_utf8_fmt(d, sizeof(d), "bad %s byte", "\xFF");
    cr_assert_str_eq(d, "bad " FFFD " byte");
    /* cut by the capacity, not by vsnprintf: a whole € or nothing, never a replacement */
    for (size_t cap = 1; cap <= 13; cap++) {
        size_t n = terni_utf8_fmt(d, cap, "abc%s", "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC");
        size_t want = cap - 1 < 3 ? cap - 1 : 3 + (cap - 1 - 3) / 3 * 3;
        cr_assert_eq(n, want, "cap %zu: %zu", cap, n);
        cr_assert(terni_utf8_valid(d, n));
        cr_assert_null(strstr(d, FFFD), "cap %zu: %s", cap, d);
    }
    /* past the stack buffer */
    size_t big = 10000;
    char *src = malloc(big + 1), *dst = malloc(big);
    cr_assert(src && dst);
    for (size_t i = 0; i < big; i += 2)
        memcpy(src + i, "\xC3\xA9", 2);
    src[big] = '\0';
    size_t n = terni_utf8_fmt(dst, big, "%s!", src);
    cr_assert_eq(n, big - 2, "%zu", n); /* 4,999 é; the 5,000th and ! do not fit */
    cr_assert(terni_utf8_valid(dst, n));
    free(src);
    free(dst);
}

Test(utf8, validation_matches_a_reference_decoder)
{
    unsigned char s[4];
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        cr_assert_eq(terni_utf8_valid((char *)s, 1), ref_valid(s, 1), "%02x", a);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            cr_assert_eq(terni_utf8_valid((char *)s, 2), ref_valid(s, 2), "%02x %02x", a, b);
        }
    }
    /* every 3-byte sequence with a lead E0..EF, and 4-byte ones with a lead F0..F7 */
    for (unsigned a = 0xE0; a < 0xF8; a++)
        for (unsigned b = 0x70; b < 0xD0; b++)
            for (unsigned c = 0x70; c < 0xD0; c++)
                for (unsigned d = a < 0xF0 ? 0 : 0x70; d < (a < 0xF0 ? 1u : 0xD0u); d++) {
                    s[0] = (unsigned char)a, s[1] = (unsigned char)b, s[2] = (unsigned char)c;
                    s[3] = (unsigned char)d;
                    size_t n = a < 0xF0 ? 3 : 4;
                    bool v = terni_utf8_valid((char *)s, n);
                    cr_assert_eq(v, ref_valid(s, n), "%02x %02x %02x %02x", a, b, c, d);
                    char out[32];
                    size_t m = terni_utf8_copy(out, sizeof(out), (char *)s, n);
                    cr_assert(terni_utf8_valid(out, m));
                    if (v)
                        cr_assert(m == n && !memcmp(out, s, n));
                    else
                        cr_assert_not_null(strstr(out, FFFD));
                }
}

Test(utf8, random_bytes_always_copy_to_valid_text)
{
    uint64_t x = 88172645463325252u;
    for (int round = 0; round < 20000; round++) {
        unsigned char src[40];
        size_t len = 1 + (size_t)(round % 40);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            src[i] = (unsigned char)(x % 3 ? 0x80 + x % 0x80 : x % 256);
            if (!src[i])
                src[i] = 'n';
        }
        char out[200];
        size_t cap = 1 + (size_t)(x >> 40) % 140;
        size_t n = terni_utf8_copy(out, cap, (char *)src, len);
        cr_assert_lt(n, cap);
        cr_assert_eq(strlen(out), n);
        cr_assert(terni_utf8_valid(out, n));
        cr_assert_eq(terni_utf8_valid((char *)src, len), ref_valid(src, len));
    }
}
