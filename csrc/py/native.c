/* native.c — the calls our own Flask entry (flask_restful_async.server_app) makes on an exchange:
 * method, path and query without a scope, the scope and the environ made on demand, the body
 * taken whole (at once, or awaited), the handler cancelled when the client leaves, the whole
 * response in one call (JSON, or a WSGI status and header list), or the request handed to the
 * thread pool as WSGI.  Owns the exchange's scope cache (the body's bytes are body.c's).  Every
 * function here needs the GIL. */
#include <strings.h>
#include "exchange_internal.h"

static int need_req(ExchangeObject *ex) {
  if (ex->req) return 0;
  PyErr_SetString(PyExc_RuntimeError, "the request is no longer available");
  return -1;
}

/* take_body(): the whole request body as bytes when all of it has arrived and none was
 * received yet (it is then delivered: receive() gives http.disconnect later), else None and
 * nothing changes. */
static PyObject *ex_take_body(ExchangeObject *ex, PyObject *unused) {
  fra_req *r = ex->req;
  if (ex->gone || !r || ex->complete || ex->body_delivered || ex->gathering || !r->complete) Py_RETURN_NONE;
  PyObject *body = fra__body_take(ex, 1);
  if (!body) return NULL;
  ex->body_delivered = 1;
  fra_srv_after_call(ex->srv);
  return body;
}

/* body(): once the body is complete, resolves the waiter with it (the sink, whole).  Called
 * by body() and by the core's body hook. */
void fra__ex_gather_body(ExchangeObject *ex) {
  fra_req *r = ex->req;
  if (!ex->gathering || !r || !r->complete || !ex->body_waiter) return;
  PyObject *body = fra__body_take(ex, 1);
  ex->gathering = 0;
  ex->body_delivered = 1;
  if (!body) {
    PyErr_WriteUnraisable((PyObject *)ex);
    return;
  }
  fra__resolve(&ex->body_waiter, body);
  Py_DECREF(body);
}

/* body(): an awaitable of the whole request body as bytes, or None if the client leaves first.
 * What arrives is copied into one bytes object as it comes (made for the whole Content-Length
 * at once), so reading never stops for it. */
static PyObject *ex_body(ExchangeObject *ex, PyObject *unused) {
  fra_state *st = ex->srv->st;
  fra_req *r = ex->req;
  if (ex->gone || !r || ex->complete || ex->body_delivered) return fra_ready_new(st, Py_None);
  if (ex->body_waiter) {
    PyErr_SetString(PyExc_RuntimeError, "body() is already being awaited");
    return NULL;
  }
  if (r->complete) {
    PyObject *body = fra__body_take(ex, 1);
    if (!body) return NULL;
    ex->body_delivered = 1;
    fra_srv_after_call(ex->srv);
    PyObject *ready = fra_ready_new(st, body);
    Py_DECREF(body);
    return ready;
  }
  if (!(ex->body_waiter = PyObject_CallNoArgs(ex->srv->create_future))) return NULL;
  PyObject *waiter = Py_NewRef(ex->body_waiter);
  if (fra__body_gather(ex) < 0) {
    Py_DECREF(waiter);
    Py_CLEAR(ex->body_waiter);
    return NULL;
  }
  if (ex->conn) fra_conn_body_consumed(ex->conn);
  fra__ex_continue(ex);
  fra_srv_after_call(ex->srv);
  return waiter;
}

/* scope(): the ASGI scope (made on first call, then the same dict). */
static PyObject *ex_scope(ExchangeObject *ex, PyObject *unused) {
  if (!ex->scope) {
    if (need_req(ex) < 0) return NULL;
    ex->scope = fra_build_scope(ex);
  }
  return Py_XNewRef(ex->scope);
}

/* environ(body=None): the PEP 3333 environ.  With body (bytes, the whole body already taken)
 * wsgi.input reads it; without, wsgi.input streams the body from the connection, which only a
 * pool thread may read (hand the environ to run_wsgi). */
static PyObject *ex_environ(ExchangeObject *ex, PyObject *const *args, Py_ssize_t n) {
  if (n > 1) {
    PyErr_SetString(PyExc_TypeError, "environ(body=None)");
    return NULL;
  }
  if (need_req(ex) < 0) return NULL;
  fra_state *st = ex->srv->st;
  PyObject *body = n ? args[0] : Py_None;
  PyObject *input, *environ;
  Py_ssize_t len = -1;
  if (body == Py_None) {
    input = fra_wsgi_input_new(ex);
  } else {
    if (!PyBytes_Check(body)) {
      PyErr_SetString(PyExc_TypeError, "environ(): body must be bytes or None");
      return NULL;
    }
    len = PyBytes_GET_SIZE(body);
    input = PyObject_CallOneArg(st->BytesIO, body);
  }
  if (!input) return NULL;
  environ = fra_build_environ(ex, input, len);
  Py_DECREF(input);
  return environ;
}

static PyObject *ex_get_method(ExchangeObject *ex, void *unused) {
  return need_req(ex) < 0 ? NULL : fra_request_method(ex);
}

static PyObject *ex_get_path(ExchangeObject *ex, void *unused) {
  return need_req(ex) < 0 ? NULL : fra_request_path(ex);
}

static PyObject *ex_get_query_string(ExchangeObject *ex, void *unused) {
  return need_req(ex) < 0 ? NULL : fra_request_query(ex);
}

static PyObject *ex_get_root_path(ExchangeObject *ex, void *unused) { return Py_NewRef(ex->srv->root_path); }

/* header(name): the value of the fields of this name (bytes, any case), repeated ones joined
 * as the environ joins them (request.c), or None. */
static PyObject *ex_header(ExchangeObject *ex, PyObject *name) {
  if (!PyBytes_Check(name)) {
    PyErr_SetString(PyExc_TypeError, "header(name): name must be bytes");
    return NULL;
  }
  if (need_req(ex) < 0) return NULL;
  const fra_req *r = ex->req;
  const char *n = PyBytes_AS_STRING(name);
  size_t nl = (size_t)PyBytes_GET_SIZE(name);
  int cookie = nl == 6 && strncasecmp(n, "cookie", 6) == 0;
  PyObject *value = NULL;
  for (size_t i = 0; i < r->nhdrs; i++) {
    const fra_hdr *h = &r->hdrs[i];
    if (h->name_len != nl || strncasecmp(r->buf + h->name_off, n, nl) != 0) continue;
    const char *v = r->buf + h->value_off;
    if (!value) {
      if (!(value = PyBytes_FromStringAndSize(v, (Py_ssize_t)h->value_len))) return NULL;
      continue;
    }
    PyObject *joined = PyBytes_FromFormat(cookie ? "%s; %.*s" : "%s,%.*s", PyBytes_AS_STRING(value),
                                          (int)h->value_len, v);
    Py_SETREF(value, joined);
    if (!value) return NULL;
  }
  return value ? value : Py_NewRef(Py_None);
}

/* cancel_on_disconnect(): from now on, a client that disconnects (or closes its side) while
 * the handler runs cancels it, as task.cancel() would; `disconnected` tells afterwards. */
static PyObject *ex_cancel_on_disconnect(ExchangeObject *ex, PyObject *unused) {
  ex->cancel_on_gone = 1;
  if (ex->gone && !ex->task_done) return fra__ex_cancel(ex, ex->srv->st->empty_tuple, NULL);
  Py_RETURN_NONE;
}

static PyObject *ex_disconnected(ExchangeObject *ex, void *unused) { return PyBool_FromLong(ex->gone); }

/* then(coro): once the handler's coroutine returns, coro is driven in its place as the same
 * task (a stream's sender: the handler's frames are not kept while it runs). */
static PyObject *ex_then(ExchangeObject *ex, PyObject *coro) {
  PyAsyncMethods *am = Py_TYPE(coro)->tp_as_async;
  if (!am || !am->am_send) {
    PyErr_Format(PyExc_TypeError, "then(): a coroutine, not %.100s", Py_TYPE(coro)->tp_name);
    return NULL;
  }
  if (ex->task_done || ex->kind != FRA_IF_ASGI || ex->next_coro) {
    PyErr_SetString(PyExc_RuntimeError, "then(): no running handler to follow, or already called");
    return NULL;
  }
  ex->next_coro = Py_NewRef(coro);
  Py_RETURN_NONE;
}

/* A handler waiting on a future is cancelled because its client left. */
void fra__ex_cancel_for_disconnect(ExchangeObject *ex) {
  if (!ex->cancel_on_gone || ex->task_done || ex->kind != FRA_IF_ASGI) return;
  ex->cancel_on_gone = 0;
  PyObject *r = fra__ex_cancel(ex, ex->srv->st->empty_tuple, NULL);
  if (!r) PyErr_WriteUnraisable((PyObject *)ex);
  Py_XDECREF(r);
}

/* The body argument of respond*(): bytes-like, or str sent as UTF-8 (for ASCII text, the
 * string's own buffer). */
static int body_buffer(PyObject *obj, Py_buffer *view) {
  if (PyUnicode_Check(obj)) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(obj, &n);
    return u ? PyBuffer_FillInfo(view, obj, (void *)u, n, 1, PyBUF_SIMPLE) : -1;
  }
  return PyObject_GetBuffer(obj, view, PyBUF_SIMPLE);
}

static int check_unstarted(ExchangeObject *ex) {
  if (!ex->started && ex->kind == FRA_IF_ASGI) return 0;
  PyErr_SetString(PyExc_RuntimeError, "the response has already started");
  return -1;
}

/* Sends the whole body after a head begun by the caller, then hands the connection back. */
static PyObject *respond_body(ExchangeObject *ex, Py_buffer *body, int rc) {
  if (rc == 0) {
    ex->started = 1;
    rc = fra_ex_body(ex, body->buf, (size_t)body->len, 0);
  }
  PyBuffer_Release(body);
  if (rc < 0) return NULL;
  fra_ex_finish(ex);
  Py_RETURN_NONE;
}

/* A response to a client that has gone: ClientDisconnected, as ASGI send() raises (spec 2.4);
 * nothing is marked started, so a caller that catches it can just return. */
static PyObject *respond_gone(ExchangeObject *ex, Py_buffer *body) {
  PyBuffer_Release(body);
  PyErr_SetString(ex->srv->st->ClientDisconnected, "the client has disconnected");
  return NULL;
}

/* respond(status, content_type, body): the whole response in one call, with Content-Length
 * (what http.response.start + http.response.body would send, without the dicts). */
static PyObject *ex_respond(ExchangeObject *ex, PyObject *const *args, Py_ssize_t n) {
  if (n != 3) {
    PyErr_SetString(PyExc_TypeError, "respond(status, content_type, body)");
    return NULL;
  }
  long code = PyLong_AsLong(args[0]);
  if (code == -1 && PyErr_Occurred()) return NULL;
  if (code < 100 || code > 999) {
    PyErr_Format(PyExc_ValueError, "invalid status %ld", code);
    return NULL;
  }
  if (check_unstarted(ex) < 0) return NULL;
  Py_buffer ct, body;
  if (PyObject_GetBuffer(args[1], &ct, PyBUF_SIMPLE) < 0) return NULL;
  if (body_buffer(args[2], &body) < 0) {
    PyBuffer_Release(&ct);
    return NULL;
  }
  if (ex->gone || !ex->conn) {
    PyBuffer_Release(&ct);
    return respond_gone(ex, &body);
  }
  int rc = fra_ex_head_begin(ex, (int)code, NULL, 0);
  if (rc == 0) rc = fra_ex_head_add(ex, "Content-Type", 12, ct.buf, (size_t)ct.len);
  PyBuffer_Release(&ct);
  return respond_body(ex, &body, rc);
}

/* respond_wsgi(status, headers, body): the whole response in one call from a WSGI status line
 * ("200 OK") and header list [(str, str)], the names as given. */
static PyObject *ex_respond_wsgi(ExchangeObject *ex, PyObject *const *args, Py_ssize_t n) {
  if (n != 3) {
    PyErr_SetString(PyExc_TypeError, "respond_wsgi(status, headers, body)");
    return NULL;
  }
  if (check_unstarted(ex) < 0) return NULL;
  Py_buffer body;
  if (body_buffer(args[2], &body) < 0) return NULL;
  if (ex->gone || !ex->conn) return respond_gone(ex, &body);
  return respond_body(ex, &body, fra__ex_head_wsgi(ex, args[0], args[1]));
}

/* run_wsgi(app, environ=None): serve this request by calling the WSGI app in the thread pool
 * (environ: one made by environ(), else the pool thread makes it).  The handler's context is
 * copied for the thread.  Once called, the exchange belongs to the pool: the caller returns. */
static PyObject *ex_run_wsgi(ExchangeObject *ex, PyObject *const *args, Py_ssize_t n) {
  if (n < 1 || n > 2) {
    PyErr_SetString(PyExc_TypeError, "run_wsgi(app, environ=None)");
    return NULL;
  }
  if (!PyCallable_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "run_wsgi(): app must be callable");
    return NULL;
  }
  PyObject *environ = n == 2 && args[1] != Py_None ? args[1] : NULL;
  if (environ && !PyDict_Check(environ)) {
    PyErr_SetString(PyExc_TypeError, "run_wsgi(): environ must be a dict");
    return NULL;
  }
  if (check_unstarted(ex) < 0 || need_req(ex) < 0) return NULL;
  PyObject *ctx = PyContext_CopyCurrent();
  if (!ctx) return NULL;
  Py_XSETREF(ex->wsgi_ctx, ctx);
  Py_XSETREF(ex->wsgi_app, Py_NewRef(args[0]));
  Py_XSETREF(ex->environ, Py_XNewRef(environ));
  if (fra_threads_run_wsgi(ex) < 0) return NULL;
  Py_RETURN_NONE;
}

PyMethodDef fra__native_methods[] = {
    {"take_body", (PyCFunction)ex_take_body, METH_NOARGS, "The whole body if it has arrived, else None."},
    {"body", (PyCFunction)ex_body, METH_NOARGS, "Awaitable: the whole body (bytes), or None if the client leaves."},
    {"scope", (PyCFunction)ex_scope, METH_NOARGS, "The ASGI scope (made on first call)."},
    {"environ", (PyCFunction)(void (*)(void))ex_environ, METH_FASTCALL,
     "environ(body=None): the PEP 3333 environ; wsgi.input reads body, or streams it (pool threads only)."},
    {"header", (PyCFunction)ex_header, METH_O, "header(name: bytes): the first value of that field, or None."},
    {"cancel_on_disconnect", (PyCFunction)ex_cancel_on_disconnect, METH_NOARGS,
     "Cancel the handler if the client disconnects."},
    {"then", (PyCFunction)ex_then, METH_O,
     "then(coro): once the handler's coroutine returns, drive coro in its place (the same task)."},
    {"respond", (PyCFunction)(void (*)(void))ex_respond, METH_FASTCALL,
     "respond(status, content_type, body): the whole response with Content-Length; a str body is sent as UTF-8; "
     "ClientDisconnected if the client has gone."},
    {"respond_wsgi", (PyCFunction)(void (*)(void))ex_respond_wsgi, METH_FASTCALL,
     "respond_wsgi(status, headers, body): the whole response from a WSGI status line and header list; "
     "ClientDisconnected if the client has gone."},
    {"run_wsgi", (PyCFunction)(void (*)(void))ex_run_wsgi, METH_FASTCALL,
     "run_wsgi(app, environ=None): serve the request with a WSGI app in the thread pool."},
    {NULL, NULL, 0, NULL},
};

PyGetSetDef fra__native_getset[] = {
    {"disconnected", (getter)ex_disconnected, NULL, "Has the client gone?", NULL},
    {"method", (getter)ex_get_method, NULL, "scope['method']", NULL},
    {"path", (getter)ex_get_path, NULL, "scope['path']", NULL},
    {"query_string", (getter)ex_get_query_string, NULL, "scope['query_string']", NULL},
    {"root_path", (getter)ex_get_root_path, NULL, "scope['root_path']", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
