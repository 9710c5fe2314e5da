/* See rmtree.h. nftw with FTW_DEPTH visits children before their directory, FTW_PHYS keeps
 * it from following symbolic links out of the tree. */
#define _XOPEN_SOURCE 700
#include "sdk/src/support/rmtree.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path) != 0 && errno != ENOENT;
}

bool terni_rmtree(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) != 0)
        return errno == ENOENT;
    return nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0;
}
