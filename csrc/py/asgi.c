/* asgi.c — ASGI receive() and send() for an exchange: body messages from body.c's sink,
 * http.response.start / http.response.body into framing.c, the zero-copy file extensions
 * (http.response.zerocopy, http.response.pathsend: sendfile(2) by the core, see
 * core/fileout.c), backpressure through a future when the write queue is above its high
 * watermark or a file is still going out, and _core.ClientDisconnected from send() once the
 * client has gone (ASGI spec 2.4).  Owns the futures receive() and send() return while they
 * wait, and a file's dup()ed descriptor until the core takes it.  Every function here needs
 * the GIL. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
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

/* Checks common to the file messages: 1 when the message may go on, else 0 with an exception
 * set. */
static int body_allowed(ExchangeObject *ex, const char *what) {
  fra_state *st = ex->srv->st;
  if (ex->gone || !ex->conn) {
    raise_gone(st);
    return 0;
  }
  if (!ex->started) {
    PyErr_Format(PyExc_RuntimeError, "%s before http.response.start", what);
    return 0;
  }
  if (ex->complete) {
    PyErr_SetString(PyExc_RuntimeError, "response already complete");
    return 0;
  }
  if (ex->file_busy) {
    PyErr_Format(PyExc_RuntimeError, "%s while a file is still going out: await the previous send()", what);
    return 0;
  }
  return 1;
}

/* Reads an optional non-negative integer item; *has = 0 when absent or None. */
static int get_uint_item(PyObject *d, PyObject *key, uint64_t *out, int *has, const char *what) {
  PyObject *v = PyDict_GetItemWithError(d, key); // borrowed
  *has = 0;
  if (!v) return PyErr_Occurred() ? -1 : 0;
  if (v == Py_None) return 0;
  unsigned long long x = PyLong_AsUnsignedLongLong(v);
  if (x == (unsigned long long)-1 && PyErr_Occurred()) {
    PyErr_Format(PyExc_ValueError, "%s: must be an int >= 0", what);
    return -1;
  }
  *out = x;
  *has = 1;
  return 0;
}

/* count bytes of the regular file fd (a dup we own, consumed) from off, framed (framing.c) and
 * handed to the core.  Completes at once when the kernel took it all (or there is no body);
 * else send() returns a future resolved when the file is out (the client's pace: backpressure,
 * with no byte of it in our memory).  last completes the response. */
static PyObject *send_file(ExchangeObject *ex, int fd, uint64_t off, uint64_t count, int last) {
  fra_state *st = ex->srv->st;
  char after[16];
  size_t after_len;
  int rc = fra_ex_file_frame(ex, count, last, after, &after_len);
  if (rc < 0) {
    close(fd);
    return NULL;
  }
  if (rc == 0 || !ex->conn) {
    close(fd);
  } else {
    rc = fra_conn_sendfile(ex->conn, fd, off, count, after, after_len);
    fra_srv_after_call(ex->srv);
    if (rc < 0) return raise_gone(st);
    if (rc == 0) {
      Py_CLEAR(ex->send_waiter);
      ex->send_waiter = PyObject_CallNoArgs(ex->srv->create_future);
      if (!ex->send_waiter) return NULL;
      ex->file_busy = 1;
      ex->file_last = (uint8_t)last;
      return Py_NewRef(ex->send_waiter);
    }
  }
  if (last) fra_ex_finish(ex);
  else fra_srv_after_call(ex->srv);
  return Py_NewRef(st->none_ready);
}

/* http.response.zerocopy (the ASGI zero-copy send extension): "file" (a file object or an int
 * descriptor) from "offset" (else its current position), "count" bytes (else to its end). */
static PyObject *send_zerocopy(ExchangeObject *ex, PyObject *msg) {
  fra_state *st = ex->srv->st;
  if (!body_allowed(ex, "http.response.zerocopy")) return NULL;
  PyObject *file = PyDict_GetItemWithError(msg, st->s_file); // borrowed
  if (!file) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "http.response.zerocopy without 'file'");
    return NULL;
  }
  int fd = PyObject_AsFileDescriptor(file);
  if (fd < 0) return NULL;
  uint64_t off = 0, count = 0;
  int has_off, has_count;
  if (get_uint_item(msg, st->s_offset, &off, &has_off, "http.response.zerocopy 'offset'") < 0 ||
      get_uint_item(msg, st->s_count, &count, &has_count, "http.response.zerocopy 'count'") < 0)
    return NULL;
  PyObject *mb = PyDict_GetItemWithError(msg, st->s_more_body); // borrowed
  int more = mb ? PyObject_IsTrue(mb) : 0;
  if (more < 0 || (!mb && PyErr_Occurred())) return NULL;
  struct stat sb;
  if (fstat(fd, &sb) < 0) return PyErr_SetFromErrno(PyExc_OSError);
  if (!S_ISREG(sb.st_mode)) {
    PyErr_SetString(PyExc_ValueError, "http.response.zerocopy: 'file' must be a regular file");
    return NULL;
  }
  if (!has_off) {
    off_t pos = lseek(fd, 0, SEEK_CUR);
    if (pos < 0) return PyErr_SetFromErrno(PyExc_OSError);
    off = (uint64_t)pos;
  }
  uint64_t size = (uint64_t)sb.st_size, avail = off < size ? size - off : 0;
  if (!has_count) count = avail;
  else if (count > avail) {
    PyErr_Format(PyExc_ValueError, "http.response.zerocopy: offset + count (%llu) beyond the file's end (%llu)",
                 (unsigned long long)(off + count), (unsigned long long)size);
    return NULL;
  }
  /* The file's position moves past what is sent, as if it had been read. */
  lseek(fd, (off_t)(off + count), SEEK_SET);
  /* The app may close its file once send() returns: the core keeps a descriptor of its own. */
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return PyErr_SetFromErrno(PyExc_OSError);
  return send_file(ex, own, off, count, !more);
}

/* http.response.pathsend (ASGI extension): the whole file at "path", and the response ends. */
static PyObject *send_pathsend(ExchangeObject *ex, PyObject *msg) {
  fra_state *st = ex->srv->st;
  if (!body_allowed(ex, "http.response.pathsend")) return NULL;
  PyObject *path = PyDict_GetItemWithError(msg, st->s_path); // borrowed
  if (!path) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "http.response.pathsend without 'path'");
    return NULL;
  }
  PyObject *encoded = NULL;
  if (!PyUnicode_FSConverter(path, &encoded)) return NULL;
  int fd = open(PyBytes_AS_STRING(encoded), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    Py_DECREF(encoded);
    return NULL;
  }
  Py_DECREF(encoded);
  struct stat sb;
  int bad = fstat(fd, &sb) < 0 ? errno : S_ISREG(sb.st_mode) ? 0 : EISDIR;
  if (bad) {
    errno = bad;
    PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    close(fd);
    return NULL;
  }
  return send_file(ex, fd, 0, (uint64_t)sb.st_size, 1);
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
  if (type == st->s_http_response_zerocopy || PyUnicode_Compare(type, st->s_http_response_zerocopy) == 0)
    return send_zerocopy(ex, msg);
  if (type == st->s_http_response_pathsend || PyUnicode_Compare(type, st->s_http_response_pathsend) == 0)
    return send_pathsend(ex, msg);
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
