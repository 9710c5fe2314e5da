/* Scratch-directory removal (sdk/src/support/rmtree.c): nested trees, a missing directory, and
 * a symbolic link out of the tree that must be removed, not followed. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sdk/src/support/rmtree.h"

static void put(const char *path)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot create %s", path);
    fputs("x", f);
    fclose(f);
}

Test(rmtree, removes_a_nested_tree)
{
    char dir[] = "/tmp/tern-test-rmtree-XXXXXX", p[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(p, sizeof(p), "%s/a", dir);
    cr_assert_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/a/b", dir);
    cr_assert_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/a/b/file", dir);
    put(p);
    snprintf(p, sizeof(p), "%s/top", dir);
    put(p);
    cr_assert(terni_rmtree(dir));
    cr_assert_neq(access(dir, F_OK), 0);
}

Test(rmtree, a_missing_directory_is_already_gone)
{
    cr_assert(terni_rmtree("/tmp/tern-test-rmtree-does-not-exist"));
}

Test(rmtree, does_not_follow_symbolic_links)
{
    char outside[] = "/tmp/tern-test-rmtree-out-XXXXXX", dir[] = "/tmp/tern-test-rmtree-XXXXXX";
    char kept[256], link[256];
    cr_assert_not_null(mkdtemp(outside));
    cr_assert_not_null(mkdtemp(dir));
    snprintf(kept, sizeof(kept), "%s/kept", outside);
    put(kept);
    snprintf(link, sizeof(link), "%s/link", dir);
    cr_assert_eq(symlink(outside, link), 0);
    cr_assert(terni_rmtree(dir));
    cr_assert_neq(access(dir, F_OK), 0);
    cr_assert_eq(access(kept, F_OK), 0, "the link's target was removed");
    cr_assert(terni_rmtree(outside));
}
