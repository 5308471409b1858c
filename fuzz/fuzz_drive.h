/* fuzz_drive.h — feeds bytes to a real connection of csrc/core/conn.c (a fra_conn on one end
 * of a socketpair, under a real fra_server) exactly as reads deliver them: in pieces, through
 * the connection's own read path (fra__conn_deliver), so the pending buffer, the pause after
 * each complete message, dispatch at the end of the head, backpressure, error responses and
 * fra_conn_finish's resume are the server's own code.  Stand-in hooks play the app: they
 * consume the body as it comes, check the glue's invariants on every request, record each
 * completed one (so two feedings can be compared) and finish it.  Owns the one server (made on
 * first use) and the requests it makes; no Python, no GIL. */
#ifndef FUZZ_DRIVE_H
#define FUZZ_DRIVE_H

#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "fuzz_common.h"
#include "fra/core.h"

/* FEED_EARLY: random splits, and the app answers each request as soon as it has it, before
 * its body: the rest of the body is dropped by the connection (or the connection closes). */
typedef enum { FEED_WHOLE, FEED_SPLIT, FEED_BYTEWISE, FEED_EARLY } feed_mode;

/* drive_result.status when the connection closed without an answer: a framing error inside
 * the body of a request the app already had (the server tells the app and closes). */
#define DRIVE_CLOSED 1

typedef struct {
  bytes log;          /* every completed request, serialised, in order */
  int status;         /* 0, the error status the server answered, or DRIVE_CLOSED */
  int nreq;           /* completed requests */
  int partial;        /* 1 if input ended inside a request, 2 if inside its body */
  size_t first_end;   /* offset just past the first completed request (0 if none) */
  bytes first_body;   /* the body of the first completed request */
  bytes heads;        /* every answered request without its body, in order */
  bytes head_ends;    /* size_t offsets in heads where each answered request ends */
  int nheads;
  int chose_close;    /* the app answered with Connection: close (keep_alive=0) */
} drive_result;

static void drive_result_free(drive_result *r) {
  bytes_free(&r->log);
  bytes_free(&r->first_body);
  bytes_free(&r->heads);
  bytes_free(&r->head_ends);
}

static int is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_span(const fra_req *r, size_t off, size_t len, const char *what) {
  REQUIRE(off <= r->len && len <= r->len - off, "%s span %zu+%zu outside buf of %zu", what, off, len, r->len);
}

/* Invariants that hold for any request the glue has not rejected, complete or not. */
static void check_req(const fra_req *r, const fra_limits *lim) {
  REQUIRE(r->len <= r->cap || r->cap == 0, "len %zu > cap %zu", r->len, r->cap);
  check_span(r, r->method_off, r->method_len, "method");
  check_span(r, r->url_off, r->url_len, "url");
  REQUIRE(r->nhdrs <= r->hdrcap, "nhdrs %zu > hdrcap %zu", r->nhdrs, r->hdrcap);
  if (lim->header_count) REQUIRE(r->nhdrs <= lim->header_count, "%zu headers > limit %u", r->nhdrs, lim->header_count);
  if (lim->header_size)
    REQUIRE(r->hdr_bytes <= lim->header_size, "%llu header bytes > limit %u", (unsigned long long)r->hdr_bytes,
            lim->header_size);
  if (lim->request_line)
    REQUIRE(r->method_len + r->url_len + 10 <= lim->request_line, "line %zu+%zu+10 > limit %u",
            r->method_len, r->url_len, lim->request_line);
  if (lim->body_size) REQUIRE(r->body_total <= lim->body_size, "body %llu > limit %llu",
                              (unsigned long long)r->body_total, (unsigned long long)lim->body_size);
  REQUIRE(r->body_off <= r->body_len && r->body_len <= r->body_cap, "body buffer %zu/%zu/%zu",
          r->body_off, r->body_len, r->body_cap);
  uint64_t named = 0;
  for (size_t i = 0; i < r->nhdrs; i++) {
    const fra_hdr *h = &r->hdrs[i];
    check_span(r, h->name_off, h->name_len, "header name");
    if (r->headers_done) check_span(r, h->value_off, h->value_len, "header value");
    named += h->name_len + h->value_len;
  }
  REQUIRE(named <= r->hdr_bytes, "header spans %llu > counted %llu", (unsigned long long)named,
          (unsigned long long)r->hdr_bytes);
}

/* What the app may rely on once the headers are complete. */
static void check_headers(const fra_req *r) {
  const unsigned char *b = (const unsigned char *)r->buf;
  REQUIRE(r->method_len > 0, "empty method");
  for (size_t i = 0; i < r->method_len; i++) REQUIRE(is_tchar(b[r->method_off + i]), "method byte %02x", b[r->method_off + i]);
  REQUIRE(r->url_len > 0, "empty target");
  for (size_t i = 0; i < r->url_len; i++) {
    unsigned char c = b[r->url_off + i];
    REQUIRE(c > 0x20 && c != 0x7f, "target byte %02x", c);
  }
  REQUIRE(r->http_major == 1 && r->http_minor <= 1, "version %u.%u", r->http_major, r->http_minor);
  REQUIRE(r->host_count == 1 || (r->http_minor == 0 && r->host_count == 0), "%u Host fields in 1.%u",
          r->host_count, r->http_minor);
  REQUIRE(r->ctype_count <= 1, "%u Content-Type fields", r->ctype_count);
  int te = 0, cl = 0;
  for (size_t i = 0; i < r->nhdrs; i++) {
    const fra_hdr *h = &r->hdrs[i];
    REQUIRE(h->name_len > 0, "empty header name");
    REQUIRE(fra_valid_header_name(r->buf + h->name_off, h->name_len), "header name not a token");
    for (size_t j = 0; j < h->value_len; j++) {
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
  put_u32(log, (uint32_t)r->method_len);
  bytes_put(log, r->buf + r->method_off, r->method_len);
  put_u32(log, (uint32_t)r->url_len);
  bytes_put(log, r->buf + r->url_off, r->url_len);
  put_u32(log, (uint32_t)r->http_minor << 8 | r->keep_alive << 1 | r->expect_continue);
  put_u32(log, (uint32_t)r->nhdrs);
  for (size_t i = 0; i < r->nhdrs; i++) {
    const fra_hdr *h = &r->hdrs[i];
    put_u32(log, (uint32_t)h->name_len);
    bytes_put(log, r->buf + h->name_off, h->name_len);
    put_u32(log, (uint32_t)h->value_len);
    bytes_put(log, r->buf + h->value_off, h->value_len);
  }
  put_u32(log, (uint32_t)body->len);
  bytes_put(log, body->p, body->len);
}

/* ---- the stand-in app ---- */

typedef struct {
  const fuzz_cfg *cfg;
  drive_result *res;
  feed_mode mode;
  uint32_t rs;
  bytes body;          /* body of the current request consumed so far */
  fra_conn *c;         /* NULL once closed */
  const uint8_t *data; /* the whole input, for the paused-parser check */
  size_t len, delivered;
  int closed_dispatched;
} drive_state;

static fra_server drive_srv;

/* The app reads a part of the queued body (all of it when asked), as the bridge does.  Body
 * bytes still in the read buffer (those of the head's read, during dispatch) are taken whole
 * first, as the bridge copies them into its sink at dispatch. */
static void app_consume(drive_state *st, fra_req *r, int all) {
  if (r->pre_len) {
    REQUIRE(r->body_len == r->body_off, "body bytes both queued and left in the read buffer");
    bytes_put(&st->body, r->pre_at, r->pre_len);
    r->pre_at = NULL;
    r->pre_len = 0;
  }
  size_t avail = r->body_len - r->body_off;
  if (!avail) return;
  size_t take = all ? avail : rng_next(&st->rs) % (avail + 1);
  bytes_put(&st->body, r->body + r->body_off, take);
  r->body_off += take;
  fra_conn_body_consumed(st->c);
}

/* The response is done: the connection goes on (or not) as the bridge would have it. */
static void app_finish(drive_state *st, fra_conn *c, fra_req *r) {
  static const bytes none = {0};
  drive_result *res = st->res;
  serialise(&res->heads, r, &none);
  bytes_put(&res->head_ends, &res->heads.len, sizeof res->heads.len);
  res->nheads++;
  int keep = r->keep_alive && fra_conn_may_keep_alive(c, 0);
  if (!keep) res->chose_close = 1;
  fra_conn_finish(c, keep, 200, 0);
}

/* One step of the app: check the request, consume body, finish it once complete (in
 * FEED_EARLY, at once). */
static void app_step(drive_state *st, int all) {
  fra_conn *c = st->c;
  if (!c || !c->active || (c->flags & FRA_C_CLOSING)) return;
  fra_req *r = c->parser.req;
  check_req(r, &st->cfg->limits);
  REQUIRE(r->headers_done && r->dispatched, "the app has a request before its head is complete");
  check_headers(r);
  if (st->mode == FEED_EARLY) {
    app_finish(st, c, r);
    return;
  }
  app_consume(st, r, all || r->complete);
  if (!r->complete) return;
  REQUIRE(st->body.len == r->body_total, "body %zu != received %llu", st->body.len,
          (unsigned long long)r->body_total);
  if (r->content_length || !r->last_chunk)
    REQUIRE(r->body_total == r->content_length, "body %llu != Content-Length %llu",
            (unsigned long long)r->body_total, (unsigned long long)r->content_length);
  /* Everything delivered is parsed or waits in the pending buffer: the message ends here. */
  size_t end = st->delivered - c->pend_len;
  if (end < st->len) {
    /* A paused parser must consume nothing and change nothing, whatever it is given. */
    size_t m = 1 + rng_next(&st->rs) % (st->len - end < 64 ? st->len - end : 64);
    char *more = malloc(m);
    REQUIRE(more != NULL, "out of memory");
    memcpy(more, st->data + end, m);
    fra_parse_error e2 = {0, NULL};
    long u2 = fra_parser_execute(&c->parser, more, m, &e2);
    free(more);
    REQUIRE(u2 == 0, "a paused parser consumed %ld of %zu bytes (status %d)", u2, m, e2.status);
    REQUIRE(c->parser.req == r && r->complete, "a paused parser changed the request");
  }
  drive_result *res = st->res;
  serialise(&res->log, r, &st->body);
  if (res->nreq++ == 0) {
    res->first_end = end;
    bytes_put(&res->first_body, st->body.p, st->body.len);
  }
  st->body.len = 0;
  app_finish(st, c, r);
}

static void h_request(fra_conn *c) {
  drive_state *st = c->srv->data;
  c->active = st;
  /* Now and then the app answers at once, inside dispatch, as an eager handler does. */
  if (rng_next(&st->rs) & 1) app_step(st, 0);
}

static void h_body(fra_conn *c) {
  drive_state *st = c->srv->data;
  if (rng_next(&st->rs) & 1) app_step(st, 0);
}

/* Only a framing error inside a dispatched body closes under the app (no EOF here). */
static void h_disconnect(fra_conn *c) { ((drive_state *)c->srv->data)->closed_dispatched = 1; }
static void h_drain(fra_conn *c) {}
static void h_wakeup(fra_server *s) {}

static void h_close(fra_conn *c) {
  drive_state *st = c->srv->data;
  if (c->active) {
    /* the request was the app's: it lets go of it */
    fra_req *r = c->parser.req;
    c->active = NULL;
    c->srv->nactive--;
    c->parser.req = NULL;
    if (r) fra_server_release_req(c->srv, r);
  }
  st->c = NULL;
}

static void drive_server_init(void) {
  static int ready;
  if (ready) return;
  static const fra_hooks hooks = {h_request, h_body, h_disconnect, h_drain, h_close, h_wakeup, NULL};
  fra_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.timeout_header_ms = cfg.timeout_keep_alive_ms = 3600000;
  cfg.timeout_body_ms = cfg.timeout_write_ms = 3600000;
  cfg.access_log_fd = -1;
  REQUIRE(fra_server_init(&drive_srv, &cfg, &hooks, NULL) == 0, "server init");
  ready = 1;
}

/* The status line of the error response the server wrote, 0 if none. */
static int peer_status(int fd) {
  char buf[64];
  ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
  if (n < 12) return 0;
  buf[n] = 0;
  REQUIRE(memcmp(buf, "HTTP/1.1 ", 9) == 0, "the server wrote something else than a response: %.20s", buf);
  return atoi(buf + 9);
}

/* Feeds data[0..len) to a fresh connection and fills *res. */
static void drive(const uint8_t *data, size_t len, const fuzz_cfg *cfg, feed_mode mode,
                  drive_result *res) {
  drive_server_init();
  fra_server *s = &drive_srv;
  s->cfg.limits = cfg->limits;
  drive_state st = {cfg, res, mode, cfg->seed ^ (uint32_t)mode * 0x85ebca6bu, {0}, NULL, data, len, 0, 0};
  s->data = &st;
  memset(res, 0, sizeof *res);
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
  st.c = fra__conn_open_fd(s, sv[0]);
  REQUIRE(st.c != NULL, "connection");
  size_t pos = 0, steps = 0;
  while (pos < len && st.c && !(st.c->flags & (FRA_C_CLOSING | FRA_C_LINGER))) {
    REQUIRE(++steps <= 8 * len + 64, "no progress at offset %zu of %zu", pos, len);
    fra_conn *c = st.c;
    if (!(c->flags & FRA_C_READING)) {
      /* Reading stopped (body or pipelined bytes not taken yet): only the app moves it on. */
      app_step(&st, 1);
      fra__conn_process_pending(s);
      continue;
    }
    size_t n = len - pos;
    if (mode == FEED_BYTEWISE) {
      n = 1;
    } else if (mode == FEED_SPLIT || mode == FEED_EARLY) {
      uint32_t x = rng_next(&st.rs);
      size_t cap = (x & 1) ? 16 : n;   /* mostly short reads, now and then a long one */
      n = 1 + (x >> 1) % (cap < n ? cap : n);
    }
    st.delivered += n;   /* counted first: the hooks run inside the delivery */
    size_t taken = fra__conn_deliver(c, (const char *)data + pos, n);
    REQUIRE(taken == n, "a read of %zu bytes took %zu (inputs fit one read buffer)", n, taken);
    pos += taken;
    app_step(&st, 0);
    fra__conn_process_pending(s);   /* as the loop pass does after each libuv run */
  }
  /* The input ends: the app finishes whatever is complete; pipelined requests follow. */
  for (int more = 1; more && st.c;) {
    int n0 = res->nreq;
    app_step(&st, 1);
    fra__conn_process_pending(s);
    more = res->nreq != n0;
  }
  int status = peer_status(sv[1]);
  if (status) {
    REQUIRE(is_parse_status(status), "error status %d", status);
    res->status = status;
  } else if (st.closed_dispatched) {
    res->status = DRIVE_CLOSED;
  } else if (st.c && st.c->parser.req) {
    res->partial = st.c->parser.req->headers_done ? 2 : 1;
  }
  if (st.c) fra__conn_close(st.c);
  while (s->nconns) uv_run(&s->loop, UV_RUN_NOWAIT);
  close(sv[1]);
  bytes_free(&st.body);
  s->data = NULL;
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

/* Answering early must not change how the requests are framed: the dropped rest of each body
 * ends where the body ends, so the requests seen are those a full feeding completes, in order.
 * The early feeding may see one more: the last one, answered at its head although its message
 * never completed (the input ended, or its body broke the framing).  With no close chosen and
 * no error in either, the same number. */
static void compare_early(const drive_result *whole, const drive_result *early) {
  int n = whole->nheads < early->nheads ? whole->nheads : early->nheads;
  size_t wl = n ? ((const size_t *)whole->head_ends.p)[n - 1] : 0;
  size_t el = n ? ((const size_t *)early->head_ends.p)[n - 1] : 0;
  REQUIRE(wl == el && (wl == 0 || memcmp(whole->heads.p, early->heads.p, wl) == 0),
          "early answers: the first %d requests differ from those of a full feeding", n);
  REQUIRE(early->nheads <= whole->nheads + 1, "early answers: %d requests, a full feeding %d", early->nheads,
          whole->nheads);
  if (!early->chose_close && !early->status && !whole->status && !whole->partial)
    REQUIRE(early->nheads == whole->nheads, "early answers: %d requests, a full feeding %d", early->nheads,
            whole->nheads);
}

#endif
