/* fuzz_response.c — libFuzzer target for the response helpers (csrc/http/response.c):
 * fra_chunk_head, fra_valid_header_name/value, fra_status_line, fra_error_response, each
 * writing into a heap block of exactly the documented size so an overrun is an ASan error, and
 * each output checked against an independent reading of its contract.
 * Input: 8 bytes of size, 4 of status, then a header name and value split at the first ':'.
 * Owns nothing global; no Python, no GIL. */
#include <inttypes.h>
#include "fuzz_common.h"

static int ref_tchar(unsigned char c) {
  static const char extra[] = "!#$%&'*+-.^_`|~";
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
  for (const char *p = extra; *p; p++)
    if (c == (unsigned char)*p) return 1;
  return 0;
}

/* One CRLF, at the end: the bytes cannot start a second line of the message. */
static void one_line(const char *s, size_t n, const char *what) {
  REQUIRE(n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n', "%s does not end in CRLF", what);
  for (size_t i = 0; i + 2 < n; i++)
    REQUIRE(s[i] != '\r' && s[i] != '\n' && s[i] != '\0', "%s has byte %02x at %zu", what, (unsigned char)s[i], i);
}

static void check_chunk_head(uint64_t size) {
  char *out = malloc(20);
  REQUIRE(out != NULL, "out of memory");
  size_t n = fra_chunk_head(out, (size_t)size);
  REQUIRE(n >= 3 && n <= 18, "chunk head length %zu", n);
  one_line(out, n, "chunk head");
  uint64_t back = 0;
  for (size_t i = 0; i < n - 2; i++) {
    char c = out[i];
    REQUIRE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'), "chunk head byte %02x", (unsigned char)c);
    back = back << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  REQUIRE(back == size, "chunk head %.*s for %" PRIu64, (int)n - 2, out, size);
  REQUIRE(n == 3 || out[0] != '0', "leading zero in chunk head");
  free(out);
}

static void check_status_line(int status) {
  char *out = malloc(64);
  REQUIRE(out != NULL, "out of memory");
  size_t n = fra_status_line(out, status);
  REQUIRE(n < 64, "status line of %zu bytes", n);
  one_line(out, n, "status line");
  REQUIRE(n > 9 && memcmp(out, "HTTP/1.1 ", 9) == 0, "status line prefix");
  char want[16];
  int w = snprintf(want, sizeof want, "%d ", status);
  REQUIRE(n >= 9 + (size_t)w && memcmp(out + 9, want, (size_t)w) == 0, "status code in %.*s", (int)n, out);
  for (size_t i = 9 + (size_t)w; i + 2 < n; i++)   /* reason-phrase: HTAB / SP / VCHAR */
    REQUIRE(out[i] == '\t' || (out[i] >= 0x20 && out[i] < 0x7f), "reason byte %02x", (unsigned char)out[i]);
  free(out);
}

/* The canned error: one status line, valid fields, Connection: close, a Content-Length equal to
 * the body that follows, nothing after it. */
static void check_error_response(int status) {
  char *out = malloc(256);
  REQUIRE(out != NULL, "out of memory");
  size_t n = fra_error_response(out, status);
  REQUIRE(n < 256, "error response of %zu bytes for a 256-byte buffer", n);
  REQUIRE(strlen(out) == n, "error response length %zu vs %zu", strlen(out), n);
  char *eol = strstr(out, "\r\n");
  REQUIRE(eol != NULL, "no status line");
  char *line_copy = malloc((size_t)(eol - out) + 2);
  memcpy(line_copy, out, (size_t)(eol - out) + 2);
  one_line(line_copy, (size_t)(eol - out) + 2, "error status line");
  free(line_copy);
  char *head_end = strstr(out, "\r\n\r\n");
  REQUIRE(head_end != NULL, "no end of head");
  long clen = -1;
  int close = 0;
  for (char *p = eol + 2; p < head_end + 2;) {
    char *e = strstr(p, "\r\n");
    char *colon = memchr(p, ':', (size_t)(e - p));
    REQUIRE(colon && colon > p, "bad field line %.*s", (int)(e - p), p);
    for (char *q = p; q < colon; q++) REQUIRE(ref_tchar((unsigned char)*q), "bad field name %.*s", (int)(e - p), p);
    for (char *q = colon + 1; q < e; q++) REQUIRE(*q == '\t' || (*q >= 0x20 && *q != 0x7f), "bad value byte");
    if ((size_t)(colon - p) == 14 && strncasecmp(p, "content-length", 14) == 0) clen = strtol(colon + 1, NULL, 10);
    if ((size_t)(colon - p) == 10 && strncasecmp(p, "connection", 10) == 0 && strstr(colon, "close") < e) close = 1;
    p = e + 2;
  }
  size_t body = n - (size_t)(head_end + 4 - out);
  REQUIRE(clen >= 0 && (size_t)clen == body, "Content-Length %ld, body %zu", clen, body);
  REQUIRE(close, "no Connection: close");
  if (status >= 100 && status <= 599) REQUIRE(out[9] >= '1' && out[9] <= '5' && out[12] == ' ', "3-digit status");
  free(out);
}

static void check_header(const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen) {
  /* copies of exactly the given length: the validators must not read a byte further */
  char *n = malloc(nlen ? nlen : 1), *v = malloc(vlen ? vlen : 1);
  REQUIRE(n && v, "out of memory");
  memcpy(n, name, nlen);
  memcpy(v, value, vlen);
  int want_name = nlen > 0;
  for (size_t i = 0; i < nlen; i++) want_name &= ref_tchar(name[i]);
  int want_value = 1;
  for (size_t i = 0; i < vlen; i++) want_value &= value[i] != '\r' && value[i] != '\n' && value[i] != 0;
  int got_name = fra_valid_header_name(n, nlen), got_value = fra_valid_header_value(v, vlen);
  REQUIRE(got_name == want_name, "name verdict %d, want %d", got_name, want_name);
  REQUIRE(got_value == want_value, "value verdict %d, want %d", got_value, want_value);
  if (got_name && got_value) {
    /* what the bridge would write: it must stay one field line */
    size_t len = nlen + 2 + vlen + 2;
    char *line = malloc(len);
    memcpy(line, n, nlen);
    memcpy(line + nlen, ": ", 2);
    memcpy(line + nlen + 2, v, vlen);
    memcpy(line + nlen + 2 + vlen, "\r\n", 2);
    one_line(line, len, "header line");
    free(line);
  }
  free(n);
  free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 12) return 0;
  uint64_t sz;
  memcpy(&sz, data, 8);
  check_chunk_head(sz);
  check_chunk_head(sz >> (sz & 63));  /* small sizes too */
  int32_t st;
  memcpy(&st, data + 8, 4);
  check_status_line(st);
  check_error_response(st);
  int near = 100 + (int)((uint32_t)st % 500);  /* mostly real statuses */
  check_status_line(near);
  check_error_response(near);
  const uint8_t *rest = data + 12;
  size_t rlen = size - 12;
  const uint8_t *colon = memchr(rest, ':', rlen);
  size_t nlen = colon ? (size_t)(colon - rest) : rlen;
  check_header(rest, nlen, colon ? colon + 1 : rest + rlen, colon ? rlen - nlen - 1 : 0);
  size_t dl;
  const char *date = fra_date_header(&dl);
  REQUIRE(dl == 37 && memcmp(date, "Date: ", 6) == 0 && memcmp(date + 31, " GMT\r\n", 6) == 0,
          "date header %.*s", (int)dl, date);
  return 0;
}
