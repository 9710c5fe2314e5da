/* A shared object that is not a tern plugin (no TERN_PLUGIN descriptor). */
__attribute__((visibility("default"))) int tern_task_lonely(void);
int tern_task_lonely(void)
{
    return 1;
}
