/* exchange.c — one request/response exchange.  For ASGI it is the task-like driver of the
 * app's coroutine: the first step runs eagerly from C inside the loop pass; only a coroutine
 * that suspends on a future is resumed from that future's callback, with the exchange entered
 * as asyncio's current task (so asyncio.timeout, wait_for and cancellation work).  It also
 * holds receive()/send(), the response framing shared with WSGI (wsgi.c), and the hooks the
 * core calls.  Owns its coroutine, context, futures and response head buffer; owns the request
 * once its connection is gone.  Every function here needs the GIL. */
#include "fra/bridge.h"

#define EX_FROM_CONN(c) ((ExchangeObject *)(c)->active)

static void ex_step(ExchangeObject *ex, PyObject *exc);
static void ex_respond_500(ExchangeObject *ex);
static PyObject *ex_cancel(ExchangeObject *ex, PyObject *args, PyObject *kw);

/* ---- the awaitable that is already complete ---- */

typedef struct {
  PyObject_HEAD
  PyObject *value;
} ReadyObject;

PyObject *fra_ready_new(fra_state *st, PyObject *value) {
  ReadyObject *r = PyObject_New(ReadyObject, st->ReadyType);
  if (!r) return NULL;
  Py_INCREF(value);
  r->value = value;
  return (PyObject *)r;
}

static void ready_dealloc(ReadyObject *r) {
  PyTypeObject *tp = Py_TYPE(r);
  Py_XDECREF(r->value);
  PyObject_Free(r);
  Py_DECREF(tp);
}

static PyObject *ready_await(PyObject *self) {
  Py_INCREF(self);
  return self;
}

static PySendResult ready_send(PyObject *self, PyObject *arg, PyObject **result) {
  ReadyObject *r = (ReadyObject *)self;
  Py_INCREF(r->value);
  *result = r->value;
  return PYGEN_RETURN;
}

static PyObject *ready_next(ReadyObject *r) {
  if (r->value == Py_None) PyErr_SetNone(PyExc_StopIteration);
  else {
    PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, r->value);
    if (e) {
      PyErr_SetObject(PyExc_StopIteration, e);
      Py_DECREF(e);
    }
  }
  return NULL;
}

static PyObject *ready_send_meth(ReadyObject *r, PyObject *arg) { return ready_next(r); }

static PyObject *ready_throw(ReadyObject *r, PyObject *const *args, Py_ssize_t n) {
  if (n < 1) {
    PyErr_SetString(PyExc_TypeError, "throw expects an exception");
    return NULL;
  }
  PyObject *e = args[0];
  if (PyExceptionClass_Check(e)) PyErr_SetNone(e);
  else PyErr_SetObject((PyObject *)Py_TYPE(e), e);
  return NULL;
}

static PyObject *ready_close(ReadyObject *r, PyObject *unused) { Py_RETURN_NONE; }

static PyMethodDef ready_methods[] = {
    {"send", (PyCFunction)ready_send_meth, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))ready_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)ready_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ready_slots[] = {
    {Py_tp_dealloc, ready_dealloc},
    {Py_am_await, ready_await},
    {Py_am_send, ready_send},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, ready_next},
    {Py_tp_methods, ready_methods},
    {0, NULL},
};

PyType_Spec fra_ready_spec = {
    .name = "flask_restful_async._core.Ready",
    .basicsize = sizeof(ReadyObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = ready_slots,
};

/* ---- lifetime ---- */

ExchangeObject *fra_exchange_new(ServerObject *so, fra_conn *c) {
  ExchangeObject *ex = PyObject_GC_New(ExchangeObject, so->st->ExchangeType);
  if (!ex) return NULL;
  memset((char *)ex + sizeof(PyObject), 0, offsetof(ExchangeObject, inline_head) - sizeof(PyObject));
  Py_INCREF(so);
  ex->srv = so;
  ex->conn = c;
  ex->req = c->parser.req;
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
static void ex_drop_req(ExchangeObject *ex) {
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
  Py_VISIT(ex->outq);
  return 0;
}

static int ex_clear(ExchangeObject *ex) {
  Py_CLEAR(ex->coro);
  Py_CLEAR(ex->ctx);
  Py_CLEAR(ex->fut_waiter);
  Py_CLEAR(ex->recv_waiter);
  Py_CLEAR(ex->send_waiter);
  Py_CLEAR(ex->cancel_msg);
  Py_CLEAR(ex->scope);
  Py_CLEAR(ex->wakeup_cb);
  Py_CLEAR(ex->step_cb);
  Py_CLEAR(ex->outq);
  return 0;
}

static void ex_dealloc(ExchangeObject *ex) {
  PyTypeObject *tp = Py_TYPE(ex);
  PyObject_GC_UnTrack(ex);
  if (ex->weakreflist) PyObject_ClearWeakRefs((PyObject *)ex);
  ex_clear(ex);
  if (ex->srv) {
    ex_drop_req(ex);
    Py_CLEAR(ex->srv);
  }
  if (ex->head != ex->inline_head) PyMem_Free(ex->head);
  PyObject_GC_Del(ex);
  Py_DECREF(tp);
}

/* Detaches from the connection: the conn's reference is dropped. */
void fra_ex_detach(ExchangeObject *ex) {
  fra_conn *c = ex->conn;
  if (!c) return;
  ex->conn = NULL;
  if (c->active == ex) {
    c->active = NULL;
    Py_DECREF(ex);
  }
}

/* ---- futures ---- */

static void resolve(PyObject **slot, PyObject *value) {
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

static PyObject *disconnect_msg(fra_state *st) {
  PyObject *d = PyDict_New();
  if (d && PyDict_SetItem(d, st->s_type, st->s_http_disconnect) < 0) Py_CLEAR(d);
  return d;
}

/* Resolves the pending receive() with msg, a new reference that is always consumed. */
static void ex_resolve_recv(ExchangeObject *ex, PyObject *msg) {
  if (!msg) {
    PyErr_WriteUnraisable((PyObject *)ex);
    return;
  }
  if (ex->recv_waiter) resolve(&ex->recv_waiter, msg);
  Py_DECREF(msg);
}

/* ---- response framing (ASGI on the loop thread, WSGI on its worker thread) ---- */

static int head_reserve(ExchangeObject *ex, size_t more) {
  if (ex->head_len + more <= ex->head_cap) return 0;
  size_t cap = ex->head_cap * 2;
  while (cap < ex->head_len + more) cap *= 2;
  char *nb;
  if (ex->head == ex->inline_head) {
    nb = PyMem_Malloc(cap);
    if (nb) memcpy(nb, ex->head, ex->head_len);
  } else {
    nb = PyMem_Realloc(ex->head, cap);
  }
  if (!nb) {
    PyErr_NoMemory();
    return -1;
  }
  ex->head = nb;
  ex->head_cap = cap;
  return 0;
}

static void head_put(ExchangeObject *ex, const char *s, size_t n) {
  memcpy(ex->head + ex->head_len, s, n);
  ex->head_len += n;
}

/* Starts the head: the status line (given, or built from the status), Date and Server go in
 * at the end unless the app sent its own. */
int fra_ex_head_begin(ExchangeObject *ex, int status, const char *line, size_t line_len) {
  ex->head_len = 0;
  ex->has_app_cl = ex->has_date = ex->has_server = ex->close_after = 0;
  ex->status = status;
  ex->no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
  if (head_reserve(ex, line ? line_len + 16 : 64) < 0) return -1;
  if (line) {
    head_put(ex, "HTTP/1.1 ", 9);
    head_put(ex, line, line_len);
    head_put(ex, "\r\n", 2);
  } else {
    ex->head_len += fra_status_line(ex->head + ex->head_len, status);
  }
  return 0;
}

static int name_is(const char *n, size_t nl, const char *lit, size_t ll) {
  return nl == ll && strncasecmp(n, lit, ll) == 0;
}

int fra_ex_head_add(ExchangeObject *ex, const char *name, size_t nlen, const char *value, size_t vlen) {
  if (!fra_valid_header_name(name, nlen)) {
    PyErr_SetString(PyExc_ValueError, "invalid response header name: empty or not a token");
    return -1;
  }
  if (!fra_valid_header_value(value, vlen)) {
    PyErr_SetString(PyExc_ValueError, "invalid response header value: contains CR, LF or NUL");
    return -1;
  }
  switch (nlen) {
  case 4:
    if (name_is(name, nlen, "date", 4)) ex->has_date = 1;
    break;
  case 6:
    if (name_is(name, nlen, "server", 6)) ex->has_server = 1;
    break;
  case 10:
    if (name_is(name, nlen, "connection", 10)) {
      if (vlen == 5 && strncasecmp(value, "close", 5) == 0) ex->close_after = 1;
      return 0; /* the server decides Connection itself */
    }
    break;
  case 14:
    if (name_is(name, nlen, "content-length", 14)) {
      uint64_t v = 0;
      if (vlen == 0 || vlen > 19) goto bad_cl;
      for (size_t i = 0; i < vlen; i++) {
        if (value[i] < '0' || value[i] > '9') goto bad_cl;
        v = v * 10 + (uint64_t)(value[i] - '0');
      }
      if (ex->has_app_cl && v != ex->app_cl) goto bad_cl;
      ex->has_app_cl = 1;
      ex->app_cl = v;
      return 0; /* written by head_end, once */
    }
    break;
  case 17:
    if (name_is(name, nlen, "transfer-encoding", 17)) return 0; /* framing is the server's */
    break;
  }
  if (head_reserve(ex, nlen + vlen + 4) < 0) return -1;
  head_put(ex, name, nlen);
  head_put(ex, ": ", 2);
  head_put(ex, value, vlen);
  head_put(ex, "\r\n", 2);
  return 0;
bad_cl:
  PyErr_SetString(PyExc_ValueError, "invalid Content-Length response header");
  return -1;
}

/* Emits bytes to the client.  On the loop thread (ASGI) they go to the socket; from a WSGI
 * thread they are queued for the loop thread. */
static int ex_emit(ExchangeObject *ex, uv_buf_t *bufs, unsigned n) {
  if (ex->kind == FRA_IF_ASGI) {
    if (!ex->conn) return 0;
    fra_conn_write(ex->conn, bufs, n);
    return 0;
  }
  size_t total = 0;
  for (unsigned i = 0; i < n; i++) total += bufs[i].len;
  if (total == 0) return 0;
  PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
  if (!b) return -1;
  char *p = PyBytes_AS_STRING(b);
  for (unsigned i = 0; i < n; i++) {
    memcpy(p, bufs[i].base, bufs[i].len);
    p += bufs[i].len;
  }
  if (!ex->outq && !(ex->outq = PyList_New(0))) {
    Py_DECREF(b);
    return -1;
  }
  int rc = PyList_Append(ex->outq, b);
  Py_DECREF(b);
  ex->out_pending += total;
  return rc;
}

/* Finishes the head: Date, Server, framing, Connection; into ex->head. */
static int head_end(ExchangeObject *ex, int whole, size_t len) {
  fra_server *s = &ex->srv->core;
  if (head_reserve(ex, 256) < 0) return -1;
  if (!ex->has_date) {
    size_t dl;
    const char *d = fra_date_header(&dl);
    head_put(ex, d, dl);
  }
  if (!ex->has_server && s->cfg.server_header_len) head_put(ex, s->cfg.server_header, s->cfg.server_header_len);
  if (ex->no_body) {
    /* no framing */
  } else if (ex->has_app_cl || whole) {
    head_put(ex, "Content-Length: ", 16);
    ex->head_len += fra_decimal(ex->head + ex->head_len, ex->has_app_cl ? ex->app_cl : len);
    head_put(ex, "\r\n", 2);
  } else if (ex->req && ex->req->http_minor >= 1) {
    head_put(ex, "Transfer-Encoding: chunked\r\n", 28);
    ex->chunked = !ex->is_head;
  } else {
    ex->keep_alive = 0; /* HTTP/1.0 without a length: the close ends the body */
  }
  int keep = ex->keep_alive && !ex->close_after && !s->shutting_down;
  if (!keep) {
    ex->keep_alive = 0;
    head_put(ex, "Connection: close\r\n", 19);
  } else if (ex->req && ex->req->http_minor == 0) {
    head_put(ex, "Connection: keep-alive\r\n", 24);
  }
  head_put(ex, "\r\n", 2);
  return 0;
}

/* Sends body bytes; more=0 completes the response.  Returns 0, or -1 with an exception set
 * (the caller treats it as an app error). */
int fra_ex_body(ExchangeObject *ex, const char *data, size_t len, int more) {
  uv_buf_t bufs[4];
  unsigned n = 0;
  char chunk_head[24];
  int drop = ex->is_head || ex->no_body;
  if (ex->has_app_cl && !drop && ex->body_sent + len > ex->app_cl) {
    /* More than the declared Content-Length: the response cannot be framed. */
    ex->keep_alive = 0;
    ex->wflags |= FRA_W_ABORT;
    PyErr_SetString(PyExc_RuntimeError, "response body longer than its Content-Length");
    return -1;
  }
  if (!ex->head_sent) {
    if (head_end(ex, !more, len) < 0) return -1;
    ex->head_sent = 1;
    if (!drop && !ex->chunked && len && len <= 4096 && ex->head_len + len <= ex->head_cap) {
      /* Small body: one buffer, one write. */
      head_put(ex, data, len);
      ex->body_sent += len;
      len = 0;
    }
    bufs[n++] = uv_buf_init(ex->head, (unsigned)ex->head_len);
  }
  if (len && !drop) {
    if (ex->chunked) {
      bufs[n++] = uv_buf_init(chunk_head, (unsigned)fra_chunk_head(chunk_head, len));
      bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
      bufs[n++] = uv_buf_init("\r\n", 2);
    } else {
      bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    }
    ex->body_sent += len;
  }
  if (!more) {
    if (ex->chunked) {
      if (n == 4) { /* no room left: emit what we have first */
        if (ex_emit(ex, bufs, n) < 0) return -1;
        n = 0;
      }
      bufs[n++] = uv_buf_init("0\r\n\r\n", 5);
    }
    ex->complete = 1;
  }
  if (n && ex_emit(ex, bufs, n) < 0) return -1;
  if (!more && ex->has_app_cl && !drop && ex->body_sent < ex->app_cl) {
    /* Shorter than declared: the client would wait for the rest, so the connection closes. */
    ex->keep_alive = 0;
    ex->wflags |= FRA_W_ABORT;
  }
  return 0;
}

/* The response is complete: hand the connection back (loop thread only). */
void fra_ex_finish(ExchangeObject *ex) {
  if (ex->finished) return;
  ex->finished = 1;
  ex->complete = 1;
  fra_conn *c = ex->conn;
  fra_state *st = ex->srv->st;
  if (ex->recv_waiter) ex_resolve_recv(ex, disconnect_msg(st));
  if (ex->send_waiter) resolve(&ex->send_waiter, Py_None);
  if (!c) {
    ex_drop_req(ex);
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
    if (!c->parser.req->retained) fra_server_release_req(&ex->srv->core, c->parser.req);
    c->parser.req = NULL;
    c->srv->nactive--;
    fra_conn_abort(c);
  } else {
    fra_conn_finish(c, ex->keep_alive, ex->status, ex->body_sent);
  }
  fra_srv_after_call(ex->srv);
  Py_DECREF(ex); /* the connection's reference */
}

/* A plain 500 when the app failed before starting its response. */
static void ex_respond_500(ExchangeObject *ex) {
  static const char body[] = "Internal Server Error\n";
  if (ex->started && ex->head_sent) return;
  ex->started = 1;
  ex->head_sent = 0;
  ex->chunked = 0;
  if (fra_ex_head_begin(ex, 500, NULL, 0) < 0 ||
      fra_ex_head_add(ex, "content-type", 12, "text/plain; charset=utf-8", 25) < 0 ||
      fra_ex_body(ex, body, sizeof body - 1, 0) < 0)
    PyErr_Clear();
}

/* ---- ASGI: the coroutine driver ---- */

static void ex_task_done(ExchangeObject *ex) {
  ex->task_done = 1;
  Py_CLEAR(ex->wakeup_cb); /* these hold the exchange: drop the cycle now */
  Py_CLEAR(ex->step_cb);
  Py_CLEAR(ex->fut_waiter);
}

static void ex_log_app_error(ExchangeObject *ex, PyObject *exc, const char *what) {
  char msg[600];
  fra_req *r = ex->req;
  if (r)
    snprintf(msg, sizeof msg, "%s (%.*s %.*s)", what, (int)r->method_len, r->buf + r->method_off,
             (int)(r->url_len > 400 ? 400 : r->url_len), r->buf + r->url_off);
  else
    snprintf(msg, sizeof msg, "%s", what);
  fra_log_error(ex->srv, msg, exc);
}

/* The app's coroutine ended: by returning (exc NULL, cancelled 0), by cancellation, or by an
 * exception (exc set). */
static void ex_app_ended(ExchangeObject *ex, PyObject *exc, int cancelled) {
  ex_task_done(ex);
  if (ex->complete) {
    if (exc) ex_log_app_error(ex, exc, "Exception in ASGI application after the response");
    if (!ex->finished) fra_ex_finish(ex);
    return;
  }
  if (exc) ex_log_app_error(ex, exc, "Exception in ASGI application");
  if (cancelled || ex->gone) {
    ex->wflags |= FRA_W_ABORT;
  } else if (!ex->head_sent) {
    if (!exc) {
      PyObject *e = PyObject_CallFunction(PyExc_RuntimeError, "s", "ASGI application returned without completing the response");
      ex_log_app_error(ex, e, "ASGI application returned without a response");
      Py_XDECREF(e);
    }
    ex_respond_500(ex);
  } else {
    ex->wflags |= FRA_W_ABORT; /* response started: it cannot be completed */
  }
  fra_ex_finish(ex);
}

static int call_task_hook(PyObject *fn, ExchangeObject *ex) {
  PyObject *args[2] = {ex->srv->loop, (PyObject *)ex};
  PyObject *r = PyObject_Vectorcall(fn, args, 2, NULL);
  if (!r) return -1;
  Py_DECREF(r);
  return 0;
}

static PyObject *get_stop_value(void) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  PyObject *v = value ? PyObject_GetAttrString(value, "value") : NULL;
  if (!v) {
    PyErr_Clear();
    v = Py_NewRef(Py_None);
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  return v;
}

static int schedule_step(ExchangeObject *ex) {
  fra_state *st = ex->srv->st;
  if (!ex->step_cb && !(ex->step_cb = PyObject_GetAttrString((PyObject *)ex, "_step"))) return -1;
  PyObject *args[2] = {ex->srv->call_soon, ex->step_cb};
  PyObject *kwv[3] = {NULL, ex->step_cb, ex->ctx};
  (void)args;
  PyObject *h = PyObject_Vectorcall(ex->srv->call_soon, kwv + 1, 1, st->kw_context);
  if (!h) return -1;
  Py_DECREF(h);
  return 0;
}

/* One step of the coroutine: send None, or throw exc.  The exchange's context must be current
 * (entered by the caller, or the callback was scheduled with it). */
static void ex_step(ExchangeObject *ex, PyObject *exc) {
  fra_state *st = ex->srv->st;
  PyObject *result = NULL, *owned_exc = NULL;
  PySendResult res;
  Py_INCREF(ex);
  if (ex->must_cancel) {
    ex->must_cancel = 0;
    owned_exc = ex->cancel_msg ? PyObject_CallOneArg(st->CancelledError, ex->cancel_msg)
                               : PyObject_CallNoArgs(st->CancelledError);
    if (!owned_exc) goto failed_hook;
    exc = owned_exc;
  }
  if (call_task_hook(st->enter_task, ex) < 0) goto failed_hook;
  if (exc) {
    result = PyObject_CallMethodOneArg(ex->coro, st->s_throw, exc);
    if (result) res = PYGEN_NEXT;
    else if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
      result = get_stop_value();
      res = PYGEN_RETURN;
    } else res = PYGEN_ERROR;
  } else {
    res = PyIter_Send(ex->coro, Py_None, &result);
  }
  PyObject *et = NULL, *ev = NULL, *etb = NULL;
  if (res == PYGEN_ERROR) PyErr_Fetch(&et, &ev, &etb);
  if (call_task_hook(st->leave_task, ex) < 0) PyErr_WriteUnraisable((PyObject *)ex);
  if (res == PYGEN_ERROR) PyErr_Restore(et, ev, etb);

  if (res == PYGEN_RETURN) {
    Py_XDECREF(result);
    ex_app_ended(ex, NULL, 0);
  } else if (res == PYGEN_ERROR) {
    if (PyErr_ExceptionMatches(st->CancelledError)) {
      PyErr_Clear();
      ex_app_ended(ex, NULL, 1);
    } else {
      PyObject *t, *v, *tb;
      PyErr_Fetch(&t, &v, &tb);
      PyErr_NormalizeException(&t, &v, &tb);
      if (v && tb) PyException_SetTraceback(v, tb);
      ex_app_ended(ex, v ? v : Py_None, 0);
      Py_XDECREF(t);
      Py_XDECREF(v);
      Py_XDECREF(tb);
    }
  } else if (result == Py_None) {
    /* bare yield (asyncio.sleep(0)): run again on the next loop iteration */
    Py_DECREF(result);
    if (schedule_step(ex) < 0) goto failed_hook;
  } else {
    PyObject *blocking = PyObject_GetAttr(result, st->s_asyncio_future_blocking);
    if (!blocking) PyErr_Clear();
    if (blocking == Py_True) {
      Py_DECREF(blocking);
      if (PyObject_SetAttr(result, st->s_asyncio_future_blocking, Py_False) < 0) goto bad_yield;
      if (!ex->wakeup_cb && !(ex->wakeup_cb = PyObject_GetAttrString((PyObject *)ex, "_wakeup"))) goto bad_yield;
      PyObject *args[3] = {result, ex->wakeup_cb, ex->ctx};
      PyObject *r = PyObject_VectorcallMethod(st->s_add_done_callback, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, st->kw_context);
      if (!r) goto bad_yield;
      Py_DECREF(r);
      Py_XSETREF(ex->fut_waiter, result);
      result = NULL;
      if (ex->must_cancel) {
        PyObject *c = ex->cancel_msg ? PyObject_CallMethodOneArg(ex->fut_waiter, st->s_cancel, ex->cancel_msg)
                                     : PyObject_CallMethodNoArgs(ex->fut_waiter, st->s_cancel);
        if (c == Py_True) ex->must_cancel = 0;
        Py_XDECREF(c);
        PyErr_Clear();
      }
    } else {
      Py_XDECREF(blocking);
      PyErr_Format(PyExc_RuntimeError, "Task got bad yield: %R", result);
    bad_yield:
      Py_XDECREF(result);
      {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        if (v) ex_step(ex, v);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
      }
    }
  }
  Py_XDECREF(owned_exc);
  Py_DECREF(ex);
  return;
failed_hook: {
  /* The driver itself failed (out of memory, a broken loop): end the exchange. */
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  PyErr_NormalizeException(&t, &v, &tb);
  ex_app_ended(ex, v ? v : Py_None, 0);
  Py_XDECREF(t);
  Py_XDECREF(v);
  Py_XDECREF(tb);
  Py_XDECREF(owned_exc);
  Py_DECREF(ex);
}
}

static PyObject *ex_wakeup(ExchangeObject *ex, PyObject *fut) {
  if (ex->task_done) Py_RETURN_NONE;
  Py_CLEAR(ex->fut_waiter);
  PyObject *r = PyObject_CallMethodNoArgs(fut, ex->srv->st->s_result);
  if (r) {
    Py_DECREF(r);
    ex_step(ex, NULL);
  } else {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v && tb) PyException_SetTraceback(v, tb);
    ex_step(ex, v ? v : Py_None);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
  }
  Py_RETURN_NONE;
}

static PyObject *ex_step_meth(ExchangeObject *ex, PyObject *unused) {
  if (!ex->task_done) ex_step(ex, NULL);
  Py_RETURN_NONE;
}

/* ---- ASGI: receive and send ---- */

static PyObject *request_msg(ExchangeObject *ex) {
  fra_state *st = ex->srv->st;
  fra_req *r = ex->req;
  size_t avail = r->body_len - r->body_off;
  PyObject *body = avail ? PyBytes_FromStringAndSize(r->body + r->body_off, (Py_ssize_t)avail) : Py_NewRef(st->empty_bytes);
  if (!body) return NULL;
  r->body_off = r->body_len = 0;
  int more = !r->complete;
  if (!more) ex->body_delivered = 1;
  PyObject *d = _PyDict_NewPresized(3);
  if (!d || PyDict_SetItem(d, st->s_type, st->s_http_request) < 0 || PyDict_SetItem(d, st->s_body, body) < 0 ||
      PyDict_SetItem(d, st->s_more_body, more ? Py_True : Py_False) < 0) {
    Py_XDECREF(d);
    Py_DECREF(body);
    return NULL;
  }
  Py_DECREF(body);
  if (ex->conn) fra_conn_body_consumed(ex->conn);
  return d;
}

static void send_continue(ExchangeObject *ex) {
  if (ex->continue_sent || ex->started || !ex->conn || !ex->req->expect_continue) return;
  ex->continue_sent = 1;
  uv_buf_t b = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
  fra_conn_write(ex->conn, &b, 1);
}

static PyObject *ex_receive(ExchangeObject *ex, PyObject *unused) {
  fra_state *st = ex->srv->st;
  fra_req *r = ex->req;
  PyObject *msg;
  if (ex->gone || !r || ex->complete || (ex->body_delivered && !ex->conn)) {
    msg = disconnect_msg(st);
  } else if (!ex->body_delivered && (r->body_len > r->body_off || r->complete)) {
    msg = request_msg(ex);
    fra_srv_after_call(ex->srv);
  } else {
    if (ex->recv_waiter) {
      PyErr_SetString(PyExc_RuntimeError, "receive() is already being awaited");
      return NULL;
    }
    if (!ex->body_delivered) {
      send_continue(ex);
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
  PyObject *v = PyDict_GetItemWithError(d, key); /* borrowed */
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
  PyObject *status = PyDict_GetItemWithError(msg, st->s_status);
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
  PyObject *headers = PyDict_GetItemWithError(msg, st->s_headers);
  if (!headers && PyErr_Occurred()) return -1;
  if (headers) {
    PyObject *seq = PySequence_Fast(headers, "headers must be an iterable of (name, value) pairs");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
      PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
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

static PyObject *ex_send(ExchangeObject *ex, PyObject *msg) {
  fra_state *st = ex->srv->st;
  if (!PyDict_Check(msg)) {
    PyErr_SetString(PyExc_TypeError, "ASGI message must be a dict");
    return NULL;
  }
  if (ex->gone) {
    /* The client is gone: whatever is sent goes nowhere, as on a closed socket. */
    if (!ex->complete && !ex->conn) ex->complete = 1;
    return Py_NewRef(st->none_ready);
  }
  PyObject *type = PyDict_GetItemWithError(msg, st->s_type);
  if (!type) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "ASGI message without 'type'");
    return NULL;
  }
  if (type == st->s_http_response_body || PyUnicode_Compare(type, st->s_http_response_body) == 0) {
    if (!ex->started) {
      PyErr_SetString(PyExc_RuntimeError, "http.response.body before http.response.start");
      return NULL;
    }
    if (ex->complete) {
      if (ex->gone) return Py_NewRef(st->none_ready);
      PyErr_SetString(PyExc_RuntimeError, "response already complete");
      return NULL;
    }
    Py_buffer body;
    int has;
    if (get_buffer_item(msg, st->s_body, &body, &has) < 0) return NULL;
    PyObject *mb = PyDict_GetItemWithError(msg, st->s_more_body);
    int more = mb ? PyObject_IsTrue(mb) : 0;
    if (more < 0 || (!mb && PyErr_Occurred())) {
      if (has) PyBuffer_Release(&body);
      return NULL;
    }
    if (ex->gone || !ex->conn) {
      /* The client is gone: the body goes nowhere, as with a closed socket. */
      if (has) PyBuffer_Release(&body);
      if (!more) ex->complete = 1;
      return Py_NewRef(st->none_ready);
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
    if (send_start(ex, msg) < 0) return NULL;
    return Py_NewRef(st->none_ready);
  }
  if (PyErr_Occurred()) return NULL;
  PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message type %R", type);
  return NULL;
}

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
  if (ex->gone && !ex->task_done) return ex_cancel(ex, ex->srv->st->empty_tuple, NULL);
  Py_RETURN_NONE;
}

static PyObject *ex_disconnected(ExchangeObject *ex, void *unused) { return PyBool_FromLong(ex->gone); }

/* A handler waiting on a future is cancelled because its client left. */
static void ex_cancel_for_disconnect(ExchangeObject *ex) {
  if (!ex->cancel_on_gone || ex->task_done || ex->kind != FRA_IF_ASGI) return;
  ex->cancel_on_gone = 0;
  PyObject *r = ex_cancel(ex, ex->srv->st->empty_tuple, NULL);
  if (!r) PyErr_WriteUnraisable((PyObject *)ex);
  Py_XDECREF(r);
}

/* respond(status, content_type, body): the whole response in one call, with Content-Length
 * (what http.response.start + http.response.body would send, without the dicts).  body is
 * bytes-like, or str sent as UTF-8. */
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
  int rc = 0;
  if (ex->gone || !ex->conn) {
    /* The client is gone: the response goes nowhere, as with a closed socket. */
    ex->started = 1;
    ex->complete = 1;
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

/* ---- task-like API used by asyncio (timeout, wait_for, current_task users) ---- */

static PyObject *ex_cancel(ExchangeObject *ex, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"msg", NULL};
  PyObject *msg = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &msg)) return NULL;
  if (ex->task_done || ex->kind != FRA_IF_ASGI) Py_RETURN_FALSE;
  ex->num_cancels++;
  if (ex->fut_waiter) {
    PyObject *r = msg == Py_None ? PyObject_CallMethodNoArgs(ex->fut_waiter, ex->srv->st->s_cancel)
                                 : PyObject_CallMethodOneArg(ex->fut_waiter, ex->srv->st->s_cancel, msg);
    if (!r) return NULL;
    int ok = r == Py_True;
    Py_DECREF(r);
    if (ok) Py_RETURN_TRUE;
  }
  ex->must_cancel = 1;
  Py_XSETREF(ex->cancel_msg, msg == Py_None ? NULL : Py_NewRef(msg));
  Py_RETURN_TRUE;
}

static PyObject *ex_cancelling(ExchangeObject *ex, PyObject *unused) { return PyLong_FromLong(ex->num_cancels); }

static PyObject *ex_uncancel(ExchangeObject *ex, PyObject *unused) {
  if (ex->num_cancels > 0) ex->num_cancels--;
  return PyLong_FromLong(ex->num_cancels);
}

static PyObject *ex_done(ExchangeObject *ex, PyObject *unused) { return PyBool_FromLong(ex->task_done); }
static PyObject *ex_cancelled(ExchangeObject *ex, PyObject *unused) { Py_RETURN_FALSE; }
static PyObject *ex_get_loop(ExchangeObject *ex, PyObject *unused) { return Py_NewRef(ex->srv->loop); }
static PyObject *ex_get_coro(ExchangeObject *ex, PyObject *unused) { return Py_NewRef(ex->coro ? ex->coro : Py_None); }
static PyObject *ex_get_name(ExchangeObject *ex, PyObject *unused) { return PyUnicode_FromFormat("request-%p", ex); }
static PyObject *ex_get_context(ExchangeObject *ex, PyObject *unused) { return Py_NewRef(ex->ctx ? ex->ctx : Py_None); }
static PyObject *ex_fut_waiter(ExchangeObject *ex, void *unused) { return Py_NewRef(ex->fut_waiter ? ex->fut_waiter : Py_None); }
static PyObject *ex_must_cancel(ExchangeObject *ex, void *unused) { return PyBool_FromLong(ex->must_cancel); }

static PyObject *ex_repr(ExchangeObject *ex) {
  char buf[300];
  if (ex->req)
    snprintf(buf, sizeof buf, "<Exchange %.*s %.*s>", (int)ex->req->method_len, ex->req->buf + ex->req->method_off,
             (int)(ex->req->url_len > 200 ? 200 : ex->req->url_len), ex->req->buf + ex->req->url_off);
  else
    snprintf(buf, sizeof buf, "<Exchange>");
  return PyUnicode_DecodeLatin1(buf, (Py_ssize_t)strlen(buf), "replace");
}

static PyMethodDef ex_methods[] = {
    {"receive", (PyCFunction)ex_receive, METH_NOARGS, "ASGI receive()."},
    {"send", (PyCFunction)ex_send, METH_O, "ASGI send(message)."},
    {"_wakeup", (PyCFunction)ex_wakeup, METH_O, NULL},
    {"_step", (PyCFunction)ex_step_meth, METH_NOARGS, NULL},
    {"cancel", (PyCFunction)(void (*)(void))ex_cancel, METH_VARARGS | METH_KEYWORDS, "Cancel the handler."},
    {"cancelling", (PyCFunction)ex_cancelling, METH_NOARGS, NULL},
    {"uncancel", (PyCFunction)ex_uncancel, METH_NOARGS, NULL},
    {"done", (PyCFunction)ex_done, METH_NOARGS, NULL},
    {"cancelled", (PyCFunction)ex_cancelled, METH_NOARGS, NULL},
    {"get_loop", (PyCFunction)ex_get_loop, METH_NOARGS, NULL},
    {"get_coro", (PyCFunction)ex_get_coro, METH_NOARGS, NULL},
    {"get_name", (PyCFunction)ex_get_name, METH_NOARGS, NULL},
    {"get_context", (PyCFunction)ex_get_context, METH_NOARGS, NULL},
    {"take_body", (PyCFunction)ex_take_body, METH_NOARGS, "The whole body if it has arrived, else None."},
    {"scope", (PyCFunction)ex_scope, METH_NOARGS, "The ASGI scope (made on first call)."},
    {"cancel_on_disconnect", (PyCFunction)ex_cancel_on_disconnect, METH_NOARGS,
     "Cancel the handler if the client disconnects."},
    {"respond", (PyCFunction)(void (*)(void))ex_respond, METH_FASTCALL,
     "respond(status, content_type, body): the whole response with Content-Length; a str body is sent as UTF-8."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ex_getset[] = {
    {"_fut_waiter", (getter)ex_fut_waiter, NULL, NULL, NULL},
    {"_must_cancel", (getter)ex_must_cancel, NULL, NULL, NULL},
    {"disconnected", (getter)ex_disconnected, NULL, "Has the client gone?", NULL},
    {"method", (getter)ex_get_method, NULL, "scope['method']", NULL},
    {"path", (getter)ex_get_path, NULL, "scope['path']", NULL},
    {"root_path", (getter)ex_get_root_path, NULL, "scope['root_path']", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

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

/* ---- hooks from the core ---- */

static PyMethodDef receive_def = {"receive", (PyCFunction)ex_receive, METH_NOARGS, NULL};
static PyMethodDef send_def = {"send", (PyCFunction)ex_send, METH_O, NULL};

static void asgi_start(ExchangeObject *ex) {
  ServerObject *so = ex->srv;
  PyObject *scope = NULL, *recv = NULL, *send = NULL;
  ex->ctx = PyContext_Copy(so->base_ctx);
  if (!ex->ctx || PyContext_Enter(ex->ctx) < 0) goto failed;
  if (so->native) {
    /* the native entry (flask_restful_async.asgi.AsgiApp.server_entry) takes the exchange
     * and asks for the scope, receive and send only if it needs them */
    PyObject *args[1] = {(PyObject *)ex};
    ex->coro = PyObject_Vectorcall(so->app, args, 1, NULL);
  } else {
    scope = fra_build_scope(ex);
    recv = scope ? PyCFunction_New(&receive_def, (PyObject *)ex) : NULL;
    send = recv ? PyCFunction_New(&send_def, (PyObject *)ex) : NULL;
    if (send) {
      PyObject *args[3] = {scope, recv, send};
      ex->coro = PyObject_Vectorcall(so->app, args, 3, NULL);
    }
  }
  Py_XDECREF(scope);
  Py_XDECREF(recv);
  Py_XDECREF(send);
  if (!ex->coro) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v && tb) PyException_SetTraceback(v, tb);
    ex_app_ended(ex, v ? v : Py_None, 0);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
  } else {
    ex_step(ex, NULL);
  }
  if (PyContext_Exit(ex->ctx) < 0) PyErr_WriteUnraisable((PyObject *)ex);
  return;
failed:
  PyErr_WriteUnraisable(so->app);
  ex_respond_500(ex);
  fra_ex_finish(ex);
}

void fra_hook_request(fra_conn *c) {
  ServerObject *so = c->srv->data;
  ExchangeObject *ex = fra_exchange_new(so, c);
  if (!ex) {
    PyErr_WriteUnraisable(so->app);
    fra_conn_abort(c);
    return;
  }
  c->active = Py_NewRef(ex); /* the connection's reference; ours is dropped below */
  if (ex->kind == FRA_IF_ASGI) asgi_start(ex);
  else fra_wsgi_dispatch(ex);
  Py_DECREF(ex);
}

void fra_hook_body(fra_conn *c) {
  ExchangeObject *ex = EX_FROM_CONN(c);
  if (!ex) return;
  if (ex->kind == FRA_IF_WSGI) {
    fra_wsgi_notify(ex);
    return;
  }
  if (ex->recv_waiter && !ex->body_delivered) ex_resolve_recv(ex, request_msg(ex));
}

void fra_hook_disconnect(fra_conn *c) {
  ExchangeObject *ex = EX_FROM_CONN(c);
  if (!ex) return;
  ex->gone = 1;
  if (ex->kind == FRA_IF_WSGI) {
    fra_wsgi_notify(ex);
    return;
  }
  if (ex->recv_waiter) ex_resolve_recv(ex, disconnect_msg(ex->srv->st));
  if (ex->send_waiter) resolve(&ex->send_waiter, Py_None);
  ex_cancel_for_disconnect(ex);
}

void fra_hook_drain(fra_conn *c) {
  ExchangeObject *ex = EX_FROM_CONN(c);
  if (!ex) return;
  if (ex->kind == FRA_IF_WSGI) {
    ex->out_pending = fra_conn_queued(c);
    fra_wsgi_notify(ex);
    return;
  }
  if (ex->send_waiter) resolve(&ex->send_waiter, Py_None);
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
  if (ex->kind == FRA_IF_WSGI) fra_wsgi_notify(ex);
  else {
    if (ex->recv_waiter) ex_resolve_recv(ex, disconnect_msg(ex->srv->st));
    if (ex->send_waiter) resolve(&ex->send_waiter, Py_None);
    ex_cancel_for_disconnect(ex);
  }
  c->srv->nactive--;
  Py_DECREF(ex);
}

/* Hard stop: every running ASGI handler is cancelled. */
void fra_ex_cancel_all(ServerObject *so) {
  for (fra_conn *c = so->core.conns; c; c = c->next) {
    ExchangeObject *ex = EX_FROM_CONN(c);
    if (ex && ex->kind == FRA_IF_ASGI && !ex->task_done) {
      PyObject *r = PyObject_CallMethod((PyObject *)ex, "cancel", NULL);
      if (!r) PyErr_WriteUnraisable((PyObject *)ex);
      Py_XDECREF(r);
    }
  }
}
