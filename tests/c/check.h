/* The tiny check harness of the C tests: CHECK counts every check, reports a failing one with its
 * place, message and the library's last error, and check_summary() prints the tally and gives the
 * exit status. One copy for every test program under tests/c. */
#ifndef CONODE_TEST_CHECK_H
#define CONODE_TEST_CHECK_H

#include "conode.h"

#include <stdio.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        checks++;                                                     \
        if (!(cond)) {                                                \
            failures++;                                               \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                             \
            fprintf(stderr, " (last error: %s)\n",                    \
                    conode_last_error_message() ? conode_last_error_message() : "none"); \
        }                                                             \
    } while (0)

/* Prints "N passed, M failed" and returns the process exit status. */
static int check_summary(void) {
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}

#endif
