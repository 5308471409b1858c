/* uv.c — the libuv adapter: hiredis rides our server's libuv loop through a uv_poll_t on its
 * socket and a uv_timer_t for the connection's deadlines.  Owns the fra_redis_uv struct (freed
 * in its handles' close callbacks).  No Python API here; the poll and timer callbacks call
 * conn.c, which needs the GIL: it is held, as uv_run is entered from Python (run_nowait). */
#include "redis_internal.h"

struct fra_redis_uv {
  uv_poll_t poll;
  uv_timer_t timer;
  fra_server *srv;
  RedisConnObject *rc;         /* borrowed; NULL once closing */
  int events;                  /* what the poll watches now */
  uint8_t poll_open, nclose;   /* poll initialised; handles still to close */
};

static void poll_cb(uv_poll_t *h, int status, int events);

/* libuv starts watching a changed poll only at its next poll phase: the server's pass must be
 * repeated, or scheduled when we are called from outside one (conn.c does that). */
static void set_events(fra_redis_uv *u, int events) {
  if (!u->poll_open || events == u->events) return;
  u->events = events;
  if (events) uv_poll_start(&u->poll, events, poll_cb);
  else uv_poll_stop(&u->poll);
  fra__loop_touched(u->srv);
}

static void poll_cb(uv_poll_t *h, int status, int events) {
  fra_redis_uv *u = h->data;
  if (!u->rc) return;
  /* On a socket error hiredis must see it: both directions are handed over and its read or
   * write reports the error (what libuv could not tell us). */
  int ev = status < 0 ? u->events : events;
  fra__redis_io(u->rc, (ev & UV_READABLE) != 0, (ev & UV_WRITABLE) != 0);
}

static void timer_cb(uv_timer_t *t) {
  fra_redis_uv *u = t->data;
  if (u->rc) fra__redis_fire(u->rc);
}

/* hiredis' event hooks (idempotent: hiredis calls addWrite for every command appended) */
static void ev_add_read(void *p) { fra_redis_uv *u = p; set_events(u, u->events | UV_READABLE); }
static void ev_del_read(void *p) { fra_redis_uv *u = p; set_events(u, u->events & ~UV_READABLE); }
static void ev_add_write(void *p) { fra_redis_uv *u = p; set_events(u, u->events | UV_WRITABLE); }
static void ev_del_write(void *p) { fra_redis_uv *u = p; set_events(u, u->events & ~UV_WRITABLE); }
static void ev_cleanup(void *p) { fra__redis_uv_unwatch(p); }

fra_redis_uv *fra__redis_uv_open(fra_server *srv, RedisConnObject *rc) {
  fra_redis_uv *u = calloc(1, sizeof *u);
  if (!u) return NULL;
  u->srv = srv;
  u->rc = rc;
  if (uv_timer_init(&srv->loop, &u->timer) != 0) {
    free(u);
    return NULL;
  }
  u->timer.data = u;
  u->nclose = 1;
  return u;
}

int fra__redis_uv_attach(fra_redis_uv *u, redisAsyncContext *ac) {
  int rc = uv_poll_init_socket(&u->srv->loop, &u->poll, ac->c.fd);
  if (rc) return rc;
  u->poll.data = u;
  u->poll_open = 1;
  u->nclose++;
  ac->ev.data = u;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  ac->ev.scheduleTimer = NULL; /* deadlines are the connection's own (conn.c) */
  return 0;
}

void fra__redis_uv_timer(fra_redis_uv *u, uint64_t ms) {
  uv_timer_start(&u->timer, timer_cb, ms, 0);
}

static void closed_cb(uv_handle_t *h) {
  fra_redis_uv *u = h->data;
  if (--u->nclose == 0) free(u);
}

void fra__redis_uv_unwatch(fra_redis_uv *u) {
  /* Closing the poll stops it at once (epoll forgets the fd), so hiredis may close the
   * socket right after; the struct waits for the close callback. */
  if (!u->poll_open || uv_is_closing((uv_handle_t *)&u->poll)) return;
  u->events = 0;
  uv_close((uv_handle_t *)&u->poll, closed_cb);
  fra__loop_touched(u->srv);
}

void fra__redis_uv_close(fra_redis_uv *u) {
  u->rc = NULL;
  fra__redis_uv_unwatch(u);
  if (!uv_is_closing((uv_handle_t *)&u->timer)) uv_close((uv_handle_t *)&u->timer, closed_cb);
  fra__loop_touched(u->srv);
}
