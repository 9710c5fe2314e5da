/* Test plugin built for a future plugin ABI: the loader must refuse it. */
#include <tern/plugin.h>

TERN_PLUGIN_EXPORT const tern_plugin_desc tern_plugin = { TERN_PLUGIN_MAGIC, TERN_ABI_VERSION + 98,
                                                          "wrong_abi", "1.0.0", NULL };
