/* aio.c — the asyncio adapter: hiredis on any asyncio loop (stdlib or uvloop) through
 * loop.add_reader/add_writer on its socket and loop.call_later for the connection's deadlines.
 * Owns the connection's bound callbacks handed to the loop, its fd object and its timer
 * handle.  Every function here needs the GIL. */
#include "redis_internal.h"

/* A loop call whose failure cannot be handed back through hiredis: reported, not lost. */
static void loop_call(RedisConnObject *rc, PyObject *name, PyObject *cb) {
  PyObject *args[3] = {rc->loop, rc->fd_obj, cb};
  PyObject *r = PyObject_VectorcallMethod(name, args, cb ? 3 : 2, NULL);
  if (!r) PyErr_WriteUnraisable(rc->loop);
  Py_XDECREF(r);
}

/* hiredis' event hooks; idempotent, as hiredis calls addWrite for every command appended and
 * addRead after every read and write: a loop call only when the watch set changes. */
static void ev_add_read(void *p) {
  RedisConnObject *rc = p;
  if (rc->aio_reading) return;
  rc->aio_reading = 1;
  loop_call(rc, rc->st->s_add_reader, rc->read_cb);
}

static void ev_del_read(void *p) {
  RedisConnObject *rc = p;
  if (!rc->aio_reading) return;
  rc->aio_reading = 0;
  loop_call(rc, rc->st->s_remove_reader, NULL);
}

static void ev_add_write(void *p) {
  RedisConnObject *rc = p;
  if (rc->aio_writing) return;
  rc->aio_writing = 1;
  loop_call(rc, rc->st->s_add_writer, rc->write_cb);
}

static void ev_del_write(void *p) {
  RedisConnObject *rc = p;
  if (!rc->aio_writing) return;
  rc->aio_writing = 0;
  loop_call(rc, rc->st->s_remove_writer, NULL);
}

/* hiredis is about to close the socket: the loop must forget it first (uvloop refuses an fd
 * closed under a watcher). */
static void ev_cleanup(void *p) {
  ev_del_read(p);
  ev_del_write(p);
}

int fra__redis_aio_attach(RedisConnObject *rc, redisAsyncContext *ac) {
  if (!rc->read_cb && !(rc->read_cb = PyObject_GetAttrString((PyObject *)rc, "_on_readable"))) return -1;
  if (!rc->write_cb && !(rc->write_cb = PyObject_GetAttrString((PyObject *)rc, "_on_writable"))) return -1;
  if (!rc->timer_cb && !(rc->timer_cb = PyObject_GetAttrString((PyObject *)rc, "_on_timer"))) return -1;
  Py_XSETREF(rc->fd_obj, PyLong_FromLong(ac->c.fd));
  if (!rc->fd_obj) return -1;
  ac->ev.data = rc;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  ac->ev.scheduleTimer = NULL; /* deadlines are the connection's own (conn.c) */
  return 0;
}

static void timer_cancel(RedisConnObject *rc) {
  if (!rc->timer_handle) return;
  PyObject *r = PyObject_CallMethodNoArgs(rc->timer_handle, rc->st->s_cancel);
  if (!r) PyErr_WriteUnraisable(rc->timer_handle);
  Py_XDECREF(r);
  Py_CLEAR(rc->timer_handle);
}

int fra__redis_aio_timer(RedisConnObject *rc, uint64_t ms) {
  timer_cancel(rc);
  PyObject *delay = PyFloat_FromDouble(ms / 1000.0);
  if (!delay) return -1;
  PyObject *args[3] = {rc->loop, delay, rc->timer_cb};
  rc->timer_handle = PyObject_VectorcallMethod(rc->st->s_call_later, args, 3, NULL);
  Py_DECREF(delay);
  return rc->timer_handle ? 0 : -1;
}

void fra__redis_aio_detach(RedisConnObject *rc) {
  timer_cancel(rc);
  if (rc->fd_obj) {
    ev_cleanup(rc);
  }
}

static PyObject *on_readable(RedisConnObject *rc, PyObject *unused) {
  fra__redis_io(rc, 1, 0);
  Py_RETURN_NONE;
}

static PyObject *on_writable(RedisConnObject *rc, PyObject *unused) {
  fra__redis_io(rc, 0, 1);
  Py_RETURN_NONE;
}

static PyObject *on_timer(RedisConnObject *rc, PyObject *unused) {
  Py_CLEAR(rc->timer_handle);
  fra__redis_fire(rc);
  Py_RETURN_NONE;
}

PyMethodDef fra__redis_aio_methods[] = {
    {"_on_readable", (PyCFunction)on_readable, METH_NOARGS, NULL},
    {"_on_writable", (PyCFunction)on_writable, METH_NOARGS, NULL},
    {"_on_timer", (PyCFunction)on_timer, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};
