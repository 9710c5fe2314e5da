/* Plugin loader: stores uploaded plugin bytes content-addressed, dlopens them, and resolves
 * declared tasks by symbol name. Usable on its own (the demo and tests use it without a
 * cluster). Thread-safe: every function may be called from several threads at once.
 *
 * Errors: each function returns a tern_err code; where `err` is given (errlen > 0) it also
 * writes a NUL-terminated message saying what went wrong and what to do about it.
 */
#ifndef TERNI_LOADER_H
#define TERNI_LOADER_H

#include <stddef.h>

#include <tern/plugin.h>

typedef struct terni_loader terni_loader;
typedef struct terni_plugin terni_plugin;

/* Largest plugin accepted, bytes. */
#define TERNI_PLUGIN_MAX_SIZE ((size_t)256 << 20)
/* Length of a plugin id: SHA-256 in lowercase hex. */
#define TERNI_PLUGIN_ID_LEN 64

/* Opens a loader that keeps plugin files in <workdir>/plugins (created if missing, mode 0700).
 * Errors: TERN_EINVAL, TERN_EIO (cannot create or use the directory), TERN_ENOMEM. */
int terni_loader_open(const char *workdir, terni_loader **out, char *err, size_t errlen);

/* dlcloses every plugin and frees the loader. Plugins and task pointers die with it. */
void terni_loader_close(terni_loader *l);

/* Loads plugin bytes (copied as needed): computes the SHA-256 id, writes
 * <workdir>/plugins/<id>.so through a temporary file, fsync and rename (an existing file with
 * the same id is used only after its contents hash to that id; a file is never rewritten in
 * place), dlopens it RTLD_NOW|RTLD_LOCAL, checks the descriptor and reads the task table.
 * Loading bytes already loaded returns the same plugin and does no I/O. *out is owned by the
 * loader. Errors: TERN_EINVAL (empty, too large), TERN_ENOTPLUGIN (not an ELF shared object,
 * no TERN_PLUGIN descriptor, bad task table), TERN_EABI, TERN_EDLOPEN (with dlerror's text),
 * TERN_EIO, TERN_ENOMEM. */
int terni_loader_load(terni_loader *l, const void *bytes, size_t len, const terni_plugin **out,
                      char *err, size_t errlen);

/* Reads a file and loads its bytes as above. Extra error: TERN_ENOTFOUND, TERN_EIO. */
int terni_loader_load_file(terni_loader *l, const char *path, const terni_plugin **out, char *err,
                           size_t errlen);

/* The plugin with this id (64 hex digits), or NULL. */
const terni_plugin *terni_loader_get(terni_loader *l, const char *id);
/* The most recently loaded plugin with this name, or NULL. */
const terni_plugin *terni_loader_find(terni_loader *l, const char *name);

/* Resolves "plugin:symbol" against the newest plugin of that name. Errors: TERN_EINVAL (not
 * of the form name:symbol), TERN_ENOTFOUND (no such plugin or task), TERN_ENOTTASK. */
int terni_loader_resolve(terni_loader *l, const char *qualified, const terni_plugin **plugin,
                         tern_task_fn *fn, char *err, size_t errlen);

/* Resolves a task of this plugin by symbol name: the symbol must be declared in the plugin's
 * task table, and dlsym("tern_task_<symbol>") must give the declared function. Errors:
 * TERN_EINVAL (not an identifier), TERN_ENOTFOUND (no such symbol; the message lists the
 * declared tasks), TERN_ENOTTASK (exported but not declared with TERN_TASK). */
int terni_plugin_resolve(const terni_plugin *p, const char *symbol, tern_task_fn *fn, char *err,
                         size_t errlen);

const char *terni_plugin_id(const terni_plugin *p);      /* SHA-256, lowercase hex */
const char *terni_plugin_name(const terni_plugin *p);    /* TERN_PLUGIN's name */
const char *terni_plugin_version(const terni_plugin *p); /* TERN_PLUGIN's version */
const char *terni_plugin_path(const terni_plugin *p);    /* file that was dlopened */
size_t terni_plugin_task_count(const terni_plugin *p);
/* Declared task i's symbol, in declaration-table order; NULL past the end. */
const char *terni_plugin_task_name(const terni_plugin *p, size_t i);

/* SHA-256 of bytes as 64 lowercase hex digits plus NUL. */
void terni_sha256_hex(const void *bytes, size_t len, char out[TERNI_PLUGIN_ID_LEN + 1]);

#endif
