/* check.h: the few assertions the C unit tests need.  A failed check
 * prints file:line and what differed, and the test goes on; main returns
 * non-zero if any failed. */
#ifndef REGISTRAR_TEST_CHECK_H
#define REGISTRAR_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures, check_count;

#define CHECK(cond) do { \
    check_count++; \
    if (!(cond)) { \
        check_failures++; \
        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    } \
} while (0)

#define CHECK_STR(got, want) do { \
    const char *g_ = (got), *w_ = (want); \
    check_count++; \
    if (g_ == NULL || w_ == NULL ? g_ != w_ : strcmp(g_, w_) != 0) { \
        check_failures++; \
        fprintf(stderr, "%s:%d: %s\n   got: %s\n  want: %s\n", __FILE__, __LINE__, #got, \
                g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
    } \
} while (0)

/* got contains want */
#define CHECK_HAS(got, want) do { \
    const char *g_ = (got), *w_ = (want); \
    check_count++; \
    if (g_ == NULL || strstr(g_, w_) == NULL) { \
        check_failures++; \
        fprintf(stderr, "%s:%d: %s\n   got: %s\n  want it to contain: %s\n", __FILE__, __LINE__, \
                #got, g_ ? g_ : "(null)", w_); \
    } \
} while (0)

#define CHECK_DONE() (printf("%d checks, %d failed\n", check_count, check_failures), check_failures != 0)

#endif
