/* local://N: a scheduler and N workers started as child processes on loopback. */
#ifndef TERNI_LOCAL_H
#define TERNI_LOCAL_H

#include <stddef.h>

typedef struct terni_local terni_local;

/* Finds tern-scheduler and tern-worker (bin_dir, $TERN_BIN_DIR, libtern's ../bin, PATH),
 * starts the scheduler and n workers (on ipc:// sockets in a scratch directory) with `threads`
 * threads each. The children exit by themselves if this process dies. address gets the scheduler's
 * address. Does not wait for workers to register (the caller checks with the scheduler).
 * Errors: TERN_ENOTFOUND (binaries missing; the message lists where it looked), TERN_EIO,
 * TERN_ETIMEDOUT (the scheduler did not start), TERN_ENOMEM. */
/* token_file: given to every process with --token-file (NULL: they inherit $TERN_TOKEN_FILE). */
int terni_local_start(int n, int threads, const char *bin_dir, const char *token_file,
                      int timeout_ms, terni_local **out, char *address, size_t addrlen, char *err,
                      size_t errlen);

/* True while every child is running; otherwise err says which exited and how. */
int terni_local_check(terni_local *l, char *err, size_t errlen);

/* SIGTERM to every child, SIGKILL after 2 s, reaps them and removes the scratch directory. */
void terni_local_stop(terni_local *l);

#endif
