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
  /** A request's headers are complete.  Body bytes of the same read are in req->pre_at /
   * pre_len, still in the read buffer: the bridge takes them now (and clears pre_len), or the
   * core queues them in req->body when this returns. */
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
  /** (May be NULL.)  A file started with fra_conn_sendfile() that did not complete at once has ended:
   * status 0 = all its bytes (and the bytes after it) went to the kernel; a negative UV error
   * = the file could not be read to its announced end (the connection is closed after this
   * call).  A client that goes away mid-file is reported by on_disconnect instead. */
  void (*on_file_done)(fra_conn *c, int status);
  /** Body bytes of the dispatched request, straight from the read buffer (before on_body):
   * 1 if the bridge took them (copied; it then counts what it holds in req->body_held),
   * 0 to have them queued in req->body, -1 when out of memory.  Optional. */
  int (*on_body_data)(fra_conn *c, const char *at, size_t len);
} fra_hooks;

typedef struct fra_config {
  fra_limits limits;
  uint32_t limit_concurrency;  /* open connections, 0 = unlimited */
  uint64_t timeout_header_ms;  /* 0 = none, for this and the three below */
  uint64_t timeout_keep_alive_ms;
  uint64_t timeout_body_ms;    /* no body bytes for this long while they are awaited: 408, close */
  uint64_t timeout_write_ms;   /* queued output not taken by the client for this long: close */
  int access_log_fd;           /* -1 = off */
  int log_fd;                  /* the server log (stderr) for the core's own warnings, -1 = none */
  char server_header[128];     /* "Server: name\r\n" or "" */
  size_t server_header_len;
} fra_config;

#define FRA_LISTEN_MAX 8

/** The range of one numeric setting of the Server (a limit, the thread count): the one place
 * both the C API and the command line take it from (exported as _core.LIMITS). */
typedef struct fra_limit_range {
  const char *name;            /* the Server keyword argument, e.g. "limit_request_line" */
  uint64_t min, max;
} fra_limit_range;
/** Every such range, terminated by an entry whose name is NULL. */
extern const fra_limit_range fra_limit_ranges[];

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
  int loop_touched;            /* a watcher was started or changed since the last uv_run */
  union { uv_tcp_t tcp; uv_pipe_t pipe; uv_stream_t stream; uv_handle_t handle; } refuse;
  int refuse_busy;             /* `refuse` holds a connection being closed */
  unsigned refuse_waiting;     /* bit i: listener i has a connection waiting for `refuse` */
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
  FRA_C_RESPONDING = 1 << 12,  /* a final response to the dispatched request has begun */
  FRA_C_DISCARD = 1 << 13,     /* answered early: dropping the rest of the request body */
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
  size_t pend_len, pend_cap;
  uint32_t flags;
  uint8_t nclose;              /* handles still to close */
  uint8_t timer_mode;          /* FRA_T_*: the phase phase_due belongs to */
  /* Deadlines in loop milliseconds (uv_now).  The one timer is armed for the earliest; a
   * deadline that moves later is only noticed when the timer fires (no re-arming per read). */
  uint64_t phase_due;          /* header, keep-alive, drain or linger deadline; 0 = none */
  uint64_t timer_due;          /* when the timer is armed to fire; 0 = not armed */
  uint64_t body_seen;          /* body bytes last arrived (or the wait for them began) */
  uint64_t write_seen;         /* the client last took output (or output began to wait) */
  uint64_t sent_direct;        /* bytes ever written by uv_try_write */
  uint64_t queued_total;       /* bytes ever handed to uv_write */
  uint64_t taken_mark;         /* bytes the client had taken at the last check */
  struct sockaddr_storage *peer; /* lazily filled */
  struct fra_file_out *fout;   /* sendfile state, made on the first file (conn.c); else NULL */
  struct fra_conn_stream *xs;  /* a streamed response's keepalive and write timeout; NULL for
                                * every other response (freed when the response completes) */
};

/** What a long-lived streamed response (SSE) asks of its connection, kept apart so that an
 * ordinary connection pays one pointer for it. */
typedef struct fra_conn_stream {
  uint64_t ping_ms;            /* keepalive interval, 0 = none */
  uint64_t last_write;         /* loop ms of the last write (any bytes) */
  uint64_t timeout_write_ms;   /* this response's write timeout, 0 = the server's */
  size_t ping_len;
  char *ping;                  /* the keepalive bytes, already framed */
} fra_conn_stream;

/** A refcounted buffer that several connections queue without copying (a broadcast). */
typedef struct fra_shared {
  size_t refs, len;
  char data[];
} fra_shared;

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
/** Graceful drain: stop accepting; every connection's next response says Connection: close,
 * and a connection idle (no request under way) for fra_server_drain_idle_ms() is closed.
 * on_drained fires when none is left (possibly before this returns). */
void fra_server_shutdown(fra_server *s);
/** How long a connection may stay idle once the server drains: min(keep-alive timeout,
 * FRA_DRAIN_IDLE_MS). */
uint64_t fra_server_drain_idle_ms(const fra_server *s);
/** Closes every connection and listener now. */
void fra_server_close_all(fra_server *s);
/** Final teardown after close_all: runs the loop until handles are closed, frees memory. */
void fra_server_destroy(fra_server *s);
/** Thread-safe: makes on_wakeup run soon on the loop thread. */
void fra_server_wakeup(fra_server *s);

/** A uv_buf_t over len bytes: on Unix its length is a size_t, which uv_buf_init's unsigned int
 * parameter would cut above 4 GiB. */
static inline uv_buf_t fra_buf(const char *base, size_t len) {
  uv_buf_t b;
  b.base = (char *)base;
  b.len = len;
  return b;
}

/* ---- connection, for the bridge ---- */

/** Queues bytes for the client; copies what the socket did not take at once.  The first
 * bytes of a final response (not a 1xx) mark the response as begun (no 408 after that).
 * Returns 0 or a negative UV error (the connection is then being closed). */
int fra_conn_write(fra_conn *c, const uv_buf_t *bufs, unsigned nbufs);
/** Sends count bytes of the regular file fd, from offset, with sendfile(2): after every byte
 * written before this call and before any written after it (those are held meanwhile), then
 * the `after` bytes (at most 16: a chunk's CRLF, the last chunk).  No byte of the file passes
 * through user space.  The connection owns fd from this call, whatever it returns (closed
 * once sent or at close).  Returns 1 if everything went to the kernel before returning, 0 if
 * it goes on as the client takes output (then on_file_done reports the end), or a negative UV
 * error (UV_EBUSY: a file is already being sent; otherwise the connection is being closed).
 * The write timeout applies as to queued bytes. */
int fra_conn_sendfile(fra_conn *c, int fd, uint64_t offset, uint64_t count, const char *after, size_t after_len);
/** Bytes sent with sendfile(2) by this process (every server), for tests and stats. */
uint64_t fra_sendfile_bytes(void);
/** Asked when a response head is framed: 1 if the connection may stay open after it, 0 if
 * the head must say Connection: close.  0 while the server drains; 0 when the request body is
 * still arriving and cannot be dropped after the response (chunked, more than
 * FRA_DISCARD_MAX bytes left, or Expect: 100-continue with no 100 sent: continue_sent=0).
 * The answer stands for fra_conn_finish: a response that kept the connection has the rest of
 * its request body read and dropped (RFC 9112 9.6). */
int fra_conn_may_keep_alive(fra_conn *c, int continue_sent);
/** A shared buffer of len bytes (contents to be filled by the caller), one reference; NULL
 * when out of memory. */
fra_shared *fra_shared_new(size_t len);
/** Drops one reference; the last frees it. */
void fra_shared_release(fra_shared *b);
/** Queues the whole of b for the client as fra_conn_write does, but what the socket does not
 * take at once is not copied: the write keeps a reference to b.  Returns 0 or a negative UV
 * error (the connection is then being closed). */
int fra_conn_write_shared(fra_conn *c, fra_shared *b);
/** For the rest of the current response: whenever nothing has been written for ms
 * milliseconds (and nothing is queued), write data (framed by the caller; copied here).
 * Every write re-arms it; it stops when the response completes or the connection closes.
 * Returns 0 or UV_ENOMEM. */
int fra_conn_keepalive(fra_conn *c, uint64_t ms, const char *data, size_t len);
/** For the rest of the current response, the write timeout is ms (instead of the server's
 * --timeout-write): a client that takes nothing of queued output for that long is dropped
 * (on_disconnect, then closed).  Returns 0 or UV_ENOMEM. */
int fra_conn_write_timeout(fra_conn *c, uint64_t ms);

/** Output not yet handed to the kernel: bytes queued in libuv, bytes held behind a file, and
 * what is left of the file being sent. */
size_t fra_conn_queued(fra_conn *c);
/** Asks for on_drain once the write queue falls below the low watermark. */
void fra_conn_want_drain(fra_conn *c);
/** The app consumed body bytes: resume reading if it had stopped for backpressure. */
void fra_conn_body_consumed(fra_conn *c);
/** The response is complete.  keep_alive=0 closes after the queued bytes are written;
 * keep_alive=1 (as fra_conn_may_keep_alive allowed) serves the next request, after dropping
 * the rest of an unfinished body.  status/bytes go to the access log.  The bridge must drop
 * its exchange before calling. */
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
/** Most request body bytes still to come that are read and dropped after an early response
 * (a 404 on an upload) to keep the connection; more, and the response says Connection: close. */
#define FRA_DISCARD_MAX (1024 * 1024)
/** Longest a connection may stay idle once the server drains (shorter keep-alive wins). */
#define FRA_DRAIN_IDLE_MS 1000
/** Default --timeout-body and --timeout-write in seconds (nginx's client_body_timeout and
 * send_timeout), and the longest timeout accepted (a year; exported as _core.TIMEOUT_MAX). */
#define FRA_TIMEOUT_BODY_S 60.0
#define FRA_TIMEOUT_WRITE_S 60.0
#define FRA_TIMEOUT_MAX_S 31536000

/** Releases a request the bridge owned (dispatched requests belong to the exchange once the
 * connection is gone). */
void fra_server_release_req(fra_server *s, fra_req *r);

/* ---- WSGI thread pool (core/pool.c) ---- */
typedef struct fra_pool {
  uv_mutex_t mu;
  uv_cond_t cv;
  void **jobs;
  size_t head, count, cap;
  int nthreads, stop, idle;
  int refs;                    /* threads still running + the owner; the last one frees */
} fra_pool;

/** Starts n detached threads running main(arg) on a pool allocated with malloc (zeroed here).
 * Returns 0 or a negative UV error; on error the threads already started are running and the
 * owner still stops and releases the pool. */
int fra_pool_start(fra_pool *p, int n, void (*main)(void *), void *arg);
/** Queues a job (loop thread).  Returns 0, UV_ENOMEM, or UV_ECANCELED once stopped. */
int fra_pool_push(fra_pool *p, void *job);
/** Blocks until a job is queued (pool thread, without the GIL); NULL when stopping. */
void *fra_pool_take(fra_pool *p);
/** The owner stops the pool: no job is taken after this, and each job queued but never taken
 * is handed to drop(job, arg) on the calling thread (the owner, with what the job holds
 * released there: for WSGI, with the GIL), in queue order.  Idempotent. */
void fra_pool_stop(fra_pool *p, void (*drop)(void *job, void *arg), void *arg);
/** The owner lets go after fra_pool_stop: waits up to wait_ms for the threads to leave (call
 * without the GIL: they need it on the way out), then leaves the rest running; the pool is
 * freed by whichever of them, or the owner, is last. */
void fra_pool_release(fra_pool *p, uint64_t wait_ms);
/** A pool thread leaving its loop (after fra_pool_take returned NULL) lets go of the pool. */
void fra_pool_thread_exit(fra_pool *p);

/* ---- fault injection (core/fault.c) ----
 * Named points where a test can make an operation fail as if memory ran out.  Compiled in
 * only with -DFRA_FAULT_INJECTION (the C tests, and FRA_DEBUG / FRA_SANITIZE builds of the
 * extension); otherwise fra_fault() is the constant 0.  The plan is read from the environment
 * variable FRA_FAULTS the first time a point is reached, or set with fra_fault_set:
 *   FRA_FAULTS="accept_alloc:2"        the 2nd call at point accept_alloc fails
 *   FRA_FAULTS="accept_alloc:2-4,x:1"  calls 2 to 4 at accept_alloc fail, and the 1st at x
 * Points: accept_alloc (core/conn.c: the connection struct of an accepted socket),
 * server_init (core/server.c: the read buffer of a new server), exchange_alloc (py/exchange.c:
 * the exchange object of a dispatched request). */
#ifdef FRA_FAULT_INJECTION
/** 1 if this call at point `name` is to fail, else 0.  Thread-safe. */
int fra_fault(const char *name);
/** Replaces the plan (spec as FRA_FAULTS; NULL or "" = none) and resets the call counts.
 * Returns 0, or -1 if spec is malformed (the plan is then empty). */
int fra_fault_set(const char *spec);
#else
#define fra_fault(name) 0
#endif

enum { FRA_T_NONE, FRA_T_HEADER, FRA_T_KEEPALIVE, FRA_T_DRAIN, FRA_T_LINGER };
#define FRA_LINGER_MS 2000

/* ---- internal to core/ (and its tests) ---- */
void fra__conn_accept(uv_stream_t *listener, int status);
void fra__conn_process_pending(fra_server *s);
void fra__conn_close(fra_conn *c);
/** The server starts draining: an idle connection (no request under way) is closed once idle
 * for the drain period; its next request, if one comes, is answered with Connection: close. */
void fra__conn_drain(fra_conn *c);
/** Our code started or changed a libuv watcher: libuv registers it with epoll only at its next
 * poll, so the loop pass must be followed by another (see fra_server_run_nowait). */
static inline void fra__loop_touched(fra_server *s) { s->loop_touched = 1; }
/** Serves an already connected stream socket (a socketpair end in the fuzz drivers and unit
 * tests) as if it had been accepted.  Returns the connection or NULL (fd left open). */
fra_conn *fra__conn_open_fd(fra_server *s, int fd);
/** Hands bytes to the connection exactly as a read of them would (into the buffer its alloc
 * callback gives, then its read callback), for the fuzz drivers and unit tests.  Returns how
 * many were taken (a read is at most one buffer); 0 when the connection is not reading. */
size_t fra__conn_deliver(fra_conn *c, const char *data, size_t len);
/** conn.c, for fileout.c: shut the write side now (a linger close waited for a file); the
 * client is to take output from now (the write timeout starts unless output already waits). */
void fra__conn_shut_write(fra_conn *c);
void fra__conn_output_waits(fra_conn *c);
/* fileout.c: sendfile(2) in order with the write queue */
typedef struct fra_file_out fra_file_out;
int fra__fileout_active(const fra_conn *c);        /* a file is being sent */
size_t fra__fileout_pending(const fra_conn *c);    /* held bytes + what is left of the file */
/** Copies bytes written while a file is under way, to follow it.  0 or UV_ENOMEM. */
int fra__fileout_hold(fra_conn *c, const uv_buf_t *bufs, unsigned nbufs, size_t total);
void fra__fileout_shut_after(fra_conn *c);         /* shut the write side once the file is out */
void fra__fileout_queue_empty(fra_conn *c);        /* libuv's queue emptied: a waiting file starts */
int fra__fileout_close(fra_conn *c, uv_close_cb cb); /* closing: 1 if a handle closes with cb */
void fra__fileout_free(fra_conn *c);               /* after that handle's close callback */
/* accesslog.c */
int fra__access_log_init(fra_server *s);
void fra__access_log(fra_server *s, fra_conn *c, int status, uint64_t bytes);
void fra__access_log_close(fra_server *s);   /* hand off the batch, close the timer (before the loop's last run) */
void fra__access_log_free(fra_server *s);    /* after the loop is closed: waits up to 2 s for the writer */

#endif
