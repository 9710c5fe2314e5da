/* Plugin loader.
 *
 * Design notes
 *  - Content addressing: a plugin's id is the SHA-256 of its bytes; its file is
 *    <workdir>/plugins/<id>.so. dlopen keys on the path, and overwriting a mapped object in
 *    place changes running code or raises SIGBUS (notes/dependencies.md), so a path is only
 *    ever given to content with that hash: new bytes go to a temporary file (O_EXCL), are
 *    fsynced, made read-only and renamed into place. A rename swaps the directory entry, not
 *    the file another process may have mapped. An existing file is used only after re-hashing.
 *  - Plugins are never unloaded while the loader lives: tasks may still run on an old version
 *    after a new one with the same name arrives ("new submissions use the new one; running
 *    tasks keep the old one"). terni_loader_find() returns the newest by name.
 *  - Only declared tasks are callable: the task table (ELF section "tern_tasks", built by
 *    TERN_TASK) is copied at load; resolution needs both the table entry and a dlsym() of
 *    tern_task_<symbol> that yields the same function.
 *  - One mutex guards the tables. Plugin records are immutable once published, so resolved
 *    task pointers are used without the lock.
 */
#include "runtime/worker/loader.h"

#include "sdk/src/utf8.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/sha256.h>
#include <uthash.h>

#define MAX_NAME    64
#define MAX_SYM     128
#define MAX_VERSION 128
#define TASK_PREFIX "tern_task_"

typedef struct task_entry {
    char *symbol;
    tern_task_fn fn;
    bool exported; /* tern_task_<symbol> is exported and is fn (checked once, at load) */
    UT_hash_handle hh;
} task_entry;

struct terni_plugin {
    char id[TERNI_PLUGIN_ID_LEN + 1];
    char *name, *version, *path;
    void *handle;
    task_entry *tasks;  /* hash by symbol */
    task_entry **order; /* declaration order */
    size_t ntasks;
    unsigned long seq; /* load order, for "newest by name" */
    UT_hash_handle hh; /* by id */
};

struct terni_loader {
    char *dir; /* <workdir>/plugins */
    pthread_mutex_t lock;
    terni_plugin *by_id;
    unsigned long seq;
};

static int seterr(char *err, size_t errlen, int code, const char *fmt, ...) TERN_PRINTF(4, 5);
static int seterr(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) { /* names, symbols and dlerror's text, cut at a character (utf8.h) */
        va_list ap;
        va_start(ap, fmt);
        terni_utf8_vfmt(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

void terni_sha256_hex(const void *bytes, size_t len, char out[TERNI_PLUGIN_ID_LEN + 1])
{
    unsigned char digest[32];
    mbedtls_sha256_ret(bytes, len, digest, 0);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static int mkdir_p(const char *path)
{
    char *tmp = strdup(path);
    if (!tmp)
        return ENOMEM;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            free(tmp);
            return e;
        }
        *p = '/';
    }
    int e = mkdir(tmp, 0700) != 0 && errno != EEXIST ? errno : 0;
    free(tmp);
    return e;
}

int terni_loader_open(const char *workdir, terni_loader **out, char *err, size_t errlen)
{
    if (!workdir || !*workdir || !out)
        return seterr(err, errlen, TERN_EINVAL, "loader: a work directory is required");
    terni_loader *l = calloc(1, sizeof(*l));
    size_t n = strlen(workdir) + sizeof("/plugins");
    if (!l || !(l->dir = malloc(n))) {
        free(l);
        return seterr(err, errlen, TERN_ENOMEM, "loader: out of memory");
    }
    snprintf(l->dir, n, "%s/plugins", workdir);
    int e = mkdir_p(l->dir);
    struct stat st;
    if (e || stat(l->dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(l->dir, W_OK | X_OK)) {
        if (!e)
            e = errno ? errno : ENOTDIR;
        seterr(err, errlen, TERN_EIO, "loader: cannot use plugin directory %s: %s", l->dir,
               strerror(e));
        free(l->dir);
        free(l);
        return TERN_EIO;
    }
    pthread_mutex_init(&l->lock, NULL);
    *out = l;
    return TERN_OK;
}

static void plugin_free(terni_plugin *p)
{
    task_entry *t, *tmp;
    HASH_ITER(hh, p->tasks, t, tmp)
    {
        HASH_DEL(p->tasks, t);
        free(t->symbol);
        free(t);
    }
    free(p->order);
    if (p->handle)
        dlclose(p->handle);
    free(p->name);
    free(p->version);
    free(p->path);
    free(p);
}

void terni_loader_close(terni_loader *l)
{
    if (!l)
        return;
    terni_plugin *p, *tmp;
    HASH_ITER(hh, l->by_id, p, tmp)
    {
        HASH_DEL(l->by_id, p);
        plugin_free(p);
    }
    pthread_mutex_destroy(&l->lock);
    free(l->dir);
    free(l);
}

/* ---- validation helpers ------------------------------------------------------------ */

static bool is_identifier(const char *s, size_t max)
{
    size_t n = 0;
    if (!s || !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (; s[n]; n++) {
        char c = s[n];
        if (!(c == '_' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
              (c >= 'a' && c <= 'z')))
            return false;
    }
    return n <= max;
}

static bool is_plugin_name(const char *s)
{
    size_t n = 0;
    for (; s && s[n]; n++) {
        char c = s[n];
        if (!(c == '_' || c == '-' || c == '.' || (c >= '0' && c <= '9') ||
              (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return false;
    }
    return n >= 1 && n <= MAX_NAME;
}

/* A version travels as text (the scheduler's plugin list, tern-plugin-info --describe's
 * tab-separated line): UTF-8 without control characters, bounded. */
static bool is_version(const char *s)
{
    size_t n = strnlen(s, MAX_VERSION + 1);
    if (n > MAX_VERSION || !terni_utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#else
#define HOST_MACHINE EM_NONE /* unknown: leave the machine check to dlopen */
#endif

/* Is this an ELF shared object for this machine whose headers and loadable segments lie
 * inside the file? glibc's dlopen maps segments past the end of a truncated file and dies
 * of SIGBUS while zeroing them, so a truncated upload must be caught here, not there. */
static int check_elf(const void *bytes, size_t len, char *err, size_t errlen)
{
    const unsigned char *b = bytes;
    if (len < sizeof(ElfW(Ehdr)) || memcmp(b, ELFMAG, SELFMAG) != 0)
        return seterr(err, errlen, TERN_ENOTPLUGIN,
                      "not a shared object (no ELF header): upload the .so built with "
                      "-shared -fPIC against <tern/plugin.h>");
    if (b[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) || b[EI_DATA] != ELFDATA2LSB)
        return seterr(err, errlen, TERN_ENOTPLUGIN,
                      "ELF file is for another word size or byte order than this %zu-bit "
                      "little-endian worker; rebuild the plugin for this platform",
                      sizeof(void *) * 8);
    ElfW(Ehdr) h;
    memcpy(&h, b, sizeof(h));
    if (h.e_type != ET_DYN)
        return seterr(err, errlen, TERN_ENOTPLUGIN,
                      "ELF file is not a shared object (e_type %u): link the plugin with -shared",
                      (unsigned)h.e_type);
    if (HOST_MACHINE != EM_NONE && h.e_machine != HOST_MACHINE)
        return seterr(err, errlen, TERN_ENOTPLUGIN,
                      "ELF file is for machine type %u, not this worker's (%u); rebuild the "
                      "plugin for this platform",
                      (unsigned)h.e_machine, (unsigned)HOST_MACHINE);
    if (h.e_phentsize != sizeof(ElfW(Phdr)) || h.e_phnum == 0 || h.e_phoff > len ||
        (len - h.e_phoff) / sizeof(ElfW(Phdr)) < h.e_phnum)
        return seterr(err, errlen, TERN_ENOTPLUGIN,
                      "ELF program headers lie outside the %zu-byte file: the plugin is "
                      "truncated or corrupt; upload it again",
                      len);
    /* Linkers write the section header table last: if it is cut off, so was the upload. */
    if (h.e_shnum && (h.e_shentsize != sizeof(ElfW(Shdr)) || h.e_shoff > len ||
                      (len - h.e_shoff) / sizeof(ElfW(Shdr)) < h.e_shnum))
        return seterr(err, errlen, TERN_ENOTPLUGIN,
                      "ELF section headers lie outside the %zu-byte file: the plugin is "
                      "truncated or corrupt; upload it again",
                      len);
    for (unsigned i = 0; i < h.e_phnum; i++) {
        ElfW(Phdr) ph;
        memcpy(&ph, b + h.e_phoff + i * sizeof(ph), sizeof(ph));
        if ((ph.p_type == PT_LOAD || ph.p_type == PT_DYNAMIC) &&
            (ph.p_offset > len || ph.p_filesz > len - ph.p_offset))
            return seterr(err, errlen, TERN_ENOTPLUGIN,
                          "ELF segment %u (bytes %llu..%llu) lies outside the %zu-byte file: "
                          "the plugin is truncated or corrupt; upload it again",
                          i, (unsigned long long)ph.p_offset,
                          (unsigned long long)ph.p_offset + (unsigned long long)ph.p_filesz, len);
    }
    return TERN_OK;
}

/* ---- storing the file ------------------------------------------------------------- */

static int file_has_id(const char *path, const char *id)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    int same = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size <= TERNI_PLUGIN_MAX_SIZE) {
        size_t n = (size_t)st.st_size;
        unsigned char *buf = malloc(n ? n : 1);
        size_t got = 0;
        while (buf && got < n) {
            ssize_t r = read(fd, buf + got, n - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (buf && got == n) {
            char hex[TERNI_PLUGIN_ID_LEN + 1];
            terni_sha256_hex(buf, n, hex);
            same = strcmp(hex, id) == 0;
        }
        free(buf);
    }
    close(fd);
    return same;
}

static int store(const char *dir, const char *id, const void *bytes, size_t len, char **path_out,
                 char *err, size_t errlen)
{
    size_t n = strlen(dir) + TERNI_PLUGIN_ID_LEN + 32;
    char *path = malloc(n), *tmp = malloc(n);
    if (!path || !tmp) {
        free(path);
        free(tmp);
        return seterr(err, errlen, TERN_ENOMEM, "loader: out of memory");
    }
    snprintf(path, n, "%s/%s.so", dir, id);
    if (file_has_id(path, id)) {
        free(tmp);
        *path_out = path;
        return TERN_OK;
    }
    snprintf(tmp, n, "%s/.%s.XXXXXX", dir, id);
    int fd = mkostemp(tmp, O_CLOEXEC);
    int rc = TERN_OK;
    if (fd < 0) {
        rc = seterr(err, errlen, TERN_EIO, "cannot create a file in %s: %s", dir, strerror(errno));
        goto out;
    }
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, (const char *)bytes + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = seterr(err, errlen, TERN_EIO, "cannot write %s: %s", tmp, strerror(errno));
            break;
        }
        done += (size_t)w;
    }
    if (rc == TERN_OK && (fsync(fd) != 0 || fchmod(fd, 0500) != 0))
        rc = seterr(err, errlen, TERN_EIO, "cannot sync %s: %s", tmp, strerror(errno));
    close(fd);
    if (rc == TERN_OK && rename(tmp, path) != 0)
        rc =
            seterr(err, errlen, TERN_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc != TERN_OK)
        unlink(tmp);
out:
    free(tmp);
    if (rc != TERN_OK) {
        free(path);
        return rc;
    }
    *path_out = path;
    return TERN_OK;
}

/* ---- opening ---------------------------------------------------------------------- */

static int read_table(terni_plugin *p, const tern_plugin_desc *desc, char *err, size_t errlen)
{
    const tern_task_decl *begin = NULL, *end = NULL;
    if (desc->tasks)
        desc->tasks(&begin, &end);
    if (!begin || !end || end < begin)
        begin = end = NULL;
    size_t n = (size_t)(end - begin);
    p->order = calloc(n ? n : 1, sizeof(*p->order));
    if (!p->order)
        return seterr(err, errlen, TERN_ENOMEM, "loader: out of memory");
    for (const tern_task_decl *d = begin; d < end; d++) {
        if (!is_identifier(d->symbol, MAX_SYM) || !d->fn)
            return seterr(err, errlen, TERN_ENOTPLUGIN,
                          "plugin %s has a malformed task table entry; declare tasks only "
                          "with TERN_TASK(symbol)",
                          p->name);
        task_entry *t;
        HASH_FIND_STR(p->tasks, d->symbol, t);
        if (t)
            return seterr(err, errlen, TERN_ENOTPLUGIN, "plugin %s declares task %s twice", p->name,
                          d->symbol);
        t = calloc(1, sizeof(*t));
        if (!t || !(t->symbol = strdup(d->symbol))) {
            free(t);
            return seterr(err, errlen, TERN_ENOMEM, "loader: out of memory");
        }
        t->fn = d->fn;
        char fname[sizeof(TASK_PREFIX) + MAX_SYM];
        snprintf(fname, sizeof(fname), TASK_PREFIX "%s", d->symbol);
        t->exported = dlsym(p->handle, fname) == (void *)d->fn;
        HASH_ADD_KEYPTR(hh, p->tasks, t->symbol, strlen(t->symbol), t);
        p->order[p->ntasks++] = t;
    }
    return TERN_OK;
}

static int open_plugin(terni_plugin *p, char *err, size_t errlen)
{
    dlerror();
    p->handle = dlopen(p->path, RTLD_NOW | RTLD_LOCAL);
    if (!p->handle) {
        const char *why = dlerror();
        return seterr(err, errlen, TERN_EDLOPEN,
                      "dlopen of plugin %s failed: %s. Check that it was built for this "
                      "platform and that the libraries it needs are installed on the worker",
                      p->id, why ? why : "unknown reason");
    }
    const tern_plugin_desc *desc = dlsym(p->handle, "tern_plugin");
    if (!desc)
        return seterr(err, errlen, TERN_ENOTPLUGIN,
                      "shared object %s is not a tern plugin: it exports no `tern_plugin` "
                      "descriptor. Add TERN_PLUGIN(name, version) from <tern/plugin.h>",
                      p->id);
    if (desc->magic != TERN_PLUGIN_MAGIC)
        return seterr(err, errlen, TERN_ENOTPLUGIN,
                      "shared object %s exports `tern_plugin` but not a tern descriptor (bad "
                      "magic); build it with TERN_PLUGIN(name, version) from <tern/plugin.h>",
                      p->id);
    if (desc->abi_version != TERN_ABI_VERSION)
        return seterr(err, errlen, TERN_EABI,
                      "plugin %s was built for plugin ABI %u, but this worker supports ABI %d; "
                      "rebuild it against this version of the tern SDK",
                      desc->name && is_plugin_name(desc->name) ? desc->name : p->id,
                      (unsigned)desc->abi_version, TERN_ABI_VERSION);
    if (!is_plugin_name(desc->name))
        return seterr(err, errlen, TERN_ENOTPLUGIN,
                      "plugin %s has an invalid name; TERN_PLUGIN's name must be 1-%d of "
                      "[A-Za-z0-9_.-]",
                      p->id, MAX_NAME);
    const char *version = desc->version ? desc->version : "";
    if (!is_version(version))
        return seterr(err, errlen, TERN_ENOTPLUGIN,
                      "plugin %s has a version that is not UTF-8 text: TERN_PLUGIN's version "
                      "must be at most %d bytes of UTF-8 without control characters, e.g. "
                      "\"1.2.0\"",
                      desc->name, MAX_VERSION);
    p->name = strdup(desc->name);
    p->version = strdup(version);
    if (!p->name || !p->version)
        return seterr(err, errlen, TERN_ENOMEM, "loader: out of memory");
    return read_table(p, desc, err, errlen);
}

int terni_loader_load(terni_loader *l, const void *bytes, size_t len, const terni_plugin **out,
                      char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!l || !out || (!bytes && len))
        return seterr(err, errlen, TERN_EINVAL, "loader: NULL argument");
    if (len == 0)
        return seterr(err, errlen, TERN_EINVAL, "plugin is empty (0 bytes)");
    if (len > TERNI_PLUGIN_MAX_SIZE)
        return seterr(err, errlen, TERN_EINVAL, "plugin of %zu bytes exceeds the %zu-byte limit",
                      len, TERNI_PLUGIN_MAX_SIZE);
    int rc = check_elf(bytes, len, err, errlen);
    if (rc)
        return rc;

    char id[TERNI_PLUGIN_ID_LEN + 1];
    terni_sha256_hex(bytes, len, id);

    pthread_mutex_lock(&l->lock);
    terni_plugin *p;
    HASH_FIND_STR(l->by_id, id, p);
    if (p) {
        pthread_mutex_unlock(&l->lock);
        *out = p;
        return TERN_OK;
    }
    /* Load under the lock: concurrent uploads of one plugin must not race on its file. */
    p = calloc(1, sizeof(*p));
    if (!p) {
        pthread_mutex_unlock(&l->lock);
        return seterr(err, errlen, TERN_ENOMEM, "loader: out of memory");
    }
    memcpy(p->id, id, sizeof(id));
    rc = store(l->dir, id, bytes, len, &p->path, err, errlen);
    if (rc == TERN_OK)
        rc = open_plugin(p, err, errlen);
    if (rc != TERN_OK) {
        pthread_mutex_unlock(&l->lock);
        plugin_free(p);
        return rc;
    }
    p->seq = ++l->seq;
    HASH_ADD_STR(l->by_id, id, p);
    pthread_mutex_unlock(&l->lock);
    *out = p;
    return TERN_OK;
}

int terni_loader_load_file(terni_loader *l, const char *path, const terni_plugin **out, char *err,
                           size_t errlen)
{
    if (!l || !path || !out)
        return seterr(err, errlen, TERN_EINVAL, "loader: NULL argument");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return seterr(err, errlen, errno == ENOENT ? TERN_ENOTFOUND : TERN_EIO,
                      "cannot open plugin %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return seterr(err, errlen, TERN_EIO, "plugin %s is not a regular file", path);
    }
    if ((size_t)st.st_size > TERNI_PLUGIN_MAX_SIZE) {
        close(fd);
        return seterr(err, errlen, TERN_EINVAL, "plugin %s (%lld bytes) exceeds the %zu-byte limit",
                      path, (long long)st.st_size, TERNI_PLUGIN_MAX_SIZE);
    }
    size_t n = (size_t)st.st_size, got = 0;
    unsigned char *buf = malloc(n ? n : 1);
    while (buf && got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    int rc;
    if (!buf)
        rc = seterr(err, errlen, TERN_ENOMEM, "loader: out of memory");
    else if (got != n)
        rc = seterr(err, errlen, TERN_EIO, "cannot read plugin %s", path);
    else
        rc = terni_loader_load(l, buf, n, out, err, errlen);
    free(buf);
    return rc;
}

const terni_plugin *terni_loader_get(terni_loader *l, const char *id)
{
    if (!l || !id)
        return NULL;
    terni_plugin *p;
    pthread_mutex_lock(&l->lock);
    HASH_FIND_STR(l->by_id, id, p);
    pthread_mutex_unlock(&l->lock);
    return p;
}

const terni_plugin *terni_loader_find(terni_loader *l, const char *name)
{
    if (!l || !name)
        return NULL;
    terni_plugin *p, *tmp, *best = NULL;
    pthread_mutex_lock(&l->lock);
    HASH_ITER(hh, l->by_id, p, tmp)
    {
        if (strcmp(p->name, name) == 0 && (!best || p->seq > best->seq))
            best = p;
    }
    pthread_mutex_unlock(&l->lock);
    return best;
}

/* ---- resolution ------------------------------------------------------------------- */

static void list_tasks(const terni_plugin *p, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p->ntasks && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", p->order[i]->symbol);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (p->ntasks == 0)
        snprintf(buf, len, "(none)");
}

int terni_plugin_resolve(const terni_plugin *p, const char *symbol, tern_task_fn *fn, char *err,
                         size_t errlen)
{
    if (!p || !fn)
        return seterr(err, errlen, TERN_EINVAL, "loader: NULL argument");
    if (!is_identifier(symbol, MAX_SYM))
        return seterr(err, errlen, TERN_EINVAL,
                      "task symbol \"%.*s\" is not a C identifier of at most %d characters",
                      symbol ? 80 : 0, symbol ? symbol : "", MAX_SYM);
    task_entry *t;
    HASH_FIND_STR(p->tasks, symbol, t);
    if (t && t->exported) { /* the common case: no dlsym per call */
        *fn = t->fn;
        return TERN_OK;
    }
    char fname[sizeof(TASK_PREFIX) + MAX_SYM];
    snprintf(fname, sizeof(fname), TASK_PREFIX "%s", symbol);
    if (!t) {
        /* Say whether the symbol exists at all, so a missing TERN_TASK is easy to spot. */
        bool exported = dlsym(p->handle, fname) || dlsym(p->handle, symbol);
        if (exported)
            return seterr(err, errlen, TERN_ENOTTASK,
                          "%s:%s is exported by the plugin but not declared as a task; define "
                          "it with TERN_TASK(%s) to make it callable",
                          p->name, symbol, symbol);
        char names[512];
        list_tasks(p, names, sizeof(names));
        return seterr(err, errlen, TERN_ENOTFOUND,
                      "plugin %s (version %s) has no task \"%s\"; its tasks are: %s", p->name,
                      p->version, symbol, names);
    }
    return seterr(err, errlen, TERN_ENOTTASK,
                  "%s:%s is declared but %s is not exported as that task; build the "
                  "plugin with TERN_TASK(%s) and default visibility",
                  p->name, symbol, fname, symbol);
}

int terni_loader_resolve(terni_loader *l, const char *qualified, const terni_plugin **plugin,
                         tern_task_fn *fn, char *err, size_t errlen)
{
    const char *colon = qualified ? strchr(qualified, ':') : NULL;
    if (!l || !fn || !colon || colon == qualified || (size_t)(colon - qualified) > MAX_NAME)
        return seterr(err, errlen, TERN_EINVAL,
                      "task name \"%.*s\" must be \"plugin:symbol\", e.g. \"arrays:add\"",
                      qualified ? 80 : 0, qualified ? qualified : "");
    char name[MAX_NAME + 1];
    memcpy(name, qualified, (size_t)(colon - qualified));
    name[colon - qualified] = '\0';
    const terni_plugin *p = terni_loader_find(l, name);
    if (!p)
        return seterr(err, errlen, TERN_ENOTFOUND,
                      "no plugin named \"%s\" is loaded; upload it first", name);
    int rc = terni_plugin_resolve(p, colon + 1, fn, err, errlen);
    if (rc == TERN_OK && plugin)
        *plugin = p;
    return rc;
}

const char *terni_plugin_id(const terni_plugin *p)
{
    return p ? p->id : NULL;
}

const char *terni_plugin_name(const terni_plugin *p)
{
    return p ? p->name : NULL;
}

const char *terni_plugin_version(const terni_plugin *p)
{
    return p ? p->version : NULL;
}

const char *terni_plugin_path(const terni_plugin *p)
{
    return p ? p->path : NULL;
}

size_t terni_plugin_task_count(const terni_plugin *p)
{
    return p ? p->ntasks : 0;
}

const char *terni_plugin_task_name(const terni_plugin *p, size_t i)
{
    return p && i < p->ntasks ? p->order[i]->symbol : NULL;
}
