/* A library the needs_missing_lib test plugin links, kept off every search path. */
__attribute__((visibility("default"))) int tern_missing_dep_value(void);
int tern_missing_dep_value(void)
{
    return 3;
}
