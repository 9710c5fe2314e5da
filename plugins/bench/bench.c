/* The plugin of tern-bench (bench/tern): the cheapest tasks there are, so that the
 * benchmarks measure the runtime and not the task code. */
#include <tern/plugin.h>

TERN_PLUGIN("bench", "1.0.0");

/* noop(...) ignores its arguments and returns null. */
TERN_TASK(noop)
{
    return tern_null();
}

/* inc(n) = n + 1 */
TERN_TASK(inc)
{
    int64_t n;
    if (tern_arg_int(ctx, 0, &n))
        return tern_fail(ctx, TERN_ETYPE, "inc(int)");
    return tern_int(n + 1);
}
