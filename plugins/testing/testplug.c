/* Test plugin: a few tiny tasks, one exported function that is not a task. */
#include <tern/plugin.h>

#ifndef TESTPLUG_VERSION
#define TESTPLUG_VERSION "1.0.0"
#endif

TERN_PLUGIN("testplug", TESTPLUG_VERSION);

/* echo(x) returns its first argument. */
TERN_TASK(echo)
{
    const tern_value *a = tern_arg(ctx, 0);
    if (!a)
        return tern_fail(ctx, TERN_EINVAL, "echo needs one argument");
    return tern_value_ref((tern_value *)a);
}

/* inc(n) = n + 1 */
TERN_TASK(inc)
{
    int64_t n;
    if (tern_arg_int(ctx, 0, &n))
        return tern_fail(ctx, TERN_ETYPE, "inc(int)");
    return tern_int(n + 1);
}

/* version() tells which build of the plugin ran. */
TERN_TASK(version)
{
    return tern_text(TESTPLUG_VERSION);
}

/* fail() always fails with a message. */
TERN_TASK(fail)
{
    return tern_fail(ctx, TERN_EINVAL, "failing on purpose in %s", tern_task_symbol(ctx));
}

/* forgetful() returns NULL without calling tern_fail. */
TERN_TASK(forgetful)
{
    return NULL;
}

/* Exported with the task prefix but never declared in the task table. */
__attribute__((visibility("default"))) tern_value *tern_task_undeclared(tern_ctx *ctx);
tern_value *tern_task_undeclared(tern_ctx *ctx)
{
    return tern_int(42);
}

/* An ordinary exported helper. */
__attribute__((visibility("default"))) int helper_function(void);
int helper_function(void)
{
    return 7;
}
