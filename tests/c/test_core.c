/* Unit tests for csrc/core: the connection state machine driven through a real libuv loop
 * over loopback TCP, with C hooks standing in for the bridge (dispatch, pipelining in order,
 * keep-alive and header timers, early response and the dropped body, drain, body and write
 * timeouts, the loop-dirty flag, body bytes left in the read buffer until dispatch and offered
 * to the bridge after it), the thread pool, and the accept allocation fault.
 * The loop is driven as the asyncio integration drives it: fra_server_run_nowait, then a poll
 * of libuv's backend fd for at most fra_server_timeout.  No test measures time: waits are
 * bounded only so a broken core cannot hang the run. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"
#include "fra/core.h"

#define WAIT_MS 5000   /* upper bound for anything awaited */

/* ---- the stand-in bridge ---- */

enum { RESPOND_NOW, DEFER };

typedef struct {
  int mode;
  int requests, bodies, disconnects, closes, drained;
  int retain;                 /* respond as the native path: the request outlives the response */
  fra_req *retained[8];
  int nretained;
  fra_conn *deferred[8];
  int ndeferred;
  char urls[8][32];
  size_t big;                 /* DEFER + big: write this many bytes at dispatch */
  size_t queued_at_dispatch;  /* what of them waited in the write queue */
} bridge;

static bridge B;
static fra_server S;
static int S_up;
static char token;            /* what c->active points to while a request is the app's */

static void respond(fra_conn *c, int status, const char *body) {
  fra_req *r = c->parser.req;
  int keep = r->keep_alive && fra_conn_may_keep_alive(c, 0);
  char head[512];
  int n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n%s", status, strlen(body),
                   keep ? "" : "Connection: close\r\n", body);
  uv_buf_t b = fra_buf(head, (size_t)n);
  fra_conn_write(c, &b, 1);
  if (B.retain) {
    r->retained = 1;
    B.retained[B.nretained++] = r;
  }
  fra_conn_finish(c, keep, status, strlen(body));
}

static void undefer(fra_conn *c) {
  for (int i = 0; i < B.ndeferred; i++)
    if (B.deferred[i] == c) {
      memmove(&B.deferred[i], &B.deferred[i + 1], (size_t)(B.ndeferred - i - 1) * sizeof c);
      B.ndeferred--;
      return;
    }
}

static void h_request(fra_conn *c) {
  fra_req *r = c->parser.req;
  if (B.requests < 8)
    snprintf(B.urls[B.requests], sizeof B.urls[0], "%.*s", (int)r->url_len, r->buf + r->url_off);
  B.requests++;
  c->active = &token;
  if (B.mode == RESPOND_NOW) {
    respond(c, 200, "ok");
    return;
  }
  B.deferred[B.ndeferred++] = c;
  if (B.big) {
    char *data = malloc(B.big);
    memset(data, 'b', B.big);
    char head[128];
    int n = snprintf(head, sizeof head, "HTTP/1.1 200 X\r\nContent-Length: %zu\r\n\r\n", B.big);
    uv_buf_t bufs[2] = {fra_buf(head, (size_t)n), fra_buf(data, B.big)};
    fra_conn_write(c, bufs, 2);
    B.queued_at_dispatch = fra_conn_queued(c);
    free(data);
  }
}

static void h_body(fra_conn *c) { B.bodies++; }
static void h_disconnect(fra_conn *c) { B.disconnects++; }
static void h_drain(fra_conn *c) {}
static void h_wakeup(fra_server *s) {}
static void h_drained(fra_server *s) { B.drained++; }
static int files_done, files_status;
static void h_file_done(fra_conn *c, int status) {
  files_done++;
  files_status = status;
}

static void h_close(fra_conn *c) {
  B.closes++;
  undefer(c);
  if (c->active) { /* the bridge lets go of the request the connection can no longer serve */
    c->active = NULL;
    c->srv->nactive--;
    fra_req *r = c->parser.req;
    c->parser.req = NULL;
    if (r) fra_server_release_req(c->srv, r);
  }
}

static const fra_hooks HOOKS = {h_request, h_body, h_disconnect, h_drain, h_close, h_wakeup, h_drained, h_file_done};

/* The bridge's body sink stood in for: takes every byte offered and holds it (req->body_held). */
static size_t sunk;
static int h_body_data(fra_conn *c, const char *at, size_t len) {
  sunk += len;
  c->parser.req->body_held += len;
  return 1;
}
static const fra_hooks HOOKS_SINK = {h_request, h_body, h_disconnect, h_drain, h_close, h_wakeup, h_drained, h_file_done,
                                     h_body_data};
static const fra_hooks *hooks = &HOOKS;

static fra_config config(void) {
  fra_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.limits = (fra_limits){8190, 32768, 100, 0};
  cfg.timeout_header_ms = 5000;
  cfg.timeout_keep_alive_ms = 5000;
  cfg.timeout_body_ms = 5000;
  cfg.timeout_write_ms = 5000;
  cfg.access_log_fd = -1;
  cfg.log_fd = -1;
  return cfg;
}

static int port;

static void server_up(fra_config cfg) {
  memset(&B, 0, sizeof B);
  int rc = fra_server_init(&S, &cfg, hooks, NULL);
  CHECK(rc == 0, "server init: %s", uv_strerror(rc));
  rc = fra_server_listen_tcp(&S, "127.0.0.1", 0, 64);
  CHECK(rc == 0, "listen: %s", uv_strerror(rc));
  char host[64];
  fra_server_sockname(&S, 0, host, sizeof host, &port);
  S_up = 1;
}

static void server_down(void) {
  for (int i = 0; i < B.nretained; i++) {
    B.retained[i]->retained = 0;
    fra_server_release_req(&S, B.retained[i]);
  }
  fra_server_destroy(&S);
  S_up = 0;
}

/* ---- driving the loop ---- */

static uint64_t ms_now(void) { return uv_hrtime() / 1000000; }

static void pass(int max_wait_ms) {
  fra_server_run_nowait(&S);
  int t = fra_server_timeout(&S);
  if (t < 0 || t > max_wait_ms) t = max_wait_ms;
  struct pollfd p = {uv_backend_fd(&S.loop), POLLIN, 0};
  poll(&p, 1, t);
}

/* Runs the loop until cond() holds (1) or WAIT_MS pass (0). */
static int pump_until(int (*cond)(void *), void *arg) {
  uint64_t end = ms_now() + WAIT_MS;
  while (!cond(arg)) {
    if (ms_now() > end) return 0;
    pass(10);
  }
  return 1;
}

static void pump(int passes) {
  for (int i = 0; i < passes; i++) pass(1);
}

/* ---- the client side ---- */

typedef struct {
  int fd;
  char buf[1 << 16];
  size_t len;
  int eof;
} client;

static client *connect_client(int rcvbuf) {
  client *cl = calloc(1, sizeof *cl);
  cl->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (rcvbuf) setsockopt(cl->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(cl->fd, (struct sockaddr *)&a, sizeof a);
  CHECK(rc == 0, "connect: %s", strerror(errno));
  fcntl(cl->fd, F_SETFL, fcntl(cl->fd, F_GETFL) | O_NONBLOCK);
  return cl;
}

static void client_close(client *cl) {
  close(cl->fd);
  free(cl);
}

static void csend(client *cl, const char *data, size_t len) {
  while (len) {
    ssize_t n = send(cl->fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN) {
      pass(1);
      continue;
    }
    if (n < 0) return;
    data += n;
    len -= (size_t)n;
  }
}

static void csends(client *cl, const char *s) { csend(cl, s, strlen(s)); }

/* Reads what has arrived (the buffer keeps the first 64 KiB; later bytes are counted only). */
static size_t total_read;
static void cread(client *cl) {
  char tmp[65536];
  for (;;) {
    ssize_t n = recv(cl->fd, tmp, sizeof tmp, 0);
    if (n > 0) {
      size_t room = sizeof cl->buf - 1 - cl->len, k = (size_t)n < room ? (size_t)n : room;
      memcpy(cl->buf + cl->len, tmp, k);
      cl->len += k;
      cl->buf[cl->len] = 0;
      total_read += (size_t)n;
      continue;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN)) cl->eof = 1;
    return;
  }
}

static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

typedef struct {
  client *cl;
  const char *text;
  int count;
} want;

static int got_text(void *arg) {
  want *w = arg;
  cread(w->cl);
  return count_of(w->cl->buf, w->text) >= w->count;
}

static int got_eof(void *arg) {
  client *cl = arg;
  cread(cl);
  return cl->eof;
}

static int await_text(client *cl, const char *text, int count) {
  want w = {cl, text, count};
  return pump_until(got_text, &w);
}

static int await_eof(client *cl) { return pump_until(got_eof, cl); }

static int int_at_least(void *arg) { return ((int *)arg)[0] >= ((int *)arg)[1]; }

/* Waits until *counter >= n. */
static int await_count(int *counter, int n) {
  int pair[2];
  uint64_t end = ms_now() + WAIT_MS;
  for (;;) {
    pair[0] = *counter;
    pair[1] = n;
    if (int_at_least(pair)) return 1;
    if (ms_now() > end) return 0;
    pass(10);
  }
}

static int nconns_is(void *arg) { return S.nconns == *(uint64_t *)arg; }

/* The head of the last response read. */
static const char *last_head(client *cl) {
  const char *last = cl->buf;
  for (const char *p = cl->buf; (p = strstr(p, "HTTP/1.1 ")); p++) last = p;
  return last;
}

static const char *GET(const char *path) {
  static char buf[4][128];
  static int i;
  char *b = buf[i++ % 4];
  snprintf(b, sizeof buf[0], "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
  return b;
}

/* ---- connection state machine ---- */

static void test_dispatch_and_keep_alive(void) {
  server_up(config());
  client *cl = connect_client(0);
  csends(cl, GET("/a"));
  CHECK(await_text(cl, "HTTP/1.1 200", 1), "first response");
  csends(cl, GET("/b"));
  CHECK(await_text(cl, "HTTP/1.1 200", 2), "second response on the same connection");
  CHECK(B.requests == 2 && strcmp(B.urls[1], "/b") == 0, "two requests dispatched (%d)", B.requests);
  CHECK(S.nconns == 1 && !cl->eof, "one connection, kept");
  CHECK(S.nactive == 0, "nothing active after the responses");
  client_close(cl);
  server_down();
}

static void test_pipelining_in_order(void) {
  server_up(config());
  B.mode = DEFER;
  client *cl = connect_client(0);
  char all[512];
  snprintf(all, sizeof all, "%s%s%s", GET("/1"), GET("/2"), GET("/3"));
  csends(cl, all);
  CHECK(await_count(&B.requests, 1), "first request dispatched");
  pump(20);
  CHECK(B.requests == 1, "one request at a time (%d dispatched)", B.requests);
  for (int i = 1; i <= 3; i++) {
    CHECK(B.ndeferred == 1, "request %d waiting for its response", i);
    if (!B.ndeferred) break;
    char body[16];
    snprintf(body, sizeof body, "/%d", i);
    CHECK(strcmp(B.urls[i - 1], body) == 0, "request %d is %s", i, B.urls[i - 1]);
    fra_conn *c = B.deferred[0];
    undefer(c);
    respond(c, 200, body);
    if (i < 3) CHECK(await_count(&B.requests, i + 1), "request %d dispatched after response %d", i + 1, i);
  }
  CHECK(await_text(cl, "HTTP/1.1 200", 3), "three responses");
  const char *p1 = strstr(cl->buf, "/1"), *p2 = strstr(cl->buf, "/2"), *p3 = strstr(cl->buf, "/3");
  CHECK(p1 && p2 && p3 && p1 < p2 && p2 < p3, "responses in request order");
  client_close(cl);
  server_down();
}

static void test_keep_alive_timeout_closes_idle(void) {
  fra_config cfg = config();
  cfg.timeout_keep_alive_ms = 50;
  server_up(cfg);
  client *cl = connect_client(0);
  csends(cl, GET("/"));
  CHECK(await_text(cl, "HTTP/1.1 200", 1), "response");
  CHECK(await_eof(cl), "idle keep-alive connection closed by its timer");
  CHECK(count_of(cl->buf, "HTTP/1.1") == 1, "nothing sent at the close");
  CHECK(await_count(&B.closes, 1), "closed");
  client_close(cl);
  server_down();
}

static void test_header_timeout_408(void) {
  fra_config cfg = config();
  cfg.timeout_header_ms = 50;
  server_up(cfg);
  client *cl = connect_client(0);
  csends(cl, "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ");
  CHECK(await_eof(cl), "partial head cut");
  CHECK(strncmp(cl->buf, "HTTP/1.1 408", 12) == 0, "408 before the close: %.40s", cl->buf);
  CHECK(B.requests == 0, "never dispatched");
  client_close(cl);
  server_down();
}

static void test_early_response_drops_the_rest_and_keeps_the_connection(void) {
  server_up(config());
  client *cl = connect_client(0);
  char req[256];
  snprintf(req, sizeof req, "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
  csends(cl, req);
  char part[1000];
  memset(part, 'x', sizeof part);
  csend(cl, part, 100);
  CHECK(await_text(cl, "HTTP/1.1 200", 1), "early response");
  CHECK(!strstr(cl->buf, "Connection: close"), "the head keeps the connection");
  csend(cl, part, 900);
  csends(cl, GET("/next"));
  CHECK(await_text(cl, "HTTP/1.1 200", 2), "the next request after the dropped body is served");
  CHECK(B.requests == 2 && strcmp(B.urls[1], "/next") == 0, "second request is /next");
  CHECK(!cl->eof, "connection kept");
  client_close(cl);
  server_down();
}

static void test_early_response_of_a_retained_request(void) {
  server_up(config());
  B.retain = 1; /* as the native path: the request stays the bridge's after its response */
  client *cl = connect_client(0);
  csends(cl, "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
  CHECK(await_text(cl, "HTTP/1.1 200", 1), "early response");
  csends(cl, "defghij");
  csends(cl, GET("/next"));
  CHECK(await_text(cl, "HTTP/1.1 200", 2), "next request served");
  CHECK(B.nretained == 2 && B.retained[0]->body_total == 3, "the retained request is left as it was");
  client_close(cl);
  server_down();
}

static void test_early_response_that_must_close(void) {
  static const char *cases[] = {
      "POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\nxx",          /* > 1 MiB left */
      "POST /ch HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxx\r\n", /* chunked */
      "POST /ex HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", /* no 100 */
  };
  for (int i = 0; i < 3; i++) {
    server_up(config());
    client *cl = connect_client(0);
    csends(cl, cases[i]);
    CHECK(await_text(cl, "HTTP/1.1 200", 1), "case %d: response", i);
    CHECK(strstr(cl->buf, "Connection: close") != NULL, "case %d: the head announces the close", i);
    CHECK(await_eof(cl), "case %d: closed", i);
    client_close(cl);
    server_down();
  }
}

static void test_dropped_body_is_still_parsed(void) {
  server_up(config());
  client *cl = connect_client(0);
  csends(cl, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab");
  CHECK(await_text(cl, "HTTP/1.1 200", 1), "early response");
  csends(cl, "cdNOT HTTP\r\n\r\n");
  CHECK(await_eof(cl), "closed after the bad request behind the dropped body");
  CHECK(strstr(cl->buf, "HTTP/1.1 400") != NULL, "the bytes after the body were parsed: 400");
  client_close(cl);
  server_down();
}

static void test_drain_answers_the_next_request_with_close(void) {
  fra_config cfg = config();
  cfg.timeout_keep_alive_ms = 100; /* drain idle period: min(keep-alive, 1 s) */
  server_up(cfg);
  client *a = connect_client(0), *b = connect_client(0);
  csends(a, GET("/a"));
  CHECK(await_text(a, "HTTP/1.1 200", 1), "a: first response, keep-alive");
  uint64_t two = 2;
  CHECK(pump_until(nconns_is, &two), "both accepted");
  /* a's next request is on its way when the drain begins */
  csends(a, GET("/a2"));
  fra_server_shutdown(&S);
  CHECK(B.drained == 0 && S.nconns == 2, "no connection closed at once");
  CHECK(await_text(a, "HTTP/1.1 200", 2), "a: the request on its way is answered");
  CHECK(strstr(last_head(a), "Connection: close") != NULL, "a: with Connection: close");
  CHECK(await_eof(a), "a: closed after it");
  CHECK(await_eof(b), "b: idle, closed after the drain period");
  CHECK(b->len == 0, "b: nothing sent");
  CHECK(await_count(&B.drained, 1), "on_drained once no connection is left");
  client *c = calloc(1, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0, "listener closed: connect refused");
  client_close(a);
  client_close(b);
  client_close(c);
  server_down();
}

static void test_body_timeout_408(void) {
  fra_config cfg = config();
  cfg.timeout_body_ms = 50;
  server_up(cfg);
  B.mode = DEFER; /* the app waits for the body */
  client *cl = connect_client(0);
  csends(cl, "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
  CHECK(await_eof(cl), "a client that stops mid-body is closed");
  CHECK(strncmp(cl->buf, "HTTP/1.1 408", 12) == 0, "with a 408: %.40s", cl->buf);
  CHECK(B.disconnects == 1, "the app is told (%d)", B.disconnects);
  client_close(cl);
  server_down();
}

static void test_body_timeout_after_the_response_began(void) {
  fra_config cfg = config();
  cfg.timeout_body_ms = 50;
  server_up(cfg);
  B.mode = DEFER;
  client *cl = connect_client(0);
  csends(cl, "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n01234");
  CHECK(await_count(&B.requests, 1), "dispatched");
  const char *interim = "HTTP/1.1 100 Continue\r\n\r\n", *head = "HTTP/1.1 200 X\r\nTransfer-Encoding: chunked\r\n\r\n";
  uv_buf_t b = fra_buf(interim, strlen(interim));
  fra_conn_write(B.deferred[0], &b, 1);
  b = fra_buf(head, strlen(head));
  fra_conn_write(B.deferred[0], &b, 1);
  CHECK(await_eof(cl), "closed");
  CHECK(!strstr(cl->buf, "408"), "no 408 once a response has begun");
  client_close(cl);
  server_down();
}

static void test_write_timeout_closes_a_stalled_reader(void) {
  fra_config cfg = config();
  cfg.timeout_write_ms = 50;
  server_up(cfg);
  B.mode = DEFER;
  B.big = 16 << 20; /* more than the kernel buffers hold */
  client *cl = connect_client(4096);
  csends(cl, GET("/big"));
  CHECK(await_count(&B.requests, 1), "dispatched");
  CHECK(B.queued_at_dispatch > 0, "output waits in the write queue");
  CHECK(await_count(&B.disconnects, 1), "the client that reads nothing is dropped; the app is told");
  CHECK(await_count(&B.closes, 1), "closed");
  total_read = 0;
  CHECK(await_eof(cl), "the client sees the end");
  CHECK(total_read < B.big, "before the whole response (%zu bytes)", total_read);
  client_close(cl);
  server_down();
}

/* 8 KiB at a time, at least 2 ms apart: 1 MiB takes longer than the write timeout. */
static int reads_slowly(void *arg) {
  client *cl = arg;
  char tmp[8192];
  uv_sleep(2);
  ssize_t n = recv(cl->fd, tmp, sizeof tmp, 0);
  if (n > 0) total_read += (size_t)n;
  if (n == 0) cl->eof = 1;
  return cl->eof || total_read >= (1u << 20);
}

static void test_write_timeout_spares_a_slow_reader(void) {
  fra_config cfg = config();
  cfg.timeout_write_ms = 100;
  server_up(cfg);
  B.mode = DEFER;
  B.big = 16 << 20;
  client *cl = connect_client(4096);
  csends(cl, GET("/big"));
  total_read = 0;
  CHECK(pump_until(reads_slowly, cl), "read 1 MiB");
  CHECK(!cl->eof && B.disconnects == 0, "a client that keeps reading is not cut");
  client_close(cl);
  server_down();
}

/* A write that could not finish starts a watcher libuv registers only at its next poll: a
 * call made outside a loop pass must make the next timeout 0 (another pass at once). */
/* (libuv 1.44 also answers 0 from uv_backend_timeout while its own watcher queue is not empty;
 * the rule must hold without relying on that.) */
static void test_loop_touched_by_a_queued_write(void) {
  server_up(config());
  B.mode = DEFER;
  client *cl = connect_client(4096);
  csends(cl, GET("/"));
  CHECK(await_count(&B.requests, 1), "dispatched");
  pump(5);
  CHECK(fra_server_timeout(&S) != 0, "nothing to do: the loop may sleep");
  static char data[8 << 20];
  uv_buf_t b = fra_buf(data, sizeof data);
  fra_conn_write(B.deferred[0], &b, 1);
  CHECK(fra_conn_queued(B.deferred[0]) > 0, "output queued");
  CHECK(fra_server_timeout(&S) == 0, "a pass is due at once");
  client_close(cl);
  server_down();
}

/* ---- streams: keepalive, a response's own write timeout, shared buffers ---- */

/* A silent response gets its keepalive bytes; each write re-arms the wait; none after the
 * response completes. */
static void test_keepalive_pings_a_silent_response(void) {
  server_up(config());
  B.mode = DEFER;
  client *cl = connect_client(0);
  csends(cl, GET("/events"));
  CHECK(await_count(&B.requests, 1), "dispatched");
  fra_conn *c = B.deferred[0];
  static const char head[] = "HTTP/1.1 200 X\r\n\r\n";
  uv_buf_t b = fra_buf(head, sizeof head - 1);
  fra_conn_write(c, &b, 1);
  CHECK(fra_conn_keepalive(c, 20, "<ping>", 6) == 0, "keepalive set");
  CHECK(await_text(cl, "<ping>", 3), "pings on a silent response");
  b = fra_buf("<event>", 7);
  fra_conn_write(c, &b, 1);
  CHECK(await_text(cl, "<ping>", 5), "and again after an event");
  const char *ev = strstr(cl->buf, "<event>");
  CHECK(ev && strstr(ev, "<ping>"), "a ping follows the event");
  undefer(c);
  fra_conn_finish(c, 0, 200, 0);
  CHECK(await_eof(cl), "closed after the response");
  CHECK(count_of(cl->buf, "<ping>") >= 5, "pings seen");
  client_close(cl);
  server_down();
}

/* The server has no write timeout; the response sets one of its own. */
static void test_write_timeout_of_one_response(void) {
  fra_config cfg = config();
  cfg.timeout_write_ms = 0;
  server_up(cfg);
  B.mode = DEFER;
  client *cl = connect_client(4096);
  csends(cl, GET("/stream"));
  CHECK(await_count(&B.requests, 1), "dispatched");
  fra_conn *c = B.deferred[0];
  CHECK(fra_conn_write_timeout(c, 50) == 0, "write timeout set");
  static char data[16 << 20];
  memset(data, 'd', sizeof data);
  uv_buf_t b = fra_buf(data, sizeof data);
  fra_conn_write(c, &b, 1);
  CHECK(fra_conn_queued(c) > 0, "output waits in the write queue");
  CHECK(await_count(&B.disconnects, 1), "the client that reads nothing is dropped");
  CHECK(await_count(&B.closes, 1), "closed");
  client_close(cl);
  server_down();
}

static int read_8m5(void *arg) {
  client *cl = arg;
  cread(cl);
  return cl->eof || total_read >= (8u << 20) + 5;
}

/* A shared buffer a stalled client cannot take is queued by reference, and released when
 * written; every byte arrives. */
static void test_shared_buffer_is_queued_by_reference(void) {
  server_up(config());
  B.mode = DEFER;
  client *cl = connect_client(4096);
  csends(cl, GET("/shared"));
  CHECK(await_count(&B.requests, 1), "dispatched");
  fra_conn *c = B.deferred[0];
  static char fill[8 << 20];
  memset(fill, 'f', sizeof fill);
  uv_buf_t b = fra_buf(fill, sizeof fill);
  fra_conn_write(c, &b, 1);
  CHECK(fra_conn_queued(c) > 0, "the client's queue is not empty");
  fra_shared *sh = fra_shared_new(5);
  memcpy(sh->data, "<end>", 5);
  size_t before = fra_conn_queued(c);
  CHECK(fra_conn_write_shared(c, sh) == 0, "queued");
  CHECK(sh->refs == 2 && fra_conn_queued(c) == before + 5, "by reference, not copied");
  fra_shared_release(sh);
  total_read = 0;
  CHECK(pump_until(read_8m5, cl), "everything arrives");
  CHECK(total_read == sizeof fill + 5, "%zu bytes read", total_read);
  undefer(c);
  fra_conn_finish(c, 0, 200, 0);
  client_close(cl);
  server_down();
}

/* ---- accept under allocation failure ---- */

static void test_accept_alloc_failure_keeps_accepting(void) {
  server_up(config());
  CHECK(fra_fault_set("accept_alloc:2") == 0, "fault plan");
  client *a = connect_client(0);
  csends(a, GET("/1"));
  CHECK(await_text(a, "HTTP/1.1 200", 1), "first connection served");
  client *b = connect_client(0);
  CHECK(await_eof(b), "the connection that could not be allocated is closed");
  CHECK(b->len == 0, "without a response");
  client *c = connect_client(0);
  csends(c, GET("/3"));
  CHECK(await_text(c, "HTTP/1.1 200", 1), "the listener still accepts");
  CHECK(B.requests == 2, "two requests (%d)", B.requests);
  fra_fault_set(NULL);
  client_close(a);
  client_close(b);
  client_close(c);
  server_down();
}

static void test_fault_plan_parsing(void) {
  CHECK(fra_fault_set("p:2-3,q:1") == 0, "valid plan");
  int got[5];
  for (int i = 0; i < 5; i++) got[i] = fra_fault("p");
  CHECK(!got[0] && got[1] && got[2] && !got[3] && !got[4], "calls 2 and 3 fail");
  CHECK(fra_fault("q") && !fra_fault("q") && !fra_fault("other"), "q fails once, others never");
  CHECK(fra_fault_set("p") < 0 && !fra_fault("p"), "malformed plan: none");
  CHECK(fra_fault_set("p:0") < 0 && fra_fault_set("p:3-2") < 0, "bad counts refused");
  fra_fault_set(NULL);
}

/* ---- the thread pool ---- */

typedef struct job {
  void (*run)(struct job *);
  uv_sem_t *started, *release;
} job;

typedef struct {
  fra_pool *pool;
  uv_sem_t *exited;   /* posted after the thread let go of the pool */
} pool_arg;

static int jobs_done;
static uv_mutex_t jobs_mu;

static void count_job(job *j) {
  uv_mutex_lock(&jobs_mu);
  jobs_done++;
  uv_mutex_unlock(&jobs_mu);
}

static void stuck_job(job *j) {
  uv_sem_post(j->started);
  uv_sem_wait(j->release);
}

static void pool_main(void *p) {
  pool_arg *a = p;
  job *j;
  while ((j = fra_pool_take(a->pool))) j->run(j);
  uv_sem_t *exited = a->exited;
  fra_pool_thread_exit(a->pool);
  uv_sem_post(exited);
}

static job *dropped[8];
static int ndropped;
static void drop_job(void *j, void *arg) { dropped[ndropped++] = j; }

static void test_pool_runs_jobs(void) {
  uv_mutex_init(&jobs_mu);
  fra_pool *pool = malloc(sizeof *pool);
  uv_sem_t exited;
  uv_sem_init(&exited, 0);
  pool_arg arg = {pool, &exited};
  CHECK(fra_pool_start(pool, 3, pool_main, &arg) == 0, "pool started");
  job jobs[100];
  for (int i = 0; i < 100; i++) {
    jobs[i].run = count_job;
    CHECK(fra_pool_push(pool, &jobs[i]) == 0, "push %d", i);
  }
  uint64_t end = ms_now() + WAIT_MS;
  for (;;) {
    uv_mutex_lock(&jobs_mu);
    int done = jobs_done;
    uv_mutex_unlock(&jobs_mu);
    if (done == 100 || ms_now() > end) break;
    uv_sleep(1);
  }
  CHECK(jobs_done == 100, "every job ran (%d)", jobs_done);
  ndropped = 0;
  fra_pool_stop(pool, drop_job, NULL);
  CHECK(ndropped == 0, "nothing left to hand back");
  CHECK(fra_pool_push(pool, &jobs[0]) == UV_ECANCELED, "no push after stop");
  fra_pool_release(pool, WAIT_MS);
  for (int i = 0; i < 3; i++) uv_sem_wait(&exited);
  uv_sem_destroy(&exited);
  uv_mutex_destroy(&jobs_mu);
}

/* A thread stuck in the app never blocks the owner; the jobs it left queued go back to the
 * owner; the thread frees the pool when it finally leaves (a leak otherwise, under ASan). */
static void test_pool_stop_with_a_stuck_thread(void) {
  fra_pool *pool = malloc(sizeof *pool);
  uv_sem_t exited, started, release;
  uv_sem_init(&exited, 0);
  uv_sem_init(&started, 0);
  uv_sem_init(&release, 0);
  pool_arg arg = {pool, &exited};
  CHECK(fra_pool_start(pool, 1, pool_main, &arg) == 0, "pool started");
  job stuck = {stuck_job, &started, &release}, queued[3];
  fra_pool_push(pool, &stuck);
  uv_sem_wait(&started);
  for (int i = 0; i < 3; i++) {
    queued[i].run = count_job;
    fra_pool_push(pool, &queued[i]);
  }
  ndropped = 0;
  fra_pool_stop(pool, drop_job, NULL);
  CHECK(ndropped == 3 && dropped[0] == &queued[0] && dropped[1] == &queued[1] && dropped[2] == &queued[2],
        "the three queued jobs handed back in order (%d)", ndropped);
  fra_pool_release(pool, 10); /* returns although the thread is stuck */
  uv_sem_post(&release);      /* the app returns; the thread leaves and frees the pool */
  uv_sem_wait(&exited);
  uv_sem_destroy(&exited);
  uv_sem_destroy(&started);
  uv_sem_destroy(&release);
}

/* ---- files (core/fileout.c) ---- */

/* A temporary file of n bytes, byte i = 'A' + i % 26; its descriptor, the file unlinked. */
static int temp_file(size_t n) {
  char path[] = "/tmp/fra-test-file-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
  unlink(path);
  char *data = malloc(n);
  for (size_t i = 0; i < n; i++) data[i] = (char)('A' + i % 26);
  CHECK(write(fd, data, n) == (ssize_t)n, "temp file written");
  free(data);
  return fd;
}

static int open_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 4096; fd++)
    if (fcntl(fd, F_GETFD) >= 0) n++;
  return n;
}

typedef struct {
  client *cl;
  char *all;
  size_t len, want;
} sink;

/* Reads into s->all until want bytes arrived (or the end). */
static int read_all(void *arg) {
  sink *k = arg;
  for (;;) {
    ssize_t n = recv(k->cl->fd, k->all + k->len, k->want - k->len, 0);
    if (n > 0) {
      k->len += (size_t)n;
      if (k->len == k->want) return 1;
      continue;
    }
    if (n == 0 || errno != EAGAIN) k->cl->eof = 1;
    return k->cl->eof;
  }
}

/* Bytes queued before a file go before it, the `after` bytes follow it, and bytes written
 * while it goes out are held until then; the file takes several waits for writability. */
static void test_sendfile_in_order_with_the_write_queue(void) {
  server_up(config());
  B.mode = DEFER;
  B.big = 16 << 20; /* head + 16 MiB of 'b' at dispatch: more than the kernel takes at once */
  size_t fsize = 3 << 20, off = 7, count = fsize - 100;
  int fd = temp_file(fsize);
  client *cl = connect_client(16384);
  csends(cl, GET("/file"));
  CHECK(await_count(&B.requests, 1), "dispatched");
  CHECK(B.queued_at_dispatch > 0, "output waits in the write queue");
  fra_conn *c = B.deferred[0];
  uint64_t before = fra_sendfile_bytes();
  files_done = 0;
  int rc = fra_conn_sendfile(c, fd, off, count, "END", 3);
  CHECK(rc == 0, "the file waits for the queue (rc %d)", rc);
  CHECK(fra_conn_queued(c) >= count, "its bytes count as output not yet taken");
  uv_buf_t tail = fra_buf("TAIL", 4);
  CHECK(fra_conn_write(c, &tail, 1) == 0, "a write during the file is held");
  char head[128];
  int hl = snprintf(head, sizeof head, "HTTP/1.1 200 X\r\nContent-Length: %zu\r\n\r\n", B.big);
  sink k = {cl, NULL, 0, (size_t)hl + B.big + count + 7};
  k.all = malloc(k.want);
  CHECK(pump_until(read_all, &k) && k.len == k.want, "everything arrived (%zu of %zu)", k.len, k.want);
  CHECK(memcmp(k.all, head, (size_t)hl) == 0, "the head first");
  size_t bad = 0;
  for (size_t i = 0; i < B.big; i++) bad += k.all[hl + i] != 'b';
  for (size_t i = 0; i < count; i++) bad += k.all[hl + B.big + i] != (char)('A' + (off + i) % 26);
  CHECK(bad == 0, "queued bytes, then the file's range (%zu bytes wrong)", bad);
  CHECK(memcmp(k.all + k.want - 7, "ENDTAIL", 7) == 0, "then the after bytes, then the held write");
  CHECK(await_count(&files_done, 1) && files_done == 1, "on_file_done once");
  CHECK(files_status == 0, "status 0");
  CHECK(fra_sendfile_bytes() - before == count, "the file went by sendfile");
  CHECK(fra_conn_sendfile(c, temp_file(10), 0, 10, "", 0) == 1, "a small file with nothing queued: at once");
  free(k.all);
  client_close(cl);
  server_down();
}

/* A client that leaves mid-file: the connection closes with the file's descriptor and the
 * socket's dup; on_disconnect says so (not on_file_done). */
static void test_sendfile_client_leaves(void) {
  server_up(config());
  B.mode = DEFER;
  int fds0 = open_fds();
  int fd = temp_file(8 << 20);
  client *cl = connect_client(4096);
  csends(cl, GET("/file"));
  CHECK(await_count(&B.requests, 1), "dispatched");
  files_done = 0;
  CHECK(fra_conn_sendfile(B.deferred[0], fd, 0, 8 << 20, "", 0) == 0, "waits for the client");
  pass(1);
  client_close(cl);
  CHECK(await_count(&B.closes, 1), "closed");
  pump(5);
  CHECK(files_done == 0, "no on_file_done");
  CHECK(open_fds() == fds0, "no descriptor left (%d, was %d)", open_fds(), fds0);
  server_down();
}

/* The write timeout covers a file the client stopped taking. */
static void test_sendfile_write_timeout(void) {
  fra_config cfg = config();
  cfg.timeout_write_ms = 50;
  server_up(cfg);
  B.mode = DEFER;
  client *cl = connect_client(4096);
  csends(cl, GET("/file"));
  CHECK(await_count(&B.requests, 1), "dispatched");
  CHECK(fra_conn_sendfile(B.deferred[0], temp_file(16 << 20), 0, 16 << 20, "", 0) == 0, "stalls");
  CHECK(await_count(&B.disconnects, 1), "the client that reads nothing is dropped");
  CHECK(await_count(&B.closes, 1), "closed");
  client_close(cl);
  server_down();
}

/* ---- the request body on its way to the bridge ---- */

/* The body bytes of the read that completes the head are left in the read buffer at dispatch
 * (for the bridge to copy once); a bridge that does not take them finds them queued after. */
static void test_head_read_body_left_in_place_at_dispatch(void) {
  server_up(config());
  B.mode = DEFER;
  client *cl = connect_client(0);
  csends(cl, "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789");
  CHECK(await_count(&B.requests, 1), "dispatched");
  fra_req *r = B.deferred[0]->parser.req;
  CHECK(r->pre_len == 0 && r->body_len - r->body_off == 10 && memcmp(r->body + r->body_off, "0123456789", 10) == 0,
        "not taken at dispatch: queued in the request (%zu queued, %zu left)", r->body_len - r->body_off, r->pre_len);
  CHECK(fra_req_body_pending(r) == 10, "pending counts it");
  respond(B.deferred[0], 200, "ok");
  B.ndeferred = 0;
  CHECK(await_text(cl, "HTTP/1.1 200", 1), "answered");
  client_close(cl);
  server_down();
}

static fra_req *seen_req;
static size_t seen_pre;
static int seen_in_rbuf;
static void h_request_peek(fra_conn *c) {
  fra_req *r = c->parser.req;
  seen_req = r;
  seen_pre = r->pre_len;
  seen_in_rbuf = r->pre_at >= c->srv->rbuf && r->pre_at + r->pre_len <= c->srv->rbuf + c->srv->rbuf_size &&
                 memcmp(r->pre_at, "abcdef", 6) == 0;
  h_request(c);
}

static void test_head_read_body_is_in_the_read_buffer_during_dispatch(void) {
  static const fra_hooks peek = {h_request_peek, h_body, h_disconnect, h_drain, h_close, h_wakeup, h_drained};
  hooks = &peek;
  server_up(config());
  hooks = &HOOKS;
  B.mode = DEFER;
  seen_req = NULL;
  client *cl = connect_client(0);
  csends(cl, "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabcdef");
  CHECK(await_count(&B.requests, 1), "dispatched");
  CHECK(seen_req && seen_pre == 6 && seen_in_rbuf, "at dispatch the body is in the read buffer, not copied (%zu)",
        seen_pre);
  respond(B.deferred[0], 200, "ok");
  B.ndeferred = 0;
  CHECK(await_text(cl, "HTTP/1.1 200", 1), "answered");
  client_close(cl);
  server_down();
}

/* After dispatch every body byte is offered to the bridge; what it holds counts for
 * backpressure: reading stops at FRA_BODY_HIGH and resumes when the bridge lets go. */
static void test_body_offered_to_the_bridge_and_held_back(void) {
  hooks = &HOOKS_SINK;
  server_up(config());
  hooks = &HOOKS;
  B.mode = DEFER;
  sunk = 0;
  client *cl = connect_client(0);
  size_t total = 8u << 20;
  char head[128];
  snprintf(head, sizeof head, "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", total);
  csends(cl, head);
  CHECK(await_count(&B.requests, 1), "dispatched");
  fra_conn *c = B.deferred[0];
  char *block = calloc(1, 1 << 16);
  size_t sent = 0;
  for (int idle = 0; sent < total && idle < 200;) { /* until the server stops taking bytes */
    ssize_t n = send(cl->fd, block, (total - sent) < (1u << 16) ? total - sent : (1u << 16), MSG_NOSIGNAL);
    if (n > 0) {
      sent += (size_t)n;
      idle = 0;
    } else {
      idle++;
    }
    pass(1);
  }
  fra_req *r = c->parser.req;
  CHECK(c->flags & FRA_C_BODY_FULL, "reading stopped while the bridge holds %zu bytes", sunk);
  CHECK(sunk >= FRA_BODY_HIGH && sunk < sent, "the bridge took %zu of %zu sent", sunk, sent);
  CHECK(r->body_len == r->body_off, "nothing queued in the request: all went to the bridge");
  r->body_held = 0; /* the app consumed it */
  fra_conn_body_consumed(c);
  CHECK(!(c->flags & FRA_C_BODY_FULL), "reading resumes once the bridge lets go");
  free(block);
  respond(c, 200, "ok");
  B.ndeferred = 0;
  client_close(cl);
  server_down();
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  test_dispatch_and_keep_alive();
  test_pipelining_in_order();
  test_keep_alive_timeout_closes_idle();
  test_header_timeout_408();
  test_early_response_drops_the_rest_and_keeps_the_connection();
  test_early_response_of_a_retained_request();
  test_early_response_that_must_close();
  test_dropped_body_is_still_parsed();
  test_drain_answers_the_next_request_with_close();
  test_body_timeout_408();
  test_body_timeout_after_the_response_began();
  test_write_timeout_closes_a_stalled_reader();
  test_write_timeout_spares_a_slow_reader();
  test_loop_touched_by_a_queued_write();
  test_sendfile_in_order_with_the_write_queue();
  test_sendfile_client_leaves();
  test_sendfile_write_timeout();
  test_keepalive_pings_a_silent_response();
  test_write_timeout_of_one_response();
  test_shared_buffer_is_queued_by_reference();
  test_head_read_body_left_in_place_at_dispatch();
  test_head_read_body_is_in_the_read_buffer_during_dispatch();
  test_body_offered_to_the_bridge_and_held_back();
  test_accept_alloc_failure_keeps_accepting();
  test_fault_plan_parsing();
  test_pool_runs_jobs();
  test_pool_stop_with_a_stuck_thread();
  printf("core: %d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
