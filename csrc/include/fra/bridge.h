/* fra/bridge.h — the CPython bridge (csrc/py/): module state, the Server object, the exchange
 * (one request: ASGI task-like driver or WSGI job), scope/environ builders.  Every function
 * declared here needs the GIL. */
#ifndef FRA_BRIDGE_H
#define FRA_BRIDGE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include "fra/core.h"

typedef struct fra_state {
  PyTypeObject *ServerType, *ExchangeType, *ReadyType, *InputType, *CallType, *StreamGroupType;
  PyTypeObject *FileWrapperType;          /* wsgi.file_wrapper (wsgi.c) */
  PyObject *asgi_extensions;              /* scope["extensions"] template: pathsend, zerocopy */
  PyObject *scope_template;               /* every scope key, constants filled (request.c) */
  PyObject *enter_task, *leave_task;      /* asyncio.tasks._enter_task / _leave_task */
  PyObject *CancelledError, *InvalidStateError;
  PyObject *ClientDisconnected;           /* _core.ClientDisconnected(OSError): send after the
                                           * client has gone (ASGI spec 2.4) */
  PyObject *BytesIO;                      /* io.BytesIO */
  PyObject *none_ready;                   /* awaitable that completes at once with None */
  PyObject *asgi_info;                    /* {"version": "3.0", "spec_version": "2.4"} */
  PyObject *kw_context;                   /* ("context",) */
  PyObject *empty_bytes, *empty_tuple, *wsgi_version;
  PyObject *hdr_names[40];                /* common header names, lower-case bytes (request.c) */
  PyObject *env_keys[40];                 /* their environ keys: HTTP_HOST, CONTENT_TYPE, ... */
  PyObject *methods[64];                  /* method strings by llhttp id */
  /* interned strings */
  PyObject *str_HTTP_1_1, *str_HTTP_1_0, *s_1_1, *s_1_0;
  PyObject *s_type, *s_http, *s_asgi, *s_http_version, *s_method, *s_scheme, *s_path, *s_raw_path,
      *s_query_string, *s_root_path, *s_headers, *s_client, *s_server, *s_state, *s_status,
      *s_body, *s_more_body, *s_http_request, *s_http_disconnect, *s_http_response_start,
      *s_http_response_body, *s_asyncio_future_blocking, *s_add_done_callback, *s_result,
      *s_cancel, *s_throw, *s_close, *s_call_soon, *s_call_later, *s_create_future,
      *s_set_result, *s_set_exception, *s_done, *s_add_reader, *s_remove_reader;
  /* csrc/redis/ */
  PyTypeObject *RedisConnType, *RedisTLSType;
  /* csrc/stream/ */
  PyTypeObject *FileEventsType;
  PyObject *redis_loops;                  /* {asyncio loop: address of the Server started on it} */
  PyObject *redis_status_bytes[3], *redis_status_str[3]; /* OK, QUEUED, PONG */
  PyObject *s_add_writer, *s_remove_writer;
  PyObject *s_REQUEST_METHOD, *s_PATH_INFO, *s_QUERY_STRING, *s_RAW_URI, *s_SERVER_PROTOCOL,
      *s_REMOTE_ADDR, *s_REMOTE_PORT, *s_SERVER_NAME, *s_SERVER_PORT, *s_CONTENT_LENGTH,
      *s_wsgi_input;
  PyObject *s_http_response_zerocopy, *s_http_response_pathsend, *s_file, *s_offset, *s_count,
      *s_extensions, *s_tell, *s_read, *s_fileno;
} fra_state;

/* The exception being raised, taken: normalized, with its traceback (NULL if none). */
static inline PyObject *fra_err_take(void) {
#if PY_VERSION_HEX >= 0x030C0000
  return PyErr_GetRaisedException();
#else
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  PyErr_NormalizeException(&t, &v, &tb);
  if (v && tb) PyException_SetTraceback(v, tb);
  Py_XDECREF(t);
  Py_XDECREF(tb);
  return v;
#endif
}

/* Raises exc again (a reference taken by fra_err_take; consumed; NULL: nothing). */
static inline void fra_err_restore(PyObject *exc) {
#if PY_VERSION_HEX >= 0x030C0000
  PyErr_SetRaisedException(exc);
#else
  if (!exc) return;
  PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* Pool jobs (threads.c) are Python objects that start with this prefix. */
enum { FRA_JOB_EXCHANGE = 1, FRA_JOB_CALL = 2 };
typedef struct fra_job {
  PyObject_HEAD
  uint8_t job_kind;
} fra_job;

typedef struct ServerObject {
  PyObject_HEAD
  fra_server core;
  fra_state *st;
  PyObject *app, *loop, *on_error, *state, *root_path;
  PyObject *run_cb, *timer_cb, *kick_cb;  /* bound methods handed to the loop */
  PyObject *call_soon, *call_later, *create_future;
  PyObject *timer_handle;
  PyObject *base_ctx;                     /* context every request's context is copied from */
  uint64_t timer_due;                     /* uv time (ms) the armed timer fires at */
  PyObject *drained;                      /* future from shutdown() */
  PyObject *environ_base;                 /* constant WSGI environ keys */
  struct ExchangeObject *wsgi_ready;      /* exchanges with output from pool threads */
  PyObject *calls_ready;                  /* finished submit() calls (threads.c CallObject list) */
  fra_pool *pool;
  void *redis_conns;                      /* csrc/redis/: RedisConnections riding our libuv loop
                                           * (borrowed; each unlinks itself) */
  void *file_events;                      /* csrc/stream/: FileEvents on our libuv loop (borrowed;
                                           * each unlinks itself) */
  int threads, interface, native, kick_scheduled, started, attached, closed, core_ready, backend_fd;
} ServerObject;

enum { FRA_IF_ASGI = 0, FRA_IF_WSGI = 1 };

/* Pool thread -> loop thread requests (ExchangeObject.wflags) */
enum { FRA_W_FINISH = 1, FRA_W_CONTINUE = 2, FRA_W_READ = 4, FRA_W_ABORT = 8, FRA_W_FILE = 16 };
/* What a pool thread waits for (ExchangeObject.wait_for) */
enum { FRA_WAIT_NONE = 0, FRA_WAIT_BODY = 1, FRA_WAIT_DRAIN = 2, FRA_WAIT_FILE = 3 };

typedef struct ExchangeObject {
  PyObject_HEAD
  uint8_t job_kind;                       /* fra_job prefix: FRA_JOB_EXCHANGE */
  PyObject *weakreflist;
  ServerObject *srv;                      /* strong */
  fra_conn *conn;                         /* borrowed; NULL once the connection is gone */
  fra_req *req;                           /* the conn's until it closes, then ours */
  PyObject *coro, *ctx, *fut_waiter, *recv_waiter, *send_waiter, *cancel_msg, *scope;
  PyObject *wakeup_cb, *step_cb;
  PyObject *done_cbs;                     /* list of (fn, context) until the handler ends */
  PyObject *result;                       /* the handler's return value, or its exception while
                                           * the done callbacks it was ended with are pending */
  PyObject *name;                         /* set_name(); NULL: a name made from the address */
  PyObject *outq;                         /* WSGI: bytes waiting for the loop thread */
  PyObject *sink;                         /* body.c: the bytes object body bytes are copied into */
  size_t sink_len;                        /* how much of it is filled */
  PyObject *sinks_full;                   /* body.c: filled sinks not yet taken (a list), oldest first */
  PyObject *body_waiter;                  /* native body(): its future */
  PyObject *wsgi_app, *wsgi_ctx, *environ; /* native run_wsgi(): the app, its context, environ */
  PyObject *group;                        /* the StreamGroup this response is in (strong), or NULL */
  PyObject *next_coro;                    /* then(): driven in the handler's place once it returns */
  Py_ssize_t group_idx;                   /* its place in the group's member array */
  struct ExchangeObject *next_ready;
  uv_sem_t *sem;                          /* WSGI: the thread's semaphore while it waits */
  char *head;                             /* response head being built */
  size_t head_len, head_cap;
  uint64_t app_cl, body_sent, out_pending;
  int status, num_cancels;
  /* A file sent with sendfile (fra_conn_sendfile): WSGI hands it to the loop through these */
  int file_fd, file_status;
  uint64_t file_off, file_count;
  char file_after[16];
  uint8_t file_after_len, file_busy, file_last;
  uint8_t kind, started, head_sent, chunked, complete, task_done, gone, keep_alive, is_head,
      no_body, must_cancel, body_delivered, close_after, continue_sent, has_app_cl, own_req,
      has_date, has_server, waiting, wait_for, wflags, on_ready, finished, cancel_on_gone,
      task_cancelled, task_failed, gathering;
  char inline_head[320];
} ExchangeObject;

/* module.c */
extern PyModuleDef fra_module_def;
fra_state *fra_state_of_type(PyTypeObject *t);
PyObject *fra_raise_uv(int rc, const char *what);
void fra_log_error(ServerObject *so, const char *msg, PyObject *exc);
/** Copies the NULL-terminated method (getset) tables of parts into out, which has room for cap
 * entries with the terminator, for a type whose API several files define.  0, or -1 if out
 * is too small. */
int fra_join_methods(PyMethodDef *out, size_t cap, PyMethodDef *const parts[]);
int fra_join_getset(PyGetSetDef *out, size_t cap, PyGetSetDef *const parts[]);

/* server.c */
extern PyType_Spec fra_server_spec;
int fra_server_spec_prepare(void);          /* before the type is made from the spec; 0 or -1 */
int fra_server_add_limits(PyObject *m);     /* _core.LIMITS and _core.TIMEOUT_MAX; 0 or -1 */

/* loop.c */
extern PyMethodDef fra__loop_methods[];
int fra_loop_attach(ServerObject *so);      /* add_reader + the first pass; 0 or -1 */
void fra_loop_detach(ServerObject *so);     /* remove_reader, cancel the timer; never fails */
void fra_srv_after_call(ServerObject *so);  /* after core calls made outside a loop pass */

/* exchange.c (and its rooms: framing.c, task.c, asgi.c, native.c; ready.c) */
extern PyType_Spec fra_exchange_spec, fra_ready_spec;
int fra_exchange_spec_prepare(void);        /* before the type is made from the spec; 0 or -1 */
void fra_hook_request(fra_conn *c);
void fra_hook_body(fra_conn *c);
int fra_hook_body_data(fra_conn *c, const char *at, size_t len); /* body.c */
void fra_hook_disconnect(fra_conn *c);
void fra_hook_drain(fra_conn *c);
void fra_hook_close(fra_conn *c);
ExchangeObject *fra_exchange_new(ServerObject *so, fra_conn *c);
int fra_ex_head_begin(ExchangeObject *ex, int status, const char *line, size_t line_len);
int fra_ex_head_add(ExchangeObject *ex, const char *name, size_t nlen, const char *value, size_t vlen);
int fra_ex_body(ExchangeObject *ex, const char *data, size_t len, int more);
/** Frames count file bytes that the core sends next with fra_conn_sendfile: the head first if
 * not sent (Content-Length: count when last and the app gave none), a chunk header in chunked
 * framing; after (16 bytes) gets what follows the file: the chunk's CRLF, the last chunk when
 * last.  Returns 1 when the file bytes are to be sent, 0 when the response carries no body
 * (HEAD, 204, 304, count 0: what is due went out), -1 with an exception set. */
int fra_ex_file_frame(ExchangeObject *ex, uint64_t count, int last, char *after, size_t *after_len);
/** The core's on_file_done hook. */
void fra_hook_file_done(fra_conn *c, int status);
void fra_ex_finish(ExchangeObject *ex);
PyObject *fra_ready_new(fra_state *st, PyObject *value);
void fra_ex_cancel_all(ServerObject *so);

/* stream.c: keepalive pings, the write timeout and fan-out groups of streamed responses */
extern PyType_Spec fra_stream_group_spec;
extern PyMethodDef fra__stream_methods[];
void fra_group_leave(ExchangeObject *ex);          /* out of its group, if in one; never fails */

/* request.c */
int fra_request_init(fra_state *st);
PyObject *fra_build_scope(ExchangeObject *ex);
PyObject *fra_request_path(ExchangeObject *ex);    /* scope["path"] alone */
PyObject *fra_request_query(ExchangeObject *ex);   /* scope["query_string"] alone */
PyObject *fra_request_method(ExchangeObject *ex);  /* scope["method"] alone */
/** The PEP 3333 environ with `input` as wsgi.input; body_len >= 0: the whole body's length. */
PyObject *fra_build_environ(ExchangeObject *ex, PyObject *input, Py_ssize_t body_len);
PyObject *fra_environ_base(ServerObject *so, int multiprocess); /* the keys every environ shares */
PyObject *fra_conn_addrs(ExchangeObject *ex);      /* (client, server) cached on the conn */

/* threads.c */
extern PyType_Spec fra_call_spec;
extern PyMethodDef fra__threads_methods[];
void fra_threads_dispatch(ExchangeObject *ex);     /* a WSGI server's request to the pool */
int fra_threads_run_wsgi(ExchangeObject *ex);      /* a native request to the pool; 0 or -1 */
void fra_threads_post(ExchangeObject *ex);         /* pool thread: the loop has work for ex */
void fra_threads_wait(ExchangeObject *ex, int what); /* pool thread: wait for FRA_WAIT_* */
void fra_threads_notify(ExchangeObject *ex);       /* loop thread: wake ex's thread if due */
void fra_threads_wakeup(fra_server *s);            /* the core's on_wakeup hook */
void fra_threads_drop_ready(ServerObject *so);     /* closing: release what waits for the loop */
void fra_threads_drop_job(void *job, void *so);    /* closing: a job no thread took */

/* wsgi.c */
extern PyType_Spec fra_input_spec, fra_file_wrapper_spec;
PyObject *fra_wsgi_input_new(ExchangeObject *ex);  /* wsgi.input streaming ex's body */
void fra_wsgi_run(ExchangeObject *ex);             /* pool thread: serve ex the WSGI way */

#endif
