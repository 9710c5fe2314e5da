#include <tern/plugin.h>
TERN_PLUGIN("arrays", "0.1.0");
