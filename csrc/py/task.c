/* task.c — the task-like driver of a handler coroutine (ASGI, or our native entry).  The first
 * step runs eagerly from C inside the loop pass; only a coroutine that suspends on a future is
 * resumed from that future's callback, with the exchange entered as asyncio's current task, so
 * asyncio.timeout, wait_for, TaskGroup, shield and cancellation work as in a Task; the exchange
 * answers what code holding asyncio.current_task() asks a Task (done callbacks, cancelled(),
 * names, result()/exception()).  Owns the coroutine, its context, the future it waits on, the
 * done callbacks and the outcome kept for them.  Every function here needs the GIL. */
#include "exchange_internal.h"

static void ex_step(ExchangeObject *ex, PyObject *exc);

/* call_soon(fn, *args, context=ctx); 0, or -1 with an exception set. */
static int call_soon_in(ExchangeObject *ex, PyObject *ctx, PyObject *fn, PyObject *arg) {
  PyObject *args[4] = {NULL, fn, arg ? arg : ctx, ctx}; /* the last one is context= */
  size_t nargs = (arg ? 2 : 1) | PY_VECTORCALL_ARGUMENTS_OFFSET;
  PyObject *h = PyObject_Vectorcall(ex->srv->call_soon, args + 1, nargs, ex->srv->st->kw_context);
  if (!h) return -1;
  Py_DECREF(h);
  return 0;
}

/* The handler's task is over (value: what it returned; exc: what it raised, NULL if none):
 * Task state for done(), cancelled(), result() and exception(), then each done callback is
 * scheduled with call_soon as a Task does.  The exception is kept only until those
 * callbacks have run: its traceback holds the handler's frames, which hold the exchange. */
static void ex_task_done(ExchangeObject *ex, PyObject *value, PyObject *exc, int cancelled) {
  ex->task_done = 1;
  ex->task_cancelled = (uint8_t)cancelled;
  ex->task_failed = exc != NULL;
  ex->must_cancel = 0;
  Py_CLEAR(ex->wakeup_cb); /* these hold the exchange: drop the cycle now */
  Py_CLEAR(ex->step_cb);
  Py_CLEAR(ex->fut_waiter);
  if (ex->next_coro) {
    /* the handler failed after then(): what it handed over never runs */
    PyObject *r = PyObject_CallMethodNoArgs(ex->next_coro, ex->srv->st->s_close);
    if (!r) PyErr_WriteUnraisable(ex->next_coro);
    Py_XDECREF(r);
    Py_CLEAR(ex->next_coro);
  }
  if (value && value != Py_None) Py_XSETREF(ex->result, Py_NewRef(value));
  PyObject *cbs = ex->done_cbs;
  ex->done_cbs = NULL;
  if (!cbs) return;
  Py_ssize_t n = PyList_GET_SIZE(cbs);
  if (n && exc) Py_XSETREF(ex->result, Py_NewRef(exc));
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *pair = PyList_GET_ITEM(cbs, i); // borrowed
    if (call_soon_in(ex, PyTuple_GET_ITEM(pair, 1), PyTuple_GET_ITEM(pair, 0), (PyObject *)ex) < 0)
      PyErr_WriteUnraisable(PyTuple_GET_ITEM(pair, 0));
  }
  if (n && exc) {
    /* after the callbacks (call_soon runs in order), the exception is let go */
    PyObject *release = PyObject_GetAttrString((PyObject *)ex, "_release_result");
    if (!release || call_soon_in(ex, ex->srv->base_ctx, release, NULL) < 0) PyErr_WriteUnraisable((PyObject *)ex);
    Py_XDECREF(release);
  }
  Py_DECREF(cbs);
}

void fra__ex_log_app_error(ExchangeObject *ex, PyObject *exc, const char *what) {
  char msg[600];
  fra_req *r = ex->req;
  if (r)
    snprintf(msg, sizeof msg, "%s (%.*s %.*s)", what, (int)r->method_len, r->buf + r->method_off,
             (int)(r->url_len > 400 ? 400 : r->url_len), r->buf + r->url_off);
  else
    snprintf(msg, sizeof msg, "%s", what);
  fra_log_error(ex->srv, msg, exc);
}

/* Is exc our ClientDisconnected, or was it caused by one or raised while handling one (its
 * __cause__ / __context__ chain)?  Such an error only says the client left. */
static int from_disconnect(fra_state *st, PyObject *exc) {
  PyObject *todo[16]; // borrowed: the chain is kept alive by exc
  int n = 0, visited = 0;
  todo[n++] = exc;
  while (n && visited++ < 64) { /* bounded: a chain can loop */
    PyObject *e = todo[--n];
    if (!PyExceptionInstance_Check(e)) continue;
    if (PyObject_TypeCheck(e, (PyTypeObject *)st->ClientDisconnected)) return 1;
    PyObject *cause = PyException_GetCause(e), *context = PyException_GetContext(e);
    if (cause && n < 16) todo[n++] = cause;
    if (context && context != cause && n < 16) todo[n++] = context;
    Py_XDECREF(cause);
    Py_XDECREF(context);
  }
  return 0;
}

static void log_app_error(ExchangeObject *ex, PyObject *exc, const char *what) {
  if (exc != Py_None && from_disconnect(ex->srv->st, exc)) return; /* the client left: not an app error */
  fra__ex_log_app_error(ex, exc, what);
}

/* The app's coroutine ended: by returning (value, exc NULL, cancelled 0), by cancellation,
 * or by an exception (exc set; Py_None when the driver itself failed without one). */
static void ex_app_ended(ExchangeObject *ex, PyObject *value, PyObject *exc, int cancelled) {
  ex_task_done(ex, value, exc, cancelled);
  if (ex->kind == FRA_IF_WSGI) {
    /* The handler handed the request to the thread pool (run_wsgi): the response is the
     * pool's to finish. */
    if (exc) log_app_error(ex, exc, "Exception in the handler after run_wsgi()");
    return;
  }
  if (ex->complete) {
    if (exc) log_app_error(ex, exc, "Exception in ASGI application after the response");
    if (!ex->finished) fra_ex_finish(ex);
    return;
  }
  if (exc) log_app_error(ex, exc, "Exception in ASGI application");
  if (cancelled || ex->gone) {
    ex->wflags |= FRA_W_ABORT;
  } else if (!ex->head_sent) {
    if (!exc) {
      PyObject *e = PyObject_CallFunction(PyExc_RuntimeError, "s", "ASGI application returned without completing the response");
      fra__ex_log_app_error(ex, e, "ASGI application returned without a response");
      Py_XDECREF(e);
    }
    fra__ex_respond_500(ex);
  } else {
    ex->wflags |= FRA_W_ABORT; /* response started: it cannot be completed */
  }
  fra_ex_finish(ex);
}

/* The pending exception ends the app: taken (with its traceback) and handed to ex_app_ended. */
static void ex_app_failed(ExchangeObject *ex) {
  PyObject *e = fra_err_take();
  ex_app_ended(ex, NULL, e ? e : Py_None, 0);
  Py_XDECREF(e);
}

static int call_task_hook(PyObject *fn, ExchangeObject *ex) {
  PyObject *args[2] = {ex->srv->loop, (PyObject *)ex};
  PyObject *r = PyObject_Vectorcall(fn, args, 2, NULL);
  if (!r) return -1;
  Py_DECREF(r);
  return 0;
}

/* The value of the pending StopIteration (a new reference), which is cleared. */
static PyObject *get_stop_value(void) {
  PyObject *e = fra_err_take();
  PyObject *v = e && PyObject_TypeCheck(e, (PyTypeObject *)PyExc_StopIteration) ? ((PyStopIterationObject *)e)->value : Py_None;
  Py_INCREF(v);
  Py_XDECREF(e);
  return v;
}

static int schedule_step(ExchangeObject *ex) {
  if (!ex->step_cb && !(ex->step_cb = PyObject_GetAttrString((PyObject *)ex, "_step"))) return -1;
  return call_soon_in(ex, ex->ctx, ex->step_cb, NULL);
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
  PyObject *raised = res == PYGEN_ERROR ? fra_err_take() : NULL; /* leave_task must not see it */
  if (call_task_hook(st->leave_task, ex) < 0) PyErr_WriteUnraisable((PyObject *)ex);

  if (res == PYGEN_RETURN && ex->next_coro) {
    /* The handler handed over (then()): the coroutine it gave is driven in its place, in the
     * same task, so the frames that made it are not kept while it runs (a long stream). */
    Py_XDECREF(result);
    Py_SETREF(ex->coro, ex->next_coro);
    ex->next_coro = NULL;
    ex_step(ex, NULL);
  } else if (res == PYGEN_RETURN) {
    /* a cancel() that came too late to be thrown in still cancels the task, as in a Task */
    ex_app_ended(ex, result, NULL, ex->must_cancel);
    Py_XDECREF(result);
  } else if (res == PYGEN_ERROR) {
    if (raised && PyObject_TypeCheck(raised, (PyTypeObject *)st->CancelledError)) {
      /* its message is what result() and exception() raise from now on */
      PyObject *args = PyObject_GetAttrString(raised, "args");
      if (args && PyTuple_Check(args) && PyTuple_GET_SIZE(args) == 1)
        Py_XSETREF(ex->cancel_msg, Py_NewRef(PyTuple_GET_ITEM(args, 0)));
      else if (!args)
        PyErr_Clear();
      Py_XDECREF(args);
      ex_app_ended(ex, NULL, NULL, 1);
    } else {
      ex_app_ended(ex, NULL, raised ? raised : Py_None, 0);
    }
    Py_XDECREF(raised);
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
      /* thrown into the coroutine, as a Task does */
      Py_XDECREF(result);
      PyObject *e = fra_err_take();
      if (e) ex_step(ex, e);
      Py_XDECREF(e);
    }
  }
  Py_XDECREF(owned_exc);
  Py_DECREF(ex);
  return;
failed_hook:
  /* The driver itself failed (out of memory, a broken loop): end the exchange. */
  ex_app_failed(ex);
  Py_XDECREF(owned_exc);
  Py_DECREF(ex);
}

static PyObject *ex_wakeup(ExchangeObject *ex, PyObject *fut) {
  if (ex->task_done) Py_RETURN_NONE;
  Py_CLEAR(ex->fut_waiter);
  PyObject *r = PyObject_CallMethodNoArgs(fut, ex->srv->st->s_result);
  if (r) {
    Py_DECREF(r);
    ex_step(ex, NULL);
  } else {
    /* the future's exception (a cancellation too) goes into the coroutine */
    PyObject *e = fra_err_take();
    ex_step(ex, e);
    Py_XDECREF(e);
  }
  Py_RETURN_NONE;
}

static PyObject *ex_step_meth(ExchangeObject *ex, PyObject *unused) {
  if (!ex->task_done) ex_step(ex, NULL);
  Py_RETURN_NONE;
}

/* ---- task-like API used by asyncio (timeout, wait_for, current_task users) ---- */

PyObject *fra__ex_cancel(ExchangeObject *ex, PyObject *args, PyObject *kw) {
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
static PyObject *ex_cancelled(ExchangeObject *ex, PyObject *unused) { return PyBool_FromLong(ex->task_cancelled); }
static PyObject *ex_get_loop(ExchangeObject *ex, PyObject *unused) { return Py_NewRef(ex->srv->loop); }
static PyObject *ex_get_coro(ExchangeObject *ex, PyObject *unused) { return Py_NewRef(ex->coro ? ex->coro : Py_None); }

static PyObject *ex_get_name(ExchangeObject *ex, PyObject *unused) {
  return ex->name ? Py_NewRef(ex->name) : PyUnicode_FromFormat("request-%p", ex);
}

static PyObject *ex_set_name(ExchangeObject *ex, PyObject *value) {
  PyObject *name = PyObject_Str(value); /* a Task keeps str(value) too */
  if (!name) return NULL;
  Py_XSETREF(ex->name, name);
  Py_RETURN_NONE;
}

/* add_done_callback(fn, *, context=None): fn(exchange) is scheduled with call_soon in
 * `context` (default: a copy of the current one) once the handler has ended, at once if it
 * has. */
static PyObject *ex_add_done_callback(ExchangeObject *ex, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"", "context", NULL};
  PyObject *fn, *ctx = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$O:add_done_callback", kwlist, &fn, &ctx)) return NULL;
  ctx = ctx == Py_None ? PyContext_CopyCurrent() : Py_NewRef(ctx);
  if (!ctx) return NULL;
  int rc;
  if (ex->task_done) {
    rc = call_soon_in(ex, ctx, fn, (PyObject *)ex);
  } else {
    PyObject *pair = PyTuple_Pack(2, fn, ctx);
    if (!ex->done_cbs) ex->done_cbs = PyList_New(0);
    rc = pair && ex->done_cbs ? PyList_Append(ex->done_cbs, pair) : -1;
    Py_XDECREF(pair);
  }
  Py_DECREF(ctx);
  if (rc < 0) return NULL;
  Py_RETURN_NONE;
}

/* remove_done_callback(fn): drops every registration of fn (compared with ==); how many. */
static PyObject *ex_remove_done_callback(ExchangeObject *ex, PyObject *fn) {
  PyObject *old = ex->done_cbs;
  if (!old) return PyLong_FromLong(0);
  Py_INCREF(old); /* == may run code that changes ex->done_cbs */
  PyObject *kept = PyList_New(0);
  Py_ssize_t removed = 0;
  for (Py_ssize_t i = 0; kept && i < PyList_GET_SIZE(old); i++) {
    PyObject *pair = PyList_GET_ITEM(old, i); // borrowed: old holds it
    int eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(pair, 0), fn, Py_EQ);
    if (eq < 0 || (!eq && PyList_Append(kept, pair) < 0)) Py_CLEAR(kept);
    else removed += eq;
  }
  Py_DECREF(old);
  if (!kept) return NULL;
  if (ex->done_cbs) Py_SETREF(ex->done_cbs, kept); /* (still pending: not ended meanwhile) */
  else Py_DECREF(kept);
  return PyLong_FromSsize_t(removed);
}

/* Sets CancelledError with the message the handler was cancelled with. */
static PyObject *raise_cancelled(ExchangeObject *ex) {
  fra_state *st = ex->srv->st;
  PyObject *e = ex->cancel_msg ? PyObject_CallOneArg(st->CancelledError, ex->cancel_msg)
                               : PyObject_CallNoArgs(st->CancelledError);
  if (e) fra_err_restore(e);
  return NULL;
}

/* What result() and exception() share: NULL with the error they raise, or the exchange's
 * outcome (borrowed: the return value or exception, Py_None if none). */
static PyObject *outcome(ExchangeObject *ex, const char *not_set) {
  if (!ex->task_done) {
    PyErr_SetString(ex->srv->st->InvalidStateError, not_set);
    return NULL;
  }
  if (ex->task_cancelled) return raise_cancelled(ex);
  if (ex->task_failed && !ex->result) {
    PyErr_SetString(ex->srv->st->InvalidStateError,
                    "the handler's exception is kept only until its done callbacks have run");
    return NULL;
  }
  return ex->result ? ex->result : Py_None;
}

static PyObject *ex_result(ExchangeObject *ex, PyObject *unused) {
  PyObject *o = outcome(ex, "Result is not set."); // borrowed
  if (!o) return NULL;
  if (ex->task_failed) {
    if (PyExceptionInstance_Check(o)) fra_err_restore(Py_NewRef(o));
    else PyErr_SetString(PyExc_SystemError, "the handler's driver failed");
    return NULL;
  }
  return Py_NewRef(o);
}

static PyObject *ex_exception(ExchangeObject *ex, PyObject *unused) {
  PyObject *o = outcome(ex, "Exception is not set."); // borrowed
  if (!o) return NULL;
  return Py_NewRef(ex->task_failed ? o : Py_None);
}

/* Scheduled after the done callbacks of a handler that failed: its exception (and the frames
 * its traceback holds) is let go. */
static PyObject *ex_release_result(ExchangeObject *ex, PyObject *unused) {
  if (ex->task_failed) Py_CLEAR(ex->result);
  Py_RETURN_NONE;
}

static PyObject *ex_get_context(ExchangeObject *ex, PyObject *unused) { return Py_NewRef(ex->ctx ? ex->ctx : Py_None); }
static PyObject *ex_fut_waiter(ExchangeObject *ex, void *unused) { return Py_NewRef(ex->fut_waiter ? ex->fut_waiter : Py_None); }
static PyObject *ex_must_cancel(ExchangeObject *ex, void *unused) { return PyBool_FromLong(ex->must_cancel); }

void fra__ex_start(ExchangeObject *ex) {
  ServerObject *so = ex->srv;
  ex->ctx = PyContext_Copy(so->base_ctx);
  if (!ex->ctx || PyContext_Enter(ex->ctx) < 0) goto failed;
  if (so->native) {
    /* our own entry takes the exchange and asks for a scope, receive and send only if it
     * needs them; it returns the handler's coroutine, or None once it has handed the request
     * to the thread pool (run_wsgi) */
    PyObject *args[1] = {(PyObject *)ex};
    ex->coro = PyObject_Vectorcall(so->app, args, 1, NULL);
    if (ex->coro == Py_None && ex->kind == FRA_IF_WSGI) {
      Py_CLEAR(ex->coro);
      ex_task_done(ex, NULL, NULL, 0);
      goto done;
    }
  } else {
    ex->coro = fra__asgi_call_app(ex);
  }
  if (!ex->coro) {
    ex_app_failed(ex);
  } else {
    ex_step(ex, NULL);
  }
done:
  if (PyContext_Exit(ex->ctx) < 0) PyErr_WriteUnraisable((PyObject *)ex);
  return;
failed:
  PyErr_WriteUnraisable(so->app);
  fra__ex_respond_500(ex);
  fra_ex_finish(ex);
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

PyMethodDef fra__task_methods[] = {
    {"_wakeup", (PyCFunction)ex_wakeup, METH_O, NULL},
    {"_step", (PyCFunction)ex_step_meth, METH_NOARGS, NULL},
    {"cancel", (PyCFunction)(void (*)(void))fra__ex_cancel, METH_VARARGS | METH_KEYWORDS, "Cancel the handler."},
    {"cancelling", (PyCFunction)ex_cancelling, METH_NOARGS, NULL},
    {"uncancel", (PyCFunction)ex_uncancel, METH_NOARGS, NULL},
    {"done", (PyCFunction)ex_done, METH_NOARGS, NULL},
    {"cancelled", (PyCFunction)ex_cancelled, METH_NOARGS, NULL},
    {"get_loop", (PyCFunction)ex_get_loop, METH_NOARGS, NULL},
    {"get_coro", (PyCFunction)ex_get_coro, METH_NOARGS, NULL},
    {"get_name", (PyCFunction)ex_get_name, METH_NOARGS, NULL},
    {"set_name", (PyCFunction)ex_set_name, METH_O, NULL},
    {"get_context", (PyCFunction)ex_get_context, METH_NOARGS, NULL},
    {"add_done_callback", (PyCFunction)(void (*)(void))ex_add_done_callback, METH_VARARGS | METH_KEYWORDS,
     "add_done_callback(fn, *, context=None): fn(exchange) is scheduled once the handler has ended."},
    {"remove_done_callback", (PyCFunction)ex_remove_done_callback, METH_O,
     "Removes fn from the done callbacks; returns how many were removed."},
    {"result", (PyCFunction)ex_result, METH_NOARGS,
     "The handler's return value; raises its exception (while its done callbacks run) or CancelledError."},
    {"exception", (PyCFunction)ex_exception, METH_NOARGS,
     "The handler's exception (while its done callbacks run) or None; raises CancelledError."},
    {"_release_result", (PyCFunction)ex_release_result, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

PyGetSetDef fra__task_getset[] = {
    {"_fut_waiter", (getter)ex_fut_waiter, NULL, NULL, NULL},
    {"_must_cancel", (getter)ex_must_cancel, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
