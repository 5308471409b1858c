/* check.h — the C tests' one assertion: counts checks, reports a failure with its place and
 * goes on, so one run shows every failure.  main() prints the totals. */
#ifndef FRA_TEST_CHECK_H
#define FRA_TEST_CHECK_H

#include <stdio.h>

static int failures, checks;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    checks++;                                              \
    if (!(cond)) {                                         \
      failures++;                                          \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
    }                                                      \
  } while (0)

#endif
