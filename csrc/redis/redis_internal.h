/* redis_internal.h — what the files of csrc/redis/ share: the RedisConnection object, the two
 * loop adapters' interface (uv.c, aio.c), command formatting (args.c) and reply conversion
 * (reply.c).  Functions that need the GIL say so. */
#ifndef FRA_REDIS_INTERNAL_H
#define FRA_REDIS_INTERNAL_H

#include "fra/redis.h"
#include <hiredis.h>
#include <async.h>
#include <sds.h>
#ifdef FRA_REDIS_TLS
#include <hiredis_ssl.h>
#endif

/* Connection states: a RedisConnection connects once; DEAD is final (closed, lost, failed). */
enum { FRA_RS_NEW, FRA_RS_CONNECTING, FRA_RS_CONNECTED, FRA_RS_DEAD };
/* Loop adapters */
enum { FRA_RA_NONE, FRA_RA_UV, FRA_RA_AIO };
/* What a formatted command is, for routing its replies (hiredis treats these by name). */
enum {
  FRA_RK_PLAIN,
  FRA_RK_SUBSCRIBE,     /* SUBSCRIBE with channels */
  FRA_RK_PSUBSCRIBE,    /* PSUBSCRIBE with patterns */
  FRA_RK_UNSUBSCRIBE,   /* UNSUBSCRIBE, PUNSUBSCRIBE */
  FRA_RK_UNSUPPORTED,   /* MONITOR, SSUBSCRIBE, SUNSUBSCRIBE: hiredis cannot route them */
};

/* One awaited command, or one execute_many group: hiredis' privdata for on_reply.  Replies
 * come in order, so a group's k-th callback is its k-th command. */
typedef struct fra_rcmd {
  PyObject *fut;               /* strong; NULL once dropped (timed out, failed) */
  PyObject *results;           /* execute_many: the result list; NULL for one command */
  Py_ssize_t n, done;          /* execute_many: its commands and the replies come so far */
  uint64_t start, due;         /* sent, deadline: fra__redis_now() milliseconds; due 0 = none */
} fra_rcmd;

/* A SUBSCRIBE/PSUBSCRIBE whose future waits for its first confirmation (each of its channels
 * gets one; the record goes when the last came). */
typedef struct fra_rsub {
  struct fra_rsub *next;
  PyObject *fut;               /* strong; NULL once resolved or dropped */
  Py_ssize_t left;             /* confirmations still to come */
  uint64_t start, due;
  uint8_t pattern;             /* PSUBSCRIBE */
} fra_rsub;

typedef struct fra_redis_uv fra_redis_uv;

typedef struct RedisConnObject {
  PyObject_HEAD
  fra_state *st;
  redisAsyncContext *ac;       /* hiredis' context while it exists (it frees it itself) */
  PyObject *self_ref;          /* ourselves while ac exists: an open connection stays alive
                                * as a socket registered with a loop does */
  PyObject *loop, *create_future;
  PyObject *error_factory, *on_message, *on_push, *on_lost, *tls;
  PyObject *host, *path;       /* str or NULL */
  PyObject *encoding, *errors; /* decode: str or NULL; encoding_errors: str */
  PyObject *connect_fut;
  /* the uv adapter (uv.c) */
  ServerObject *srv;           /* strong while linked in srv->redis_conns */
  fra_redis_uv *uv;
  struct RedisConnObject *srv_next, **srv_pprev;
  /* the asyncio adapter (aio.c) */
  PyObject *fd_obj, *read_cb, *write_cb, *timer_cb, *timer_handle;
  uint8_t aio_reading, aio_writing;
  fra_rsub *subs, *subs_tail;
  char *buf;                   /* commands formatted here before hiredis copies them */
  size_t buf_cap;
  const char *enc, *errs;      /* UTF-8 of encoding / errors (owned by those objects) */
  uint64_t writes;             /* writes hiredis made of its output buffer */
  uint64_t connect_due, timer_due; /* fra__redis_now() ms; 0 = none / not armed */
  Py_ssize_t pending;
  double connect_timeout;      /* seconds; 0 = none */
  int port;
  uint8_t state, adapter, enc_utf8, errs_strict, user_closed, server_gone, in_io;
} RedisConnObject;

/** Milliseconds on a monotonic clock (libuv's uv_hrtime), for deadlines.  No GIL needed. */
static inline uint64_t fra__redis_now(void) { return uv_hrtime() / 1000000u; }

/* ---- conn.c: what the adapters call (with the GIL) ---- */
/** The socket is readable and/or writable (or failed: both): hands it to hiredis, then
 * finishes a close() asked for inside one of hiredis' callbacks. */
void fra__redis_io(RedisConnObject *rc, int readable, int writable);
/** The connection's one timer fired: connect timeout, commands past their deadline. */
void fra__redis_fire(RedisConnObject *rc);

/* ---- uv.c: hiredis on our server's libuv loop (no Python API; its callbacks call the two
 * functions above, with the GIL held since uv_run is entered from Python) ---- */
/** A poll + timer pair on srv's loop for rc; NULL when out of memory or libuv refused. */
fra_redis_uv *fra__redis_uv_open(fra_server *srv, RedisConnObject *rc);
/** Hooks hiredis' event callbacks to u and watches ac's socket.  0 or a negative UV error. */
int fra__redis_uv_attach(fra_redis_uv *u, redisAsyncContext *ac);
/** (Re)starts the timer to fire in ms milliseconds. */
void fra__redis_uv_timer(fra_redis_uv *u, uint64_t ms);
/** Stops watching the socket (hiredis is about to close it); the timer stays. */
void fra__redis_uv_unwatch(fra_redis_uv *u);
/** Closes both handles; u is freed by libuv's close callbacks, and calls nobody after this. */
void fra__redis_uv_close(fra_redis_uv *u);

/* ---- aio.c: hiredis on an asyncio loop through add_reader/add_writer/call_later (GIL) ---- */
/** Hooks hiredis' event callbacks to rc's asyncio loop.  0, or -1 with an exception set. */
int fra__redis_aio_attach(RedisConnObject *rc, redisAsyncContext *ac);
/** (Re)arms the loop timer for ms milliseconds.  0, or -1 with an exception set. */
int fra__redis_aio_timer(RedisConnObject *rc, uint64_t ms);
/** Cancels the loop timer and stops watching the socket.  Never fails. */
void fra__redis_aio_detach(RedisConnObject *rc);
extern PyMethodDef fra__redis_aio_methods[];

/* ---- args.c (GIL) ---- */
/** Appends args (a tuple or list of bytes, str, int, float or buffers) as one RESP command at
 * rc->buf + *len, NUL-terminated for hiredis' scan of it, and advances *len; *kind says what
 * the command is (FRA_RK_*).  0, or -1 with TypeError/ValueError/UnicodeError/MemoryError
 * set (nothing appended). */
int fra__redis_format(RedisConnObject *rc, PyObject *args, size_t *len, int *kind);

/* ---- reply.c (GIL) ---- */
/** A hiredis reply as a new Python object.  An error reply becomes error_factory(text), with
 * *is_error set when it is the reply itself (nested errors stay exception objects in place).
 * NULL with an exception set when conversion failed (a decode error, error_factory raising). */
PyObject *fra__redis_reply(RedisConnObject *rc, const redisReply *r, int *is_error);
/* ---- tls.c (GIL) ---- */
/** The RedisTLS type's spec: TLS settings (an OpenSSL context) shared by connections. */
extern PyType_Spec fra__redis_tls_spec;
/** rc's hiredis TLS context (a redisSSLContext), or NULL when it has none. */
void *fra__redis_tls_context(RedisConnObject *rc);

#endif
