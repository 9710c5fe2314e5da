/* One-line structured logs for the daemons (logfmt: key=value pairs, one event per line).
 *
 *     ts=2026-11-26T23:02:35.123Z level=info proc=tern-scheduler msg="listening on tcp://..."
 *
 * The level comes from --log-level or $TERN_LOG_LEVEL (error, warn, info, debug; default
 * info); --quiet means warn. Lines go to stderr, written with one fputs so concurrent
 * threads do not interleave within a line. */
#ifndef TERNI_LOG_H
#define TERNI_LOG_H

#include <stdbool.h>

typedef enum terni_log_level {
    TERNI_LOG_ERROR = 0,
    TERNI_LOG_WARN = 1,
    TERNI_LOG_INFO = 2,
    TERNI_LOG_DEBUG = 3,
} terni_log_level;

/* Sets the process name (proc=) and an optional instance field (e.g. "worker=w1", NULL for
 * none). The strings must outlive logging. Reads $TERN_LOG_LEVEL; returns false (and keeps
 * the default) if it is set to something that is not a level. */
bool terni_log_init(const char *proc, const char *instance);

/* Parses "error"|"warn"|"warning"|"info"|"debug"; false if it is none of those. */
bool terni_log_parse_level(const char *s, terni_log_level *out);

void terni_log_set_level(terni_log_level level);
/* "error", "warn", "info" or "debug". */
const char *terni_log_level_name(terni_log_level level);
/* True when --log-level or $TERN_LOG_LEVEL chose the level (a child process should get it). */
bool terni_log_level_explicit(void);
/* --quiet: lowers the level to warn unless a level was given explicitly. */
void terni_log_quiet(void);
terni_log_level terni_log_get_level(void);
bool terni_log_enabled(terni_log_level level);

void terni_log(terni_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Removes the options every daemon shares from argv before it parses its own:
 * "--log-level LEVEL" / "--log-level=LEVEL". Returns 0, or 2 (after printing why to stderr)
 * on a bad level. *argc is updated. */
int terni_log_take_args(const char *proc, int *argc, char **argv);

/* The --help lines for the shared options. */
#define TERNI_LOG_USAGE                                                                            \
    "  --log-level L       error, warn, info (default) or debug; also $TERN_LOG_LEVEL\n"

#endif
