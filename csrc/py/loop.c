/* loop.c — the server on an asyncio loop (stdlib or uvloop): libuv's backend fd watched with
 * add_reader, one non-blocking libuv pass per readiness, one asyncio timer re-armed for libuv's
 * next timer, and a call_soon pass after C calls made from Python outside a pass.  Owns the
 * bound callbacks handed to the loop and the armed timer handle.  Every function here needs
 * the GIL. */
#include "fra/bridge.h"

/* call_soon/call_later of the server's own callbacks run in the base context: scheduled from
 * inside a handler, they would otherwise carry that request's context into the next pass. */
static PyObject *call_in_base(ServerObject *so, PyObject *fn, PyObject *delay, PyObject *cb) {
  PyObject *args[4] = {NULL, delay, cb, so->base_ctx};
  if (delay) return PyObject_Vectorcall(fn, args + 1, 2, so->st->kw_context);
  return PyObject_Vectorcall(fn, args + 2, 1, so->st->kw_context);
}

/* Keeps one asyncio timer armed for libuv's next timer.  A timer armed for later than needed
 * is moved earlier; one armed earlier than needed just fires, finds nothing due and re-arms,
 * which keeps re-arming rare on the hot path. */
static void rearm(ServerObject *so) {
  int t = fra_server_timeout(&so->core);
  if (t == 0) {
    if (!so->kick_scheduled) {
      PyObject *h = call_in_base(so, so->call_soon, NULL, so->kick_cb);
      if (!h) { PyErr_WriteUnraisable(so->call_soon); return; }
      Py_DECREF(h);
      so->kick_scheduled = 1;
    }
    return;
  }
  if (t < 0) return;
  uint64_t due = uv_now(&so->core.loop) + (uint64_t)t;
  if (so->timer_handle && so->timer_due <= due) return;
  if (so->timer_handle) {
    PyObject *r = PyObject_CallMethodNoArgs(so->timer_handle, so->st->s_cancel);
    if (!r) PyErr_WriteUnraisable(so->timer_handle); /* no exception may stay set */
    Py_XDECREF(r);
    Py_CLEAR(so->timer_handle);
  }
  PyObject *delay = PyFloat_FromDouble(t / 1000.0);
  if (!delay) { PyErr_WriteUnraisable(so->call_later); return; }
  so->timer_handle = call_in_base(so, so->call_later, delay, so->timer_cb);
  Py_DECREF(delay);
  if (!so->timer_handle) { PyErr_WriteUnraisable(so->call_later); return; }
  so->timer_due = due;
}

void fra_srv_after_call(ServerObject *so) {
  if (so->core.in_run || so->closed || !so->attached) return;
  uv_update_time(&so->core.loop);
  rearm(so);
}

static void run_pass(ServerObject *so) {
  if (so->closed) return;
  if (fra_server_run_nowait(&so->core)) {
    if (!so->kick_scheduled) {
      PyObject *h = call_in_base(so, so->call_soon, NULL, so->kick_cb);
      if (h) { so->kick_scheduled = 1; Py_DECREF(h); }
      else PyErr_WriteUnraisable(so->call_soon);
    }
    return;
  }
  rearm(so);
}

static PyObject *loop_run_nowait(ServerObject *so, PyObject *unused) {
  run_pass(so);
  Py_RETURN_NONE;
}

static PyObject *loop_on_timer(ServerObject *so, PyObject *unused) {
  Py_CLEAR(so->timer_handle);
  run_pass(so);
  Py_RETURN_NONE;
}

static PyObject *loop_kick(ServerObject *so, PyObject *unused) {
  so->kick_scheduled = 0;
  run_pass(so);
  Py_RETURN_NONE;
}

int fra_loop_attach(ServerObject *so) {
  so->backend_fd = uv_backend_fd(&so->core.loop);
  PyObject *fd = PyLong_FromLong(so->backend_fd);
  if (!fd) return -1;
  PyObject *r = PyObject_CallMethodObjArgs(so->loop, so->st->s_add_reader, fd, so->run_cb, NULL);
  Py_DECREF(fd);
  if (!r) return -1;
  Py_DECREF(r);
  so->attached = 1;
  /* The first pass (it registers the listeners with epoll) runs from the loop, never inside
   * the caller: start() is called from a task, and a pass may dispatch requests already queued
   * on the socket, which must not run while another task is current. */
  PyObject *h = call_in_base(so, so->call_soon, NULL, so->kick_cb);
  if (!h) return -1;
  Py_DECREF(h);
  so->kick_scheduled = 1;
  return 0;
}

void fra_loop_detach(ServerObject *so) {
  if (so->attached && so->backend_fd >= 0 && so->loop) {
    PyObject *fd = PyLong_FromLong(so->backend_fd);
    PyObject *r = fd ? PyObject_CallMethodOneArg(so->loop, so->st->s_remove_reader, fd) : NULL;
    Py_XDECREF(fd);
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
    so->attached = 0;
  }
  if (so->timer_handle) {
    PyObject *r = PyObject_CallMethodNoArgs(so->timer_handle, so->st->s_cancel);
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
    Py_CLEAR(so->timer_handle);
  }
}

PyMethodDef fra__loop_methods[] = {
    {"run_nowait", (PyCFunction)loop_run_nowait, METH_NOARGS, "One non-blocking pass (loop callback)."},
    {"_on_timer", (PyCFunction)loop_on_timer, METH_NOARGS, NULL},
    {"_kick", (PyCFunction)loop_kick, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};
