/* asgi.c — ASGI receive() and send() for an exchange: body messages from body.c's sink,
 * http.response.start / http.response.body into framing.c, backpressure through a future
 * when the write queue is above its high watermark, and _core.ClientDisconnected from send()
 * once the client has gone (ASGI spec 2.4).  Owns the futures receive() and send() return
 * while they wait.  Every function here needs the GIL. */
#include "exchange_internal.h"

PyObject *fra__asgi_request_msg(ExchangeObject *ex) {
  fra_state *st = ex->srv->st;
  fra_req *r = ex->req;
  PyObject *body = fra__body_take(ex, 0); /* (reading resumes if it had stopped for it) */
  if (!body) return NULL;
  int more = !r->complete || fra__body_pending(ex);
  if (!more) ex->body_delivered = 1;
  PyObject *d = PyDict_New();
  if (!d || PyDict_SetItem(d, st->s_type, st->s_http_request) < 0 || PyDict_SetItem(d, st->s_body, body) < 0 ||
      PyDict_SetItem(d, st->s_more_body, more ? Py_True : Py_False) < 0) {
    Py_XDECREF(d);
    Py_DECREF(body);
    return NULL;
  }
  Py_DECREF(body);
  return d;
}

static PyObject *ex_receive(ExchangeObject *ex, PyObject *unused) {
  fra_state *st = ex->srv->st;
  fra_req *r = ex->req;
  PyObject *msg;
  if (ex->gone || !r || ex->complete || (ex->body_delivered && !ex->conn)) {
    msg = fra__disconnect_msg(st);
  } else if (!ex->body_delivered && (fra_req_body_pending(r) || r->complete)) {
    msg = fra__asgi_request_msg(ex);
    fra_srv_after_call(ex->srv);
  } else {
    if (ex->recv_waiter) {
      PyErr_SetString(PyExc_RuntimeError, "receive() is already being awaited");
      return NULL;
    }
    if (!ex->body_delivered) {
      fra__ex_continue(ex);
      fra_srv_after_call(ex->srv);
    }
    ex->recv_waiter = PyObject_CallNoArgs(ex->srv->create_future);
    return Py_XNewRef(ex->recv_waiter);
  }
  if (!msg) return NULL;
  PyObject *rd = fra_ready_new(st, msg);
  Py_DECREF(msg);
  return rd;
}

static int get_buffer_item(PyObject *d, PyObject *key, Py_buffer *view, int *has) {
  PyObject *v = PyDict_GetItemWithError(d, key); // borrowed
  *has = 0;
  if (!v) return PyErr_Occurred() ? -1 : 0;
  if (PyObject_GetBuffer(v, view, PyBUF_SIMPLE) < 0) return -1;
  *has = 1;
  return 0;
}

static int send_start(ExchangeObject *ex, PyObject *msg) {
  fra_state *st = ex->srv->st;
  if (ex->started) {
    PyErr_SetString(PyExc_RuntimeError, "http.response.start sent twice");
    return -1;
  }
  PyObject *status = PyDict_GetItemWithError(msg, st->s_status); // borrowed
  if (!status) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "http.response.start without status");
    return -1;
  }
  long code = PyLong_AsLong(status);
  if (code == -1 && PyErr_Occurred()) return -1;
  if (code < 100 || code > 999) {
    PyErr_Format(PyExc_ValueError, "invalid status %ld", code);
    return -1;
  }
  if (fra_ex_head_begin(ex, (int)code, NULL, 0) < 0) return -1;
  PyObject *headers = PyDict_GetItemWithError(msg, st->s_headers); // borrowed
  if (!headers && PyErr_Occurred()) return -1;
  if (headers) {
    PyObject *seq = PySequence_Fast(headers, "headers must be an iterable of (name, value) pairs");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
      PyObject *pair = PySequence_Fast_GET_ITEM(seq, i); // borrowed, as are name and value
      PyObject *name, *value;
      if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
        name = PyTuple_GET_ITEM(pair, 0);
        value = PyTuple_GET_ITEM(pair, 1);
      } else if (PyList_Check(pair) && PyList_GET_SIZE(pair) == 2) {
        name = PyList_GET_ITEM(pair, 0);
        value = PyList_GET_ITEM(pair, 1);
      } else {
        PyErr_SetString(PyExc_TypeError, "each header must be a (name, value) pair of bytes");
        Py_DECREF(seq);
        return -1;
      }
      Py_buffer nb, vb;
      if (PyObject_GetBuffer(name, &nb, PyBUF_SIMPLE) < 0) { Py_DECREF(seq); return -1; }
      if (PyObject_GetBuffer(value, &vb, PyBUF_SIMPLE) < 0) { PyBuffer_Release(&nb); Py_DECREF(seq); return -1; }
      int rc = fra_ex_head_add(ex, nb.buf, (size_t)nb.len, vb.buf, (size_t)vb.len);
      PyBuffer_Release(&nb);
      PyBuffer_Release(&vb);
      if (rc < 0) {
        Py_DECREF(seq);
        return -1;
      }
    }
    Py_DECREF(seq);
  }
  ex->started = 1;
  return 0;
}

/* The client has gone: ASGI spec 2.4 asks send() to raise an OSError subclass, so an app
 * streaming a response stops instead of producing for nobody. */
static PyObject *raise_gone(fra_state *st) {
  PyErr_SetString(st->ClientDisconnected, "the client has disconnected");
  return NULL;
}

static PyObject *ex_send(ExchangeObject *ex, PyObject *msg) {
  fra_state *st = ex->srv->st;
  if (!PyDict_Check(msg)) {
    PyErr_SetString(PyExc_TypeError, "ASGI message must be a dict");
    return NULL;
  }
  PyObject *type = PyDict_GetItemWithError(msg, st->s_type); // borrowed
  if (!type) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "ASGI message without 'type'");
    return NULL;
  }
  if (!PyUnicode_Check(type)) {
    PyErr_Format(PyExc_TypeError, "ASGI message type must be a str, not %.100s", Py_TYPE(type)->tp_name);
    return NULL;
  }
  if (type == st->s_http_response_body || PyUnicode_Compare(type, st->s_http_response_body) == 0) {
    if (ex->gone) return raise_gone(st);
    if (!ex->started) {
      PyErr_SetString(PyExc_RuntimeError, "http.response.body before http.response.start");
      return NULL;
    }
    if (ex->complete) {
      PyErr_SetString(PyExc_RuntimeError, "response already complete");
      return NULL;
    }
    if (!ex->conn) return raise_gone(st);
    Py_buffer body;
    int has;
    if (get_buffer_item(msg, st->s_body, &body, &has) < 0) return NULL;
    PyObject *mb = PyDict_GetItemWithError(msg, st->s_more_body); // borrowed
    int more = mb ? PyObject_IsTrue(mb) : 0;
    if (more < 0 || (!mb && PyErr_Occurred())) {
      if (has) PyBuffer_Release(&body);
      return NULL;
    }
    int rc = fra_ex_body(ex, has ? body.buf : "", has ? (size_t)body.len : 0, more);
    if (has) PyBuffer_Release(&body);
    if (rc < 0) return NULL;
    if (!more) {
      fra_ex_finish(ex);
      return Py_NewRef(st->none_ready);
    }
    fra_srv_after_call(ex->srv);
    if (ex->conn && fra_conn_queued(ex->conn) > FRA_WRITE_HIGH) {
      /* Backpressure: the app waits until the client has taken most of what is queued. */
      Py_CLEAR(ex->send_waiter);
      ex->send_waiter = PyObject_CallNoArgs(ex->srv->create_future);
      if (!ex->send_waiter) return NULL;
      fra_conn_want_drain(ex->conn);
      return Py_NewRef(ex->send_waiter);
    }
    return Py_NewRef(st->none_ready);
  }
  if (type == st->s_http_response_start || PyUnicode_Compare(type, st->s_http_response_start) == 0) {
    if (ex->gone) return raise_gone(st);
    if (send_start(ex, msg) < 0) return NULL;
    return Py_NewRef(st->none_ready);
  }
  PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message type %R", type);
  return NULL;
}

static PyMethodDef receive_def = {"receive", (PyCFunction)ex_receive, METH_NOARGS, NULL};
static PyMethodDef send_def = {"send", (PyCFunction)ex_send, METH_O, NULL};

PyObject *fra__asgi_call_app(ExchangeObject *ex) {
  PyObject *coro = NULL;
  PyObject *scope = fra_build_scope(ex);
  PyObject *recv = scope ? PyCFunction_New(&receive_def, (PyObject *)ex) : NULL;
  PyObject *send = recv ? PyCFunction_New(&send_def, (PyObject *)ex) : NULL;
  if (send) {
    PyObject *args[3] = {scope, recv, send};
    coro = PyObject_Vectorcall(ex->srv->app, args, 3, NULL);
  }
  Py_XDECREF(scope);
  Py_XDECREF(recv);
  Py_XDECREF(send);
  return coro;
}

PyMethodDef fra__asgi_methods[] = {
    {"receive", (PyCFunction)ex_receive, METH_NOARGS, "ASGI receive()."},
    {"send", (PyCFunction)ex_send, METH_O, "ASGI send(message)."},
    {NULL, NULL, 0, NULL},
};
