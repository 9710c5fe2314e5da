/* Test plugin for the cluster integration tests (tests/integration): tasks that count their
 * executions across processes, take a given time, sum ints nested in lists and maps, and
 * tell whether they could take an argument (tern_arg_take), and fail with raw message bytes.
 * Kept apart from testplug so the loader tests' exact task list of testplug stays as is. */
#include <tern/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

TERN_PLUGIN("clusterplug", "1.0.0");

/* count(path[, tag]) appends one byte to the file at path and returns the file's new size:
 * the file's size counts how often the task ran, in whichever worker process. The optional
 * tag only changes the task's key. */
/* Appends one byte to the file at path; its new size, or -1 (the task failed, naming who). */
static int64_t append_byte(tern_ctx *ctx, const char *who, const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        tern_fail(ctx, TERN_EIO, "%s: cannot open %s: errno %d", who, path, errno);
        return -1;
    }
    struct stat st;
    ssize_t w = write(fd, "x", 1);
    int rc = fstat(fd, &st);
    close(fd);
    if (w != 1 || rc != 0) {
        tern_fail(ctx, TERN_EIO, "%s: cannot append to %s", who, path);
        return -1;
    }
    return (int64_t)st.st_size;
}

TERN_TASK(count)
{
    const char *path;
    if (tern_arg_text(ctx, 0, &path, NULL))
        return tern_fail(ctx, TERN_ETYPE, "count(path: text[, tag])");
    int64_t size = append_byte(ctx, "count", path);
    return size < 0 ? NULL : tern_int(size);
}

/* ones(n[, after]) is an f64 array of n ones; `after` (e.g. a future) only orders it. */
TERN_TASK(ones)
{
    int64_t n;
    double *y;
    if (tern_arg_int(ctx, 0, &n) || n < 0 || n > (1 << 24))
        return tern_fail(ctx, TERN_ETYPE, "ones(n: int 0..2^24[, after])");
    tern_value *r = tern_f64_array_new((size_t)n, &y);
    if (!r)
        return tern_fail(ctx, TERN_ENOMEM, "ones: out of memory");
    for (int64_t i = 0; i < n; i++)
        y[i] = 1.0;
    return r;
}

/* took(x[, tag[, fail_once]]) is [taken, x + 1]: x (an f64 array) plus one, computed into x
 * itself when the task may take it (tern_arg_take), into a new array otherwise; taken says
 * which. The tag only changes the key. With fail_once (a path), a run that appends the
 * file's first byte fails after computing: the retry must see x as it was. */
TERN_TASK(took)
{
    const double *x;
    const char *path = NULL;
    size_t n, m;
    double *y;
    if (tern_arg_f64_array(ctx, 0, &x, &n) ||
        (tern_nargs(ctx) > 2 && tern_arg_text(ctx, 2, &path, NULL)))
        return tern_fail(ctx, TERN_ETYPE, "took(x: f64 array[, tag[, fail_once: path]])");
    tern_value *out = tern_arg_take(ctx, 0);
    bool taken = out != NULL;
    if (taken && tern_value_f64_data_mut(out, &y, &m) != TERN_OK) {
        tern_value_unref(out);
        return tern_fail(ctx, TERN_ESHARED, "took: taken, but its data is not writable");
    }
    if (!taken && !(out = tern_f64_array_new(n, &y)))
        return tern_fail(ctx, TERN_ENOMEM, "took: out of memory");
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] + 1.0; /* x == y when taken */
    int64_t runs = path ? append_byte(ctx, "took", path) : 0;
    if (runs == 1)
        tern_fail(ctx, TERN_ETASK, "took: failing its first run, as asked");
    if (runs == 1 || runs < 0) {
        tern_value_unref(out);
        return NULL;
    }
    return tern_list_of(tern_bool(taken), out);
}

/* sleep_ms(n[, fail]) sleeps n milliseconds and returns n. With fail true it fails after the
 * sleep; with fail a path, it appends a byte to that file after the sleep and fails if the
 * file then holds one byte (its first run). */
TERN_TASK(sleep_ms)
{
    int64_t ms;
    bool always = false;
    const char *path = NULL;
    if (tern_arg_int(ctx, 0, &ms) || ms < 0 || ms > 600000 ||
        (tern_nargs(ctx) > 1 && tern_arg_bool(ctx, 1, &always) &&
         tern_arg_text(ctx, 1, &path, NULL)))
        return tern_fail(ctx, TERN_ETYPE, "sleep_ms(int 0..600000[, fail: bool or path])");
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    int64_t runs = path ? append_byte(ctx, "sleep_ms", path) : 0;
    if (runs < 0)
        return NULL;
    if (always || runs == 1)
        return tern_fail(ctx, TERN_ETASK, "sleep_ms: failing after %lld ms, as asked",
                         (long long)ms);
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

/* fail_with(b: bytes, n: int 1..8192) fails with the bytes of b repeated n times (at most 8 KiB;
 * no NUL) as its message: raw, as a plugin's message may be (not UTF-8, longer than tern_fail
 * keeps, cut by it inside a character). */
TERN_TASK(fail_with)
{
    const void *b;
    size_t len;
    int64_t n;
    static __thread char msg[8192 + 1];
    if (tern_nargs(ctx) != 2 || tern_value_get_bytes(tern_arg(ctx, 0), &b, &len) ||
        tern_arg_int(ctx, 1, &n) || n < 1 || n > 8192 || !len || memchr(b, 0, len))
        return tern_fail(ctx, TERN_ETYPE, "fail_with(bytes without NUL, int 1..8192)");
    size_t at = 0;
    for (int64_t i = 0; i < n && at + len < sizeof(msg); i++, at += len)
        memcpy(msg + at, b, len);
    msg[at] = '\0';
    return tern_fail(ctx, TERN_ETASK, "%s", msg);
}
