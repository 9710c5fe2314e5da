/* Removing a scratch directory tree in-process. */
#ifndef TERNI_RMTREE_H
#define TERNI_RMTREE_H

#include <stdbool.h>

/* Removes dir and everything below it (symbolic links are removed, not followed), like
 * `rm -rf`, without starting a shell: fork+exec of sh and rm cost ~10-25 ms on a busy
 * 2-core machine, which was most of tern_close() for local:// clusters. Returns true when
 * the tree is gone (also when it did not exist). Not thread-safe against concurrent changes
 * to the same tree. */
bool terni_rmtree(const char *dir);

#endif
