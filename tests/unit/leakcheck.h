/* LTest(): a Criterion Test() that ends with a LeakSanitizer check. */
#ifndef TERN_LEAKCHECK_H
#define TERN_LEAKCHECK_H

#include <criterion/criterion.h>

/* Criterion ignores LeakSanitizer's report at process exit (the test has already passed by
 * then), so in sanitizer builds every test ends with an explicit leak check: LTest() is Test()
 * followed by that check. Normal builds run the body alone. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_LSAN 1
#endif
#endif
#ifdef TEST_LSAN
#define TEST_ASAN 1 /* built with AddressSanitizer (LeakSanitizer comes with it) */
#include <sanitizer/lsan_interface.h>
static void leak_check(void)
{
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,
                 "memory leaked (LeakSanitizer report above)");
}
#else
static void leak_check(void) {}
#endif
#define LTEST_FN_(suite, name, ...) suite##_##name##_body
#define LTEST_FN(...)               LTEST_FN_(__VA_ARGS__, )
#define LTest(...)                                                                                 \
    static void LTEST_FN(__VA_ARGS__)(void);                                                       \
    Test(__VA_ARGS__)                                                                              \
    {                                                                                              \
        LTEST_FN(__VA_ARGS__)();                                                                   \
        leak_check();                                                                              \
    }                                                                                              \
    static void LTEST_FN(__VA_ARGS__)(void)

#endif
