/* Unit tests for csrc/http: the llhttp glue with limits, and response encoding helpers.
 * Each input is also fed one byte at a time, the way a slow client delivers it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "fra/http.h"

static fra_req *new_req(void *owner) { return calloc(1, sizeof(fra_req)); }

static fra_limits defaults = {8190, 32768, 100, 0};

typedef struct {
  long consumed;     /* bytes consumed before the pause or error */
  int status;        /* 0 or the error status */
  fra_req *req;
} result;

/* Parses `in` (whole, or one byte per call) with the limits; stops at the first pause. */
static result parse(const char *in, size_t len, const fra_limits *lim, int bytewise) {
  fra_parser ps;
  fra_parser_init(&ps, lim, NULL);
  ps.new_req = new_req;
  result r = {0, 0, NULL};
  size_t step = bytewise ? 1 : len;
  for (size_t off = 0; off < len; off += step) {
    size_t n = len - off < step ? len - off : step;
    fra_parse_error err;
    long used = fra_parser_execute(&ps, in + off, n, &err);
    if (used < 0) {
      r.status = err.status;
      break;
    }
    r.consumed += used;
    if ((size_t)used < n) break; /* paused after a complete message */
    if (ps.req && ps.req->complete) break;
  }
  r.req = ps.req;
  return r;
}

static void free_result(result *r) {
  if (r->req) fra_req_free(r->req);
}

static int hdr_is(fra_req *r, uint32_t i, const char *name, const char *value) {
  fra_hdr *h = &r->hdrs[i];
  return h->name_len == strlen(name) && memcmp(r->buf + h->name_off, name, h->name_len) == 0 &&
         h->value_len == strlen(value) && memcmp(r->buf + h->value_off, value, h->value_len) == 0;
}

static void test_simple(int bw) {
  const char *in = "GET /a/b?x=1 HTTP/1.1\r\nHost: example \t\r\nX-Long: " "abcdef\r\nEmpty:\r\n\r\n";
  result r = parse(in, strlen(in), &defaults, bw);
  CHECK(r.status == 0, "simple: status %d", r.status);
  CHECK(r.req && r.req->complete && r.req->headers_done, "simple: complete");
  CHECK(r.req->url_len == 8 && memcmp(r.req->buf + r.req->url_off, "/a/b?x=1", 8) == 0, "simple: url");
  CHECK(r.req->method == HTTP_GET && r.req->http_major == 1 && r.req->http_minor == 1, "simple: method/version");
  CHECK(r.req->nhdrs == 3, "simple: %zu headers", r.req->nhdrs);
  CHECK(hdr_is(r.req, 0, "Host", "example"), "simple: host");
  CHECK(hdr_is(r.req, 1, "X-Long", "abcdef"), "simple: split value joined");
  CHECK(r.req->hdrs[2].value_len == 0, "simple: empty value");
  CHECK(r.req->keep_alive == 1, "simple: keep-alive by default in 1.1");
  CHECK(fra_req_find(r.req, "host", 4) == 0, "simple: find is case-insensitive");
  free_result(&r);
}

static void test_pipelined_pause(void) {
  const char *in = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
  result r = parse(in, strlen(in), &defaults, 0);
  CHECK(r.status == 0, "pipeline: status");
  CHECK(r.consumed == (long)strlen("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"), "pipeline: paused after first (%ld)", r.consumed);
  free_result(&r);
}

static void test_paused_at_end_of_read(void) {
  fra_parser ps;
  fra_parser_init(&ps, &defaults, NULL);
  ps.new_req = new_req;
  fra_parse_error err;
  const char *a = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", *b = "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
  long used = fra_parser_execute(&ps, a, strlen(a), &err);
  CHECK(used == (long)strlen(a) && ps.req && ps.req->complete, "first message consumed whole");
  used = fra_parser_execute(&ps, b, strlen(b), &err);
  CHECK(used == 0, "nothing consumed while paused (%ld)", used);
  fra_req_free(ps.req);
  ps.req = NULL;
  fra_parser_resume(&ps);
  used = fra_parser_execute(&ps, b, strlen(b), &err);
  CHECK(used == (long)strlen(b) && ps.req && ps.req->complete && memcmp(ps.req->buf + ps.req->url_off, "/2", 2) == 0,
        "second message parsed from its first byte after resume");
  fra_req_free(ps.req);
}

static void test_bodies(int bw) {
  const char *cl = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
  result r = parse(cl, strlen(cl), &defaults, bw);
  CHECK(r.status == 0 && r.req->complete, "cl body: complete");
  CHECK(r.req->body_len == 5 && memcmp(r.req->body, "hello", 5) == 0, "cl body: bytes");
  CHECK(r.req->has_body && r.req->content_length == 5, "cl body: length");
  free_result(&r);
  const char *ch = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: x\r\n\r\n";
  r = parse(ch, strlen(ch), &defaults, bw);
  CHECK(r.status == 0 && r.req->complete, "chunked: complete (status %d)", r.status);
  CHECK(r.req->body_len == 5 && memcmp(r.req->body, "abcde", 5) == 0, "chunked: bytes");
  CHECK(r.req->nhdrs == 2, "chunked: trailer not kept as a header (%zu)", r.req->nhdrs);
  free_result(&r);
  const char *ex = "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
  r = parse(ex, strlen(ex), &defaults, bw);
  CHECK(r.req && r.req->expect_continue && r.req->headers_done && !r.req->complete, "expect: flagged, body pending");
  free_result(&r);
}

static void expect_status(const char *name, const char *in, const fra_limits *lim, int status) {
  for (int bw = 0; bw < 2; bw++) {
    result r = parse(in, strlen(in), lim, bw);
    CHECK(r.status == status, "%s (%s): got %d, want %d", name, bw ? "bytewise" : "whole", r.status, status);
    free_result(&r);
  }
}

static void test_limits(void) {
  fra_limits small = {32, 64, 3, 10};
  char line[200];
  snprintf(line, sizeof line, "GET /%040d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
  expect_status("request line", line, &small, 414);
  expect_status("request line at default", line, &defaults, 0);
  /* "GET /" + 18 + " HTTP/1.1" is 32 bytes: at the limit; one more is over */
  expect_status("request line at limit", "GET /012345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n", &small, 0);
  expect_status("request line one over", "GET /0123456789012345678 HTTP/1.1\r\nHost: a\r\n\r\n", &small, 414);
  expect_status("header bytes", "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890123456789012345678901234567890123\r\n\r\n", &small, 431);
  expect_status("header count", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &small, 431);
  expect_status("three headers fit", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", &small, 0);
  expect_status("body by length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", &small, 413);
  expect_status("body chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n", &small, 413);
  expect_status("body at limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", &small, 0);
}

static void test_malformed(void) {
  expect_status("no host", "GET / HTTP/1.1\r\n\r\n", &defaults, 400);
  expect_status("two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &defaults, 400);
  expect_status("1.0 without host", "GET / HTTP/1.0\r\n\r\n", &defaults, 0);
  expect_status("bad version", "GET / HTTP/1.7\r\nHost: a\r\n\r\n", &defaults, 505);
  expect_status("cl + te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &defaults, 400);
  expect_status("double cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", &defaults, 400);
  expect_status("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", &defaults, 400);
  expect_status("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  b\r\n\r\n", &defaults, 400);
  expect_status("bare LF", "GET / HTTP/1.1\nHost: a\n\n", &defaults, 400);
  expect_status("bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &defaults, 400);
  expect_status("chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", &defaults, 400);
  expect_status("NUL in header", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", &defaults, 0 /* strlen stops at NUL: truncated */);
  expect_status("HTTP/2.0 on HTTP/1", "GET / HTTP/2.0\r\n\r\n", &defaults, 505);
  expect_status("asterisk GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", &defaults, 400);
  expect_status("asterisk OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &defaults, 0);
  expect_status("TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &defaults, 400);
  expect_status("two Content-Type", "GET / HTTP/1.1\r\nHost: a\r\nContent-Type: a/b\r\ncontent-type: c/d\r\n\r\n", &defaults, 400);
  expect_status("trailer Host", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nHost: b\r\n\r\n", &defaults, 400);
  expect_status("allowed trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-Checksum: b\r\n\r\n", &defaults, 0);
  expect_status("bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", &defaults, 400);
  expect_status("bare LF ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", &defaults, 400);
  expect_status("two spaces after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", &defaults, 400);
  expect_status("tab in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", &defaults, 400);
  expect_status("space inside name", "GET / HTTP/1.1\r\nHost: a\r\nX H: y\r\n\r\n", &defaults, 400);
  expect_status("empty name", "GET / HTTP/1.1\r\nHost: a\r\n: y\r\n\r\n", &defaults, 400);
  expect_status("empty TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\nContent-Length: 1\r\n\r\nx", &defaults, 400);
  expect_status("CR then byte in last chunk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\rX\r\n\r\n", &defaults, 400);
  expect_status("CR then byte at the end", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\rX", &defaults, 400);
  expect_status("chunk longer than size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n", &defaults, 400);
  expect_status("chunk ext quoted ok", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\"b c\";d\r\nx\r\n0\r\n\r\n", &defaults, 0);
  expect_status("chunk ext token then quote", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;foo=b\"ar baz\"\r\nhello\r\n0\r\n\r\n", &defaults, 400);
  expect_status("chunk ext trailing space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a \r\nx\r\n0\r\n\r\n", &defaults, 400);
  expect_status("chunk extension ok", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\r\nx\r\n0\r\n\r\n", &defaults, 0);
  expect_status("leading empty line ok", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &defaults, 0);
  expect_status("trailer name with space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX Y: 1\r\n\r\n", &defaults, 400);
  expect_status("garbage method", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", &defaults, 400);
}

static void test_response_helpers(void) {
  char buf[256];
  size_t n = fra_status_line(buf, 404);
  CHECK(n == strlen("HTTP/1.1 404 Not Found\r\n") && memcmp(buf, "HTTP/1.1 404 Not Found\r\n", n) == 0, "status line");
  n = fra_status_line(buf, 599);
  CHECK(memcmp(buf, "HTTP/1.1 599 \r\n", n) == 0, "unknown status keeps the code");
  n = fra_chunk_head(buf, 0x1a2f);
  CHECK(n == 6 && memcmp(buf, "1a2f\r\n", 6) == 0, "chunk head hex");
  n = fra_chunk_head(buf, 0);
  CHECK(n == 3 && memcmp(buf, "0\r\n", 3) == 0, "chunk head zero");
  n = fra_decimal(buf, 0);
  CHECK(n == 1 && buf[0] == '0', "decimal zero");
  n = fra_decimal(buf, 18446744073709551615ULL);
  CHECK(n == 20 && memcmp(buf, "18446744073709551615", 20) == 0, "decimal max");
  CHECK(fra_valid_header_name("!#$%&'*+-.^_`|~09azAZ", 21) && !fra_valid_header_name("\x80", 1) &&
            !fra_valid_header_name("a\"b", 3),
        "tchar table");
  size_t dl;
  const char *d = fra_date_header(&dl);
  CHECK(dl == strlen("Date: Sun, 22 Nov 2026 02:03:38 GMT\r\n") && memcmp(d, "Date: ", 6) == 0, "date header shape");
  CHECK(fra_valid_header_name("X-Ok", 4) && !fra_valid_header_name("X Bad", 5) && !fra_valid_header_name("", 0) &&
            !fra_valid_header_name("X:y", 3),
        "header names");
  CHECK(fra_valid_header_value("a b\tc", 5) && !fra_valid_header_value("a\r\nb", 4) && !fra_valid_header_value("a\0", 2),
        "header values");
  n = fra_error_response(buf, 431);
  CHECK(strstr(buf, "HTTP/1.1 431 Request Header Fields Too Large\r\n") == buf && strstr(buf, "Connection: close\r\n"),
        "error response");
}

/* A request-line limit below the fixed 10 bytes of " HTTP/1.1" (and the method) refuses every
 * request instead of wrapping an unsigned subtraction into "no limit". */
static void test_tiny_request_line_limit(void) {
  fra_limits tiny = {5, 32768, 100, 0};
  expect_status("request line limit 5", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &tiny, 414);
  fra_limits one = {1, 32768, 100, 0};
  expect_status("request line limit 1", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &one, 414);
}

/* A request marked discard (its response was sent early) is still parsed and framed, its body
 * counted but not kept. */
static void test_discard(void) {
  fra_parser ps;
  fra_parser_init(&ps, &defaults, NULL);
  ps.new_req = new_req;
  fra_parse_error err;
  const char *head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nab";
  long used = fra_parser_execute(&ps, head, strlen(head), &err);
  CHECK(used == (long)strlen(head) && ps.req && ps.req->body_len == 2, "discard: head and 2 body bytes");
  ps.req->discard = 1;
  ps.req->body_off = ps.req->body_len = 0;
  const char *rest = "cdefGET";
  used = fra_parser_execute(&ps, rest, strlen(rest), &err);
  CHECK(used == 4 && ps.req->complete && ps.req->body_total == 6 && ps.req->body_len == 0,
        "discard: rest counted, not kept, paused at the end (used %ld)", used);
  fra_req_free(ps.req);
}

static void test_body_queue(void) {
  fra_req *r = calloc(1, sizeof *r);
  for (int i = 0; i < 1000; i++) fra_req_body_append(r, "0123456789", 10);
  CHECK(r->body_len == 10000, "body queue length");
  r->body_off = 9990;
  fra_req_body_append(r, "abc", 3);
  CHECK(r->body_len - r->body_off == 13 && memcmp(r->body + r->body_off + 10, "abc", 3) == 0, "body queue after consume");
  fra_req_reset(r);
  CHECK(r->body_len == 0 && r->nhdrs == 0 && r->body != NULL, "reset keeps buffers");
  fra_req_free(r);
}

int main(void) {
  test_simple(0);
  test_simple(1);
  test_pipelined_pause();
  test_paused_at_end_of_read();
  test_bodies(0);
  test_bodies(1);
  test_limits();
  test_malformed();
  test_response_helpers();
  test_body_queue();
  test_tiny_request_line_limit();
  test_discard();
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
