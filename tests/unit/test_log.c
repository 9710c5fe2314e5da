/* Structured logs (runtime/util/log.c): the line format, escaping, levels, and the shared
 * --log-level option. */
#include <criterion/criterion.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/util/log.h"

/* Runs fn with stderr sent to a file; returns what it wrote (malloc'd). */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/tern-test-log-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    cr_assert_eq(pread(fd, out, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    return out;
}

static void log_three(void)
{
    terni_log(TERNI_LOG_INFO, "worker %s joined", "w1");
    terni_log(TERNI_LOG_DEBUG, "not shown at info");
    terni_log(TERNI_LOG_ERROR, "say \"hi\"\\ and\nnext");
}

Test(log, one_logfmt_line_per_event)
{
    unsetenv("TERN_LOG_LEVEL");
    cr_assert(terni_log_init("tern-test", "worker=w1"));
    terni_log_set_level(TERNI_LOG_INFO);
    char *out = capture(log_three);
    regex_t re;
    cr_assert_eq(regcomp(&re,
                         "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                         "level=info proc=tern-test worker=w1 msg=\"worker w1 joined\"\n"
                         "ts=[^ ]+ level=error proc=tern-test worker=w1 "
                         "msg=\"say \\\\\"hi\\\\\"\\\\\\\\ and\\\\nnext\"\n$",
                         REG_EXTENDED),
                 0);
    cr_assert_eq(regexec(&re, out, 0, NULL, 0), 0, "got:\n%s", out);
    regfree(&re);
    free(out);
}

Test(log, levels_parse_and_filter)
{
    terni_log_level l;
    cr_assert(terni_log_parse_level("debug", &l) && l == TERNI_LOG_DEBUG);
    cr_assert(terni_log_parse_level("WARNING", &l) && l == TERNI_LOG_WARN);
    cr_assert(terni_log_parse_level("error", &l) && l == TERNI_LOG_ERROR);
    cr_assert_not(terni_log_parse_level("loud", &l));
    cr_assert_not(terni_log_parse_level(NULL, &l));
    terni_log_set_level(TERNI_LOG_WARN);
    cr_assert(terni_log_enabled(TERNI_LOG_ERROR));
    cr_assert(terni_log_enabled(TERNI_LOG_WARN));
    cr_assert_not(terni_log_enabled(TERNI_LOG_INFO));
}

Test(log, the_environment_sets_the_level_and_quiet_does_not_override_it)
{
    setenv("TERN_LOG_LEVEL", "debug", 1);
    cr_assert(terni_log_init("tern-test", NULL));
    cr_assert_eq(terni_log_get_level(), TERNI_LOG_DEBUG);
    terni_log_quiet();
    cr_assert_eq(terni_log_get_level(), TERNI_LOG_DEBUG, "an explicit level wins over --quiet");
    setenv("TERN_LOG_LEVEL", "chatty", 1);
    cr_assert_not(terni_log_init("tern-test", NULL));
}

Test(log, quiet_means_warn_by_default)
{
    unsetenv("TERN_LOG_LEVEL");
    cr_assert(terni_log_init("tern-test", NULL));
    terni_log_quiet();
    cr_assert_eq(terni_log_get_level(), TERNI_LOG_WARN);
}

Test(log, take_args_removes_the_shared_option)
{
    char *argv[] = { "prog",    "--listen",          "x", "--log-level", "debug",
                     "--quiet", "--log-level=error", NULL };
    int argc = 7;
    cr_assert_eq(terni_log_take_args("prog", &argc, argv), 0);
    cr_assert_eq(argc, 4);
    cr_assert_str_eq(argv[1], "--listen");
    cr_assert_str_eq(argv[2], "x");
    cr_assert_str_eq(argv[3], "--quiet");
    cr_assert_null(argv[4]);
    cr_assert_eq(terni_log_get_level(), TERNI_LOG_ERROR, "the last one counts");

    char *bad[] = { "prog", "--log-level", "loud", NULL };
    argc = 3;
    cr_assert_eq(terni_log_take_args("prog", &argc, bad), 2);
    char *missing[] = { "prog", "--log-level", NULL };
    argc = 2;
    cr_assert_eq(terni_log_take_args("prog", &argc, missing), 2);
}
