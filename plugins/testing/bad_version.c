/* Test plugin whose version is not UTF-8 text: the loader, and so an upload, must refuse it. */
#include <tern/plugin.h>

TERN_PLUGIN("bad_version", "1.0\xFF");

TERN_TASK(one)
{
    (void)ctx;
    return tern_int(1);
}
