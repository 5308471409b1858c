/* fsevents.c — _core.FileEvents(loop, path, callback): callback() (no arguments) whenever the
 * file at path, or its name in its directory, changes (written, truncated, renamed, removed,
 * created).  The adapter is chosen from the loop: our server's (fsev_uv.c) or any other
 * (fsev_aio.c), as the Redis connection chooses.  Owns the object, its path strings, the
 * call_soon handle of a pending callback and the list of watchers on each server.  Every
 * function here needs the GIL. */
#include "stream_internal.h" /* first: Python.h asks for _GNU_SOURCE (memrchr) */
#include <errno.h>
#include <string.h>



FileEventsObject *fra__fsev_deref(PyObject *weak) {
  PyObject *obj = PyWeakref_GetObject(weak); // borrowed
  if (!obj || obj == Py_None) return NULL;
  FileEventsObject *fe = (FileEventsObject *)obj;
  return fe->closed ? NULL : fe;
}

/* The callback due after a burst of events: cleared, then run once. */
static PyObject *fire(PyObject *weak, PyObject *unused) {
  FileEventsObject *fe = fra__fsev_deref(weak);
  if (!fe) Py_RETURN_NONE;
  Py_CLEAR(fe->handle);
  if (!fe->callback) Py_RETURN_NONE;
  PyObject *cb = Py_NewRef(fe->callback);
  PyObject *r = PyObject_CallNoArgs(cb); /* an exception goes to the loop's handler */
  Py_DECREF(cb);
  return r;
}

static PyMethodDef fire_def = {"_fire", (PyCFunction)fire, METH_NOARGS, NULL};

void fra__fsev_schedule(FileEventsObject *fe) {
  if (fe->handle || !fe->callback) return;
  fe->handle = PyObject_CallMethodObjArgs(fe->loop, fe->st->s_call_soon, fe->fire_cb, NULL);
  if (!fe->handle) PyErr_WriteUnraisable((PyObject *)fe);
}

/* The Server started on this asyncio loop, if any (the registry csrc/redis keeps). */
static ServerObject *server_on(fra_state *st, PyObject *loop) {
  PyObject *v = PyDict_GetItemWithError(st->redis_loops, loop); // borrowed
  if (!v) return NULL;
  ServerObject *so = PyLong_AsVoidPtr(v);
  return so && so->core_ready && !so->closed ? so : NULL;
}

static void unlink_server(FileEventsObject *fe) {
  if (!fe->srv_pprev) return;
  *fe->srv_pprev = fe->srv_next;
  if (fe->srv_next) fe->srv_next->srv_pprev = fe->srv_pprev;
  fe->srv_next = NULL;
  fe->srv_pprev = NULL;
}

/* Stops watching and lets go of everything the loop holds of us.  Idempotent. */
static void fe_release(FileEventsObject *fe) {
  if (fe->closed) return;
  fe->closed = 1;
  fra__fsev_uv_close(fe);
  unlink_server(fe);
  fe->so = NULL;
  fra__fsev_aio_close(fe);
  if (fe->handle) {
    PyObject *r = PyObject_CallMethodNoArgs(fe->handle, fe->st->s_cancel);
    if (!r) PyErr_WriteUnraisable(fe->handle);
    Py_XDECREF(r);
    Py_CLEAR(fe->handle);
  }
  Py_CLEAR(fe->callback);
}

/* Splits path (bytes) into its directory and its name in it. */
static int split_path(FileEventsObject *fe, PyObject *pathb) {
  const char *p = PyBytes_AS_STRING(pathb);
  size_t n = (size_t)PyBytes_GET_SIZE(pathb);
  if (n == 0 || p[n - 1] == '/' || memchr(p, 0, n)) {
    PyErr_SetString(PyExc_ValueError, "FileEvents: path must name a file (not empty, not ending in '/')");
    return -1;
  }
  const char *slash = memrchr(p, '/', n);
  const char *name = slash ? slash + 1 : p;
  size_t dlen = slash ? (size_t)(slash - p) : 1;
  const char *dir = slash ? p : ".";
  if (slash && dlen == 0) dlen = 1; /* "/name": the root */
  fe->dir = PyMem_Malloc(dlen + 1);
  fe->name = PyMem_Malloc(n - (size_t)(name - p) + 1);
  if (!fe->dir || !fe->name) {
    PyErr_NoMemory();
    return -1;
  }
  memcpy(fe->dir, dir, dlen);
  fe->dir[dlen] = 0;
  strcpy(fe->name, name);
  return 0;
}

static PyObject *fe_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"loop", "path", "callback", NULL};
  PyObject *loop, *pathb = NULL, *callback;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO&O:FileEvents", kwlist, &loop, PyUnicode_FSConverter, &pathb,
                                   &callback))
    return NULL;
  if (!PyCallable_Check(callback)) {
    Py_DECREF(pathb);
    PyErr_SetString(PyExc_TypeError, "FileEvents: callback must be callable");
    return NULL;
  }
  FileEventsObject *fe = (FileEventsObject *)type->tp_alloc(type, 0);
  if (!fe) {
    Py_DECREF(pathb);
    return NULL;
  }
  fe->st = fra_state_of_type(type);
  fe->ifd = -1;
  fe->loop = Py_NewRef(loop);
  fe->callback = Py_NewRef(callback);
  int rc = split_path(fe, pathb);
  Py_DECREF(pathb);
  if (rc < 0) goto fail;
  if (!(fe->self_weak = PyWeakref_NewRef((PyObject *)fe, NULL))) goto fail;
  if (!(fe->fire_cb = PyCFunction_New(&fire_def, fe->self_weak))) goto fail;
  ServerObject *so = server_on(fe->st, loop);
  if (!so && PyErr_Occurred()) goto fail;
  if (so) {
    int uvrc = fra__fsev_uv_open(fe, so);
    if (uvrc < 0) {
      if (uvrc == UV_ENOENT || uvrc == UV_ENOTDIR || uvrc == UV_EACCES) {
        errno = -uvrc;
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, fe->dir);
      } else {
        fra_raise_uv(uvrc, "FileEvents");
      }
      goto fail;
    }
    FileEventsObject **head = (FileEventsObject **)&so->file_events;
    fe->srv_next = *head;
    if (*head) (*head)->srv_pprev = &fe->srv_next;
    fe->srv_pprev = head;
    *head = fe;
  } else if (fra__fsev_aio_open(fe) < 0) {
    goto fail;
  }
  return (PyObject *)fe;
fail:
  {
    PyObject *exc = fra_err_take();
    fe_release(fe);
    fra_err_restore(exc);
  }
  Py_DECREF(fe);
  return NULL;
}

static PyObject *fe_close(FileEventsObject *fe, PyObject *unused) {
  fe_release(fe);
  Py_RETURN_NONE;
}

static PyObject *fe_get_closed(FileEventsObject *fe, void *unused) { return PyBool_FromLong(fe->closed); }

static PyObject *fe_get_adapter(FileEventsObject *fe, void *unused) {
  return PyUnicode_FromString(fe->closed ? "closed" : fe->so ? "uv" : fe->reading ? "asyncio" : "none");
}

static int fe_traverse(FileEventsObject *fe, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(fe));
  Py_VISIT(fe->loop);
  Py_VISIT(fe->callback);
  Py_VISIT(fe->self_weak);
  Py_VISIT(fe->fire_cb);
  Py_VISIT(fe->handle);
  Py_VISIT(fe->fd_obj);
  Py_VISIT(fe->read_cb);
  return 0;
}

/* The loop's callbacks hold only a weak reference: an unclosed watcher is collected like any
 * object, and its finalizer stops the watching (loop calls are fine there, unlike in dealloc). */
static void fe_finalize(PyObject *self) {
  PyObject *exc = fra_err_take();
  fe_release((FileEventsObject *)self);
  fra_err_restore(exc);
}

static int fe_clear(FileEventsObject *fe) {
  Py_CLEAR(fe->callback);
  Py_CLEAR(fe->handle);
  return 0;
}

static void fe_dealloc(FileEventsObject *fe) {
  PyTypeObject *tp = Py_TYPE(fe);
  if (PyObject_CallFinalizerFromDealloc((PyObject *)fe) < 0) return; /* resurrected */
  PyObject_GC_UnTrack(fe);
  if (fe->weakreflist) PyObject_ClearWeakRefs((PyObject *)fe);
  Py_CLEAR(fe->loop);
  Py_CLEAR(fe->callback);
  Py_CLEAR(fe->self_weak);
  Py_CLEAR(fe->fire_cb);
  Py_CLEAR(fe->handle);
  Py_CLEAR(fe->fd_obj);
  Py_CLEAR(fe->read_cb);
  PyMem_Free(fe->dir);
  PyMem_Free(fe->name);
  tp->tp_free(fe);
  Py_DECREF(tp);
}

static PyMethodDef fe_methods[] = {
    {"close", (PyCFunction)fe_close, METH_NOARGS, "Stop watching (idempotent)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef fe_getset[] = {
    {"closed", (getter)fe_get_closed, NULL, "Has close() been called?", NULL},
    {"adapter", (getter)fe_get_adapter, NULL, "'uv' (our server's loop), 'asyncio', 'none' or 'closed'.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef fe_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(FileEventsObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot fe_slots[] = {
    {Py_tp_doc, "FileEvents(loop, path, callback): callback() whenever the file at path or its name changes."},
    {Py_tp_new, fe_new},
    {Py_tp_dealloc, fe_dealloc},
    {Py_tp_finalize, fe_finalize},
    {Py_tp_traverse, fe_traverse},
    {Py_tp_clear, fe_clear},
    {Py_tp_methods, fe_methods},
    {Py_tp_getset, fe_getset},
    {Py_tp_members, fe_members},
    {0, NULL},
};

static PyType_Spec fe_spec = {
    .name = "flask_restful_async._core.FileEvents",
    .basicsize = sizeof(FileEventsObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = fe_slots,
};

int fra_stream_module_init(PyObject *m, fra_state *st) {
  PyTypeObject *t = (PyTypeObject *)PyType_FromModuleAndSpec(m, &fe_spec, NULL);
  if (!t) return -1;
  st->FileEventsType = t;
  return PyModule_AddType(m, t);
}

void fra_stream_server_closing(ServerObject *so) {
  while (so->file_events) {
    FileEventsObject *fe = so->file_events;
    fra__fsev_uv_close(fe);
    unlink_server(fe);
    fe->so = NULL;
  }
}
