/* UTF-8 validation, and copies made valid (utf8.h).
 *
 * Design notes: one decoding step (next_char) serves all three functions: it says how many
 * bytes of the input the next unit takes and whether it is a character or an invalid run to be
 * replaced. The second byte's allowed range depends on the lead byte (RFC 3629's table), which
 * rules out overlongs, surrogates and code points above U+10FFFF without decoding the value,
 * and makes every invalid run a "maximal subpart" (Unicode 15, 3.9). Output never shrinks a
 * unit (a valid character keeps its bytes, an invalid run of 1 to 3 bytes becomes 3), so
 * input beyond cap-1 bytes is never needed. */
#include "sdk/src/utf8.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLACEMENT     "\xEF\xBF\xBD" /* U+FFFD */
#define REPLACEMENT_LEN 3
#define FMT_STACK       4096 /* terni_utf8_fmt formats into the stack up to this cap */

/* The unit at s[0..len) (len >= 1): returns its length in bytes and sets *valid. */
static size_t next_char(const unsigned char *s, size_t len, bool *valid)
{
    unsigned c = s[0];
    *valid = true;
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0; /* below: overlong */
        else if (c == 0xED)
            hi = 0x9F; /* above: a surrogate */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90; /* below: overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above: past U+10FFFF */
    } else {           /* a continuation byte, C0/C1 (always overlong) or F5..FF */
        *valid = false;
        return 1;
    }
    size_t n = 1;
    if (n < len && s[n] >= lo && s[n] <= hi) {
        for (n = 2; n <= need && n < len && (s[n] & 0xC0) == 0x80; n++)
            ;
    }
    *valid = n == need + 1;
    return n;
}

bool terni_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        /* ASCII, eight bytes at a time (keys, names and messages are mostly ASCII) */
        while (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080u)
                break;
            i += 8;
        }
        if (i >= len)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        bool valid;
        i += next_char(s + i, len - i, &valid);
        if (!valid)
            return false;
    }
    return true;
}

size_t terni_utf8_copy(char *dst, size_t cap, const char *src, size_t len)
{
    if (!dst || cap == 0)
        return 0;
    const unsigned char *s = (const unsigned char *)src;
    size_t in = 0, out = 0, room = cap - 1;
    while (s && in < len && s[in]) {
        bool valid;
        size_t n = next_char(s + in, len - in, &valid);
        if (valid) {
            if (n > room - out)
                break;
            memcpy(dst + out, s + in, n);
            out += n;
        } else {
            if (REPLACEMENT_LEN > room - out)
                break;
            memcpy(dst + out, REPLACEMENT, REPLACEMENT_LEN);
            out += REPLACEMENT_LEN;
        }
        in += n;
    }
    dst[out] = '\0';
    return out;
}

size_t terni_utf8_vfmt(char *dst, size_t cap, const char *fmt, va_list ap)
{
    if (!dst || cap == 0)
        return 0;
    /* Formatted into a scratch buffer of cap + 3 bytes: every character that starts within
     * the first cap-1 bytes is then whole, so a cut made by vsnprintf is never mistaken for a
     * truncated sequence (which would become U+FFFD), and anything after it cannot fit. */
    char stack[FMT_STACK + 3], *buf = stack;
    size_t size = cap + 3, limit = cap;
    if (cap > FMT_STACK && !(buf = malloc(size))) {
        buf = stack; /* out of memory: at most FMT_STACK - 1 bytes of the text */
        size = sizeof(stack);
        limit = FMT_STACK;
    }
    int n = vsnprintf(buf, size, fmt ? fmt : "", ap);
    size_t got = n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
    size_t out = terni_utf8_copy(dst, limit, buf, got);
    if (buf != stack)
        free(buf);
    return out;
}

size_t terni_utf8_fmt(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = terni_utf8_vfmt(dst, cap, fmt, ap);
    va_end(ap);
    return n;
}
