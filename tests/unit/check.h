/* Minimal assertions for the unit tests: CHECK records a failure with its
 * location and goes on; main returns check_exit(). */
#ifndef IMGPAR_TEST_CHECK_H
#define IMGPAR_TEST_CHECK_H

#include <stdio.h>

static int check_failures;
static long check_count;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        check_count++;                                                                \
        if (!(cond)) {                                                                \
            check_failures++;                                                         \
            if (check_failures <= 30)                                                 \
                fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                            \
    do {                                                                              \
        long long a_ = (long long)(a), b_ = (long long)(b);                           \
        check_count++;                                                                \
        if (a_ != b_) {                                                               \
            check_failures++;                                                         \
            if (check_failures <= 30)                                                 \
                fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n",     \
                        __FILE__, __LINE__, #a, #b, a_, b_);                          \
        }                                                                             \
    } while (0)

static inline int check_exit(const char *name)
{
    if (check_failures) {
        fprintf(stderr, "%s: %d of %ld checks failed\n", name, check_failures, check_count);
        return 1;
    }
    if (check_count == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    printf("%s: %ld checks passed\n", name, check_count);
    return 0;
}

/* xorshift64*: reproducible test data. */
static inline unsigned long long check_rand(unsigned long long *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

#endif
