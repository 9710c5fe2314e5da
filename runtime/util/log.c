/* Structured one-line logs (see log.h).
 *
 * Design notes: the level is a process-wide atomic read on every call, so threads may log
 * without locks; each line is formatted into a local buffer and written with one fputs, so
 * lines from different threads never interleave (stderr is unbuffered, and glibc's fputs
 * holds the stream lock for the whole string). Messages are quoted and escaped so that a
 * message with spaces, quotes or newlines still parses as one logfmt line. */
#include "runtime/util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int level = TERNI_LOG_INFO;
static const char *proc_name = "tern";
static const char *instance_field;
static atomic_bool explicit_level; /* --log-level or $TERN_LOG_LEVEL was given */

static const char *const level_names[] = { "error", "warn", "info", "debug" };

bool terni_log_parse_level(const char *s, terni_log_level *out)
{
    if (!s)
        return false;
    for (int i = 0; i < 4; i++)
        if (!strcasecmp(s, level_names[i])) {
            *out = (terni_log_level)i;
            return true;
        }
    if (!strcasecmp(s, "warning")) {
        *out = TERNI_LOG_WARN;
        return true;
    }
    return false;
}

bool terni_log_init(const char *proc, const char *instance)
{
    proc_name = proc;
    instance_field = instance;
    const char *env = getenv("TERN_LOG_LEVEL");
    terni_log_level l;
    if (!env || !*env)
        return true;
    if (!terni_log_parse_level(env, &l))
        return false;
    atomic_store(&level, (int)l);
    atomic_store(&explicit_level, true);
    return true;
}

void terni_log_quiet(void)
{
    if (!atomic_load(&explicit_level) && atomic_load(&level) > TERNI_LOG_WARN)
        atomic_store(&level, TERNI_LOG_WARN);
}

const char *terni_log_level_name(terni_log_level l)
{
    return (int)l >= 0 && (int)l < 4 ? level_names[l] : "info";
}

bool terni_log_level_explicit(void)
{
    return atomic_load(&explicit_level);
}

void terni_log_set_level(terni_log_level l)
{
    atomic_store(&level, (int)l);
}

terni_log_level terni_log_get_level(void)
{
    return (terni_log_level)atomic_load(&level);
}

bool terni_log_enabled(terni_log_level l)
{
    return (int)l <= atomic_load(&level);
}

void terni_log(terni_log_level l, const char *fmt, ...)
{
    if (!terni_log_enabled(l))
        return;
    char msg[2048], line[4608];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    bool has_inst = instance_field && *instance_field;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s proc=%s%s%s msg=\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[l], proc_name, has_inst ? " " : "",
                     has_inst ? instance_field : "");
    size_t used = n > 0 ? (size_t)n : 0;
    for (const char *c = msg; *c && used + 4 < sizeof(line); c++) {
        char esc = *c == '"' ? '"' : *c == '\\' ? '\\' : *c == '\n' ? 'n' : *c == '\t' ? 't' : 0;
        if (esc) {
            line[used++] = '\\';
            line[used++] = esc;
        } else {
            line[used++] = *c;
        }
    }
    line[used++] = '"';
    line[used++] = '\n';
    line[used] = '\0';
    fputs(line, stderr);
}

int terni_log_take_args(const char *proc, int *argc, char **argv)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (!strcmp(a, "--log-level")) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "%s: --log-level needs a level (error, warn, info, debug)\n", proc);
                return 2;
            }
            val = argv[++i];
        } else if (!strncmp(a, "--log-level=", 12)) {
            val = a + 12;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        terni_log_level l;
        if (!terni_log_parse_level(val, &l)) {
            fprintf(stderr, "%s: --log-level must be error, warn, info or debug, not \"%s\"\n",
                    proc, val);
            return 2;
        }
        terni_log_set_level(l);
        atomic_store(&explicit_level, true);
    }
    argv[out] = NULL;
    *argc = out;
    return 0;
}
