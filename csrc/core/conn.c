/* conn.c — one client connection: accept, read, the parse/dispatch state machine, pipelining
 * (one request served at a time, responses in order), timers (header, keep-alive, drain,
 * linger, body and write timeouts, a stream's keepalive pings), dropping the rest of a body
 * after an early response, backpressure both ways, the write path (copied or shared buffers;
 * files: fileout.c) and closing.  Owns the conn struct, its libuv handles, its pending-bytes
 * buffer, its stream settings (fra_conn_stream), and each request until it is dispatched; a
 * queued shared buffer is held by one reference per write.  Loop thread only; the
 * bridge calls in with the GIL held and hooks are called with it held. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "fra/core.h"

typedef struct wreq {
  uv_write_t req;
  fra_shared *sh;              /* the bytes are this shared buffer's (a reference), else data */
  char data[];
} wreq;

static void feed(fra_conn *c, const char *data, size_t len);
static int body_sink(void *owner, fra_req *r, const char *at, size_t len);
static void next_request(fra_conn *c);

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

/* ---- timers ----
 * One libuv timer per connection, armed for the earliest of its deadlines: the phase deadline
 * (header, keep-alive, drain, linger), the body timeout and the write timeout.  Deadlines that
 * move later (each body byte, each response) are only stored; the timer finds them when it
 * fires and re-arms, so the hot path never restarts a timer. */

static void timer_cb(uv_timer_t *t);

/* The loop's time; brought up to date outside a loop pass (a call from Python). */
static uint64_t now_ms(fra_server *s) {
  if (!s->in_run) uv_update_time(&s->loop);
  return uv_now(&s->loop);
}

static void timer_arm(fra_conn *c, uint64_t due) {
  if (c->timer_due && c->timer_due <= due) return;
  uint64_t now = uv_now(&c->srv->loop);
  c->timer_due = due ? due : 1;
  uv_timer_start(&c->timer, timer_cb, due > now ? due - now : 0, 0);
}

static uint64_t phase_ms(fra_conn *c, int mode) {
  const fra_config *cfg = &c->srv->cfg;
  switch (mode) {
  case FRA_T_HEADER: return cfg->timeout_header_ms;
  case FRA_T_KEEPALIVE: return cfg->timeout_keep_alive_ms;
  case FRA_T_DRAIN: return fra_server_drain_idle_ms(c->srv);
  case FRA_T_LINGER: return FRA_LINGER_MS;
  default: return 0;
  }
}

/* Enters a phase.  The header phase keeps its deadline while it lasts: a request dribbled one
 * byte at a time must not push it back (slowloris).  An idle connection of a draining server
 * gets the drain deadline instead of the keep-alive one. */
static void phase_set(fra_conn *c, int mode) {
  if (mode == FRA_T_KEEPALIVE && c->srv->shutting_down) mode = FRA_T_DRAIN;
  if (c->timer_mode == mode && mode == FRA_T_HEADER) return;
  c->timer_mode = (uint8_t)mode;
  uint64_t ms = phase_ms(c, mode);
  c->phase_due = ms ? now_ms(c->srv) + ms : 0;
  if (c->phase_due) timer_arm(c, c->phase_due);
}

/* The app waits for body bytes that the client is to send: the request (or the rest being
 * dropped) is unfinished and reading is not held back by the app's own backpressure. */
static int body_awaited(const fra_conn *c) {
  const fra_req *r = c->parser.req;
  return r && r->dispatched && !r->complete && !(c->flags & (FRA_C_BODY_FULL | FRA_C_LINGER)) &&
         (c->active || (c->flags & FRA_C_DISCARD));
}

/* The body wait starts (or starts over after backpressure): its deadline is from now. */
static void body_wait_begin(fra_conn *c) {
  if (c->flags & FRA_C_CLOSING) return;
  uint64_t t = c->srv->cfg.timeout_body_ms;
  c->body_seen = now_ms(c->srv);
  if (t && body_awaited(c)) timer_arm(c, c->body_seen + t);
}

/* How many bytes the client has taken so far: those handed to the kernel less those it still
 * holds (unsent or unacknowledged, TIOCOUTQ).  libuv's own queue is no measure: the kernel
 * asks for more only once a good part of its (often megabytes large) buffer has gone, so a
 * client reading slowly would look stalled for a long time. */
static uint64_t bytes_taken(fra_conn *c, size_t queued) {
  uint64_t out = c->sent_direct + (c->queued_total - queued);
#ifdef TIOCOUTQ
  uv_os_fd_t fd;
  int pending = 0;
  if (uv_fileno(&c->h.handle, &fd) == 0 && ioctl(fd, TIOCOUTQ, &pending) == 0 && pending > 0)
    out -= (uint64_t)pending < out ? (uint64_t)pending : out;
#endif
  return out;
}

/* The write timeout of the response under way: its own (a stream's send timeout) or the
 * server's --timeout-write; 0 = none. */
static uint64_t write_timeout_ms(const fra_conn *c) {
  return c->xs && c->xs->timeout_write_ms ? c->xs->timeout_write_ms : c->srv->cfg.timeout_write_ms;
}

/* Poll interval for the write timeout: progress is read at each poll, so it is seen within a
 * quarter of the timeout. */
static uint64_t write_poll_ms(const fra_conn *c) {
  uint64_t t = write_timeout_ms(c);
  return t ? (t >= 4 ? t / 4 : 1) : 1000;
}

static void stream_free(fra_conn *c) {
  if (!c->xs) return;
  free(c->xs->ping);
  free(c->xs);
  c->xs = NULL;
}

/* ---- reading ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  fra_conn *c = h->data;
  if (c->pend_len || (c->flags & FRA_C_PAUSED)) {
    /* Bytes behind a paused request go straight to the pending buffer. */
    if (c->pend_cap - c->pend_len < 16384) {
      size_t cap = c->pend_cap ? c->pend_cap * 2 : 32768;
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
  fra__loop_touched(c->srv);
}

static void reading_stop(fra_conn *c, uint32_t why) {
  c->flags |= why;
  if (c->flags & FRA_C_READING) {
    uv_read_stop(&c->h.stream);
    c->flags &= ~FRA_C_READING;
    fra__loop_touched(c->srv);
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
  else if (r && (c->flags & FRA_C_DISCARD)) fra_server_release_req(s, r); /* ours again */
  fra__fileout_free(c);
  stream_free(c);
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
  c->nclose = (uint8_t)(2 + fra__fileout_close(c, close_cb));
  uv_close((uv_handle_t *)&c->timer, close_cb);
  uv_close(&c->h.handle, close_cb);
}

void fra_conn_abort(fra_conn *c) { fra__conn_close(c); }

static void shutdown_cb(uv_shutdown_t *req, int status) {
  fra_conn *c = req->handle->data;
  free(req);
  if (c->flags & FRA_C_CLOSING) return;
  if (status < 0 || (c->flags & FRA_C_EOF)) {
    fra__conn_close(c);
    return;
  }
  /* The response is all with the kernel now: the linger period starts over from here. */
  c->timer_mode = FRA_T_NONE;
  phase_set(c, FRA_T_LINGER);
}

/* Close after what is queued has been written.  Reading goes on, discarding, until the client
 * closes or the linger timer fires: closing with unread input would send a reset that can
 * destroy the response before the client reads it. */
static void linger_close(fra_conn *c) {
  if (c->flags & (FRA_C_CLOSING | FRA_C_LINGER)) return;
  c->flags |= FRA_C_LINGER;
  c->flags &= ~(FRA_C_BODY_FULL | FRA_C_PEND_FULL | FRA_C_PAUSED | FRA_C_DISCARD);
  c->pend_len = 0;
  if (c->flags & FRA_C_EOF) {
    /* the client is done sending: close once the output is flushed */
  } else {
    reading_start(c);
  }
  phase_set(c, FRA_T_LINGER);
  if (fra__fileout_active(c)) fra__fileout_shut_after(c); /* uv_shutdown knows only libuv's queue */
  else fra__conn_shut_write(c);
}

void fra__conn_shut_write(fra_conn *c) {
  if (c->flags & FRA_C_CLOSING) return;
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req || uv_shutdown(req, &c->h.stream, shutdown_cb) != 0) {
    free(req);
    fra__conn_close(c);
    return;
  }
  fra__loop_touched(c->srv);
}

/* A short canned error straight to the socket, if nothing else is queued before it. */
static void try_error(fra_conn *c, int status) {
  char buf[256];
  uv_buf_t b = fra_buf(buf, fra_error_response(buf, status));
  uv_try_write(&c->h.stream, &b, 1);
}

/* A deadline passed.  While output is queued only the write timeout closes the connection:
 * the others wait until the client has taken the response. */
static void timer_cb(uv_timer_t *t) {
  fra_conn *c = t->data;
  fra_server *s = c->srv;
  c->timer_due = 0;
  if (c->flags & FRA_C_CLOSING) return;
  uint64_t now = uv_now(&s->loop), next = UINT64_MAX;
  size_t queued = c->h.stream.write_queue_size;
  int waiting = queued || fra__fileout_active(c); /* a file's bytes are output too */
  if (waiting) {
    uint64_t taken = bytes_taken(c, queued), tw = write_timeout_ms(c);
    if (taken != c->taken_mark) {
      c->taken_mark = taken;
      c->write_seen = now;
    } else if (tw && now - c->write_seen >= tw) {
      /* The client has read nothing for the write timeout: the app learns it is gone. */
      fra__conn_close(c);
      return;
    }
    next = now + write_poll_ms(c);
  }
  if (c->xs && c->xs->ping_ms && c->active) {
    /* A silent stream gets its keepalive bytes; one whose output is not being taken gets
     * nothing more (the write timeout watches it). */
    uint64_t due = c->xs->last_write + c->xs->ping_ms;
    if (now >= due) {
      if (!waiting) {
        uv_buf_t b = fra_buf(c->xs->ping, c->xs->ping_len);
        if (fra_conn_write(c, &b, 1) < 0) return; /* closing */
        if (c->flags & FRA_C_CLOSING) return;
      }
      c->xs->last_write = now;
      due = now + c->xs->ping_ms;
    }
    if (due < next) next = due;
  }
  if (s->cfg.timeout_body_ms && body_awaited(c)) {
    uint64_t due = c->body_seen + s->cfg.timeout_body_ms;
    if (now >= due) {
      /* No body bytes for --timeout-body: 408 unless a response has begun (RFC 9110 15.5.9). */
      if (c->active && !(c->flags & FRA_C_RESPONDING) && !waiting) try_error(c, 408);
      fra__conn_close(c);
      return;
    }
    if (due < next) next = due;
  }
  if (c->phase_due) {
    if (now < c->phase_due) {
      if (c->phase_due < next) next = c->phase_due;
    } else if (!waiting) {
      fra_req *r = c->parser.req;
      if (c->timer_mode == FRA_T_HEADER && r && !r->dispatched && (r->len > 0 || c->pend_len > 0))
        try_error(c, 408); /* part of a request arrived but not its headers in time */
      c->timer_mode = FRA_T_NONE;
      fra__conn_close(c);
      return;
    }
  }
  if (next != UINT64_MAX) timer_arm(c, next);
}

/* ---- accept ---- */

static void conn_free_cb(uv_handle_t *h) { free(h->data); }

static void refuse(fra_server *s, uv_stream_t *l);

/* The spare handle is free again: take the connection a listener still holds. */
static void refuse_closed_cb(uv_handle_t *h) {
  fra_server *s = h->loop->data;
  s->refuse_busy = 0;
  for (int i = 0; i < s->nlisteners; i++) {
    if (!(s->refuse_waiting & (1u << i))) continue;
    s->refuse_waiting &= ~(1u << i);
    if (!uv_is_closing(&s->listeners[i].handle)) {
      refuse(s, &s->listeners[i].stream);
      return;
    }
  }
}

/* A connection we cannot serve (no memory for it) is still accepted, into the server's spare
 * handle, and closed at once: libuv stops watching a listener until its pending connection is
 * taken, so leaving it would stop all accepting. */
static void refuse(fra_server *s, uv_stream_t *l) {
  if (s->refuse_busy) {
    int i = (int)((char *)l - (char *)s->listeners) / (int)sizeof s->listeners[0];
    s->refuse_waiting |= 1u << i;
    return;
  }
  int rc = l->type == UV_TCP ? uv_tcp_init(&s->loop, &s->refuse.tcp) : uv_pipe_init(&s->loop, &s->refuse.pipe, 0);
  if (rc) return;
  s->refuse_busy = 1;
  uv_accept(l, &s->refuse.stream);
  fra__loop_touched(s);
  uv_close(&s->refuse.handle, refuse_closed_cb);
}

/* Sets up a connection whose handle is open: timer, parser, the server's list, reading. */
static void conn_start(fra_server *s, fra_conn *c) {
  uv_timer_init(&s->loop, &c->timer);
  c->timer.data = c;
  c->srv = s;
  fra_parser_init(&c->parser, &s->cfg.limits, c);
  c->parser.new_req = new_req;
  c->parser.body_sink = body_sink;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  if (s->cfg.limit_concurrency && s->nconns > s->cfg.limit_concurrency) c->flags |= FRA_C_OVERLIMIT;
  reading_start(c);
  phase_set(c, s->shutting_down ? FRA_T_DRAIN : FRA_T_HEADER);
}

void fra__conn_accept(uv_stream_t *l, int status) {
  fra_server *s = l->loop->data;
  if (status < 0 || s->shutting_down) return;
  fra_conn *c = fra_fault("accept_alloc") ? NULL : calloc(1, sizeof *c);
  if (!c) {
    refuse(s, l);
    return;
  }
  int tcp = l->type == UV_TCP;
  if (tcp) uv_tcp_init(&s->loop, &c->h.tcp);
  else uv_pipe_init(&s->loop, &c->h.pipe, 0);
  c->h.handle.data = c;
  fra__loop_touched(s);
  if (uv_accept(l, &c->h.stream) != 0) {
    uv_close(&c->h.handle, conn_free_cb);
    return;
  }
  if (tcp) {
    uv_tcp_nodelay(&c->h.tcp, 1);
    c->flags |= FRA_C_TCP;
  }
  conn_start(s, c);
}

fra_conn *fra__conn_open_fd(fra_server *s, int fd) {
  fra_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  if (uv_pipe_init(&s->loop, &c->h.pipe, 0) != 0) {
    free(c);
    return NULL;
  }
  c->h.handle.data = c;
  if (uv_pipe_open(&c->h.pipe, fd) != 0) {
    /* the handle does not own fd yet: closing it leaves fd to the caller */
    uv_close(&c->h.handle, conn_free_cb);
    return NULL;
  }
  conn_start(s, c);
  return c;
}

/* ---- parsing and dispatch ---- */

static void send_error(fra_conn *c, int status) {
  char buf[256];
  uv_buf_t b = fra_buf(buf, fra_error_response(buf, status));
  fra_conn_write(c, &b, 1);
  linger_close(c);
}

static void keep_pending(fra_conn *c, const char *data, size_t len) {
  if (data == c->pend) {
    /* already in the pending buffer (parsed from its start): nothing to copy */
  } else if (c->pend && data > c->pend && data < c->pend + c->pend_len) {
    memmove(c->pend, data, len);
  } else {
    if (c->pend_cap < len) {
      size_t cap = len < 32768 ? 32768 : len;
      char *np = realloc(c->pend, cap);
      if (!np) { fra__conn_close(c); return; }
      c->pend = np;
      c->pend_cap = cap;
    }
    memcpy(c->pend, data, len);
  }
  c->pend_len = len;
  if (c->pend_len >= FRA_PEND_MAX) reading_stop(c, FRA_C_PEND_FULL);
}

static void dispatch(fra_conn *c) {
  fra_server *s = c->srv;
  fra_req *r = c->parser.req;
  r->dispatched = 1;
  phase_set(c, FRA_T_NONE);
  if (c->flags & FRA_C_OVERLIMIT) {
    /* Over --limit-concurrency: refuse before the app sees it. */
    r->dispatched = 0;
    send_error(c, 503);
    return;
  }
  s->nactive++;
  s->nrequests++;
  s->hooks.on_request(c);
  body_wait_begin(c); /* r may be finished and gone: only c is read */
}

/* The dropped rest of an early-answered body has arrived: the connection goes on. */
static void discard_done(fra_conn *c) {
  fra_req *r = c->parser.req;
  c->flags &= ~FRA_C_DISCARD;
  c->parser.req = NULL;
  fra_server_release_req(c->srv, r);
  next_request(c);
}

/* The parser's body sink.  Before dispatch, the body bytes of the read that completes the head
 * are left in the read buffer for the bridge to copy once, at dispatch, into the object the app
 * gets (a second run of them, a chunked body's next chunk, is queued after them).  After
 * dispatch, the bridge is offered each run of body bytes straight from the read buffer; what
 * it declines is queued in the request. */
static int body_sink(void *owner, fra_req *r, const char *at, size_t len) {
  fra_conn *c = owner;
  if (!r->dispatched) {
    if (!r->pre_len && r->body_len == r->body_off) {
      r->pre_at = at;
      r->pre_len = len;
      return 0;
    }
    if (r->pre_len && r->pre_at + r->pre_len == at) {
      r->pre_len += len;
      return 0;
    }
    if (fra_req_pre_flush(r) < 0) return -1;
    return fra_req_body_append(r, at, len);
  }
  if (c->active && c->srv->hooks.on_body_data) {
    int rc = c->srv->hooks.on_body_data(c, at, len);
    if (rc) return rc < 0 ? -1 : 0;
  }
  return fra_req_body_append(r, at, len);
}

static void feed_bytes(fra_conn *c, const char *data, size_t len);

/* Parses bytes the client sent and acts on what they complete.  Used by the read callback
 * and for pipelined bytes kept while the previous request was served.  Body bytes the bridge
 * did not take at dispatch are queued before the read buffer is reused. */
static void feed(fra_conn *c, const char *data, size_t len) {
  feed_bytes(c, data, len);
  fra_req *r = c->parser.req;
  if (!r || !r->pre_len) return;
  if (c->flags & (FRA_C_CLOSING | FRA_C_LINGER)) {
    r->pre_len = 0; /* the request is dropped with its connection */
    r->pre_at = NULL;
  } else if (fra_req_pre_flush(r) < 0) {
    fra__conn_close(c);
  }
}

static void feed_bytes(fra_conn *c, const char *data, size_t len) {
  fra_server *s = c->srv;
  fra_req *r0 = c->parser.req;
  uint64_t total0 = r0 ? r0->body_total : 0;
  uint8_t complete0 = r0 ? r0->complete : 0;
  fra_parse_error err;
  long used = fra_parser_execute(&c->parser, data, len, &err);
  if (used < 0) {
    fra_req *r = c->parser.req;
    if (r && r->dispatched) {
      /* A framing error inside the body of a request the app already has (or whose rest is
       * being dropped): the exchange is told the client is gone and the connection closes. */
      fra__conn_close(c);
    } else {
      send_error(c, err.status);
    }
    return;
  }
  if ((size_t)used < len) {
    fra_req *pr = c->parser.req;
    /* Keeping the rest moves it to the start of the pending buffer: body bytes left there
     * for the bridge would be overwritten. */
    if (pr && pr->pre_len && c->pend && pr->pre_at >= c->pend && pr->pre_at < c->pend + c->pend_cap &&
        fra_req_pre_flush(pr) < 0) {
      fra__conn_close(c);
      return;
    }
    keep_pending(c, data + used, len - used);
    c->flags |= FRA_C_PAUSED;
  } else if (c->parser.req && c->parser.req->complete) {
    c->flags |= FRA_C_PAUSED; /* the message ended with the read: later bytes wait */
    if (data == c->pend) c->pend_len = 0;
  } else if (data == c->pend) {
    c->pend_len = 0;
  }
  if (c->flags & FRA_C_CLOSING) return;
  fra_req *r = c->parser.req;
  if (!r) return;
  if (r == r0 && r->body_total != total0) c->body_seen = uv_now(&s->loop);
  if (c->flags & FRA_C_DISCARD) {
    if (r->complete) discard_done(c);
    return;
  }
  if (!r->headers_done) {
    phase_set(c, FRA_T_HEADER);
    return;
  }
  if (!r->dispatched) {
    /* The app gets the request at the end of its headers (bodies stream), except when the
     * last chunk is already here and only the trailer section is missing: then it waits for
     * the end, so a truncated message never reaches the app. */
    if (r->complete || !r->last_chunk) {
      dispatch(c); /* the request may be finished and released inside: r is not used after */
    } else {
      phase_set(c, FRA_T_HEADER);
    }
    return;
  }
  if (r == r0 && (r->body_total != total0 || r->complete != complete0)) {
    if (fra_req_body_pending(r) >= FRA_BODY_HIGH && !r->complete) reading_stop(c, FRA_C_BODY_FULL);
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
    c->pend_len += (size_t)n;
    if (c->flags & FRA_C_PAUSED) {
      if (c->pend_len >= FRA_PEND_MAX) reading_stop(c, FRA_C_PEND_FULL);
      return;
    }
    feed(c, c->pend, c->pend_len);
    return;
  }
  feed(c, buf->base, (size_t)n);
}

size_t fra__conn_deliver(fra_conn *c, const char *data, size_t len) {
  if (!(c->flags & FRA_C_READING) || len == 0) return 0;
  uv_buf_t buf;
  alloc_cb(&c->h.handle, 65536, &buf);
  if (!buf.base || buf.len == 0) {
    read_cb(&c->h.stream, UV_ENOBUFS, &buf);
    return 0;
  }
  size_t n = len < buf.len ? len : buf.len;
  memcpy(buf.base, data, n);
  read_cb(&c->h.stream, (ssize_t)n, &buf);
  return n;
}

void fra__conn_drain(fra_conn *c) {
  if (c->flags & (FRA_C_CLOSING | FRA_C_LINGER | FRA_C_DISCARD) || c->active || c->pend_len) return;
  const fra_req *r = c->parser.req;
  if (r && r->len) return; /* a request is arriving: it is served, with Connection: close */
  uint64_t due = now_ms(c->srv) + fra_server_drain_idle_ms(c->srv);
  if (c->phase_due && c->phase_due < due) due = c->phase_due;
  c->timer_mode = FRA_T_DRAIN;
  c->phase_due = due;
  timer_arm(c, due);
}

void fra__conn_process_pending(fra_server *s) {
  while (s->pending) {
    fra_conn *c = s->pending;
    s->pending = c->next_pending;
    c->next_pending = NULL;
    c->flags &= ~FRA_C_PENDING;
    if ((c->flags & (FRA_C_CLOSING | FRA_C_PAUSED | FRA_C_LINGER)) || c->pend_len == 0) continue;
    feed(c, c->pend, c->pend_len);
    if (!(c->flags & FRA_C_CLOSING) && c->pend_len == 0 && !c->parser.req) phase_set(c, FRA_T_KEEPALIVE);
  }
}

/* ---- for the bridge ---- */

int fra_conn_may_keep_alive(fra_conn *c, int continue_sent) {
  if (c->srv->shutting_down || (c->flags & (FRA_C_EOF | FRA_C_GONE | FRA_C_CLOSING))) return 0;
  const fra_req *r = c->parser.req;
  if (!r || r->complete) return 1;
  /* The body is still arriving.  Its rest can be dropped only if its size is known and small,
   * and the client will send it: with Expect: 100-continue and no 100 sent, it may not
   * (RFC 9110 10.1.1), and what it sends next could be read as body. */
  if (!r->headers_done || r->chunked) return 0;
  if (r->expect_continue && !continue_sent) return 0;
  return r->content_length - r->body_total <= FRA_DISCARD_MAX;
}

/* Sets up dropping the rest of a body whose response is done.  The parser needs a request to
 * parse into: the same one if the bridge let go of it, else a fresh one with its framing.
 * Returns 0, or -1 (no memory: the connection closes instead). */
static int discard_begin(fra_conn *c, fra_req *r) {
  fra_req *d = r;
  if (r->retained) {
    d = new_req(c);
    if (!d) return -1;
    d->headers_done = 1;
    d->has_body = r->has_body;
    d->content_length = r->content_length;
    d->body_total = r->body_total;
    d->http_major = r->http_major;
    d->http_minor = r->http_minor;
  } else {
    d->body_off = d->body_len = 0;
  }
  d->pre_at = NULL;
  d->pre_len = d->body_held = 0;
  d->dispatched = 1;
  d->discard = 1;
  c->parser.req = d;
  c->flags |= FRA_C_DISCARD;
  c->flags &= ~FRA_C_BODY_FULL;
  return 0;
}

/* Ready for the next request: resume the parser, parse what is pending or wait idle. */
static void next_request(fra_conn *c) {
  fra_server *s = c->srv;
  fra_parser_resume(&c->parser);
  c->flags &= ~FRA_C_PAUSED;
  if (c->pend_len) {
    if (!(c->flags & FRA_C_PENDING)) {
      c->flags |= FRA_C_PENDING;
      c->next_pending = s->pending;
      s->pending = c;
    }
  } else {
    phase_set(c, FRA_T_KEEPALIVE);
  }
  reading_resume(c, FRA_C_PEND_FULL | FRA_C_BODY_FULL);
}

void fra_conn_finish(fra_conn *c, int keep_alive, int status, uint64_t bytes) {
  fra_server *s = c->srv;
  fra_req *r = c->parser.req;
  fra__access_log(s, c, status, bytes);
  s->nactive--;
  c->active = NULL;
  c->flags &= ~FRA_C_RESPONDING;
  stream_free(c);
  if (c->flags & (FRA_C_EOF | FRA_C_GONE | FRA_C_CLOSING)) keep_alive = 0;
  /* A response whose head kept the connection while the body was still arriving (see
   * fra_conn_may_keep_alive, which cannot say otherwise now) has the rest of the body read
   * and dropped; anything else unfinished closes. */
  int discard = keep_alive && !r->complete;
  if (discard && (!r->headers_done || r->chunked || r->content_length - r->body_total > FRA_DISCARD_MAX))
    discard = keep_alive = 0;
  c->parser.req = NULL;
  if (discard) {
    if (discard_begin(c, r) < 0) discard = keep_alive = 0;
  }
  if (!r->retained && !discard) fra_server_release_req(s, r);
  if (c->flags & FRA_C_CLOSING) return;
  if (!keep_alive) {
    linger_close(c);
    return;
  }
  if (discard) {
    phase_set(c, FRA_T_NONE);
    reading_resume(c, FRA_C_PEND_FULL);
    body_wait_begin(c);
    return;
  }
  next_request(c);
}

/* The client has output to take: the write timeout watches it from now. */
static void output_wait_begin(fra_conn *c) {
  c->taken_mark = bytes_taken(c, 0);
  c->write_seen = now_ms(c->srv);
  if (write_timeout_ms(c)) timer_arm(c, c->write_seen + write_poll_ms(c));
}

static void write_cb(uv_write_t *req, int status) {
  fra_conn *c = req->handle->data;
  wreq *wr = (wreq *)req;
  if (wr->sh) fra_shared_release(wr->sh);
  free(wr);
  if (status < 0) {
    if (!(c->flags & FRA_C_CLOSING)) fra__conn_close(c);
    return;
  }
  if (c->h.stream.write_queue_size == 0) fra__fileout_queue_empty(c); /* a file waited for it */
  if ((c->flags & FRA_C_WANT_DRAIN) && !(c->flags & FRA_C_CLOSING) && fra_conn_queued(c) <= FRA_WRITE_LOW) {
    c->flags &= ~FRA_C_WANT_DRAIN;
    c->srv->hooks.on_drain(c);
  }
}

/* The first bytes written for a dispatched request begin its response, unless they are an
 * interim (1xx) response such as 100 Continue: every response starts with its status line. */
static void note_response(fra_conn *c, const uv_buf_t *bufs, unsigned nbufs) {
  for (unsigned i = 0; i < nbufs; i++) {
    if (!bufs[i].len) continue;
    if (!(bufs[i].len >= 10 && memcmp(bufs[i].base, "HTTP/1.1 1", 10) == 0)) c->flags |= FRA_C_RESPONDING;
    return;
  }
}

fra_shared *fra_shared_new(size_t len) {
  fra_shared *b = malloc(sizeof *b + len);
  if (!b) return NULL;
  b->refs = 1;
  b->len = len;
  return b;
}

void fra_shared_release(fra_shared *b) {
  if (b && --b->refs == 0) free(b);
}

/* Tries the socket at once when nothing is queued before these bytes.  Returns how many it
 * took (total: all), or a negative UV error (the connection is then being closed). */
static ssize_t write_now(fra_conn *c, const uv_buf_t *bufs, unsigned nbufs, size_t total, size_t *was_queued) {
  if (c->active && !(c->flags & FRA_C_RESPONDING)) note_response(c, bufs, nbufs);
  if (c->xs) c->xs->last_write = now_ms(c->srv);
  if (fra__fileout_active(c)) {
    /* A file is going out: these bytes follow it (the file's writer sends them). */
    int rc = fra__fileout_hold(c, bufs, nbufs, total);
    if (rc < 0) {
      fra__conn_close(c);
      return rc;
    }
    return (ssize_t)total;
  }
  *was_queued = c->h.stream.write_queue_size;
  int w = *was_queued ? UV_EAGAIN : uv_try_write(&c->h.stream, bufs, nbufs);
  if (w > 0) c->sent_direct += (uint64_t)w;
  if (w >= 0 && (size_t)w == total) return (ssize_t)total;
  if (w < 0 && w != UV_EAGAIN) {
    fra__conn_close(c);
    return w;
  }
  return w < 0 ? 0 : w;
}

/* Hands the rest (wr's one buffer b) to libuv; wr is freed on failure. */
static int write_queue(fra_conn *c, wreq *wr, uv_buf_t b, size_t was_queued) {
  int rc = uv_write(&wr->req, &c->h.stream, &b, 1, write_cb);
  if (rc) {
    if (wr->sh) fra_shared_release(wr->sh);
    free(wr);
    fra__conn_close(c);
    return rc;
  }
  fra__loop_touched(c->srv);
  if (!was_queued) output_wait_begin(c);
  c->queued_total += b.len;
  return 0;
}

int fra_conn_write(fra_conn *c, const uv_buf_t *bufs, unsigned nbufs) {
  if (c->flags & FRA_C_CLOSING) return UV_ECANCELED;
  size_t total = 0, was_queued;
  for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
  if (total == 0) return 0;
  ssize_t w = write_now(c, bufs, nbufs, total, &was_queued);
  if (w < 0) return (int)w;
  if ((size_t)w == total) return 0;
  /* What the socket did not take is copied: the caller's buffers are not kept. */
  size_t rest = total - (size_t)w;
  wreq *wr = malloc(sizeof *wr + rest);
  if (!wr) {
    fra__conn_close(c);
    return UV_ENOMEM;
  }
  wr->sh = NULL;
  size_t skip = (size_t)w, off = 0;
  for (unsigned i = 0; i < nbufs; i++) {
    size_t l = bufs[i].len;
    if (skip >= l) { skip -= l; continue; }
    memcpy(wr->data + off, bufs[i].base + skip, l - skip);
    off += l - skip;
    skip = 0;
  }
  return write_queue(c, wr, fra_buf(wr->data, rest), was_queued);
}

int fra_conn_write_shared(fra_conn *c, fra_shared *b) {
  if (c->flags & FRA_C_CLOSING) return UV_ECANCELED;
  if (b->len == 0) return 0;
  uv_buf_t buf = fra_buf(b->data, b->len);
  size_t was_queued;
  ssize_t w = write_now(c, &buf, 1, b->len, &was_queued);
  if (w < 0) return (int)w;
  if ((size_t)w == b->len) return 0;
  /* The rest stays in the shared buffer: the write holds a reference instead of a copy. */
  wreq *wr = malloc(sizeof *wr);
  if (!wr) {
    fra__conn_close(c);
    return UV_ENOMEM;
  }
  wr->sh = b;
  b->refs++;
  return write_queue(c, wr, fra_buf(b->data + w, b->len - (size_t)w), was_queued);
}

static fra_conn_stream *stream_of(fra_conn *c) {
  if (!c->xs && (c->xs = calloc(1, sizeof *c->xs))) c->xs->last_write = now_ms(c->srv);
  return c->xs;
}

int fra_conn_keepalive(fra_conn *c, uint64_t ms, const char *data, size_t len) {
  fra_conn_stream *xs = stream_of(c);
  char *copy = len ? malloc(len) : NULL;
  if (!xs || (len && !copy)) {
    free(copy);
    return UV_ENOMEM;
  }
  if (len) memcpy(copy, data, len);
  free(xs->ping);
  xs->ping = copy;
  xs->ping_len = len;
  xs->ping_ms = len ? ms : 0;
  if (xs->ping_ms && !(c->flags & FRA_C_CLOSING)) timer_arm(c, xs->last_write + ms);
  return 0;
}

int fra_conn_write_timeout(fra_conn *c, uint64_t ms) {
  fra_conn_stream *xs = stream_of(c);
  if (!xs) return UV_ENOMEM;
  xs->timeout_write_ms = ms;
  if (fra_conn_queued(c) && !(c->flags & FRA_C_CLOSING)) timer_arm(c, now_ms(c->srv) + write_poll_ms(c));
  return 0;
}

void fra__conn_output_waits(fra_conn *c) {
  if (!c->h.stream.write_queue_size) output_wait_begin(c); /* else watched since that output queued */
}

size_t fra_conn_queued(fra_conn *c) { return c->h.stream.write_queue_size + fra__fileout_pending(c); }

void fra_conn_want_drain(fra_conn *c) { c->flags |= FRA_C_WANT_DRAIN; }

void fra_conn_body_consumed(fra_conn *c) {
  fra_req *r = c->parser.req;
  if ((c->flags & FRA_C_BODY_FULL) && r && fra_req_body_pending(r) < FRA_BODY_HIGH / 2) {
    reading_resume(c, FRA_C_BODY_FULL);
    body_wait_begin(c);
  }
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
