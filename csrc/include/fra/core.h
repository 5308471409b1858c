/* fra/core.h — the server core on libuv: listeners, connections, the write path, timers,
 * the WSGI thread pool and the access log.  Never touches PyErr or Python objects; the Python
 * bridge plugs in through fra_hooks.  Everything runs on the loop thread unless marked. */
#ifndef FRA_CORE_H
#define FRA_CORE_H

#include <uv.h>
#include "fra/http.h"

typedef struct fra_server fra_server;
typedef struct fra_conn fra_conn;

/** Callbacks into the bridge.  All are called on the loop thread (GIL held). */
typedef struct fra_hooks {
  /** A request's headers are complete (body bytes of the same read are already queued). */
  void (*on_request)(fra_conn *c);
  /** New body bytes were queued, or the body completed, for the dispatched request. */
  void (*on_body)(fra_conn *c);
  /** The client went away (EOF or error) while a request was dispatched. */
  void (*on_disconnect)(fra_conn *c);
  /** The write queue fell below the low watermark after fra_conn_want_drain(). */
  void (*on_drain)(fra_conn *c);
  /** The connection is being freed; release what the bridge attached to it. */
  void (*on_close)(fra_conn *c);
  /** Cross-thread work was posted with fra_server_wakeup(). */
  void (*on_wakeup)(fra_server *s);
  /** The last connection closed after fra_server_shutdown(). */
  void (*on_drained)(fra_server *s);
} fra_hooks;

typedef struct fra_config {
  fra_limits limits;
  uint32_t limit_concurrency;  /* open connections, 0 = unlimited */
  uint64_t timeout_header_ms;
  uint64_t timeout_keep_alive_ms;
  int access_log_fd;           /* -1 = off */
  int log_fd;                  /* the server log (stderr) for the core's own warnings, -1 = none */
  char server_header[128];     /* "Server: name\r\n" or "" */
  size_t server_header_len;
} fra_config;

#define FRA_LISTEN_MAX 8

struct fra_server {
  uv_loop_t loop;
  fra_config cfg;
  fra_hooks hooks;
  void *data;                  /* the bridge's object */
  union { uv_tcp_t tcp; uv_pipe_t pipe; uv_stream_t stream; uv_handle_t handle; } listeners[FRA_LISTEN_MAX];
  int nlisteners;
  int listener_is_tcp[FRA_LISTEN_MAX];
  uv_async_t wakeup;           /* cross-thread posts */
  uv_timer_t log_timer;        /* hands the access log's batch to its writer a second after its first line */
  fra_conn *conns;             /* open connections (doubly linked through prev/next) */
  fra_conn *pending;           /* connections with pipelined bytes to parse (singly linked) */
  char *rbuf;                  /* shared read buffer: data parsed straight from it */
  size_t rbuf_size;
  struct fra_access_log *alog; /* accesslog.c: batches and their writer thread; NULL when off */
  uint64_t nconns, nrequests, nactive;
  int shutting_down, closed, in_run;
  fra_req *free_reqs;          /* free list of requests (linked through body pointer) */
  int nfree_reqs;
};

/** Connection flags. */
enum {
  FRA_C_READING = 1 << 0,      /* uv_read_start is in effect */
  FRA_C_PAUSED = 1 << 1,       /* parser paused after a complete message */
  FRA_C_BODY_FULL = 1 << 2,    /* reading stopped: the app has not consumed the body */
  FRA_C_PEND_FULL = 1 << 3,    /* reading stopped: too many pipelined bytes buffered */
  FRA_C_EOF = 1 << 4,          /* client sent EOF */
  FRA_C_CLOSING = 1 << 5,
  FRA_C_LINGER = 1 << 6,       /* response done, write side shut, discarding input */
  FRA_C_WANT_DRAIN = 1 << 7,
  FRA_C_OVERLIMIT = 1 << 8,    /* accepted beyond limit_concurrency: answer 503 */
  FRA_C_PENDING = 1 << 9,      /* on the server's pending list */
  FRA_C_TCP = 1 << 10,
  FRA_C_GONE = 1 << 11,        /* disconnect reported to the bridge */
};

struct fra_conn {
  union { uv_tcp_t tcp; uv_pipe_t pipe; uv_stream_t stream; uv_handle_t handle; } h;
  uv_timer_t timer;
  fra_server *srv;
  fra_conn *prev, *next;       /* in srv->conns */
  fra_conn *next_pending;
  fra_parser parser;
  void *active;                /* the bridge's exchange for the dispatched request (owned by it) */
  void *data;                  /* the bridge's per-connection data (client address object) */
  char *pend;                  /* unparsed bytes kept while the parser is paused */
  uint32_t pend_len, pend_cap;
  uint32_t flags;
  uint8_t nclose;              /* handles still to close */
  uint8_t timer_mode;          /* FRA_T_* */
  struct sockaddr_storage *peer; /* lazily filled */
};

/* ---- server ---- */

/** Initialises the server and its loop.  Returns 0 or a negative UV error. */
int fra_server_init(fra_server *s, const fra_config *cfg, const fra_hooks *hooks, void *data);
/** Listeners.  Return 0 or a negative UV error. */
int fra_server_listen_tcp(fra_server *s, const char *host, int port, int backlog);
int fra_server_listen_unix(fra_server *s, const char *path, int backlog);
int fra_server_listen_fd(fra_server *s, int fd, int backlog);
/** Writes listener i's address: TCP host/port or the Unix path.  Returns 0 or UV error. */
int fra_server_sockname(fra_server *s, int i, char *host, size_t hostlen, int *port);
/** One non-blocking pass of the loop plus the pending pipelined work.  Returns 1 if another
 * pass is due at once (new watchers or pending work), else 0. */
int fra_server_run_nowait(fra_server *s);
/** Milliseconds until the next timer, -1 for none, 0 for "run again now". */
int fra_server_timeout(fra_server *s);
/** Graceful drain: stop accepting, close idle connections.  on_drained fires when none is left
 * (possibly before this returns). */
void fra_server_shutdown(fra_server *s);
/** Closes every connection and listener now. */
void fra_server_close_all(fra_server *s);
/** Final teardown after close_all: runs the loop until handles are closed, frees memory. */
void fra_server_destroy(fra_server *s);
/** Thread-safe: makes on_wakeup run soon on the loop thread. */
void fra_server_wakeup(fra_server *s);

/* ---- connection, for the bridge ---- */

/** Queues bytes for the client; copies what the socket did not take at once.
 * Returns 0 or a negative UV error (the connection is then being closed). */
int fra_conn_write(fra_conn *c, const uv_buf_t *bufs, unsigned nbufs);
/** Bytes queued in libuv and not yet written. */
size_t fra_conn_queued(fra_conn *c);
/** Asks for on_drain once the write queue falls below the low watermark. */
void fra_conn_want_drain(fra_conn *c);
/** The app consumed body bytes: resume reading if it had stopped for backpressure. */
void fra_conn_body_consumed(fra_conn *c);
/** The response is complete.  keep_alive=0 closes after the queued bytes are written.
 * status/bytes go to the access log.  The bridge must drop its exchange before calling. */
void fra_conn_finish(fra_conn *c, int keep_alive, int status, uint64_t bytes);
/** Closes the connection now, dropping queued output (response failed midway). */
void fra_conn_abort(fra_conn *c);
/** The peer address as "ip" and port (TCP), or "" and -1 (Unix).  Returns 0 or UV error. */
int fra_conn_peer(fra_conn *c, char *ip, size_t iplen, int *port);
/** The local address the connection was accepted on. */
int fra_conn_local(fra_conn *c, char *ip, size_t iplen, int *port);

#define FRA_WRITE_HIGH (256 * 1024)
#define FRA_WRITE_LOW (64 * 1024)
#define FRA_BODY_HIGH (256 * 1024)
#define FRA_PEND_MAX (64 * 1024)

/** Releases a request the bridge owned (dispatched requests belong to the exchange once the
 * connection is gone). */
void fra_server_release_req(fra_server *s, fra_req *r);

/* ---- WSGI thread pool (core/pool.c) ---- */
typedef struct fra_pool {
  uv_mutex_t mu;
  uv_cond_t cv;
  void **jobs;
  size_t head, count, cap;
  uv_thread_t *threads;
  int nthreads, stop, idle;
  int refs;                    /* threads still running + the owner; the last one frees */
} fra_pool;

/** Starts n threads running main(arg).  Returns 0 or a negative UV error. */
int fra_pool_start(fra_pool *p, int n, void (*main)(void *), void *arg);
/** Queues a job (loop thread).  Returns 0 or UV_ENOMEM. */
int fra_pool_push(fra_pool *p, void *job);
/** Blocks until a job is queued (pool thread, without the GIL); NULL when stopping. */
void *fra_pool_take(fra_pool *p);
/** The owner lets go (pool allocated with malloc): threads are asked to stop, waited for up
 * to wait_ms (call without the GIL: they need it to leave), then detached; the pool is freed
 * by whichever of them, or the owner, is last. */
void fra_pool_stop(fra_pool *p, uint64_t wait_ms);
/** A pool thread leaving its loop (after fra_pool_take returned NULL) lets go of the pool. */
void fra_pool_thread_exit(fra_pool *p);

enum { FRA_T_NONE, FRA_T_HEADER, FRA_T_KEEPALIVE, FRA_T_LINGER };
#define FRA_LINGER_MS 2000

/* ---- internal to core/ ---- */
void fra__conn_accept(uv_stream_t *listener, int status);
void fra__conn_process_pending(fra_server *s);
void fra__conn_close(fra_conn *c);
/* accesslog.c */
int fra__access_log_init(fra_server *s);
void fra__access_log(fra_server *s, fra_conn *c, int status, uint64_t bytes);
void fra__access_log_close(fra_server *s);   /* hand off the batch, close the timer (before the loop's last run) */
void fra__access_log_free(fra_server *s);    /* after the loop is closed: waits up to 2 s for the writer */

#endif
