/* server.c — the Server type: configuration, listeners, start, shutdown and close (loop.c
 * attaches it to the asyncio loop).  Owns the fra_server core struct and the WSGI pool.  Every
 * function here needs the GIL (they run on the loop thread). */
#include "fra/bridge.h"
#include <unistd.h>

static fra_hooks hooks = {
    .on_request = fra_hook_request,
    .on_body = fra_hook_body,
    .on_disconnect = fra_hook_disconnect,
    .on_drain = fra_hook_drain,
    .on_close = fra_hook_close,
    .on_wakeup = fra_wsgi_wakeup,
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

static int srv_init(ServerObject *so, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"app", "loop", "interface", "threads", "limit_request_line",
                           "limit_header_size", "limit_header_count", "limit_body_size",
                           "limit_concurrency", "timeout_header", "timeout_keep_alive",
                           "access_log_fd", "server_header", "root_path", "state", "on_error", "log_fd", NULL};
  PyObject *app, *loop, *server_header = NULL, *root_path = NULL, *state = Py_None, *on_error = Py_None;
  const char *interface = "asgi";
  int threads = 16, access_log_fd = -1, log_fd = 2;
  unsigned int lrl = 8190, lhs = 32768, lhc = 100, lconc = 0;
  unsigned long long lbody = 0;
  double th = 10.0, tka = 5.0;
  if (so->started || so->st) {
    PyErr_SetString(PyExc_RuntimeError, "Server.__init__ called twice");
    return -1;
  }
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$siIIIKIddiOOOOi", kwlist, &app, &loop, &interface,
                                   &threads, &lrl, &lhs, &lhc, &lbody, &lconc, &th, &tka, &access_log_fd,
                                   &server_header, &root_path, &state, &on_error, &log_fd))
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
  if (threads < 1 || threads > 4096) {
    PyErr_SetString(PyExc_ValueError, "threads: expected 1 to 4096");
    return -1;
  }
  if (th < 0 || tka < 0) {
    PyErr_SetString(PyExc_ValueError, "timeouts must be >= 0");
    return -1;
  }
  so->st = fra_state_of_type(Py_TYPE(so));
  if (!so->st) return -1;
  fra_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.limits.request_line = lrl;
  cfg.limits.header_size = lhs;
  cfg.limits.header_count = lhc;
  cfg.limits.body_size = lbody;
  cfg.limit_concurrency = lconc;
  cfg.timeout_header_ms = (uint64_t)(th * 1000);
  cfg.timeout_keep_alive_ms = (uint64_t)(tka * 1000);
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
  so->threads = threads;
  so->backend_fd = -1;
  if (!(so->base_ctx = PyContext_CopyCurrent())) return -1;
  if (!(so->call_soon = PyObject_GetAttr(loop, so->st->s_call_soon))) return -1;
  if (!(so->call_later = PyObject_GetAttr(loop, so->st->s_call_later))) return -1;
  if (!(so->create_future = PyObject_GetAttr(loop, so->st->s_create_future))) return -1;
  if (!(so->run_cb = PyObject_GetAttrString((PyObject *)so, "run_nowait"))) return -1;
  if (!(so->timer_cb = PyObject_GetAttrString((PyObject *)so, "_on_timer"))) return -1;
  if (!(so->kick_cb = PyObject_GetAttrString((PyObject *)so, "_kick"))) return -1;
  if (so->interface == FRA_IF_WSGI && fra_wsgi_start_pool(so) < 0) return -1;
  return 0;
}

static int check_open(ServerObject *so) {
  if (!so->st) {
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
  if (fra_loop_attach(so) < 0) return NULL;
  so->started = 1;
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
  if (so->closed || !so->st) return;
  fra_loop_detach(so);
  fra_ex_cancel_all(so);
  so->closed = 1;
  fra_server_destroy(&so->core);
  if (so->pool) {
    fra_pool *pool = so->pool;
    Py_BEGIN_ALLOW_THREADS
    fra_pool_stop(pool, 1000); /* freed by the last of us and its threads to let go */
    Py_END_ALLOW_THREADS
    so->pool = NULL;
  }
  while (so->wsgi_ready) {
    ExchangeObject *ex = so->wsgi_ready;
    so->wsgi_ready = ex->next_ready;
    ex->on_ready = 0;
    Py_DECREF(ex);
  }
}

static PyObject *srv_close(ServerObject *so, PyObject *unused) {
  srv_do_close(so);
  Py_RETURN_NONE;
}

static PyObject *srv_connections(ServerObject *so, PyObject *unused) {
  return PyLong_FromUnsignedLongLong(so->st ? so->core.nconns : 0);
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
  return 0;
}

static void srv_dealloc(ServerObject *so) {
  PyTypeObject *tp = Py_TYPE(so);
  PyObject_GC_UnTrack(so);
  srv_do_close(so);
  srv_clear(so);
  Py_CLEAR(so->root_path);
  Py_CLEAR(so->environ_base);
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
  static PyMethodDef *const parts[] = {srv_own_methods, fra__loop_methods, NULL};
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
