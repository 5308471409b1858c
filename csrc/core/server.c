/* server.c — the server: its libuv loop, listeners, the non-blocking loop pass driven from the
 * asyncio loop, graceful shutdown, the ranges of its settings.  Owns the loop, the listeners,
 * the spare handle for refused connections, the shared read buffer and the request free list
 * (accesslog.c owns the access log).  Runs on the loop thread; no function here
 * needs the GIL itself (the bridge calls in with it held), except fra_server_wakeup, which is
 * thread-safe. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fra/core.h"

#define RBUF_SIZE (64 * 1024)

/* Lengths are printed with "%.*s" (an int) and handed to Python as Py_ssize_t: a request line
 * or header section must fit in an int.  The body limit is a byte count (uint64_t). */
const fra_limit_range fra_limit_ranges[] = {
    {"limit_request_line", 1, INT32_MAX},
    {"limit_header_size", 1, INT32_MAX},
    {"limit_header_count", 1, INT32_MAX},
    {"limit_body_size", 0, UINT64_MAX},
    {"limit_concurrency", 0, INT32_MAX},
    {"threads", 1, 4096},
    {NULL, 0, 0},
};

static void wakeup_cb(uv_async_t *a) {
  fra_server *s = a->data;
  if (s->hooks.on_wakeup) s->hooks.on_wakeup(s);
}

/* Undoes what fra_server_init did before failing with rc: the handles it opened are closed,
 * the loop (its epoll fd) too, so a failed init leaves nothing behind. */
static int init_failed(fra_server *s, int rc, int wakeup_open) {
  if (wakeup_open) uv_close((uv_handle_t *)&s->wakeup, NULL);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  free(s->rbuf);
  s->rbuf = NULL;
  return rc;
}

int fra_server_init(fra_server *s, const fra_config *cfg, const fra_hooks *hooks, void *data) {
  memset(s, 0, sizeof *s);
  int rc = uv_loop_init(&s->loop);
  if (rc) return rc;
  s->loop.data = s;
  s->cfg = *cfg;
  s->hooks = *hooks;
  s->data = data;
  s->rbuf_size = RBUF_SIZE;
  s->rbuf = fra_fault("server_init") ? NULL : malloc(RBUF_SIZE);
  if (!s->rbuf) return init_failed(s, UV_ENOMEM, 0);
  if ((rc = uv_async_init(&s->loop, &s->wakeup, wakeup_cb))) return init_failed(s, rc, 0);
  s->wakeup.data = s;
  fra__loop_touched(s);
  if ((rc = fra__access_log_init(s))) return init_failed(s, rc, 1);
  return 0;
}

static int add_listener(fra_server *s, uv_stream_t **out, int tcp) {
  if (s->nlisteners >= FRA_LISTEN_MAX) return UV_EMFILE;
  int i = s->nlisteners;
  s->listener_is_tcp[i] = tcp;
  int rc = tcp ? uv_tcp_init(&s->loop, &s->listeners[i].tcp) : uv_pipe_init(&s->loop, &s->listeners[i].pipe, 0);
  if (rc) return rc;
  s->listeners[i].handle.data = s;
  s->nlisteners++;
  *out = &s->listeners[i].stream;
  return 0;
}

/* A listener that failed to set up is closed right away; its slot is not reused. */
static int listener_failed(fra_server *s, uv_stream_t *l, int rc) {
  uv_close((uv_handle_t *)l, NULL);
  return rc;
}

int fra_server_listen_tcp(fra_server *s, const char *host, int port, int backlog) {
  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) return UV_EAI_NONAME;
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    if (ss.ss_family == AF_INET) ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
  }
  uv_stream_t *l;
  int rc = add_listener(s, &l, 1);
  if (rc) return rc;
  if ((rc = uv_tcp_bind((uv_tcp_t *)l, (struct sockaddr *)&ss, 0))) return listener_failed(s, l, rc);
  if ((rc = uv_listen(l, backlog, fra__conn_accept))) return listener_failed(s, l, rc);
  fra__loop_touched(s);
  return 0;
}

int fra_server_listen_unix(fra_server *s, const char *path, int backlog) {
  struct stat st;
  /* A socket file left by a previous run would make bind fail; anything else is kept. */
  if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
  uv_stream_t *l;
  int rc = add_listener(s, &l, 0);
  if (rc) return rc;
  if ((rc = uv_pipe_bind((uv_pipe_t *)l, path))) return listener_failed(s, l, rc);
  if ((rc = uv_listen(l, backlog, fra__conn_accept))) return listener_failed(s, l, rc);
  fra__loop_touched(s);
  return 0;
}

int fra_server_listen_fd(fra_server *s, int fd, int backlog) {
  int domain = 0;
  socklen_t len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return -errno;
  int nfd = dup(fd);
  if (nfd < 0) return -errno;
  uv_stream_t *l;
  int tcp = domain != AF_UNIX;
  int rc = add_listener(s, &l, tcp);
  if (rc) { close(nfd); return rc; }
  rc = tcp ? uv_tcp_open((uv_tcp_t *)l, nfd) : uv_pipe_open((uv_pipe_t *)l, nfd);
  if (rc) { close(nfd); return listener_failed(s, l, rc); }
  if ((rc = uv_listen(l, backlog, fra__conn_accept))) return listener_failed(s, l, rc);
  fra__loop_touched(s);
  return 0;
}

int fra_server_sockname(fra_server *s, int i, char *host, size_t hostlen, int *port) {
  if (i < 0 || i >= s->nlisteners) return UV_EINVAL;
  if (s->listener_is_tcp[i]) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int rc = uv_tcp_getsockname(&s->listeners[i].tcp, (struct sockaddr *)&ss, &len);
    if (rc) return rc;
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, host, hostlen);
      *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&ss, host, hostlen);
      *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return 0;
  }
  *port = -1;
  return uv_pipe_getsockname(&s->listeners[i].pipe, host, &hostlen);
}

/* libuv registers watchers started during a pass (a new connection's read, a write that could
 * not finish) with epoll only at its next poll; until then the backend fd stays quiet, so a
 * pass that left any unregistered must be followed by another.  Our code notes each watcher it
 * starts or changes (fra__loop_touched); the flag is cleared before each uv_run, whose poll
 * registers them.  Closing handles, pending callbacks and due timers make libuv's own
 * timeout 0 (recent libuv also counts its unregistered watchers there; older ones do not). */
static int loop_dirty(fra_server *s) {
  return s->loop_touched || uv_backend_timeout(&s->loop) == 0;
}

static void run_once(fra_server *s) {
  s->loop_touched = 0;
  uv_run(&s->loop, UV_RUN_NOWAIT);
}

int fra_server_run_nowait(fra_server *s) {
  s->in_run = 1;
  run_once(s);
  for (int i = 0; i < 4; i++) {
    if (s->pending) fra__conn_process_pending(s);
    if (!loop_dirty(s)) break;
    run_once(s);
  }
  s->in_run = 0;
  return s->pending != NULL || loop_dirty(s);
}

int fra_server_timeout(fra_server *s) {
  if (s->pending || loop_dirty(s)) return 0;
  return uv_backend_timeout(&s->loop);
}

static void listeners_close(fra_server *s) {
  for (int i = 0; i < s->nlisteners; i++)
    if (!uv_is_closing(&s->listeners[i].handle)) uv_close(&s->listeners[i].handle, NULL);
}

uint64_t fra_server_drain_idle_ms(const fra_server *s) {
  uint64_t ka = s->cfg.timeout_keep_alive_ms;
  return ka && ka < FRA_DRAIN_IDLE_MS ? ka : FRA_DRAIN_IDLE_MS;
}

void fra_server_shutdown(fra_server *s) {
  if (s->shutting_down) return;
  s->shutting_down = 1;
  listeners_close(s);
  /* No connection is closed here: an idle one may have its client's next request already on
   * the way, and closing it would lose that request.  Each is answered with Connection: close
   * instead, and a connection that stays idle is closed after the drain period. */
  for (fra_conn *c = s->conns; c; c = c->next) fra__conn_drain(c);
  if (s->nconns == 0 && s->hooks.on_drained) s->hooks.on_drained(s);
}

void fra_server_close_all(fra_server *s) {
  s->shutting_down = 1;
  listeners_close(s);
  fra_conn *c = s->conns, *next;
  for (; c; c = next) {
    next = c->next;
    fra__conn_close(c);
  }
}

void fra_server_destroy(fra_server *s) {
  if (s->closed) return;
  s->closed = 1;
  fra_server_close_all(s);
  fra__access_log_close(s);
  if (!uv_is_closing((uv_handle_t *)&s->wakeup)) uv_close((uv_handle_t *)&s->wakeup, NULL);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  fra__access_log_free(s);
  free(s->rbuf);
  while (s->free_reqs) {
    fra_req *r = s->free_reqs;
    s->free_reqs = r->next_free;
    fra_req_free(r);
  }
}

void fra_server_wakeup(fra_server *s) { uv_async_send(&s->wakeup); }

void fra_server_release_req(fra_server *s, fra_req *r) {
  /* Large buffers are not kept: a free list of idle requests must stay small. */
  if (s->closed || s->nfree_reqs >= 64 || r->body_cap > 65536 || r->cap > 16384) {
    fra_req_free(r);
    return;
  }
  fra_req_reset(r);
  r->next_free = s->free_reqs;
  s->free_reqs = r;
  s->nfree_reqs++;
}
