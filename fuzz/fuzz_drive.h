/* fuzz_drive.h — feeds bytes through fra_parser_execute the way csrc/core/conn.c does: pieces
 * as reads deliver them, a pause after each complete message, the request released and the
 * parser resumed when its response is done, the rest fed again.  Checks the glue's invariants
 * on every request and records each completed one, so two feedings can be compared.
 * Owns the requests it makes; no Python, no GIL. */
#ifndef FUZZ_DRIVE_H
#define FUZZ_DRIVE_H

#include <strings.h>
#include "fuzz_common.h"

typedef enum { FEED_WHOLE, FEED_SPLIT, FEED_BYTEWISE } feed_mode;

typedef struct {
  bytes log;          /* every completed request, serialised, in order */
  int status;         /* 0, or the error status fra_parser_execute reported */
  int nreq;           /* completed requests */
  int partial;        /* 1 if input ended inside a request, 2 if inside its body */
  size_t first_end;   /* offset just past the first completed request (0 if none) */
  bytes first_body;   /* the body of the first completed request */
} drive_result;

static void drive_result_free(drive_result *r) {
  bytes_free(&r->log);
  bytes_free(&r->first_body);
}

typedef struct {
  fra_req *spare;     /* a released request, reused like the server's free list */
} drive_owner;

static fra_req *drive_new_req(void *owner) {
  drive_owner *o = owner;
  if (o->spare) {
    fra_req *r = o->spare;
    o->spare = NULL;
    return r;
  }
  fra_req *r = calloc(1, sizeof *r);
  REQUIRE(r != NULL, "out of memory");
  return r;
}

static int is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_span(const fra_req *r, uint32_t off, uint32_t len, const char *what) {
  REQUIRE((uint64_t)off + len <= r->len, "%s span %u+%u outside buf of %u", what, off, len, r->len);
}

/* Invariants that hold for any request the glue has not rejected, complete or not. */
static void check_req(const fra_req *r, const fra_limits *lim) {
  REQUIRE(r->len <= r->cap || r->cap == 0, "len %u > cap %u", r->len, r->cap);
  check_span(r, r->method_off, r->method_len, "method");
  check_span(r, r->url_off, r->url_len, "url");
  REQUIRE(r->nhdrs <= r->hdrcap, "nhdrs %u > hdrcap %u", r->nhdrs, r->hdrcap);
  if (lim->header_count) REQUIRE(r->nhdrs <= lim->header_count, "%u headers > limit %u", r->nhdrs, lim->header_count);
  if (lim->header_size) REQUIRE(r->hdr_bytes <= lim->header_size, "%u header bytes > limit %u", r->hdr_bytes, lim->header_size);
  if (lim->request_line)
    REQUIRE(r->method_len + r->url_len + 10 <= lim->request_line, "line %u+%u+10 > limit %u",
            r->method_len, r->url_len, lim->request_line);
  if (lim->body_size) REQUIRE(r->body_total <= lim->body_size, "body %llu > limit %llu",
                              (unsigned long long)r->body_total, (unsigned long long)lim->body_size);
  REQUIRE(r->body_off <= r->body_len && r->body_len <= r->body_cap, "body buffer %zu/%zu/%zu",
          r->body_off, r->body_len, r->body_cap);
  uint64_t named = 0;
  for (uint32_t i = 0; i < r->nhdrs; i++) {
    const fra_hdr *h = &r->hdrs[i];
    check_span(r, h->name_off, h->name_len, "header name");
    if (r->headers_done) check_span(r, h->value_off, h->value_len, "header value");
    named += h->name_len + h->value_len;
  }
  REQUIRE(named <= r->hdr_bytes, "header spans %llu > counted %u", (unsigned long long)named, r->hdr_bytes);
}

/* What the app may rely on once the headers are complete. */
static void check_headers(const fra_req *r) {
  const unsigned char *b = (const unsigned char *)r->buf;
  REQUIRE(r->method_len > 0, "empty method");
  for (uint32_t i = 0; i < r->method_len; i++) REQUIRE(is_tchar(b[r->method_off + i]), "method byte %02x", b[r->method_off + i]);
  REQUIRE(r->url_len > 0, "empty target");
  for (uint32_t i = 0; i < r->url_len; i++) {
    unsigned char c = b[r->url_off + i];
    REQUIRE(c > 0x20 && c != 0x7f, "target byte %02x", c);
  }
  REQUIRE(r->http_major == 1 && r->http_minor <= 1, "version %u.%u", r->http_major, r->http_minor);
  REQUIRE(r->host_count == 1 || (r->http_minor == 0 && r->host_count == 0), "%u Host fields in 1.%u",
          r->host_count, r->http_minor);
  REQUIRE(r->ctype_count <= 1, "%u Content-Type fields", r->ctype_count);
  int te = 0, cl = 0;
  for (uint32_t i = 0; i < r->nhdrs; i++) {
    const fra_hdr *h = &r->hdrs[i];
    REQUIRE(h->name_len > 0, "empty header name");
    REQUIRE(fra_valid_header_name(r->buf + h->name_off, h->name_len), "header name not a token");
    for (uint32_t j = 0; j < h->value_len; j++) {
      unsigned char c = b[h->value_off + j];
      /* RFC 9110 5.5: field-vchar / SP / HTAB / obs-text; no CR, LF, NUL or other CTL */
      REQUIRE(c == '\t' || (c >= 0x20 && c != 0x7f), "header value byte %02x", c);
    }
    if (h->value_len) {
      REQUIRE(b[h->value_off] != ' ' && b[h->value_off] != '\t', "leading whitespace in value");
      unsigned char last = b[h->value_off + h->value_len - 1];
      REQUIRE(last != ' ' && last != '\t', "trailing whitespace in value");
    }
    if (h->name_len == 17 && strncasecmp(r->buf + h->name_off, "transfer-encoding", 17) == 0)
      te++;
    if (h->name_len == 14 && strncasecmp(r->buf + h->name_off, "content-length", 14) == 0) cl++;
  }
  /* RFC 9112 6.3: both framing fields, or two Content-Length fields, are refused. */
  REQUIRE(!(te && cl), "Transfer-Encoding and Content-Length both accepted");
  REQUIRE(cl <= 1, "%d Content-Length fields accepted", cl);
  if (te) REQUIRE(r->http_minor == 1, "Transfer-Encoding accepted in HTTP/1.0");
}

static void put_u32(bytes *b, uint32_t v) { bytes_put(b, &v, sizeof v); }

static void serialise(bytes *log, const fra_req *r, const bytes *body) {
  put_u32(log, r->method_len);
  bytes_put(log, r->buf + r->method_off, r->method_len);
  put_u32(log, r->url_len);
  bytes_put(log, r->buf + r->url_off, r->url_len);
  put_u32(log, (uint32_t)r->http_minor << 8 | r->keep_alive << 1 | r->expect_continue);
  put_u32(log, r->nhdrs);
  for (uint32_t i = 0; i < r->nhdrs; i++) {
    const fra_hdr *h = &r->hdrs[i];
    put_u32(log, h->name_len);
    bytes_put(log, r->buf + h->name_off, h->name_len);
    put_u32(log, h->value_len);
    bytes_put(log, r->buf + h->value_off, h->value_len);
  }
  put_u32(log, (uint32_t)body->len);
  bytes_put(log, body->p, body->len);
}

/* The app reads a part of the queued body, as the bridge does between reads. */
static void consume_body(fra_req *r, bytes *body, uint32_t *rs, int all) {
  size_t avail = r->body_len - r->body_off;
  if (!avail) return;
  size_t take = all ? avail : rng_next(rs) % (avail + 1);
  bytes_put(body, r->body + r->body_off, take);
  r->body_off += take;
}

/* Feeds data[0..len) and fills *res.  Each piece is copied into a heap block of exactly its
 * size, so reading past it is an ASan error (picohttpparser's guard-page idea). */
static void drive(const uint8_t *data, size_t len, const fuzz_cfg *cfg, feed_mode mode,
                  drive_result *res) {
  drive_owner owner = {NULL};
  fra_parser ps;
  fra_parser_init(&ps, &cfg->limits, &owner);
  ps.new_req = drive_new_req;
  uint32_t rs = cfg->seed ^ (uint32_t)mode * 0x85ebca6bu;
  bytes body = {0};
  size_t pos = 0, steps = 0;
  memset(res, 0, sizeof *res);
  while (pos < len) {
    REQUIRE(++steps <= 4 * len + 16, "no progress at offset %zu of %zu", pos, len);
    size_t n = len - pos;
    if (mode == FEED_BYTEWISE) {
      n = 1;
    } else if (mode == FEED_SPLIT) {
      uint32_t x = rng_next(&rs);
      size_t cap = (x & 1) ? 16 : n;   /* mostly short reads, now and then a long one */
      n = 1 + (x >> 1) % (cap < n ? cap : n);
    }
    char *piece = malloc(n);
    REQUIRE(piece != NULL, "out of memory");
    memcpy(piece, data + pos, n);
    fra_parse_error err = {0, NULL};
    long used = fra_parser_execute(&ps, piece, n, &err);
    if (used < 0) {
      REQUIRE(used == -1, "execute returned %ld", used);
      REQUIRE(is_parse_status(err.status), "error status %d", err.status);
      REQUIRE(err.reason != NULL, "no reason for %d", err.status);
      res->status = err.status;
      free(piece);
      break;
    }
    REQUIRE((size_t)used <= n, "consumed %ld of %zu", used, n);
    fra_req *r = ps.req;
    if (r) {
      check_req(r, &cfg->limits);
      if (r->headers_done) check_headers(r);
      consume_body(r, &body, &rs, r->complete);
    }
    if (r && r->complete) {
      REQUIRE(r->headers_done, "complete before headers");
      REQUIRE(body.len == r->body_total, "body %zu != received %llu", body.len,
              (unsigned long long)r->body_total);
      if (r->content_length || !r->last_chunk)
        REQUIRE(r->body_total == r->content_length, "body %llu != Content-Length %llu",
                (unsigned long long)r->body_total, (unsigned long long)r->content_length);
      size_t after = pos + (size_t)used;
      if (after < len) {
        /* The server may feed the next read before the response is written and the parser
         * resumed (conn.c feeds straight from the read buffer when the message ended at the
         * end of a read).  A paused parser must consume nothing and change nothing. */
        size_t m = 1 + rng_next(&rs) % (len - after < 64 ? len - after : 64);
        char *more = malloc(m);
        REQUIRE(more != NULL, "out of memory");
        memcpy(more, data + after, m);
        fra_parse_error e2 = {0, NULL};
        long u2 = fra_parser_execute(&ps, more, m, &e2);
        free(more);
        REQUIRE(u2 == 0, "a paused parser consumed %ld of %zu bytes (status %d)", u2, m, e2.status);
        REQUIRE(ps.req == r && r->complete, "a paused parser changed the request");
      }
      serialise(&res->log, r, &body);
      if (res->nreq++ == 0) {
        res->first_end = pos + (size_t)used;
        bytes_put(&res->first_body, body.p, body.len);
      }
      body.len = 0;
      /* The response is done: release the request and resume, as fra_conn_finish does. */
      fra_req_reset(r);
      if (owner.spare) fra_req_free(owner.spare);
      owner.spare = r;
      ps.req = NULL;
      fra_parser_resume(&ps);
    } else {
      REQUIRE((size_t)used == n, "paused (%ld of %zu) without a complete request", used, n);
    }
    free(piece);
    pos += (size_t)used;
  }
  if (!res->status && ps.req) res->partial = ps.req->headers_done ? 2 : 1;
  if (ps.req) fra_req_free(ps.req);
  if (owner.spare) fra_req_free(owner.spare);
  bytes_free(&body);
}

/* Whole and split feedings of the same bytes must agree: same requests, same verdict.  Which
 * error status is reported may differ when a request breaks two rules: a limit is checked when
 * a span is delivered (a split delivers spans earlier), and llhttp and the glue's own byte
 * checks can each see the bad byte first. */
static void compare_results(const drive_result *a, const drive_result *b, const char *how) {
  REQUIRE(a->nreq == b->nreq, "%s: %d vs %d requests", how, a->nreq, b->nreq);
  REQUIRE(a->log.len == b->log.len && (a->log.len == 0 || memcmp(a->log.p, b->log.p, a->log.len) == 0),
          "%s: requests differ", how);
  REQUIRE((a->status != 0) == (b->status != 0), "%s: status %d vs %d", how, a->status, b->status);
  if (!a->status) REQUIRE(a->partial == b->partial, "%s: partial %d vs %d", how, a->partial, b->partial);
}

#endif
