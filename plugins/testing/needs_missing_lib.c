/* Test plugin that depends on a shared library not on the loader's search path. */
#include <tern/plugin.h>

int tern_missing_dep_value(void);

TERN_PLUGIN("needs_missing_lib", "1.0.0");

TERN_TASK(value)
{
    return tern_int(tern_missing_dep_value());
}
