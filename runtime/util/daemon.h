/* What tern-scheduler and tern-worker share as processes: stopping on SIGINT/SIGTERM, and
 * --exit-with-parent (stop when the process that started us is gone, as local:// needs). */
#ifndef TERNI_DAEMON_H
#define TERNI_DAEMON_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

/* The flag the daemon's loop watches; set by signals and by the parent watcher. */
extern atomic_int terni_stop;

/* Installs the SIGINT/SIGTERM handlers, ignores SIGPIPE, and with exit_with_parent starts a
 * thread that sets terni_stop once our parent process has exited. */
void terni_daemon_init(bool exit_with_parent);

/* Parses a decimal option value in [min, max] into *out. On failure prints
 * "<prog>: <flag> must be <min>..<max>, not <text>" to stderr and returns false. */
bool terni_int_option(const char *prog, const char *flag, const char *text, long min, long max,
                      int *out);

#endif
