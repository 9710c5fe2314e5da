/* Test plugin for the cluster integration tests (tests/integration): tasks that count their
 * executions across processes, take a given time, and sum ints nested in lists and maps.
 * Kept apart from testplug so the loader tests' exact task list of testplug stays as is. */
#include <tern/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

TERN_PLUGIN("clusterplug", "1.0.0");

/* count(path[, tag]) appends one byte to the file at path and returns the file's new size:
 * the file's size counts how often the task ran, in whichever worker process. The optional
 * tag only changes the task's key. */
TERN_TASK(count)
{
    const char *path;
    if (tern_arg_text(ctx, 0, &path, NULL))
        return tern_fail(ctx, TERN_ETYPE, "count(path: text[, tag])");
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return tern_fail(ctx, TERN_EIO, "count: cannot open %s: errno %d", path, errno);
    struct stat st;
    ssize_t w = write(fd, "x", 1);
    int rc = fstat(fd, &st);
    close(fd);
    if (w != 1 || rc != 0)
        return tern_fail(ctx, TERN_EIO, "count: cannot append to %s", path);
    return tern_int((int64_t)st.st_size);
}

/* sleep_ms(n) sleeps n milliseconds and returns n. */
TERN_TASK(sleep_ms)
{
    int64_t ms;
    if (tern_arg_int(ctx, 0, &ms) || ms < 0 || ms > 600000)
        return tern_fail(ctx, TERN_ETYPE, "sleep_ms(int 0..600000)");
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return tern_int(ms);
}

static int sum_value(const tern_value *v, int64_t *acc, int depth)
{
    int64_t i;
    const tern_value *item;
    if (depth > TERN_MAX_DEPTH)
        return TERN_ETOODEEP;
    switch (tern_value_type(v)) {
    case TERN_T_INT:
        tern_value_get_int(v, &i);
        *acc += i;
        return TERN_OK;
    case TERN_T_LIST:
        for (size_t k = 0; tern_list_get(v, k, &item) == TERN_OK; k++)
            if (sum_value(item, acc, depth + 1) != TERN_OK)
                return TERN_ETYPE;
        return TERN_OK;
    case TERN_T_MAP:
        for (size_t k = 0; tern_map_entry(v, k, NULL, &item) == TERN_OK; k++)
            if (sum_value(item, acc, depth + 1) != TERN_OK)
                return TERN_ETYPE;
        return TERN_OK;
    default:
        return TERN_ETYPE;
    }
}

/* sum(x, ...) sums the ints in its arguments, looking into nested lists and maps. */
TERN_TASK(sum)
{
    int64_t acc = 0;
    for (size_t k = 0; k < tern_nargs(ctx); k++)
        if (sum_value(tern_arg(ctx, k), &acc, 0) != TERN_OK)
            return tern_fail(ctx, TERN_ETYPE,
                             "sum: argument %zu holds something other than "
                             "ints, lists and maps",
                             k);
    return tern_int(acc);
}

/* add(a, b) = a + b for ints. */
TERN_TASK(add)
{
    int64_t a, b;
    if (tern_nargs(ctx) != 2 || tern_arg_int(ctx, 0, &a) || tern_arg_int(ctx, 1, &b))
        return tern_fail(ctx, TERN_ETYPE, "add(int, int)");
    return tern_int(a + b);
}
