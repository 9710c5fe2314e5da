/* Exports a `tern_plugin` symbol that is not a tern descriptor. */
__attribute__((visibility("default"))) const char tern_plugin[64] = "just some bytes";
