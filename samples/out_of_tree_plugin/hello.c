/* A minimal tern plugin: "hello:greet" returns a greeting for its text argument. */
#include <stdio.h>

#include <tern/plugin.h>

TERN_PLUGIN("hello", "1.0.0");

TERN_TASK(greet)
{
    const char *name;
    if (tern_arg_text(ctx, 0, &name, NULL) != TERN_OK)
        return tern_fail(ctx, TERN_EINVAL, "greet(name): name must be text");
    char buf[256];
    snprintf(buf, sizeof(buf), "hello, %s", name);
    tern_value *r = tern_text(buf);
    return r ? r : tern_fail(ctx, TERN_ENOMEM, "greet: out of memory");
}
