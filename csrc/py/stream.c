/* stream.c — what a long-lived streamed response (Server-Sent Events) asks of the server
 * beyond send(): keepalive bytes written by the connection's timer when the stream is silent,
 * a write timeout of its own, and StreamGroup, a registry of streaming exchanges on one loop
 * that writes one published chunk to all of them (framed once, one shared buffer).  Owns the
 * group's member array (borrowed exchange pointers: each member holds a strong reference to
 * its group and leaves it when its response ends, its client goes or it is freed).  Every
 * function here needs the GIL. */
#include "exchange_internal.h"

typedef struct StreamGroupObject {
  PyObject_HEAD
  ExchangeObject **members;               /* borrowed: each leaves before it can be freed */
  Py_ssize_t n, cap;
  size_t max_queued;                      /* a member with more bytes queued is dropped */
  PyObject *weakreflist;
} StreamGroupObject;

/* ---- on the exchange ---- */

/* A stream's calls need its response begun and the head on the wire: what the core writes
 * for it (pings) or a group writes to it comes after the head.  0, or -1 with an error. */
static int stream_ready(ExchangeObject *ex, const char *what) {
  if (ex->kind != FRA_IF_ASGI) {
    PyErr_Format(PyExc_RuntimeError, "%s(): not for a response sent from the thread pool", what);
    return -1;
  }
  if (!ex->started || ex->complete) {
    PyErr_Format(PyExc_RuntimeError, "%s(): the response %s", what, ex->complete ? "is complete" : "has not started");
    return -1;
  }
  if (ex->has_app_cl) {
    PyErr_Format(PyExc_RuntimeError, "%s(): the response has a Content-Length: nothing can be added to it", what);
    return -1;
  }
  if (ex->gone || !ex->conn) {
    PyErr_SetString(ex->srv->st->ClientDisconnected, "the client has disconnected");
    return -1;
  }
  if (!ex->head_sent && fra_ex_body(ex, "", 0, 1) < 0) return -1;
  /* The request stays for the stream's whole life: its buffers need be no larger than it. */
  if (ex->req && ex->req->complete) fra_req_shrink(ex->req);
  return 0;
}

/* A number of seconds > 0 (and at most TIMEOUT_MAX) as milliseconds, at least 1. */
static int seconds_ms(PyObject *arg, const char *what, uint64_t *ms) {
  double s = PyFloat_AsDouble(arg);
  if (s == -1.0 && PyErr_Occurred()) return -1;
  if (!(s > 0) || s > FRA_TIMEOUT_MAX_S) {
    PyErr_Format(PyExc_ValueError, "%s=%R: expected seconds > 0 and <= %d", what, arg, FRA_TIMEOUT_MAX_S);
    return -1;
  }
  double v = s * 1000.0;
  *ms = v < 1 ? 1 : (uint64_t)(v + 0.5);
  return 0;
}

/* keepalive(interval, data): whenever the stream has been silent for interval seconds, the
 * connection's timer writes data as a body chunk (no Python runs for it). */
static PyObject *ex_keepalive(ExchangeObject *ex, PyObject *const *args, Py_ssize_t n) {
  if (n != 2) {
    PyErr_SetString(PyExc_TypeError, "keepalive(interval_seconds, data)");
    return NULL;
  }
  uint64_t ms;
  if (seconds_ms(args[0], "keepalive interval", &ms) < 0) return NULL;
  if (!PyBytes_Check(args[1]) || PyBytes_GET_SIZE(args[1]) == 0) {
    PyErr_SetString(PyExc_TypeError, "keepalive(): data must be non-empty bytes");
    return NULL;
  }
  if (stream_ready(ex, "keepalive") < 0) return NULL;
  if (!ex->is_head && !ex->no_body) {
    const char *d = PyBytes_AS_STRING(args[1]);
    size_t len = (size_t)PyBytes_GET_SIZE(args[1]);
    char framed[64 + 4096];
    if (ex->chunked) {
      /* framed here once, as fra_ex_body frames a chunk */
      if (len > 4096) {
        PyErr_SetString(PyExc_ValueError, "keepalive(): data is at most 4096 bytes");
        return NULL;
      }
      size_t h = fra_chunk_head(framed, len);
      memcpy(framed + h, d, len);
      memcpy(framed + h + len, "\r\n", 2);
      d = framed;
      len += h + 2;
    }
    if (fra_conn_keepalive(ex->conn, ms, d, len) < 0) return PyErr_NoMemory();
  }
  fra_srv_after_call(ex->srv);
  Py_RETURN_NONE;
}

/* write_timeout(seconds): this response's client is dropped once it has taken nothing of its
 * queued output for that long (the server's --timeout-write, for this response). */
static PyObject *ex_write_timeout(ExchangeObject *ex, PyObject *arg) {
  uint64_t ms;
  if (seconds_ms(arg, "write_timeout", &ms) < 0) return NULL;
  if (ex->kind != FRA_IF_ASGI || ex->complete) {
    PyErr_SetString(PyExc_RuntimeError, "write_timeout(): no response under way on the loop");
    return NULL;
  }
  if (ex->gone || !ex->conn) {
    PyErr_SetString(ex->srv->st->ClientDisconnected, "the client has disconnected");
    return NULL;
  }
  if (fra_conn_write_timeout(ex->conn, ms) < 0) return PyErr_NoMemory();
  fra_srv_after_call(ex->srv);
  Py_RETURN_NONE;
}

PyMethodDef fra__stream_methods[] = {
    {"keepalive", (PyCFunction)(void (*)(void))ex_keepalive, METH_FASTCALL,
     "keepalive(interval_seconds, data): write data as a body chunk whenever the stream has been silent that long."},
    {"write_timeout", (PyCFunction)ex_write_timeout, METH_O,
     "write_timeout(seconds): drop the client if it takes nothing of queued output for that long."},
    {NULL, NULL, 0, NULL},
};

/* ---- the group ---- */

void fra_group_leave(ExchangeObject *ex) {
  StreamGroupObject *g = (StreamGroupObject *)ex->group;
  if (!g) return;
  Py_ssize_t i = ex->group_idx;
  ExchangeObject *last = g->members[--g->n];
  g->members[i] = last;
  last->group_idx = i;
  g->members[g->n] = NULL;
  ex->group = NULL;
  ex->group_idx = 0;
  Py_DECREF(g);
}

static PyObject *group_new(PyTypeObject *tp, PyObject *args, PyObject *kw) {
  Py_ssize_t max_queued;
  static char *kwlist[] = {"max_queued", NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kw, "n:StreamGroup", kwlist, &max_queued)) return NULL;
  if (max_queued <= 0) {
    PyErr_Format(PyExc_ValueError, "StreamGroup max_queued=%zd: expected a number of bytes > 0", max_queued);
    return NULL;
  }
  StreamGroupObject *g = (StreamGroupObject *)tp->tp_alloc(tp, 0);
  if (!g) return NULL;
  g->max_queued = (size_t)max_queued;
  return (PyObject *)g;
}

static void group_dealloc(StreamGroupObject *g) {
  PyTypeObject *tp = Py_TYPE(g);
  PyObject_GC_UnTrack(g);
  if (g->weakreflist) PyObject_ClearWeakRefs((PyObject *)g);
  /* no members: each holds a reference to the group */
  PyMem_Free(g->members);
  tp->tp_free((PyObject *)g);
  Py_DECREF(tp);
}

static int group_traverse(StreamGroupObject *g, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(g));
  return 0;
}

static ExchangeObject *as_exchange(StreamGroupObject *g, PyObject *obj) {
  fra_state *st = fra_state_of_type(Py_TYPE(g));
  if (!st || Py_TYPE(obj) != st->ExchangeType) {
    PyErr_Format(PyExc_TypeError, "a StreamGroup holds exchanges, not %.100s", Py_TYPE(obj)->tp_name);
    return NULL;
  }
  return (ExchangeObject *)obj;
}

/* add(exchange): the exchange's response (begun, not complete) gets every publish from now
 * on; its head is written now if it was not.  An exchange is in one group at a time. */
static PyObject *group_add(StreamGroupObject *g, PyObject *obj) {
  ExchangeObject *ex = as_exchange(g, obj);
  if (!ex) return NULL;
  if (ex->group == (PyObject *)g) Py_RETURN_NONE;
  if (stream_ready(ex, "StreamGroup.add") < 0) return NULL;
  if (g->n == g->cap) {
    Py_ssize_t cap = g->cap ? g->cap * 2 : 8;
    ExchangeObject **m = PyMem_Realloc(g->members, (size_t)cap * sizeof *m);
    if (!m) return PyErr_NoMemory();
    g->members = m;
    g->cap = cap;
  }
  fra_group_leave(ex);
  ex->group = Py_NewRef((PyObject *)g);
  ex->group_idx = g->n;
  g->members[g->n++] = ex;
  fra_srv_after_call(ex->srv);
  Py_RETURN_NONE;
}

/* discard(exchange): out of the group; nothing if it is not in it. */
static PyObject *group_discard(StreamGroupObject *g, PyObject *obj) {
  ExchangeObject *ex = as_exchange(g, obj);
  if (!ex) return NULL;
  if (ex->group == (PyObject *)g) fra_group_leave(ex);
  Py_RETURN_NONE;
}

/* publish(data): data as one body chunk to every member, framed once into a shared buffer
 * (chunked; raw for a response delimited by the close); a member whose client has more than
 * max_queued bytes waiting is dropped (its connection closed, its handler cancelled) and
 * does not count.  Returns how many got it. */
static PyObject *group_publish(StreamGroupObject *g, PyObject *arg) {
  Py_buffer data;
  if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0) return NULL;
  size_t len = (size_t)data.len;
  Py_ssize_t sent = 0;
  fra_shared *framed = NULL, *raw = NULL;
  ServerObject *so = NULL;
  if (len == 0 || g->n == 0) goto done;
  /* Members are visited from the last: one that leaves while it is written to (its write
   * failed, or it was dropped) is replaced by the last, which was already visited. */
  for (Py_ssize_t i = g->n - 1; i >= 0; i--) {
    if (i >= g->n) continue;
    ExchangeObject *ex = g->members[i];
    fra_conn *c = ex->conn;
    if (!c || ex->gone) continue;
    if (!so) so = (ServerObject *)Py_NewRef(ex->srv);
    if (ex->is_head || ex->no_body) {
      sent++;
      continue;
    }
    fra_shared **slot = ex->chunked ? &framed : &raw;
    if (!*slot) {
      char head[24];
      size_t h = ex->chunked ? fra_chunk_head(head, len) : 0;
      if (!(*slot = fra_shared_new(h + len + (ex->chunked ? 2 : 0)))) {
        PyErr_NoMemory();
        sent = -1;
        goto done;
      }
      memcpy((*slot)->data, head, h);
      memcpy((*slot)->data + h, data.buf, len);
      if (ex->chunked) memcpy((*slot)->data + h + len, "\r\n", 2);
    }
    ex->body_sent += len;
    if (fra_conn_write_shared(c, *slot) < 0) continue; /* the connection closes: it has left */
    if (fra_conn_queued(c) > g->max_queued) {
      /* It cannot keep up: dropped, so it never holds the others back or grows without end. */
      fra_conn_abort(c);
      continue;
    }
    sent++;
  }
done:
  fra_shared_release(framed);
  fra_shared_release(raw);
  PyBuffer_Release(&data);
  if (so) {
    fra_srv_after_call(so);
    Py_DECREF(so);
  }
  return sent < 0 ? NULL : PyLong_FromSsize_t(sent);
}

static Py_ssize_t group_len(StreamGroupObject *g) { return g->n; }

static PyObject *group_get_max_queued(StreamGroupObject *g, void *unused) { return PyLong_FromSize_t(g->max_queued); }

static PyMethodDef group_methods[] = {
    {"add", (PyCFunction)group_add, METH_O, "add(exchange): the streamed response gets every publish from now on."},
    {"discard", (PyCFunction)group_discard, METH_O, "discard(exchange): out of the group (nothing if absent)."},
    {"publish", (PyCFunction)group_publish, METH_O,
     "publish(data: bytes) -> int: data as a body chunk to every member; how many got it."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef group_getset[] = {
    {"max_queued", (getter)group_get_max_queued, NULL, "Bytes a member may have waiting before it is dropped.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef group_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(StreamGroupObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot group_slots[] = {
    {Py_tp_doc, "StreamGroup(max_queued): streamed responses on one loop that get the same chunks, written by C."},
    {Py_tp_new, group_new},
    {Py_tp_dealloc, group_dealloc},
    {Py_tp_traverse, group_traverse},
    {Py_tp_methods, group_methods},
    {Py_tp_getset, group_getset},
    {Py_tp_members, group_members},
    {Py_sq_length, group_len},
    {0, NULL},
};

PyType_Spec fra_stream_group_spec = {
    .name = "flask_restful_async._core.StreamGroup",
    .basicsize = sizeof(StreamGroupObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = group_slots,
};
