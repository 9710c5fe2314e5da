/* Test plugin for the failure tests (tests/integration/test_failures.c): tasks that crash
 * their process in the ways a real plugin can, one that never returns, and a deterministic
 * mixing function for random task graphs whose every result the test recomputes locally; and
 * tasks that end their process: exit, _exit, raise(SIGKILL), a stack overflow. */
#include <tern/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

TERN_PLUGIN("faultplug", "1.0.0");

/* segfault(): writes through a null pointer. */
TERN_TASK(segfault)
{
    (void)ctx;
    volatile int *p = NULL;
    *p = 1;
    return tern_null();
}

/* abort(): calls abort(), as a failed assert in a plugin would. */
TERN_TASK(abort)
{
    (void)ctx;
    abort();
}

/* spin(): loops for ever without sleeping (a plugin stuck in a loop). */
TERN_TASK(spin)
{
    (void)ctx;
    volatile uint64_t n = 0;
    for (;;)
        n++;
    return tern_null();
}

/* mix(i, micros, d...) = i * 1000003 + sum((k + 1) * d_k) mod 2^61 - 1, after sleeping
 * `micros` microseconds: every argument after the second is an int (usually a future). */
TERN_TASK(mix)
{
    int64_t i, us;
    if (tern_nargs(ctx) < 2 || tern_arg_int(ctx, 0, &i) || tern_arg_int(ctx, 1, &us) || us < 0 ||
        us > 10000000)
        return tern_fail(ctx, TERN_ETYPE, "mix(i: int, micros: int 0..1e7, deps: int...)");
    const uint64_t m = ((uint64_t)1 << 61) - 1;
    uint64_t acc = ((uint64_t)i * 1000003u) % m;
    for (size_t k = 2; k < tern_nargs(ctx); k++) {
        int64_t d;
        if (tern_arg_int(ctx, k, &d))
            return tern_fail(ctx, TERN_ETYPE, "mix: argument %zu is not an int", k);
        acc = (acc + ((uint64_t)(k - 1) * ((uint64_t)d % m)) % m) % m;
    }
    struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return tern_int((int64_t)acc);
}

/* flaky(path, n): appends a byte to the file at path; fails while the file holds at most n
 * bytes (the first n runs), then returns the number of runs. */
TERN_TASK(flaky)
{
    const char *path;
    int64_t n;
    if (tern_arg_text(ctx, 0, &path, NULL) || tern_arg_int(ctx, 1, &n))
        return tern_fail(ctx, TERN_ETYPE, "flaky(path: text, n: int)");
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return tern_fail(ctx, TERN_EIO, "flaky: cannot open %s: errno %d", path, errno);
    struct stat st;
    ssize_t w = write(fd, "x", 1);
    int rc = fstat(fd, &st);
    close(fd);
    if (w != 1 || rc != 0)
        return tern_fail(ctx, TERN_EIO, "flaky: cannot append to %s", path);
    if (st.st_size <= n)
        return tern_fail(ctx, TERN_ETASK, "flaky: failure %lld of %lld", (long long)st.st_size,
                         (long long)n);
    return tern_int((int64_t)st.st_size);
}

/* exit_with(code) calls exit(code), as a plugin may (exit(0) included): its executor must
 * count it as a crash, whatever the status. */
TERN_TASK(exit_with)
{
    int64_t code;
    if (tern_arg_int(ctx, 0, &code) || code < 0 || code > 255)
        return tern_fail(ctx, TERN_ETYPE, "exit_with(int 0..255)");
    exit((int)code);
}

/* underscore_exit(code) calls _exit(code): no atexit handlers, no flush. */
TERN_TASK(underscore_exit)
{
    int64_t code;
    if (tern_arg_int(ctx, 0, &code) || code < 0 || code > 255)
        return tern_fail(ctx, TERN_ETYPE, "underscore_exit(int 0..255)");
    _exit((int)code);
}

/* kill_self(): raise(SIGKILL). */
TERN_TASK(kill_self)
{
    (void)ctx;
    raise(SIGKILL);
    return tern_null();
}

/* Recursion that is not a tail call, with 4 KiB of stack per level: it never returns. */
static int deeper(volatile char *up, int depth)
{
    volatile char frame[4096];
    frame[0] = (char)depth;
    frame[1] = up ? up[0] : 0;
    if (depth < 0) /* never: keeps the compiler from calling this infinite */
        return frame[1];
    return deeper(frame, depth + 1) + frame[2];
}

/* overflow(): overflows its thread's stack. */
TERN_TASK(overflow)
{
    return tern_int(deeper(NULL, 0));
}
