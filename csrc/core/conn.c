/* conn.c — one client connection: accept, read, the parse/dispatch state machine, pipelining
 * (one request served at a time, responses in order), timers (header, keep-alive, linger),
 * backpressure both ways, the write path and closing.  Owns the conn struct, its libuv handles,
 * its pending-bytes buffer, and each request until it is dispatched.  Loop thread only; the
 * bridge calls in with the GIL held and hooks are called with it held. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "fra/core.h"

typedef struct wreq {
  uv_write_t req;
  size_t len;
  char data[];
} wreq;

static void feed(fra_conn *c, const char *data, size_t len);

/* ---- requests ---- */

static fra_req *new_req(void *owner) {
  fra_conn *c = owner;
  fra_server *s = c->srv;
  fra_req *r = s->free_reqs;
  if (r) {
    s->free_reqs = r->next_free;
    s->nfree_reqs--;
    r->next_free = NULL;
  } else {
    r = calloc(1, sizeof *r);
  }
  return r;
}

/* ---- timers ---- */

static void timer_cb(uv_timer_t *t);

static void timer_set(fra_conn *c, int mode) {
  if (c->timer_mode == mode && mode != FRA_T_KEEPALIVE) return;
  c->timer_mode = (uint8_t)mode;
  uint64_t ms = 0;
  switch (mode) {
  case FRA_T_HEADER: ms = c->srv->cfg.timeout_header_ms; break;
  case FRA_T_KEEPALIVE: ms = c->srv->cfg.timeout_keep_alive_ms; break;
  case FRA_T_LINGER: ms = FRA_LINGER_MS; break;
  default: break;
  }
  if (ms == 0) uv_timer_stop(&c->timer);
  else uv_timer_start(&c->timer, timer_cb, ms, 0);
}

/* ---- reading ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  fra_conn *c = h->data;
  if (c->pend_len || (c->flags & FRA_C_PAUSED)) {
    /* Bytes behind a paused request go straight to the pending buffer. */
    if (c->pend_cap - c->pend_len < 16384) {
      uint32_t cap = c->pend_cap ? c->pend_cap * 2 : 32768;
      char *np = realloc(c->pend, cap);
      if (!np) { buf->base = NULL; buf->len = 0; return; }
      c->pend = np;
      c->pend_cap = cap;
    }
    buf->base = c->pend + c->pend_len;
    buf->len = c->pend_cap - c->pend_len;
    return;
  }
  buf->base = c->srv->rbuf;
  buf->len = c->srv->rbuf_size;
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

static void reading_start(fra_conn *c) {
  if (c->flags & (FRA_C_READING | FRA_C_CLOSING | FRA_C_EOF)) return;
  if (uv_read_start(&c->h.stream, alloc_cb, read_cb) == 0) c->flags |= FRA_C_READING;
}

static void reading_stop(fra_conn *c, uint32_t why) {
  c->flags |= why;
  if (c->flags & FRA_C_READING) {
    uv_read_stop(&c->h.stream);
    c->flags &= ~FRA_C_READING;
  }
}

static void reading_resume(fra_conn *c, uint32_t why) {
  c->flags &= ~why;
  if (!(c->flags & (FRA_C_BODY_FULL | FRA_C_PEND_FULL))) reading_start(c);
}

/* ---- closing ---- */

static void close_cb(uv_handle_t *h) {
  fra_conn *c = h->data;
  if (--c->nclose) return;
  fra_server *s = c->srv;
  if (s->hooks.on_close) s->hooks.on_close(c);
  fra_req *r = c->parser.req;
  if (r && !r->dispatched) fra_server_release_req(s, r); /* dispatched: the bridge's */
  free(c->pend);
  free(c->peer);
  free(c);
  s->nconns--;
  if (s->shutting_down && s->nconns == 0 && s->hooks.on_drained) s->hooks.on_drained(s);
}

void fra__conn_close(fra_conn *c) {
  if (c->flags & FRA_C_CLOSING) return;
  fra_server *s = c->srv;
  c->flags |= FRA_C_CLOSING;
  if (c->flags & FRA_C_PENDING) {
    for (fra_conn **pp = &s->pending; *pp; pp = &(*pp)->next_pending)
      if (*pp == c) { *pp = c->next_pending; break; }
    c->flags &= ~FRA_C_PENDING;
  }
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  if (c->active && !(c->flags & FRA_C_GONE)) {
    c->flags |= FRA_C_GONE;
    s->hooks.on_disconnect(c);
  }
  uv_timer_stop(&c->timer);
  c->nclose = 2;
  uv_close((uv_handle_t *)&c->timer, close_cb);
  uv_close(&c->h.handle, close_cb);
}

void fra_conn_abort(fra_conn *c) { fra__conn_close(c); }

static void shutdown_cb(uv_shutdown_t *req, int status) {
  fra_conn *c = req->handle->data;
  free(req);
  if (status < 0 && !(c->flags & FRA_C_CLOSING)) fra__conn_close(c);
  else if ((c->flags & FRA_C_EOF) && !(c->flags & FRA_C_CLOSING)) fra__conn_close(c);
}

/* Close after what is queued has been written.  Reading goes on, discarding, until the client
 * closes or the linger timer fires: closing with unread input would send a reset that can
 * destroy the response before the client reads it. */
static void linger_close(fra_conn *c) {
  if (c->flags & (FRA_C_CLOSING | FRA_C_LINGER)) return;
  c->flags |= FRA_C_LINGER;
  c->flags &= ~(FRA_C_BODY_FULL | FRA_C_PEND_FULL | FRA_C_PAUSED);
  c->pend_len = 0;
  if (c->flags & FRA_C_EOF) {
    /* the client is done sending: close once the output is flushed */
  } else {
    reading_start(c);
  }
  timer_set(c, FRA_T_LINGER);
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req || uv_shutdown(req, &c->h.stream, shutdown_cb) != 0) {
    free(req);
    fra__conn_close(c);
  }
}

static void timer_cb(uv_timer_t *t) {
  fra_conn *c = t->data;
  fra_req *r = c->parser.req;
  if (c->timer_mode == FRA_T_HEADER && r && !r->dispatched && (r->len > 0 || c->pend_len > 0)) {
    /* Part of a request arrived but not its headers in time. */
    char buf[256];
    uv_buf_t b = uv_buf_init(buf, (unsigned)fra_error_response(buf, 408));
    uv_try_write(&c->h.stream, &b, 1);
  }
  c->timer_mode = FRA_T_NONE;
  fra__conn_close(c);
}

/* ---- accept ---- */

void fra__conn_accept(uv_stream_t *l, int status) {
  fra_server *s = l->loop->data;
  if (status < 0 || s->shutting_down) return;
  fra_conn *c = calloc(1, sizeof *c);
  if (!c) return;
  int tcp = l->type == UV_TCP;
  if (tcp) uv_tcp_init(&s->loop, &c->h.tcp);
  else uv_pipe_init(&s->loop, &c->h.pipe, 0);
  c->h.handle.data = c;
  if (uv_accept(l, &c->h.stream) != 0) {
    uv_close(&c->h.handle, (uv_close_cb)free);
    return;
  }
  if (tcp) {
    uv_tcp_nodelay(&c->h.tcp, 1);
    c->flags |= FRA_C_TCP;
  }
  uv_timer_init(&s->loop, &c->timer);
  c->timer.data = c;
  c->srv = s;
  fra_parser_init(&c->parser, &s->cfg.limits, c);
  c->parser.new_req = new_req;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  if (s->cfg.limit_concurrency && s->nconns > s->cfg.limit_concurrency) c->flags |= FRA_C_OVERLIMIT;
  reading_start(c);
  timer_set(c, FRA_T_HEADER);
}

/* ---- parsing and dispatch ---- */

static void send_error(fra_conn *c, int status) {
  char buf[256];
  uv_buf_t b = uv_buf_init(buf, (unsigned)fra_error_response(buf, status));
  fra_conn_write(c, &b, 1);
  linger_close(c);
}

static void keep_pending(fra_conn *c, const char *data, size_t len) {
  if (data == c->pend) {
    /* already in the pending buffer (parsed from its start): nothing to copy */
  } else if (data > c->pend && data < c->pend + c->pend_len) {
    memmove(c->pend, data, len);
  } else {
    if (c->pend_cap < len) {
      char *np = realloc(c->pend, len < 32768 ? 32768 : len);
      if (!np) { fra__conn_close(c); return; }
      c->pend = np;
      c->pend_cap = len < 32768 ? 32768 : (uint32_t)len;
    }
    memcpy(c->pend, data, len);
  }
  c->pend_len = (uint32_t)len;
  if (c->pend_len >= FRA_PEND_MAX) reading_stop(c, FRA_C_PEND_FULL);
}

static void dispatch(fra_conn *c) {
  fra_server *s = c->srv;
  fra_req *r = c->parser.req;
  r->dispatched = 1;
  timer_set(c, FRA_T_NONE);
  if (c->flags & FRA_C_OVERLIMIT) {
    /* Over --limit-concurrency: refuse before the app sees it. */
    r->dispatched = 0;
    send_error(c, 503);
    return;
  }
  s->nactive++;
  s->nrequests++;
  s->hooks.on_request(c);
}

static void feed(fra_conn *c, const char *data, size_t len) {
  fra_server *s = c->srv;
  fra_req *r0 = c->parser.req;
  uint64_t total0 = r0 ? r0->body_total : 0;
  uint8_t complete0 = r0 ? r0->complete : 0;
  fra_parse_error err;
  long used = fra_parser_execute(&c->parser, data, len, &err);
  if (used < 0) {
    fra_req *r = c->parser.req;
    if (r && r->dispatched) {
      /* A framing error inside the body of a request the app already has: the exchange is
       * told the client is gone and the connection closes. */
      fra__conn_close(c);
    } else {
      send_error(c, err.status);
    }
    return;
  }
  if ((size_t)used < len) {
    keep_pending(c, data + used, len - used);
    c->flags |= FRA_C_PAUSED;
  } else if (c->parser.req && c->parser.req->complete) {
    c->flags |= FRA_C_PAUSED; /* the message ended with the read: later bytes wait */
    if (data == c->pend) c->pend_len = 0;
  } else if (data == c->pend) {
    c->pend_len = 0;
  }
  fra_req *r = c->parser.req;
  if (!r) return;
  if (!r->headers_done) {
    timer_set(c, FRA_T_HEADER);
    return;
  }
  if (!r->dispatched) {
    /* The app gets the request at the end of its headers (bodies stream), except when the
     * last chunk is already here and only the trailer section is missing: then it waits for
     * the end, so a truncated message never reaches the app. */
    if (r->complete || !r->last_chunk) {
      dispatch(c); /* the request may be finished and released inside: r is not used after */
    } else {
      timer_set(c, FRA_T_HEADER);
    }
    return;
  }
  if (r == r0 && (r->body_total != total0 || r->complete != complete0)) {
    if (r->body_len - r->body_off >= FRA_BODY_HIGH && !r->complete) reading_stop(c, FRA_C_BODY_FULL);
    s->hooks.on_body(c);
  }
}

static void on_eof(fra_conn *c, ssize_t n) {
  if (n == UV_EOF) {
    c->flags |= FRA_C_EOF;
    reading_stop(c, 0);
    if (c->flags & FRA_C_LINGER) {
      if (fra_conn_queued(c) == 0) fra__conn_close(c);
      return;
    }
    if (c->active) {
      /* The response can still be written (the client may only have shut its write side);
       * the app learns the client is gone and the connection closes after the response. */
      if (!(c->flags & FRA_C_GONE)) {
        c->flags |= FRA_C_GONE;
        c->srv->hooks.on_disconnect(c);
      }
      return;
    }
    fra__conn_close(c);
    return;
  }
  fra__conn_close(c);
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  fra_conn *c = st->data;
  if (n == 0) return;
  if (n < 0) {
    on_eof(c, n);
    return;
  }
  if (c->flags & FRA_C_LINGER) {
    c->pend_len = 0;
    return;
  }
  if (buf->base != c->srv->rbuf) {
    c->pend_len += (uint32_t)n;
    if (c->flags & FRA_C_PAUSED) {
      if (c->pend_len >= FRA_PEND_MAX) reading_stop(c, FRA_C_PEND_FULL);
      return;
    }
    feed(c, c->pend, c->pend_len);
    return;
  }
  feed(c, buf->base, (size_t)n);
}

void fra__conn_process_pending(fra_server *s) {
  while (s->pending) {
    fra_conn *c = s->pending;
    s->pending = c->next_pending;
    c->next_pending = NULL;
    c->flags &= ~FRA_C_PENDING;
    if ((c->flags & (FRA_C_CLOSING | FRA_C_PAUSED | FRA_C_LINGER)) || c->pend_len == 0) continue;
    feed(c, c->pend, c->pend_len);
    if (!(c->flags & FRA_C_CLOSING) && c->pend_len == 0 && !c->parser.req) timer_set(c, FRA_T_KEEPALIVE);
  }
}

/* ---- for the bridge ---- */

void fra_conn_finish(fra_conn *c, int keep_alive, int status, uint64_t bytes) {
  fra_server *s = c->srv;
  fra_req *r = c->parser.req;
  fra__access_log(s, c, status, bytes);
  s->nactive--;
  c->active = NULL;
  if (!r->complete || (c->flags & (FRA_C_EOF | FRA_C_GONE | FRA_C_CLOSING)) || s->shutting_down) keep_alive = 0;
  c->parser.req = NULL;
  if (!r->retained) fra_server_release_req(s, r);
  if (c->flags & FRA_C_CLOSING) return;
  if (!keep_alive) {
    linger_close(c);
    return;
  }
  if (!s->in_run) uv_update_time(&s->loop);
  fra_parser_resume(&c->parser);
  c->flags &= ~FRA_C_PAUSED;
  if (c->pend_len) {
    if (!(c->flags & FRA_C_PENDING)) {
      c->flags |= FRA_C_PENDING;
      c->next_pending = s->pending;
      s->pending = c;
    }
  } else {
    timer_set(c, FRA_T_KEEPALIVE);
  }
  reading_resume(c, FRA_C_PEND_FULL | FRA_C_BODY_FULL);
}

static void write_cb(uv_write_t *req, int status) {
  fra_conn *c = req->handle->data;
  free(req);
  if (status < 0) {
    if (!(c->flags & FRA_C_CLOSING)) fra__conn_close(c);
    return;
  }
  if ((c->flags & FRA_C_WANT_DRAIN) && fra_conn_queued(c) <= FRA_WRITE_LOW) {
    c->flags &= ~FRA_C_WANT_DRAIN;
    c->srv->hooks.on_drain(c);
  }
}

int fra_conn_write(fra_conn *c, const uv_buf_t *bufs, unsigned nbufs) {
  if (c->flags & FRA_C_CLOSING) return UV_ECANCELED;
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
  if (total == 0) return 0;
  int w = uv_try_write(&c->h.stream, bufs, nbufs);
  if (w >= 0 && (size_t)w == total) return 0;
  if (w < 0 && w != UV_EAGAIN) {
    fra__conn_close(c);
    return w;
  }
  if (w < 0) w = 0;
  /* What the socket did not take is copied: the caller's buffers are not kept. */
  size_t rest = total - (size_t)w;
  wreq *wr = malloc(sizeof *wr + rest);
  if (!wr) {
    fra__conn_close(c);
    return UV_ENOMEM;
  }
  size_t skip = (size_t)w, off = 0;
  for (unsigned i = 0; i < nbufs; i++) {
    size_t l = bufs[i].len;
    if (skip >= l) { skip -= l; continue; }
    memcpy(wr->data + off, bufs[i].base + skip, l - skip);
    off += l - skip;
    skip = 0;
  }
  wr->len = rest;
  uv_buf_t b = uv_buf_init(wr->data, (unsigned)rest);
  int rc = uv_write(&wr->req, &c->h.stream, &b, 1, write_cb);
  if (rc) {
    free(wr);
    fra__conn_close(c);
    return rc;
  }
  return 0;
}

size_t fra_conn_queued(fra_conn *c) { return c->h.stream.write_queue_size; }

void fra_conn_want_drain(fra_conn *c) { c->flags |= FRA_C_WANT_DRAIN; }

void fra_conn_body_consumed(fra_conn *c) {
  fra_req *r = c->parser.req;
  if ((c->flags & FRA_C_BODY_FULL) && r && r->body_len - r->body_off < FRA_BODY_HIGH / 2)
    reading_resume(c, FRA_C_BODY_FULL);
}

static int addr_name(struct sockaddr_storage *ss, char *ip, size_t iplen, int *port) {
  if (ss->ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)ss, ip, iplen);
    *port = ntohs(((struct sockaddr_in6 *)ss)->sin6_port);
  } else if (ss->ss_family == AF_INET) {
    uv_ip4_name((struct sockaddr_in *)ss, ip, iplen);
    *port = ntohs(((struct sockaddr_in *)ss)->sin_port);
  } else {
    ip[0] = 0;
    *port = -1;
  }
  return 0;
}

int fra_conn_peer(fra_conn *c, char *ip, size_t iplen, int *port) {
  if (!(c->flags & FRA_C_TCP)) {
    ip[0] = 0;
    *port = -1;
    return 0;
  }
  if (!c->peer) {
    c->peer = calloc(1, sizeof *c->peer);
    if (!c->peer) return UV_ENOMEM;
    int len = sizeof *c->peer;
    int rc = uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)c->peer, &len);
    if (rc) {
      free(c->peer);
      c->peer = NULL;
      return rc;
    }
  }
  return addr_name(c->peer, ip, iplen, port);
}

int fra_conn_local(fra_conn *c, char *ip, size_t iplen, int *port) {
  if (!(c->flags & FRA_C_TCP)) {
    ip[0] = 0;
    *port = -1;
    return 0;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int rc = uv_tcp_getsockname(&c->h.tcp, (struct sockaddr *)&ss, &len);
  if (rc) return rc;
  return addr_name(&ss, ip, iplen, port);
}
