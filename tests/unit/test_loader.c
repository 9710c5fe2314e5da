/* Plugin loader: content-addressed storage, ABI checks, task declaration, errors. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sys/stat.h>

#include "leakcheck.h"
#include "testutil.h"

static char *workdir;
static terni_loader *loader;
static char err[1024];

static void setup(void)
{
    workdir = make_tmpdir();
    cr_assert_not_null(workdir);
    cr_assert_eq(terni_loader_open(workdir, &loader, err, sizeof(err)), TERN_OK, "%s", err);
}

static void teardown(void)
{
    terni_loader_close(loader);
    rm_tree(workdir);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(*len);
    cr_assert_eq(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static const terni_plugin *load(const char *name)
{
    const terni_plugin *p = NULL;
    int rc = terni_loader_load_file(loader, name, &p, err, sizeof(err));
    cr_assert_eq(rc, TERN_OK, "loading %s: %s (%s)", name, tern_strerror(rc), err);
    return p;
}

TestSuite(loader, .init = setup, .fini = teardown, .timeout = 30);

LTest(loader, good_plugin_is_stored_content_addressed)
{
    const terni_plugin *p = load(PLUGIN_PATH("testplug"));
    size_t len;
    unsigned char *bytes = slurp(PLUGIN_PATH("testplug"), &len);
    char id[65];
    terni_sha256_hex(bytes, len, id);
    free(bytes);
    cr_assert_str_eq(terni_plugin_id(p), id);
    cr_assert_str_eq(terni_plugin_name(p), "testplug");
    cr_assert_str_eq(terni_plugin_version(p), "1.0.0");
    char want[4200];
    snprintf(want, sizeof(want), "%s/plugins/%s.so", workdir, id);
    cr_assert_str_eq(terni_plugin_path(p), want);
    struct stat st;
    cr_assert_eq(stat(want, &st), 0);
    cr_assert_eq(st.st_mode & 0222, 0, "stored plugin must be read-only");
    cr_assert_eq((size_t)st.st_size, len);
}

LTest(loader, lists_exactly_the_declared_tasks)
{
    const terni_plugin *p = load(PLUGIN_PATH("testplug"));
    const char *want[] = { "echo", "inc", "version", "fail", "forgetful" };
    cr_assert_eq(terni_plugin_task_count(p), 5);
    for (size_t i = 0; i < 5; i++) {
        bool found = false;
        for (size_t j = 0; j < terni_plugin_task_count(p); j++)
            found |= strcmp(terni_plugin_task_name(p, j), want[i]) == 0;
        cr_assert(found, "task %s missing", want[i]);
    }
    cr_assert_null(terni_plugin_task_name(p, 5));
}

LTest(loader, resolves_and_calls_a_task)
{
    load(PLUGIN_PATH("testplug"));
    tern_value *out;
    int rc = call_task(loader, "testplug:inc", tern_list_of(tern_int(41)), &out, err, sizeof(err));
    cr_assert_eq(rc, TERN_OK, "%s", err);
    int64_t n;
    cr_assert_eq(tern_value_get_int(out, &n), TERN_OK);
    cr_assert_eq(n, 42);
    tern_value_unref(out);
}

LTest(loader, unknown_symbol_lists_the_tasks)
{
    const terni_plugin *p = load(PLUGIN_PATH("testplug"));
    tern_task_fn fn;
    cr_assert_eq(terni_plugin_resolve(p, "nosuch", &fn, err, sizeof(err)), TERN_ENOTFOUND);
    cr_assert(strstr(err, "no task \"nosuch\""), "%s", err);
    cr_assert(strstr(err, "echo") && strstr(err, "inc"), "%s", err);
}

LTest(loader, exported_but_undeclared_symbols_are_refused)
{
    const terni_plugin *p = load(PLUGIN_PATH("testplug"));
    tern_task_fn fn = NULL;
    cr_assert_eq(terni_plugin_resolve(p, "undeclared", &fn, err, sizeof(err)), TERN_ENOTTASK);
    cr_assert(strstr(err, "TERN_TASK(undeclared)"), "%s", err);
    cr_assert_eq(terni_plugin_resolve(p, "helper_function", &fn, err, sizeof(err)), TERN_ENOTTASK);
    cr_assert_null(fn);
}

LTest(loader, symbol_names_must_be_identifiers)
{
    const terni_plugin *p = load(PLUGIN_PATH("testplug"));
    tern_task_fn fn;
    const char *bad[] = { "", "../etc", "a b", "9lives", "inc;rm", NULL };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(terni_plugin_resolve(p, bad[i], &fn, err, sizeof(err)), TERN_EINVAL,
                     "symbol %s", bad[i] ? bad[i] : "(null)");
}

LTest(loader, qualified_names)
{
    load(PLUGIN_PATH("testplug"));
    tern_task_fn fn;
    cr_assert_eq(terni_loader_resolve(loader, "inc", NULL, &fn, err, sizeof(err)), TERN_EINVAL);
    cr_assert(strstr(err, "plugin:symbol"), "%s", err);
    cr_assert_eq(terni_loader_resolve(loader, ":inc", NULL, &fn, err, sizeof(err)), TERN_EINVAL);
    cr_assert_eq(terni_loader_resolve(loader, "nope:inc", NULL, &fn, err, sizeof(err)),
                 TERN_ENOTFOUND);
    cr_assert(strstr(err, "no plugin named \"nope\""), "%s", err);
    cr_assert_eq(terni_loader_resolve(loader, "testplug:inc", NULL, &fn, err, sizeof(err)),
                 TERN_OK);
}

LTest(loader, wrong_abi_is_refused_with_advice)
{
    const terni_plugin *p = NULL;
    int rc = terni_loader_load_file(loader, PLUGIN_PATH("wrong_abi"), &p, err, sizeof(err));
    cr_assert_eq(rc, TERN_EABI, "%s", err);
    cr_assert_null(p);
    char want[64];
    snprintf(want, sizeof(want), "ABI %d", TERN_ABI_VERSION + 98);
    cr_assert(strstr(err, want) && strstr(err, "rebuild"), "%s", err);
}

LTest(loader, version_that_is_not_utf8_is_refused)
{
    const terni_plugin *p = NULL;
    int rc = terni_loader_load_file(loader, PLUGIN_PATH("bad_version"), &p, err, sizeof(err));
    cr_assert_eq(rc, TERN_ENOTPLUGIN, "%s: %s", tern_strerror_name(rc), err);
    cr_assert_null(p);
    cr_assert(strstr(err, "bad_version") && strstr(err, "version") && strstr(err, "UTF-8"), "%s",
              err);
    cr_assert_null(terni_loader_find(loader, "bad_version"), "nothing of it is registered");
}

LTest(loader, shared_object_without_descriptor_is_not_a_plugin)
{
    const terni_plugin *p;
    cr_assert_eq(terni_loader_load_file(loader, PLUGIN_PATH("no_descriptor"), &p, err, sizeof(err)),
                 TERN_ENOTPLUGIN);
    cr_assert(strstr(err, "TERN_PLUGIN(name, version)"), "%s", err);
    cr_assert_eq(terni_loader_load_file(loader, PLUGIN_PATH("bad_magic"), &p, err, sizeof(err)),
                 TERN_ENOTPLUGIN);
    cr_assert(strstr(err, "bad magic"), "%s", err);
}

LTest(loader, garbage_and_empty_input)
{
    const terni_plugin *p;
    const char text[] = "#!/bin/sh\necho this is not a plugin\n";
    cr_assert_eq(terni_loader_load(loader, text, sizeof(text), &p, err, sizeof(err)),
                 TERN_ENOTPLUGIN);
    cr_assert(strstr(err, "no ELF header"), "%s", err);
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)(i * 7919u >> 3);
    memcpy(junk, "\177ELF", 4); /* ELF magic but nonsense after it */
    int rc = terni_loader_load(loader, junk, sizeof(junk), &p, err, sizeof(err));
    cr_assert(rc == TERN_ENOTPLUGIN || rc == TERN_EDLOPEN, "rc %d: %s", rc, err);
    cr_assert_eq(terni_loader_load(loader, "", 0, &p, err, sizeof(err)), TERN_EINVAL);
    cr_assert_eq(terni_loader_load_file(loader, "/nonexistent/x.so", &p, err, sizeof(err)),
                 TERN_ENOTFOUND);
}

LTest(loader, every_truncation_of_a_plugin_is_refused_without_crashing)
{
    /* glibc's dlopen dies of SIGBUS on a truncated object; the loader must catch it first. */
    size_t len;
    unsigned char *bytes = slurp(PLUGIN_PATH("testplug"), &len);
    const terni_plugin *p;
    for (size_t cut = 0; cut < len; cut += (cut < 256 ? 1 : 97)) {
        int rc = terni_loader_load(loader, bytes, cut, &p, err, sizeof(err));
        cr_assert(rc == TERN_ENOTPLUGIN || rc == TERN_EINVAL || rc == TERN_EDLOPEN,
                  "cut at %zu: rc %d (%s)", cut, rc, err);
    }
    int rc = terni_loader_load(loader, bytes, len / 2, &p, err, sizeof(err));
    cr_assert_eq(rc, TERN_ENOTPLUGIN, "%s", err);
    cr_assert(strstr(err, "truncated"), "%s", err);
    free(bytes);
}

LTest(loader, dlopen_failure_carries_dlerror_text)
{
    /* A structurally sound object that needs a library the worker lacks. */
    const terni_plugin *p;
    int rc = terni_loader_load_file(loader, PLUGIN_PATH("needs_missing_lib"), &p, err, sizeof(err));
    cr_assert_eq(rc, TERN_EDLOPEN, "rc %d: %s", rc, err);
    cr_assert(strstr(err, "libtern_no_such_library.so"), "dlerror text missing: %s", err);
}

LTest(loader, same_bytes_twice_is_one_plugin_and_one_file)
{
    const terni_plugin *a = load(PLUGIN_PATH("testplug"));
    struct stat st1, st2;
    cr_assert_eq(stat(terni_plugin_path(a), &st1), 0);
    const terni_plugin *b = load(PLUGIN_PATH("testplug"));
    cr_assert_eq(a, b);
    cr_assert_eq(stat(terni_plugin_path(b), &st2), 0);
    cr_assert_eq(st1.st_ino, st2.st_ino, "the stored file must not be rewritten");
    cr_assert_eq(st1.st_mtime, st2.st_mtime);
}

LTest(loader, second_loader_reuses_a_verified_file)
{
    const terni_plugin *a = load(PLUGIN_PATH("testplug"));
    struct stat st1, st2;
    cr_assert_eq(stat(terni_plugin_path(a), &st1), 0);
    terni_loader *other;
    cr_assert_eq(terni_loader_open(workdir, &other, err, sizeof(err)), TERN_OK);
    const terni_plugin *b;
    cr_assert_eq(terni_loader_load_file(other, PLUGIN_PATH("testplug"), &b, err, sizeof(err)),
                 TERN_OK, "%s", err);
    cr_assert_eq(stat(terni_plugin_path(b), &st2), 0);
    cr_assert_eq(st1.st_ino, st2.st_ino);
    terni_loader_close(other);
}

LTest(loader, corrupt_file_under_the_id_is_replaced_not_trusted)
{
    size_t len;
    unsigned char *bytes = slurp(PLUGIN_PATH("testplug"), &len);
    char id[65], path[4200];
    terni_sha256_hex(bytes, len, id);
    snprintf(path, sizeof(path), "%s/plugins/%s.so", workdir, id);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs("tampered", f);
    fclose(f);
    const terni_plugin *p;
    cr_assert_eq(terni_loader_load(loader, bytes, len, &p, err, sizeof(err)), TERN_OK, "%s", err);
    free(bytes);
    tern_value *out;
    cr_assert_eq(
        call_task(loader, "testplug:inc", tern_list_of(tern_int(1)), &out, err, sizeof(err)),
        TERN_OK, "%s", err);
    tern_value_unref(out);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((size_t)st.st_size, len);
}

LTest(loader, newest_version_wins_old_one_keeps_working)
{
    const terni_plugin *v1 = load(PLUGIN_PATH("testplug"));
    const terni_plugin *v2 = load(PLUGIN_PATH("testplug_v2"));
    cr_assert_neq(v1, v2);
    cr_assert_neq(strcmp(terni_plugin_id(v1), terni_plugin_id(v2)), 0);
    cr_assert_eq(terni_loader_find(loader, "testplug"), v2);
    cr_assert_eq(terni_loader_get(loader, terni_plugin_id(v1)), v1);
    tern_value *out;
    cr_assert_eq(call_task(loader, "testplug:version", tern_list_new(0), &out, err, sizeof(err)),
                 TERN_OK);
    const char *s;
    cr_assert_eq(tern_value_get_text(out, &s, NULL), TERN_OK);
    cr_assert_str_eq(s, "2.0.0");
    tern_value_unref(out);
    tern_task_fn fn;
    cr_assert_eq(terni_plugin_resolve(v1, "version", &fn, err, sizeof(err)), TERN_OK);
    cr_assert_eq(terni_task_call(fn, "version", "", NULL, NULL, 0, &out, err, sizeof(err)),
                 TERN_OK);
    cr_assert_eq(tern_value_get_text(out, &s, NULL), TERN_OK);
    cr_assert_str_eq(s, "1.0.0");
    tern_value_unref(out);
}

LTest(loader, task_failures_carry_messages)
{
    load(PLUGIN_PATH("testplug"));
    tern_value *out;
    cr_assert_eq(call_task(loader, "testplug:fail", tern_list_new(0), &out, err, sizeof(err)),
                 TERN_EINVAL);
    cr_assert_null(out);
    cr_assert_str_eq(err, "failing on purpose in fail");
    cr_assert_eq(call_task(loader, "testplug:forgetful", tern_list_new(0), &out, err, sizeof(err)),
                 TERN_ETASK);
    cr_assert(strstr(err, "returned no value"), "%s", err);
    cr_assert_eq(
        call_task(loader, "testplug:inc", tern_list_of(tern_text("x")), &out, err, sizeof(err)),
        TERN_ETYPE);
}

LTest(loader, task_tables_of_two_plugins_stay_apart)
{
    const terni_plugin *a = load(PLUGIN_PATH("testplug"));
    const terni_plugin *b = load(PLUGIN_PATH("arrays"));
    cr_assert_eq(terni_plugin_task_count(a), 5);
    cr_assert_geq(terni_plugin_task_count(b), 13);
    tern_task_fn fn;
    cr_assert_eq(terni_plugin_resolve(a, "add", &fn, err, sizeof(err)), TERN_ENOTFOUND);
    cr_assert_eq(terni_plugin_resolve(b, "inc", &fn, err, sizeof(err)), TERN_ENOTFOUND);
}

LTest(loader, unusable_workdir_is_an_io_error)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/file", workdir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    terni_loader *l = NULL;
    cr_assert_eq(terni_loader_open(path, &l, err, sizeof(err)), TERN_EIO);
    cr_assert_null(l);
    cr_assert(strstr(err, "cannot use plugin directory"), "%s", err);
    cr_assert_eq(terni_loader_open("", &l, err, sizeof(err)), TERN_EINVAL);
}

struct race {
    const unsigned char *bytes;
    size_t len;
    const terni_plugin *got;
    int rc;
};

static void *race_load(void *arg)
{
    struct race *r = arg;
    r->rc = terni_loader_load(loader, r->bytes, r->len, &r->got, NULL, 0);
    return NULL;
}

LTest(loader, concurrent_loads_of_one_plugin_agree)
{
    size_t len;
    unsigned char *bytes = slurp(PLUGIN_PATH("testplug"), &len);
    pthread_t t[4];
    struct race r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct race){ bytes, len, NULL, -1 };
        pthread_create(&t[i], NULL, race_load, &r[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(r[i].rc, TERN_OK);
        cr_assert_eq(r[i].got, r[0].got);
    }
    free(bytes);
}
