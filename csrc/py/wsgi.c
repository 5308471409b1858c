/* wsgi.c — WSGI apps (PEP 3333) on a bounded pool of threads.  A pool thread builds the environ,
 * calls the app and frames the response into bytes queued on the exchange; the loop thread,
 * woken through uv_async, writes them.  Both sides touch exchange state only with the GIL held;
 * a pool thread waits (GIL released) on its semaphore for body bytes or for the client to take
 * queued output.  Owns the pool threads and the wsgi.input type.  Every function here needs the
 * GIL except wsgi_thread_main's waits. */
#include "fra/bridge.h"

/* ---- thread <-> loop hand-off ---- */

static void post(ExchangeObject *ex) {
  ServerObject *so = ex->srv;
  if (!ex->on_ready) {
    ex->on_ready = 1;
    Py_INCREF(ex);
    ex->next_ready = so->wsgi_ready;
    so->wsgi_ready = ex;
  }
  if (!so->closed) fra_server_wakeup(&so->core);
}

/* Pool thread: waits for the loop thread's fra_wsgi_notify, with the GIL released. */
static void wait_loop(ExchangeObject *ex) {
  uv_sem_t *sem = ex->sem;
  ex->waiting = 1;
  Py_BEGIN_ALLOW_THREADS
  uv_sem_wait(sem);
  Py_END_ALLOW_THREADS
}

void fra_wsgi_notify(ExchangeObject *ex) {
  if (ex->waiting && ex->sem) {
    ex->waiting = 0;
    uv_sem_post(ex->sem);
  }
}

static void flush(ExchangeObject *ex) {
  fra_conn *c = ex->conn;
  if (ex->wflags & FRA_W_CONTINUE) {
    ex->wflags &= ~FRA_W_CONTINUE;
    if (c && !ex->head_sent) {
      uv_buf_t b = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
      fra_conn_write(c, &b, 1);
    }
  }
  if (ex->wflags & FRA_W_READ) {
    ex->wflags &= ~FRA_W_READ;
    if (c) fra_conn_body_consumed(c);
  }
  if (ex->outq) {
    PyObject *q = ex->outq;
    ex->outq = NULL;
    Py_ssize_t n = PyList_GET_SIZE(q);
    for (Py_ssize_t i = 0; i < n && ex->conn; i++) {
      PyObject *b = PyList_GET_ITEM(q, i);
      uv_buf_t buf = fra_buf(PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
      fra_conn_write(ex->conn, &buf, 1);
    }
    Py_DECREF(q);
    c = ex->conn;
    ex->out_pending = c ? fra_conn_queued(c) : 0;
    if (c && ex->out_pending > FRA_WRITE_HIGH) fra_conn_want_drain(c);
  }
  if (ex->wflags & FRA_W_FINISH) {
    ex->wflags &= ~FRA_W_FINISH;
    fra_ex_finish(ex);
  }
  if (ex->out_pending <= FRA_WRITE_HIGH || ex->gone || !ex->conn) fra_wsgi_notify(ex);
}

void fra_wsgi_wakeup(fra_server *s) {
  ServerObject *so = s->data;
  ExchangeObject *list = so->wsgi_ready;
  so->wsgi_ready = NULL;
  while (list) {
    ExchangeObject *ex = list;
    list = ex->next_ready;
    ex->next_ready = NULL;
    ex->on_ready = 0;
    flush(ex);
    Py_DECREF(ex);
  }
}

/* ---- wsgi.input ---- */

typedef struct {
  PyObject_HEAD
  ExchangeObject *ex;
} InputObject;

/* Asks the loop for more body bytes and waits for them; returns 0 if more may come, 1 at the
 * end of the body (or when the client is gone). */
static int wait_body(ExchangeObject *ex) {
  fra_req *r = ex->req;
  if (!r || ex->gone || (r->complete && r->body_off == r->body_len)) return 1;
  if (r->body_len > r->body_off) return 0;
  if (r->expect_continue && !ex->continue_sent && !ex->head_sent) {
    ex->continue_sent = 1;
    ex->wflags |= FRA_W_CONTINUE;
  }
  ex->wflags |= FRA_W_READ;
  post(ex);
  wait_loop(ex);
  r = ex->req;
  return (!r || ex->gone || (r->complete && r->body_off == r->body_len)) ? 1 : 0;
}

static void consumed(ExchangeObject *ex) {
  if (ex->conn && (ex->conn->flags & FRA_C_BODY_FULL)) {
    ex->wflags |= FRA_W_READ;
    post(ex);
  }
}

/* Reads up to size bytes (size < 0: all); stops after a newline when line is set. */
static PyObject *input_read_impl(InputObject *self, Py_ssize_t size, int line) {
  ExchangeObject *ex = self->ex;
  PyObject *acc = PyByteArray_FromStringAndSize(NULL, 0);
  if (!acc) return NULL;
  for (;;) {
    fra_req *r = ex->req;
    if (!r) break;
    Py_ssize_t have = PyByteArray_GET_SIZE(acc);
    if (size >= 0 && have >= size) break;
    size_t avail = r->body_len - r->body_off;
    if (avail) {
      size_t take = avail;
      if (size >= 0 && (Py_ssize_t)take > size - have) take = (size_t)(size - have);
      const char *src = r->body + r->body_off;
      int got_line = 0;
      if (line) {
        const char *nl = memchr(src, '\n', take);
        if (nl) {
          take = (size_t)(nl - src) + 1;
          got_line = 1;
        }
      }
      if (PyByteArray_Resize(acc, have + (Py_ssize_t)take) < 0) {
        Py_DECREF(acc);
        return NULL;
      }
      memcpy(PyByteArray_AS_STRING(acc) + have, src, take);
      r->body_off += take;
      if (r->body_off == r->body_len) r->body_off = r->body_len = 0;
      consumed(ex);
      if (got_line) break;
      continue;
    }
    if (wait_body(ex)) break;
  }
  PyObject *b = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(acc), PyByteArray_GET_SIZE(acc));
  Py_DECREF(acc);
  return b;
}

static Py_ssize_t size_arg(PyObject *const *args, Py_ssize_t n, int *err) {
  *err = 0;
  if (n < 1 || args[0] == Py_None) return -1;
  Py_ssize_t v = PyLong_AsSsize_t(args[0]);
  if (v == -1 && PyErr_Occurred()) *err = 1;
  return v;
}

static PyObject *input_read(InputObject *self, PyObject *const *args, Py_ssize_t n) {
  int err;
  Py_ssize_t size = size_arg(args, n, &err);
  return err ? NULL : input_read_impl(self, size, 0);
}

static PyObject *input_readline(InputObject *self, PyObject *const *args, Py_ssize_t n) {
  int err;
  Py_ssize_t size = size_arg(args, n, &err);
  return err ? NULL : input_read_impl(self, size, 1);
}

static PyObject *input_readlines(InputObject *self, PyObject *const *args, Py_ssize_t n) {
  int err;
  Py_ssize_t hint = size_arg(args, n, &err);
  if (err) return NULL;
  PyObject *list = PyList_New(0);
  Py_ssize_t total = 0;
  while (list) {
    PyObject *l = input_read_impl(self, -1, 1);
    if (!l) {
      Py_CLEAR(list);
      break;
    }
    if (PyBytes_GET_SIZE(l) == 0) {
      Py_DECREF(l);
      break;
    }
    total += PyBytes_GET_SIZE(l);
    int rc = PyList_Append(list, l);
    Py_DECREF(l);
    if (rc < 0) Py_CLEAR(list);
    else if (hint > 0 && total >= hint) break;
  }
  return list;
}

static PyObject *input_next(InputObject *self) {
  PyObject *l = input_read_impl(self, -1, 1);
  if (l && PyBytes_GET_SIZE(l) == 0) {
    Py_DECREF(l);
    return NULL; /* StopIteration */
  }
  return l;
}

static int input_traverse(InputObject *self, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->ex);
  return 0;
}

static int input_clear(InputObject *self) {
  Py_CLEAR(self->ex);
  return 0;
}

static void input_dealloc(InputObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  input_clear(self);
  PyObject_GC_Del(self);
  Py_DECREF(tp);
}

static PyMethodDef input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL, "Read up to size bytes of the body."},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL, "Read one line."},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL, "Read lines."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot input_slots[] = {
    {Py_tp_doc, "wsgi.input: the request body, streamed."},
    {Py_tp_dealloc, input_dealloc},
    {Py_tp_traverse, input_traverse},
    {Py_tp_clear, input_clear},
    {Py_tp_methods, input_methods},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, input_next},
    {0, NULL},
};

PyType_Spec fra_input_spec = {
    .name = "flask_restful_async._core.WSGIInput",
    .basicsize = sizeof(InputObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = input_slots,
};

/* ---- start_response and the response ---- */

static int send_chunk(ExchangeObject *ex, PyObject *item, int more);

static PyObject *legacy_write(ExchangeObject *ex, PyObject *data) {
  if (send_chunk(ex, data, 1) < 0) return NULL;
  Py_RETURN_NONE;
}

static PyMethodDef write_def = {"write", (PyCFunction)legacy_write, METH_O, NULL};

static PyObject *start_response(ExchangeObject *ex, PyObject *const *args, Py_ssize_t n) {
  if (n < 2 || n > 3) {
    PyErr_SetString(PyExc_TypeError, "start_response(status, headers, exc_info=None)");
    return NULL;
  }
  PyObject *status = args[0], *headers = args[1], *exc_info = n == 3 ? args[2] : Py_None;
  if (exc_info != Py_None) {
    if (ex->head_sent) {
      /* PEP 3333: too late to change the response, re-raise the app's error */
      if (PyTuple_Check(exc_info) && PyTuple_GET_SIZE(exc_info) == 3) {
        PyObject *v = PyTuple_GET_ITEM(exc_info, 1);
        PyErr_SetObject((PyObject *)Py_TYPE(v), v);
      } else {
        PyErr_SetString(PyExc_RuntimeError, "start_response: response already sent");
      }
      return NULL;
    }
  } else if (ex->started) {
    PyErr_SetString(PyExc_RuntimeError, "start_response called twice without exc_info");
    return NULL;
  }
  if (!PyUnicode_Check(status)) {
    PyErr_SetString(PyExc_TypeError, "status must be a str such as '200 OK'");
    return NULL;
  }
  Py_ssize_t sl;
  const char *s = PyUnicode_AsUTF8AndSize(status, &sl);
  if (!s) return NULL;
  if (sl < 3 || s[0] < '1' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' ||
      (sl > 3 && s[3] != ' ') || !fra_valid_header_value(s, (size_t)sl)) {
    PyErr_Format(PyExc_ValueError, "invalid status %R", status);
    return NULL;
  }
  int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
  if (fra_ex_head_begin(ex, code, s, (size_t)sl) < 0) return NULL;
  PyObject *seq = PySequence_Fast(headers, "headers must be a list of (name, value) tuples");
  if (!seq) return NULL;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
    PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0)) ||
        !PyUnicode_Check(PyTuple_GET_ITEM(pair, 1))) {
      PyErr_SetString(PyExc_TypeError, "each header must be a (str, str) tuple");
      Py_DECREF(seq);
      return NULL;
    }
    PyObject *nb = PyUnicode_AsLatin1String(PyTuple_GET_ITEM(pair, 0));
    PyObject *vb = nb ? PyUnicode_AsLatin1String(PyTuple_GET_ITEM(pair, 1)) : NULL;
    int rc = vb ? fra_ex_head_add(ex, PyBytes_AS_STRING(nb), (size_t)PyBytes_GET_SIZE(nb), PyBytes_AS_STRING(vb),
                                  (size_t)PyBytes_GET_SIZE(vb))
                : -1;
    Py_XDECREF(nb);
    Py_XDECREF(vb);
    if (rc < 0) {
      Py_DECREF(seq);
      return NULL;
    }
  }
  Py_DECREF(seq);
  ex->started = 1;
  return PyCFunction_New(&write_def, (PyObject *)ex);
}

static PyMethodDef start_response_def = {"start_response", (PyCFunction)(void (*)(void))start_response, METH_FASTCALL, NULL};

/* Frames one body item and queues it; waits while the client is behind (backpressure). */
static int send_chunk(ExchangeObject *ex, PyObject *item, int more) {
  if (!ex->started) {
    PyErr_SetString(PyExc_RuntimeError, "WSGI app returned a body before calling start_response");
    return -1;
  }
  if (ex->complete) return 0;
  Py_buffer view;
  if (PyObject_GetBuffer(item, &view, PyBUF_SIMPLE) < 0) return -1;
  if (view.len == 0 && more) {
    PyBuffer_Release(&view);
    return 0;
  }
  if (ex->gone) {
    PyBuffer_Release(&view);
    return 0;
  }
  int rc = fra_ex_body(ex, view.buf, (size_t)view.len, more);
  PyBuffer_Release(&view);
  if (rc < 0) return -1;
  post(ex);
  while (ex->out_pending > FRA_WRITE_HIGH && !ex->gone && ex->conn) wait_loop(ex);
  return 0;
}

static void log_wsgi_error(ExchangeObject *ex, const char *what) {
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  PyErr_NormalizeException(&t, &v, &tb);
  if (v && tb) PyException_SetTraceback(v, tb);
  char msg[600];
  fra_req *r = ex->req;
  if (r)
    snprintf(msg, sizeof msg, "%s (%.*s %.*s)", what, (int)r->method_len, r->buf + r->method_off,
             (int)(r->url_len > 400 ? 400 : r->url_len), r->buf + r->url_off);
  else
    snprintf(msg, sizeof msg, "%s", what);
  fra_log_error(ex->srv, msg, v ? v : Py_None);
  Py_XDECREF(t);
  Py_XDECREF(v);
  Py_XDECREF(tb);
}

static void wsgi_run(ExchangeObject *ex) {
  ServerObject *so = ex->srv;
  PyObject *environ = NULL, *sr = NULL, *result = NULL, *it = NULL, *item;
  if (ex->gone || !ex->req) goto finish;
  environ = fra_build_environ(ex);
  if (!environ) goto error;
  InputObject *in = PyObject_GC_New(InputObject, so->st->InputType);
  if (!in) goto error;
  in->ex = (ExchangeObject *)Py_NewRef(ex);
  PyObject_GC_Track(in);
  int rc = PyDict_SetItemString(environ, "wsgi.input", (PyObject *)in);
  Py_DECREF(in);
  if (rc < 0) goto error;
  sr = PyCFunction_New(&start_response_def, (PyObject *)ex);
  if (!sr) goto error;
  result = PyObject_CallFunctionObjArgs(so->app, environ, sr, NULL);
  if (!result) goto error;
  if ((PyList_CheckExact(result) || PyTuple_CheckExact(result)) && PySequence_Fast_GET_SIZE(result) == 1 && !ex->head_sent) {
    /* The whole body at once: sent with a Content-Length in one write. */
    if (send_chunk(ex, PySequence_Fast_GET_ITEM(result, 0), 0) < 0) goto error;
  } else {
    it = PyObject_GetIter(result);
    if (!it) goto error;
    while ((item = PyIter_Next(it))) {
      int rc2 = send_chunk(ex, item, 1);
      Py_DECREF(item);
      if (rc2 < 0) goto error;
      if (ex->gone) break;
    }
    if (PyErr_Occurred()) goto error;
  }
  if (!ex->complete && !ex->gone) {
    if (!ex->started) {
      PyErr_SetString(PyExc_RuntimeError, "WSGI app returned without calling start_response");
      goto error;
    }
    if (fra_ex_body(ex, "", 0, 0) < 0) goto error;
  }
  goto close;
error:
  log_wsgi_error(ex, "Exception in WSGI application");
  if (!ex->head_sent && !ex->gone) {
    static const char body[] = "Internal Server Error\n";
    ex->started = 1;
    ex->chunked = 0;
    ex->wflags &= ~FRA_W_ABORT;
    if (fra_ex_head_begin(ex, 500, NULL, 0) < 0 ||
        fra_ex_head_add(ex, "content-type", 12, "text/plain; charset=utf-8", 25) < 0 ||
        fra_ex_body(ex, body, sizeof body - 1, 0) < 0)
      PyErr_Clear();
  } else {
    ex->wflags |= FRA_W_ABORT;
  }
close:
  if (result) {
    PyObject *closer = PyObject_GetAttrString(result, "close");
    if (closer) {
      PyObject *r = PyObject_CallNoArgs(closer);
      Py_DECREF(closer);
      if (!r) log_wsgi_error(ex, "Exception in WSGI response close()");
      Py_XDECREF(r);
    } else {
      PyErr_Clear();
    }
  }
finish:
  Py_XDECREF(it);
  Py_XDECREF(result);
  Py_XDECREF(sr);
  Py_XDECREF(environ);
  ex->wflags |= FRA_W_FINISH;
  post(ex);
}

/* ---- the pool ---- */

static void wsgi_thread_main(void *arg) {
  fra_pool *pool = arg;
  uv_sem_t sem;
  uv_sem_init(&sem, 0);
  PyGILState_STATE g = PyGILState_Ensure();
  PyThreadState *ts = PyEval_SaveThread();
  for (;;) {
    ExchangeObject *ex = fra_pool_take(pool);
    if (!ex) break;
    PyEval_RestoreThread(ts);
    ex->sem = &sem;
    wsgi_run(ex);
    ex->sem = NULL;
    ex->waiting = 0;
    Py_DECREF(ex); /* the job's reference */
    ts = PyEval_SaveThread();
  }
  PyEval_RestoreThread(ts);
  PyGILState_Release(g);
  uv_sem_destroy(&sem);
  fra_pool_thread_exit(pool);
}

int fra_wsgi_start_pool(ServerObject *so) {
  PyObject *sys_stderr = PySys_GetObject("stderr"); /* borrowed */
  so->environ_base = Py_BuildValue("{sOsssOsOsOsOsOsOss}", "wsgi.version", so->st->wsgi_version,
                                   "wsgi.url_scheme", "http", "wsgi.errors", sys_stderr ? sys_stderr : Py_None,
                                   "wsgi.multithread", Py_True, "wsgi.multiprocess", Py_False, "wsgi.run_once",
                                   Py_False, "wsgi.input_terminated", Py_True, "SCRIPT_NAME", so->root_path,
                                   "SERVER_SOFTWARE", "flask-restful-async/0.1.0");
  if (!so->environ_base) return -1;
  so->pool = calloc(1, sizeof(fra_pool));
  if (!so->pool) {
    PyErr_NoMemory();
    return -1;
  }
  int rc = fra_pool_start(so->pool, so->threads, wsgi_thread_main, so->pool);
  if (rc) {
    fra_raise_uv(rc, "thread pool");
    return -1;
  }
  return 0;
}

/* The pool stopped before a thread took this job: the job's reference goes (loop thread, with
 * the GIL; the connection was closed before the pool stopped). */
void fra_wsgi_drop_job(void *job, void *so) {
  ExchangeObject *ex = job;
  ex->gone = 1;
  Py_DECREF(ex);
}

void fra_wsgi_dispatch(ExchangeObject *ex) {
  Py_INCREF(ex); /* the job's reference, dropped by the pool thread */
  if (fra_pool_push(ex->srv->pool, ex) != 0) {
    Py_DECREF(ex);
    fra_conn_abort(ex->conn);
  }
}
