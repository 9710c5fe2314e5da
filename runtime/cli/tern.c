/* tern: the command-line client.
 *
 *     tern [--scheduler URL] [--tls-ca PEM] upload FILE.so...
 *     tern [--scheduler URL] [--tls-ca PEM] call [--timeout SECONDS] PLUGIN:SYMBOL [ARG...]
 *     tern [--scheduler URL] [--tls-ca PEM] status [--json]
 *     tern [--scheduler URL] [--tls-ca PEM] who-has KEY...
 *
 * Design notes
 *  - A client like any other: only the public SDK (tern.h), so everything here is also
 *    something a program can do.
 *  - JSON in: jansson parses each ARG. A few object shapes are reserved for the value types
 *    JSON lacks (typed arrays, bytes, key references; see the usage text), and the printer
 *    writes exactly those shapes, so what `tern call` prints can be passed back to it.
 *  - JSON out: our own printer, not jansson's. jansson prints reals with 17 significant
 *    digits (0.1 as 0.10000000000000001); we print the shortest text that reads back to the
 *    same double, and keep a double recognisable as one ("2.0", not "2").
 *  - Exit status: 0 success; 1 the cluster said no (connection, upload, failed task,
 *    timeout); 2 the command line is wrong, in which case nothing was sent.
 *  - The scheduler defaults to $TERN_SCHEDULER, else tcp://127.0.0.1:7786. Never local://
 *    by default: that would start and stop a whole cluster for one command (and forget the
 *    plugins uploaded to it); local://N is accepted when asked for.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <tern/tern.h>

#define DEFAULT_SCHEDULER "tcp://127.0.0.1:7786"
#define EXIT_FAILED       1
#define EXIT_USAGE        2

static const char usage_text[] =
    "usage: tern [--scheduler URL] [--tls-ca PEM] COMMAND [ARG...]\n"
    "\n"
    "commands:\n"
    "  upload FILE.so...              upload plugins; prints id, name, version, task count\n"
    "  call [--timeout S] [--progress] PLUGIN:SYMBOL [ARG...]\n"
    "                                 run one task, wait, print its result as JSON\n"
    "  status [--json] [--watch [--interval S] [--count N]]\n"
    "                                 workers, tasks by state, keys in memory,\n"
    "                                 progress per task; --watch redraws every S seconds\n"
    "  who-has KEY...                 which workers hold each key (JSON)\n"
    "\n"
    "options:\n"
    "  --scheduler URL   tcp://host:port, ipc:///path, tls+tcp://host:port, or local://N (a\n"
    "                    throwaway cluster of N workers for this one command; it has only\n"
    "                    the built-in arrays plugin). Default: $TERN_SCHEDULER, else\n"
    "                    " DEFAULT_SCHEDULER "\n"
    "  --tls-ca PEM      CA certificate for tls+tcp:// (default: $TERN_TLS_CA)\n"
    "  --token-file F    the cluster's token file (default: $TERN_TOKEN_FILE)\n"
    "  --timeout S       call: give up after S seconds (default: wait for the result)\n"
    "  --progress        call: show a progress bar on stderr (default: only on a terminal,\n"
    "                    once the call has taken half a second)\n"
    "  --json            status: the scheduler's raw status map as JSON\n"
    "  --watch           status: repeat every --interval S seconds (default 1) until\n"
    "                    interrupted, or --count N times\n"
    "\n"
    "call arguments are JSON values: 41, 2.5, \"text\", true, null, [1, \"a\"], {\"k\": 1}.\n"
    "Integers become int, other numbers double, objects maps. JSON has no typed arrays, so\n"
    "these objects stand for other tern values (arrays:* tasks need typed arrays):\n"
    "  {\"f64\": [1, 2.5]}                  float64 array (also \"NaN\", \"Infinity\", "
    "\"-Infinity\")\n"
    "  {\"i64\": [1, 2]}                    int64 array\n"
    "  {\"f64\": [1, 2, 3, 4], \"shape\": [2, 2]}   n-D array, row-major (i64 too)\n"
    "  {\"bytes\": \"00ff\"}                  bytes, in hex\n"
    "  {\"ref\": \"KEY\"}                     the result stored under KEY (a dependency)\n"
    "  {\"map\": {...}}                     a map taken literally, for keys like the above\n"
    "Results print the same way; non-finite doubles print as \"NaN\", \"Infinity\".\n"
    "\n"
    "example: tern --scheduler local://1 call arrays:sum '{\"f64\": [1, 2, 3]}'\n"
    "\n"
    "environment: TERN_SCHEDULER, TERN_TLS_CA\n"
    "exit status: 0 success, 1 failure (the reason is on stderr), 2 usage error\n";

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tern%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'tern --help' for usage.\n");
    return EXIT_USAGE;
}

/* Reports a failed SDK call: "tern: WHAT: <code text>: <client message>". */
static int sdk_failed(const char *what, int rc)
{
    const char *msg = tern_client_errmsg(NULL);
    fprintf(stderr, "tern: %s: %s%s%s\n", what, tern_strerror(rc), *msg ? ": " : "", msg);
    return EXIT_FAILED;
}

static int finish_output(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tern: cannot write the output: %s\n", strerror(errno));
        return EXIT_FAILED;
    }
    return 0;
}

/* ---- connecting --------------------------------------------------------------------- */

typedef struct globals {
    const char *scheduler;
    const char *tls_ca;
    const char *token_file;
} globals;

static int open_client(const globals *g, tern_client **c)
{
    tern_connect_opts opts = { .tls_ca_file = g->tls_ca, .token_file = g->token_file };
    if (!strncmp(g->scheduler, "local://", 8)) /* its workers share our stderr */
        setenv("TERN_ARRAYS_QUIET", "1", 0);
    int rc = tern_connect(g->scheduler, &opts, c);
    if (rc == TERN_OK)
        return 0;
    const char *msg = tern_client_errmsg(NULL);
    if (strstr(msg, g->scheduler)) /* the message names the address already */
        fprintf(stderr, "tern: %s: %s\n", tern_strerror(rc), msg);
    else
        fprintf(stderr, "tern: cannot connect to %s: %s%s%s\n", g->scheduler, tern_strerror(rc),
                *msg ? ": " : "", msg);
    if (rc == TERN_ECONNREFUSED || rc == TERN_ETIMEDOUT)
        fprintf(stderr, "tern: is a tern-scheduler running there? Choose another with "
                        "--scheduler URL or $TERN_SCHEDULER.\n");
    return EXIT_FAILED;
}

/* Flushes the output, then disconnects (which releases the command's keys). The output goes
 * first so that it reaches the reader even if closing takes a while. */
static int close_client(tern_client *c, int status)
{
    int out = finish_output();
    tern_close(c);
    return status ? status : out;
}

/* ---- JSON -> value ------------------------------------------------------------------ */

/* The reserved object shapes (see the usage text), by their key sets. */
typedef enum shape_kind { PLAIN, F64, I64, BYTES, REF, MAP } shape_kind;

static shape_kind kind_of_key(const char *k)
{
    return !strcmp(k, "f64")     ? F64
           : !strcmp(k, "i64")   ? I64
           : !strcmp(k, "bytes") ? BYTES
           : !strcmp(k, "ref")   ? REF
           : !strcmp(k, "map")   ? MAP
                                 : PLAIN;
}

/* The reserved shape a set of (one or two) keys forms: {tag} or {f64|i64, "shape"}. */
static shape_kind reserved_kind(size_t n, const char *k0, const char *k1)
{
    if (n == 1)
        return kind_of_key(k0);
    if (n != 2)
        return PLAIN;
    if (!strcmp(k0, "shape")) {
        const char *t = k0;
        k0 = k1;
        k1 = t;
    }
    shape_kind k = kind_of_key(k0);
    return (k == F64 || k == I64) && !strcmp(k1, "shape") ? k : PLAIN;
}

static shape_kind json_kind(const json_t *obj)
{
    size_t n = json_object_size(obj);
    if (n == 0 || n > 2)
        return PLAIN;
    void *it = json_object_iter((json_t *)obj);
    const char *k0 = json_object_iter_key(it);
    const char *k1 = n == 2 ? json_object_iter_key(json_object_iter_next((json_t *)obj, it)) : "";
    return reserved_kind(n, k0, k1);
}

typedef struct conv {
    char err[512];
} conv;

static tern_value *conv_fail(conv *cv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static tern_value *conv_fail(conv *cv, const char *fmt, ...)
{
    if (!cv->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cv->err, sizeof(cv->err), fmt, ap);
        va_end(ap);
    }
    return NULL;
}

static tern_value *from_json(const json_t *j, int depth, conv *cv);

/* {"f64"|"i64": [...], "shape": [...]} */
static tern_value *typed_array(const json_t *obj, shape_kind kind, conv *cv)
{
    const char *tag = kind == F64 ? "f64" : "i64";
    const json_t *data = json_object_get(obj, tag), *shape = json_object_get(obj, "shape");
    if (!json_is_array(data))
        return conv_fail(cv, "\"%s\" must be a list of numbers", tag);
    size_t n = json_array_size(data), dims[TERN_MAX_DIMS], ndim = 1;
    dims[0] = n;
    if (shape) {
        ndim = json_array_size(shape);
        if (!json_is_array(shape) || ndim < 1 || ndim > TERN_MAX_DIMS)
            return conv_fail(cv, "\"shape\" must be a list of 1 to %d sizes", TERN_MAX_DIMS);
        size_t count = 1;
        for (size_t d = 0; d < ndim; d++) {
            const json_t *s = json_array_get(shape, d);
            json_int_t v = json_is_integer(s) ? json_integer_value(s) : -1;
            if (v < 0 || (uint64_t)v > SIZE_MAX / 8)
                return conv_fail(cv, "\"shape\" must hold sizes (integers >= 0)");
            dims[d] = (size_t)v;
            count = dims[d] && count > SIZE_MAX / 8 / dims[d] ? SIZE_MAX : count * dims[d];
        }
        if (count == SIZE_MAX)
            return conv_fail(cv, "\"shape\" describes too many elements");
        if (count != n)
            return conv_fail(cv, "\"shape\" describes %zu elements but \"%s\" has %zu", count, tag,
                             n);
    }
    double *f = NULL;
    int64_t *i = NULL;
    tern_value *v = kind == F64 ? tern_f64_array_new_shaped(ndim, dims, &f)
                                : tern_i64_array_new_shaped(ndim, dims, &i);
    if (!v)
        return conv_fail(cv, "out of memory");
    for (size_t k = 0; k < n; k++) {
        const json_t *e = json_array_get(data, k);
        const char *s = json_string_value(e);
        if (kind == I64 && json_is_integer(e)) {
            i[k] = json_integer_value(e);
        } else if (kind == F64 && json_is_number(e)) {
            f[k] = json_number_value(e);
        } else if (kind == F64 && s && (!strcmp(s, "NaN") || !strcmp(s, "Infinity"))) {
            f[k] = !strcmp(s, "NaN") ? NAN : INFINITY;
        } else if (kind == F64 && s && !strcmp(s, "-Infinity")) {
            f[k] = -INFINITY;
        } else {
            tern_value_unref(v);
            return conv_fail(cv, "element %zu of \"%s\" is not %s", k, tag,
                             kind == F64 ? "a number" : "an integer");
        }
    }
    return v;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static tern_value *bytes_from_hex(const json_t *j, conv *cv)
{
    const char *s = json_string_value(j);
    size_t len = json_string_length(j);
    if (!s || len % 2)
        return conv_fail(cv, "\"bytes\" must be a string of hex digit pairs");
    unsigned char *buf = malloc(len / 2 + 1);
    if (!buf)
        return conv_fail(cv, "out of memory");
    for (size_t k = 0; k < len / 2; k++) {
        int hi = hex_digit(s[2 * k]), lo = hex_digit(s[2 * k + 1]);
        if (hi < 0 || lo < 0) {
            free(buf);
            return conv_fail(cv, "\"bytes\" must be a string of hex digit pairs");
        }
        buf[k] = (unsigned char)(hi << 4 | lo);
    }
    tern_value *v = tern_bytes(buf, len / 2);
    free(buf);
    return v ? v : conv_fail(cv, "out of memory");
}

/* The entries of a JSON object as a map (no reserved-shape interpretation at this level). */
static tern_value *plain_map(const json_t *obj, int depth, conv *cv)
{
    tern_value *m = tern_map_new();
    if (!m)
        return conv_fail(cv, "out of memory");
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        tern_value *item = from_json(val, depth + 1, cv);
        if (!item || tern_map_set(m, key, item) != TERN_OK) {
            tern_value_unref(m);
            return conv_fail(cv, "out of memory");
        }
    }
    return m;
}

/* depth: containers around j, counting the argument list itself. */
static tern_value *from_json(const json_t *j, int depth, conv *cv)
{
    tern_value *v = NULL;
    switch (json_typeof(j)) {
    case JSON_NULL:
        v = tern_null();
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v = tern_bool(json_is_true(j));
        break;
    case JSON_INTEGER:
        v = tern_int(json_integer_value(j));
        break;
    case JSON_REAL:
        v = tern_double(json_real_value(j));
        break;
    case JSON_STRING:
        v = tern_text_n(json_string_value(j), json_string_length(j));
        break;
    case JSON_ARRAY: {
        if (depth >= TERN_MAX_DEPTH)
            return conv_fail(cv, "nests deeper than %d lists and maps", TERN_MAX_DEPTH);
        v = tern_list_new(json_array_size(j));
        for (size_t k = 0; v && k < json_array_size(j); k++) {
            tern_value *item = from_json(json_array_get(j, k), depth + 1, cv);
            if (!item || tern_list_append(v, item) != TERN_OK) {
                tern_value_unref(v);
                return conv_fail(cv, "out of memory");
            }
        }
        break;
    }
    case JSON_OBJECT: {
        if (depth >= TERN_MAX_DEPTH)
            return conv_fail(cv, "nests deeper than %d lists and maps", TERN_MAX_DEPTH);
        shape_kind kind = json_kind(j);
        if (kind == F64 || kind == I64)
            return typed_array(j, kind, cv);
        if (kind == BYTES)
            return bytes_from_hex(json_object_get(j, "bytes"), cv);
        if (kind == REF) {
            const char *key = json_string_value(json_object_get(j, "ref"));
            if (!key || !*key)
                return conv_fail(cv, "\"ref\" must be a key (non-empty text)");
            v = tern_keyref(key);
            break;
        }
        if (kind == MAP) {
            const json_t *inner = json_object_get(j, "map");
            if (!json_is_object(inner))
                return conv_fail(cv, "\"map\" must be an object");
            return plain_map(inner, depth, cv);
        }
        return plain_map(j, depth, cv);
    }
    }
    return v ? v : conv_fail(cv, "out of memory");
}

/* ---- value -> JSON ------------------------------------------------------------------ */

static void put_text(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)s[k];
        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

/* Shortest text that reads back as d; with force_real, integral values get ".0". */
static void put_double(FILE *f, double d, bool force_real)
{
    if (isnan(d) || isinf(d)) {
        fputs(isnan(d) ? "\"NaN\"" : d > 0 ? "\"Infinity\"" : "\"-Infinity\"", f);
        return;
    }
    char buf[40];
    if (d == trunc(d) && fabs(d) < 1e15) { /* integral: 10, not the shorter 1e+01 */
        snprintf(buf, sizeof(buf), "%.0f", d);
        fputs(buf, f);
        if (force_real)
            fputs(".0", f);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    fputs(buf, f);
    if (force_real && !strpbrk(buf, ".eE"))
        fputs(".0", f);
}

/* indent < 0: one line; else pretty-printed with `indent` spaces per level. */
static void put_value(FILE *f, const tern_value *v, int indent, int level);

static void newline(FILE *f, int indent, int level)
{
    if (indent >= 0)
        fprintf(f, "\n%*s", indent * level, "");
}

static void put_array(FILE *f, const tern_value *v)
{
    size_t ndim = 0, n = 0;
    const size_t *shape = NULL;
    const double *fd = NULL;
    const int64_t *id = NULL;
    tern_array_shape(v, &ndim, &shape);
    bool is_f64 = tern_value_type(v) == TERN_T_F64_ARRAY;
    if (is_f64)
        tern_value_get_f64_array(v, &fd, &n);
    else
        tern_value_get_i64_array(v, &id, &n);
    fputs(is_f64 ? "{\"f64\": [" : "{\"i64\": [", f);
    for (size_t k = 0; k < n; k++) {
        if (k)
            fputs(", ", f);
        if (is_f64)
            put_double(f, fd[k], false);
        else
            fprintf(f, "%" PRId64, id[k]);
    }
    fputc(']', f);
    if (ndim != 1) {
        fputs(", \"shape\": [", f);
        for (size_t d = 0; d < ndim; d++)
            fprintf(f, "%s%zu", d ? ", " : "", shape[d]);
        fputc(']', f);
    }
    fputc('}', f);
}

static void put_map(FILE *f, const tern_value *v, int indent, int level)
{
    size_t n = tern_map_len(v);
    const char *k0 = "", *k1 = "";
    tern_map_entry(v, 0, &k0, NULL);
    tern_map_entry(v, 1, &k1, NULL);
    /* A map that looks like a reserved shape is wrapped, so it reads back as a map. */
    bool wrap = n && reserved_kind(n, k0, k1) != PLAIN;
    if (wrap) {
        fputs("{\"map\": ", f);
        level++;
    }
    if (!n)
        fputs("{}", f);
    for (size_t k = 0; k < n; k++) {
        const char *key;
        const tern_value *item;
        tern_map_entry(v, k, &key, &item);
        fputs(k ? "," : "{", f);
        if (indent < 0 && k)
            fputc(' ', f);
        newline(f, indent, level + 1);
        put_text(f, key, strlen(key));
        fputs(": ", f);
        put_value(f, item, indent, level + 1);
    }
    if (n) {
        newline(f, indent, level);
        fputc('}', f);
    }
    if (wrap)
        fputc('}', f);
}

static void put_value(FILE *f, const tern_value *v, int indent, int level)
{
    bool b;
    int64_t i;
    double d;
    const char *s;
    size_t len;
    const void *data;
    switch (tern_value_type(v)) {
    case TERN_T_NULL:
        fputs("null", f);
        break;
    case TERN_T_BOOL:
        tern_value_get_bool(v, &b);
        fputs(b ? "true" : "false", f);
        break;
    case TERN_T_INT:
        tern_value_get_int(v, &i);
        fprintf(f, "%" PRId64, i);
        break;
    case TERN_T_DOUBLE:
        tern_value_get_double(v, &d);
        put_double(f, d, true);
        break;
    case TERN_T_TEXT:
        tern_value_get_text(v, &s, &len);
        put_text(f, s, len);
        break;
    case TERN_T_BYTES:
        tern_value_get_bytes(v, &data, &len);
        fputs("{\"bytes\": \"", f);
        for (size_t k = 0; k < len; k++)
            fprintf(f, "%02x", ((const unsigned char *)data)[k]);
        fputs("\"}", f);
        break;
    case TERN_T_KEYREF:
        tern_value_get_keyref(v, &s);
        fputs("{\"ref\": ", f);
        put_text(f, s, strlen(s));
        fputc('}', f);
        break;
    case TERN_T_F64_ARRAY:
    case TERN_T_I64_ARRAY:
        put_array(f, v);
        break;
    case TERN_T_LIST: {
        size_t n = tern_list_len(v);
        fputc('[', f);
        for (size_t k = 0; k < n; k++) {
            const tern_value *item;
            tern_list_get(v, k, &item);
            if (k)
                fputs(indent < 0 ? ", " : ",", f);
            newline(f, indent, level + 1);
            put_value(f, item, indent, level + 1);
        }
        if (n)
            newline(f, indent, level);
        fputc(']', f);
        break;
    }
    case TERN_T_MAP:
        put_map(f, v, indent, level);
        break;
    }
}

/* ---- upload ------------------------------------------------------------------------- */

static int cmd_upload(const globals *g, int argc, char **argv)
{
    if (argc == 0)
        return usage_error("upload", "which plugin? usage: tern upload FILE.so...");
    for (int k = 0; k < argc; k++)
        if (argv[k][0] == '-')
            return usage_error("upload", "unknown option %s", argv[k]);
    tern_client *c;
    if (open_client(g, &c) != 0)
        return EXIT_FAILED;
    int status = 0;
    for (int k = 0; k < argc && !status; k++) {
        tern_plugin_info info;
        int rc = tern_upload_plugin(c, argv[k], &info);
        if (rc != TERN_OK) {
            status = sdk_failed("upload", rc);
            break;
        }
        printf("%sid       %s\nname     %s\nversion  %s\ntasks    %zu\n", k ? "\n" : "", info.id,
               info.name, info.version, info.ntasks);
    }
    return close_client(c, status);
}

/* ---- call --------------------------------------------------------------------------- */

static int report_failure(const char *task, tern_future *f, int rc)
{
    int code;
    const char *msg, *root_task, *root_key;
    if (tern_future_error(f, &code, &msg, &root_task, &root_key) != TERN_OK)
        return sdk_failed(task, rc);
    fprintf(stderr, "tern: %s failed: %s\n", task, msg);
    fprintf(stderr, "  error: %s (%s)\n", tern_strerror_name(code), tern_strerror(code));
    fprintf(stderr, "  task:  %s\n", *root_task ? root_task : "-");
    fprintf(stderr, "  key:   %s\n", root_key);
    if (strcmp(root_key, tern_future_key(f)))
        fprintf(stderr, "  (the failure started in a dependency; this call's key is %s)\n",
                tern_future_key(f));
    return EXIT_FAILED;
}

/* The progress bar of `tern call`: with --progress always (plain lines when stderr is not a
 * terminal); otherwise only on a terminal, and only once the call has taken 0.5 s. */
static int show_progress(tern_client *c, tern_future *f, bool asked)
{
    if (!asked && !isatty(fileno(stderr)))
        return TERN_OK;
    if (!asked && tern_wait(&f, 1, 500, TERN_WAIT_ALL) == TERN_OK)
        return TERN_OK;
    return tern_progress(c, &f, 1, stderr);
}

static int cmd_call(const globals *g, int argc, char **argv)
{
    int k = 0, timeout_ms = -1;
    bool progress = false;
    for (; k < argc && argv[k][0] == '-' && argv[k][1] == '-'; k++) {
        if (!strcmp(argv[k], "--progress")) {
            progress = true;
        } else if (!strcmp(argv[k], "--timeout") && k + 1 < argc) {
            char *end;
            double s = strtod(argv[++k], &end);
            if (end == argv[k] || *end || !(s >= 0 && s <= INT_MAX / 1000.0))
                return usage_error("call", "--timeout takes seconds (>= 0), not \"%s\"", argv[k]);
            timeout_ms = (int)(s * 1000 + 0.5);
        } else {
            return usage_error("call", "unknown or incomplete option %s", argv[k]);
        }
    }
    if (k == argc)
        return usage_error("call", "which task? usage: tern call PLUGIN:SYMBOL [ARG...]");
    const char *task = argv[k++], *colon = strchr(task, ':');
    if (!colon || colon == task || !colon[1])
        return usage_error("call",
                           "the task must be named PLUGIN:SYMBOL (e.g. arrays:sum), not "
                           "\"%s\"",
                           task);
    tern_value *args = tern_list_new((size_t)(argc - k));
    if (!args) {
        fprintf(stderr, "tern: out of memory\n");
        return EXIT_FAILED;
    }
    for (int a = 1; k < argc; k++, a++) {
        json_error_t jerr;
        json_t *j =
            json_loads(argv[k], JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (!j) {
            tern_value_unref(args);
            bool word = strchr("[{\"-0123456789", argv[k][0]) == NULL && strcmp(argv[k], "true") &&
                        strcmp(argv[k], "false") && strcmp(argv[k], "null");
            return usage_error("call", "argument %d is not JSON: %s (column %d)%s%s%s", a,
                               jerr.text, jerr.column,
                               word ? "; text needs JSON quotes, e.g. '\"" : "",
                               word ? argv[k] : "", word ? "\"'" : "");
        }
        conv cv = { "" };
        tern_value *v = from_json(j, 1, &cv);
        json_decref(j);
        if (!v) {
            tern_value_unref(args);
            return usage_error("call", "argument %d: %s", a, cv.err);
        }
        if (tern_list_append(args, v) != TERN_OK) {
            tern_value_unref(args);
            fprintf(stderr, "tern: out of memory\n");
            return EXIT_FAILED;
        }
    }
    tern_client *c;
    if (open_client(g, &c) != 0) {
        tern_value_unref(args);
        return EXIT_FAILED;
    }
    tern_future *f = NULL;
    int rc = tern_submit(c, task, args, NULL, &f), status = 0;
    tern_value *result = NULL;
    if (rc != TERN_OK) {
        status = sdk_failed(task, rc);
        if (rc == TERN_ENOTFOUND)
            fprintf(stderr, "tern: upload the plugin first with 'tern upload FILE.so'%s\n",
                    strncmp(g->scheduler, "local://", 8)
                        ? ""
                        : " (a local:// cluster lasts one command and has only the built-in "
                          "arrays plugin)");
    } else if (timeout_ms < 0 && (rc = show_progress(c, f, progress)) != TERN_OK) {
        status = sdk_failed(task, rc);
    } else if ((rc = tern_result(f, timeout_ms, &result)) != TERN_OK)
        status = report_failure(task, f, rc);
    else {
        put_value(stdout, result, -1, 0);
        putchar('\n');
    }
    tern_value_unref(result);
    /* Close first: closing releases the key anyway, and with nng 1.5.2 a release still in
     * flight when terni_link_close closes the socket can hang nng_close (about 1 run in 100). */
    status = close_client(c, status);
    tern_future_release(f);
    return status;
}

/* ---- status ------------------------------------------------------------------------- */

#define NCOLS 6

static void int_cell(char *cell, size_t len, const tern_value *m, const char *key)
{
    const tern_value *v;
    int64_t i;
    if (tern_map_get(m, key, &v) == TERN_OK && tern_value_get_int(v, &i) == TERN_OK)
        snprintf(cell, len, "%" PRId64, i);
    else
        snprintf(cell, len, "?");
}

static void bytes_cell(char *cell, size_t len, const tern_value *m, const char *key)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    const tern_value *v;
    int64_t i;
    if (tern_map_get(m, key, &v) != TERN_OK || tern_value_get_int(v, &i) != TERN_OK || i < 0) {
        snprintf(cell, len, "?");
        return;
    }
    double x = (double)i;
    int u = 0;
    while (x >= 1024 && u < 5)
        x /= 1024, u++;
    if (u == 0)
        snprintf(cell, len, "%" PRId64 " B", i);
    else
        snprintf(cell, len, "%.1f %s", x, units[u]);
}

static void text_cell(char *cell, size_t len, const tern_value *m, const char *key)
{
    const tern_value *v;
    const char *s;
    if (tern_map_get(m, key, &v) == TERN_OK && tern_value_get_text(v, &s, NULL) == TERN_OK)
        snprintf(cell, len, "%s", s);
    else
        snprintf(cell, len, "?");
}

static void worker_row(const tern_value *w, char cells[NCOLS][256])
{
    text_cell(cells[0], 256, w, "name");
    text_cell(cells[1], 256, w, "address");
    int_cell(cells[2], 256, w, "nthreads");
    int_cell(cells[3], 256, w, "keys");
    bytes_cell(cells[4], 256, w, "bytes");
    int_cell(cells[5], 256, w, "processing");
}

static int64_t int_of(const tern_value *m, const char *key)
{
    const tern_value *v;
    int64_t i = 0;
    if (tern_map_get(m, key, &v) == TERN_OK)
        tern_value_get_int(v, &i);
    return i;
}

/* One bar per task symbol: done / (done + failed + pending), as the dashboard shows it. */
static void print_symbol_progress(const tern_value *st)
{
    const tern_value *symbols = NULL, *m;
    const char *fn;
    if (tern_map_get(st, "symbols", &symbols) != TERN_OK || !tern_map_len(symbols))
        return;
    size_t width = 0;
    for (size_t k = 0; tern_map_entry(symbols, k, &fn, &m) == TERN_OK; k++)
        width = strlen(fn) > width ? strlen(fn) : width;
    printf("\n");
    for (size_t k = 0; tern_map_entry(symbols, k, &fn, &m) == TERN_OK; k++) {
        int64_t done = int_of(m, "done"), failed = int_of(m, "failed");
        int64_t pending = int_of(m, "waiting") + int_of(m, "no-worker") + int_of(m, "processing");
        int64_t total = done + failed + pending;
        char bar[31];
        int fill = total ? (int)(30 * (done + failed) / total) : 30;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[30] = '\0';
        printf("%-*s  [%s] %" PRId64 "/%" PRId64 " done", (int)width, fn, bar, done, total);
        if (failed)
            printf(", %" PRId64 " failed", failed);
        printf("\n");
    }
}

static void print_status_table(const char *scheduler, const tern_value *st)
{
    static const char *const head[NCOLS] = { "NAME", "ADDRESS", "THREADS",
                                             "KEYS", "BYTES",   "PROCESSING" };
    static const char *const order[] = { "waiting", "no-worker", "processing", "memory", "erred" };
    const tern_value *workers = NULL, *tasks = NULL, *v;
    tern_map_get(st, "workers", &workers);
    tern_map_get(st, "tasks", &tasks);
    size_t nworkers = tern_list_len(workers);
    char cell[256];

    printf("scheduler       %s\n", scheduler);
    printf("workers         %zu\n", nworkers);
    int_cell(cell, sizeof(cell), st, "clients");
    printf("clients         %s\n", cell);
    int_cell(cell, sizeof(cell), st, "plugins");
    printf("plugins         %s\n", cell);
    int_cell(cell, sizeof(cell), st, "tasks_done");
    printf("tasks done      %s\n", cell);
    int_cell(cell, sizeof(cell), st, "keys_in_memory");
    printf("keys in memory  %s\n", cell);
    text_cell(cell, sizeof(cell), st, "dashboard");
    if (strcmp(cell, "?"))
        printf("dashboard       %s\n", cell);
    printf("tasks          ");
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
        int_cell(cell, sizeof(cell), tasks, order[k]);
        printf("%s%s %s", k ? "  " : " ", order[k], cell);
    }
    const char *key;
    for (size_t k = 0; tern_map_entry(tasks, k, &key, &v) == TERN_OK; k++) {
        bool known = false;
        for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++)
            known |= !strcmp(key, order[o]);
        if (!known) {
            int_cell(cell, sizeof(cell), tasks, key);
            printf("  %s %s", key, cell);
        }
    }
    printf("\n");
    print_symbol_progress(st);
    printf("\n");
    if (!nworkers) {
        printf("(no workers connected)\n");
        return;
    }
    size_t width[NCOLS];
    for (int col = 0; col < NCOLS; col++)
        width[col] = strlen(head[col]);
    char cells[NCOLS][256];
    for (size_t r = 0; r < nworkers; r++) {
        tern_list_get(workers, r, &v);
        worker_row(v, cells);
        for (int col = 0; col < NCOLS; col++)
            if (strlen(cells[col]) > width[col])
                width[col] = strlen(cells[col]);
    }
    /* text columns left-aligned, numbers right-aligned */
    for (int col = 0; col < NCOLS; col++)
        printf(col < 2 ? "%-*s%s" : "%*s%s", (int)width[col], head[col],
               col + 1 < NCOLS ? "  " : "\n");
    for (size_t r = 0; r < nworkers; r++) {
        tern_list_get(workers, r, &v);
        worker_row(v, cells);
        for (int col = 0; col < NCOLS; col++)
            printf(col < 2 ? "%-*s%s" : "%*s%s", (int)width[col], cells[col],
                   col + 1 < NCOLS ? "  " : "\n");
    }
}

static int cmd_status(const globals *g, int argc, char **argv)
{
    bool json = false, watch = false;
    double interval = 1;
    long count = -1;
    for (int k = 0; k < argc; k++) {
        char *end;
        if (!strcmp(argv[k], "--json"))
            json = true;
        else if (!strcmp(argv[k], "--watch"))
            watch = true;
        else if (!strcmp(argv[k], "--interval") && k + 1 < argc) {
            interval = strtod(argv[++k], &end);
            if (end == argv[k] || *end || !(interval >= 0.05 && interval <= 86400))
                return usage_error("status", "--interval takes seconds (0.05 to 86400), not \"%s\"",
                                   argv[k]);
        } else if (!strcmp(argv[k], "--count") && k + 1 < argc) {
            count = strtol(argv[++k], &end, 10);
            if (end == argv[k] || *end || count < 1)
                return usage_error("status", "--count takes a number >= 1, not \"%s\"", argv[k]);
        } else
            return usage_error("status",
                               "unexpected argument %s (usage: tern status [--json] [--watch "
                               "[--interval S] [--count N]])",
                               argv[k]);
    }
    if (!watch && count > 0)
        watch = true;
    if (!watch)
        count = 1;
    tern_client *c;
    if (open_client(g, &c) != 0)
        return EXIT_FAILED;
    bool tty = isatty(fileno(stdout));
    int status = 0;
    for (long round = 0; count < 0 || round < count; round++) {
        if (round) {
            struct timespec nap = { (time_t)interval,
                                    (long)((interval - (double)(time_t)interval) * 1e9) };
            nanosleep(&nap, NULL);
        }
        tern_value *st = NULL;
        int rc = tern_status_info(c, &st);
        if (rc != TERN_OK) {
            status = sdk_failed("status", rc);
            break;
        }
        if (watch && tty)
            printf("\033[H\033[2J"); /* redraw in place */
        else if (round)
            printf("\n");
        if (json) {
            put_value(stdout, st, watch ? -1 : 2, 0);
            putchar('\n');
        } else {
            char where[1024];
            const char *real = tern_client_address(c);
            snprintf(where, sizeof(where), strcmp(real, g->scheduler) ? "%s (%s)" : "%s",
                     g->scheduler, real);
            print_status_table(where, st);
        }
        tern_value_unref(st);
        if (fflush(stdout) != 0)
            break;
    }
    return close_client(c, status);
}

/* ---- who-has ------------------------------------------------------------------------ */

static int cmd_who_has(const globals *g, int argc, char **argv)
{
    if (argc == 0)
        return usage_error("who-has", "which keys? usage: tern who-has KEY...");
    tern_client *c;
    if (open_client(g, &c) != 0)
        return EXIT_FAILED;
    tern_value *out = NULL;
    int rc = tern_who_has_keys(c, (const char *const *)argv, (size_t)argc, &out), status = 0;
    if (rc != TERN_OK) {
        status = sdk_failed("who-has", rc);
    } else {
        put_value(stdout, out, -1, 0);
        putchar('\n');
    }
    tern_value_unref(out);
    return close_client(c, status);
}

/* ---- main --------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    globals g = { 0 };
    int k = 1;
    for (; k < argc && argv[k][0] == '-'; k++) {
        const char *a = argv[k];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return finish_output();
        } else if (!strcmp(a, "--version")) {
            printf("tern %s\n", TERN_VERSION_STRING);
            return finish_output();
        } else if (!strcmp(a, "--scheduler") && k + 1 < argc) {
            g.scheduler = argv[++k];
        } else if (!strncmp(a, "--scheduler=", 12)) {
            g.scheduler = a + 12;
        } else if (!strcmp(a, "--tls-ca") && k + 1 < argc) {
            g.tls_ca = argv[++k];
        } else if (!strncmp(a, "--tls-ca=", 9)) {
            g.tls_ca = a + 9;
        } else if (!strcmp(a, "--token-file") && k + 1 < argc) {
            g.token_file = argv[++k];
        } else {
            return usage_error(NULL, "unknown or incomplete option %s", a);
        }
    }
    if (k == argc) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    if (!g.scheduler || !*g.scheduler)
        g.scheduler = getenv("TERN_SCHEDULER");
    if (!g.scheduler || !*g.scheduler)
        g.scheduler = DEFAULT_SCHEDULER;
    const char *cmd = argv[k++];
    int n = argc - k;
    char **rest = argv + k;
    for (int r = 0; r < n && strcmp(cmd, "call"); r++) /* call's arguments may be "-5" */
        if (!strcmp(rest[r], "--help") || !strcmp(rest[r], "-h")) {
            fputs(usage_text, stdout);
            return finish_output();
        }
    if (!strcmp(cmd, "call") && n && (!strcmp(rest[0], "--help") || !strcmp(rest[0], "-h"))) {
        fputs(usage_text, stdout);
        return finish_output();
    }
    if (!strcmp(cmd, "upload"))
        return cmd_upload(&g, n, rest);
    if (!strcmp(cmd, "call"))
        return cmd_call(&g, n, rest);
    if (!strcmp(cmd, "status"))
        return cmd_status(&g, n, rest);
    if (!strcmp(cmd, "who-has"))
        return cmd_who_has(&g, n, rest);
    if (!strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return finish_output();
    }
    return usage_error(NULL, "unknown command \"%s\" (commands: upload, call, status, who-has)",
                       cmd);
}
