/* The seed's task, as a tern plugin: "seed:inc" returns its argument plus one. */
#include <tern/plugin.h>

TERN_PLUGIN("seed", "1.0.0");

TERN_TASK(inc)
{
    int64_t x;
    if (tern_arg_int(ctx, 0, &x) != TERN_OK)
        return tern_fail(ctx, TERN_EINVAL, "inc(x): x must be an int");
    return tern_int(x + 1);
}
