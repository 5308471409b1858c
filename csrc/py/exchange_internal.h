/* exchange_internal.h — what the files of one exchange share (csrc/py/exchange.c, framing.c,
 * task.c, asgi.c, native.c, wsgi.c).  Every function declared here needs the GIL. */
#ifndef FRA_EXCHANGE_INTERNAL_H
#define FRA_EXCHANGE_INTERNAL_H

#include "fra/bridge.h"

#define EX_FROM_CONN(c) ((ExchangeObject *)(c)->active)

/* Each room contributes its part of the Exchange type's Python surface (exchange.c joins them). */
extern PyMethodDef fra__task_methods[], fra__asgi_methods[], fra__native_methods[], fra__stream_methods[];
extern PyGetSetDef fra__task_getset[], fra__native_getset[];

/* exchange.c: futures the exchange resolves */
void fra__resolve(PyObject **slot, PyObject *value);  /* set_result(value) unless done; slot cleared */
PyObject *fra__disconnect_msg(fra_state *st);         /* {"type": "http.disconnect"}, new reference */
void fra__ex_resolve_recv(ExchangeObject *ex, PyObject *msg); /* msg: new reference, consumed */
void fra__ex_drop_req(ExchangeObject *ex);

/* framing.c */
void fra__ex_respond_500(ExchangeObject *ex);
int fra__ex_head_wsgi(ExchangeObject *ex, PyObject *status, PyObject *headers); /* 0 or -1 */
void fra__ex_continue(ExchangeObject *ex);            /* 100 Continue if the client waits for it */

/* task.c: the driver */
void fra__ex_start(ExchangeObject *ex);               /* call the app and take its first step */
PyObject *fra__ex_cancel(ExchangeObject *ex, PyObject *args, PyObject *kw);
void fra__ex_log_app_error(ExchangeObject *ex, PyObject *exc, const char *what);

/* asgi.c */
PyObject *fra__asgi_call_app(ExchangeObject *ex);     /* app(scope, receive, send) */
PyObject *fra__asgi_request_msg(ExchangeObject *ex);  /* the next http.request message */

/* body.c: the body copied once into the bytes handed to the app */
int fra__body_absorb(ExchangeObject *ex);     /* what the core holds for us, into the sinks; 0 or -1 */
/* The next bytes received and not consumed (whole: all of them, as one), consumed; new ref. */
PyObject *fra__body_take(ExchangeObject *ex, int whole);
int fra__body_gather(ExchangeObject *ex);     /* body(): from now on one sink for the whole body */
int fra__body_pending(ExchangeObject *ex);    /* are there bytes received and not consumed? */
void fra__body_unsink(ExchangeObject *ex);    /* back to the request's queue (a pool thread reads it) */

/* native.c */
void fra__ex_cancel_for_disconnect(ExchangeObject *ex);
void fra__ex_gather_body(ExchangeObject *ex);           /* body(): take what arrived, resolve when whole */

#endif
