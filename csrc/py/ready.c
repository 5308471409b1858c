/* ready.c — the awaitable that is already complete: what receive() and send() return when
 * nothing has to wait, so an ASGI handler's await costs no future and no loop iteration.
 * Owns the value it holds.  Every function here needs the GIL. */
#include "fra/bridge.h"


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
