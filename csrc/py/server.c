/* server.c — the Server type: configuration, listeners, start, shutdown and close (loop.c
 * attaches it to the asyncio loop).  Owns the fra_server core struct and the WSGI pool.  Every
 * function here needs the GIL (they run on the loop thread). */
#include "fra/bridge.h"
#include "fra/redis.h"
#include "fra/stream.h"
#include <unistd.h>

static fra_hooks hooks = {
    .on_request = fra_hook_request,
    .on_body = fra_hook_body,
    .on_body_data = fra_hook_body_data,
    .on_disconnect = fra_hook_disconnect,
    .on_drain = fra_hook_drain,
    .on_close = fra_hook_close,
    .on_file_done = fra_hook_file_done,
    .on_wakeup = fra_threads_wakeup,
    .on_drained = NULL, /* set below */
};

static void on_drained(fra_server *s) {
  ServerObject *so = s->data;
  if (!so->drained) return;
  PyObject *done = PyObject_CallMethodNoArgs(so->drained, so->st->s_done);
  if (done == Py_False) {
    PyObject *r = PyObject_CallMethodOneArg(so->drained, so->st->s_set_result, Py_None);
    if (!r) PyErr_WriteUnraisable(so->drained);
    Py_XDECREF(r);
  }
  Py_XDECREF(done);
  if (PyErr_Occurred()) PyErr_WriteUnraisable(so->drained);
}

/* A numeric setting checked against its one range (fra_limit_ranges, shared with the CLI
 * through _core.LIMITS).  o NULL keeps the default.  0, or -1 with ValueError/TypeError. */
static int range_arg(PyObject *o, const char *name, uint64_t *out) {
  const fra_limit_range *r = fra_limit_ranges;
  while (r->name && strcmp(r->name, name) != 0) r++;
  if (!o || !r->name) return 0;
  if (!PyLong_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s: expected an int, got %.100s", name, Py_TYPE(o)->tp_name);
    return -1;
  }
  unsigned long long v = PyLong_AsUnsignedLongLong(o);   /* OverflowError: negative or huge */
  if ((v == (unsigned long long)-1 && PyErr_Occurred()) || v < r->min || v > r->max) {
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "%s: expected an integer from %llu to %llu, got %R", name,
                 (unsigned long long)r->min, (unsigned long long)r->max, o);
    return -1;
  }
  *out = v;
  return 0;
}

/* Seconds to milliseconds: finite, from 0 (none) to FRA_TIMEOUT_MAX_S; a positive value is at
 * least 1 ms, so a short timeout never becomes none.  0, or -1 with ValueError. */
static int timeout_arg(double t, const char *name, uint64_t *out) {
  if (!(t >= 0 && t <= FRA_TIMEOUT_MAX_S)) { /* NaN fails both */
    char msg[160];
    snprintf(msg, sizeof msg, "%s: expected a number of seconds from 0 to %d, got %g", name, FRA_TIMEOUT_MAX_S, t);
    PyErr_SetString(PyExc_ValueError, msg);
    return -1;
  }
  uint64_t ms = (uint64_t)(t * 1000);
  *out = ms == 0 && t > 0 ? 1 : ms;
  return 0;
}

static int srv_init(ServerObject *so, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"app", "loop", "interface", "threads", "limit_request_line",
                           "limit_header_size", "limit_header_count", "limit_body_size",
                           "limit_concurrency", "timeout_header", "timeout_keep_alive",
                           "timeout_body", "timeout_write",
                           "access_log_fd", "server_header", "root_path", "state", "on_error",
                           "multiprocess", "log_fd", NULL};
  PyObject *app, *loop, *server_header = NULL, *root_path = NULL, *state = Py_None, *on_error = Py_None;
  PyObject *o_threads = NULL, *o_lrl = NULL, *o_lhs = NULL, *o_lhc = NULL, *o_lbody = NULL, *o_lconc = NULL;
  const char *interface = "asgi";
  int access_log_fd = -1, multiprocess = 0, log_fd = 2;
  uint64_t threads = 16, lrl = 8190, lhs = 32768, lhc = 100, lbody = 0, lconc = 0;
  double th = 10.0, tka = 5.0, tbody = FRA_TIMEOUT_BODY_S, twrite = FRA_TIMEOUT_WRITE_S;
  uint64_t th_ms, tka_ms, tbody_ms, twrite_ms;
  if (so->started || so->st) {
    PyErr_SetString(PyExc_RuntimeError, "Server.__init__ called twice");
    return -1;
  }
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$sOOOOOOddddiOOOOpi", kwlist, &app, &loop, &interface,
                                   &o_threads, &o_lrl, &o_lhs, &o_lhc, &o_lbody, &o_lconc, &th, &tka,
                                   &tbody, &twrite, &access_log_fd, &server_header, &root_path, &state,
                                   &on_error, &multiprocess, &log_fd))
    return -1;
  if (strcmp(interface, "asgi") == 0) so->interface = FRA_IF_ASGI;
  else if (strcmp(interface, "native") == 0) {
    /* ASGI semantics, but the app is called with the exchange alone (see exchange.c) */
    so->interface = FRA_IF_ASGI;
    so->native = 1;
  }
  else if (strcmp(interface, "wsgi") == 0) so->interface = FRA_IF_WSGI;
  else {
    PyErr_Format(PyExc_ValueError, "interface: expected 'asgi', 'native' or 'wsgi', got '%s'", interface);
    return -1;
  }
  if (range_arg(o_threads, "threads", &threads) < 0 || range_arg(o_lrl, "limit_request_line", &lrl) < 0 ||
      range_arg(o_lhs, "limit_header_size", &lhs) < 0 || range_arg(o_lhc, "limit_header_count", &lhc) < 0 ||
      range_arg(o_lbody, "limit_body_size", &lbody) < 0 || range_arg(o_lconc, "limit_concurrency", &lconc) < 0)
    return -1;
  if (timeout_arg(th, "timeout_header", &th_ms) < 0 || timeout_arg(tka, "timeout_keep_alive", &tka_ms) < 0 ||
      timeout_arg(tbody, "timeout_body", &tbody_ms) < 0 || timeout_arg(twrite, "timeout_write", &twrite_ms) < 0)
    return -1;
  so->st = fra_state_of_type(Py_TYPE(so));
  if (!so->st) return -1;
  fra_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.limits.request_line = (uint32_t)lrl;
  cfg.limits.header_size = (uint32_t)lhs;
  cfg.limits.header_count = (uint32_t)lhc;
  cfg.limits.body_size = lbody;
  cfg.limit_concurrency = (uint32_t)lconc;
  cfg.timeout_header_ms = th_ms;
  cfg.timeout_keep_alive_ms = tka_ms;
  cfg.timeout_body_ms = tbody_ms;
  cfg.timeout_write_ms = twrite_ms;
  cfg.access_log_fd = access_log_fd;
  cfg.log_fd = log_fd < 0 ? -1 : log_fd;
  const char *sh = "flask-restful-async";
  Py_ssize_t shl = (Py_ssize_t)strlen(sh);
  if (server_header == Py_None) {
    shl = -1;
  } else if (server_header) {
    if (!PyBytes_Check(server_header)) {
      PyErr_SetString(PyExc_TypeError, "server_header: expected bytes or None");
      return -1;
    }
    sh = PyBytes_AS_STRING(server_header);
    shl = PyBytes_GET_SIZE(server_header);
    if (shl > 100 || !fra_valid_header_value(sh, (size_t)shl)) {
      PyErr_SetString(PyExc_ValueError, "server_header: at most 100 bytes, no CR/LF");
      return -1;
    }
  }
  if (shl >= 0) cfg.server_header_len = (size_t)snprintf(cfg.server_header, sizeof cfg.server_header, "Server: %.*s\r\n", (int)shl, sh);
  hooks.on_drained = on_drained;
  int rc = fra_server_init(&so->core, &cfg, &hooks, so);
  if (rc) {
    fra_raise_uv(rc, "server init");
    return -1;
  }
  so->core_ready = 1; /* from here on, closing must tear the core down */
  so->core.cfg.limits = cfg.limits;
  Py_INCREF(app); so->app = app;
  Py_INCREF(loop); so->loop = loop;
  Py_INCREF(on_error); so->on_error = on_error;
  if (state != Py_None && !PyDict_Check(state)) {
    PyErr_SetString(PyExc_TypeError, "state: expected a dict or None");
    return -1;
  }
  Py_INCREF(state); so->state = state;
  so->root_path = root_path ? root_path : PyUnicode_FromString("");
  if (root_path) Py_INCREF(root_path);
  if (!so->root_path || !PyUnicode_Check(so->root_path)) {
    PyErr_SetString(PyExc_TypeError, "root_path: expected str");
    return -1;
  }
  so->threads = (int)threads;
  so->backend_fd = -1;
  if (!(so->environ_base = fra_environ_base(so, multiprocess))) return -1;
  if (!(so->call_soon = PyObject_GetAttr(loop, so->st->s_call_soon))) return -1;
  if (!(so->call_later = PyObject_GetAttr(loop, so->st->s_call_later))) return -1;
  if (!(so->create_future = PyObject_GetAttr(loop, so->st->s_create_future))) return -1;
  if (!(so->run_cb = PyObject_GetAttrString((PyObject *)so, "run_nowait"))) return -1;
  if (!(so->timer_cb = PyObject_GetAttrString((PyObject *)so, "_on_timer"))) return -1;
  if (!(so->kick_cb = PyObject_GetAttrString((PyObject *)so, "_kick"))) return -1;
  return 0;
}

int fra_server_add_limits(PyObject *m) {
  PyObject *d = PyDict_New();
  if (!d) return -1;
  for (const fra_limit_range *r = fra_limit_ranges; r->name; r++) {
    PyObject *v = Py_BuildValue("(KK)", (unsigned long long)r->min, (unsigned long long)r->max);
    if (!v || PyDict_SetItemString(d, r->name, v) < 0) {
      Py_XDECREF(v);
      Py_DECREF(d);
      return -1;
    }
    Py_DECREF(v);
  }
  int rc = PyModule_AddObjectRef(m, "LIMITS", d);
  Py_DECREF(d);
  if (rc < 0) return -1;
  return PyModule_AddIntConstant(m, "TIMEOUT_MAX", FRA_TIMEOUT_MAX_S);
}

static int check_open(ServerObject *so) {
  if (!so->core_ready) {
    PyErr_SetString(PyExc_RuntimeError, "Server not initialised");
    return -1;
  }
  if (so->closed) {
    PyErr_SetString(PyExc_RuntimeError, "Server is closed");
    return -1;
  }
  return 0;
}

static PyObject *srv_listen_tcp(ServerObject *so, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"host", "port", "backlog", NULL};
  const char *host;
  int port, backlog = 2048;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "si|i", kwlist, &host, &port, &backlog)) return NULL;
  if (check_open(so)) return NULL;
  int rc = fra_server_listen_tcp(&so->core, host, port, backlog);
  if (rc) return fra_raise_uv(rc, "listen");
  Py_RETURN_NONE;
}

static PyObject *srv_listen_unix(ServerObject *so, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"path", "backlog", NULL};
  const char *path;
  int backlog = 2048;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s|i", kwlist, &path, &backlog)) return NULL;
  if (check_open(so)) return NULL;
  int rc = fra_server_listen_unix(&so->core, path, backlog);
  if (rc) return fra_raise_uv(rc, "listen");
  Py_RETURN_NONE;
}

static PyObject *srv_listen_fd(ServerObject *so, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"fd", "backlog", NULL};
  int fd, backlog = 2048;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "i|i", kwlist, &fd, &backlog)) return NULL;
  if (check_open(so)) return NULL;
  int rc = fra_server_listen_fd(&so->core, fd, backlog);
  if (rc) return fra_raise_uv(rc, "listen");
  Py_RETURN_NONE;
}

static PyObject *srv_sockname(ServerObject *so, PyObject *unused) {
  if (check_open(so)) return NULL;
  PyObject *list = PyList_New(0);
  if (!list) return NULL;
  for (int i = 0; i < so->core.nlisteners; i++) {
    if (uv_is_closing(&so->core.listeners[i].handle)) continue;
    char host[1024];
    int port;
    if (fra_server_sockname(&so->core, i, host, sizeof host, &port) != 0) continue;
    PyObject *item = port >= 0 ? Py_BuildValue("(si)", host, port) : PyUnicode_FromString(host);
    if (!item || PyList_Append(list, item) < 0) {
      Py_XDECREF(item);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(item);
  }
  return list;
}

static PyObject *srv_start(ServerObject *so, PyObject *unused) {
  if (check_open(so)) return NULL;
  if (so->started) Py_RETURN_NONE;
  /* Every request's context is a copy of the one start() is called in: what the caller set up
   * between making the server and starting it (the loop, the pool for run_sync) is seen. */
  if (!(so->base_ctx = PyContext_CopyCurrent())) return NULL;
  if (fra_loop_attach(so) < 0) return NULL;
  so->started = 1;
  fra_redis_server_started(so);
  Py_RETURN_NONE;
}

static PyObject *srv_shutdown(ServerObject *so, PyObject *unused) {
  if (check_open(so)) return NULL;
  if (!so->drained) {
    so->drained = PyObject_CallNoArgs(so->create_future);
    if (!so->drained) return NULL;
    fra_server_shutdown(&so->core);
    fra_srv_after_call(so);
  }
  Py_INCREF(so->drained);
  return so->drained;
}

static PyObject *srv_cancel_all(ServerObject *so, PyObject *unused) {
  if (check_open(so)) return NULL;
  fra_ex_cancel_all(so);
  fra_server_close_all(&so->core);
  fra_srv_after_call(so);
  Py_RETURN_NONE;
}

static void srv_do_close(ServerObject *so) {
  if (so->closed || !so->core_ready) return;
  fra_redis_server_closing(so); /* their libuv handles must close before the loop does */
  fra_stream_server_closing(so); /* the same for file watchers */
  fra_loop_detach(so);
  fra_ex_cancel_all(so);
  so->closed = 1;
  fra_server_destroy(&so->core);
  if (so->pool) {
    fra_pool *pool = so->pool;
    fra_pool_stop(pool, fra_threads_drop_job, so); /* jobs never taken: released */
    Py_BEGIN_ALLOW_THREADS
    fra_pool_release(pool, 1000); /* freed by the last of us and its threads to let go */
    Py_END_ALLOW_THREADS
    so->pool = NULL;
  }
  fra_threads_drop_ready(so);
}

static PyObject *srv_close(ServerObject *so, PyObject *unused) {
  srv_do_close(so);
  Py_RETURN_NONE;
}

static PyObject *srv_connections(ServerObject *so, PyObject *unused) {
  return PyLong_FromUnsignedLongLong(so->core_ready ? so->core.nconns : 0);
}

static PyObject *srv_stats(ServerObject *so, PyObject *unused) {
  return Py_BuildValue("{sKsKsK}", "connections", (unsigned long long)so->core.nconns, "requests",
                       (unsigned long long)so->core.nrequests, "active", (unsigned long long)so->core.nactive);
}

static int srv_traverse(ServerObject *so, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(so));
  Py_VISIT(so->app);
  Py_VISIT(so->loop);
  Py_VISIT(so->on_error);
  Py_VISIT(so->state);
  Py_VISIT(so->run_cb);
  Py_VISIT(so->timer_cb);
  Py_VISIT(so->kick_cb);
  Py_VISIT(so->call_soon);
  Py_VISIT(so->call_later);
  Py_VISIT(so->create_future);
  Py_VISIT(so->timer_handle);
  Py_VISIT(so->drained);
  Py_VISIT(so->base_ctx);
  Py_VISIT(so->environ_base);
  Py_VISIT(so->root_path);
  return 0;
}

static int srv_clear(ServerObject *so) {
  Py_CLEAR(so->run_cb);
  Py_CLEAR(so->timer_cb);
  Py_CLEAR(so->kick_cb);
  Py_CLEAR(so->timer_handle);
  Py_CLEAR(so->drained);
  Py_CLEAR(so->call_soon);
  Py_CLEAR(so->call_later);
  Py_CLEAR(so->create_future);
  Py_CLEAR(so->on_error);
  Py_CLEAR(so->state);
  Py_CLEAR(so->app);
  Py_CLEAR(so->loop);
  Py_CLEAR(so->base_ctx);
  Py_CLEAR(so->environ_base);
  return 0;
}

static void srv_dealloc(ServerObject *so) {
  PyTypeObject *tp = Py_TYPE(so);
  PyObject_GC_UnTrack(so);
  /* closing calls into the loop (remove_reader): an exception being raised must survive it */
  PyObject *exc = fra_err_take();
  srv_do_close(so);
  fra_err_restore(exc);
  srv_clear(so);
  Py_CLEAR(so->root_path);
  tp->tp_free((PyObject *)so);
  Py_DECREF(tp);
}

static PyMethodDef srv_own_methods[] = {
    {"listen_tcp", (PyCFunction)(void (*)(void))srv_listen_tcp, METH_VARARGS | METH_KEYWORDS, "Listen on host:port."},
    {"listen_unix", (PyCFunction)(void (*)(void))srv_listen_unix, METH_VARARGS | METH_KEYWORDS, "Listen on a Unix socket."},
    {"listen_fd", (PyCFunction)(void (*)(void))srv_listen_fd, METH_VARARGS | METH_KEYWORDS, "Serve an inherited listening socket."},
    {"sockname", (PyCFunction)srv_sockname, METH_NOARGS, "Bound addresses."},
    {"start", (PyCFunction)srv_start, METH_NOARGS, "Attach to the asyncio loop and accept."},
    {"shutdown", (PyCFunction)srv_shutdown, METH_NOARGS, "Graceful drain; returns a future."},
    {"cancel_all", (PyCFunction)srv_cancel_all, METH_NOARGS, "Cancel in-flight requests, close all."},
    {"close", (PyCFunction)srv_close, METH_NOARGS, "Release everything."},
    {"connections", (PyCFunction)srv_connections, METH_NOARGS, "Open connections."},
    {"stats", (PyCFunction)srv_stats, METH_NOARGS, "Counters."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef srv_methods[24];

int fra_server_spec_prepare(void) {
  static PyMethodDef *const parts[] = {srv_own_methods, fra__loop_methods, fra__threads_methods, NULL};
  if (srv_methods[0].ml_name) return 0;
  if (fra_join_methods(srv_methods, sizeof srv_methods / sizeof srv_methods[0], parts) < 0) {
    PyErr_SetString(PyExc_SystemError, "Server: method table too small");
    return -1;
  }
  return 0;
}

static PyType_Slot srv_slots[] = {
    {Py_tp_doc, "The C HTTP/1.1 server of one worker."},
    {Py_tp_init, srv_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, srv_dealloc},
    {Py_tp_traverse, srv_traverse},
    {Py_tp_clear, srv_clear},
    {Py_tp_methods, srv_methods},
    {0, NULL},
};

PyType_Spec fra_server_spec = {
    .name = "flask_restful_async._core.Server",
    .basicsize = sizeof(ServerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = srv_slots,
};
