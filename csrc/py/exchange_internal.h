/* exchange_internal.h — what the files of one exchange share (csrc/py/exchange.c, framing.c,
 * task.c, asgi.c, native.c, wsgi.c).  Every function declared here needs the GIL. */
#ifndef FRA_EXCHANGE_INTERNAL_H
#define FRA_EXCHANGE_INTERNAL_H

#include "fra/bridge.h"

#define EX_FROM_CONN(c) ((ExchangeObject *)(c)->active)

/* The pending exception as one object (normalized, its traceback attached; a new reference)
 * with the error indicator cleared, or NULL if none is pending.  3.12 has this as
 * PyErr_GetRaisedException; on 3.11 it takes the (deprecated from 3.12) three-part form. */
static inline PyObject *fra__err_take(void) {
#if PY_VERSION_HEX >= 0x030C0000
  return PyErr_GetRaisedException();
#else
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (!type) return NULL;
  PyErr_NormalizeException(&type, &value, &tb);
  if (value && tb) PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return value; /* normalizing always leaves an exception object */
#endif
}

/* Raises exc (an exception object; the reference is consumed) with its own traceback: the
 * inverse of fra__err_take. */
static inline void fra__err_give(PyObject *exc) {
#if PY_VERSION_HEX >= 0x030C0000
  PyErr_SetRaisedException(exc);
#else
  PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* Each room contributes its part of the Exchange type's Python surface (exchange.c joins them). */
extern PyMethodDef fra__task_methods[], fra__asgi_methods[], fra__native_methods[];
extern PyGetSetDef fra__task_getset[], fra__native_getset[];

/* exchange.c: futures the exchange resolves */
void fra__resolve(PyObject **slot, PyObject *value);  /* set_result(value) unless done; slot cleared */
PyObject *fra__disconnect_msg(fra_state *st);         /* {"type": "http.disconnect"}, new reference */
void fra__ex_resolve_recv(ExchangeObject *ex, PyObject *msg); /* msg: new reference, consumed */
void fra__ex_drop_req(ExchangeObject *ex);

/* framing.c */
void fra__ex_respond_500(ExchangeObject *ex);

/* task.c: the driver */
void fra__ex_start(ExchangeObject *ex);               /* call the app and take its first step */
PyObject *fra__ex_cancel(ExchangeObject *ex, PyObject *args, PyObject *kw);
void fra__ex_log_app_error(ExchangeObject *ex, PyObject *exc, const char *what);

/* asgi.c */
PyObject *fra__asgi_call_app(ExchangeObject *ex);     /* app(scope, receive, send) */
PyObject *fra__asgi_request_msg(ExchangeObject *ex);  /* the next http.request message */

/* native.c */
void fra__ex_cancel_for_disconnect(ExchangeObject *ex);

#endif
