/* exchange.c — one request/response exchange: the Exchange type, its lifetime, the hooks the
 * core calls for it, and handing the connection back when the response is complete.  The
 * exchange's other rooms: framing.c (response bytes), task.c (the task-like driver of an ASGI
 * or native handler), asgi.c (receive/send), native.c (the calls of our own Flask entry),
 * wsgi.c (the thread pool side).  Owns its coroutine, context, futures and response head
 * buffer; owns the request once its connection is gone.  Every function here needs the GIL. */
#include <unistd.h>
#include "exchange_internal.h"

/* ---- lifetime ---- */

ExchangeObject *fra_exchange_new(ServerObject *so, fra_conn *c) {
  if (fra_fault("exchange_alloc")) {
    PyErr_NoMemory();
    return NULL;
  }
  ExchangeObject *ex = PyObject_GC_New(ExchangeObject, so->st->ExchangeType);
  if (!ex) return NULL;
  memset((char *)ex + sizeof(PyObject), 0, offsetof(ExchangeObject, inline_head) - sizeof(PyObject));
  Py_INCREF(so);
  ex->srv = so;
  ex->conn = c;
  ex->req = c->parser.req;
  ex->job_kind = FRA_JOB_EXCHANGE;
  ex->kind = (uint8_t)so->interface;
  ex->keep_alive = ex->req->keep_alive;
  ex->is_head = ex->req->method == HTTP_HEAD;
  ex->head = ex->inline_head;
  ex->head_cap = sizeof ex->inline_head;
  PyObject_GC_Track(ex);
  return ex;
}

/* The request is released once nothing can read it: at finish when the connection lives
 * (fra_conn_finish does it), or here when the connection went first. */
void fra__ex_drop_req(ExchangeObject *ex) {
  if (ex->req && ex->own_req) {
    ex->req->retained = 0;
    fra_server_release_req(&ex->srv->core, ex->req);
  }
  ex->req = NULL;
  ex->own_req = 0;
}

static int ex_traverse(ExchangeObject *ex, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(ex));
  Py_VISIT(ex->srv);
  Py_VISIT(ex->coro);
  Py_VISIT(ex->ctx);
  Py_VISIT(ex->fut_waiter);
  Py_VISIT(ex->recv_waiter);
  Py_VISIT(ex->send_waiter);
  Py_VISIT(ex->cancel_msg);
  Py_VISIT(ex->scope);
  Py_VISIT(ex->wakeup_cb);
  Py_VISIT(ex->step_cb);
  Py_VISIT(ex->done_cbs);
  Py_VISIT(ex->result);
  Py_VISIT(ex->name);
  Py_VISIT(ex->outq);
  Py_VISIT(ex->sink);
  Py_VISIT(ex->sinks_full);
  Py_VISIT(ex->body_waiter);
  Py_VISIT(ex->wsgi_app);
  Py_VISIT(ex->wsgi_ctx);
  Py_VISIT(ex->environ);
  Py_VISIT(ex->group);
  Py_VISIT(ex->next_coro);
  return 0;
}

static int ex_clear(ExchangeObject *ex) {
  fra_group_leave(ex);
  Py_CLEAR(ex->coro);
  Py_CLEAR(ex->ctx);
  Py_CLEAR(ex->fut_waiter);
  Py_CLEAR(ex->recv_waiter);
  Py_CLEAR(ex->send_waiter);
  Py_CLEAR(ex->cancel_msg);
  Py_CLEAR(ex->scope);
  Py_CLEAR(ex->wakeup_cb);
  Py_CLEAR(ex->step_cb);
  Py_CLEAR(ex->done_cbs);
  Py_CLEAR(ex->result);
  Py_CLEAR(ex->name);
  Py_CLEAR(ex->outq);
  Py_CLEAR(ex->sink);
  Py_CLEAR(ex->sinks_full);
  Py_CLEAR(ex->body_waiter);
  Py_CLEAR(ex->wsgi_app);
  Py_CLEAR(ex->wsgi_ctx);
  Py_CLEAR(ex->environ);
  Py_CLEAR(ex->next_coro);
  return 0;
}

static void ex_dealloc(ExchangeObject *ex) {
  PyTypeObject *tp = Py_TYPE(ex);
  PyObject_GC_UnTrack(ex);
  if (ex->weakreflist) PyObject_ClearWeakRefs((PyObject *)ex);
  ex_clear(ex);
  if (ex->srv) {
    fra__ex_drop_req(ex);
    Py_CLEAR(ex->srv);
  }
  if (ex->head != ex->inline_head) PyMem_Free(ex->head);
  if (ex->wflags & FRA_W_FILE) close(ex->file_fd); /* a WSGI file the loop never took */
  PyObject_GC_Del(ex);
  Py_DECREF(tp);
}

/* ---- futures ---- */

void fra__resolve(PyObject **slot, PyObject *value) {
  PyObject *fut = *slot;
  if (!fut) return;
  *slot = NULL;
  PyObject *r = PyObject_CallMethod(fut, "done", NULL);
  if (r == Py_False) {
    PyObject *x = PyObject_CallMethod(fut, "set_result", "(O)", value);
    if (!x) PyErr_WriteUnraisable(fut);
    Py_XDECREF(x);
  } else if (!r) {
    PyErr_WriteUnraisable(fut);
  }
  Py_XDECREF(r);
  Py_DECREF(fut);
}

PyObject *fra__disconnect_msg(fra_state *st) {
  PyObject *d = PyDict_New();
  if (d && PyDict_SetItem(d, st->s_type, st->s_http_disconnect) < 0) Py_CLEAR(d);
  return d;
}

/* Resolves the pending receive() with msg, a new reference that is always consumed. */
void fra__ex_resolve_recv(ExchangeObject *ex, PyObject *msg) {
  if (!msg) {
    PyErr_WriteUnraisable((PyObject *)ex);
    return;
  }
  if (ex->recv_waiter) fra__resolve(&ex->recv_waiter, msg);
  Py_DECREF(msg);
}

/* ---- the response is complete ---- */

/* The dispatched request ends without a response that can be completed: it is released (unless
 * an exchange retained it), it no longer counts as active, and the connection closes. */
static void abort_request(fra_conn *c) {
  fra_req *r = c->parser.req;
  c->parser.req = NULL;
  if (r && !r->retained) fra_server_release_req(c->srv, r);
  c->srv->nactive--;
  fra_conn_abort(c);
}

/* Hands the connection back (loop thread only). */
void fra_ex_finish(ExchangeObject *ex) {
  if (ex->finished) return;
  ex->finished = 1;
  ex->complete = 1;
  fra_group_leave(ex);
  fra_conn *c = ex->conn;
  fra_state *st = ex->srv->st;
  if (ex->recv_waiter) fra__ex_resolve_recv(ex, fra__disconnect_msg(st));
  if (ex->send_waiter) fra__resolve(&ex->send_waiter, Py_None);
  if (ex->body_waiter) fra__resolve(&ex->body_waiter, Py_None);
  if (!c) {
    fra__ex_drop_req(ex);
    return;
  }
  ex->conn = NULL;
  if (ex->srv->native && !ex->scope && ex->req && ex->req == c->parser.req) {
    /* The native entry makes the scope on demand: whatever still holds the request (a task
     * the handler started) can still read it, so the request stays ours until we go. */
    ex->req->retained = 1;
    ex->own_req = 1;
  } else {
    ex->req = NULL; /* fra_conn_finish releases it */
  }
  int abort = ex->wflags & FRA_W_ABORT;
  c->active = NULL;
  if (abort) {
    abort_request(c);
  } else {
    fra_conn_finish(c, ex->keep_alive, ex->status, ex->body_sent);
  }
  fra_srv_after_call(ex->srv);
  Py_DECREF(ex); /* the connection's reference */
}

/* ---- the type ---- */

static PyObject *ex_repr(ExchangeObject *ex) {
  char buf[300];
  if (ex->req)
    snprintf(buf, sizeof buf, "<Exchange %.*s %.*s>", (int)ex->req->method_len, ex->req->buf + ex->req->method_off,
             (int)(ex->req->url_len > 200 ? 200 : ex->req->url_len), ex->req->buf + ex->req->url_off);
  else
    snprintf(buf, sizeof buf, "<Exchange>");
  return PyUnicode_DecodeLatin1(buf, (Py_ssize_t)strlen(buf), "replace");
}

/* The type's methods and attributes, joined from the rooms that define them. */
static PyMethodDef ex_methods[48];
static PyGetSetDef ex_getset[16];

static PyMemberDef ex_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ExchangeObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot ex_slots[] = {
    {Py_tp_doc, "One HTTP request being served; acts as the asyncio task of an ASGI handler."},
    {Py_tp_dealloc, ex_dealloc},
    {Py_tp_traverse, ex_traverse},
    {Py_tp_clear, ex_clear},
    {Py_tp_methods, ex_methods},
    {Py_tp_getset, ex_getset},
    {Py_tp_members, ex_members},
    {Py_tp_repr, ex_repr},
    {0, NULL},
};

PyType_Spec fra_exchange_spec = {
    .name = "flask_restful_async._core.Exchange",
    .basicsize = sizeof(ExchangeObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = ex_slots,
};

int fra_exchange_spec_prepare(void) {
  static PyMethodDef *const methods[] = {fra__asgi_methods, fra__task_methods, fra__native_methods,
                                         fra__stream_methods, NULL};
  static PyGetSetDef *const getset[] = {fra__task_getset, fra__native_getset, NULL};
  if (ex_methods[0].ml_name) return 0;
  if (fra_join_methods(ex_methods, sizeof ex_methods / sizeof ex_methods[0], methods) < 0 ||
      fra_join_getset(ex_getset, sizeof ex_getset / sizeof ex_getset[0], getset) < 0) {
    PyErr_SetString(PyExc_SystemError, "Exchange: method table too small");
    return -1;
  }
  return 0;
}

/* ---- hooks from the core ---- */

/* The client has gone: whatever the handler awaits from it resolves, and a handler that asked
 * for it is cancelled. */
static void client_gone(ExchangeObject *ex) {
  fra_group_leave(ex);
  if (ex->recv_waiter) fra__ex_resolve_recv(ex, fra__disconnect_msg(ex->srv->st));
  if (ex->send_waiter) fra__resolve(&ex->send_waiter, Py_None);
  if (ex->body_waiter) fra__resolve(&ex->body_waiter, Py_None);
  fra__ex_cancel_for_disconnect(ex);
}

void fra_hook_request(fra_conn *c) {
  ServerObject *so = c->srv->data;
  ExchangeObject *ex = fra_exchange_new(so, c);
  if (!ex) {
    /* Out of memory: the request cannot be served; nothing of it may be kept. */
    PyErr_WriteUnraisable(so->app);
    abort_request(c);
    return;
  }
  c->active = Py_NewRef(ex); /* the connection's reference; ours is dropped below */
  if (ex->kind == FRA_IF_ASGI) {
    /* body bytes that came with the head: copied once, now, before the read buffer is reused */
    if (fra__body_absorb(ex) < 0) {
      PyErr_WriteUnraisable((PyObject *)ex);
      fra__body_unsink(ex);
    }
    fra__ex_start(ex);
  } else {
    fra__body_unsink(ex); /* a pool thread reads the body from the request's queue */
    fra_threads_dispatch(ex);
  }
  Py_DECREF(ex);
}

void fra_hook_body(fra_conn *c) {
  ExchangeObject *ex = EX_FROM_CONN(c);
  if (!ex) return;
  if (ex->kind == FRA_IF_WSGI) {
    fra_threads_notify(ex);
    return;
  }
  if (ex->body_waiter) fra__ex_gather_body(ex);
  else if (ex->recv_waiter && !ex->body_delivered) fra__ex_resolve_recv(ex, fra__asgi_request_msg(ex));
}

void fra_hook_disconnect(fra_conn *c) {
  ExchangeObject *ex = EX_FROM_CONN(c);
  if (!ex) return;
  ex->gone = 1;
  if (ex->kind == FRA_IF_WSGI) {
    fra_threads_notify(ex);
    return;
  }
  client_gone(ex);
}

void fra_hook_drain(fra_conn *c) {
  ExchangeObject *ex = EX_FROM_CONN(c);
  if (!ex) return;
  if (ex->kind == FRA_IF_WSGI) {
    ex->out_pending = fra_conn_queued(c);
    fra_threads_notify(ex);
    return;
  }
  if (ex->send_waiter) fra__resolve(&ex->send_waiter, Py_None);
}

/* A file the core sent for this exchange has ended (see fra_conn_sendfile). */
void fra_hook_file_done(fra_conn *c, int status) {
  ExchangeObject *ex = EX_FROM_CONN(c);
  if (!ex || !ex->file_busy) return;
  ex->file_busy = 0;
  ex->file_status = status;
  if (ex->kind == FRA_IF_WSGI) {
    fra_threads_notify(ex);
    return;
  }
  if (status < 0) {
    /* The file could not be read to its end: the response cannot be completed (the core
     * closes the connection after this); the app's await raises. */
    ex->wflags |= FRA_W_ABORT;
    PyObject *fut = ex->send_waiter;
    ex->send_waiter = NULL;
    if (fut) {
      PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", -status, uv_strerror(status));
      PyObject *r = exc ? PyObject_CallMethodOneArg(fut, ex->srv->st->s_set_exception, exc) : NULL;
      if (!r) PyErr_WriteUnraisable(fut);
      Py_XDECREF(r);
      Py_XDECREF(exc);
      Py_DECREF(fut);
    }
    return;
  }
  if (ex->file_last) fra_ex_finish(ex); /* resolves send_waiter */
  else if (ex->send_waiter) fra__resolve(&ex->send_waiter, Py_None);
}

void fra_hook_close(fra_conn *c) {
  Py_CLEAR(*(PyObject **)&c->data);
  ExchangeObject *ex = EX_FROM_CONN(c);
  if (!ex) return;
  /* The request outlives its connection: the exchange owns it now. */
  ex->gone = 1;
  ex->own_req = 1;
  ex->conn = NULL;
  c->active = NULL;
  if (ex->kind == FRA_IF_WSGI) fra_threads_notify(ex);
  else client_gone(ex);
  c->srv->nactive--;
  Py_DECREF(ex);
}
