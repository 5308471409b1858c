/* threads.c — the bridge's side of the thread pool (core/pool.c): pool threads that hold a
 * Python thread state, the jobs the loop thread queues (a request served the WSGI way, see
 * wsgi.c, or a call from Server.submit, which run_sync uses), and the hand-back of their
 * output and results to the loop thread through the server's wakeup.  A pool thread that must
 * wait for the loop (body bytes, the client to take output) sleeps on its semaphore with the
 * GIL released, and is woken only once what it waits for has happened.  Owns the pool threads'
 * thread states and the call jobs.  Every function here needs the GIL, except thread_main's
 * waits. */
#include <unistd.h>
#include "exchange_internal.h"

/* ---- a call submitted with Server.submit ---- */

typedef struct CallObject {
  PyObject_HEAD
  uint8_t job_kind;                 /* FRA_JOB_CALL: the prefix every pool job shares */
  ServerObject *srv;                /* strong */
  PyObject *fn, *future, *result, *exc;
  struct CallObject *next_ready;
} CallObject;

static int call_traverse(CallObject *c, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(c));
  Py_VISIT(c->srv);
  Py_VISIT(c->fn);
  Py_VISIT(c->future);
  Py_VISIT(c->result);
  Py_VISIT(c->exc);
  return 0;
}

static int call_clear(CallObject *c) {
  Py_CLEAR(c->srv);
  Py_CLEAR(c->fn);
  Py_CLEAR(c->future);
  Py_CLEAR(c->result);
  Py_CLEAR(c->exc);
  return 0;
}

static void call_dealloc(CallObject *c) {
  PyTypeObject *tp = Py_TYPE(c);
  PyObject_GC_UnTrack(c);
  call_clear(c);
  PyObject_GC_Del(c);
  Py_DECREF(tp);
}

static PyType_Slot call_slots[] = {
    {Py_tp_doc, "A call queued on the server's thread pool."},
    {Py_tp_dealloc, call_dealloc},
    {Py_tp_traverse, call_traverse},
    {Py_tp_clear, call_clear},
    {0, NULL},
};

PyType_Spec fra_call_spec = {
    .name = "flask_restful_async._core.PoolCall",
    .basicsize = sizeof(CallObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = call_slots,
};

/* ---- waking each side ---- */

/* Pool thread -> loop thread: the exchange has output, or asks for something. */
void fra_threads_post(ExchangeObject *ex) {
  ServerObject *so = ex->srv;
  if (so->closed) return;
  if (!ex->on_ready) {
    ex->on_ready = 1;
    Py_INCREF(ex);
    ex->next_ready = so->wsgi_ready;
    so->wsgi_ready = ex;
  }
  fra_server_wakeup(&so->core);
}

/* Has what the exchange's pool thread waits for happened? */
static int wait_over(ExchangeObject *ex) {
  fra_req *r = ex->req;
  if (ex->gone || !ex->conn || !r) return 1;
  switch (ex->wait_for) {
  case FRA_WAIT_BODY: return r->body_len > r->body_off || r->complete;
  case FRA_WAIT_DRAIN: return ex->out_pending <= FRA_WRITE_HIGH;
  case FRA_WAIT_FILE: return !ex->file_busy;
  default: return 1;
  }
}

/* Pool thread: waits (GIL released) until the loop thread says what it waits for happened. */
void fra_threads_wait(ExchangeObject *ex, int what) {
  ex->wait_for = (uint8_t)what;
  while (!wait_over(ex)) {
    uv_sem_t *sem = ex->sem;
    ex->waiting = 1;
    Py_BEGIN_ALLOW_THREADS
    uv_sem_wait(sem);
    Py_END_ALLOW_THREADS
  }
  ex->wait_for = FRA_WAIT_NONE;
}

/* Loop thread: wakes the exchange's pool thread if what it waits for has happened (waking it
 * for anything else would have it ask again and again: a livelock during a slow upload). */
void fra_threads_notify(ExchangeObject *ex) {
  if (ex->waiting && ex->sem && wait_over(ex)) {
    ex->waiting = 0;
    uv_sem_post(ex->sem);
  }
}

/* Loop thread: carries out what a pool thread asked for on an exchange. */
static void flush(ExchangeObject *ex) {
  fra_conn *c = ex->conn;
  if (ex->wflags & FRA_W_CONTINUE) {
    ex->wflags &= ~FRA_W_CONTINUE;
    fra__ex_continue(ex);
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
      PyObject *b = PyList_GET_ITEM(q, i); /* borrowed */
      uv_buf_t buf = fra_buf(PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
      fra_conn_write(ex->conn, &buf, 1);
    }
    Py_DECREF(q);
    c = ex->conn;
    ex->out_pending = c ? fra_conn_queued(c) : 0;
    if (c && ex->out_pending > FRA_WRITE_HIGH) fra_conn_want_drain(c);
  }
  if (ex->wflags & FRA_W_FILE) {
    /* A wsgi.file_wrapper's file, after the head queued above: the core sends it, and
     * fra_hook_file_done wakes the thread (busy stays set until then). */
    ex->wflags &= ~FRA_W_FILE;
    int rc = ex->conn ? fra_conn_sendfile(ex->conn, ex->file_fd, ex->file_off, ex->file_count, ex->file_after,
                                          ex->file_after_len)
                      : (close(ex->file_fd), UV_ECANCELED);
    if (rc != 0) {
      ex->file_busy = 0;
      ex->file_status = rc < 0 ? rc : 0;
    }
  }
  if (ex->wflags & FRA_W_FINISH) {
    ex->wflags &= ~FRA_W_FINISH;
    fra_ex_finish(ex);
  }
  fra_threads_notify(ex);
}

/* Loop thread: a finished call's result goes to its future (unless it was cancelled). */
static void deliver(CallObject *call) {
  PyObject *fut = call->future; /* borrowed */
  PyObject *done = PyObject_CallMethodNoArgs(fut, call->srv->st->s_done);
  if (done == Py_False) {
    PyObject *r = call->exc ? PyObject_CallMethodOneArg(fut, call->srv->st->s_set_exception, call->exc)
                            : PyObject_CallMethodOneArg(fut, call->srv->st->s_set_result, call->result);
    if (!r) PyErr_WriteUnraisable(fut);
    Py_XDECREF(r);
  } else if (!done) {
    PyErr_WriteUnraisable(fut);
  }
  Py_XDECREF(done);
}

/* The server's on_wakeup hook (loop thread). */
void fra_threads_wakeup(fra_server *s) {
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
  CallObject *calls = (CallObject *)so->calls_ready;
  so->calls_ready = NULL;
  while (calls) {
    CallObject *call = calls;
    calls = call->next_ready;
    call->next_ready = NULL;
    deliver(call);
    Py_DECREF(call);
  }
}

/* Drops what is waiting for the loop thread (the server is closing). */
void fra_threads_drop_ready(ServerObject *so) {
  while (so->wsgi_ready) {
    ExchangeObject *ex = so->wsgi_ready;
    so->wsgi_ready = ex->next_ready;
    ex->on_ready = 0;
    Py_DECREF(ex);
  }
  while (so->calls_ready) {
    CallObject *call = (CallObject *)so->calls_ready;
    so->calls_ready = (PyObject *)call->next_ready;
    Py_DECREF(call);
  }
}

/* The pool stopped before a thread took this job (loop thread, with the GIL; the server is
 * closing, its connections closed): the queue's reference goes, a call's future is cancelled. */
void fra_threads_drop_job(void *job, void *arg) {
  fra_job *j = job;
  if (j->job_kind == FRA_JOB_EXCHANGE) {
    ((ExchangeObject *)j)->gone = 1;
  } else {
    CallObject *call = (CallObject *)j;
    PyObject *r = PyObject_CallMethodNoArgs(call->future, call->srv->st->s_cancel);
    if (!r) PyErr_WriteUnraisable(call->future);
    Py_XDECREF(r);
  }
  Py_DECREF(j);
}

/* ---- the pool threads ---- */

static void run_call(CallObject *call) {
  PyObject *r = PyObject_CallNoArgs(call->fn);
  if (r) {
    call->result = r;
  } else {
    call->exc = fra_err_take();
  }
  Py_CLEAR(call->fn);
  ServerObject *so = call->srv;
  if (so->closed) return;
  Py_INCREF(call);
  call->next_ready = (CallObject *)so->calls_ready;
  so->calls_ready = (PyObject *)call;
  fra_server_wakeup(&so->core);
}

/* Names the calling pool thread "fra-pool-N" for Python (threading, logging's threadName). */
static void name_thread(void) {
  static int seq; /* changed with the GIL held */
  PyObject *threading = PyImport_ImportModule("threading");
  PyObject *current = threading ? PyObject_CallMethod(threading, "current_thread", NULL) : NULL;
  PyObject *name = current ? PyUnicode_FromFormat("fra-pool-%d", seq++) : NULL;
  if (!name || PyObject_SetAttrString(current, "name", name) < 0) PyErr_Clear();
  Py_XDECREF(name);
  Py_XDECREF(current);
  Py_XDECREF(threading);
}

static void thread_main(void *arg) {
  fra_pool *pool = arg;
  uv_sem_t sem;
  uv_sem_init(&sem, 0);
  PyGILState_STATE g = PyGILState_Ensure();
  name_thread();
  PyThreadState *ts = PyEval_SaveThread();
  for (;;) {
    fra_job *job = fra_pool_take(pool);
    if (!job) break;
    PyEval_RestoreThread(ts);
    if (job->job_kind == FRA_JOB_EXCHANGE) {
      ExchangeObject *ex = (ExchangeObject *)job;
      ex->sem = &sem;
      fra_wsgi_run(ex);
      ex->sem = NULL;
      ex->waiting = 0;
    } else {
      run_call((CallObject *)job);
    }
    Py_DECREF(job); /* the queue's reference */
    ts = PyEval_SaveThread();
  }
  PyEval_RestoreThread(ts);
  PyGILState_Release(g);
  uv_sem_destroy(&sem);
  fra_pool_thread_exit(pool);
}

/* Starts the pool on first use: a worker that never needs it has no threads. */
static int ensure_pool(ServerObject *so) {
  if (so->pool) return 0;
  if (so->closed) {
    PyErr_SetString(PyExc_RuntimeError, "Server is closed");
    return -1;
  }
  fra_pool *pool = calloc(1, sizeof(fra_pool));
  if (!pool) {
    PyErr_NoMemory();
    return -1;
  }
  int rc = fra_pool_start(pool, so->threads, thread_main, pool);
  so->pool = pool; /* even half started: fra_pool_stop lets it go */
  if (rc) {
    fra_raise_uv(rc, "thread pool");
    return -1;
  }
  return 0;
}

static int push(ServerObject *so, PyObject *job) {
  if (ensure_pool(so) < 0) return -1;
  Py_INCREF(job); /* the queue's reference, dropped by the pool thread */
  int rc = fra_pool_push(so->pool, job);
  if (rc) {
    Py_DECREF(job);
    fra_raise_uv(rc, "thread pool");
    return -1;
  }
  return 0;
}

/* Queues a request of a WSGI server (loop thread, from the request hook). */
void fra_threads_dispatch(ExchangeObject *ex) {
  ex->job_kind = FRA_JOB_EXCHANGE;
  if (push(ex->srv, (PyObject *)ex) < 0) {
    PyErr_WriteUnraisable(ex->srv->app);
    fra__ex_respond_500(ex);
    fra_ex_finish(ex);
  }
}

/* Hands a native exchange to the pool (run_wsgi): from now on it is a WSGI exchange. */
int fra_threads_run_wsgi(ExchangeObject *ex) {
  ex->job_kind = FRA_JOB_EXCHANGE;
  ex->kind = FRA_IF_WSGI;
  fra__body_unsink(ex); /* wsgi.input reads the request's queue */
  if (push(ex->srv, (PyObject *)ex) < 0) {
    ex->kind = FRA_IF_ASGI;
    return -1;
  }
  return 0;
}

/* submit(fn): a future for fn() run in the thread pool (fn takes no arguments: bind them, and
 * the context, with functools.partial / Context.run). */
static PyObject *srv_submit(ServerObject *so, PyObject *fn) {
  if (!so->core_ready || so->closed) {
    PyErr_SetString(PyExc_RuntimeError, "Server is closed");
    return NULL;
  }
  if (!PyCallable_Check(fn)) {
    PyErr_SetString(PyExc_TypeError, "submit(fn): fn must be callable");
    return NULL;
  }
  CallObject *call = PyObject_GC_New(CallObject, so->st->CallType);
  if (!call) return NULL;
  call->job_kind = FRA_JOB_CALL;
  call->srv = (ServerObject *)Py_NewRef(so);
  call->fn = Py_NewRef(fn);
  call->result = call->exc = NULL;
  call->next_ready = NULL;
  call->future = PyObject_CallNoArgs(so->create_future);
  PyObject_GC_Track(call);
  PyObject *fut = call->future ? Py_NewRef(call->future) : NULL;
  if (fut && push(so, (PyObject *)call) < 0) Py_CLEAR(fut);
  Py_DECREF(call);
  return fut;
}

PyMethodDef fra__threads_methods[] = {
    {"submit", (PyCFunction)srv_submit, METH_O,
     "submit(fn): an asyncio future of fn() run in the server's thread pool."},
    {NULL, NULL, 0, NULL},
};
