/* JSON-like rendering of values for debugging and the CLI (tern_value_to_string). */
#include "sdk/src/value_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_PREVIEW 8

typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_grow(sbuf *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = true;
        return;
    }
    b->s = s;
    b->cap = cap;
}

static void sb_put(sbuf *b, const char *s, size_t n)
{
    sb_grow(b, n);
    if (b->oom)
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_fmt(sbuf *b, const char *fmt, ...) TERN_PRINTF(2, 3);
static void sb_fmt(sbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void sb_double(sbuf *b, double d)
{
    if (isnan(d))
        sb_str(b, "NaN");
    else if (isinf(d))
        sb_str(b, d < 0 ? "-Infinity" : "Infinity");
    else if (d == floor(d) && fabs(d) < 1e15)
        sb_fmt(b, "%.1f", d);
    else
        sb_fmt(b, "%.17g", d);
}

static void sb_quoted(sbuf *b, const char *s, size_t len)
{
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            sb_str(b, "\\\"");
            break;
        case '\\':
            sb_str(b, "\\\\");
            break;
        case '\n':
            sb_str(b, "\\n");
            break;
        case '\t':
            sb_str(b, "\\t");
            break;
        case '\r':
            sb_str(b, "\\r");
            break;
        default:
            if (c < 0x20)
                sb_fmt(b, "\\u%04x", c);
            else
                sb_put(b, (const char *)&s[i], 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void newline(sbuf *b, unsigned flags, int depth)
{
    if (!(flags & TERN_PRINT_PRETTY))
        return;
    sb_put(b, "\n", 1);
    for (int i = 0; i < depth; i++)
        sb_put(b, "  ", 2);
}

static void print_value(sbuf *b, const tern_value *v, unsigned flags, int depth)
{
    if (depth > TERN_MAX_DEPTH) {
        sb_str(b, "...");
        return;
    }
    switch ((tern_type)v->type) {
    case TERN_T_NULL:
        sb_str(b, "null");
        return;
    case TERN_T_BOOL:
        sb_str(b, v->u.b ? "true" : "false");
        return;
    case TERN_T_INT:
        sb_fmt(b, "%lld", (long long)v->u.i);
        return;
    case TERN_T_DOUBLE:
        sb_double(b, v->u.d);
        return;
    case TERN_T_TEXT:
        sb_quoted(b, v->u.str.data, v->u.str.len);
        return;
    case TERN_T_KEYREF:
        sb_str(b, "ref(");
        sb_quoted(b, v->u.str.data, v->u.str.len);
        sb_str(b, ")");
        return;
    case TERN_T_BYTES:
        sb_str(b, "h'");
        for (size_t i = 0; i < v->u.str.len; i++)
            sb_fmt(b, "%02x", (unsigned char)v->u.str.data[i]);
        sb_str(b, "'");
        return;
    case TERN_T_LIST:
        sb_str(b, "[");
        for (size_t i = 0; i < v->u.list.len; i++) {
            if (i)
                sb_str(b, (flags & TERN_PRINT_PRETTY) ? "," : ", ");
            newline(b, flags, depth + 1);
            print_value(b, v->u.list.items[i], flags, depth + 1);
        }
        if (v->u.list.len)
            newline(b, flags, depth);
        sb_str(b, "]");
        return;
    case TERN_T_MAP:
        sb_str(b, "{");
        for (size_t i = 0; i < v->u.map.len; i++) {
            if (i)
                sb_str(b, (flags & TERN_PRINT_PRETTY) ? "," : ", ");
            newline(b, flags, depth + 1);
            sb_quoted(b, v->u.map.entries[i].key, v->u.map.entries[i].key_len);
            sb_str(b, ": ");
            print_value(b, v->u.map.entries[i].val, flags, depth + 1);
        }
        if (v->u.map.len)
            newline(b, flags, depth);
        sb_str(b, "}");
        return;
    case TERN_T_F64_ARRAY:
    case TERN_T_I64_ARRAY: {
        bool f64 = v->type == TERN_T_F64_ARRAY;
        sb_str(b, f64 ? "f64[" : "i64[");
        for (size_t d = 0; d < v->u.arr.ndim; d++)
            sb_fmt(b, d ? ",%zu" : "%zu", v->u.arr.shape[d]);
        sb_str(b, "]:[");
        size_t n = v->u.arr.n;
        size_t show = (flags & TERN_PRINT_FULL) || n <= ARRAY_PREVIEW ? n : ARRAY_PREVIEW;
        for (size_t i = 0; i < show; i++) {
            if (i)
                sb_str(b, ", ");
            if (f64)
                sb_double(b, ((const double *)v->u.arr.data)[i]);
            else
                sb_fmt(b, "%lld", (long long)((const int64_t *)v->u.arr.data)[i]);
        }
        if (show < n)
            sb_str(b, ", ...");
        sb_str(b, "]");
        return;
    }
    }
}

char *tern_value_to_string(const tern_value *v, unsigned flags)
{
    sbuf b = { 0 };
    if (v)
        print_value(&b, v, flags, 0);
    else
        sb_str(&b, "null");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
