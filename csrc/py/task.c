/* task.c — the task-like driver of a handler coroutine (ASGI, or our native entry).  The first
 * step runs eagerly from C inside the loop pass; only a coroutine that suspends on a future is
 * resumed from that future's callback, with the exchange entered as asyncio's current task, so
 * asyncio.timeout, wait_for, TaskGroup and cancellation work as in a Task.  Owns the coroutine,
 * its context and the future it waits on.  Every function here needs the GIL. */
#include "exchange_internal.h"

static void ex_step(ExchangeObject *ex, PyObject *exc);

static void ex_task_done(ExchangeObject *ex) {
  ex->task_done = 1;
  Py_CLEAR(ex->wakeup_cb); /* these hold the exchange: drop the cycle now */
  Py_CLEAR(ex->step_cb);
  Py_CLEAR(ex->fut_waiter);
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

/* The app's coroutine ended: by returning (exc NULL, cancelled 0), by cancellation, or by an
 * exception (exc set). */
static void ex_app_ended(ExchangeObject *ex, PyObject *exc, int cancelled) {
  ex_task_done(ex);
  if (ex->kind == FRA_IF_WSGI) {
    /* The handler handed the request to the thread pool (run_wsgi): the response is the
     * pool's to finish. */
    if (exc) fra__ex_log_app_error(ex, exc, "Exception in the handler after run_wsgi()");
    return;
  }
  if (ex->complete) {
    if (exc) fra__ex_log_app_error(ex, exc, "Exception in ASGI application after the response");
    if (!ex->finished) fra_ex_finish(ex);
    return;
  }
  if (exc) fra__ex_log_app_error(ex, exc, "Exception in ASGI application");
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
static PyObject *ex_cancelled(ExchangeObject *ex, PyObject *unused) { Py_RETURN_FALSE; }
static PyObject *ex_get_loop(ExchangeObject *ex, PyObject *unused) { return Py_NewRef(ex->srv->loop); }
static PyObject *ex_get_coro(ExchangeObject *ex, PyObject *unused) { return Py_NewRef(ex->coro ? ex->coro : Py_None); }
static PyObject *ex_get_name(ExchangeObject *ex, PyObject *unused) { return PyUnicode_FromFormat("request-%p", ex); }
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
      ex_task_done(ex);
      goto done;
    }
  } else {
    ex->coro = fra__asgi_call_app(ex);
  }
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
    {"get_context", (PyCFunction)ex_get_context, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

PyGetSetDef fra__task_getset[] = {
    {"_fut_waiter", (getter)ex_fut_waiter, NULL, NULL, NULL},
    {"_must_cancel", (getter)ex_must_cancel, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
