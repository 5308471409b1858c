/* server.c — the Server type: configuration, listeners, attaching the libuv loop to the asyncio
 * loop (add_reader on the backend fd + one re-armed timer), shutdown and close.  Owns the
 * fra_server core struct, the WSGI pool and the loop callbacks.  Every function here needs the
 * GIL (they run on the loop thread). */
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

/* call_soon/call_later of the server's own callbacks run in the base context: scheduled from
 * inside a handler, they would otherwise carry that request's context into the next pass. */
static PyObject *call_in_base(ServerObject *so, PyObject *fn, PyObject *delay, PyObject *cb) {
  PyObject *args[4] = {NULL, delay, cb, so->base_ctx};
  if (delay) return PyObject_Vectorcall(fn, args + 1, 2, so->st->kw_context);
  return PyObject_Vectorcall(fn, args + 2, 1, so->st->kw_context);
}

/* Keeps one asyncio timer armed for libuv's next timer.  A timer armed for later than needed
 * is moved earlier; one armed earlier than needed just fires, finds nothing due and re-arms,
 * which keeps re-arming rare on the hot path. */
static void rearm(ServerObject *so) {
  int t = fra_server_timeout(&so->core);
  if (t == 0) {
    if (!so->kick_scheduled) {
      PyObject *h = call_in_base(so, so->call_soon, NULL, so->kick_cb);
      if (!h) { PyErr_WriteUnraisable(so->call_soon); return; }
      Py_DECREF(h);
      so->kick_scheduled = 1;
    }
    return;
  }
  if (t < 0) return;
  uint64_t due = uv_now(&so->core.loop) + (uint64_t)t;
  if (so->timer_handle && so->timer_due <= due) return;
  if (so->timer_handle) {
    PyObject *r = PyObject_CallMethodNoArgs(so->timer_handle, so->st->s_cancel);
    Py_XDECREF(r);
    Py_CLEAR(so->timer_handle);
  }
  PyObject *delay = PyFloat_FromDouble(t / 1000.0);
  if (!delay) { PyErr_WriteUnraisable(so->call_later); return; }
  so->timer_handle = call_in_base(so, so->call_later, delay, so->timer_cb);
  Py_DECREF(delay);
  if (!so->timer_handle) { PyErr_WriteUnraisable(so->call_later); return; }
  so->timer_due = due;
}

void fra_srv_after_call(ServerObject *so) {
  if (so->core.in_run || so->closed) return;
  uv_update_time(&so->core.loop);
  rearm(so);
}

static void run_pass(ServerObject *so) {
  if (so->closed) return;
  if (fra_server_run_nowait(&so->core)) {
    if (!so->kick_scheduled) {
      PyObject *h = call_in_base(so, so->call_soon, NULL, so->kick_cb);
      if (h) { so->kick_scheduled = 1; Py_DECREF(h); }
      else PyErr_WriteUnraisable(so->call_soon);
    }
    return;
  }
  rearm(so);
}

static PyObject *srv_run_nowait(ServerObject *so, PyObject *unused) {
  run_pass(so);
  Py_RETURN_NONE;
}

static PyObject *srv_on_timer(ServerObject *so, PyObject *unused) {
  Py_CLEAR(so->timer_handle);
  run_pass(so);
  Py_RETURN_NONE;
}

static PyObject *srv_kick(ServerObject *so, PyObject *unused) {
  so->kick_scheduled = 0;
  run_pass(so);
  Py_RETURN_NONE;
}

static int srv_init(ServerObject *so, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"app", "loop", "interface", "threads", "limit_request_line",
                           "limit_header_size", "limit_header_count", "limit_body_size",
                           "limit_concurrency", "timeout_header", "timeout_keep_alive",
                           "access_log_fd", "server_header", "root_path", "state", "on_error", NULL};
  PyObject *app, *loop, *server_header = NULL, *root_path = NULL, *state = Py_None, *on_error = Py_None;
  const char *interface = "asgi";
  int threads = 16, access_log_fd = -1;
  unsigned int lrl = 8190, lhs = 32768, lhc = 100, lconc = 0;
  unsigned long long lbody = 0;
  double th = 10.0, tka = 5.0;
  if (so->started || so->st) {
    PyErr_SetString(PyExc_RuntimeError, "Server.__init__ called twice");
    return -1;
  }
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$siIIIKIddiOOOO", kwlist, &app, &loop, &interface,
                                   &threads, &lrl, &lhs, &lhc, &lbody, &lconc, &th, &tka, &access_log_fd,
                                   &server_header, &root_path, &state, &on_error))
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
  so->backend_fd = uv_backend_fd(&so->core.loop);
  PyObject *fd = PyLong_FromLong(so->backend_fd);
  if (!fd) return NULL;
  PyObject *r = PyObject_CallMethodObjArgs(so->loop, so->st->s_add_reader, fd, so->run_cb, NULL);
  Py_DECREF(fd);
  if (!r) return NULL;
  Py_DECREF(r);
  so->started = 1;
  so->core.started = 1;
  /* The first pass (it registers the listeners with epoll) runs from the loop, never inside
   * the caller: start() is called from a task, and a pass may dispatch requests already queued
   * on the socket, which must not run while another task is current. */
  PyObject *h = call_in_base(so, so->call_soon, NULL, so->kick_cb);
  if (!h) return NULL;
  Py_DECREF(h);
  so->kick_scheduled = 1;
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
  if (so->started && so->backend_fd >= 0 && so->loop) {
    PyObject *fd = PyLong_FromLong(so->backend_fd);
    PyObject *r = fd ? PyObject_CallMethodOneArg(so->loop, so->st->s_remove_reader, fd) : NULL;
    Py_XDECREF(fd);
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
  }
  if (so->timer_handle) {
    PyObject *r = PyObject_CallMethodNoArgs(so->timer_handle, so->st->s_cancel);
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
    Py_CLEAR(so->timer_handle);
  }
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

static PyMethodDef srv_methods[] = {
    {"listen_tcp", (PyCFunction)(void (*)(void))srv_listen_tcp, METH_VARARGS | METH_KEYWORDS, "Listen on host:port."},
    {"listen_unix", (PyCFunction)(void (*)(void))srv_listen_unix, METH_VARARGS | METH_KEYWORDS, "Listen on a Unix socket."},
    {"listen_fd", (PyCFunction)(void (*)(void))srv_listen_fd, METH_VARARGS | METH_KEYWORDS, "Serve an inherited listening socket."},
    {"sockname", (PyCFunction)srv_sockname, METH_NOARGS, "Bound addresses."},
    {"start", (PyCFunction)srv_start, METH_NOARGS, "Attach to the asyncio loop and accept."},
    {"run_nowait", (PyCFunction)srv_run_nowait, METH_NOARGS, "One non-blocking pass (loop callback)."},
    {"_on_timer", (PyCFunction)srv_on_timer, METH_NOARGS, NULL},
    {"_kick", (PyCFunction)srv_kick, METH_NOARGS, NULL},
    {"shutdown", (PyCFunction)srv_shutdown, METH_NOARGS, "Graceful drain; returns a future."},
    {"cancel_all", (PyCFunction)srv_cancel_all, METH_NOARGS, "Cancel in-flight requests, close all."},
    {"close", (PyCFunction)srv_close, METH_NOARGS, "Release everything."},
    {"connections", (PyCFunction)srv_connections, METH_NOARGS, "Open connections."},
    {"stats", (PyCFunction)srv_stats, METH_NOARGS, "Counters."},
    {NULL, NULL, 0, NULL},
};

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
