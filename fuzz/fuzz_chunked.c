/* fuzz_chunked.c — libFuzzer target for the chunked decoder path: a chunked request body goes
 * through fra_parser_execute (random splits) and, when the parser accepts the message, the body
 * it delivered must equal what an independent RFC 9112 7.1 decoder makes of the same bytes, and
 * both must agree where the message ends (a disagreement is request smuggling).
 * Input: the 8-byte header of fuzz_common.h (only the body limit and split seed are used), then
 * the bytes after the request head.  Owns nothing global; no Python, no GIL. */
#include "fuzz_drive.h"

static const char HEAD[] = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

enum { REF_BAD, REF_INCOMPLETE, REF_OK };

typedef struct {
  const uint8_t *p;
  size_t len, pos;
  int plain;          /* no chunk extension and no trailer field seen */
} ref_in;

static int at(ref_in *in, size_t i) { return in->pos + i < in->len ? in->p[in->pos + i] : -1; }

static void skip_bws(ref_in *in) {
  while (at(in, 0) == ' ' || at(in, 0) == '\t') in->pos++;
}

/* CRLF; returns REF_OK, REF_INCOMPLETE or REF_BAD. */
static int crlf(ref_in *in) {
  if (at(in, 0) < 0) return REF_INCOMPLETE;
  if (at(in, 0) != '\r') return REF_BAD;
  if (at(in, 1) < 0) return REF_INCOMPLETE;
  if (at(in, 1) != '\n') return REF_BAD;
  in->pos += 2;
  return REF_OK;
}

static int token(ref_in *in) {
  size_t n = 0;
  while (at(in, 0) >= 0 && is_tchar((unsigned char)at(in, 0))) in->pos++, n++;
  if (at(in, 0) < 0) return REF_INCOMPLETE;
  return n ? REF_OK : REF_BAD;
}

static int quoted(ref_in *in) {
  in->pos++;  /* DQUOTE */
  for (;;) {
    int c = at(in, 0);
    if (c < 0) return REF_INCOMPLETE;
    if (c == '"') { in->pos++; return REF_OK; }
    if (c == '\\') {
      int d = at(in, 1);
      if (d < 0) return REF_INCOMPLETE;
      if (!(d == '\t' || (d >= 0x20 && d != 0x7f))) return REF_BAD;
      in->pos += 2;
      continue;
    }
    if (!(c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80)) return REF_BAD;
    in->pos++;
  }
}

/* chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), then CRLF */
static int ext_crlf(ref_in *in) {
  for (;;) {
    size_t before = in->pos;
    skip_bws(in);
    if (at(in, 0) < 0) return REF_INCOMPLETE;
    if (at(in, 0) != ';') return in->pos == before ? crlf(in) : REF_BAD;  /* BWS only before ";" */
    in->plain = 0;
    in->pos++;
    skip_bws(in);
    int rc = token(in);
    if (rc != REF_OK) return rc;
    size_t save = in->pos;
    skip_bws(in);
    if (at(in, 0) < 0) return REF_INCOMPLETE;
    if (at(in, 0) != '=') { in->pos = save; continue; }
    in->pos++;
    skip_bws(in);
    if (at(in, 0) < 0) return REF_INCOMPLETE;
    rc = at(in, 0) == '"' ? quoted(in) : token(in);
    if (rc != REF_OK) return rc;
  }
}

/* trailer-section CRLF: field-name ":" OWS field-value OWS CRLF lines, then CRLF */
static int trailers(ref_in *in) {
  for (;;) {
    if (at(in, 0) < 0) return REF_INCOMPLETE;
    if (at(in, 0) == '\r') return crlf(in);
    in->plain = 0;
    int rc = token(in);
    if (rc != REF_OK) return rc;
    if (at(in, 0) != ':') return REF_BAD;
    in->pos++;
    for (;;) {
      int c = at(in, 0);
      if (c < 0) return REF_INCOMPLETE;
      if (c == '\r') break;
      if (!(c == '\t' || (c >= 0x20 && c != 0x7f))) return REF_BAD;
      in->pos++;
    }
    rc = crlf(in);
    if (rc != REF_OK) return rc;
  }
}

/* Decodes a chunked body from p; on REF_OK *end is the offset just past it. */
static int ref_decode(const uint8_t *p, size_t len, bytes *out, size_t *end, int *plain) {
  ref_in in = {p, len, 0, 1};
  int rc;
  for (;;) {
    uint64_t size = 0;
    size_t digits = 0;
    for (;;) {
      int c = at(&in, 0);
      int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (v < 0) break;
      if (size >> 60) { *plain = in.plain; return REF_BAD; }   /* more than 64 bits */
      size = size << 4 | (uint64_t)v;
      digits++;
      in.pos++;
    }
    if (at(&in, 0) < 0) { *plain = in.plain; return REF_INCOMPLETE; }
    if (!digits) { *plain = in.plain; return REF_BAD; }
    rc = ext_crlf(&in);
    if (rc != REF_OK) { *plain = in.plain; return rc; }
    if (size == 0) break;
    if (len - in.pos < size) { *plain = in.plain; return REF_INCOMPLETE; }
    bytes_put(out, p + in.pos, (size_t)size);
    in.pos += (size_t)size;
    rc = crlf(&in);
    if (rc != REF_OK) { *plain = in.plain; return rc; }
  }
  rc = trailers(&in);
  *plain = in.plain;
  if (rc == REF_OK) *end = in.pos;
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < CFG_LEN) return 0;
  fuzz_cfg cfg;
  cfg_read(data, &cfg);
  /* the request head is fixed: only the body limit applies */
  cfg.limits.request_line = 8190;
  cfg.limits.header_size = 32768;
  cfg.limits.header_count = 100;
  const uint8_t *body = data + CFG_LEN;
  size_t blen = size - CFG_LEN, hlen = sizeof HEAD - 1;
  uint8_t *msg = malloc(hlen + blen + 1);
  REQUIRE(msg != NULL, "out of memory");
  memcpy(msg, HEAD, hlen);
  memcpy(msg + hlen, body, blen);

  drive_result got, whole;
  drive(msg, hlen + blen, &cfg, cfg.bytewise ? FEED_BYTEWISE : FEED_SPLIT, &got);
  drive(msg, hlen + blen, &cfg, FEED_WHOLE, &whole);
  compare_results(&whole, &got, "whole vs split");

  bytes ref = {0};
  size_t end = 0;
  int plain = 0;
  int verdict = ref_decode(body, blen, &ref, &end, &plain);
  if (got.nreq > 0) {
    /* The parser accepted a message: the reference must agree on its bytes and its end. */
    REQUIRE(verdict == REF_OK, "parser accepted a chunked body the RFC grammar %s",
            verdict == REF_BAD ? "rejects" : "says is incomplete");
    REQUIRE(got.first_end == hlen + end, "message ends at %zu for the parser, %zu for the reference",
            got.first_end - hlen, end);
    REQUIRE(got.first_body.len == ref.len && (ref.len == 0 || memcmp(got.first_body.p, ref.p, ref.len) == 0),
            "decoded body differs (%zu vs %zu bytes)", got.first_body.len, ref.len);
  } else if (verdict == REF_OK) {
    /* A well-formed body the parser did not finish: only a limit or a refused extension or
     * trailer explains that. */
    REQUIRE(got.status != 0, "parser still waiting after a complete chunked body");
    if (plain) {
      int over = cfg.limits.body_size && ref.len > cfg.limits.body_size;
      /* 413 before the app has the request; after, the server can only close */
      REQUIRE(over && (got.status == 413 || got.status == DRIVE_CLOSED),
              "plain chunked body of %zu bytes refused with %d", ref.len, got.status);
    }
  }
  bytes_free(&ref);
  drive_result_free(&got);
  drive_result_free(&whole);
  free(msg);
  return 0;
}
