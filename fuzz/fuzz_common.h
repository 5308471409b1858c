/* fuzz_common.h — shared by the libFuzzer targets: the input header that picks limits and
 * split points, a tiny PRNG, a growable byte buffer, and the crash-on-violation check.
 * Owns nothing global; no Python, no GIL. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "fra/http.h"

/* A violated invariant is a crash, so libFuzzer saves the input that caused it. */
#define REQUIRE(cond, ...)                                                 \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "invariant violated at %s:%d: %s\n  ", __FILE__,     \
              __LINE__, #cond);                                            \
      fprintf(stderr, __VA_ARGS__);                                        \
      fprintf(stderr, "\n");                                               \
      abort();                                                             \
    }                                                                      \
  } while (0)

/* Every parser input starts with this 8-byte header (the seed generator writes it):
 *   [0] flags: bit0 small limits, bit1 body limit, bit2 also feed one byte at a time
 *   [1] request_line = 12 + b      [2] header_size = 8 + 4*b
 *   [3] header_count = 1 + b % 32  [4] body_size = 16 * b
 *   [5..7] seed of the split points */
#define CFG_LEN 8
enum { CFG_SMALL = 1, CFG_BODY = 2, CFG_BYTEWISE = 4 };

typedef struct {
  fra_limits limits;
  uint32_t seed;
  int bytewise;
} fuzz_cfg;

static inline void cfg_read(const uint8_t *d, fuzz_cfg *c) {
  /* the server's defaults unless the input asks for small ones */
  c->limits = (fra_limits){8190, 32768, 100, 0};
  if (d[0] & CFG_SMALL) {
    c->limits.request_line = 12u + d[1];
    c->limits.header_size = 8u + 4u * d[2];
    c->limits.header_count = 1u + d[3] % 32u;
  }
  if (d[0] & CFG_BODY) c->limits.body_size = 16u * d[4];
  c->seed = (uint32_t)d[5] | (uint32_t)d[6] << 8 | (uint32_t)d[7] << 16;
  c->bytewise = (d[0] & CFG_BYTEWISE) != 0;
}

/* xorshift32: split points depend only on the input, so a crash replays exactly. */
static inline uint32_t rng_next(uint32_t *s) {
  uint32_t x = *s ? *s : 0x9e3779b9u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

typedef struct {
  uint8_t *p;
  size_t len, cap;
} bytes;

static inline void bytes_put(bytes *b, const void *src, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    b->p = realloc(b->p, cap);
    REQUIRE(b->p != NULL, "out of memory");
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, src, n);
  b->len += n;
}

static inline void bytes_free(bytes *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static inline int is_limit_status(int s) { return s == 413 || s == 414 || s == 431; }

/* The statuses the glue may answer a bad request with (503 only on out-of-memory). */
static inline int is_parse_status(int s) {
  return s == 400 || s == 413 || s == 414 || s == 431 || s == 505;
}

#endif
