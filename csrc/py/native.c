/* native.c — the calls our own Flask entry makes on an exchange (flask_restful_async's handler
 * on this server): the body taken whole, method and path without a scope, the scope made on
 * demand, the handler cancelled when the client leaves, the whole JSON response in one call.
 * Owns nothing beyond the exchange's scope cache.  Every function here needs the GIL. */
#include "exchange_internal.h"

/* ---- native fast path (flask_restful_async.asgi on this server) ---- */

/* take_body(): the whole request body as bytes when all of it has arrived and none was
 * received yet (it is then delivered: receive() gives http.disconnect later), else None and
 * nothing changes (the caller uses receive()). */
static PyObject *ex_take_body(ExchangeObject *ex, PyObject *unused) {
  fra_req *r = ex->req;
  if (ex->gone || !r || ex->complete || ex->body_delivered || !r->complete) Py_RETURN_NONE;
  size_t avail = r->body_len - r->body_off;
  PyObject *body = avail ? PyBytes_FromStringAndSize(r->body + r->body_off, (Py_ssize_t)avail)
                         : Py_NewRef(ex->srv->st->empty_bytes);
  if (!body) return NULL;
  r->body_off = r->body_len = 0;
  ex->body_delivered = 1;
  if (ex->conn) fra_conn_body_consumed(ex->conn);
  fra_srv_after_call(ex->srv);
  return body;
}

static int need_req(ExchangeObject *ex) {
  if (ex->req) return 0;
  PyErr_SetString(PyExc_RuntimeError, "the request is no longer available");
  return -1;
}

/* scope(): the ASGI scope (made on first call, then the same dict). */
static PyObject *ex_scope(ExchangeObject *ex, PyObject *unused) {
  if (!ex->scope) {
    if (need_req(ex) < 0) return NULL;
    ex->scope = fra_build_scope(ex);
  }
  return Py_XNewRef(ex->scope);
}

static PyObject *ex_get_method(ExchangeObject *ex, void *unused) {
  return need_req(ex) < 0 ? NULL : fra_scope_method(ex);
}

static PyObject *ex_get_path(ExchangeObject *ex, void *unused) {
  return need_req(ex) < 0 ? NULL : fra_scope_path(ex);
}

static PyObject *ex_get_root_path(ExchangeObject *ex, void *unused) { return Py_NewRef(ex->srv->root_path); }

/* cancel_on_disconnect(): from now on, a client that disconnects (or closes its side) while
 * the handler runs cancels it, as task.cancel() would; `disconnected` tells afterwards. */
static PyObject *ex_cancel_on_disconnect(ExchangeObject *ex, PyObject *unused) {
  ex->cancel_on_gone = 1;
  if (ex->gone && !ex->task_done) return fra__ex_cancel(ex, ex->srv->st->empty_tuple, NULL);
  Py_RETURN_NONE;
}

static PyObject *ex_disconnected(ExchangeObject *ex, void *unused) { return PyBool_FromLong(ex->gone); }

/* A handler waiting on a future is cancelled because its client left. */
void fra__ex_cancel_for_disconnect(ExchangeObject *ex) {
  if (!ex->cancel_on_gone || ex->task_done || ex->kind != FRA_IF_ASGI) return;
  ex->cancel_on_gone = 0;
  PyObject *r = fra__ex_cancel(ex, ex->srv->st->empty_tuple, NULL);
  if (!r) PyErr_WriteUnraisable((PyObject *)ex);
  Py_XDECREF(r);
}

/* respond(status, content_type, body): the whole response in one call, with Content-Length
 * (what http.response.start + http.response.body would send, without the dicts).  body is
 * bytes-like, or str sent as UTF-8.  Raises ClientDisconnected once the client has gone. */
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
  if (ex->started) {
    PyErr_SetString(PyExc_RuntimeError, "http.response.start sent twice");
    return NULL;
  }
  Py_buffer ct, body;
  if (PyObject_GetBuffer(args[1], &ct, PyBUF_SIMPLE) < 0) return NULL;
  if (PyUnicode_Check(args[2])) {
    /* text: sent as UTF-8 (for ASCII text, the string's own buffer) */
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(args[2], &n);
    if (!u || PyBuffer_FillInfo(&body, args[2], (void *)u, n, 1, PyBUF_SIMPLE) < 0) {
      PyBuffer_Release(&ct);
      return NULL;
    }
  } else if (PyObject_GetBuffer(args[2], &body, PyBUF_SIMPLE) < 0) {
    PyBuffer_Release(&ct);
    return NULL;
  }
  int rc;
  if (ex->gone || !ex->conn) {
    /* The client is gone: raised as ASGI send() does (the caller knows nothing was sent). */
    PyErr_SetString(ex->srv->st->ClientDisconnected, "the client has disconnected");
    rc = -1;
  } else {
    rc = fra_ex_head_begin(ex, (int)code, NULL, 0);
    if (rc == 0) rc = fra_ex_head_add(ex, "content-type", 12, ct.buf, (size_t)ct.len);
    if (rc == 0) {
      ex->started = 1;
      rc = fra_ex_body(ex, body.buf, (size_t)body.len, 0);
    }
  }
  PyBuffer_Release(&ct);
  PyBuffer_Release(&body);
  if (rc < 0) return NULL;
  fra_ex_finish(ex);
  Py_RETURN_NONE;
}

PyMethodDef fra__native_methods[] = {
    {"take_body", (PyCFunction)ex_take_body, METH_NOARGS, "The whole body if it has arrived, else None."},
    {"scope", (PyCFunction)ex_scope, METH_NOARGS, "The ASGI scope (made on first call)."},
    {"cancel_on_disconnect", (PyCFunction)ex_cancel_on_disconnect, METH_NOARGS,
     "Cancel the handler if the client disconnects."},
    {"respond", (PyCFunction)(void (*)(void))ex_respond, METH_FASTCALL,
     "respond(status, content_type, body): the whole response with Content-Length; a str body is sent as UTF-8; "
     "ClientDisconnected if the client has gone."},
    {NULL, NULL, 0, NULL},
};

PyGetSetDef fra__native_getset[] = {
    {"disconnected", (getter)ex_disconnected, NULL, "Has the client gone?", NULL},
    {"method", (getter)ex_get_method, NULL, "scope['method']", NULL},
    {"path", (getter)ex_get_path, NULL, "scope['path']", NULL},
    {"root_path", (getter)ex_get_root_path, NULL, "scope['root_path']", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
